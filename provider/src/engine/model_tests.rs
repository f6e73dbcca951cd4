//! The engine proven in-process: random sequences of Terraform-shaped operations (apply with
//! changed arguments, refresh, destroy, replace with hand-over) interleaved with other
//! writers (attaching, detaching, recreating machines) and faults (lost answers, writes
//! stopped half-way), run against an in-memory
//! [`MachineStore`](crate::engine::store::MachineStore) ([`world`]; moved addresses in
//! [`moves`]). After every step the simulation's invariants must hold:
//!
//! - nothing of others' is stripped: no write of ours removes an identity we did not attach;
//! - everything we attach is recorded: every identity our writes put on a machine (and that
//!   is still there) is held by the object's record, and the record holds nothing another
//!   writer put there;
//! - destroy restores exactly: once the object is gone, no machine holds an identity from us.
//!
//! `PROPTEST_CASES` sets how many sequences run (a few hundred by default; `make soak` runs
//! many more).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::azure::compute::MachineKind;
use crate::azure::ids::Scope;
use crate::engine::assignment::{Assignment, Recorded};
use crate::engine::converge::{ConvergeInput, Converged};
use crate::engine::destroy::Destroyed;
use crate::engine::handover::Handover;
use crate::engine::notes::Notes;
use crate::engine::ownership::{Mode, Outcome, Settings};
use crate::engine::plan::{PlanInput, Planned};
use crate::engine::policy::Rules;
use crate::engine::record::Record;

mod moves;
mod world;

use moves::{create_planned, move_order, CreatePlanned, MoveOrder};
use world::{machine_id, FakeStore, Stop, Who, World, OTHER, OURS, SCOPES, SLOTS};

/// The arguments an operation gives the object.
#[derive(Debug, Clone)]
struct Args {
    identity: usize,
    scope: usize,
    region: Option<&'static str>,
    scale_sets: bool,
    excluded: BTreeSet<usize>,
    audit: bool,
    skip_single: bool,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            identity_id: OURS[self.identity].to_string(),
            scope: Scope::parse(SCOPES[self.scope]).unwrap(),
            locations: self.region.map(|r| BTreeSet::from([r.to_string()])),
            kinds: if self.scale_sets {
                vec![MachineKind::VirtualMachine, MachineKind::ScaleSet]
            } else {
                vec![MachineKind::VirtualMachine]
            },
            rules: Rules {
                skip_single_user_assigned: self.skip_single,
                exclude_ids: self
                    .excluded
                    .iter()
                    .map(|s| machine_id(*s).to_ascii_lowercase())
                    .collect(),
                exclude_tags: BTreeMap::new(),
            },
            mode: if self.audit {
                Mode::Audit
            } else {
                Mode::Enforce
            },
            adopt: false,
        }
    }
}

/// A fault during the next operation of ours.
#[derive(Debug, Clone)]
enum Fault {
    None,
    LoseAnswers(usize),
    StopAnswers(usize),
    StopAfter(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Args, Fault),
    Refresh,
    Destroy(Fault),
    Replace(Fault),
    /// `terraform taint`, then apply: the create is planned alone, after the refresh.
    Taint(Fault),
    OthersAttach {
        slot: usize,
        ours: bool,
    },
    OthersDetach {
        slot: usize,
        ours: bool,
    },
    Recreate(usize),
    Delete(usize),
    /// The object's address changes with no `moved` block: the old address leaves the
    /// configuration and a new one with the same arguments enters it, in one plan and one
    /// apply.
    Move {
        /// In the plan's process, where the create's plan falls against the old object's
        /// refresh and its destroy's plan (Terraform does not order them).
        create_planned: CreatePlanned,
        /// `-refresh=false`: the old object is not refreshed.
        refresh: bool,
        order: MoveOrder,
        /// Terraform 1.16+ hands the create's plan during apply the first plan's record.
        first_plan_handed: bool,
    },
    /// Another object of the same identity over the whole subscription is created (it lists
    /// the object's machines as compliant); then one plan removes the object and changes the
    /// other, which the state keeps from then on.
    Consolidate {
        /// In the plan's process, the destroy is planned before the other object's change.
        destroy_planned_first: bool,
        order: MoveOrder,
    },
}

