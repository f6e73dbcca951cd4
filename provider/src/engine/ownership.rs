//! Which machines a `mig_identity_assignment` object owns, and what every transition of its
//! arguments does to them. Pure: no Azure calls, no Terraform types.
//!
//! The contract: an object owns exactly the machines it attached its identity to (and that
//! still hold it). A machine that held the identity from someone else is *compliant*, never
//! owned. Changing any argument converges in place: the new settings are evaluated against
//! the machines of the old and the new scope together, owned machines that fall out are
//! released, and a changed identity is swapped in one write per machine, so no machine that
//! should hold an identity is left without one in between.
//!
//! A machine is its unique ID (`vmId`, a scale set's `uniqueId`), not its resource ID: one
//! deleted and created again under the same name is another machine, never ours
//! ([`Held::forget_recreated`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::{self, Scope};
use crate::engine::unique_ids::{is_same_machine, Digest, UniqueIds};
use crate::policy::{self, Decision, IdentityBlock, IdentityType, Rules, SkipReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

/// The arguments of one object, decoded and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub identity_id: String,
    pub scope: Scope,
    /// Normalised region names; `None` means every region.
    pub locations: Option<BTreeSet<String>>,
    pub kinds: Vec<MachineKind>,
    pub rules: Rules,
    pub mode: Mode,
    /// `adopt = "compliant"`: machines in reach that already hold the identity from someone
    /// else are recorded as this object's own, without a write (see `transition`).
    pub adopt: bool,
}

/// What an object held before this transition: each machine it attached an identity to,
/// with that identity. Usually one identity for all; after an interrupted change of
/// `identity_id`, machines that still carry the old one are owed a release.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Lower-cased machine ID to the identity this object attached to it.
    owned: BTreeMap<String, String>,
    /// The unique ID (`vmId`, `uniqueId`) of each machine this object attached to. A
    /// machine listed under the same ID with another unique ID was deleted and created
    /// again: it is not the one we attached to. States written before unique IDs were
    /// recorded have none here until the next refresh or apply records them.
    unique_ids: UniqueIds,
}

impl Held {
    /// `machines` (any casing) all hold `identity_id` from this object.
    pub fn new<'a>(identity_id: &str, machines: impl IntoIterator<Item = &'a String>) -> Held {
        let mut held = Held::default();
        held.add(identity_id, machines);
        held
    }

    pub fn add<'a>(&mut self, identity_id: &str, machines: impl IntoIterator<Item = &'a String>) {
        for machine in machines {
            self.owned
                .insert(machine.to_ascii_lowercase(), identity_id.to_string());
        }
    }

    /// Records the unique IDs of owned machines.
    pub fn record_unique_ids(&mut self, unique_ids: &UniqueIds) {
        self.unique_ids.extend(unique_ids.clone());
    }

    /// The unique ID recorded for `machine_id`, if any.
    pub fn unique_id_of(&self, machine_id: &str) -> Option<Digest> {
        self.unique_ids.of(machine_id)
    }

    /// Forgets the owned machines that `inventory` shows deleted and created again (same
    /// resource ID, another unique ID): whoever created them, they never got the identity
    /// from us. Returns their IDs (lower-cased).
    pub fn forget_recreated(&mut self, inventory: &[Machine]) -> BTreeSet<String> {
        let mut forgotten = BTreeSet::new();
        for machine in inventory {
            let key = machine.id.to_ascii_lowercase();
            if !self.owned.contains_key(&key) {
                continue;
            }
            if !is_same_machine(self.unique_ids.of(&key), machine.unique_id.as_deref()) {
                self.owned.remove(&key);
                self.unique_ids.forget(&key);
                forgotten.insert(key);
            }
        }
        forgotten
    }

    /// The identity this object attached to `machine_id`, if any.
    pub fn identity_on(&self, machine_id: &str) -> Option<&str> {
        if self.owned.is_empty() {
            return None;
        }
        self.owned
            .get(&machine_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The identities this object attached, each once (lower-cased).
    pub fn identities(&self) -> BTreeSet<String> {
        self.owned
            .values()
            .map(|id| id.to_ascii_lowercase())
            .collect()
    }

    /// Every owned machine (lower-cased) with its identity.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.owned.iter()
    }
}

