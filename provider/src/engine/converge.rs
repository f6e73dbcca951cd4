//! Apply (create or update): decide the writes the plan showed, write them, and record the
//! truth machine by machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::azure::compute::Machine;
use crate::engine::assignment::{Assignment, Recorded, APPLY_LISTING_MAX_AGE};
use crate::engine::list::inventory;
use crate::engine::notes::Notes;
use crate::engine::ownership::{self, Held, Outcome, Settings, Write};
use crate::engine::record::{
    contains_ignoring_case, forget_recreated, job_for, keep_unreadable, uncertain_after_apply,
    unique_ids_of, warn_uncertain, Record, Unreadable,
};
use crate::engine::store::Stopping;
use crate::engine::write::{report_failures, settle, write_batch, BatchReport};

/// What an object is applied from.
pub struct ConvergeInput<'a> {
    /// The arguments planned.
    pub settings: &'a Settings,
    /// The planned object; `None` lists when the plan left them to apply.
    pub planned: &'a Recorded,
    pub planned_outcome: Option<Outcome>,
    /// The object as it is, or `None` for a create.
    pub prior: Option<&'a Recorded>,
    /// The arguments it has now (`None` for a create).
    pub previous: Option<&'a Settings>,
    /// The record the plan made.
    pub planned_record: Record,
}

/// What an apply left.
// One per operation, never held in bulk: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Converged {
    /// Nothing was written (stopped first, or the machines could not be listed): an existing
    /// object keeps its state and planned record; a create records `created` (`None`: it is
    /// not created).
    NothingWritten { created: Option<Outcome> },
    /// The lists and record after the writes.
    Done { outcome: Outcome, record: Record },
}

/// The writes that make the machines what the plan showed.
struct Jobs {
    jobs: BTreeMap<String, Write>,
    adopted: BTreeSet<String>,
    handed_over: BTreeSet<String>,
}

