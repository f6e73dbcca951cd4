//! A seeded randomized simulation: random sequences of Terraform operations, other writers,
//! faults and interrupts against the emulator, with real Terraform and the real provider,
//! and the ownership invariants checked after every step against the emulator's machines and
//! a model of who attached what (never against the provider's own word alone).
//!
//! Configuration: one `mig_builtin_identity` per region and one `mig_identity_assignment` per
//! region in `for_each`, whose arguments change at random (regions, scope, `resource_types`,
//! `exclude_tags`, `exclude_ids`, `skip_single_user_assigned`, `mode`; the estate's
//! `identity_ids` too). World: eight to eleven machines of a random mix (no
//! identity, system-assigned, one user-assigned, both, two user-assigned, tagged for
//! exclusion; VMs and scale sets; two regions, two resource groups).
//!
//! Invariants (numbered as in the issue that asked for this):
//! 1. No machine loses a user-assigned identity that someone else gave it (or that it held
//!    before the sequence), nor its system-assigned identity; the provider adds none but the
//!    built-in ones.
//! 2. After a successful apply, every machine that the configuration and the policy's rule
//!    say should hold its region's identity holds it. An audit-mode apply attaches nothing.
//! 3. After a successful apply, the next plan is clean.
//! 4. Every attachment this provider made is recorded in exactly one object's state.
//! 5. At the end, faults cleared: one apply succeeds, then removing the assignments leaves
//!    every machine exactly as its seeded block plus what others attached, minus what others
//!    removed.
//! 6. No plan or apply fails unless an injected fault or interrupt explains it, and the next
//!    fault-free apply succeeds.
//!
//! Operations (the summary table's kind names in brackets): in-place edits of every argument
//! (applied plainly, from a saved plan, with `-refresh=false`, with `-parallelism` 1 and 50;
//! `create_before_destroy`) [`Edit`], of `exclude_ids` and the estate's `identity_ids`
//! [`EditIds`]; `-replace` [`Replace`], `terraform taint` [`Taint`]; `state rm` + import by
//! ID [`Reimport`] or by an `import` block naming the resource's identity
//! [`ImportByIdentity`]; other writers (attach or detach our identity or theirs, tag for
//! exclusion, add or drop the system-assigned identity, delete, create, recreate under the
//! same name with or without our identity) [`Writer`]; transient faults (5xx, 429, dropped
//! connections, the answer to an attach lost after Azure applied it, another writer during an
//! apply)
//! [`Fault`], storms of 429s on machine calls or every ARM call [`Storm`], the emulator
//! stopped and started again with the same world on the same ports, between applies or
//! during one (refused connections meanwhile) [`Restart`]; Ctrl-C and deadlines mid-apply
//! [`Interrupt`]; (estate) a subscription whose machines the principal may no longer list,
//! and later may again [`Permission`]; (per region) the principal losing
//! `Microsoft.Authorization/locks/write` after someone removed a lock, and later getting it
//! back [`LockDenied`]. The variants are drawn from each operation's own seed ([`refine`]).
//!
//! A replacement (or taint) of the estate while a subscription's machines cannot be listed
//! must succeed like any other apply: the old object's destroy reads the machines it recorded
//! there by their ID (soak seeds 1023, 1025, 1111, 1113; `soak_regressions.rs`).
//!
//! Safeguards the CI seeds guard: each one below, removed alone from the provider, makes at
//! least one of them fail. `scripts/sim-mutations` patches each into the tracked source,
//! builds the provider, copies the mutant binary out and restores the source at once, then
//! runs the CI seeds against that binary; last run on 2026-12-07 with [`CI_SEEDS`] as they
//! are, the mutation, then each seed that caught it (step, invariant):
//! - a machine holding the identity from someone else counted as ours (`Compliant` planned as
//!   `assigned_ids` in `ownership::transition`): every seed, invariant 3 (4: step 2;
//!   1190: 1; 365: 5; 31907: 2);
//! - the answer to an attach lost after Azure applied it, and the write never proven ours
//!   (`judge_lost_answer` without `compute::is_exactly_our_write`, so every lost attach is
//!   uncertain): invariant 4, an identity we attached recorded nowhere (1190: step 6;
//!   365: 3);
//! - a machine deleted and created again under its name taken for the same one
//!   (`unique_ids::is_same_machine` always true): invariant 4 (4: step 7; 1190: 1; 365: 5);
//! - an owned machine its owner tagged for exclusion dropped from the record at refresh (the
//!   keep-ours loop of `engine::assignment`'s refresh disabled): invariant 4 (4: step 1;
//!   1190: 4);
//! - a machine another writer attached just before our write claimed after the 412 re-read
//!   (`write_machine` answering `Done` where it finds the identity there): invariant 4
//!   (31907: step 2).
//!
//! Running it: `make test` runs [`CI_SEEDS`]; a failing sequence prints its seed, shrinks to
//! the shortest failing prefix it can find (dropping operations one at a time for at most
//! `SIM_SHRINK_SECONDS`, default 120), and prints the one-line replay command.
//! `make soak` runs sequences for `SOAK_SECONDS` from `SOAK_SEED` (random when unset) and
//! prints a summary table.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

/// The subscriptions of the world: the per-region shape uses the first; the estate shape
/// all three, under one management group.
const SUBS: [&str; 3] = [
    "00000000-0000-0000-0000-000000000001",
    "00000000-0000-0000-0000-000000000002",
    "00000000-0000-0000-0000-000000000003",
];
const MANAGEMENT_GROUP: &str = "mg-sim";
const REGIONS: [&str; 2] = ["eastus", "westeurope"];
const GROUPS: [&str; 2] = ["rg-a", "rg-b"];
const FOREIGN: [&str; 2] = ["id-app1", "id-app2"];
const API: &str = "2024-07-01";
const EXCLUDE_TAG: (&str, &str) = ("mig-exclude", "true");

/// The seeds `make test` runs, each a sequence of [`CI_STEPS`] operations: the first two in
/// the per-region shape, the others in the estate's. Chosen so that together they draw every
/// operation the safeguards in the module's comment answer to: an owned machine tagged for
/// exclusion (4, 1190), one recreated under its name with the identity (4, 1190, 365), the
/// answer to an attach lost after Azure applied it (1190, 365), another writer attaching
/// during an apply (31907), `-replace` and taint (4, 1190, 365, 31907; 31907 taints while a
/// subscription cannot be listed), both imports, a deadline mid-apply (4, 365) and an
/// unlistable subscription (365, 31907). (Seed 31907 replaced 535 on 2026-12-07: none of the
/// four drew another writer during an apply since [`refine`].)
const CI_SEEDS: [u64; 4] = [4, 1190, 365, 31907];
const CI_STEPS: usize = 8;

// ---------------------------------------------------------------------------------------------
// Randomness that replays: SplitMix64, stable across crate versions (a seed printed today must
// replay the same sequence next year).
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// The model: what each machine should carry from others, and the configuration
// ---------------------------------------------------------------------------------------------

fn subscription(sub: &str) -> String {
    format!("/subscriptions/{sub}")
}

fn group_id(sub: &str, group: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{group}")
}

/// An identity others give machines of `sub` (each subscription has its own).
fn foreign_id(sub: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        group_id(sub, "rg-ids")
    )
    .to_ascii_lowercase()
}

fn builtin_id(sub: &str, region: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}",
        group_id(sub, "Built-In-Identity-RG")
    )
    .to_ascii_lowercase()
}

/// Which resources the configuration holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `mig_builtin_identity` and `mig_identity_assignment` per region (`for_each`).
    PerRegion,
    /// One `mig_estate_assignment` over a management group of three subscriptions, whose
    /// built-in identities the policy made (seeded).
    Estate,
}

impl Shape {
    fn parse(text: &str) -> Shape {
        match text {
            "estate" => Shape::Estate,
            _ => Shape::PerRegion,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::Estate => "estate",
            Shape::PerRegion => "per-region",
        }
    }
}

fn is_builtin(id: &str) -> bool {
    id.contains("/userassignedidentities/built-in-identity-")
}

/// One machine as the model knows it: what others gave it, whatever the provider did.
#[derive(Clone, Debug)]
struct SimMachine {
    subscription: &'static str,
    name: String,
    group: &'static str,
    scale_set: bool,
    location: &'static str,
    system: bool,
    /// User-assigned identities other than the built-in ones (lower-cased IDs).
    foreign: BTreeSet<String>,
    /// Built-in identities that someone else attached (lower-cased IDs).
    others_builtin: BTreeSet<String>,
    excluded: bool,
    exists: bool,
}

impl SimMachine {
    fn id(&self) -> String {
        let kind = if self.scale_set {
            "virtualMachineScaleSets"
        } else {
            "virtualMachines"
        };
        format!(
            "{}/providers/Microsoft.Compute/{kind}/{}",
            group_id(self.subscription, self.group),
            self.name
        )
    }

    /// Its own subscription-and-region built-in identity.
    fn builtin(&self) -> String {
        builtin_id(self.subscription, self.location)
    }

    fn random(rng: &mut Rng, shape: Shape, name: String) -> SimMachine {
        let subscription = match shape {
            Shape::PerRegion => SUBS[0],
            Shape::Estate => *rng.pick(&SUBS),
        };
        let mut machine = SimMachine {
            subscription,
            name,
            group: GROUPS[rng.below(GROUPS.len())],
            scale_set: rng.chance(25),
            location: REGIONS[rng.below(REGIONS.len())],
            system: false,
            foreign: BTreeSet::new(),
            others_builtin: BTreeSet::new(),
            excluded: rng.chance(15),
            exists: true,
        };
        // The mix of identity blocks the policy's rule tells apart.
        match rng.below(6) {
            0 => {}
            1 => machine.system = true,
            2 => {
                machine.foreign.insert(foreign_id(subscription, FOREIGN[0]));
            }
            3 => {
                machine.system = true;
                machine.foreign.insert(foreign_id(subscription, FOREIGN[1]));
            }
            4 => {
                machine.foreign.insert(foreign_id(subscription, FOREIGN[0]));
                machine.foreign.insert(foreign_id(subscription, FOREIGN[1]));
            }
            _ => machine.system = rng.chance(50),
        }
        machine
    }