fn args() -> impl Strategy<Value = Args> {
    (
        0..2usize,
        0..3usize,
        prop_oneof![Just(None), Just(Some("eastus")), Just(Some("westus"))],
        any::<bool>(),
        proptest::collection::btree_set(0..SLOTS.len(), 0..2),
        prop::bool::weighted(0.15),
        any::<bool>(),
    )
        .prop_map(
            |(identity, scope, region, scale_sets, excluded, audit, skip_single)| Args {
                identity,
                scope,
                region,
                scale_sets,
                excluded,
                audit,
                skip_single,
            },
        )
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::None),
        1 => (1..3usize).prop_map(Fault::LoseAnswers),
        1 => (1..3usize).prop_map(Fault::StopAnswers),
        1 => (0..4usize).prop_map(Fault::StopAfter),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS.len();
    prop_oneof![
        4 => (args(), fault()).prop_map(|(a, f)| Op::Apply(a, f)),
        1 => Just(Op::Refresh),
        1 => fault().prop_map(Op::Destroy),
        1 => fault().prop_map(Op::Replace),
        1 => fault().prop_map(Op::Taint),
        2 => (slot.clone(), any::<bool>()).prop_map(|(slot, ours)| Op::OthersAttach { slot, ours }),
        2 => (slot.clone(), any::<bool>()).prop_map(|(slot, ours)| Op::OthersDetach { slot, ours }),
        1 => slot.clone().prop_map(Op::Recreate),
        1 => slot.prop_map(Op::Delete),
        // A create applied before the destroy keeps ownership only when the first plan found
        // the old object refreshed and Terraform (1.16+) hands that plan to the apply's (see
        // `a_move_whose_create_comes_first_keeps_ownership`).
        1 => (create_planned(), prop::bool::weighted(0.75), move_order(), any::<bool>())
            .prop_filter("a create first loses ownership", |(planned, refresh, order, handed)| {
                *order != MoveOrder::CreateFirst
                    || (*refresh && *planned != CreatePlanned::BeforeRefresh && *handed)
            })
            .prop_map(|(create_planned, refresh, order, first_plan_handed)| Op::Move {
                create_planned,
                refresh,
                order,
                first_plan_handed,
            }),
        // As for a move, the other object applied whole before the destroy adopts nothing.
        1 => (any::<bool>(), move_order())
            .prop_filter("a change applied first adopts nothing", |(_, order)| {
                *order != MoveOrder::CreateFirst
            })
            .prop_map(|(destroy_planned_first, order)| Op::Consolidate {
                destroy_planned_first,
                order,
            }),
    ]
}

/// The object as Terraform's state holds it.
#[derive(Clone)]
struct Object {
    settings: Settings,
    recorded: Recorded,
    record: Record,
}

fn recorded(settings: &Settings, outcome: Outcome) -> Recorded {
    Recorded {
        scope: Some(settings.scope.to_string()),
        identity_id: Some(settings.identity_id.clone()),
        outcome,
    }
}

struct Run {
    store: FakeStore,
    state: Option<Object>,
}

impl Run {
    fn engine<'a>(&'a self, handover: &'a Handover) -> Assignment<'a> {
        Assignment {
            store: &self.store,
            handover,
            kind: "mig_identity_assignment",
        }
    }

    /// Arms `fault` for the next operation and returns its stop.
    fn arm(&self, fault: &Fault) -> Stop {
        let token = CancellationToken::new();
        let mut world = self.store.0.lock().unwrap();
        world.lose_answers = 0;
        world.stop_answers = 0;
        world.stop_after = None;
        world.halt = Some(token.clone());
        match fault {
            Fault::None => {}
            Fault::LoseAnswers(n) => world.lose_answers = *n,
            Fault::StopAnswers(n) => world.stop_answers = *n,
            Fault::StopAfter(n) => world.stop_after = Some(*n),
        }
        Stop(token)
    }

    fn disarm(&self) {
        let mut world = self.store.0.lock().unwrap();
        world.lose_answers = 0;
        world.stop_answers = 0;
        world.stop_after = None;
        world.halt = None;
    }

    /// Terraform's refresh, in the plan's process.
    async fn refresh(&mut self, handover: &Handover) {
        let Some(object) = self.state.clone() else {
            return;
        };
        let mut notes = Notes::default();
        let refreshed = self
            .engine(handover)
            .refresh(
                &object.settings,
                &object.recorded,
                object.record.clone(),
                &mut notes,
            )
            .await
            .expect("the fake lists");
        self.state = Some(Object {
            recorded: object.recorded.with_outcome(refreshed.outcome),
            record: refreshed.record,
            settings: object.settings,
        });
    }

    async fn plan(
        &self,
        handover: &Handover,
        settings: &Settings,
        prior: Option<&Object>,
    ) -> Option<Planned> {
        self.plan_keyed(
            handover,
            settings,
            prior,
            "object",
            Record::default(),
            false,
        )
        .await
    }

