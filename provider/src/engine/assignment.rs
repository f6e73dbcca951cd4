//! One assignment object (a `mig_identity_assignment`, or a slice of a
//! `mig_estate_assignment`) as the engine runs it: [`Assignment`] and what it reads of an
//! existing object ([`Recorded`]); the refresh, and the state a failed replacement keeps.
//! Plan, apply and destroy are in `plan.rs`, `converge.rs` and `destroy.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::azure::ids::Scope;
use crate::engine::handover::Handover;
use crate::engine::list::inventory;
use crate::engine::notes::Notes;
use crate::engine::ownership::{self, Held, Outcome, Settings};
use crate::engine::record::{
    self, contains_ignoring_case, forget_recreated, keep_unreadable, kept_for_successor,
    uncertain_after_refresh, unique_ids_of, Record,
};
use crate::engine::store::{MachineStore, Stopping};

/// How old a listing of the machines refresh and plan accept: one refresh-and-plan of a
/// Terraform run shares a single listing between all objects over the same scope.
pub const PLAN_LISTING_MAX_AGE: Duration = Duration::from_secs(60);

/// How old a listing apply accepts. Writes carry `If-Match`, so a machine changed since
/// the listing is read again rather than overwritten; the bound only keeps the work fresh.
pub const APPLY_LISTING_MAX_AGE: Duration = Duration::from_secs(10);

/// An assignment object's engine: where its machines live, and what objects of one
/// provider process tell each other (see [`crate::engine::handover`]).
pub struct Assignment<'a> {
    pub store: &'a dyn MachineStore,
    pub handover: &'a Handover,
    /// What its objects are, for the keys of their hand-over records:
    /// `mig_identity_assignment`, or an estate's slice.
    pub kind: &'static str,
}

/// An existing object as its state records it: `scope` and `identity_id` as written there,
/// and its lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub scope: Option<String>,
    pub identity_id: Option<String>,
    pub outcome: Outcome,
}

impl Recorded {
    /// What it owns, by `record` (see [`record::held`]).
    pub fn held(&self, record: &Record) -> Held {
        record::held(
            self.identity_id.as_deref().unwrap_or_default(),
            &self.outcome,
            record,
        )
    }

    /// The same object with `outcome` as its lists.
    pub fn with_outcome(&self, outcome: Outcome) -> Recorded {
        Recorded {
            outcome,
            ..self.clone()
        }
    }
}

/// What a refresh found: the lists and the record.
pub struct Refreshed {
    pub outcome: Outcome,
    pub record: Record,
}

