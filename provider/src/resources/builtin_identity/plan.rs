//! Planning: the defaults that depend on other arguments, replacement that compares
//! meanings rather than text, what only Azure can check, and the lock a plan places or
//! holds. Destroy and the declared checks are the adapter's ([`tfplugin::typed`]).

use std::sync::Arc;

use tfplugin::typed::{Maybe, Plan, Planned};
use tfplugin::{AttributePath, Diagnostics};

use super::access;
use super::locks::{lock_plan, LockPlan};
use super::model::{
    as_recorded, plan_target, recorded_value, state_value, with_dependent_defaults, Model,
    Ownership, Target,
};
use super::{BuiltinIdentity, LOCK_PERMISSION};
use crate::arguments;
use crate::azure::ids;
use crate::azure::AzureClients;

impl BuiltinIdentity {
    pub(super) async fn plan_change(
        &self,
        clients: Option<&Arc<AzureClients>>,
        request: Plan<Model, Ownership>,
    ) -> Planned<Model, Ownership> {
        let mut response = Planned::new(request.proposed.clone(), request.prior_private.clone());
        let provider_subscription = clients.map(|c| c.subscription_id().to_string());
        let arguments = with_dependent_defaults(&request.config, provider_subscription.as_deref());
        let prior = request.prior.as_ref();
        let target = match plan_target(&arguments) {
            Ok(Some(target)) => target,
            Ok(None) => {
                response.state = unknown_computed(arguments);
                response.requires_replace = replacements(prior, &response.state);
                return response;
            }
            Err(reason) => {
                response.diagnostics.error("Invalid arguments", &reason);
                return response;
            }
        };
        if let Some(clients) = clients {
            let checks = checks_against_azure(clients, &request, &target).await;
            if checks.has_errors() {
                response.diagnostics = checks;
                return response;
            }
        }
        if !target.existing {
            // Resources planned after this one in the same run may name this identity before
            // it exists; they find here that it will.
            self.data
                .handover()
                .note_planned_identity(&target.identity.to_string());
        }
        let mut planned = state_value(&request.config, &target, None, true);
        // A lock still to be placed may not be placeable (a principal without the right): its
        // ID is known only once it exists, so apply can honestly report it missing.
        let lock_missing = prior.is_none_or(|prior| prior.lock_id.is_null());
        if target.lock && lock_missing {
            planned.lock_id = Maybe::Unknown;
        }
        if let Some(prior) = prior {
            let prior_id = prior.id.as_str().unwrap_or_default();
            let replacing = replacements(Some(prior), &planned);
            if replacing.is_empty() && prior_id.eq_ignore_ascii_case(&target.identity.to_string()) {
                // The identity as recorded: a case-only difference is no change.
                let kept = as_recorded(&target, prior);
                planned = recorded_value(&request.config, prior, &kept, None, true);
                if target.lock && lock_missing {
                    planned.lock_id = Maybe::Unknown;
                }
                planned = with_prior_identity(planned, prior);
                let unreadable = request.prior_private.unreadable.as_deref();
                let wanted = target.lock && lock_missing;
                let held = match (clients, access::held_lock(&kept, wanted, unreadable)) {
                    // Its subscription could not be read: nothing is added for it.
                    (_, Some(detail)) => Some(detail),
                    (Some(clients), None) if wanted => {
                        let permissions = clients
                            .authorization
                            .permissions(&kept.identity.to_string())
                            .await
                            .map_err(|e| e.to_string());
                        match lock_plan(
                            &kept,
                            request.prior_private.lock_denied.as_ref(),
                            permissions.as_deref().map_err(String::as_str),
                        ) {
                            LockPlan::Hold(detail) => Some(detail),
                            LockPlan::Place => None,
                        }
                    }
                    _ => None,
                };
                if let Some(detail) = held {
                    planned.lock_id = Maybe::Null;
                    response.diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "The identity's lock is missing",
                        &detail,
                    );
                } else if target.lock && lock_missing {
                    response.diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "The identity's lock is missing",
                        &format!(
                            "{} has no lock `{}`; this apply places it, in place (the identity is kept). Placing it needs `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator; Contributor excludes it).",
                            target.identity,
                            target.lock_name()
                        ),
                    );
                }
            }
            let changed = !replacing.is_empty() || planned != *prior;
            if let Some(detail) = access::change_warning(
                &target,
                changed,
                request.prior_private.unreadable.as_deref(),
            ) {
                response
                    .diagnostics
                    .warning(&access::change_summary(&target), &detail);
            }
            response.requires_replace = replacing;
        }
        response.state = planned;
        response
    }
}

