//! The ownership record ([`Record`]), and the pure steps that read and write it: what an
//! object holds ([`held`]), the unique IDs of what it holds, what the lists keep of machines
//! that cannot be read, and the warnings about machines whose ownership is uncertain or that
//! keep losing the identity.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::azure::compute::Machine;
use crate::engine::handover::Change;
use crate::engine::notes::Notes;
use crate::engine::ownership::{Held, Outcome, Settings, Write};
use crate::engine::unique_ids::UniqueIds;

/// The ownership record: what travels in Terraform's private state next to the attributes
/// (the resources keep it there as JSON, nothing at all for the default).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// In the plan of an object that replaces another: the machines it takes over. The old
    /// object's destroy (which Terraform hands this same private state) leaves them alone,
    /// and the new one records them as its own.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub taken_over: BTreeSet<String>,
    /// Listed in `assigned_ids` because the plan said so, but another writer attached the
    /// identity between plan and apply: not ours. The next refresh moves them to
    /// `compliant_ids`; destroy never takes the identity back from them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub not_ours: BTreeSet<String>,
    /// Listed in `compliant_ids` because the plan said so, but ours: the object that had
    /// attached the identity handed them over in this apply, or they had lost it and we
    /// attached it again. The next refresh moves them to `assigned_ids`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub adopted: BTreeSet<String>,
    /// Machines still carrying an identity this object attached, whose release (or swap
    /// after `identity_id` changed) did not happen: machine to that identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_release: BTreeMap<String, String>,
    /// The unique ID (`vmId`, a scale set's `uniqueId`) of each machine holding an identity
    /// from us, recorded when we attach it (and, for states written before, at the next
    /// refresh or apply). A machine listed under the same ID with another unique ID was
    /// deleted and created again: not ours. Kept as digests under a new name (see
    /// [`UniqueIds`]); the map of strings kept as `unique_ids` before reads too, and a build
    /// that knows only that name ignores this one and records them afresh.
    #[serde(
        rename = "unique_id_digests",
        alias = "unique_ids",
        default,
        skip_serializing_if = "UniqueIds::is_empty"
    )]
    pub unique_ids: UniqueIds,
    /// In a plan, for Terraform 1.16+ (which hands it back to the plan it makes during
    /// apply): the lists this plan showed. Planned again from a fresh listing, a machine
    /// changed since (attached by someone else, created, deleted) would change them, and
    /// Terraform would refuse to apply ("inconsistent final plan"). Never kept in state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<Outcome>,
    /// Machines holding the identity where an attach's answer was lost while another change
    /// reached them: maybe ours, maybe not. Never taken as ours (kept out of what we hold, so
    /// destroy leaves them holding), named in a warning at every plan and at destroy, and kept
    /// while they hold the identity.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub uncertain: BTreeSet<String>,
    /// In the plan of a create: the key of its hand-over records (`crate::handover`). The
    /// destroy of the object it replaces, which Terraform hands this private state, records
    /// there what it left holding the identity, for the create's plan made during apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// In the plan of a create: the machines it plans `compliant` (holding its identity, not
    /// its own), with that identity. After a taint, Terraform plans the create alone, and a
    /// changed `scope` hides the old object's records from it: the old object's destroy,
    /// handed this private state, leaves these machines holding the identity (the create
    /// adopts them) instead of stripping what the plan showed as kept. In the plan of a
    /// destroy: the machines an object planned before it in the same run with a change keeps
    /// holding the identity (`crate::engine::destroy::plan_destroy`), left to it the same way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keeps: BTreeMap<String, String>,
    /// Lower-cased machine ID to how many of our applies in a row it lost the identity we
    /// attached: another writer (azurerm, a module) takes it off after each of them. Counted
    /// at refresh (see [`ownership::lost_streaks`]); the plan names them and warns from two.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost_streak: BTreeMap<String, u32>,
}

impl Record {
    /// The record kept in `bytes` (JSON; none at all for the default). An unreadable record
    /// counts as empty.
    pub fn from_bytes(bytes: &[u8]) -> Record {
        if bytes.is_empty() {
            return Record::default();
        }
        serde_json::from_slice(bytes).unwrap_or_else(|error| {
            tracing::warn!(%error, "unreadable private state; treating it as empty");
            Record::default()
        })
    }

