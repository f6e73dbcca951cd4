//! Read (what Azure has now) and import (by ID or by identity), and the state a listing
//! (`terraform query`) reports.

use std::collections::BTreeMap;

use tfplugin::typed::{Applied, Existing, ImportKey, Imported, Maybe};
use tfplugin::{model, Diagnostics, Value};

use super::access::{self, Read};
use super::locks::lock_exists;
use super::model::{
    identity_id_from, known_tags, state_type, state_value, target_from_state, Model, Ownership,
    Target,
};
use super::{BuiltinIdentity, DEFAULT_RESOURCE_GROUP_LOCATION};
use crate::azure::identities::Identity;
use crate::azure::ids::{self, SubscriptionId, UserAssignedIdentityId};
use crate::azure::AzureClients;
use crate::timeouts::{Halt, Step};

impl BuiltinIdentity {
    /// What Azure has now; halted, the state is kept as it was.
    pub(super) async fn refresh(
        &self,
        clients: &AzureClients,
        request: Existing<Model, Ownership>,
        halt: &Halt,
    ) -> Applied<Model, Ownership> {
        let state = request.state;
        let mut response = Applied::new(Some(state.clone()), request.private);
        let Some(target) = target_from_state(&state) else {
            return response;
        };
        let halted = |response: &mut Applied<Model, Ownership>| {
            response.diagnostics.error(
                halt.summary(),
                &format!(
                    "{} Reading the identity did not finish; raise `timeouts.read` if it needs longer.",
                    halt.reason()
                ),
            )
        };
        let identity = match halt.run(clients.identities.get(&target.identity)).await {
            Step::Done(result) => match access::decide(&target, access::IDENTITY, result) {
                Read::Found(identity) => identity,
                Read::Gone => {
                    // Gone: Terraform plans to create it again.
                    response.state = None;
                    return response;
                }
                Read::Kept {
                    cause,
                    summary,
                    warning,
                } => return kept(response, cause, &summary, &warning),
                Read::Failed(error) => {
                    response
                        .diagnostics
                        .error("Cannot read the identity", &error);
                    return response;
                }
            },
            Step::NotSent | Step::Unknown => {
                halted(&mut response);
                return response;
            }
        };
        let lock_present = if target.lock {
            match halt.run(lock_exists(clients, &target)).await {
                Step::Done(result) => {
                    let result = result.map(|present| present.then_some(()));
                    match access::decide(&target, "the lock of the identity", result) {
                        Read::Found(()) => true,
                        Read::Gone => false,
                        // The identity was read, its lock not: the whole state is kept.
                        Read::Kept {
                            cause,
                            summary,
                            warning,
                        } => return kept(response, cause, &summary, &warning),
                        Read::Failed(error) => {
                            response.diagnostics.error("Cannot read the lock", &error);
                            return response;
                        }
                    }
                }
                Step::NotSent | Step::Unknown => {
                    halted(&mut response);
                    return response;
                }
            }
        } else {
            false
        };
        response.private.unreadable = None;
        let refreshed = Target {
            tags: if target.existing {
                BTreeMap::new()
            } else {
                identity.tags.clone()
            },
            location: ids::normalize_location(&identity.location)
                .unwrap_or(target.location.clone()),
            ..target
        };
        let mut new_state = state_value(&state, &refreshed, Some(&identity), lock_present);
        if state.tags.is_null() && refreshed.tags.is_empty() {
            new_state.tags = Maybe::Null;
        }
        // Keep the ID as recorded; ARM may spell it in another case.
        new_state.id = state.id.clone();
        response.state = Some(new_state);
        response
    }

    pub(super) async fn import_object(
        &self,
        clients: &AzureClients,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, Ownership>>, Diagnostics> {
        // By identity (`import { to = ..., identity = { ... } }`): the policy's mode, as an
        // ID would name it.
        let id_text = match key {
            ImportKey::Id(id) => id,
            ImportKey::Identity(given) => identity_id_from(&given, clients.subscription_id())
                .map_err(|reason| Diagnostics::from_error("Invalid import identity", &reason))?
                .to_string(),
        };
        let what = parse_import_id(&id_text).map_err(|reason| {
            Diagnostics::from_error(
                "Invalid import ID",
                &format!("{reason}\n\n{IMPORT_ID_FORMATS}"),
            )
        })?;
        let identity_id = match &what {
            ImportTarget::Named(id) => id.clone(),
            ImportTarget::Existing { identity, .. } => identity.clone(),
        };
        let identity = match clients.identities.get(&identity_id).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                return Err(Diagnostics::from_error(
                    "Cannot import a missing identity",
                    &format!("{identity_id} does not exist."),
                ))
            }
            Err(error) => {
                return Err(Diagnostics::from_error(
                    "Cannot read the identity",
                    &error.to_string(),
                ))
            }
        };
        let identity_location =
            ids::normalize_location(&identity.location).unwrap_or(identity.location.clone());
        let (target, skeleton) = match what {
            ImportTarget::Named(id) => {
                let resource_group_location = match clients
                    .resource_groups
                    .get(id.subscription_id(), id.resource_group())
                    .await
                {
                    Ok(Some(group)) => {
                        ids::normalize_location(&group.location).unwrap_or(group.location)
                    }
                    _ => DEFAULT_RESOURCE_GROUP_LOCATION.to_string(),
                };
                let target = Target {
                    subscription: id.subscription_id().to_string(),
                    identity: id,
                    existing: false,
                    location: identity_location,
                    resource_group_location,
                    lock: true,
                    tags: identity.tags.clone(),
                };
                (target, listed_skeleton(&identity))
            }
            ImportTarget::Existing {
                id_text,
                identity,
                location,
                subscription,
            } => {
                let subscription =
                    subscription.unwrap_or_else(|| clients.subscription_id().to_string());
                let target = Target {
                    lock: identity
                        .subscription_id()
                        .eq_ignore_ascii_case(&subscription),
                    identity,
                    existing: true,
                    subscription,
                    location: location.unwrap_or(identity_location),
                    resource_group_location: DEFAULT_RESOURCE_GROUP_LOCATION.into(),
                    tags: BTreeMap::new(),
                };
                let skeleton = Model {
                    existing_identity_id: Maybe::Known(id_text),
                    ..Model::default()
                };
                (target, skeleton)
            }
        };
        let lock_present = if target.lock {
            lock_exists(clients, &target).await.map_err(|error| {
                Diagnostics::from_error("Cannot read the identity's lock", &error.to_string())
            })?
        } else {
            false
        };
        let mut state = state_value(&skeleton, &target, Some(&identity), lock_present);
        if !target.existing {
            // The ID as given (ARM may spell the group in another case).
            state.id = Maybe::Known(id_text.trim().to_string());
        }
        // Terraform did not create it: adopted, never deleted by destroy; its lock, if it has
        // one, is not ours either. A lock the next apply places is.
        let ownership = Ownership {
            created_resource_group: false,
            placed_lock: false,
            adopted_identity: true,
            lock_denied: None,
            unreadable: None,
        };
        Ok(vec![Imported {
            state,
            private: ownership,
        }])
    }
}

