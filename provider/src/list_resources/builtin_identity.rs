//! `list "mig_builtin_identity"`: the policy's identities, each as a `mig_builtin_identity`
//! of the policy's mode to import (adopted: destroy never deletes it or its lock).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{Diagnostics, ListRequest, ListResource, ListResult, ListSink, Schema, Value};

use futures::StreamExt;

use super::{opened, policy_identities, Found, Search, Sender, Subscriptions};
use crate::azure::ids::{self, UserAssignedIdentityId};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;
use crate::resources::builtin_identity::{self as resource, identity_value};

pub struct BuiltinIdentities {
    data: Arc<ProviderData>,
}

impl BuiltinIdentities {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentities { data }
    }
}

/// What `include_resource` needs of a subscription besides the identities: the group's
/// location and the locks under it (one read each).
struct Extras {
    group_location: String,
    /// Lower-cased lock IDs.
    locks: BTreeSet<String>,
}

async fn extras(
    clients: &AzureClients,
    search: &Search,
    subscription: &str,
) -> Result<Extras, String> {
    let group = clients
        .resource_groups
        .get(subscription, &search.resource_group)
        .await
        .map_err(|e| {
            format!(
                "Cannot read the resource group {}: {e}",
                search.resource_group
            )
        })?;
    let scope = format!(
        "/subscriptions/{subscription}/resourceGroups/{}",
        search.resource_group
    );
    let locks = match clients.locks.list(&scope).await {
        Ok(locks) => locks,
        Err(error) if error.status == 404 => Vec::new(),
        Err(error) => return Err(format!("Cannot list the locks in {scope}: {error}")),
    };
    Ok(Extras {
        group_location: group.map(|g| g.location).unwrap_or_default(),
        locks: locks
            .into_iter()
            .map(|l| l.id.to_ascii_lowercase())
            .collect(),
    })
}

fn result(found: &Found, extras: Option<&Extras>) -> ListResult {
    let identity = UserAssignedIdentityId::parse(&found.identity.id).ok();
    let resource_object = extras.map(|extras| {
        let lock_id = format!(
            "{}/providers/Microsoft.Authorization/locks/{}",
            found.identity.id,
            ids::builtin_lock_name(&found.identity.name)
        );
        let lock_present = extras.locks.contains(&lock_id.to_ascii_lowercase());
        resource::listed_state(&found.identity, &extras.group_location, lock_present)
    });
    ListResult {
        identity: identity.as_ref().map(identity_value).unwrap_or(Value::Null),
        display_name: format!(
            "{} ({}, subscription {})",
            found.identity.name, found.location, found.subscription
        ),
        resource_object,
        diagnostics: Diagnostics::default(),
    }
}

#[async_trait]
impl ListResource for BuiltinIdentities {
    fn type_name(&self) -> &'static str {
        resource::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        super::schema("Every identity Azure's built-in policy made: `Built-In-Identity-*` in `Built-In-Identity-RG` (or `resource_group_name`) of each subscription, as a `mig_builtin_identity` to import. Imported, an identity is adopted: destroy never deletes it or its lock.")
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        super::validate(config)
    }

    async fn list(&self, request: ListRequest, sink: ListSink) -> Diagnostics {
        let (clients, search) = match opened(&self.data, &request.config) {
            Ok(opened) => opened,
            Err(diagnostics) => return diagnostics,
        };
        let mut sender = Sender::new(sink, request.limit);
        let mut diagnostics = Diagnostics::default();
        let mut subscriptions = Subscriptions::new(&clients, &search);
        while let Some(subscription) = subscriptions.next().await {
            let subscription = match subscription {
                Ok(subscription) => subscription,
                Err(error) => {
                    diagnostics.error("Cannot list the policy's identities", &error);
                    return diagnostics;
                }
            };
            let extras = if request.include_resource_object {
                match extras(&clients, &search, &subscription).await {
                    Ok(extras) => Some(extras),
                    Err(error) => {
                        diagnostics.error("Cannot list the policy's identities", &error);
                        return diagnostics;
                    }
                }
            } else {
                None
            };
            let mut pages = policy_identities(&clients, &search, &subscription);
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        diagnostics.error("Cannot list the policy's identities", &error);
                        return diagnostics;
                    }
                };
                for found in page {
                    if !sender.send(result(&found, extras.as_ref())).await {
                        return diagnostics;
                    }
                }
            }
        }
        diagnostics
    }
}
