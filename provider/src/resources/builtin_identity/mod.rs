//! `mig_builtin_identity`: the identity Azure's built-in policy creates for a subscription
//! and region (`Built-In-Identity-{location}` in `Built-In-Identity-RG`), locked as the
//! policy locks it; or, with `existing_identity_id`, your own identity, adopted and locked.
//!
//! Create refuses to adopt an identity that already exists (import it instead). What this
//! resource created is recorded in private state, so destroy takes back exactly that: our
//! lock, our identity, and the resource group only if we created it and it is empty. An
//! imported identity is adopted: destroy forgets it and never deletes it.
//!
//! Once the identity exists, create never fails (Terraform would taint it and the next apply
//! would replace it, orphaning its role assignments): a lock that cannot be placed is a
//! warning, the state says the lock is missing, and the next plan places it in place, unless
//! placing it would be refused again ([`locks::lock_plan`]: the principal lacks the permission, or
//! ARM refused with the same permissions, recorded in private state): then the plan holds it,
//! with one warning and no change, so no apply fails for it.
//!
//! "Created by us" is ARM's 201 to our PUT; a 200 means the group or identity appeared since
//! we looked, and it is adopted (never deleted), as an import is.
//!
//! Arguments are declared on the schema (`crate::arguments`' rules as validators, the
//! constant defaults, replacement of `name` and `resource_group_name`); what the declarative
//! layer cannot express is planned here, in one place each:
//! - defaults that depend on other arguments ([`model::with_dependent_defaults`]): `subscription_id`
//!   (the provider's), `name` (from `location`), `lock` (the policy's rule for your own
//!   identity), and no group or name at all for your own identity;
//! - replacement that compares meanings, not text ([`plan::replacements`]): `location` in any
//!   spelling, `existing_identity_id` with or without a trailing `/`, and `subscription_id`,
//!   which replaces nothing for your own identity.
//!
//! Non-computed arguments are planned exactly as configured (`East US` stays `East US`) and
//! normalised where they are used (ARM gets `eastus`).
//!
//! Stops and timeouts: every Azure call runs under a child of the provider's stop signal
//! that the operation's deadline also cancels ([`Halt`]). Nothing new starts once it is
//! cancelled, not even a retry a call waits for in a backoff (the stop reaches the ARM client
//! through [`crate::azure::arm::with_stop`]); a request on the wire is given
//! [`timeouts::IN_FLIGHT_GRACE`] to answer, and when its outcome is still unknown what it
//! touched is read back. The state returned then describes exactly
//! what exists.
//!
//! The files: `model.rs` (the model and schema, what the arguments decide), `plan.rs`,
//! `apply.rs` (create, update, destroy), `group.rs` (the resource group), `locks.rs` (the
//! lock), `read.rs` (read and import), `access.rs` (a subscription that refuses reads or
//! writes: the state is kept, the warning and errors name it). The typed adapter
//! ([`tfplugin::typed`]) decodes and encodes, plans destroy and hands over ready clients.

mod access;
mod apply;
mod group;
mod locks;
mod model;
mod plan;
mod read;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tfplugin::typed::{
    Applied, Create, Existing, ImportKey, Imported, Plan, Planned, TypedResource, Update,
};
use tfplugin::{Diagnostics, IdentitySchema, Schema, Value};

pub use model::{identity_schema, identity_value};
pub(crate) use read::listed_state;

use crate::azure::AzureClients;
use crate::provider_data::ProviderData;
use crate::timeouts::{self, Halt, Operation, Timeouts};
use model::{as_recorded, plan_target, with_dependent_defaults, Model, Ownership};

pub const TYPE_NAME: &str = "mig_builtin_identity";

const TIMEOUTS: timeouts::Defaults = timeouts::Defaults {
    create: Duration::from_secs(30 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(30 * 60),
    delete: Duration::from_secs(30 * 60),
};

/// The group location the policy uses when it creates `Built-In-Identity-RG`.
const DEFAULT_RESOURCE_GROUP_LOCATION: &str = "eastus";

/// The permission a lock needs, named in diagnostics.
const LOCK_PERMISSION: &str = "Microsoft.Authorization/locks/write";

/// Bound on reading back what exists after a stop.
const READ_BACK: Duration = Duration::from_secs(30);

pub struct BuiltinIdentity {
    data: Arc<ProviderData>,
}

impl BuiltinIdentity {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentity { data }
    }

    fn halt(&self, state: &Model, operation: Operation) -> Halt {
        Halt::new(
            self.data.stop_signal(),
            Timeouts::duration(&state.timeouts, operation, TIMEOUTS),
        )
    }
}

#[async_trait]
impl TypedResource for BuiltinIdentity {
    type Data = ProviderData;
    type Model = Model;
    type Private = Ownership;
    const TYPE_NAME: &'static str = TYPE_NAME;

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        model::schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Model) -> Option<Value> {
        model::identity_of(state)
    }

    fn validate(&self, config: &Model) -> Diagnostics {
        model::validate_arguments(config)
    }

    async fn plan(
        &self,
        clients: Option<&Arc<AzureClients>>,
        request: Plan<Model, Ownership>,
    ) -> Planned<Model, Ownership> {
        self.plan_change(clients, request).await
    }

    async fn create(
        &self,
        clients: &Arc<AzureClients>,
        request: Create<Model, Ownership>,
    ) -> Applied<Model, Ownership> {
        let halt = self.halt(&request.planned, Operation::Create);
        let arguments = with_dependent_defaults(&request.config, Some(clients.subscription_id()));
        match plan_target(&arguments) {
            Ok(Some(target)) => {
                self.create_identity(clients, &request.config, &target, &halt)
                    .await
            }
            Ok(None) | Err(_) => unknown_at_apply(None, request.private),
        }
    }

    async fn update(
        &self,
        clients: &Arc<AzureClients>,
        request: Update<Model, Ownership>,
    ) -> Applied<Model, Ownership> {
        let halt = self.halt(&request.planned, Operation::Update);
        let arguments = with_dependent_defaults(&request.config, Some(clients.subscription_id()));
        match plan_target(&arguments) {
            Ok(Some(target)) => {
                let kept = as_recorded(&target, &request.prior);
                self.update_identity(clients, &request, &kept, &halt).await
            }
            Ok(None) | Err(_) => unknown_at_apply(Some(request.prior), request.private),
        }
    }

    async fn delete(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Ownership>,
    ) -> Applied<Model, Ownership> {
        let halt = self.halt(&request.state, Operation::Delete);
        self.destroy(clients, &request.state, &request.private, &halt)
            .await
    }

    async fn read(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Ownership>,
    ) -> Applied<Model, Ownership> {
        let halt = self.halt(&request.state, Operation::Read);
        self.refresh(clients, request, &halt).await
    }

    async fn import(
        &self,
        clients: &Arc<AzureClients>,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, Ownership>>, Diagnostics> {
        self.import_object(clients, key).await
    }
}

fn unknown_at_apply(prior: Option<Model>, private: Ownership) -> Applied<Model, Ownership> {
    Applied::failed(
        prior,
        private,
        "Arguments unknown at apply",
        "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
    )
}
