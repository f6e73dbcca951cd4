//! Plan: what an object will attach, keep and give back, decided against the machines as
//! they are, and the record the apply gets with it.

use std::collections::BTreeSet;

use crate::engine::assignment::{Assignment, Recorded, PLAN_LISTING_MAX_AGE};
use crate::engine::handover::{pending_key, Change, Owed};
use crate::engine::list::inventory;
use crate::engine::notes::Notes;
use crate::engine::ownership::{self, Held, Outcome, Settings};
use crate::engine::record::{
    contains_ignoring_case, forget_recreated, keep_unreadable, uncertain_after_refresh, warn_lost,
    warn_moved_without_block, warn_overlap, warn_uncertain, Record,
};

/// What an object is planned from.
pub struct PlanInput<'a> {
    /// The arguments planned.
    pub settings: &'a Settings,
    /// The object as it is, or `None` for a create.
    pub prior: Option<&'a Recorded>,
    /// The arguments it has now (`None` for a create).
    pub previous: Option<&'a Settings>,
    /// Its record now.
    pub prior_record: Record,
    /// What the first plan answered, handed back by Terraform 1.16+ to the plan it makes
    /// during apply (else the default).
    pub first_plan: Record,
    /// The key of its hand-over records ([`crate::engine::handover::object_key`]).
    pub object_key: String,
    /// Whether Terraform hands this plan's record back to the plan it makes during apply.
    pub store_planned_private: bool,
}

/// A plan: the lists (`None` while they are decided at apply) and the record.
pub struct Planned {
    pub outcome: Option<Outcome>,
    pub record: Record,
}

