//! Destroy: take the identity back from exactly the machines this object attached it to,
//! except those handed over to the object replacing it; on failure, record what still
//! holds an identity from us.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::assignment::{Assignment, Recorded, APPLY_LISTING_MAX_AGE};
use crate::engine::handover::{Change, Handover};
use crate::engine::list::{inventory, unlisted_held};
use crate::engine::notes::Notes;
use crate::engine::ownership::{Outcome, Settings, Write};
use crate::engine::record::{
    contains_ignoring_case, forget_recreated, job_for, kept_for_successor, listed_spelling,
    spelled_as_before, unique_ids_of, warn_moved_without_block, warn_uncertain, Record,
};
use crate::engine::store::Stopping;
use crate::engine::write::{report_failures, settle, write_batch};

/// What a destroy left.
// One per operation, never held in bulk: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Destroyed {
    /// Nothing was written (stopped first, or the machines could not be listed): the object
    /// keeps its state and record.
    NothingWritten,
    /// Gone.
    Gone,
    /// Some machines still hold an identity from us: the object stays with these lists
    /// and record.
    Kept { outcome: Outcome, record: Record },
}

/// Plans the destroy of `prior` (with `settings`, when its state can be read): the warnings
/// in `notes`, and the record its apply gets, made from its own (`record`).
///
/// An object planned before it in this process with a change (a create: an address changed
/// without `moved`; an update of another object over the same machines) that keeps machines
/// this object attached its identity to showed them as kept, and Terraform plans it again
/// during apply, maybe after this destroy: this destroy leaves them holding the identity
/// (`Record::keeps`) for that object to adopt, so that both plans agree. Either order of the
/// two plans is told of the other ([`crate::engine::handover::PlannedReaches`]).
pub fn plan_destroy(
    handover: &Handover,
    settings: Option<&Settings>,
    prior: &Recorded,
    record: &mut Record,
    notes: &mut Notes,
) {
    if let Some(settings) = settings {
        let created = handover.reaches.note_change(Change::Destroy, settings);
        warn_moved_without_block(Change::Destroy, settings, &created, notes);
    }
    let held = prior.held(record);
    handover.reaches.note_held_by_destroyed(&held);
    record.keeps.extend(handover.reaches.kept_by_change(&held));
    warn_uncertain(notes, &record.uncertain, " Destroy leaves them holding it.");
}

