//! Create, update and destroy. Once the identity exists, create never fails (Terraform
//! would taint it); what is missing is in the state and in a warning. Every Azure call runs
//! under [`Halt`]; a call whose outcome is unknown is read back.

use std::collections::BTreeMap;
use std::future::Future;

use tfplugin::typed::{Applied, Maybe, Update};
use tfplugin::{AttributePath, Diagnostics};

use super::access;
use super::group::group_lock;
use super::locks::{
    is_refusal, lock_exists, lock_not_placed, lock_read_back, permissions_now, place_lock_halted,
    remove_lock,
};
use super::model::{
    recorded_value, state_value, target_from_state, LockDenial, Model, Ownership, Target,
};
use super::{BuiltinIdentity, READ_BACK, TYPE_NAME};
use crate::azure::AzureClients;
use crate::timeouts::{Halt, Step};

/// Reads back after a halted call: not cancelled by the halt, bounded by [`READ_BACK`].
pub(super) async fn read_back<T, E: std::fmt::Display>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_BACK, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(READ_BACK)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Azure operations
// ---------------------------------------------------------------------------------------------

pub(super) fn failure(
    prior: Option<Model>,
    private: Ownership,
    summary: &str,
    detail: &str,
) -> Applied<Model, Ownership> {
    Applied::failed(prior, private, summary, detail)
}

/// A halted create that left nothing behind but, perhaps, an empty group.
fn halted_before_identity(
    halt: &Halt,
    target: &Target,
    created_group: bool,
) -> Applied<Model, Ownership> {
    let group = if created_group {
        format!(
            " The resource group {} was created and is left in place (empty).",
            target.resource_group_id()
        )
    } else {
        String::new()
    };
    failure(
        None,
        Ownership::default(),
        halt.summary(),
        &format!(
            "{} {} was not created.{group} Apply again to create it.",
            halt.reason(),
            target.identity
        ),
    )
}