/// The computed attributes of an object.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Outcome {
    /// Machines this object attached the identity to (or will, once applied).
    pub assigned_ids: BTreeSet<String>,
    /// Machines that hold the identity from someone else.
    pub compliant_ids: BTreeSet<String>,
    /// Machine to the reason it is left alone.
    pub skipped: BTreeMap<String, String>,
    /// In audit mode, the machines enforce would change.
    pub noncompliant_ids: BTreeSet<String>,
}

impl Outcome {
    /// The machines that must keep the identity: ours and the compliant ones.
    pub fn kept(&self) -> impl Iterator<Item = &String> {
        self.assigned_ids.iter().chain(self.compliant_ids.iter())
    }
}

/// One machine's write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Add the object's identity.
    Attach,
    /// Take back `identity_id`, which this object had attached.
    Detach { identity_id: String },
    /// Take back `from` and add the object's (new) identity, in one write.
    Swap { from: String },
}

/// What a transition plans: the computed attributes after it, and the writes that get there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    pub outcome: Outcome,
    /// Machine ID (as ARM spells it) to its write.
    pub writes: BTreeMap<String, Write>,
}

/// The identity block of a machine.
pub fn identity_block(machine: &Machine) -> IdentityBlock {
    IdentityBlock {
        kind: IdentityType::parse(machine.identity_type.as_deref()),
        user_assigned_ids: machine.user_assigned_identity_ids.clone(),
    }
}

/// The identity block as it would be without `identity_id`: what the machine looked like
/// before this object attached it. Deciding against this view keeps a machine that only
/// looks "single user-assigned" because of our own identity in scope when the identity
/// changes.
fn without(block: &IdentityBlock, identity_id: &str) -> IdentityBlock {
    let remaining: Vec<String> = block
        .user_assigned_ids
        .iter()
        .filter(|id| !id.eq_ignore_ascii_case(identity_id))
        .cloned()
        .collect();
    let kind = match (block.kind.has_system_assigned(), remaining.is_empty()) {
        (true, true) => IdentityType::SystemAssigned,
        (true, false) => IdentityType::SystemAssignedUserAssigned,
        (false, true) => IdentityType::None,
        (false, false) => IdentityType::UserAssigned,
    };
    IdentityBlock {
        kind,
        user_assigned_ids: remaining,
    }
}

/// True when this object would attach its identity to `machine` if the machine did not hold
/// it (`view`, as `transition` judges it): only such a machine can be adopted. One left a
/// single user-assigned identity without ours would be given back at the next plan.
fn would_attach(machine: &Machine, view: &IdentityBlock, settings: &Settings) -> bool {
    let bare = without(view, &settings.identity_id);
    policy::decide(
        &policy::Machine {
            id: &machine.id,
            identity: &bare,
            tags: &machine.tags,
            provisioning_state: machine.provisioning_state.as_deref(),
        },
        &settings.identity_id,
        &settings.rules,
    ) == Decision::Assign
}

/// True when `machine_id` lies inside `scope` (a subscription or a resource group).
pub fn scope_contains(scope: &Scope, machine_id: &str) -> bool {
    let prefix = format!("{scope}/").to_ascii_lowercase();
    machine_id.to_ascii_lowercase().starts_with(&prefix)
}

fn in_locations(machine: &Machine, locations: &Option<BTreeSet<String>>) -> bool {
    match locations {
        None => true,
        Some(wanted) => ids::normalized_location(&machine.location)
            .is_some_and(|location| wanted.contains(location.as_ref())),
    }
}

fn in_reach(machine: &Machine, settings: &Settings) -> bool {
    settings.kinds.contains(&machine.kind)
        && scope_contains(&settings.scope, &machine.id)
        && in_locations(machine, &settings.locations)
}