impl Assignment<'_> {
    /// Applies a create or update.
    pub async fn converge(
        &self,
        input: ConvergeInput<'_>,
        halt: &dyn Stopping,
        notes: &mut Notes,
    ) -> Converged {
        let settings = input.settings;
        let planned_private = input.planned_record;
        let mut held = match input.prior {
            None => Held::new(&settings.identity_id, &planned_private.taken_over),
            Some(prior) => prior.held(&planned_private),
        };
        let took_over = Outcome {
            assigned_ids: planned_private.taken_over.clone(),
            ..Outcome::default()
        };
        // Our turn with this identity: a destroy of another object of it (the one this replaces,
        // say) finishes its writes first, or waits for ours.
        let Some(turn) = self.wait_for_turn(&settings.identity_id, halt).await else {
            notes.error("Stopped before any write", &halt.reason());
            // A create keeps what it took over from the object it replaces (whose destroy
            // left those machines holding the identity for it).
            return Converged::NothingWritten {
                created: Some(took_over).filter(|o| !o.assigned_ids.is_empty()),
            };
        };
        let planned_kept = input.planned.outcome.clone();
        self.handover
            .claim(&settings.identity_id, planned_kept.kept());
        let (inventory, unreadable) = match inventory(
            self.store,
            settings,
            input.previous,
            &held,
            APPLY_LISTING_MAX_AGE,
        )
        .await
        {
            Ok(found) => found,
            Err(error) => {
                // Nothing was written. A create keeps what it took over from the object it
                // replaces (which left those machines alone), so nothing is lost.
                notes.error("Cannot list the machines in scope", &error);
                return Converged::NothingWritten {
                    created: Some(took_over),
                };
            }
        };
        forget_recreated(&mut held, &inventory);
        // A create that takes over another object's machines left its lists unknown in the
        // plan (see `plan`): it decides them now, against the machines as they are.
        let planned_outcome = input
            .planned_outcome
            .unwrap_or_else(|| ownership::transition(&inventory, settings, Some(&held)).outcome);
        let Jobs {
            jobs,
            mut adopted,
            handed_over,
        } = self.jobs(settings, &planned_outcome, &held, &inventory, &unreadable);
        tracing::debug!(
            writes = jobs.len(),
            adopted = adopted.len(),
            handed_over = handed_over.len(),
            planned_assigned = planned_outcome.assigned_ids.len(),
            planned_compliant = planned_outcome.compliant_ids.len(),
            "applying"
        );
        let report = write_batch(self.store, &inventory, &jobs, settings, halt.token()).await;
        drop(turn);
        let attaching: BTreeMap<String, Write> = jobs
            .iter()
            .filter(|(_, w)| !matches!(w, Write::Detach { .. }))
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect();
        let (attach_report, release_report) = report.split(&attaching);
        report_failures(
            notes,
            "attach the identity to",
            &attach_report,
            &halt.reason(),
        );
        report_failures(
            notes,
            "take the identity back from",
            &release_report,
            &halt.reason(),
        );
        let written: BTreeSet<String> = attach_report
            .succeeded
            .union(&release_report.succeeded)
            .cloned()
            .collect();
        settle(self.store, settings, &written, halt.token(), notes).await;
        for id in &planned_outcome.compliant_ids {
            if jobs.contains_key(id) && attach_report.reached(id) {
                adopted.insert(id.clone());
            }
        }
        let (outcome, mut private) = recorded_after_apply(
            settings,
            &planned_outcome,
            &planned_private,
            &jobs,
            adopted,
            &attach_report,
            &release_report,
            &inventory,
            notes.has_errors(),
        );
        // Machines that could not be read stay recorded as they were.
        let mut outcome = outcome;
        keep_unreadable(
            &mut outcome,
            &unreadable,
            &held,
            &settings.identity_id,
            &planned_outcome,
            notes,
        );
        for machine in unreadable.keys() {
            if let Some(identity) = held.identity_on(machine) {
                if !identity.eq_ignore_ascii_case(&settings.identity_id) {
                    private
                        .pending_release
                        .insert(machine.clone(), identity.to_string());
                }
            }
        }
        private.uncertain = uncertain_after_apply(
            &planned_private.uncertain,
            &outcome,
            &private.adopted,
            &attach_report.uncertain,
        );
        warn_uncertain(notes, &attach_report.uncertain, "");
        let new_state = input.planned.with_outcome(outcome);
        private.unique_ids = unique_ids_of(&new_state.held(&private), &held, &inventory);
        private.lost_streak = planned_private.lost_streak.clone();
        let outcome = new_state.outcome;
        let claimed: Vec<&String> = outcome
            .assigned_ids
            .iter()
            .chain(outcome.compliant_ids.iter())
            .collect();
        self.handover.claim(&settings.identity_id, claimed);
        if !handed_over.is_empty() {
            tracing::info!(
                count = handed_over.len(),
                "machines left holding the identity for another object in this apply"
            );
        }
        Converged::Done {
            outcome,
            record: private,
        }
    }

    /// Exactly what the plan showed: planned machines that do not hold our identity from us
    /// yet, and our machines that leave (unless another object in this apply wants them to
    /// keep the identity).
    fn jobs(
        &self,
        settings: &Settings,
        planned_outcome: &Outcome,
        held: &Held,
        inventory: &[Machine],
        unreadable: &Unreadable,
    ) -> Jobs {
        let by_id: HashMap<String, &Machine> = inventory
            .iter()
            .map(|m| (m.id.to_ascii_lowercase(), m))
            .collect();
        let listed = |machine_id: &str| by_id.get(&machine_id.to_ascii_lowercase()).copied();
        let holds = |machine_id: &str, identity_id: &str| {
            listed(machine_id).is_some_and(|m| ownership::identity_block(m).holds(identity_id))
        };
        let planned_assigned: BTreeSet<String> = planned_outcome
            .assigned_ids
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        let mut jobs: BTreeMap<String, Write> = BTreeMap::new();
        for id in &planned_outcome.assigned_ids {
            if unreadable.contains_key(&id.to_ascii_lowercase()) {
                // Cannot be read: it stays as recorded.
                continue;
            }
            match held.identity_on(id).filter(|identity| holds(id, identity)) {
                Some(identity) if identity.eq_ignore_ascii_case(&settings.identity_id) => {}
                Some(old) => {
                    jobs.insert(
                        id.clone(),
                        Write::Swap {
                            from: old.to_string(),
                        },
                    );
                }
                // `adopt`: holding the identity already, it becomes ours without a write.
                None if settings.adopt && holds(id, &settings.identity_id) => {}
                None => {
                    jobs.insert(id.clone(), Write::Attach);
                }
            }
        }
        // Machines planned compliant that another object of this apply handed over, or that
        // lost the identity since the plan (stripped by a destroy that ran first): ours now.
        let mut adopted = BTreeSet::new();
        for id in &planned_outcome.compliant_ids {
            if self.handover.take_handed_over(&settings.identity_id, id) {
                adopted.insert(id.clone());
            } else if listed(id).is_some() && !holds(id, &settings.identity_id) {
                jobs.insert(id.clone(), Write::Attach);
            }
        }
        let mut handed_over = BTreeSet::new();
        for (machine, identity) in held.iter() {
            if planned_assigned.contains(&machine.to_ascii_lowercase()) {
                continue;
            }
            if !holds(machine, identity) {
                continue;
            }
            if self.handover.is_claimed(identity, machine) {
                self.handover.hand_over(identity, machine);
                handed_over.insert(machine.clone());
                continue;
            }
            jobs.insert(
                machine.clone(),
                Write::Detach {
                    identity_id: identity.clone(),
                },
            );
        }
        Jobs {
            jobs,
            adopted,
            handed_over,
        }
    }
}