impl BuiltinIdentity {
    pub(super) async fn create_identity(
        &self,
        clients: &AzureClients,
        config: &Model,
        target: &Target,
        halt: &Halt,
    ) -> Applied<Model, Ownership> {
        let mut ownership = Ownership::default();
        let mut diagnostics = Diagnostics::default();
        let identity = if target.existing {
            match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(identity))) => identity,
                Step::Done(Ok(None)) => {
                    return failure(
                        None,
                        Ownership::default(),
                        "Identity not found",
                        &format!("`existing_identity_id` names {}, which does not exist. Create it first, or leave `existing_identity_id` out to let this resource create the built-in identity.", target.identity),
                    )
                }
                Step::Done(Err(error)) => return failure(None, Ownership::default(), "Cannot read the identity", &access::explain(target, &error)),
                Step::NotSent | Step::Unknown => {
                    return failure(
                        None,
                        Ownership::default(),
                        halt.summary(),
                        &format!("{} Nothing was changed: {} was not adopted. Apply again.", halt.reason(), target.identity),
                    )
                }
            }
        } else {
            match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(_))) => {
                    return failure(
                        None,
                        Ownership::default(),
                        "Identity already exists",
                        &format!(
                            "{id} already exists (perhaps Azure Policy created it). To manage it with Terraform, import it:\n  terraform import {TYPE_NAME}.<name> {id}\nor add an `import` block with that ID. An imported identity is adopted: destroy never deletes it.",
                            id = target.identity
                        ),
                    )
                }
                Step::Done(Ok(None)) => {}
                Step::Done(Err(error)) => return failure(None, Ownership::default(), "Cannot read the identity", &access::explain(target, &error)),
                Step::NotSent | Step::Unknown => return halted_before_identity(halt, target, false),
            }
            let subscription = target.identity.subscription_id();
            let group = target.identity.resource_group();
            // No destroy of another region's identity may delete the group between our
            // finding it and our identity being in it.
            let group_lock = group_lock(subscription, group);
            let _in_group = group_lock.lock().await;
            match halt
                .run(clients.resource_groups.get(subscription, group))
                .await
            {
                Step::Done(Ok(Some(_))) => {}
                Step::Done(Ok(None)) => {
                    let no_tags = BTreeMap::new();
                    let create = clients.resource_groups.create(
                        subscription,
                        group,
                        &target.resource_group_location,
                        &no_tags,
                    );
                    match halt.run(create).await {
                        // Only ARM's 201 says this PUT created it: one that appeared since our
                        // read (the policy, another workspace) is not ours to delete.
                        Step::Done(Ok((_, created))) => {
                            ownership.created_resource_group = created;
                            if !created {
                                diagnostics.warning(
                                    "Resource group created by someone else",
                                    &format!("{} did not exist when this apply looked, and existed when it created it (ARM answered 200, not 201): someone else created it meanwhile. It is not recorded as created by this resource, so destroy leaves it.", target.resource_group_id()),
                                );
                            }
                        }
                        Step::Done(Err(error)) => {
                            return failure(
                                None,
                                Ownership::default(),
                                "Cannot create the resource group",
                                &access::explain(target, &error),
                            )
                        }
                        Step::NotSent => return halted_before_identity(halt, target, false),
                        // Perhaps created, and empty: nothing of the identity exists yet.
                        Step::Unknown => return halted_before_identity(halt, target, true),
                    }
                }
                Step::Done(Err(error)) => {
                    return failure(
                        None,
                        Ownership::default(),
                        "Cannot read the resource group",
                        &access::explain(target, &error),
                    )
                }
                Step::NotSent | Step::Unknown => {
                    return halted_before_identity(halt, target, false)
                }
            }
            let create =
                clients
                    .identities
                    .create(&target.identity, &target.location, &target.tags);
            match halt.run(create).await {
                Step::Done(Ok((identity, created))) => {
                    if !created {
                        // It appeared between our read and our PUT (the policy during a
                        // migration, another workspace): adopted, as an import would.
                        ownership.adopted_identity = true;
                        diagnostics.warning_at(
                            AttributePath::root("id"),
                            "Identity created by someone else: adopted",
                            &format!("{} did not exist when this apply looked, and existed when it created it (ARM answered 200, not 201): someone else, perhaps Azure Policy, created it meanwhile. It is adopted, as an import would: recorded in state with its principal ID, never deleted by destroy (nor its group). This apply set its tags to the configured ones.", target.identity),
                        );
                    }
                    identity
                }
                Step::Done(Err(error)) => {
                    return failure(
                        None,
                        ownership.clone(),
                        "Cannot create the identity",
                        &access::explain(target, &error),
                    );
                }
                Step::NotSent => {
                    return halted_before_identity(halt, target, ownership.created_resource_group)
                }
                Step::Unknown => match read_back(clients.identities.get(&target.identity)).await {
                    Ok(Some(identity)) => identity,
                    Ok(None) => {
                        return halted_before_identity(
                            halt,
                            target,
                            ownership.created_resource_group,
                        )
                    }
                    Err(error) => {
                        // Perhaps created: recorded (and so replaced by the next apply),
                        // never lost.
                        ownership.placed_lock = true;
                        let state = Model {
                            principal_id: Maybe::Null,
                            client_id: Maybe::Null,
                            tenant_id: Maybe::Null,
                            ..state_value(config, target, None, false)
                        };
                        return failure(
                            Some(state),
                            ownership.clone(),
                            halt.summary(),
                            &format!("{} Whether {} was created is unknown ({error}); it is recorded in state, and the next apply replaces it.", halt.reason(), target.identity),
                        );
                    }
                },
            }
        };
        // From here on the identity exists: never an error (Terraform would taint it and
        // replace it on the next apply). What is missing is in the state and in a warning.
        let mut lock_present = false;
        if target.lock {
            match halt.run(lock_exists(clients, target)).await {
                Step::Done(Ok(true)) => lock_present = true,
                Step::Done(Ok(false)) => match place_lock_halted(clients, target, halt).await {
                    Ok(true) => {
                        lock_present = true;
                        ownership.placed_lock = true;
                    }
                    Ok(false) => diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "Identity created without its lock",
                        &format!(
                            "{} {} exists and is recorded in state, but its lock `{}` was not placed. The next plan places it, in place (the identity is kept).",
                            halt.reason(),
                            target.identity,
                            target.lock_name()
                        ),
                    ),
                    Err(error) => {
                        if is_refusal(&error) {
                            ownership.lock_denied = Some(LockDenial {
                                reason: error.to_string(),
                                permissions: permissions_now(clients, target, halt).await,
                            });
                        }
                        diagnostics.warning_at(
                            AttributePath::root("lock_id"),
                            "Identity created without its lock",
                            &lock_not_placed(target, &error.to_string()),
                        )
                    }
                },
                Step::Done(Err(error)) => diagnostics.warning_at(
                    AttributePath::root("lock_id"),
                    "Cannot read the identity's lock",
                    &format!("{error}\n\nThe identity is recorded in state with its lock missing; the next apply places it."),
                ),
                Step::NotSent | Step::Unknown => diagnostics.warning_at(
                    AttributePath::root("lock_id"),
                    "Identity created without its lock",
                    &format!(
                        "{} {} exists and is recorded in state; its lock `{}` was not checked nor placed. The next plan places it, in place (the identity is kept).",
                        halt.reason(),
                        target.identity,
                        target.lock_name()
                    ),
                ),
            }
        }
        if ownership.owns_identity(target) {
            // The lock guards an identity we created: destroy removes it with the identity.
            ownership.placed_lock = true;
        }
        Applied {
            state: Some(state_value(config, target, Some(&identity), lock_present)),
            private: ownership,
            diagnostics,
        }
    }

    pub(super) async fn update_identity(
        &self,
        clients: &AzureClients,
        request: &Update<Model, Ownership>,
        target: &Target,
        halt: &Halt,
    ) -> Applied<Model, Ownership> {
        let mut ownership = request.private.clone();
        let prior = target_from_state(&request.prior);
        let stopped = |state: Option<Model>, what: &str| {
            failure(
                state,
                request.private.clone(),
                halt.summary(),
                &format!("{} {what} Apply again to finish.", halt.reason()),
            )
        };
        let mut identity = None;
        let mut tags_written = true;
        if !target.existing && prior.as_ref().map(|p| &p.tags) != Some(&target.tags) {
            let write = clients.identities.create_or_update(
                &target.identity,
                &target.location,
                &target.tags,
            );
            match halt.run(write).await {
                Step::Done(Ok(updated)) => identity = Some(updated),
                Step::Done(Err(error)) => {
                    return failure(
                        Some(request.prior.clone()),
                        request.private.clone(),
                        "Cannot update the identity's tags",
                        &access::explain(target, &error),
                    )
                }
                Step::NotSent => {
                    return stopped(
                        Some(request.prior.clone()),
                        "Nothing was changed: the tags were not written.",
                    )
                }
                Step::Unknown => {
                    tags_written = false;
                    match read_back(clients.identities.get(&target.identity)).await {
                        Ok(Some(found)) => identity = Some(found),
                        _ => {
                            return stopped(
                                Some(request.prior.clone()),
                                "Whether the tags were written is unknown; the next refresh reads them.",
                            )
                        }
                    }
                }
            }
        }
        let identity = match identity {
            Some(identity) => identity,
            None => match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(identity))) => identity,
                Step::Done(Ok(None)) => {
                    return failure(
                        None,
                        Ownership::default(),
                        "Identity gone",
                        &format!(
                            "{} was deleted outside Terraform; apply again to create it.",
                            target.identity
                        ),
                    )
                }
                Step::Done(Err(error)) => {
                    return failure(
                        Some(request.prior.clone()),
                        request.private.clone(),
                        "Cannot read the identity",
                        &access::explain(target, &error),
                    )
                }
                Step::NotSent | Step::Unknown => {
                    return stopped(Some(request.prior.clone()), "Nothing was changed.")
                }
            },
        };
        // Read or written just now: its subscription answers again.
        ownership.unreadable = None;
        let had_lock = !request.prior.lock_id.is_null();
        let mut lock_present = had_lock;
        let mut diagnostics = Diagnostics::default();
        if !tags_written {
            diagnostics.error(
                halt.summary(),
                &format!(
                    "{} The identity was read back after its tags were sent; the state holds what it has.",
                    halt.reason()
                ),
            );
        }
        // The plan decided ([`lock_plan`]): a lock it holds (`lock_id` planned null) is not
        // tried, and the result stays as planned.
        let planned_placing = request.planned.lock_id.is_unknown();
        if !target.lock {
            ownership.lock_denied = None;
        }
        if target.lock && !had_lock && planned_placing {
            match place_lock_halted(clients, target, halt).await {
                Ok(true) => {
                    lock_present = true;
                    ownership.placed_lock = true;
                    ownership.lock_denied = None;
                }
                Ok(false) => diagnostics.error_at(
                    AttributePath::root("lock_id"),
                    halt.summary(),
                    &format!(
                        "{} The lock `{}` was not placed; the identity is kept. Apply again to place it.",
                        halt.reason(),
                        target.lock_name()
                    ),
                ),
                // Refused: recorded, and a warning; the plans that follow hold the lock
                // instead of failing every apply.
                Err(error) if is_refusal(&error) => {
                    ownership.lock_denied = Some(LockDenial {
                        reason: error.to_string(),
                        permissions: permissions_now(clients, target, halt).await,
                    });
                    diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "The identity's lock was refused",
                        &lock_not_placed(target, &error.to_string()),
                    )
                }
                // An update is never tainted: an error keeps the identity and says why.
                Err(error) => diagnostics.error_at(
                    AttributePath::root("lock_id"),
                    "Cannot lock the identity",
                    &lock_not_placed(target, &error.to_string()),
                ),
            }
        } else if !target.lock && had_lock {
            if ownership.owns_lock(target) {
                match halt.run(remove_lock(clients, target)).await {
                    Step::Done(Ok(())) => lock_present = false,
                    Step::Done(Err(error)) => diagnostics
                        .error("Cannot remove the lock", &access::explain(target, &error)),
                    Step::NotSent => diagnostics.error(
                        halt.summary(),
                        &format!("{} The lock was not removed; apply again.", halt.reason()),
                    ),
                    Step::Unknown => {
                        lock_present = lock_read_back(clients, target).await.unwrap_or(true);
                        diagnostics.error(
                            halt.summary(),
                            &format!(
                                "{} The lock's removal was sent; the state says whether it is gone.",
                                halt.reason()
                            ),
                        );
                    }
                }
            } else {
                // Someone else's lock: we stop tracking it but leave it in place.
                lock_present = false;
            }
        }
        let shown = Target {
            lock: target.lock || lock_present,
            // Tags whose write was cut short: what the identity has, read back.
            tags: if target.existing || tags_written {
                target.tags.clone()
            } else {
                identity.tags.clone()
            },
            ..target.clone()
        };
        Applied {
            state: Some(recorded_value(
                &request.config,
                &request.prior,
                &shown,
                Some(&identity),
                lock_present,
            )),
            private: ownership,
            diagnostics,
        }
    }

    pub(super) async fn destroy(
        &self,
        clients: &AzureClients,
        prior: &Model,
        ownership: &Ownership,
        halt: &Halt,
    ) -> Applied<Model, Ownership> {
        let gone = || Applied::new(None, Ownership::default());
        let Some(target) = target_from_state(prior) else {
            return gone();
        };
        let stopped = |state: Model, what: &str| {
            failure(
                Some(state),
                ownership.clone(),
                halt.summary(),
                &format!("{} {what} Destroy again to finish.", halt.reason()),
            )
        };
        let lock_recorded = !prior.lock_id.is_null();
        let mut state = prior.clone();
        if lock_recorded && ownership.owns_lock(&target) {
            match halt.run(remove_lock(clients, &target)).await {
                Step::Done(Ok(())) => state.lock_id = Maybe::Null,
                Step::Done(Err(error)) => {
                    return failure(
                        Some(prior.clone()),
                        ownership.clone(),
                        "Cannot remove the lock",
                        &access::explain(&target, &error),
                    )
                }
                Step::NotSent => return stopped(state, "Nothing was removed."),
                Step::Unknown => {
                    if lock_read_back(clients, &target).await == Some(false) {
                        state.lock_id = Maybe::Null;
                    }
                    return stopped(state, "The lock's removal was sent; the identity is kept.");
                }
            }
        }
        if !ownership.owns_identity(&target) {
            // Your own identity, or one imported (adopted): forgotten, never deleted.
            return gone();
        }
        match halt.run(clients.identities.delete(&target.identity)).await {
            Step::Done(Ok(())) => {}
            Step::Done(Err(error)) => {
                return failure(
                    Some(state),
                    ownership.clone(),
                    "Cannot delete the identity",
                    &access::explain(&target, &error),
                );
            }
            Step::NotSent => return stopped(state, "The identity was not deleted."),
            Step::Unknown => match read_back(clients.identities.get(&target.identity)).await {
                Ok(None) => {}
                _ => {
                    return stopped(
                        state,
                        "The identity's deletion was sent but may not have finished; it is kept in state.",
                    )
                }
            },
        }
        if !ownership.created_resource_group {
            return gone();
        }
        if halt.is_halted() {
            let mut response = gone();
            response.diagnostics.warning(
                "Resource group left in place",
                &format!(
                    "{} This resource created {} and would have deleted it once empty.",
                    halt.reason(),
                    target.resource_group_id()
                ),
            );
            return response;
        }
        self.delete_group_if_empty(clients, &target, halt).await
    }
}
