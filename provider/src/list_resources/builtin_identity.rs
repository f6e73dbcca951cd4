//! `list "mig_builtin_identity"`: the policy's identities, each as a `mig_builtin_identity`
//! of the policy's mode to import (adopted: destroy never deletes it or its lock).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::typed::{Listing, Results, TypedListResource};
use tfplugin::{Diagnostics, ListResult, Schema, Value};

use super::{list_each, search_from, validate, Config, Found, Lister, Search};
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

/// The group's location and locks of each subscription, when the full object is asked for.
struct Builtin<'a> {
    clients: &'a AzureClients,
    search: &'a Search,
    include_resource_object: bool,
}

#[async_trait]
impl Lister for Builtin<'_> {
    type Extras = Option<Extras>;

    async fn extras(&self, subscription: &str) -> Result<Option<Extras>, String> {
        if !self.include_resource_object {
            return Ok(None);
        }
        extras(self.clients, self.search, subscription)
            .await
            .map(Some)
    }

    async fn result(&self, found: &Found, extras: &Option<Extras>) -> ListResult {
        result(found, extras.as_ref())
    }
}

#[async_trait]
impl TypedListResource for BuiltinIdentities {
    type Data = ProviderData;
    type Config = Config;
    const TYPE_NAME: &'static str = resource::TYPE_NAME;

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        super::schema("Every identity Azure's built-in policy made: `Built-In-Identity-*` in `Built-In-Identity-RG` (or `resource_group_name`) of each subscription, as a `mig_builtin_identity` to import. Imported, an identity is adopted: destroy never deletes it or its lock.")
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        validate(config)
    }

    async fn list(
        &self,
        clients: &Arc<AzureClients>,
        request: Listing<Config>,
        results: &mut Results,
    ) -> Diagnostics {
        let search = search_from(request.config, clients.subscription_id());
        let lister = Builtin {
            clients,
            search: &search,
            include_resource_object: request.include_resource_object,
        };
        list_each(clients, &search, results, &lister).await
    }
}