impl Assignment<'_> {
    /// This process's turn to change who holds `identity_id`, or `None` when stopped first.
    pub async fn wait_for_turn(
        &self,
        identity_id: &str,
        halt: &dyn Stopping,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        tokio::select! {
            turn = self.handover.writing(identity_id) => Some(turn),
            () = halt.token().cancelled() => None,
        }
    }

    /// Leaves what an existing object owns for a replacement planned in this process.
    pub fn record_owned(&self, recorded: &Recorded, held: &Held) {
        let (Some(scope), Some(identity_id)) = (&recorded.scope, &recorded.identity_id) else {
            return;
        };
        let machines: BTreeSet<String> = held
            .iter()
            .filter(|(_, identity)| identity.eq_ignore_ascii_case(identity_id))
            .map(|(machine, _)| machine.clone())
            .collect();
        let scope = Scope::parse(scope)
            .map(|s| s.to_string())
            .unwrap_or_default();
        self.handover
            .record_owned(self.kind, &scope, identity_id, &machines);
    }

    /// Refresh: the lists of `state` (with `settings`) against the machines as they are.
    /// `Err` with the listing's error when the machines cannot be listed.
    pub async fn refresh(
        &self,
        settings: &Settings,
        state: &Recorded,
        record: Record,
        notes: &mut Notes,
    ) -> Result<Refreshed, String> {
        let mut held = state.held(&record);
        let (inventory, unreadable) =
            inventory(self.store, settings, None, &held, PLAN_LISTING_MAX_AGE).await?;
        forget_recreated(&mut held, &inventory);
        // What we attached and is still there stays ours; anything else is decided afresh,
        // so a machine someone stripped by hand, or a new one, shows up in the next plan,
        // and a machine another writer attached during our apply becomes compliant.
        let mut refreshed = ownership::transition(&inventory, settings, Some(&held)).outcome;
        let holding: BTreeSet<String> = inventory
            .iter()
            .filter(|m| ownership::identity_block(m).holds(&settings.identity_id))
            .map(|m| m.id.to_ascii_lowercase())
            .collect();
        let lost = ownership::lost_since_last_apply(&held, &inventory, &settings.identity_id);
        let kept_ours: BTreeSet<String> = held
            .iter()
            .filter(|(machine, identity)| {
                identity.eq_ignore_ascii_case(&settings.identity_id) && holding.contains(*machine)
            })
            .map(|(machine, _)| machine.clone())
            .collect();
        let lost_streak = ownership::lost_streaks(&record.lost_streak, &lost, &kept_ours);
        refreshed.assigned_ids.retain(|id| {
            holding.contains(&id.to_ascii_lowercase())
                && held
                    .identity_on(id)
                    .is_some_and(|identity| identity.eq_ignore_ascii_case(&settings.identity_id))
        });
        // A machine of ours that changed on its side (tagged for exclusion, left with a
        // single identity of its owner's, moved out of reach) still holds the identity
        // from us: it stays recorded as ours, and the next plan shows it given back.
        let kept: BTreeSet<String> = refreshed
            .assigned_ids
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        for machine in &inventory {
            let ours = held
                .identity_on(&machine.id)
                .is_some_and(|identity| identity.eq_ignore_ascii_case(&settings.identity_id));
            let id = machine.id.to_ascii_lowercase();
            if ours && holding.contains(&id) && !kept.contains(&id) {
                refreshed.skipped.remove(&machine.id);
                refreshed.compliant_ids.remove(&machine.id);
                refreshed.noncompliant_ids.remove(&machine.id);
                refreshed.assigned_ids.insert(machine.id.clone());
            }
        }
        let still_pending: BTreeMap<String, String> = record
            .pending_release
            .into_iter()
            .filter(|(machine, identity)| {
                inventory
                    .iter()
                    .find(|m| m.id.eq_ignore_ascii_case(machine))
                    .is_none_or(|m| ownership::identity_block(m).holds(identity))
            })
            .collect();
        keep_unreadable(
            &mut refreshed,
            &unreadable,
            &held,
            &settings.identity_id,
            &state.outcome,
            notes,
        );
        let new_state = state.with_outcome(refreshed);
        self.record_owned(&new_state, &new_state.held(&Record::default()));
        let mut new_record = Record {
            pending_release: still_pending,
            uncertain: uncertain_after_refresh(&record.uncertain, &new_state.outcome),
            lost_streak,
            ..Record::default()
        };
        // Recorded from the listing where the state had none yet (states written before
        // unique IDs were kept): from here on, a machine created again is told apart.
        new_record.unique_ids = unique_ids_of(&new_state.held(&new_record), &held, &inventory);
        Ok(Refreshed {
            outcome: new_state.outcome,
            record: new_record,
        })
    }
}

/// For an estate whose destroy failed in another slice: the lists and record of a slice
/// whose destroy went through but left machines holding the identity for the object
/// replacing it. That object is not created after a failed destroy, so they are still this
/// one's: `None` when it handed nothing over.
pub fn handed_over(prior: &Recorded, planned: &Record) -> Option<(Outcome, Record)> {
    if planned.taken_over.is_empty() && planned.keeps.is_empty() {
        return None;
    }
    let identity_id = prior.identity_id.as_deref()?;
    let held = prior.held(planned);
    let before = &prior.outcome.assigned_ids;
    let mut outcome = prior.outcome.clone();
    outcome.assigned_ids.clear();
    let mut remaining = Record::default();
    for (machine, identity) in held.iter() {
        if !contains_ignoring_case(&planned.taken_over, machine)
            && !kept_for_successor(planned, machine, identity)
        {
            continue;
        }
        if identity.eq_ignore_ascii_case(identity_id) {
            outcome
                .assigned_ids
                .insert(record::spelled_as_before(before, machine));
        } else {
            remaining
                .pending_release
                .insert(machine.clone(), identity.clone());
        }
    }
    if outcome.assigned_ids.is_empty() && remaining.pending_release.is_empty() {
        return None;
    }
    let state = prior.with_outcome(outcome);
    remaining.unique_ids = unique_ids_of(&state.held(&remaining), &held, &[]);
    Some((state.outcome, remaining))
}