    /// A plan of the object whose configuration gives `object_key`; `first_plan` is what
    /// Terraform 1.16+ hands the plan it makes during apply, and `store_planned_private`
    /// whether it will.
    async fn plan_keyed(
        &self,
        handover: &Handover,
        settings: &Settings,
        prior: Option<&Object>,
        object_key: &str,
        first_plan: Record,
        store_planned_private: bool,
    ) -> Option<Planned> {
        let mut notes = Notes::default();
        let input = PlanInput {
            settings,
            prior: prior.map(|o| &o.recorded),
            previous: prior.map(|o| &o.settings),
            prior_record: prior.map(|o| o.record.clone()).unwrap_or_default(),
            first_plan,
            object_key: object_key.into(),
            store_planned_private,
        };
        self.engine(handover).plan(input, &mut notes).await
    }

    async fn converge(
        &mut self,
        settings: &Settings,
        planned: Planned,
        prior: Option<Object>,
        fault: &Fault,
    ) {
        self.converge_in(&Handover::default(), settings, planned, prior, fault)
            .await;
    }

    /// [`Run::converge`] in the apply process whose hand-over is `handover`.
    async fn converge_in(
        &mut self,
        handover: &Handover,
        settings: &Settings,
        planned: Planned,
        prior: Option<Object>,
        fault: &Fault,
    ) {
        let halt = self.arm(fault);
        let mut notes = Notes::default();
        let input = ConvergeInput {
            settings,
            planned: &recorded(settings, planned.outcome.clone().unwrap_or_default()),
            planned_outcome: planned.outcome.clone(),
            prior: prior.as_ref().map(|o| &o.recorded),
            previous: prior.as_ref().map(|o| &o.settings),
            planned_record: planned.record.clone(),
        };
        let converged = self
            .engine(handover)
            .converge(input, &halt, &mut notes)
            .await;
        self.disarm();
        self.state = match converged {
            Converged::Done { outcome, record } => Some(Object {
                settings: settings.clone(),
                recorded: recorded(settings, outcome),
                record,
            }),
            Converged::NothingWritten { created } => match prior {
                Some(prior) => Some(Object {
                    record: planned.record,
                    ..prior
                }),
                None => created.map(|outcome| Object {
                    settings: settings.clone(),
                    recorded: recorded(settings, outcome),
                    record: Record::default(),
                }),
            },
        };
    }

    async fn destroy(&mut self, handover: &Handover, private: Record, fault: &Fault) -> bool {
        let Some(object) = self.state.clone() else {
            return true;
        };
        let halt = self.arm(fault);
        let mut notes = Notes::default();
        let destroyed = self
            .engine(handover)
            .destroy(
                &object.settings,
                &object.recorded,
                private.clone(),
                &halt,
                &mut notes,
            )
            .await;
        self.disarm();
        match destroyed {
            Destroyed::Gone => {
                self.state = None;
                true
            }
            Destroyed::NothingWritten => {
                self.state = Some(Object {
                    record: private,
                    ..object
                });
                false
            }
            Destroyed::Kept { outcome, record } => {
                self.state = Some(Object {
                    recorded: object.recorded.with_outcome(outcome),
                    record,
                    ..object
                });
                false
            }
        }
    }

    fn violation(&self, what: &str) {
        self.store.0.lock().unwrap().violations.push(what.into());
    }

    /// Whether the object's record holds `identity` on `machine`.
    fn holds(&self, machine: &str, identity: &str) -> bool {
        self.state.as_ref().is_some_and(|o| {
            o.recorded
                .held(&o.record)
                .identity_on(machine)
                .is_some_and(|held| held.eq_ignore_ascii_case(identity))
        })
    }