    /// The record as bytes: none at all for the default.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        if *self == Record::default() {
            return Vec::new();
        }
        serde_json::to_vec(self).expect("a record serializes")
    }
}

/// What an existing object owns: its `assigned_ids` (of `identity_id`) less those another
/// writer attached, plus releases still owed.
pub fn held(identity_id: &str, outcome: &Outcome, record: &Record) -> Held {
    let assigned: Vec<String> = outcome
        .assigned_ids
        .iter()
        .cloned()
        .chain(record.adopted.iter().cloned())
        .filter(|id| !contains_ignoring_case(&record.not_ours, id))
        .collect();
    let mut held = Held::new(identity_id, &assigned);
    for (machine, identity) in &record.pending_release {
        held.add(identity, [machine]);
    }
    held.record_unique_ids(&record.unique_ids);
    held
}

/// The unique ID of every machine `now` holds: as `inventory` lists it, else as `before`
/// recorded it (a machine missing from the listing keeps its record).
pub fn unique_ids_of(now: &Held, before: &Held, inventory: &[Machine]) -> UniqueIds {
    let listed: HashMap<String, &Machine> = inventory
        .iter()
        .map(|m| (m.id.to_ascii_lowercase(), m))
        .collect();
    let mut unique_ids = UniqueIds::default();
    for (machine, _) in now.iter() {
        match listed.get(machine).and_then(|m| m.unique_id.as_deref()) {
            Some(unique_id) => unique_ids.record(machine, unique_id),
            None => {
                if let Some(recorded) = before.unique_id_of(machine) {
                    unique_ids.keep(machine, recorded);
                }
            }
        }
    }
    unique_ids
}

/// Machines holding an identity from us that neither a listing nor a read by their ID shows
/// (lower-cased ID to why the read failed). They stay recorded as they were.
pub type Unreadable = BTreeMap<String, String>;

/// `machine` as `before` spells it in its `assigned_ids` (else as given).
pub fn spelled_as_before(before: &BTreeSet<String>, machine: &str) -> String {
    before
        .iter()
        .find(|id| id.eq_ignore_ascii_case(machine))
        .cloned()
        .unwrap_or_else(|| machine.to_string())
}

