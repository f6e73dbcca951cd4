//! `list "mig_identity_assignment"`: for each of the policy's identities, the assignment the
//! quickstart (examples/quickstart) declares: the identity over its subscription, in its
//! region, machines tagged `mig-exclude = "true"` left alone.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::typed::{Listing, Results, Typed, TypedListResource};
use tfplugin::{Diagnostics, ListResult, ReadRequest, Resource, Schema};

use super::{list_each, search_from, validate, Config, Found, Lister};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;
use crate::resources::identity_assignment::{
    self as resource, identity_value, quickstart_state, IdentityAssignment,
};

pub struct IdentityAssignments {
    data: Arc<ProviderData>,
}

impl IdentityAssignments {
    pub fn new(data: Arc<ProviderData>) -> Self {
        IdentityAssignments { data }
    }
}

fn scope_of(found: &Found) -> String {
    format!("/subscriptions/{}", found.subscription)
}

/// Each identity as the quickstart's assignment; with the full object, as a refresh of the
/// imported object reads it: the machines of the subscription, listed once and shared by
/// every region of it.
struct Quickstart {
    reader: Option<Typed<IdentityAssignment>>,
}

#[async_trait]
impl Lister for Quickstart {
    type Extras = ();

    async fn extras(&self, _subscription: &str) -> Result<(), String> {
        Ok(())
    }

    async fn result(&self, found: &Found, _extras: &()) -> ListResult {
        let scope = scope_of(found);
        let mut result = ListResult {
            identity: identity_value(&scope, &found.identity.id),
            display_name: format!("{} over {scope} ({})", found.identity.name, found.location),
            resource_object: None,
            diagnostics: Diagnostics::default(),
        };
        if let Some(reader) = &self.reader {
            let state = quickstart_state(&scope, &found.identity.id, &found.location);
            let read = reader
                .read(ReadRequest {
                    current_state: state,
                    ..ReadRequest::default()
                })
                .await;
            result.diagnostics = read.diagnostics;
            result.resource_object = Some(read.new_state);
        }
        result
    }
}

#[async_trait]
impl TypedListResource for IdentityAssignments {
    type Data = ProviderData;
    type Config = Config;
    const TYPE_NAME: &'static str = resource::TYPE_NAME;

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        super::schema("For each identity Azure's built-in policy made (as `list \"mig_builtin_identity\"` finds them), the `mig_identity_assignment` the quickstart declares: the identity over its subscription, in its region, machines tagged `mig-exclude = \"true\"` left alone. Imported, it owns nothing: destroy takes the identity from no machine.")
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
        let lister = Quickstart {
            reader: request
                .include_resource_object
                .then(|| Typed::new(IdentityAssignment::new(self.data.clone()))),
        };
        list_each(clients, &search, results, &lister).await
    }
}