/// The policy's rule over `inventory` (the machines of the old and the new scope), given
/// what the object held before. `held` is `None` for a new object that takes nothing over.
pub fn transition(inventory: &[Machine], settings: &Settings, held: Option<&Held>) -> Transition {
    let mut result = Transition::default();
    let mut seen = BTreeSet::new();
    for machine in inventory {
        if !seen.insert(machine.id.to_ascii_lowercase()) {
            continue;
        }
        let block = identity_block(machine);
        // The identity this object attached to this machine, if it did and it is still there.
        let ours: Option<&str> = held
            .and_then(|held| held.identity_on(&machine.id))
            .filter(|identity| block.holds(identity));
        let identity_changed =
            ours.is_some_and(|identity| !identity.eq_ignore_ascii_case(&settings.identity_id));
        let release = |result: &mut Transition| {
            if let Some(old) = ours {
                result.writes.insert(
                    machine.id.clone(),
                    Write::Detach {
                        identity_id: old.to_string(),
                    },
                );
            }
        };
        if !in_reach(machine, settings) {
            release(&mut result);
            continue;
        }
        // Decide as if our identity were not there: a machine is judged as it was before this
        // object came (it must not look "single user-assigned", or compliant, because of us).
        let view = match ours {
            Some(old) => without(&block, old),
            None => block.clone(),
        };
        let decision = policy::decide(
            &policy::Machine {
                id: &machine.id,
                identity: &view,
                tags: &machine.tags,
                provisioning_state: machine.provisioning_state.as_deref(),
            },
            &settings.identity_id,
            &settings.rules,
        );
        match decision {
            // Adopted: it holds the identity already, and from now on it is ours (no write; an
            // identity this object attached before `identity_id` changed is still given back).
            Decision::Compliant
                if settings.adopt
                    && settings.mode == Mode::Enforce
                    && would_attach(machine, &view, settings) =>
            {
                result.outcome.assigned_ids.insert(machine.id.clone());
                if identity_changed {
                    release(&mut result);
                }
            }
            // Only a machine that is not ours can hold the identity in the view.
            Decision::Compliant => {
                result.outcome.compliant_ids.insert(machine.id.clone());
                release(&mut result);
            }
            // A machine of ours that is provisioning keeps what it has until it settles.
            Decision::Skip(SkipReason::NotProvisioned) if ours.is_some() && !identity_changed => {
                result.outcome.assigned_ids.insert(machine.id.clone());
            }
            Decision::Skip(reason) => {
                result
                    .outcome
                    .skipped
                    .insert(machine.id.clone(), reason.as_str().to_string());
                release(&mut result);
            }
            // Ours already: it stays, in either mode (audit changes nothing).
            Decision::Assign if ours.is_some() && !identity_changed => {
                result.outcome.assigned_ids.insert(machine.id.clone());
            }
            Decision::Assign => match settings.mode {
                Mode::Enforce => {
                    result.outcome.assigned_ids.insert(machine.id.clone());
                    let write = match ours {
                        Some(old) => Write::Swap {
                            from: old.to_string(),
                        },
                        None => Write::Attach,
                    };
                    result.writes.insert(machine.id.clone(), write);
                }
                Mode::Audit => {
                    result.outcome.noncompliant_ids.insert(machine.id.clone());
                    // Only after `identity_id` changed: the old identity is not kept.
                    release(&mut result);
                }
            },
        }
    }
    result
}

/// True when two objects' reaches share a machine that could exist: the same identity, one
/// scope inside the other, a resource type and a region in common.
pub fn reaches_overlap(a: &Settings, b: &Settings) -> bool {
    let nested = scope_contains(&a.scope, &format!("{}/", b.scope))
        || scope_contains(&b.scope, &format!("{}/", a.scope));
    let regions = match (&a.locations, &b.locations) {
        (Some(x), Some(y)) => !x.is_disjoint(y),
        _ => true,
    };
    a.identity_id.eq_ignore_ascii_case(&b.identity_id)
        && nested
        && regions
        && a.kinds.iter().any(|kind| b.kinds.contains(kind))
}