    /// Every user-assigned identity others gave it.
    fn others(&self) -> BTreeSet<String> {
        self.foreign.union(&self.others_builtin).cloned().collect()
    }

    fn identity_json(&self, user_assigned: &BTreeSet<String>) -> Json {
        let kind = match (self.system, user_assigned.is_empty()) {
            (true, true) => "SystemAssigned",
            (true, false) => "SystemAssigned, UserAssigned",
            (false, true) => "None",
            (false, false) => "UserAssigned",
        };
        json!({"type": kind, "user_assigned": user_assigned.iter().collect::<Vec<_>>()})
    }

    fn spec(&self) -> Json {
        let mut tags = json!({"owner": "sim"});
        if self.excluded {
            tags[EXCLUDE_TAG.0] = json!(EXCLUDE_TAG.1);
        }
        let mut spec = json!({
            "name": self.name, "resource_group": self.group,
            "location": self.location, "tags": tags,
        });
        let others = self.others();
        if self.system || !others.is_empty() {
            spec["identity"] = self.identity_json(&others);
        }
        spec
    }
}

/// What the assignments cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// The per-region shape: the subscription; the estate: the management group.
    Wide,
    /// The estate narrowed to the first subscription.
    FirstSubscription,
    /// One resource group of the first subscription.
    Group(&'static str),
}

/// The arguments of the assignments: every `mig_identity_assignment` instance (one per
/// region in `regions`), or the one `mig_estate_assignment`.
#[derive(Clone, Debug, PartialEq)]
struct Config {
    shape: Shape,
    regions: BTreeSet<&'static str>,
    reach: Reach,
    exclude_tags: bool,
    /// `None`: the argument left out (its default, true).
    skip_single: Option<bool>,
    audit: bool,
    /// `None`: both kinds (the default); `Some(true)` scale sets only.
    only_scale_sets: Option<bool>,
    /// `lifecycle { create_before_destroy = true }` on the assignments.
    create_before_destroy: bool,
    /// `timeouts` of one second on the assignments: a deadline that fires mid-apply.
    short_deadline: bool,
    /// The assignments are in the configuration at all (false at the very end).
    assignments: bool,
    /// `exclude_ids`: machines left out by ID (their IDs as [`SimMachine::id`] spells them).
    exclude_ids: BTreeSet<String>,
    /// The estate's `identity_ids`, as the `(subscription, region)` keys it names, each with
    /// that subscription's built-in identity; `None`: the argument left out (every one).
    identity_ids: Option<BTreeSet<(&'static str, &'static str)>>,
}

impl Config {
    fn initial(shape: Shape) -> Config {
        Config {
            shape,
            regions: REGIONS.iter().copied().collect(),
            reach: Reach::Wide,
            exclude_tags: true,
            skip_single: None,
            audit: false,
            only_scale_sets: None,
            create_before_destroy: false,
            short_deadline: false,
            assignments: true,
            exclude_ids: BTreeSet::new(),
            identity_ids: None,
        }
    }

    /// One of the ID arguments changed at random: a machine of `machines` put into or taken
    /// out of `exclude_ids`, or (estate) `identity_ids` given, narrowed, widened or left out.
    fn edited_ids(&self, rng: &mut Rng, machines: &[SimMachine]) -> Config {
        let mut next = self.clone();
        if self.shape == Shape::Estate && rng.chance(50) {
            let every: BTreeSet<(&'static str, &'static str)> = SUBS
                .iter()
                .flat_map(|sub| REGIONS.iter().map(move |region| (*sub, *region)))
                .collect();
            next.identity_ids = match &self.identity_ids {
                None => Some(every),
                Some(_) if rng.chance(30) => None,
                Some(named) => {
                    let mut named = named.clone();
                    let key = *rng.pick(&every.iter().copied().collect::<Vec<_>>());
                    if !named.remove(&key) {
                        named.insert(key);
                    }
                    Some(named)
                }
            };
            return next;
        }
        let existing: Vec<String> = machines
            .iter()
            .filter(|m| m.exists)
            .map(SimMachine::id)
            .collect();
        if let Some(id) = (!existing.is_empty()).then(|| rng.pick(&existing).clone()) {
            if !next.exclude_ids.remove(&id) {
                next.exclude_ids.insert(id);
            }
        }
        next
    }

    /// `exclude_ids` and `identity_ids`, as arguments (one per line; empty when left out).
    fn id_arguments(&self) -> String {
        let mut lines = String::new();
        if !self.exclude_ids.is_empty() {
            let ids: Vec<String> = self
                .exclude_ids
                .iter()
                .map(|id| format!("\"{id}\""))
                .collect();
            lines.push_str(&format!("  exclude_ids = [{}]\n", ids.join(", ")));
        }
        if let (Some(named), Shape::Estate) = (&self.identity_ids, self.shape) {
            lines.push_str("  identity_ids = {\n");
            for (sub, region) in named {
                lines.push_str(&format!(
                    "    \"{sub}/{region}\" = \"{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}\"\n",
                    group_id(sub, "Built-In-Identity-RG")
                ));
            }
            lines.push_str("  }\n");
        }
        lines
    }

    /// Whether the ID arguments leave `machine` out: excluded by ID, or (estate) its
    /// subscription and region not named in `identity_ids`.
    fn left_out_by_ids(&self, machine: &SimMachine) -> bool {
        self.exclude_ids.contains(&machine.id())
            || self
                .identity_ids
                .as_ref()
                .is_some_and(|named| !named.contains(&(machine.subscription, machine.location)))
    }

    /// One argument changed at random.
    fn edited(&self, rng: &mut Rng) -> Config {
        let mut next = self.clone();
        match rng.below(7) {
            6 => next.create_before_destroy = !next.create_before_destroy,
            0 => {
                let region = *rng.pick(&REGIONS);
                // An estate's `locations` may not be empty; leaving every region out is the
                // per-region shape's `for_each` going empty.
                if !next.regions.remove(region)
                    || (next.shape == Shape::Estate && next.regions.is_empty())
                {
                    next.regions.insert(region);
                }
            }
            1 => {
                next.reach = match (next.reach, next.shape) {
                    (Reach::Wide, Shape::Estate) => Reach::FirstSubscription,
                    (Reach::Wide, Shape::PerRegion) | (Reach::FirstSubscription, _) => {
                        Reach::Group(GROUPS[rng.below(GROUPS.len())])
                    }
                    (Reach::Group(_), _) => Reach::Wide,
                }
            }
            2 => next.exclude_tags = !next.exclude_tags,
            3 => {
                next.skip_single = match next.skip_single {
                    None => Some(false),
                    Some(false) => Some(true),
                    Some(true) => None,
                }
            }
            4 => next.audit = !next.audit,
            _ => {
                next.only_scale_sets = match next.only_scale_sets {
                    None => Some(rng.chance(50)),
                    Some(_) => None,
                }
            }
        }
        next
    }

    fn scope(&self) -> String {
        match (self.reach, self.shape) {
            (Reach::Group(group), _) => group_id(SUBS[0], group),
            (Reach::Wide, Shape::Estate) => {
                format!("/providers/Microsoft.Management/managementGroups/{MANAGEMENT_GROUP}")
            }
            _ => subscription(SUBS[0]),
        }
    }

    /// The arguments both resources share, one per line.
    fn shared_arguments(&self) -> String {
        let mut lines = self.id_arguments();
        if self.exclude_tags {
            lines.push_str(&format!(
                "  exclude_tags = {{ \"{}\" = \"{}\" }}\n",
                EXCLUDE_TAG.0, EXCLUDE_TAG.1
            ));
        }
        if let Some(skip) = self.skip_single {
            lines.push_str(&format!("  skip_single_user_assigned = {skip}\n"));
        }
        if self.audit {
            lines.push_str("  mode = \"audit\"\n");
        }
        if let Some(scale_sets) = self.only_scale_sets {
            let kind = if scale_sets {
                "virtualMachineScaleSets"
            } else {
                "virtualMachines"
            };
            lines.push_str(&format!("  resource_types = [\"{kind}\"]\n"));
        }
        if self.short_deadline {
            lines.push_str("  timeouts {\n    create = \"1s\"\n    update = \"1s\"\n    delete = \"1s\"\n  }\n");
        }
        if self.create_before_destroy {
            lines.push_str("  lifecycle {\n    create_before_destroy = true\n  }\n");
        }
        lines
    }

    fn hcl(&self) -> String {
        let regions: Vec<String> = self.regions.iter().map(|r| format!("\"{r}\"")).collect();
        match self.shape {
            Shape::PerRegion => {
                let mut body = String::from(
                    "resource \"mig_builtin_identity\" \"region\" {\n  for_each = toset([\"eastus\", \"westeurope\"])\n  location = each.key\n}\n",
                );
                if self.assignments {
                    body.push_str(&format!(
                        "resource \"mig_identity_assignment\" \"region\" {{\n  for_each    = toset([{}])\n  identity_id = mig_builtin_identity.region[each.key].id\n  scope       = \"{}\"\n  locations   = [each.key]\n{}}}\n",
                        regions.join(", "),
                        self.scope(),
                        self.shared_arguments()
                    ));
                }
                body
            }
            Shape::Estate if !self.assignments => String::new(),
            Shape::Estate => {
                let locations = if self.regions.len() == REGIONS.len() {
                    String::new()
                } else {
                    format!("  locations = [{}]\n", regions.join(", "))
                };
                format!(
                    "resource \"mig_estate_assignment\" \"estate\" {{\n  scope = \"{}\"\n{locations}{}}}\n",
                    self.scope(),
                    self.shared_arguments()
                )
            }
        }
    }