/// Keeps in `outcome.assigned_ids` the `unreadable` machines that hold `identity_id` from
/// us, spelled as `before` had them, and warns naming them.
pub fn keep_unreadable(
    outcome: &mut Outcome,
    unreadable: &Unreadable,
    held: &Held,
    identity_id: &str,
    before: &Outcome,
    notes: &mut Notes,
) {
    if unreadable.is_empty() {
        return;
    }
    for machine in unreadable.keys() {
        if held
            .identity_on(machine)
            .is_some_and(|identity| identity.eq_ignore_ascii_case(identity_id))
        {
            outcome
                .assigned_ids
                .insert(spelled_as_before(&before.assigned_ids, machine));
        }
    }
    notes.warning(
        "Machines holding the identity from this resource could not be read",
        &format!(
            "They are missing from the listing, and reading them by ID failed; they stay recorded as ours (`assigned_ids`) until a read says they are gone (404). Grant the provider's principal read access to them (Microsoft.Compute/virtualMachines/read, virtualMachineScaleSets/read).\n{}",
            unreadable
                .iter()
                .take(20)
                .map(|(machine, error)| format!("- {machine}: {error}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
}

/// Forgets in `held` the machines `inventory` shows deleted and created again.
pub fn forget_recreated(held: &mut Held, inventory: &[Machine]) {
    let recreated = held.forget_recreated(inventory);
    if !recreated.is_empty() {
        tracing::info!(
            count = recreated.len(),
            "machines deleted and created again under the same ID since we attached the identity: no longer ours"
        );
    }
}

/// Warns that objects planned before this one in the same run reach some of its machines
/// with the same identity.
pub fn warn_overlap(settings: &Settings, overlapping: &[Settings], notes: &mut Notes) {
    if overlapping.is_empty() {
        return;
    }
    let others = list_reaches(overlapping);
    notes.warning_at(
        "scope",
        "Two objects attach the same identity to the same machines",
        &format!(
            "This object, over {}, and another object in this configuration attach `{}` to machines both reach:\n{others}\nEach records only what it attached, so removing one (or narrowing it) takes the identity back from machines the other still wants, and the other attaches it again at its next apply. Give each machine one object: narrow `scope`, `locations` or `resource_types`, or list the machines in one object's `exclude_ids`. To move machines from one object to another, remove the old one with `removed {{ lifecycle {{ destroy = false }} }}` and set `adopt = \"compliant\"` on the new one (see the estates guide).",
            describe_reach(settings),
            settings.identity_id,
        ),
    );
}

/// Warns that this plan creates an object and destroys another of the same identity over
/// the same machines (`change` is what it does to this one; `others`, the reaches of the
/// other change): an address changed without a `moved` block, or machines moved to another
/// object without `removed`.
pub fn warn_moved_without_block(
    change: Change,
    settings: &Settings,
    others: &[Settings],
    notes: &mut Notes,
) {
    if others.is_empty() {
        return;
    }
    let (this, other) = match change {
        Change::Create => ("created", "destroyed"),
        Change::Destroy => ("destroyed", "created"),
    };
    let summary =
        "An object with the same identity over the same machines is destroyed and another created";
    let detail = format!(
        "This object, over {}, is {this} in this plan, and another object attaching `{}` to some of the same machines is {other}:\n{}\nTerraform does not order one object's destroy against another's create: the destroy may take the identity back and the create attach it again within the apply, or the create may record the machines as compliant rather than its own, so that its destroy would leave them holding the identity. If the new object is the old one at a new address, add a `moved` block from the old address to the new one. To move machines to another object, remove the old one with `removed {{ lifecycle {{ destroy = false }} }}` and set `adopt = \"compliant\"` on the new one (see the estates guide).",
        describe_reach(settings),
        settings.identity_id,
        list_reaches(others),
    );
    match change {
        Change::Create => notes.warning_at("scope", summary, &detail),
        // A destroyed object has no configuration to point at.
        Change::Destroy => notes.warning(summary, &detail),
    }
}

/// "scope `...` (its regions)".
fn describe_reach(reach: &Settings) -> String {
    let regions = match &reach.locations {
        Some(regions) => regions.iter().cloned().collect::<Vec<_>>().join(", "),
        None => "every region".to_string(),
    };
    format!("scope `{}` ({regions})", reach.scope)
}

/// One line per reach, as a Markdown list.
fn list_reaches(reaches: &[Settings]) -> String {
    reaches
        .iter()
        .map(|reach| format!("- {}", describe_reach(reach)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Machines that were planned the identity again after losing it, as `streaks` counts them:
/// the plan names them, and warns louder when one lost it at two of our applies in a row.
pub fn warn_lost(
    streaks: &BTreeMap<String, u32>,
    writes: &BTreeMap<String, Write>,
    notes: &mut Notes,
) {
    let mut once = Vec::new();
    let mut again = Vec::new();
    for (machine, write) in writes {
        if !matches!(write, Write::Attach | Write::Swap { .. }) {
            continue;
        }
        match streaks.get(&machine.to_ascii_lowercase()) {
            Some(count) if *count >= 2 => {
                again.push(format!("- {machine} ({count} applies in a row)"))
            }
            Some(_) => once.push(format!("- {machine}")),
            None => {}
        }
    }
    let list = |machines: &[String]| {
        let mut text = machines
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if machines.len() > 20 {
            text.push_str(&format!("\n- ... and {} more", machines.len() - 20));
        }
        text
    };
    if !again.is_empty() {
        notes.warning(
            "Machines keep losing the identity this resource attaches",
            &format!(
                "Another writer took the identity off these machines after each of the last applies, and this plan attaches it again: the two fight at every apply. The likely cause is a tool that lists a machine's identities authoritatively, such as azurerm's `azurerm_linux_virtual_machine`/`azurerm_windows_virtual_machine` with an `identity` block, or a module wrapping one. Fix it on that side: add `lifecycle {{ ignore_changes = [identity] }}` to the machine, or include the identity in its `identity_ids` (`provider::mig::builtin_identity_id`); or leave the machine out here with `exclude_ids`. See the guide \"Machines managed by azurerm or modules\".\n{}",
                list(&again)
            ),
        );
    }
    if !once.is_empty() {
        notes.warning(
            "Machines lost the identity this resource attached",
            &format!(
                "Someone else took the identity off these machines since this resource's last apply; this plan attaches it again. If they lose it again, another tool manages their identities (see the guide \"Machines managed by azurerm or modules\").\n{}",
                list(&once)
            ),
        );
    }
}

/// True when the create replacing this object (or an object changed in the same run)
/// planned `machine` to keep `identity_id` (see [`Record::keeps`]).
pub fn kept_for_successor(record: &Record, machine: &str, identity_id: &str) -> bool {
    record
        .keeps
        .get(&machine.to_ascii_lowercase())
        .is_some_and(|identity| identity.eq_ignore_ascii_case(identity_id))
}

/// `machine` as the listing spells it (else as given).
pub fn listed_spelling(inventory: &[Machine], machine: &str) -> String {
    inventory
        .iter()
        .find(|m| m.id.eq_ignore_ascii_case(machine))
        .map_or_else(|| machine.to_string(), |m| m.id.clone())
}

/// The write planned for `id`: releases are keyed by the lower-cased ID ownership records,
/// while a batch reports each machine as ARM spells it.
pub fn job_for<'a>(jobs: &'a BTreeMap<String, Write>, id: &str) -> Option<&'a Write> {
    jobs.get(id).or_else(|| jobs.get(&id.to_ascii_lowercase()))
}

pub fn contains_ignoring_case(set: &BTreeSet<String>, id: &str) -> bool {
    set.iter().any(|item| item.eq_ignore_ascii_case(id))
}

/// The machines whose ownership is uncertain after an apply: those carried from before that
/// still hold the identity from someone (`compliant_ids`) and were not adopted, plus those
/// this apply's lost answers left uncertain.
pub fn uncertain_after_apply(
    carried: &BTreeSet<String>,
    outcome: &Outcome,
    adopted: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> BTreeSet<String> {
    carried
        .iter()
        .filter(|id| {
            contains_ignoring_case(&outcome.compliant_ids, id)
                && !contains_ignoring_case(adopted, id)
        })
        .chain(new.iter())
        .cloned()
        .collect()
}

/// The uncertain machines a refresh keeps: those it found holding the identity from someone
/// (`compliant_ids`). One that lost the identity, or was deleted, is uncertain no more.
pub fn uncertain_after_refresh(
    carried: &BTreeSet<String>,
    refreshed: &Outcome,
) -> BTreeSet<String> {
    carried
        .iter()
        .filter(|id| contains_ignoring_case(&refreshed.compliant_ids, id))
        .cloned()
        .collect()
}

/// A warning naming the machines whose ownership is uncertain, if any; `now` says what
/// happens to them at this step.
pub fn warn_uncertain(notes: &mut Notes, uncertain: &BTreeSet<String>, now: &str) {
    if uncertain.is_empty() {
        return;
    }
    let mut lines: Vec<String> = uncertain
        .iter()
        .take(50)
        .map(|id| format!("- {id}"))
        .collect();
    if uncertain.len() > 50 {
        lines.push(format!("- ... and {} more", uncertain.len() - 50));
    }
    notes.warning(
        &format!(
            "Ownership of the identity on {} machine(s) is uncertain",
            uncertain.len()
        ),
        &format!(
            "Azure's answer to the write that attached the identity was lost, and another change reached the machine in the same moment: the identity there may be this resource's or another writer's. It is recorded as compliant, not as this resource's, so destroy never takes it back.{now} To settle it, remove the identity from the machine by hand if it is this resource's (the next apply attaches it again as its own), or leave it if another writer put it there.\n{}",
            lines.join("\n")
        ),
    );
}
