//! One assignment's plan, apply, destroy and refresh in the engine's own terms (settings,
//! the recorded object, the record), with the engine's notes as diagnostics. The typed
//! functions of `resource.rs` (`plan_model`, `apply_model`, `destroy_model`,
//! `refresh_model`) call them, for a `mig_identity_assignment` object and for each slice of
//! a `mig_estate_assignment` alike. No Terraform request or state in here.

use tfplugin::Diagnostics;

use super::store::diagnostics;
use super::IdentityAssignment;
use crate::arguments;
use crate::azure::AzureClients;
use crate::engine::assignment::{Assignment, Recorded, Refreshed};
use crate::engine::converge::{ConvergeInput, Converged};
use crate::engine::destroy::Destroyed;
use crate::engine::handover::Handover;
use crate::engine::notes::Notes;
use crate::engine::plan::{PlanInput, Planned};
use crate::engine::record::Record;
use crate::ownership::Settings;
use crate::timeouts::Halt;

/// What only Azure can tell about the arguments, checked when they are new or changed (a
/// no-op plan makes no extra reads).
#[derive(Debug, Default)]
pub(super) struct Checks {
    /// `identity_id` is new or changed: check that the identity exists.
    pub identity_changed: bool,
    /// `locations` is new or changed: check that these regions exist (as written).
    pub regions: Option<Vec<String>>,
}

impl IdentityAssignment {
    /// The engine over these clients.
    pub(crate) fn engine<'a>(&'a self, clients: &'a AzureClients) -> Assignment<'a> {
        Assignment {
            store: &clients.compute,
            handover: self.data.handover(),
            kind: self.kind,
        }
    }

    /// Plans one assignment: `None` when it cannot be planned (an error says why).
    pub(super) async fn plan_one(
        &self,
        clients: &AzureClients,
        checks: Checks,
        input: PlanInput<'_>,
    ) -> (Option<Planned>, Diagnostics) {
        let settings = input.settings;
        let mut diagnostics = self.check_against_azure(clients, checks, settings).await;
        let engine = self.engine(clients);
        let mut notes = Notes::default();
        engine.note_reach(settings, input.prior.is_none(), &mut notes);
        diagnostics.extend(super::store::diagnostics(std::mem::take(&mut notes)));
        if diagnostics.has_errors() {
            return (None, diagnostics);
        }
        let planned = engine.plan(input, &mut notes).await;
        diagnostics.extend(super::store::diagnostics(notes));
        (planned, diagnostics)
    }

    /// Applies a create or an update of one assignment.
    pub(super) async fn apply_one(
        &self,
        clients: &AzureClients,
        input: ConvergeInput<'_>,
        halt: &Halt,
    ) -> (Converged, Diagnostics) {
        let mut notes = Notes::default();
        let converged = self.engine(clients).converge(input, halt, &mut notes).await;
        (converged, diagnostics(notes))
    }

    /// Destroys one assignment. `record` is the planned private state: in a replacement,
    /// the new object's (the machines it takes over keep the identity).
    pub(super) async fn destroy_one(
        &self,
        clients: &AzureClients,
        settings: &Settings,
        prior: &Recorded,
        record: Record,
        halt: &Halt,
    ) -> (Destroyed, Diagnostics) {
        let mut notes = Notes::default();
        let destroyed = self
            .engine(clients)
            .destroy(settings, prior, record, halt, &mut notes)
            .await;
        (destroyed, diagnostics(notes))
    }

    /// Refreshes one assignment: `Err` with an error when its machines cannot be listed.
    pub(super) async fn refresh_one(
        &self,
        clients: &AzureClients,
        settings: &Settings,
        state: &Recorded,
        record: Record,
    ) -> Result<(Refreshed, Diagnostics), Diagnostics> {
        let mut notes = Notes::default();
        match self
            .engine(clients)
            .refresh(settings, state, record, &mut notes)
            .await
        {
            Ok(refreshed) => Ok((refreshed, diagnostics(notes))),
            Err(error) => Err(Diagnostics::from_error(
                "Cannot list the machines in scope",
                &error,
            )),
        }
    }

    /// What only Azure can tell about the arguments: the identity exists, the regions do.
    async fn check_against_azure(
        &self,
        clients: &AzureClients,
        checks: Checks,
        settings: &Settings,
    ) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        if checks.identity_changed
            && !self
                .data
                .handover()
                .is_planned_identity(&settings.identity_id)
        {
            diagnostics.extend(
                arguments::check_identity_exists(clients, "identity_id", &settings.identity_id)
                    .await,
            );
        }
        if let Some(regions) = checks.regions {
            diagnostics.extend(
                arguments::check_regions_exist(
                    clients,
                    settings.scope.subscription_id(),
                    "locations",
                    &regions,
                )
                .await,
            );
        }
        diagnostics
    }
}

/// A destroy's plan (see [`crate::engine::destroy::plan_destroy`]): its warnings, about
/// machines whose ownership is uncertain and about an object of the same identity over the
/// same machines created in this plan (`settings`, when the prior state can be read: an
/// address changed without `moved`); `record` becomes the record its apply gets.
pub(crate) fn plan_destroy(
    handover: &Handover,
    settings: Option<&Settings>,
    prior: &Recorded,
    record: &mut Record,
) -> Diagnostics {
    let mut notes = Notes::default();
    crate::engine::destroy::plan_destroy(handover, settings, prior, record, &mut notes);
    diagnostics(notes)
}