impl Assignment<'_> {
    /// Destroys the object `prior` (with `settings`). `private` is the record Terraform
    /// hands the destroy: in a replacement, the new object's planned record (the machines
    /// it takes over keep the identity); otherwise its own.
    pub async fn destroy(
        &self,
        settings: &Settings,
        prior: &Recorded,
        private: Record,
        halt: &dyn Stopping,
        notes: &mut Notes,
    ) -> Destroyed {
        let mut held = prior.held(&private);
        let mut turns = Vec::new();
        for identity in held.identities() {
            match self.wait_for_turn(&identity, halt).await {
                Some(turn) => turns.push(turn),
                None => {
                    notes.error("Stopped before any write", &halt.reason());
                    return Destroyed::NothingWritten;
                }
            }
        }
        let (inventory, unreadable) = match inventory(
            self.store,
            settings,
            None,
            &held,
            APPLY_LISTING_MAX_AGE,
        )
        .await
        {
            Ok(found) => found,
            // Destroy needs only the machines it holds, not the scope's listing: when the
            // listing fails (read rights narrowed to resource groups; an estate's
            // subscription that left its scope while it could not be listed, kept until
            // now), each is read by its own ID, as a machine missing from a listing is.
            // One that cannot be read either fails the destroy below, naming it, and stays
            // in state. (Soak seeds 1023, 1025, 1111, 1113: a replacement's destroy failed
            // on the listing alone.)
            Err(error) => {
                tracing::warn!(scope = %settings.scope, %error, "cannot list the machines in scope; reading those holding an identity from us by their ID");
                unlisted_held(self.store, &[], &held).await
            }
        };
        forget_recreated(&mut held, &inventory);
        let mut jobs = BTreeMap::new();
        // Machines holding an identity from us that cannot be read: not written, kept.
        let mut not_read: BTreeMap<String, String> = BTreeMap::new();
        let mut kept = 0usize;
        for (machine, identity) in held.iter() {
            let taken_over = contains_ignoring_case(&private.taken_over, machine);
            let claimed = self.handover.is_claimed(identity, machine)
                || kept_for_successor(&private, machine, identity);
            if claimed {
                self.handover.hand_over(identity, machine);
            }
            if taken_over || claimed {
                kept += 1;
                continue;
            }
            if unreadable.contains_key(machine) {
                not_read.insert(machine.clone(), identity.clone());
                continue;
            }
            jobs.insert(
                machine.clone(),
                Write::Detach {
                    identity_id: identity.clone(),
                },
            );
        }
        tracing::debug!(releases = jobs.len(), kept, "destroying");
        let report = write_batch(self.store, &inventory, &jobs, settings, halt.token()).await;
        drop(turns);
        warn_uncertain(notes, &private.uncertain, " Destroy left them holding it.");
        report_failures(
            notes,
            "take the identity back from",
            &report,
            &halt.reason(),
        );
        if !not_read.is_empty() {
            notes.error(
                &format!(
                    "Could not take the identity back from {} machine(s)",
                    not_read.len()
                ),
                &format!(
                    "They are missing from the listing and reading them by ID failed; state keeps them. Grant the provider's principal read and write access to them, then destroy again.\n{}",
                    not_read
                        .keys()
                        .take(50)
                        .map(|machine| format!("- {machine}: {}", unreadable[machine]))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            );
        }
        settle(self.store, settings, &report.succeeded, halt.token(), notes).await;
        // Machines left holding an identity from us for the object replacing this one.
        let handed: Vec<(String, String)> = held
            .iter()
            .filter(|(machine, identity)| {
                contains_ignoring_case(&private.taken_over, machine)
                    || kept_for_successor(&private, machine, identity)
            })
            .map(|(machine, identity)| (machine.clone(), identity.clone()))
            .collect();
        if !handed.is_empty() && halt.is_halted() && !notes.has_errors() {
            // Stopped (Ctrl-C, the deadline): Terraform does not start the create, which
            // would record them. They stay ours until it does.
            notes.error(
                &format!(
                    "Stopped before the replacement took over {} machine(s)",
                    handed.len()
                ),
                &format!(
                    "{} They keep the identity and stay recorded in this object; apply again to finish the replacement.",
                    halt.reason()
                ),
            );
        }
        if kept > 0 && !notes.has_errors() {
            tracing::info!(
                kept,
                "machines handed over to the object replacing this one"
            );
            // The replacement is planned again in this process before it is applied: it
            // finds here what it takes over, under its own key (whatever its scope).
            match &private.successor {
                Some(successor) => self
                    .handover
                    .record_owned_by(successor, &private.taken_over),
                None => self.handover.record_owned(
                    self.kind,
                    &settings.scope.to_string(),
                    &settings.identity_id,
                    &private.taken_over,
                ),
            }
        }
        if !notes.has_errors() {
            return Destroyed::Gone;
        }
        // Terraform creates no replacement after a failed destroy: what this destroy meant to
        // hand over is still ours.
        if let Some(successor) = &private.successor {
            self.handover.record_owned_by(successor, &BTreeSet::new());
        }
        // Keep in state exactly the machines that still hold an identity from us.
        let mut outcome = prior.outcome.clone();
        let mut remaining = Record {
            uncertain: private.uncertain.clone(),
            ..Record::default()
        };
        outcome.assigned_ids.clear();
        for (machine, identity) in &handed {
            if identity.eq_ignore_ascii_case(&settings.identity_id) {
                outcome
                    .assigned_ids
                    .insert(listed_spelling(&inventory, machine));
            } else {
                remaining
                    .pending_release
                    .insert(machine.clone(), identity.clone());
            }
        }
        for id in report.failed_or_not_started() {
            match job_for(&jobs, id) {
                Some(Write::Detach { identity_id })
                    if identity_id.eq_ignore_ascii_case(&settings.identity_id) =>
                {
                    outcome.assigned_ids.insert(id.clone());
                }
                Some(Write::Detach { identity_id }) => {
                    remaining
                        .pending_release
                        .insert(id.clone(), identity_id.clone());
                }
                _ => {}
            }
        }
        for (machine, identity) in &not_read {
            if identity.eq_ignore_ascii_case(&settings.identity_id) {
                outcome
                    .assigned_ids
                    .insert(spelled_as_before(&prior.outcome.assigned_ids, machine));
            } else {
                remaining
                    .pending_release
                    .insert(machine.clone(), identity.clone());
            }
        }
        let new_state = prior.with_outcome(outcome);
        remaining.unique_ids = unique_ids_of(&new_state.held(&remaining), &held, &inventory);
        Destroyed::Kept {
            outcome: new_state.outcome,
            record: remaining,
        }
    }
}