/// The truth after an apply's writes, machine by machine: the lists, and the record's
/// `not_ours`, `adopted` and `pending_release`. A failed apply (`failed`) says exactly what
/// holds, since Terraform keeps its state unchecked against the plan.
#[allow(clippy::too_many_arguments)]
fn recorded_after_apply(
    settings: &Settings,
    planned_outcome: &Outcome,
    planned_private: &Record,
    jobs: &BTreeMap<String, Write>,
    adopted: BTreeSet<String>,
    attach_report: &BatchReport,
    release_report: &BatchReport,
    inventory: &[Machine],
    failed: bool,
) -> (Outcome, Record) {
    let mut outcome = planned_outcome.clone();
    let mut private = Record::default();
    for id in &planned_outcome.assigned_ids {
        let Some(write) = jobs.get(id) else { continue };
        if attach_report.already_done.contains(id)
            && !contains_ignoring_case(&planned_private.taken_over, id)
        {
            // Another writer attached it between plan and apply.
            private.not_ours.insert(id.clone());
        }
        if attach_report.uncertain.contains(id) {
            private.not_ours.insert(id.clone());
        }
        if !attach_report.reached(id) && !attach_report.uncertain.contains(id) {
            outcome.assigned_ids.remove(id);
            if let Write::Swap { from } = write {
                private.pending_release.insert(id.clone(), from.clone());
            }
        }
    }
    private.adopted = adopted;
    for id in release_report.failed_or_not_started() {
        match job_for(jobs, id) {
            // Still holds the identity from us: it stays in `assigned_ids`, where the
            // next plan shows it given back (a scope narrowed by Ctrl-C, say).
            Some(Write::Detach { identity_id })
                if identity_id.eq_ignore_ascii_case(&settings.identity_id) =>
            {
                let spelled = inventory
                    .iter()
                    .find(|m| m.id.eq_ignore_ascii_case(id))
                    .map_or_else(|| id.clone(), |m| m.id.clone());
                outcome.assigned_ids.insert(spelled);
            }
            Some(Write::Detach { identity_id }) => {
                private
                    .pending_release
                    .insert(id.clone(), identity_id.clone());
            }
            _ => {}
        }
    }
    if failed {
        // Terraform keeps a failed apply's state as returned, unchecked against the plan:
        // say exactly what holds.
        let not_ours = std::mem::take(&mut private.not_ours);
        outcome
            .assigned_ids
            .retain(|id| !contains_ignoring_case(&not_ours, id));
        outcome.compliant_ids.extend(not_ours);
        let adopted = std::mem::take(&mut private.adopted);
        outcome
            .compliant_ids
            .retain(|id| !contains_ignoring_case(&adopted, id));
        outcome.assigned_ids.extend(adopted);
    }
    (outcome, private)
}