/// The machines `held` recorded as holding `identity_id` from us that `inventory` lists
/// without it: another writer took it off (lower-cased IDs). A machine deleted and created
/// again is not counted (see `Held::forget_recreated`, which runs first).
pub fn lost_since_last_apply(
    held: &Held,
    inventory: &[Machine],
    identity_id: &str,
) -> BTreeSet<String> {
    inventory
        .iter()
        .filter(|machine| {
            held.identity_on(&machine.id)
                .is_some_and(|identity| identity.eq_ignore_ascii_case(identity_id))
                && !identity_block(machine).holds(identity_id)
        })
        .map(|machine| machine.id.to_ascii_lowercase())
        .collect()
}

/// How many applies in a row each machine lost the identity at, after a refresh that found
/// `lost` (machines that lost it since our last apply) and `kept` (machines that held it from
/// us through the last apply): a loss adds one, a machine that kept it starts over, and a
/// machine neither lost nor kept (not attached again yet) keeps its count.
pub fn lost_streaks(
    before: &BTreeMap<String, u32>,
    lost: &BTreeSet<String>,
    kept: &BTreeSet<String>,
) -> BTreeMap<String, u32> {
    let mut streaks: BTreeMap<String, u32> = before
        .iter()
        .filter(|(machine, _)| !kept.contains(*machine) && !lost.contains(*machine))
        .map(|(machine, count)| (machine.clone(), *count))
        .collect();
    for machine in lost {
        let count = before.get(machine).copied().unwrap_or(0).saturating_add(1);
        streaks.insert(machine.clone(), count);
    }
    streaks
}

