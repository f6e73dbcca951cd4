//! `list "mig_identity_assignment"`: for each of the policy's identities, the assignment the
//! quickstart (examples/quickstart) declares: the identity over its subscription, in its
//! region, machines tagged `mig-exclude = "true"` left alone.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Diagnostics, ListRequest, ListResource, ListResult, ListSink, ReadRequest, Resource, Schema,
    Value,
};

use futures::StreamExt;

use super::{opened, policy_identities, Found, Sender, Subscriptions};
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

#[async_trait]
impl ListResource for IdentityAssignments {
    fn type_name(&self) -> &'static str {
        resource::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        super::schema("For each identity Azure's built-in policy made (as `list \"mig_builtin_identity\"` finds them), the `mig_identity_assignment` the quickstart declares: the identity over its subscription, in its region, machines tagged `mig-exclude = \"true\"` left alone. Imported, it owns nothing: destroy takes the identity from no machine.")
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        super::validate(config)
    }

    async fn list(&self, request: ListRequest, sink: ListSink) -> Diagnostics {
        let (clients, search) = match opened(&self.data, &request.config) {
            Ok(opened) => opened,
            Err(diagnostics) => return diagnostics,
        };
        // The full object is what a refresh of the imported object reads: the machines of the
        // subscription, listed once and shared by every region of it.
        let reader = tfplugin::typed::Typed::new(IdentityAssignment::new(self.data.clone()));
        let include = request.include_resource_object;
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
                    let scope = scope_of(&found);
                    let mut result = ListResult {
                        identity: identity_value(&scope, &found.identity.id),
                        display_name: format!(
                            "{} over {scope} ({})",
                            found.identity.name, found.location
                        ),
                        resource_object: None,
                        diagnostics: Diagnostics::default(),
                    };
                    if include {
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
                    if !sender.send(result).await {
                        return diagnostics;
                    }
                }
            }
        }
        diagnostics
    }
}