/// A refresh refused ([`access`]): the state and ownership as recorded, the refusal noted in
/// private state, and the warning.
fn kept(
    mut response: Applied<Model, Ownership>,
    cause: String,
    summary: &str,
    warning: &str,
) -> Applied<Model, Ownership> {
    response.private.unreadable = Some(cause);
    response.diagnostics.warning(summary, warning);
    response
}

/// What an import of the policy's mode starts from: no `existing_identity_id`, and tags only
/// when the identity has some.
fn listed_skeleton(identity: &Identity) -> Model {
    Model {
        tags: if identity.tags.is_empty() {
            Maybe::Null
        } else {
            known_tags(&BTreeMap::new())
        },
        ..Model::default()
    }
}

/// The state an import by ID or identity of `identity` (an identity of the policy's mode,
/// listed by `terraform query`) produces, from what a listing already read: the identity,
/// its group's location and whether its lock exists. No further read.
pub(crate) fn listed_state(identity: &Identity, group_location: &str, lock_present: bool) -> Value {
    let Ok(id) = UserAssignedIdentityId::parse(&identity.id) else {
        return Value::Null;
    };
    let target = Target {
        subscription: id.subscription_id().to_string(),
        identity: id,
        existing: false,
        location: ids::normalize_location(&identity.location).unwrap_or(identity.location.clone()),
        resource_group_location: ids::normalize_location(group_location)
            .unwrap_or(DEFAULT_RESOURCE_GROUP_LOCATION.to_string()),
        lock: true,
        tags: identity.tags.clone(),
    };
    let state = Model {
        id: Maybe::Known(identity.id.clone()),
        ..state_value(
            &listed_skeleton(identity),
            &target,
            Some(identity),
            lock_present,
        )
    };
    model::encode(&state, state_type())
}

/// What an import ID names (docs/resources/builtin_identity.md, "Import").
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ImportTarget {
    /// `{identity ID}`: an identity configured without `existing_identity_id` (the policy's
    /// `Built-In-Identity-{location}`, or `name` and `resource_group_name`).
    Named(UserAssignedIdentityId),
    /// `existing:{identity ID}[?location={region}&subscription_id={guid}]`: your own identity,
    /// configured with `existing_identity_id`.
    Existing {
        id_text: String,
        identity: UserAssignedIdentityId,
        location: Option<String>,
        subscription: Option<String>,
    },
}

const IMPORT_ID_FORMATS: &str = "Import mig_builtin_identity by\n  {identity ID} for an identity configured without `existing_identity_id` (the policy's Built-In-Identity-{location}), or\n  existing:{identity ID}[?location={region}&subscription_id={guid}] for your own identity (`existing_identity_id`); `location` defaults to the identity's region, `subscription_id` to the provider's.\nAn imported identity is adopted: destroy never deletes it.";

pub(super) fn parse_import_id(text: &str) -> Result<ImportTarget, String> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("existing:") else {
        return UserAssignedIdentityId::parse(text).map(ImportTarget::Named);
    };
    let (id_text, options) = rest.split_once('?').unwrap_or((rest, ""));
    let identity = UserAssignedIdentityId::parse(id_text)?;
    let (mut location, mut subscription) = (None, None);
    for option in options.split('&').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("location", region)) => location = Some(ids::normalize_location(region)?),
            Some(("subscription_id", guid)) => {
                subscription = Some(SubscriptionId::parse_guid(guid)?.as_str().to_string())
            }
            _ => {
                return Err(format!(
                    "Unknown import option `{option}`; the options are `location` and `subscription_id`."
                ))
            }
        }
    }
    Ok(ImportTarget::Existing {
        id_text: id_text.to_string(),
        identity,
        location,
        subscription,
    })
}