/// The PATCH body that takes `from` off a machine and puts `to` on, in one write.
pub fn swap_patch(current: &IdentityBlock, from: &str, to: &str) -> serde_json::Value {
    let kind = if current.kind.has_system_assigned() {
        IdentityType::SystemAssignedUserAssigned
    } else {
        IdentityType::UserAssigned
    };
    let held_spelling = current
        .user_assigned_ids
        .iter()
        .find(|id| id.eq_ignore_ascii_case(from))
        .map(String::as_str)
        .unwrap_or(from);
    let mut identities = serde_json::Map::new();
    identities.insert(held_spelling.to_string(), serde_json::Value::Null);
    identities.insert(to.to_string(), serde_json::json!({}));
    serde_json::json!({ "type": kind.as_arm(), "userAssignedIdentities": identities })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";
    const NEW: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus";
    const OLD: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/old";
    const APP: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";

    fn machine(group: &str, name: &str, kind: &str, ids: &[&str]) -> Machine {
        Machine {
            id: format!(
                "{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
            ),
            kind: MachineKind::VirtualMachine,
            location: "eastus".into(),
            tags: BTreeMap::new(),
            provisioning_state: Some("Succeeded".into()),
            identity_type: Some(kind.to_string()),
            user_assigned_identity_ids: ids.iter().map(|s| s.to_string()).collect(),
            etag: Some("\"1\"".into()),
            unique_id: Some(format!("vmid-{name}")),
        }
    }

    fn settings(scope: &str, identity: &str) -> Settings {
        Settings {
            identity_id: identity.into(),
            scope: Scope::parse(scope).unwrap(),
            locations: None,
            kinds: vec![MachineKind::VirtualMachine],
            rules: Rules {
                skip_single_user_assigned: true,
                ..Rules::default()
            },
            mode: Mode::Enforce,
            adopt: false,
        }
    }

    fn held(identity: &str, machines: &[&Machine]) -> Held {
        let ids: Vec<String> = machines.iter().map(|m| m.id.to_ascii_uppercase()).collect();
        Held::new(identity, &ids)
    }

    #[test]
    fn new_object_attaches_and_counts_existing_holders_as_compliant() {
        let bare = machine("a", "bare", "None", &[]);
        let holder = machine("a", "holder", "UserAssigned", &[NEW, APP]);
        let single = machine("a", "single", "UserAssigned", &[APP]);
        let t = transition(
            &[bare.clone(), holder.clone(), single.clone()],
            &settings(SUB, NEW),
            None,
        );
        assert_eq!(t.writes, BTreeMap::from([(bare.id.clone(), Write::Attach)]));
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([bare.id]));
        assert_eq!(t.outcome.compliant_ids, BTreeSet::from([holder.id]));
        assert_eq!(
            t.outcome.skipped.get(&single.id).unwrap(),
            "single_user_assigned"
        );
    }

    #[test]
    fn narrowing_the_scope_releases_owned_machines_outside_it() {
        let inside = machine("a", "in", "UserAssigned", &[NEW]);
        let outside = machine("b", "out", "UserAssigned", &[NEW]);
        let held = held(NEW, &[&inside, &outside]);
        let t = transition(
            &[inside.clone(), outside.clone()],
            &settings(&format!("{SUB}/resourceGroups/a"), NEW),
            Some(&held),
        );
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([inside.id]));
        assert_eq!(
            t.writes,
            BTreeMap::from([(
                outside.id,
                Write::Detach {
                    identity_id: NEW.into()
                }
            )])
        );
    }

    #[test]
    fn widening_the_scope_keeps_owned_machines_and_adds_the_new_ones() {
        let owned = machine("a", "owned", "UserAssigned", &[NEW]);
        let other_group = machine("b", "bare", "None", &[]);
        let held = held(NEW, &[&owned]);
        let t = transition(
            &[owned.clone(), other_group.clone()],
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(
            t.outcome.assigned_ids,
            BTreeSet::from([owned.id.clone(), other_group.id.clone()])
        );
        assert!(
            t.outcome.compliant_ids.is_empty(),
            "an owned machine is never compliant"
        );
        assert_eq!(t.writes, BTreeMap::from([(other_group.id, Write::Attach)]));
    }

    #[test]
    fn changing_the_identity_swaps_it_in_one_write() {
        // Before we came, this machine had no identity: after our old identity it looks like
        // "exactly one user-assigned", which must not make it skipped for the new one.
        let owned = machine("a", "owned", "UserAssigned", &[OLD]);
        let foreign = machine("a", "foreign", "UserAssigned", &[OLD, APP]);
        let held = held(OLD, &[&owned]);
        let t = transition(
            &[owned.clone(), foreign.clone()],
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(
            t.writes.get(&owned.id),
            Some(&Write::Swap { from: OLD.into() })
        );
        assert_eq!(t.writes.get(&foreign.id), Some(&Write::Attach));
        assert_eq!(
            t.outcome.assigned_ids,
            BTreeSet::from([owned.id, foreign.id])
        );
    }

    #[test]
    fn identity_change_onto_a_machine_already_holding_the_new_one_releases_the_old() {
        let owned = machine("a", "owned", "UserAssigned", &[OLD, NEW]);
        let held = held(OLD, &[&owned]);
        let t = transition(
            std::slice::from_ref(&owned),
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(t.outcome.compliant_ids, BTreeSet::from([owned.id.clone()]));
        assert_eq!(
            t.writes,
            BTreeMap::from([(
                owned.id,
                Write::Detach {
                    identity_id: OLD.into()
                }
            )])
        );
    }

    #[test]
    fn removed_resource_type_releases_its_machines() {
        let mut scale_set = machine("a", "ss", "UserAssigned", &[NEW]);
        scale_set.kind = MachineKind::ScaleSet;
        let held = held(NEW, &[&scale_set]);
        let t = transition(&[scale_set.clone()], &settings(SUB, NEW), Some(&held));
        assert_eq!(
            t.writes,
            BTreeMap::from([(
                scale_set.id,
                Write::Detach {
                    identity_id: NEW.into()
                }
            )])
        );
        assert!(t.outcome.assigned_ids.is_empty());
    }

    #[test]
    fn an_owned_machine_stripped_by_someone_else_is_no_longer_owned() {
        let stripped = machine("a", "stripped", "None", &[]);
        let held = held(NEW, &[&stripped]);
        let t = transition(
            std::slice::from_ref(&stripped),
            &settings(SUB, NEW),
            Some(&held),
        );
        // It is attached again, as a new write, and is ours again afterwards.
        assert_eq!(
            t.writes,
            BTreeMap::from([(stripped.id.clone(), Write::Attach)])
        );
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([stripped.id]));
    }

    #[test]
    fn newly_excluded_owned_machine_is_released_and_reported_skipped() {
        let owned = machine("a", "owned", "UserAssigned", &[NEW]);
        let held = held(NEW, &[&owned]);
        let mut excluding = settings(SUB, NEW);
        excluding
            .rules
            .exclude_ids
            .insert(owned.id.to_ascii_lowercase());
        let t = transition(std::slice::from_ref(&owned), &excluding, Some(&held));
        assert_eq!(t.outcome.skipped.get(&owned.id).unwrap(), "excluded_by_id");
        assert_eq!(
            t.writes,
            BTreeMap::from([(
                owned.id,
                Write::Detach {
                    identity_id: NEW.into()
                }
            )])
        );
    }

    #[test]
    fn a_release_owed_from_an_interrupted_identity_change_is_made() {
        // Swapped already: holds NEW from us. Not swapped yet: still holds OLD from us.
        let swapped = machine("a", "swapped", "UserAssigned", &[NEW]);
        let pending = machine("a", "pending", "UserAssigned", &[OLD]);
        let mut held = held(NEW, &[&swapped]);
        held.add(OLD, [&pending.id]);
        let t = transition(
            &[swapped.clone(), pending.clone()],
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(
            t.writes.get(&pending.id),
            Some(&Write::Swap { from: OLD.into() })
        );
        assert!(!t.writes.contains_key(&swapped.id));
        assert_eq!(
            t.outcome.assigned_ids,
            BTreeSet::from([swapped.id, pending.id])
        );
    }

    #[test]
    fn turning_the_single_user_assigned_skip_back_on_releases_what_only_it_let_us_attach() {
        // Before us it had exactly one user-assigned identity; we attached ours while the
        // skip was off. With the skip on again it is judged as it was: skipped, and released.
        let machine = machine("a", "single", "UserAssigned", &[APP, NEW]);
        let held = held(NEW, &[&machine]);
        let t = transition(
            std::slice::from_ref(&machine),
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(
            t.outcome.skipped.get(&machine.id).unwrap(),
            "single_user_assigned"
        );
        assert_eq!(
            t.writes,
            BTreeMap::from([(
                machine.id,
                Write::Detach {
                    identity_id: NEW.into()
                }
            )])
        );
    }

    #[test]
    fn an_owned_machine_provisioning_keeps_the_identity() {
        let mut updating = machine("a", "busy", "UserAssigned", &[NEW]);
        updating.provisioning_state = Some("Creating".into());
        let held = held(NEW, &[&updating]);
        let t = transition(
            std::slice::from_ref(&updating),
            &settings(SUB, NEW),
            Some(&held),
        );
        assert!(t.writes.is_empty());
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([updating.id]));
    }

    #[test]
    fn audit_mode_keeps_what_is_ours_and_writes_nothing() {
        let owned = machine("a", "owned", "UserAssigned", &[NEW]);
        let held = held(NEW, &[&owned]);
        let mut audit = settings(SUB, NEW);
        audit.mode = Mode::Audit;
        let t = transition(std::slice::from_ref(&owned), &audit, Some(&held));
        assert!(t.writes.is_empty());
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([owned.id]));
    }

    #[test]
    fn audit_mode_writes_nothing_new() {
        let bare = machine("a", "bare", "SystemAssigned", &[]);
        let mut audit = settings(SUB, NEW);
        audit.mode = Mode::Audit;
        let t = transition(std::slice::from_ref(&bare), &audit, None);
        assert!(t.writes.is_empty());
        assert_eq!(t.outcome.noncompliant_ids, BTreeSet::from([bare.id]));
    }

    #[test]
    fn duplicate_listings_count_once() {
        let bare = machine("a", "bare", "None", &[]);
        let t = transition(&[bare.clone(), bare.clone()], &settings(SUB, NEW), None);
        assert_eq!(t.writes.len(), 1);
    }

    /// The machine `machine` is, deleted and created again under the same ID.
    fn recreated(machine: &Machine, kind: &str, ids: &[&str]) -> Machine {
        Machine {
            identity_type: Some(kind.to_string()),
            user_assigned_identity_ids: ids.iter().map(|s| s.to_string()).collect(),
            unique_id: Some(format!("{}-again", machine.unique_id.as_deref().unwrap())),
            ..machine.clone()
        }
    }

    fn held_recorded(identity: &str, machines: &[&Machine]) -> Held {
        let mut held = held(identity, machines);
        let mut unique_ids = UniqueIds::default();
        for m in machines {
            unique_ids.record(&m.id, m.unique_id.as_deref().unwrap());
        }
        held.record_unique_ids(&unique_ids);
        held
    }

    #[test]
    fn a_machine_recreated_with_the_identity_by_its_owner_is_compliant_not_ours() {
        let owned = machine("a", "owned", "UserAssigned", &[NEW]);
        let again = recreated(&owned, "UserAssigned", &[NEW]);
        let mut held = held_recorded(NEW, &[&owned]);
        let forgotten = held.forget_recreated(std::slice::from_ref(&again));
        assert_eq!(forgotten, BTreeSet::from([owned.id.to_ascii_lowercase()]));
        assert_eq!(held.identity_on(&owned.id), None);
        let t = transition(
            std::slice::from_ref(&again),
            &settings(SUB, NEW),
            Some(&held),
        );
        assert!(t.writes.is_empty(), "{:?}", t.writes);
        assert_eq!(t.outcome.compliant_ids, BTreeSet::from([again.id]));
        assert!(t.outcome.assigned_ids.is_empty());
    }

    #[test]
    fn a_machine_recreated_without_the_identity_is_attached_as_a_new_one() {
        let owned = machine("a", "owned", "SystemAssigned, UserAssigned", &[NEW]);
        let again = recreated(&owned, "SystemAssigned", &[]);
        let mut held = held_recorded(NEW, &[&owned]);
        held.forget_recreated(std::slice::from_ref(&again));
        let t = transition(
            std::slice::from_ref(&again),
            &settings(SUB, NEW),
            Some(&held),
        );
        assert_eq!(
            t.writes,
            BTreeMap::from([(again.id.clone(), Write::Attach)])
        );
        assert_eq!(t.outcome.assigned_ids, BTreeSet::from([again.id]));
    }

    #[test]
    fn the_same_machine_or_one_without_a_recorded_unique_id_stays_ours() {
        let owned = machine("a", "owned", "UserAssigned", &[NEW]);
        let mut held = held_recorded(NEW, &[&owned]);
        assert!(held
            .forget_recreated(std::slice::from_ref(&owned))
            .is_empty());
        // A state from before unique IDs were recorded: the resource ID decides.
        let mut legacy = self::held(NEW, &[&owned]);
        let again = recreated(&owned, "UserAssigned", &[NEW]);
        assert!(legacy
            .forget_recreated(std::slice::from_ref(&again))
            .is_empty());
        assert_eq!(legacy.identity_on(&owned.id), Some(NEW));
        assert_eq!(
            held.unique_id_of(&owned.id.to_ascii_uppercase()),
            Some(Digest::of("vmid-owned"))
        );
        assert!(is_same_machine(None, Some("x")));
        assert!(is_same_machine(Some(Digest::of("X")), Some("x")));
        assert!(is_same_machine(Some(Digest::of("x")), None));
        assert!(!is_same_machine(Some(Digest::of("x")), Some("y")));
    }

    #[test]
    fn swap_patch_removes_the_old_key_as_azure_spells_it_and_adds_the_new() {
        let block = IdentityBlock {
            kind: IdentityType::SystemAssignedUserAssigned,
            user_assigned_ids: vec![OLD.to_ascii_lowercase()],
        };
        let patch = swap_patch(&block, OLD, NEW);
        assert_eq!(patch["type"], "SystemAssigned, UserAssigned");
        let identities = patch["userAssignedIdentities"].as_object().unwrap();
        assert_eq!(
            identities.get(&OLD.to_ascii_lowercase()),
            Some(&serde_json::Value::Null),
            "the old key is removed with null"
        );
        assert_eq!(patch["userAssignedIdentities"][NEW], serde_json::json!({}));
    }

    #[test]
    fn adopting_records_machines_holding_the_identity_as_ours_without_a_write() {
        let holder = machine("a", "holder", "SystemAssigned, UserAssigned", &[NEW, OLD]);
        let pair = machine("a", "pair", "UserAssigned", &[NEW, OLD]);
        let bare = machine("a", "bare", "None", &[]);
        let mut adopting = settings(SUB, NEW);
        adopting.adopt = true;
        let plan = transition(
            &[holder.clone(), bare.clone(), pair.clone()],
            &adopting,
            None,
        );
        assert_eq!(
            plan.outcome.assigned_ids,
            BTreeSet::from([holder.id.clone(), bare.id.clone()])
        );
        // Without ours, `pair` holds a single user-assigned identity: never ours to give back.
        assert_eq!(
            plan.outcome.compliant_ids,
            BTreeSet::from([pair.id.clone()])
        );
        // Adopted, it stays ours at the next plan, with nothing to write.
        let ours = held(NEW, &[&holder, &bare]);
        let next = transition(std::slice::from_ref(&holder), &adopting, Some(&ours));
        assert_eq!(
            next.outcome.assigned_ids,
            BTreeSet::from([holder.id.clone()])
        );
        assert!(next.writes.is_empty());
        assert_eq!(
            plan.writes,
            BTreeMap::from([(bare.id.clone(), Write::Attach)])
        );
        // Audit mode adopts nothing.
        adopting.mode = Mode::Audit;
        let audit = transition(std::slice::from_ref(&holder), &adopting, None);
        assert_eq!(
            audit.outcome.compliant_ids,
            BTreeSet::from([holder.id.clone()])
        );
        assert!(audit.outcome.assigned_ids.is_empty());
    }

    #[test]
    fn reaches_overlap_by_identity_scope_region_and_type() {
        let group = format!("{SUB}/resourceGroups/a");
        let a = settings(SUB, NEW);
        let b = settings(&group, NEW);
        assert!(reaches_overlap(&a, &b) && reaches_overlap(&b, &a));
        assert!(!reaches_overlap(&a, &settings(SUB, OLD)));
        let other_group = settings(&format!("{SUB}/resourceGroups/b"), NEW);
        assert!(!reaches_overlap(&b, &other_group));
        let mut east = settings(SUB, NEW);
        east.locations = Some(BTreeSet::from(["eastus".to_string()]));
        let mut west = settings(SUB, NEW);
        west.locations = Some(BTreeSet::from(["westus".to_string()]));
        assert!(!reaches_overlap(&east, &west));
        assert!(reaches_overlap(&east, &a));
        let mut sets = settings(SUB, NEW);
        sets.kinds = vec![MachineKind::ScaleSet];
        assert!(!reaches_overlap(&a, &sets));
        // A group whose name starts like another's is not inside it.
        let ab = settings(&format!("{SUB}/resourceGroups/ab"), NEW);
        assert!(!reaches_overlap(&b, &ab));
    }

    #[test]
    fn a_machine_losing_the_identity_at_each_apply_counts_up_and_one_keeping_it_starts_over() {
        let stripped = machine("a", "stripped", "None", &[]);
        let holding = machine("a", "holding", "UserAssigned", &[NEW, OLD]);
        let ours = held(NEW, &[&stripped, &holding]);
        let lost = lost_since_last_apply(&ours, &[stripped.clone(), holding.clone()], NEW);
        let stripped_id = stripped.id.to_ascii_lowercase();
        assert_eq!(lost, BTreeSet::from([stripped_id.clone()]));
        let first = lost_streaks(&BTreeMap::new(), &lost, &BTreeSet::new());
        assert_eq!(first, BTreeMap::from([(stripped_id.clone(), 1)]));
        // Refreshed again before our apply: not ours, not lost again, the count stays.
        let again = lost_streaks(&first, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(again, first);
        // Attached again, lost again: two in a row.
        let second = lost_streaks(&again, &lost, &BTreeSet::new());
        assert_eq!(second[&stripped_id], 2);
        // Attached again and kept through the apply: starts over.
        let kept = lost_streaks(&second, &BTreeSet::new(), &BTreeSet::from([stripped_id]));
        assert!(kept.is_empty());
    }
}