impl Assignment<'_> {
    /// Warns when objects planned before this one in the same run reach some of its
    /// machines with the same identity; for a create (`is_create`), also when they are
    /// destroyed in this plan.
    pub fn note_reach(&self, settings: &Settings, is_create: bool, notes: &mut Notes) {
        let overlapping = self.handover.reaches.note(settings);
        warn_overlap(settings, &overlapping, notes);
        if is_create {
            let destroyed = self.handover.reaches.note_change(Change::Create, settings);
            warn_moved_without_block(Change::Create, settings, &destroyed, notes);
        }
    }

    /// Plans an object. `None` when it cannot be planned (an error in `notes`).
    pub async fn plan(&self, input: PlanInput<'_>, notes: &mut Notes) -> Option<Planned> {
        let settings = input.settings;
        let mut private = Record::default();
        let first_plan = input.first_plan;
        let mut held = match input.prior {
            None => {
                // A create. If it replaces an object with the same scope and identity (taint,
                // `-replace`, a changed address), that object was refreshed or planned just
                // before in this process: take over what it owns. Terraform 1.16+ also hands
                // the plan in the apply what the first plan answered: with
                // create_before_destroy the object replaced is not refreshed in the apply's
                // process, and this is how the create learns what it takes over there.
                // Found by object first (a changed `scope` or another object of this scope
                // and identity cannot hide it), then by scope and identity (a taint, a
                // changed address).
                let mut taken_over = self.handover.owned_by_object(&input.object_key);
                if taken_over.is_empty() {
                    taken_over = self.handover.owned_by_predecessor(
                        self.kind,
                        &settings.scope.to_string(),
                        &settings.identity_id,
                    );
                }
                taken_over.extend(first_plan.taken_over);
                // Releases the object it replaces still owes (an interrupted change of
                // `identity_id`): Terraform hands that object's destroy this record, not its
                // own, so they travel here, or they would be made nowhere and recorded nowhere.
                let mut owed = self.handover.pending_of(&input.object_key);
                if owed.releases.is_empty() {
                    owed = self.handover.pending_of(&pending_key(
                        self.kind,
                        &settings.scope.to_string(),
                        &settings.identity_id,
                    ));
                }
                owed.releases.extend(first_plan.pending_release);
                owed.unique_ids.extend(first_plan.unique_ids);
                private.pending_release = owed.releases;
                private.unique_ids = owed.unique_ids;
                private.successor = Some(input.object_key.clone());
                private.taken_over = taken_over.clone();
                Held::new(&settings.identity_id, &taken_over)
            }
            Some(prior) => {
                let prior_private = input.prior_record;
                let held = prior.held(&prior_private);
                self.record_owned(prior, &held);
                // Replaced (`-replace`), this object is planned again right after as a create
                // with this same configuration: it takes over what this one owns with the
                // identity it will have, whatever its scope.
                let mine: BTreeSet<String> = held
                    .iter()
                    .filter(|(_, identity)| identity.eq_ignore_ascii_case(&settings.identity_id))
                    .map(|(machine, _)| machine.clone())
                    .collect();
                self.handover.record_owned_by(&input.object_key, &mine);
                // And it carries the releases this one still owes, for this one's destroy.
                let owed = Owed::of(&prior_private);
                self.handover.record_pending(&input.object_key, &owed);
                self.record_pending(prior, &owed);
                private.not_ours = prior_private.not_ours;
                private.pending_release = prior_private.pending_release;
                // Without a refresh (`-refresh=false`) the prior state still lists adopted
                // machines as compliant: they stay ours only if the plan carries them.
                private.adopted = prior_private.adopted;
                private.unique_ids = prior_private.unique_ids;
                private.uncertain = prior_private.uncertain;
                private.lost_streak = prior_private.lost_streak;
                held
            }
        };
        let (inventory, unreadable) = match inventory(
            self.store,
            settings,
            input.previous,
            &held,
            PLAN_LISTING_MAX_AGE,
        )
        .await
        {
            Ok(found) => found,
            Err(error) if !private.taken_over.is_empty() => {
                // A create taking over what the object it replaces left holding the
                // identity (that object may be destroyed already): failing here would
                // leave those machines recorded nowhere. Its apply lists again, and
                // records them even if that fails too.
                notes.warning(
                    "Cannot list the machines in scope",
                    &format!(
                        "{error}\nThe lists are decided at apply, against the machines as they are then."
                    ),
                );
                return Some(Planned {
                    outcome: None,
                    record: private,
                });
            }
            Err(error) => {
                notes.error_at("scope", "Cannot list the machines in scope", &error);
                return None;
            }
        };
        forget_recreated(&mut held, &inventory);
        let mut transition = ownership::transition(&inventory, settings, Some(&held));
        keep_unreadable(
            &mut transition.outcome,
            &unreadable,
            &held,
            &settings.identity_id,
            &input.prior.map(|p| p.outcome.clone()).unwrap_or_default(),
            notes,
        );
        warn_lost(&private.lost_streak, &transition.writes, notes);
        // The plan Terraform 1.16+ makes during apply shows again what the first plan
        // showed, whatever changed since: the apply then does what was shown, and records
        // the truth (see `converge`). Older Terraform plans again from the listing.
        let shown_again = first_plan.shown.is_some();
        let outcome = first_plan.shown.unwrap_or(transition.outcome);
        tracing::debug!(
            creating = input.prior.is_none(),
            taken_over = private.taken_over.len(),
            assigned = outcome.assigned_ids.len(),
            compliant = outcome.compliant_ids.len(),
            writes = transition.writes.len(),
            "planned"
        );
        // Terraform plans every object again in the apply process just before applying it:
        // from then on, a destroy running alongside leaves these machines alone.
        self.handover.claim(&settings.identity_id, outcome.kept());
        private
            .taken_over
            .retain(|id| contains_ignoring_case(&outcome.assigned_ids, id));
        if input.prior.is_none() {
            private.keeps = outcome
                .compliant_ids
                .iter()
                .map(|id| (id.to_ascii_lowercase(), settings.identity_id.clone()))
                .collect();
        }
        // Terraform plans a changed object again during apply, just before applying it, and
        // refuses an answer that differs from this one. A destroy planned in this process
        // (an address changed without `moved`, an overlapping object removed) may run there
        // first, and Terraform orders neither the two plans nor the two applies. Planned
        // before that destroy, a change leaves what it keeps: the destroy leaves those
        // machines holding the identity, and this object adopts them. Planned after it, an
        // object that keeps machines the destroy holds leaves its lists to the apply.
        let reaches = &self.handover.reaches;
        let changes = match input.prior {
            None => true,
            Some(prior) => prior.outcome != outcome || input.previous != Some(settings),
        };
        if changes {
            reaches.note_kept_by_change(&settings.identity_id, outcome.kept());
        }
        let next_to_a_destroy =
            !shown_again && reaches.any_held_by_destroyed(&settings.identity_id, outcome.kept());
        let planned = if private.taken_over.is_empty() && !next_to_a_destroy {
            if input.store_planned_private {
                private.shown = Some(outcome.clone());
            }
            Some(outcome.clone())
        } else {
            // Terraform plans this object again during apply, in another process, where the
            // object it replaces (or the destroy next to it) may already have run (or, with
            // create_before_destroy, the old object is not refreshed yet): the lists then
            // come out differently, so they stay unknown here.
            tracing::info!(
                taken_over = private.taken_over.len(),
                next_to_a_destroy,
                "the lists are decided at apply"
            );
            None
        };
        private.uncertain = uncertain_after_refresh(&private.uncertain, &outcome);
        warn_uncertain(notes, &private.uncertain, "");
        Some(Planned {
            outcome: planned,
            record: private,
        })
    }
}