    fn reaches(&self, machine: &SimMachine) -> bool {
        let subscription_reached = match self.reach {
            Reach::Wide => true,
            Reach::FirstSubscription => machine.subscription == SUBS[0],
            Reach::Group(group) => machine.subscription == SUBS[0] && machine.group == group,
        };
        subscription_reached
            && self.regions.contains(machine.location)
            && self
                .only_scale_sets
                .is_none_or(|scale_sets| scale_sets == machine.scale_set)
    }

    /// The policy's rule, as the model reads it: whether `machine` must hold its
    /// subscription-and-region identity after an enforce apply of this configuration.
    fn must_hold(&self, machine: &SimMachine) -> bool {
        if !self.assignments || self.audit || !self.reaches(machine) {
            return false;
        }
        if machine.others_builtin.contains(&machine.builtin()) {
            return true;
        }
        if self.exclude_tags && machine.excluded || self.left_out_by_ids(machine) {
            return false;
        }
        let single_user_assigned = !machine.system && machine.others().len() == 1;
        !(self.skip_single.unwrap_or(true) && single_user_assigned)
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Edit,
    Replace,
    Reimport,
    Writer,
    Fault,
    Interrupt,
    Permission,
    // Variants of the kinds above, drawn by [`refine`]:
    /// An `Edit` of `exclude_ids` or (estate) `identity_ids`.
    EditIds,
    /// A `Replace` by `terraform taint`, then an apply.
    Taint,
    /// A `Reimport` by an `import` block naming the resource's identity (Terraform 1.12+).
    ImportByIdentity,
    /// A `Fault`: a storm of 429s on reads and writes through an apply.
    Storm,
    /// A `Fault`: the emulator stops and comes back with the same world, between applies or
    /// during one.
    Restart,
    /// A `Permission` change of the per-region shape: the principal loses
    /// `Microsoft.Authorization/locks/write` (and someone removes a lock), or gets it back.
    LockDenied,
}

impl Kind {
    /// Every kind, in the summary table's order.
    const ALL: [Kind; 13] = [
        Kind::Edit,
        Kind::EditIds,
        Kind::Replace,
        Kind::Taint,
        Kind::Reimport,
        Kind::ImportByIdentity,
        Kind::Writer,
        Kind::Fault,
        Kind::Storm,
        Kind::Restart,
        Kind::Interrupt,
        Kind::Permission,
        Kind::LockDenied,
    ];
}

/// An operation turned into one of its variants, drawn from its own seed (so the draws of
/// [`sequence`], and what the operations before it do, stay as they were).
fn refine(op: Op, shape: Shape) -> Op {
    let mut rng = Rng(op.seed ^ 0x7A41_A175_0B5E_55ED);
    let kind = match op.kind {
        Kind::Edit if rng.chance(25) => Kind::EditIds,
        Kind::Replace if rng.chance(40) => Kind::Taint,
        Kind::Reimport if rng.chance(50) => Kind::ImportByIdentity,
        Kind::Fault => match rng.below(100) {
            0..=29 => Kind::Restart,
            30..=44 => Kind::Storm,
            _ => Kind::Fault,
        },
        Kind::Permission if shape == Shape::PerRegion => Kind::LockDenied,
        kind => kind,
    };
    Op { kind, ..op }
}

/// One operation: its kind and the seed its random arguments are drawn from when it runs
/// (against the world as it is then, so a shrunk sequence still makes sense).
#[derive(Clone, Copy, Debug)]
struct Op {
    kind: Kind,
    seed: u64,
}

fn sequence(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    (0..steps)
        .map(|_| {
            let kind = match rng.below(100) {
                0..=34 => Kind::Edit,
                35..=44 => Kind::Replace,
                45..=51 => Kind::Reimport,
                52..=79 => Kind::Writer,
                80..=89 => Kind::Fault,
                90..=95 => Kind::Interrupt,
                _ => Kind::Permission,
            };
            Op {
                kind,
                seed: rng.next(),
            }
        })
        .collect()
}

/// An invariant broken: which, at which step, and what was seen.
#[derive(Debug)]
struct Violation {
    invariant: u8,
    step: usize,
    detail: String,
}

type Checked = Result<(), Violation>;

// ---------------------------------------------------------------------------------------------
// A running sequence: the emulator, the Terraform working directory and the model
// ---------------------------------------------------------------------------------------------

struct Sim {
    emulator: Emulator,
    work: Workdir,
    machines: Vec<SimMachine>,
    config: Config,
    step: usize,
    log: Vec<String>,
    next_name: usize,
    /// Each machine's user-assigned identities before the last apply.
    held_before: BTreeMap<String, BTreeSet<String>>,
    /// Faults that stay until a permission operation lifts them (unreadable subscriptions).
    standing: Vec<Json>,
    /// Subscriptions whose machines the principal may not list now.
    unreadable: BTreeSet<&'static str>,
    /// The principal may not write locks now (Contributor in place of Owner).
    locks_denied: bool,
}

/// The actual identity block of a machine: system-assigned or not, and lower-cased
/// user-assigned IDs; `None` when it does not exist.
fn actual(emulator: &Emulator, id: &str) -> Option<(bool, BTreeSet<String>, String)> {
    let machine = emulator.arm_get(id, API)?;
    let kind = machine["identity"]["type"]
        .as_str()
        .unwrap_or("None")
        .to_string();
    let ids = machine["identity"]["userAssignedIdentities"]
        .as_object()
        .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let state = machine["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Succeeded")
        .to_string();
    Some((kind.contains("SystemAssigned"), ids, state))
}

impl Sim {
    fn start(seed: u64, shape: Shape) -> Sim {
        let mut rng = Rng(seed ^ 0x5EED);
        let count = 8 + rng.below(4);
        let machines: Vec<SimMachine> = (0..count)
            .map(|i| SimMachine::random(&mut rng, shape, format!("m{i}")))
            .collect();
        let emulator = Emulator::start_restartable(&scenario(shape, &machines));
        let config = Config::initial(shape);
        let work = Workdir::new(&emulator.configuration(&config.hcl()));
        work.init();
        Sim {
            emulator,
            work,
            machines,
            config,
            step: 0,
            log: Vec::new(),
            next_name: count,
            held_before: BTreeMap::new(),
            standing: Vec::new(),
            unreadable: BTreeSet::new(),
            locks_denied: false,
        }
    }

    fn violation(&self, invariant: u8, detail: String) -> Violation {
        Violation {
            invariant,
            step: self.step,
            detail,
        }
    }

    fn terraform(&self, args: &[&str]) -> acceptance_tests::CommandOutput {
        self.work.run(args)
    }

    /// A plain apply of the current configuration that must succeed (invariant 6), then
    /// invariants 2, 3 and 4.
    fn apply_checked(&mut self, args: &[&str]) -> Checked {
        self.remember_holdings();
        let mut command = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
        command.extend_from_slice(args);
        let output = self.terraform(&command);
        if !output.success {
            return Err(self.violation(
                6,
                format!(
                    "terraform {} failed with no fault to explain it:\n{}",
                    command.join(" "),
                    tail(&output.all())
                ),
            ));
        }
        self.after_successful_apply()
    }

    /// What each machine holds now: an audit apply must add nothing to it.
    fn remember_holdings(&mut self) {
        self.held_before = self
            .machines
            .iter()
            .filter(|m| m.exists)
            .map(|m| {
                (
                    m.id(),
                    actual(&self.emulator, &m.id()).unwrap_or_default().1,
                )
            })
            .collect();
    }

    fn after_successful_apply(&mut self) -> Checked {
        self.check_others_kept()?;
        self.check_converged()?;
        self.check_recorded_once()?;
        self.check_plan_clean()
    }

    // --- invariants --------------------------------------------------------------------------

    /// 1: every identity others gave a machine is still there; the provider added no
    /// user-assigned identity but a built-in one, and kept the system-assigned one as it was.
    fn check_others_kept(&self) -> Checked {
        for machine in self.machines.iter().filter(|m| m.exists) {
            let Some((system, ids, _)) = actual(&self.emulator, &machine.id()) else {
                return Err(self.violation(1, format!("{} disappeared", machine.id())));
            };
            let foreign: BTreeSet<String> =
                ids.iter().filter(|id| !is_builtin(id)).cloned().collect();
            if foreign != machine.foreign || system != machine.system {
                return Err(self.violation(
                    1,
                    format!(
                        "{}: others gave it system={} {:?}; it holds system={system} {foreign:?}",
                        machine.id(),
                        machine.system,
                        machine.foreign
                    ),
                ));
            }
            if let Some(lost) = machine.others_builtin.iter().find(|id| !ids.contains(*id)) {
                return Err(self.violation(
                    1,
                    format!("{}: lost {lost}, which someone else attached", machine.id()),
                ));
            }
        }
        Ok(())
    }