/// Checks only Azure can answer, once the values are known: regions the target's
/// subscription does not offer (for an identity this resource creates), and your own
/// identity when it does not exist (on create, or when it changes). When Azure cannot
/// tell (a principal without the right to read), nothing is refused: apply will tell.
async fn checks_against_azure(
    clients: &AzureClients,
    request: &Plan<Model, Ownership>,
    target: &Target,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    let subscription = target.identity.subscription_id();
    if target.existing {
        let existing = request
            .config
            .existing_identity_id
            .as_str()
            .unwrap_or_default();
        let before = request
            .prior
            .as_ref()
            .and_then(|prior| prior.existing_identity_id.as_str());
        let changed = before.is_none_or(|before| {
            arguments::normalize_arm_id(before) != arguments::normalize_arm_id(existing)
        });
        if changed {
            diagnostics.extend(
                arguments::check_identity_exists(clients, "existing_identity_id", existing).await,
            );
        }
        return diagnostics;
    }
    diagnostics.extend(
        arguments::check_regions_exist(
            clients,
            subscription,
            "location",
            std::slice::from_ref(&target.location),
        )
        .await,
    );
    if let Some(group_location) = request.config.resource_group_location.as_str() {
        diagnostics.extend(
            arguments::check_regions_exist(
                clients,
                subscription,
                "resource_group_location",
                &[group_location.to_string()],
            )
            .await,
        );
    }
    diagnostics
}

/// The planned value with the identity's server-generated IDs as recorded.
fn with_prior_identity(mut planned: Model, prior: &Model) -> Model {
    for (field, recorded) in [
        (&mut planned.principal_id, &prior.principal_id),
        (&mut planned.client_id, &prior.client_id),
        (&mut planned.tenant_id, &prior.tenant_id),
    ] {
        if recorded.is_known() {
            *field = recorded.clone();
        }
    }
    planned
}

/// The planned value while some argument is unknown: the arguments with their defaults,
/// everything computed unknown.
pub(super) fn unknown_computed(arguments: Model) -> Model {
    Model {
        id: Maybe::Unknown,
        principal_id: Maybe::Unknown,
        client_id: Maybe::Unknown,
        tenant_id: Maybe::Unknown,
        lock_id: Maybe::Unknown,
        resource_group_id: Maybe::Unknown,
        ..arguments
    }
}

/// Replacement the declarative layer cannot judge, because it compares text: `location` in
/// either spelling, `existing_identity_id` with or without a trailing `/` (any case), and
/// `subscription_id`, which for your own identity (before and after) only decides the lock's
/// default. An unknown planned value may differ. (`name` and `resource_group_name` are
/// declared `requires_replace_ignoring_case`.)
pub(super) fn replacements(prior: Option<&Model>, planned: &Model) -> Vec<AttributePath> {
    let Some(prior) = prior else {
        return Vec::new();
    };
    let differs = |before: &Maybe<String>,
                   after: &Maybe<String>,
                   normalize: &dyn Fn(&str) -> String| {
        match (before.as_str(), after.as_str()) {
            (Some(a), Some(b)) => normalize(a) != normalize(b),
            _ => after.is_unknown() || before != after,
        }
    };
    let location = |text: &str| ids::normalize_location(text).unwrap_or(text.to_string());
    let byo = !prior.existing_identity_id.is_null() && !planned.existing_identity_id.is_null();
    let mut out = Vec::new();
    if differs(&prior.location, &planned.location, &location) {
        out.push(AttributePath::root("location"));
    }
    if differs(
        &prior.existing_identity_id,
        &planned.existing_identity_id,
        &arguments::normalize_arm_id,
    ) {
        out.push(AttributePath::root("existing_identity_id"));
    }
    if !byo
        && differs(
            &prior.subscription_id,
            &planned.subscription_id,
            &|text: &str| text.to_ascii_lowercase(),
        )
    {
        out.push(AttributePath::root("subscription_id"));
    }
    out
}