    async fn step(&mut self, op: &Op) {
        match op {
            Op::Apply(args, fault) => {
                let handover = Handover::default();
                self.refresh(&handover).await;
                let settings = args.settings();
                let prior = self.state.clone();
                if let Some(planned) = self.plan(&handover, &settings, prior.as_ref()).await {
                    self.converge(&settings, planned, prior, fault).await;
                }
            }
            Op::Refresh => self.refresh(&Handover::default()).await,
            Op::Destroy(fault) => {
                let handover = Handover::default();
                self.refresh(&handover).await;
                let private = self
                    .state
                    .as_ref()
                    .map(|o| o.record.clone())
                    .unwrap_or_default();
                self.destroy(&handover, private, fault).await;
            }
            Op::Replace(fault) | Op::Taint(fault) => {
                let Some(old) = self.state.clone() else {
                    return;
                };
                let handover = Handover::default();
                self.refresh(&handover).await;
                let old = self.state.clone().unwrap_or(old);
                // Planned with its prior state, then the create with the same arguments; after
                // a taint, the create alone.
                if matches!(op, Op::Replace(_)) {
                    self.plan(&handover, &old.settings, Some(&old)).await;
                }
                let Some(create) = self.plan(&handover, &old.settings, None).await else {
                    return;
                };
                let applying = Handover::default();
                if self.destroy(&applying, create.record.clone(), fault).await {
                    self.converge(&old.settings, create, None, &Fault::None)
                        .await;
                }
            }
            Op::OthersAttach { slot, ours } => {
                let identity = if *ours { OURS[0] } else { OTHER };
                // Another writer attaching an identity the object holds there is, by ID,
                // the object's own: not a case the engine can tell.
                let id = machine_id(*slot);
                if !self.holds(&id, identity) {
                    self.store
                        .0
                        .lock()
                        .unwrap()
                        .others_write(*slot, identity, true);
                }
            }
            Op::OthersDetach { slot, ours } => {
                let identity = if *ours { OURS[0] } else { OTHER };
                self.store
                    .0
                    .lock()
                    .unwrap()
                    .others_write(*slot, identity, false);
            }
            Op::Recreate(slot) => {
                let mut world = self.store.0.lock().unwrap();
                world
                    .machines
                    .remove(&machine_id(*slot).to_ascii_lowercase());
                world.create(*slot, &[]);
            }
            Op::Delete(slot) => {
                self.store
                    .0
                    .lock()
                    .unwrap()
                    .machines
                    .remove(&machine_id(*slot).to_ascii_lowercase());
            }
            Op::Move {
                create_planned,
                refresh,
                order,
                first_plan_handed,
            } => {
                self.move_address(*create_planned, *refresh, *order, *first_plan_handed)
                    .await
            }
            Op::Consolidate {
                destroy_planned_first,
                order,
            } => self.consolidate(*destroy_planned_first, *order).await,
        }
    }

    /// The invariants, after every step.
    fn check(&self, step: usize, op: &Op) -> Result<(), TestCaseError> {
        let world = self.store.0.lock().unwrap();
        prop_assert!(
            world.violations.is_empty(),
            "step {step} {op:?}: {:?}",
            world.violations
        );
        for machine in world.machines.values() {
            let unique_id = machine.unique_id.clone().unwrap_or_default();
            for identity in &machine.user_assigned_identity_ids {
                let who = world
                    .attached_by
                    .get(&(unique_id.clone(), identity.to_ascii_lowercase()))
                    .copied();
                let held = self.holds(&machine.id, identity);
                let uncertain = self.state.as_ref().is_some_and(|o| {
                    o.record
                        .uncertain
                        .iter()
                        .any(|u| u.eq_ignore_ascii_case(&machine.id))
                });
                if who == Some(Who::Us) && !uncertain {
                    prop_assert!(
                        held,
                        "step {step} {op:?}: {identity} on {} was attached by us and is not recorded",
                        machine.id
                    );
                }
                if who == Some(Who::Other) {
                    prop_assert!(
                        !held,
                        "step {step} {op:?}: {identity} on {} was attached by another writer and is recorded as ours",
                        machine.id
                    );
                }
            }
        }
        Ok(())
    }
}

/// Runs `ops` on a world seeded with `world_seed` (per slot: exists, holds another writer's
/// identity), then a destroy; returns how many writes of ours took one of our identities
/// off a machine before that destroy.
fn run(world_seed: Vec<(bool, bool)>, ops: Vec<Op>) -> Result<usize, TestCaseError> {
    let mut world = World::default();
    for (slot, (exists, holds_other)) in world_seed.into_iter().enumerate() {
        if exists {
            world.create(slot, if holds_other { &[OTHER] } else { &[] });
        }
    }
    let mut run = Run {
        store: FakeStore(Mutex::new(world)),
        state: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (step, op) in ops.iter().enumerate() {
            run.step(op).await;
            run.check(step, op)?;
        }
        let detached_ours = run.store.0.lock().unwrap().detached_ours;
        // The end of every sequence: a destroy that is not interrupted restores exactly.
        run.step(&Op::Destroy(Fault::None)).await;
        run.check(ops.len(), &Op::Destroy(Fault::None))?;
        prop_assert!(run.state.is_none(), "the last destroy failed");
        let world = run.store.0.lock().unwrap();
        let ours: Vec<_> = world
            .attached_by
            .iter()
            .filter(|(_, who)| **who == Who::Us)
            .collect();
        let present: BTreeSet<&String> = world
            .machines
            .values()
            .filter_map(|m| m.unique_id.as_ref())
            .collect();
        prop_assert!(
            ours.iter()
                .all(|((unique_id, _), _)| !present.contains(unique_id)),
            "destroy left identities of ours: {ours:?}"
        );
        Ok(detached_ours)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_keep_the_invariants(
        world in proptest::collection::vec((prop::bool::weighted(0.85), any::<bool>()), SLOTS.len()),
        ops in proptest::collection::vec(op(), 1..25),
    ) {
        run(world, ops)?;
    }
}