    /// 2: after a successful apply every machine the rule names holds its identity; an
    /// audit-mode apply attached nothing.
    fn check_converged(&self) -> Checked {
        for machine in self.machines.iter().filter(|m| m.exists) {
            let (_, ids, _) = actual(&self.emulator, &machine.id()).unwrap_or_default();
            let ours = machine.builtin();
            if self.unreadable.contains(machine.subscription) {
                // Kept as recorded, with a warning: nothing there is planned.
                continue;
            }
            if self.config.must_hold(machine) && !ids.contains(&ours) {
                return Err(self.violation(
                    2,
                    format!(
                        "{} should hold {ours} under {:?}; it holds {ids:?}",
                        machine.id(),
                        self.config
                    ),
                ));
            }
        }
        if self.config.audit {
            for machine in self.machines.iter().filter(|m| m.exists) {
                let (_, ids, _) = actual(&self.emulator, &machine.id()).unwrap_or_default();
                let before = self
                    .held_before
                    .get(&machine.id())
                    .cloned()
                    .unwrap_or_default();
                if let Some(gained) = ids.iter().find(|id| {
                    is_builtin(id) && !before.contains(*id) && !machine.others_builtin.contains(*id)
                }) {
                    return Err(self.violation(
                        2,
                        format!("an audit-mode apply attached {gained} to {}", machine.id()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// 4: each machine holding a built-in identity that nobody else gave it is in exactly one
    /// object's `assigned_ids`; one holding its identity from someone else is in none.
    fn check_recorded_once(&self) -> Checked {
        // Read after a refresh: right after an apply, a machine another writer attached
        // meanwhile is still listed where the plan put it, and known as not ours only in the
        // private state, until the next refresh moves it (as documented).
        let refreshed = self.terraform(&[
            "apply",
            "-refresh-only",
            "-auto-approve",
            "-input=false",
            "-no-color",
        ]);
        if !refreshed.success {
            return Err(self.violation(6, format!("a refresh failed:\n{}", tail(&refreshed.all()))));
        }
        let resources = self.work.state_resources();
        let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
        let mut count = |assigned: &Json| {
            for id in assigned
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
            {
                *recorded.entry(id.to_ascii_lowercase()).or_default() += 1;
            }
        };
        for (address, values) in &resources {
            if address.starts_with("mig_identity_assignment.") {
                count(&values["assigned_ids"]);
            }
            if address.starts_with("mig_estate_assignment.") {
                for bucket in values["buckets"]
                    .as_object()
                    .into_iter()
                    .flat_map(|b| b.values())
                {
                    count(&bucket["assigned_ids"]);
                }
            }
        }
        for machine in self
            .machines
            .iter()
            .filter(|m| m.exists && !self.unreadable.contains(m.subscription))
        {
            let (_, ids, _) = actual(&self.emulator, &machine.id()).unwrap_or_default();
            let ours = ids
                .iter()
                .any(|id| is_builtin(id) && !machine.others_builtin.contains(id));
            let count = recorded
                .get(&machine.id().to_ascii_lowercase())
                .copied()
                .unwrap_or(0);
            let theirs = machine.others_builtin.contains(&machine.builtin());
            if theirs && count != 0 {
                return Err(self.violation(
                    4,
                    format!(
                        "{} holds its identity from someone else, and {count} objects record it as theirs",
                        machine.id()
                    ),
                ));
            }
            if ours && count != 1 {
                return Err(self.violation(
                    4,
                    format!(
                    "{} holds an identity this provider attached, and {count} objects record it",
                    machine.id()
                ),
                ));
            }
        }
        Ok(())
    }

    /// 3: the plan after a successful apply is clean.
    fn check_plan_clean(&self) -> Checked {
        let output = self.terraform(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
        if output.success {
            return Ok(());
        }
        Err(self.violation(
            3,
            format!(
                "the plan after a successful apply is not clean:\n{}",
                tail(&output.all())
            ),
        ))
    }

    // --- operations --------------------------------------------------------------------------

    fn run(&mut self, op: Op) -> Checked {
        let mut rng = Rng(op.seed);
        match op.kind {
            Kind::Edit => self.edit(&mut rng),
            Kind::Replace => self.replace(&mut rng),
            Kind::Reimport => self.reimport(&mut rng),
            Kind::Writer => self.other_writer(&mut rng),
            Kind::Fault => self.fault(&mut rng),
            Kind::Interrupt => self.interrupt(&mut rng),
            Kind::Permission => self.permission(&mut rng),
            Kind::EditIds => self.edit_ids(&mut rng),
            Kind::Taint => self.taint(&mut rng),
            Kind::ImportByIdentity => self.import_by_identity(&mut rng),
            Kind::Storm => self.storm(&mut rng),
            Kind::Restart => self.restart(&mut rng),
            Kind::LockDenied => self.toggle_lock_permission(&mut rng),
        }
    }

    fn set_config(&mut self, config: Config) {
        self.work
            .write("main.tf", &self.emulator.configuration(&config.hcl()));
        self.config = config;
    }

    fn edit(&mut self, rng: &mut Rng) -> Checked {
        let config = self.config.edited(rng);
        self.log.push(format!("edit -> {config:?}"));
        self.set_config(config);
        match rng.below(5) {
            0 => self.apply_checked(&[]),
            1 => self.apply_checked(&["-parallelism=1"]),
            4 => self.apply_checked(&["-parallelism=50"]),
            2 => {
                self.log.push("  from a saved plan".into());
                self.remember_holdings();
                let plan = self.terraform(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
                if !plan.success {
                    return Err(self.violation(6, format!("plan failed:\n{}", tail(&plan.all()))));
                }
                let apply = self.terraform(&["apply", "-input=false", "-no-color", "tfplan"]);
                if !apply.success {
                    return Err(self.violation(
                        6,
                        format!("applying the saved plan failed:\n{}", tail(&apply.all())),
                    ));
                }
                self.after_successful_apply()
            }
            _ => {
                // Without a refresh the apply plans from state: drift is the next apply's.
                self.log
                    .push("  with -refresh=false, then a plain apply".into());
                let output = self.terraform(&[
                    "apply",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    "-refresh=false",
                ]);
                if !output.success {
                    return Err(self.violation(
                        6,
                        format!("apply -refresh=false failed:\n{}", tail(&output.all())),
                    ));
                }
                self.check_others_kept()?;
                self.apply_checked(&[])
            }
        }
    }

    /// The assignment instances of the configuration, each with the region it covers
    /// (`None`: the estate, every region).
    fn instances(&self) -> Vec<(String, Option<&'static str>)> {
        if !self.config.assignments {
            return Vec::new();
        }
        match self.config.shape {
            Shape::Estate => vec![("mig_estate_assignment.estate".to_string(), None)],
            Shape::PerRegion => self
                .config
                .regions
                .iter()
                .map(|region| {
                    (
                        format!("mig_identity_assignment.region[\"{region}\"]"),
                        Some(*region),
                    )
                })
                .collect(),
        }
    }

    fn replace(&mut self, rng: &mut Rng) -> Checked {
        let instances = self.instances();
        if instances.is_empty() {
            return self.edit(rng);
        }
        let (address, region) = rng.pick(&instances).clone();
        self.log.push(format!("-replace={address}"));
        if self.config.create_before_destroy && acceptance_tests::terraform_minor() < 16 {
            // Documented: before Terraform 1.16 the new object's create cannot learn what the
            // old one attached, so the machines it keeps holding the identity are its
            // `compliant_ids` (never stripped, left holding it at destroy): to the model,
            // someone else's, as after an import. In audit mode too: the rule, not the mode,
            // says which machines the new object wants kept. (Soak seeds 1014, 1015, 1022,
            // 1030, 1031, 1032, 1056, ...: invariant 4 read them as ours, recorded nowhere.)
            let rule = Config {
                audit: false,
                ..self.config.clone()
            };
            for index in 0..self.machines.len() {
                let machine = &self.machines[index];
                let ours = machine.builtin();
                let covered = region.is_none_or(|region| region == machine.location);
                if !machine.exists
                    || !covered
                    || self.unreadable.contains(machine.subscription)
                    || !rule.must_hold(machine)
                {
                    continue;
                }
                let (_, ids, _) = actual(&self.emulator, &machine.id()).unwrap_or_default();
                if ids.contains(&ours) {
                    self.machines[index].others_builtin.insert(ours);
                }
            }
        }
        self.apply_replacing(&address, &[&format!("-replace={address}")])
    }

    fn reimport(&mut self, rng: &mut Rng) -> Checked {
        let instances = self.instances();
        if instances.is_empty() {
            return self.edit(rng);
        }
        let (address, region) = rng.pick(&instances).clone();
        self.log.push(format!("state rm + import {address}"));
        self.forget_for_import(&address, region)?;
        let import_id = match region {
            Some(region) => {
                let identity = self
                    .work
                    .state_resources()
                    .get(&format!("mig_builtin_identity.region[\"{region}\"]"))
                    .and_then(|r| r["id"].as_str().map(String::from))
                    .unwrap_or_else(|| builtin_id(SUBS[0], region));
                format!("{}|{identity}", self.config.scope())
            }
            None => self.config.scope(),
        };
        let imported =
            self.terraform(&["import", "-input=false", "-no-color", &address, &import_id]);
        if !imported.success {
            return Err(self.violation(6, format!("import failed:\n{}", tail(&imported.all()))));
        }
        self.apply_checked(&[])
    }

    /// `terraform state rm` of the instance at `address` (covering `region`; `None`: the
    /// estate, every region), before it is imported again. Import records nothing as ours
    /// (documented): whoever imports takes over what the identity is attached to. The model
    /// says so: the machines holding it now are someone else's.
    fn forget_for_import(&mut self, address: &str, region: Option<&'static str>) -> Checked {
        let removed = self.terraform(&["state", "rm", "-no-color", address]);
        if !removed.success {
            return Err(self.violation(6, format!("state rm failed:\n{}", tail(&removed.all()))));
        }
        for machine in self.machines.iter_mut().filter(|m| m.exists) {
            let ours = machine.builtin();
            let covered = region.is_none_or(|region| region == machine.location);
            let (_, ids, _) = actual(&self.emulator, &machine.id()).unwrap_or_default();
            if covered && ids.contains(&ours) {
                machine.others_builtin.insert(ours);
            }
        }
        Ok(())
    }

    fn fault(&mut self, rng: &mut Rng) -> Checked {
        // Transient faults ARM produces: each must be ridden out or fail the apply cleanly.
        if rng.chance(25) {
            return self.writer_during_apply(rng);
        }
        let choice = rng.below(6);
        let mut fault = match choice {
            0 => {
                json!({"kind": "status", "status": 503, "method": "PATCH", "path_contains": "/Microsoft.Compute/", "count": 1})
            }
            1 => {
                json!({"kind": "status", "status": 429, "retry_after": 1, "method": "GET", "path_contains": "/Microsoft.Compute/", "count": 2})
            }
            2 => {
                json!({"kind": "drop_connection", "method": "PATCH", "path_contains": "/Microsoft.Compute/", "count": 1})
            }
            // Answers lost after Azure applied the write: the retry meets 412.
            3 => {
                json!({"kind": "status", "status": 500, "after_commit": true, "method": "PATCH", "path_contains": "/Microsoft.Compute/", "count": 1})
            }
            4 => {
                json!({"kind": "drop_connection", "after_commit": true, "method": "PATCH", "path_contains": "/Microsoft.Compute/", "count": 1})
            }
            _ => json!({"kind": "status", "status": 500, "method": "GET", "count": 1}),
        };
        let config = self.config.edited(rng);
        if matches!(choice, 0 | 2 | 3 | 4) {
            // A machine write for the fault to meet: the apply attaches this one again.
            let stripped = self.strip_one_of_ours(&config, rng);
            if let (3 | 4, Some(id)) = (choice, stripped) {
                // The answer lost is that attach's (not a release's, done whoever made it):
                // the provider must prove from the machine read back that the write was its
                // own, or lose track of an identity it attached.
                fault["path_contains"] = json!(format!("{id}?"));
            }
        }
        self.log.push(format!("fault {fault}, then an edit"));
        self.set_config(config);
        self.apply_under_fault(&fault, "under the fault")
    }

    /// Applies the configuration set with `fault` injected (last: the simulation's own reads
    /// must not meet it). A failure is explained by the fault; the next fault-free apply must
    /// finish the job.
    fn apply_under_fault(&mut self, fault: &Json, how: &str) -> Checked {
        self.remember_holdings();
        self.emulator.inject_fault(fault);
        let output = self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        self.clear_faults();
        self.check_others_kept()?;
        if output.success {
            return self.after_successful_apply();
        }
        self.log
            .push(format!("  the apply failed {how}; applying again"));
        self.apply_checked(&[])
    }

    /// An edit applied with machine writes slowed down, cut by Ctrl-C after one to three
    /// writes or by a one-second deadline (`timeouts`); then a plain apply must finish it.
    fn interrupt(&mut self, rng: &mut Rng) -> Checked {
        let mut config = self.config.edited(rng);
        let by_deadline = rng.chance(40);
        config.short_deadline = by_deadline;
        let cut = if by_deadline {
            "a 1 s deadline"
        } else {
            "Ctrl-C after some writes"
        };
        self.log.push(format!("edit -> {config:?}, cut by {cut}"));
        self.set_config(config);
        self.emulator.inject_fault(&json!({"kind": "delay", "ms": 300, "method": "PATCH", "path_contains": "/Microsoft.Compute/"}));
        self.emulator.clear_requests();
        let mut apply = self
            .work
            .spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        // Ctrl-C once the apply has sent one to three machine writes.
        let wanted_writes = 1 + rng.below(3);
        if !by_deadline {
            self.wait_for_machine_writes(&mut apply, wanted_writes);
            let _ = std::process::Command::new("kill")
                .args(["-INT", &apply.id().to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = apply.wait_with_output();
        self.clear_faults();
        self.check_others_kept()?;
        self.log.push("  applying again, with no deadline".into());
        let mut config = self.config.clone();
        config.short_deadline = false;
        self.set_config(config);
        self.apply_checked(&[])
    }

    /// Another writer takes our identity off one machine that `config` keeps holding it, so
    /// the next apply writes it; nothing when there is none. Its ID, when there was one.
    fn strip_one_of_ours(&mut self, config: &Config, rng: &mut Rng) -> Option<String> {
        let candidates: Vec<usize> = (0..self.machines.len())
            .filter(|i| {
                let machine = &self.machines[*i];
                let ours = machine.builtin();
                machine.exists
                    && !self.unreadable.contains(machine.subscription)
                    && config.must_hold(machine)
                    && !machine.others_builtin.contains(&ours)
                    && actual(&self.emulator, &machine.id())
                        .unwrap_or_default()
                        .1
                        .contains(&ours)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let index = *rng.pick(&candidates);
        let (id, ours) = (self.machines[index].id(), self.machines[index].builtin());
        let (_, held, _) = actual(&self.emulator, &id).unwrap_or_default();
        self.log
            .push(format!("  another writer detaches {ours} from {id} first"));
        self.write_identities(index, &held, &[], &[ours]);
        Some(id)
    }

    /// Another writer gives a machine its identity while an edit's apply runs, just before
    /// the provider's write of it (its `If-Match` then fails; the machine is theirs).
    fn writer_during_apply(&mut self, rng: &mut Rng) -> Checked {
        let config = self.config.edited(rng);
        // A machine the apply will attach, so the other writer gets there first.
        let candidates: Vec<usize> = (0..self.machines.len())
            .filter(|i| {
                let machine = &self.machines[*i];
                machine.exists
                    && !self.unreadable.contains(machine.subscription)
                    && config.must_hold(machine)
                    && !machine.others_builtin.contains(&machine.builtin())
                    && self.builtin_exists(machine)
            })
            .collect();
        if candidates.is_empty() {
            return self.edit(rng);
        }
        let index = *rng.pick(&candidates);
        let (id, ours) = (self.machines[index].id(), self.machines[index].builtin());
        let (_, held, _) = actual(&self.emulator, &id).unwrap_or_default();
        if held.contains(&ours) {
            // Ours now: another writer strips it first, so the apply attaches it again.
            self.log
                .push(format!("  another writer detaches {ours} from {id} first"));
            self.write_identities(index, &held, &[], std::slice::from_ref(&ours));
        }
        self.log.push(format!(
            "edit -> {config:?}, another writer attaches {ours} to {id} during the apply"
        ));
        self.set_config(config);
        self.remember_holdings();
        let fault = json!({"kind": "concurrent_write", "add_identity": ours, "method": "PATCH", "path_contains": id, "count": 1});
        let added = self
            .emulator
            .admin(reqwest::Method::POST, "faults", Some(&fault));
        let output = self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        let fired = self
            .emulator
            .admin(reqwest::Method::GET, "faults", None)
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["id"] == added["id"] && f["hits"].as_u64().unwrap_or(0) > 0);
        self.clear_faults();
        if fired {
            self.log.push("  the other writer got there first".into());
            self.machines[index].others_builtin.insert(ours);
        }
        self.check_others_kept()?;
        if output.success {
            return self.after_successful_apply();
        }
        Err(self.violation(
            6,
            format!(
                "an apply failed with only another writer to explain it:\n{}",
                tail(&output.all())
            ),
        ))
    }

    /// Clears the faults of one operation; the standing ones stay.
    fn clear_faults(&self) {
        self.emulator.clear_faults();
        for fault in &self.standing {
            self.emulator.inject_fault(fault);
        }
    }

    /// The estate: a subscription's machine listings refused (access narrowed), or allowed
    /// again. Its buckets must keep what they recorded while the rest plans and applies.
    fn permission(&mut self, rng: &mut Rng) -> Checked {
        if self.config.shape != Shape::Estate {
            return self.fault(rng);
        }
        // Never the first: a narrowed reach lists that one by resource group.
        let subscription = SUBS[1 + rng.below(SUBS.len() - 1)];
        if self.unreadable.remove(subscription) {
            self.log.push(format!("{subscription} readable again"));
        } else {
            self.log.push(format!("{subscription} no longer listable"));
            self.unreadable.insert(subscription);
        }
        self.standing = self
            .unreadable
            .iter()
            .map(|sub| json!({"kind": "status", "status": 403, "code": "AuthorizationFailed", "method": "GET", "path_contains": format!("/subscriptions/{sub}/providers/Microsoft.Compute/")}))
            .collect();
        self.clear_faults();
        self.apply_checked(&[])
    }

    // --- other writers -----------------------------------------------------------------------

    /// The machine's built-in identity exists (per-region: once its resource made it).
    fn builtin_exists(&self, machine: &SimMachine) -> bool {
        self.emulator
            .arm_get(&machine.builtin(), "2023-01-31")
            .is_some()
    }

    fn other_writer(&mut self, rng: &mut Rng) -> Checked {
        let existing: Vec<usize> = (0..self.machines.len())
            .filter(|i| self.machines[*i].exists)
            .collect();
        let choice = rng.below(9);
        if existing.is_empty() || choice == 7 {
            return self.create_machine(rng);
        }
        let mut index = *rng.pick(&existing);
        if choice == 4 {
            // Tagging a machine of ours for exclusion is the case that matters: prefer one.
            let of_ours: Vec<usize> = existing
                .iter()
                .copied()
                .filter(|i| {
                    let machine = &self.machines[*i];
                    !machine.excluded
                        && !machine.others_builtin.contains(&machine.builtin())
                        && actual(&self.emulator, &machine.id())
                            .unwrap_or_default()
                            .1
                            .contains(&machine.builtin())
                })
                .collect();
            if !of_ours.is_empty() {
                index = *rng.pick(&of_ours);
            }
        }
        if choice == 6 {
            // Recreating a machine of ours is the case that matters: prefer one.
            let of_ours: Vec<usize> = existing
                .iter()
                .copied()
                .filter(|i| {
                    let machine = &self.machines[*i];
                    !machine.others_builtin.contains(&machine.builtin())
                        && actual(&self.emulator, &machine.id())
                            .unwrap_or_default()
                            .1
                            .contains(&machine.builtin())
                })
                .collect();
            if !of_ours.is_empty() {
                index = *rng.pick(&of_ours);
            }
        }
        let id = self.machines[index].id();
        let ours = self.machines[index].builtin();
        let (_, held, _) = actual(&self.emulator, &id).unwrap_or_default();
        match choice {
            0 if !held.contains(&ours) && self.builtin_exists(&self.machines[index]) => {
                self.log
                    .push(format!("another writer attaches {ours} to {id}"));
                self.machines[index].others_builtin.insert(ours.clone());
                self.write_identities(index, &held, &[ours], &[]);
            }
            1 if held.contains(&ours) => {
                self.log
                    .push(format!("another writer detaches {ours} from {id}"));
                self.machines[index].others_builtin.remove(&ours);
                self.write_identities(index, &held, &[], &[ours]);
            }
            2 => {
                let name = foreign_id(
                    self.machines[index].subscription,
                    FOREIGN[rng.below(FOREIGN.len())],
                );
                if held.contains(&name) {
                    self.log
                        .push(format!("another writer detaches {name} from {id}"));
                    self.machines[index].foreign.remove(&name);
                    self.write_identities(index, &held, &[], &[name]);
                } else {
                    self.log
                        .push(format!("another writer attaches {name} to {id}"));
                    self.machines[index].foreign.insert(name.clone());
                    self.write_identities(index, &held, &[name], &[]);
                }
            }
            3 => {
                self.machines[index].system = !self.machines[index].system;
                self.log.push(format!(
                    "another writer sets system-assigned={} on {id}",
                    self.machines[index].system
                ));
                self.write_identities(index, &held, &[], &[]);
            }
            4 => {
                self.machines[index].excluded = !self.machines[index].excluded;
                self.log.push(format!(
                    "another writer sets the exclusion tag={} on {id}",
                    self.machines[index].excluded
                ));
                let machine = &self.machines[index];
                let tags = machine.spec()["tags"].clone();
                let (status, body) = self.emulator.arm_send(
                    reqwest::Method::PATCH,
                    &id,
                    API,
                    Some(&json!({"tags": tags})),
                );
                assert!(status < 300, "tagging {id}: {status} {body}");
                self.wait_settled(&id);
            }
            5 => {
                self.log.push(format!("another writer deletes {id}"));
                self.delete(index);
            }
            6 => {
                let with_ours = rng.chance(50) && self.builtin_exists(&self.machines[index]);
                self.log.push(format!(
                    "another writer recreates {id} (with our identity: {with_ours})"
                ));
                self.delete(index);
                let mut fresh =
                    SimMachine::random(rng, self.config.shape, self.machines[index].name.clone());
                fresh.subscription = self.machines[index].subscription;
                fresh.group = self.machines[index].group;
                fresh.scale_set = self.machines[index].scale_set;
                fresh.location = self.machines[index].location;
                if with_ours {
                    fresh.others_builtin.insert(ours);
                }
                self.machines[index] = fresh;
                self.put_machine(index);
            }
            _ => return self.create_machine(rng),
        }
        self.check_others_kept()?;
        self.apply_checked(&[])
    }

    fn create_machine(&mut self, rng: &mut Rng) -> Checked {
        let machine = SimMachine::random(rng, self.config.shape, format!("m{}", self.next_name));
        self.next_name += 1;
        self.log
            .push(format!("another writer creates {}", machine.id()));
        self.machines.push(machine);
        self.put_machine(self.machines.len() - 1);
        self.apply_checked(&[])
    }

    fn delete(&mut self, index: usize) {
        let id = self.machines[index].id();
        let (status, body) = self
            .emulator
            .arm_send(reqwest::Method::DELETE, &id, API, None);
        assert!(status < 300, "deleting {id}: {status} {body}");
        self.machines[index].exists = false;
    }

    fn put_machine(&mut self, index: usize) {
        let machine = &self.machines[index];
        let id = machine.id();
        let spec = machine.spec();
        let mut body =
            json!({"location": machine.location, "tags": spec["tags"], "properties": {}});
        if !spec["identity"].is_null() {
            body["identity"] = self.identity_body(index, &machine.others(), &BTreeSet::new());
        }
        let (status, answer) = self
            .emulator
            .arm_send(reqwest::Method::PUT, &id, API, Some(&body));
        assert!(status < 300, "creating {id}: {status} {answer}");
        self.machines[index].exists = true;
        self.wait_settled(&id);
    }

    /// The identity block a writer sends: the system-assigned flag of the model, `add`
    /// added and `remove` taken away from what the machine `held`.
    fn identity_body(
        &self,
        index: usize,
        keep: &BTreeSet<String>,
        remove: &BTreeSet<String>,
    ) -> Json {
        let machine = &self.machines[index];
        let kind = match (machine.system, keep.is_empty()) {
            (true, true) => "SystemAssigned",
            (true, false) => "SystemAssigned, UserAssigned",
            (false, true) => "None",
            (false, false) => "UserAssigned",
        };
        let mut map = serde_json::Map::new();
        for id in keep {
            map.insert(id.clone(), json!({}));
        }
        for id in remove {
            map.insert(id.clone(), Json::Null);
        }
        if map.is_empty() {
            json!({"type": kind})
        } else {
            json!({"type": kind, "userAssignedIdentities": map})
        }
    }

    fn write_identities(
        &mut self,
        index: usize,
        held: &BTreeSet<String>,
        add: &[String],
        remove: &[String],
    ) {
        let id = self.machines[index].id();
        let mut keep = held.clone();
        keep.extend(add.iter().cloned());
        let removed: BTreeSet<String> = remove.iter().cloned().collect();
        keep.retain(|i| !removed.contains(i));
        let body = json!({"identity": self.identity_body(index, &keep, &removed)});
        let (status, answer) =
            self.emulator
                .arm_send(reqwest::Method::PATCH, &id, API, Some(&body));
        assert!(
            status < 300,
            "another writer's PATCH of {id}: {status} {answer}"
        );
        self.wait_settled(&id);
    }

    /// Waits until ARM reports the machine's last operation finished (a condition, polled).
    fn wait_settled(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some((_, _, state)) = actual(&self.emulator, id) {
            if state == "Succeeded" || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // --- the end -----------------------------------------------------------------------------

    /// 5: faults cleared, one apply succeeds; then the assignments leave the configuration
    /// and every machine is exactly as others left it.
    fn finish(&mut self) -> Checked {
        self.step += 1;
        self.standing.clear();
        self.unreadable.clear();
        self.clear_faults();
        self.grant_locks();
        let mut config = self.config.clone();
        config.audit = false;
        self.set_config(config);
        self.log
            .push("end: an enforce apply, then the assignments removed".into());
        self.apply_checked(&[])?;
        let mut config = self.config.clone();
        config.assignments = false;
        self.set_config(config);
        let output = self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        if !output.success {
            return Err(self.violation(
                6,
                format!("removing the assignments failed:\n{}", tail(&output.all())),
            ));
        }
        for machine in self.machines.iter().filter(|m| m.exists) {
            let Some((system, ids, _)) = actual(&self.emulator, &machine.id()) else {
                return Err(self.violation(5, format!("{} disappeared", machine.id())));
            };
            if system != machine.system || ids != machine.others() {
                return Err(self.violation(5, format!(
                    "{} after the assignments left: system={system} {ids:?}; others left it system={} {:?}",
                    machine.id(), machine.system, machine.others()
                )));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The variants [`refine`] draws: ID arguments, taint, import by identity, 429 storms, a
// restarted emulator, lock writes denied
// ---------------------------------------------------------------------------------------------

const LOCK_API: &str = "2020-05-01";
const ROLE_API: &str = "2022-04-01";
const OWNER_ROLE: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const CONTRIBUTOR_ROLE: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// The Contributor assignment that stands in for the principal's Owner while it may not write
/// locks (Contributor's `notActions` hold `Microsoft.Authorization/*/Write`).
const CONTRIBUTOR_ASSIGNMENT: &str = "5c0e1000-0000-4000-8000-000000000022";

/// The lock `mig_builtin_identity` places on its identity (lower-cased, as `builtin_id`).
fn lock_id(sub: &str, region: &str) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/locks/canNotDeleteLock-built-in-identity-{region}",
        builtin_id(sub, region)
    )
    .to_ascii_lowercase()
}

impl Sim {
    fn edit_ids(&mut self, rng: &mut Rng) -> Checked {
        let config = self.config.edited_ids(rng, &self.machines);
        self.log.push(format!(
            "edit ids -> exclude_ids {:?}, identity_ids {:?}",
            config.exclude_ids, config.identity_ids
        ));
        self.set_config(config);
        self.apply_checked(&[])
    }

    /// `terraform taint` of one assignment instance, then an apply (which replaces it).
    fn taint(&mut self, rng: &mut Rng) -> Checked {
        let instances = self.instances();
        if instances.is_empty() {
            return self.edit(rng);
        }
        let address = rng.pick(&instances).0.clone();
        self.log.push(format!("taint {address}"));
        let tainted = self.terraform(&["taint", "-no-color", &address]);
        if !tainted.success {
            return Err(self.violation(6, format!("taint failed:\n{}", tail(&tainted.all()))));
        }
        self.apply_replacing(&address, &[])
    }

    /// An apply that replaces an assignment. It must succeed, also while (estate) a
    /// subscription's machines cannot be listed: the old object's destroy reads the machines
    /// it recorded there by their ID and gives the identity back (soak seeds 1023, 1025, 1111,
    /// 1113; `soak_regressions.rs`).
    fn apply_replacing(&mut self, address: &str, args: &[&str]) -> Checked {
        if self.config.create_before_destroy && acceptance_tests::terraform_minor() < 16 {
            return self.apply_replacing_first(address, args);
        }
        self.apply_checked(args)
    }

    /// A replacement under `create_before_destroy` on Terraform 1.15 and older: the new object
    /// records the machines the old one owned and it wants as `compliant_ids` (at its create
    /// it cannot learn that the old one attached them), never stripped, and a later destroy
    /// leaves them holding the identity, as documented. The model says so: those machines hold
    /// it from someone else from then on.
    fn apply_replacing_first(&mut self, address: &str, args: &[&str]) -> Checked {
        let owned_before = self.recorded_by(address, "assigned_ids");
        self.remember_holdings();
        let mut command = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
        command.extend_from_slice(args);
        let output = self.terraform(&command);
        self.check_others_kept()?;
        if !output.success {
            return Err(self.violation(
                6,
                format!(
                    "terraform {} failed with no fault to explain it:\n{}",
                    command.join(" "),
                    tail(&output.all())
                ),
            ));
        }
        let compliant_after = self.recorded_by(address, "compliant_ids");
        for machine in self.machines.iter_mut().filter(|m| m.exists) {
            let id = machine.id().to_ascii_lowercase();
            if owned_before.contains(&id) && compliant_after.contains(&id) {
                machine.others_builtin.insert(machine.builtin());
            }
        }
        self.after_successful_apply()
    }

    /// The lower-cased machine IDs in `field` (`assigned_ids` or `compliant_ids`) of the
    /// instance at `address` in state (every bucket of an estate).
    fn recorded_by(&self, address: &str, field: &str) -> BTreeSet<String> {
        let resources = self.work.state_resources();
        let Some(values) = resources.get(address) else {
            return BTreeSet::new();
        };
        let lists: Vec<&Json> = if address.starts_with("mig_estate_assignment.") {
            values["buckets"]
                .as_object()
                .into_iter()
                .flat_map(|b| b.values())
                .map(|bucket| &bucket[field])
                .collect()
        } else {
            vec![&values[field]]
        };
        lists
            .into_iter()
            .filter_map(Json::as_array)
            .flatten()
            .filter_map(Json::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// `state rm`, then an `import` block naming the instance by its identity (the
    /// resource's identity schema), applied.
    fn import_by_identity(&mut self, rng: &mut Rng) -> Checked {
        let instances = self.instances();
        if instances.is_empty() {
            return self.edit(rng);
        }
        let (address, region) = rng.pick(&instances).clone();
        let identity = match region {
            Some(region) => {
                let identity_id = self
                    .work
                    .state_resources()
                    .get(&format!("mig_builtin_identity.region[\"{region}\"]"))
                    .and_then(|r| r["id"].as_str().map(String::from))
                    .unwrap_or_else(|| builtin_id(SUBS[0], region));
                format!(
                    "{{\n    scope       = \"{}\"\n    identity_id = \"{identity_id}\"\n  }}",
                    self.config.scope()
                )
            }
            None => format!("{{\n    scope = \"{}\"\n  }}", self.config.scope()),
        };
        self.log.push(format!(
            "state rm + import {address} by identity {identity}"
        ));
        self.forget_for_import(&address, region)?;
        self.work.write(
            "import.tf",
            &format!("import {{\n  to       = {address}\n  identity = {identity}\n}}\n"),
        );
        self.remember_holdings();
        let output = self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        let _ = std::fs::remove_file(self.work.path().join("import.tf"));
        if !output.success {
            return Err(self.violation(
                6,
                format!("import by identity failed:\n{}", tail(&output.all())),
            ));
        }
        self.after_successful_apply()
    }

    /// An edit applied through a storm of 429s (with `Retry-After`) on machine calls or on
    /// every ARM call: ridden out, or the apply fails and the next fault-free one finishes.
    fn storm(&mut self, rng: &mut Rng) -> Checked {
        let path = *rng.pick(&["/Microsoft.Compute/", "/providers/"]);
        let count = 6 + rng.below(15);
        let fault = json!({"kind": "status", "status": 429, "retry_after": 1, "path_contains": path, "count": count});
        self.log
            .push(format!("a storm of 429s {fault}, then an edit"));
        let config = self.config.edited(rng);
        self.strip_one_of_ours(&config, rng);
        self.set_config(config);
        self.apply_under_fault(&fault, "in the storm")
    }

    /// The emulator stops and comes back on the same ports with the same world, either
    /// between applies or while an edit's apply is writing machines (slowed down); the
    /// provider meets refused connections, and must carry on or fail as the outage explains
    /// (then the next apply finishes the job).
    fn restart(&mut self, rng: &mut Rng) -> Checked {
        let downtime = Duration::from_millis(200 + rng.below(2800) as u64);
        let config = self.config.edited(rng);
        if rng.chance(50) {
            self.log.push(format!(
                "the emulator restarts (down {downtime:?}), then an edit -> {config:?}"
            ));
            let before = self.emulator.admin(reqwest::Method::GET, "state", None);
            self.emulator.restart(downtime);
            self.clear_faults();
            let after = self.emulator.admin(reqwest::Method::GET, "state", None);
            assert!(
                before == after,
                "the restarted emulator serves another world (an emulator bug, not the provider's)"
            );
            self.check_others_kept()?;
            self.set_config(config);
            return self.apply_checked(&[]);
        }
        self.log.push(format!(
            "edit -> {config:?}, the emulator restarts (down {downtime:?}) during the apply"
        ));
        self.set_config(config);
        self.remember_holdings();
        self.emulator.inject_fault(&json!({"kind": "delay", "ms": 300, "method": "PATCH", "path_contains": "/Microsoft.Compute/"}));
        self.emulator.clear_requests();
        let mut apply = self
            .work
            .spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        let wanted_writes = 1 + rng.below(3);
        self.wait_for_machine_writes(&mut apply, wanted_writes);
        let restarted = Instant::now();
        self.emulator.restart(downtime);
        self.clear_faults();
        let output = apply.wait_with_output().expect("terraform apply");
        self.check_others_kept()?;
        if output.status.success() {
            self.log.push(format!(
                "  the apply rode the restart out ({:?} after it)",
                restarted.elapsed()
            ));
            return self.after_successful_apply();
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        self.log.push(format!(
            "  the apply failed across the restart ({:?} after it); applying again. It said:\n{}",
            restarted.elapsed(),
            tail(&said)
        ));
        self.apply_checked(&[])
    }

    /// Waits (at most a minute) until `apply` has sent `wanted` machine writes, or ended.
    fn wait_for_machine_writes(&self, apply: &mut std::process::Child, wanted: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && matches!(apply.try_wait(), Ok(None)) {
            let writes = self
                .emulator
                .requests()
                .iter()
                .filter(|r| {
                    r["method"] == "PATCH"
                        && r["path"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("/Microsoft.Compute/")
                })
                .count();
            if writes >= wanted {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Per region: the principal loses `Microsoft.Authorization/locks/write` (its Owner
    /// assignment gives way to Contributor) after someone removed one region's lock, so the
    /// apply holds a lock it may not place (a warning, a clean plan); or it gets the permission
    /// back, and the apply places every missing lock.
    fn toggle_lock_permission(&mut self, rng: &mut Rng) -> Checked {
        if self.config.shape != Shape::PerRegion {
            return self.permission(rng);
        }
        if self.locks_denied {
            self.log.push("the principal may write locks again".into());
            self.grant_locks();
            self.apply_checked(&[])?;
            for region in REGIONS {
                let identity_exists = self
                    .emulator
                    .arm_get(&builtin_id(SUBS[0], region), "2023-01-31")
                    .is_some();
                if identity_exists
                    && self
                        .emulator
                        .arm_get(&lock_id(SUBS[0], region), LOCK_API)
                        .is_none()
                {
                    return Err(self.violation(
                        2,
                        format!(
                            "the apply after the lock permission came back left {} unlocked",
                            builtin_id(SUBS[0], region)
                        ),
                    ));
                }
            }
            return Ok(());
        }
        let region = *rng.pick(&REGIONS);
        let lock = lock_id(SUBS[0], region);
        if self.emulator.arm_get(&lock, LOCK_API).is_some() {
            self.log.push(format!("another writer removes {lock}"));
            let (status, body) =
                self.emulator
                    .arm_send(reqwest::Method::DELETE, &lock, LOCK_API, None);
            assert!(status < 300, "removing {lock}: {status} {body}");
        }
        self.log.push(
            "the principal loses Microsoft.Authorization/locks/write (Contributor for Owner)"
                .into(),
        );
        self.deny_locks();
        self.apply_checked(&[])?;
        assert!(
            self.emulator.arm_get(&lock, LOCK_API).is_none(),
            "the principal placed {lock} while it may not write locks: the denial did not take"
        );
        Ok(())
    }

    /// The principal as Contributor, no longer Owner, on the first subscription.
    fn deny_locks(&mut self) {
        let subscription = subscription(SUBS[0]);
        let object_id = self.emulator.admin(reqwest::Method::GET, "state", None)["client"]
            ["object_id"]
            .as_str()
            .expect("the client's object ID in the state dump")
            .to_ascii_lowercase();
        // Contributor first, while the principal may still assign roles; then Owner goes.
        let contributor =
            format!("{subscription}/providers/Microsoft.Authorization/roleAssignments/{CONTRIBUTOR_ASSIGNMENT}");
        let (status, body) = self.emulator.arm_send(
            reqwest::Method::PUT,
            &contributor,
            ROLE_API,
            Some(&json!({"properties": {
                "roleDefinitionId": format!("{subscription}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR_ROLE}"),
                "principalId": object_id,
                "principalType": "ServicePrincipal"
            }})),
        );
        assert!(status < 300, "assigning Contributor: {status} {body}");
        let listed = self
            .emulator
            .arm_get(
                &format!("{subscription}/providers/Microsoft.Authorization/roleAssignments"),
                ROLE_API,
            )
            .expect("the subscription's role assignments");
        let owners: Vec<String> = listed["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                let p = &a["properties"];
                p["principalId"].as_str().map(str::to_ascii_lowercase) == Some(object_id.clone())
                    && p["scope"]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(&subscription))
                    && p["roleDefinitionId"]
                        .as_str()
                        .is_some_and(|r| r.to_ascii_lowercase().ends_with(OWNER_ROLE))
            })
            .filter_map(|a| a["id"].as_str().map(String::from))
            .collect();
        assert!(
            !owners.is_empty(),
            "the principal is Owner before: {listed}"
        );
        for owner in owners {
            let (status, body) =
                self.emulator
                    .arm_send(reqwest::Method::DELETE, &owner, ROLE_API, None);
            assert!(status < 300, "removing {owner}: {status} {body}");
        }
        self.locks_denied = true;
    }

    /// The principal Owner again (as the scenario made it), its Contributor stand-in gone.
    fn grant_locks(&mut self) {
        if !self.locks_denied {
            return;
        }
        // A merge of the subscription gives its principal the Owner assignment it seeds.
        self.emulator
            .load_merge(&json!({"subscriptions": [{"id": SUBS[0]}]}));
        let contributor = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{CONTRIBUTOR_ASSIGNMENT}",
            subscription(SUBS[0])
        );
        let (status, body) =
            self.emulator
                .arm_send(reqwest::Method::DELETE, &contributor, ROLE_API, None);
        assert!(status < 300, "removing Contributor: {status} {body}");
        self.locks_denied = false;
    }
}

fn scenario(shape: Shape, machines: &[SimMachine]) -> Json {
    let subscriptions: &[&str] = match shape {
        Shape::PerRegion => &SUBS[..1],
        Shape::Estate => &SUBS,
    };
    let subscription = |sub: &str| {
        let of_kind = |scale_set: bool| -> Vec<Json> {
            machines
                .iter()
                .filter(|m| m.subscription == sub && m.scale_set == scale_set)
                .map(SimMachine::spec)
                .collect()
        };
        let mut identities: Vec<Json> = FOREIGN
            .iter()
            .map(|name| json!({"name": name, "resource_group": "rg-ids", "location": "eastus"}))
            .collect();
        let mut groups = vec!["rg-a", "rg-b", "rg-ids"];
        if shape == Shape::Estate {
            // The policy made them: the estate attaches what exists.
            groups.push("Built-In-Identity-RG");
            for region in REGIONS {
                identities.push(json!({"name": format!("Built-In-Identity-{region}"), "resource_group": "Built-In-Identity-RG", "location": region}));
            }
        }
        let groups: Vec<Json> = groups
            .iter()
            .map(|name| json!({"name": name, "location": "eastus"}))
            .collect();
        json!({
            "id": sub,
            "regions": REGIONS,
            "resource_groups": groups,
            "user_assigned_identities": identities,
            "virtual_machines": of_kind(false),
            "scale_sets": of_kind(true),
        })
    };
    let mut world = json!({
        "subscriptions": subscriptions.iter().map(|sub| subscription(sub)).collect::<Vec<_>>(),
    });
    if shape == Shape::Estate {
        world["management_groups"] =
            json!([{"id": MANAGEMENT_GROUP, "display_name": "Simulation", "subscriptions": SUBS}]);
    }
    world
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Running sequences: one, shrinking, CI seeds, soak
// ---------------------------------------------------------------------------------------------

/// What one sequence did.
struct Outcome {
    steps: usize,
    kinds: Vec<Kind>,
    violation: Option<Violation>,
    log: Vec<String>,
}

/// Runs `ops` from a fresh world of `seed` in `shape`.
fn run_sequence(seed: u64, shape: Shape, ops: &[Op]) -> Outcome {
    let mut sim = Sim::start(seed, shape);
    let mut kinds = Vec::new();
    let first = sim.apply_checked(&[]);
    if let Err(violation) = first {
        return Outcome {
            steps: 0,
            kinds,
            violation: Some(violation),
            log: sim.log,
        };
    }
    for op in ops.iter().map(|op| refine(*op, shape)) {
        sim.step += 1;
        sim.log.push(format!("step {}: {:?}", sim.step, op.kind));
        kinds.push(op.kind);
        if let Err(violation) = sim.run(op) {
            return Outcome {
                steps: sim.step,
                kinds,
                violation: Some(violation),
                log: sim.log,
            };
        }
    }
    let violation = sim.finish().err();
    Outcome {
        steps: sim.step,
        kinds,
        violation,
        log: sim.log,
    }
}

fn replay_command(seed: u64, shape: Shape, steps: usize, keep: &[usize]) -> String {
    let keep: Vec<String> = keep.iter().map(usize::to_string).collect();
    format!(
        "SIM_SEED={seed} SIM_SHAPE={} SIM_STEPS={steps} SIM_KEEP={} cargo test -p acceptance-tests --test simulation replay -- --ignored --nocapture",
        shape.name(),
        keep.join(",")
    )
}

/// The operations of `kept` up to the one a violation at `step` (1-based; 0 is the first
/// apply, past the end is the final check) happened in.
fn failing_prefix(kept: &[usize], step: usize) -> Vec<usize> {
    kept[..step.min(kept.len())].to_vec()
}

/// Runs the sequence of `seed`; on a violation, shrinks it and panics with the replay line.
fn check_seed(seed: u64, shape: Shape, steps: usize) {
    let ops = sequence(seed, steps);
    let outcome = run_sequence(seed, shape, &ops);
    let Some(violation) = outcome.violation else {
        return;
    };
    // The shortest failing prefix: the steps up to the one that failed...
    let all: Vec<usize> = (0..ops.len()).collect();
    let mut keep = failing_prefix(&all, violation.step);
    // ...then each earlier operation dropped in turn while the sequence still fails.
    let budget = Duration::from_secs(
        std::env::var("SIM_SHRINK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let started = Instant::now();
    let mut last = (violation, outcome.log);
    let mut index = keep.len();
    while index > 0 && started.elapsed() < budget {
        index -= 1;
        let mut candidate = keep.clone();
        candidate.remove(index);
        let chosen: Vec<Op> = candidate.iter().map(|i| ops[*i]).collect();
        let tried = run_sequence(seed, shape, &chosen);
        if let Some(violation) = tried.violation {
            keep = failing_prefix(&candidate, violation.step);
            index = index.min(keep.len());
            last = (violation, tried.log);
        }
    }
    let (violation, log) = last;
    panic!(
        "simulation seed {seed} ({}): invariant {} broken at step {}: {}\n\nsteps:\n{}\n\nreplay: {}",
        shape.name(),
        violation.invariant,
        violation.step,
        violation.detail,
        log.join("\n"),
        replay_command(seed, shape, steps, &keep)
    );
}

macro_rules! ci_seed {
    ($name:ident, $seed:expr, $shape:expr) => {
        #[test]
        fn $name() {
            check_seed($seed, $shape, CI_STEPS);
        }
    };
}

ci_seed!(simulation_per_region_seed_a, CI_SEEDS[0], Shape::PerRegion);
ci_seed!(simulation_per_region_seed_b, CI_SEEDS[1], Shape::PerRegion);
ci_seed!(simulation_estate_seed_a, CI_SEEDS[2], Shape::Estate);
ci_seed!(simulation_estate_seed_b, CI_SEEDS[3], Shape::Estate);

/// Replays one sequence: `SIM_SEED`, `SIM_SHAPE` (`per-region` or `estate`), `SIM_STEPS`,
/// and `SIM_KEEP` (the indices of the operations kept by shrinking; all when unset).
#[test]
#[ignore = "run by hand with SIM_SEED (the replay line a failure prints)"]
fn replay() {
    let seed: u64 = std::env::var("SIM_SEED")
        .expect("SIM_SEED")
        .parse()
        .expect("SIM_SEED is a number");
    let shape = Shape::parse(&std::env::var("SIM_SHAPE").unwrap_or_default());
    let steps: usize = std::env::var("SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_STEPS);
    let ops = sequence(seed, steps);
    let chosen: Vec<Op> = match std::env::var("SIM_KEEP") {
        Ok(keep) if !keep.trim().is_empty() => keep
            .split(',')
            .map(|i| ops[i.trim().parse::<usize>().expect("SIM_KEEP indices")])
            .collect(),
        _ => ops,
    };
    let outcome = run_sequence(seed, shape, &chosen);
    eprintln!("{}", outcome.log.join("\n"));
    if let Some(violation) = outcome.violation {
        panic!(
            "invariant {} broken at step {}: {}",
            violation.invariant, violation.step, violation.detail
        );
    }
}

/// `make soak`: sequences from `SOAK_SEED` (random when unset) for `SOAK_SECONDS`, then a
/// summary table. Fails when any sequence broke an invariant (each is printed with its
/// replay line).
#[test]
#[ignore = "long: make soak"]
fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let first_seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    let steps: usize = std::env::var("SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let started = Instant::now();
    let mut seed = first_seed;
    let mut sequences = 0usize;
    let mut total_steps = 0usize;
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_invariant: BTreeMap<u8, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        // Shapes alternate: even seeds per region, odd ones the estate.
        let shape = if seed.is_multiple_of(2) {
            Shape::PerRegion
        } else {
            Shape::Estate
        };
        let ops = sequence(seed, steps);
        let outcome = run_sequence(seed, shape, &ops);
        sequences += 1;
        total_steps += outcome.steps;
        for kind in &outcome.kinds {
            *by_kind.entry(format!("{kind:?}")).or_default() += 1;
        }
        if let Some(violation) = outcome.violation {
            *by_invariant.entry(violation.invariant).or_default() += 1;
            failures.push(format!(
                "seed {seed}: invariant {} at step {}: {}\n  replay: {}",
                violation.invariant,
                violation.step,
                violation.detail.lines().next().unwrap_or_default(),
                replay_command(seed, shape, steps, &(0..steps).collect::<Vec<_>>())
            ));
        }
        seed += 1;
    }
    println!("\n| soak | |\n|---|---|");
    println!("| seeds | {first_seed} to {} |", seed.saturating_sub(1));
    println!("| time | {} s |", started.elapsed().as_secs());
    println!("| sequences | {sequences} |");
    println!("| steps | {total_steps} |");
    for kind in Kind::ALL {
        let kind = format!("{kind:?}");
        println!(
            "| operations: {kind} | {} |",
            by_kind.get(&kind).copied().unwrap_or(0)
        );
    }
    for invariant in 1..=6u8 {
        println!(
            "| violations of invariant {invariant} | {} |",
            by_invariant.get(&invariant).copied().unwrap_or(0)
        );
    }
    for failure in &failures {
        println!("{failure}");
    }
    assert!(
        failures.is_empty(),
        "{} sequences broke an invariant",
        failures.len()
    );
}

#[test]
fn the_generator_replays_and_mixes_every_kind() {
    let a: Vec<(Kind, u64)> = sequence(7, 50)
        .iter()
        .map(|op| (op.kind, op.seed))
        .collect();
    let b: Vec<(Kind, u64)> = sequence(7, 50)
        .iter()
        .map(|op| (op.kind, op.seed))
        .collect();
    assert_eq!(a, b, "a seed replays the same sequence");
    let kinds: BTreeSet<Kind> = [Shape::PerRegion, Shape::Estate]
        .iter()
        .flat_map(|shape| sequence(7, 300).into_iter().map(|op| refine(op, *shape)))
        .map(|op| op.kind)
        .collect();
    assert_eq!(
        kinds.len(),
        Kind::ALL.len(),
        "every kind of operation is drawn: {kinds:?}"
    );
}
