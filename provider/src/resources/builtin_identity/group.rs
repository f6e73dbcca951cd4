//! The resource group `Built-In-Identity-RG`: created when missing, deleted on destroy only
//! when this resource created it and it is empty; an in-process lock per group keeps the
//! two from overlapping.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use tfplugin::typed::Applied;

use super::model::{Model, Ownership, Target};
use super::BuiltinIdentity;
use crate::azure::arm::ArmError;
use crate::azure::ids;
use crate::azure::AzureClients;
use crate::timeouts::{Halt, Step};

/// One in-process lock per subscription and resource group: creating an identity in a group
/// and deleting that group never overlap (Terraform creates one region's identity while it
/// destroys another's in the same apply, and ARM deletes everything in a group).
pub(super) fn group_lock(subscription: &str, group: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let key = format!(
        "{}/{}",
        subscription.to_ascii_lowercase(),
        group.to_ascii_lowercase()
    );
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    locks.entry(key).or_default().clone()
}

/// Whether the group holds nothing: no resource in ARM's list and no identity in the
/// identity provider's own list (which does not lag behind a fresh create as ARM's may).
pub(super) async fn group_is_empty(
    clients: &AzureClients,
    subscription: &str,
    group: &str,
) -> Result<bool, ArmError> {
    if !clients
        .resource_groups
        .is_empty(subscription, group)
        .await?
    {
        return Ok(false);
    }
    let scope = ids::Scope::parse(&format!(
        "/subscriptions/{subscription}/resourceGroups/{group}"
    ))
    .map_err(ArmError::transport)?;
    Ok(clients.identities.list(&scope).await?.is_empty())
}

impl BuiltinIdentity {
    /// Deletes the group this resource created, only if it is empty at that moment: ARM
    /// deletes everything in a group. Holds the group's lock so no create in this process puts
    /// an identity into it meanwhile, and checks emptiness under that lock, right before.
    pub(super) async fn delete_group_if_empty(
        &self,
        clients: &AzureClients,
        target: &Target,
        halt: &Halt,
    ) -> Applied<Model, Ownership> {
        let subscription = target.identity.subscription_id();
        let group = target.identity.resource_group();
        let group_lock = group_lock(subscription, group);
        let _in_group = group_lock.lock().await;
        let mut response = Applied::new(None, Ownership::default());
        let left = |response: &mut Applied<Model, Ownership>, why: String| {
            response.diagnostics.warning(
                "Resource group left in place",
                &format!("This resource created {group} but did not delete it: {why}"),
            )
        };
        match halt.run(group_is_empty(clients, subscription, group)).await {
            Step::Done(Ok(true)) => {
                match halt
                    .run(clients.resource_groups.delete(subscription, group))
                    .await
                {
                    Step::Done(Ok(())) => {}
                    Step::Done(Err(error)) => left(&mut response, error.to_string()),
                    Step::NotSent | Step::Unknown => left(&mut response, halt.reason()),
                }
            }
            Step::Done(Ok(false)) => {
                tracing::debug!(group, "resource group not empty; left in place")
            }
            Step::Done(Err(error)) => {
                tracing::warn!(group, %error, "cannot tell whether the resource group is empty; left in place")
            }
            Step::NotSent | Step::Unknown => left(&mut response, halt.reason()),
        }
        response
    }
}
