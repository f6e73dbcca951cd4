//! Provider functions: `provider::mig::builtin_identity_id`, `builtin_identity_name` and
//! `parse_resource_id`. Pure computations over ARM IDs, no Azure calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{Function, FunctionDefinition, FunctionError, Parameter, Type, Value};

use crate::azure::ids::{self, ResourceId};

pub fn all() -> Vec<Arc<dyn Function>> {
    vec![
        Arc::new(BuiltinIdentityId),
        Arc::new(BuiltinIdentityName),
        Arc::new(ParseResourceId),
    ]
}

fn string_parameter(name: &str, description: &str) -> Parameter {
    Parameter {
        name: name.to_string(),
        r#type: Type::String,
        allow_null: false,
        allow_unknown: false,
        description: description.to_string(),
    }
}

/// The string in argument `index`; Terraform enforces the type and non-null before calling.
fn string_argument(args: &[Value], index: usize) -> Result<&str, FunctionError> {
    args.get(index)
        .and_then(Value::as_str)
        .ok_or_else(|| FunctionError {
            text: format!("argument {} must be a string", index + 1),
            argument: Some(index as i64),
        })
}

fn location_argument(args: &[Value], index: usize) -> Result<String, FunctionError> {
    let raw = string_argument(args, index)?;
    ids::normalize_location(raw).map_err(|reason| FunctionError {
        text: format!("location: {reason}"),
        argument: Some(index as i64),
    })
}

struct BuiltinIdentityId;

#[async_trait]
impl Function for BuiltinIdentityId {
    fn name(&self) -> &'static str {
        "builtin_identity_id"
    }

    fn definition(&self) -> FunctionDefinition {
        FunctionDefinition {
            parameters: vec![
                string_parameter("subscription_id", "The subscription's ID (a GUID)."),
                string_parameter(
                    "location",
                    "The Azure region, as ARM spells it (`eastus`) or as the portal does (`East US`).",
                ),
            ],
            variadic: None,
            return_type: Type::String,
            summary: "Resource ID of the built-in policy's identity for a subscription and region".into(),
            description: "Returns `/subscriptions/{subscription_id}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{location}`, the identity Azure Policy's built-in \"Assign Built-In User-Assigned Managed Identity\" definitions create.".into(),
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        let subscription = string_argument(&args, 0)?;
        let subscription =
            ids::SubscriptionId::parse_guid(subscription).map_err(|reason| FunctionError {
                text: format!("subscription_id: {reason}"),
                argument: Some(0),
            })?;
        let location = location_argument(&args, 1)?;
        Ok(Value::String(
            ids::builtin_identity_id(&subscription, &location).to_string(),
        ))
    }
}

struct BuiltinIdentityName;

#[async_trait]
impl Function for BuiltinIdentityName {
    fn name(&self) -> &'static str {
        "builtin_identity_name"
    }

    fn definition(&self) -> FunctionDefinition {
        FunctionDefinition {
            parameters: vec![string_parameter("location", "The Azure region.")],
            variadic: None,
            return_type: Type::String,
            summary: "Name of the built-in policy's identity for a region".into(),
            description: "Returns `Built-In-Identity-{location}` with the region as ARM spells it."
                .into(),
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        let location = location_argument(&args, 0)?;
        Ok(Value::String(ids::builtin_identity_name(&location)))
    }
}

struct ParseResourceId;

fn parsed_id_type() -> Type {
    Type::Object(
        [
            "subscription_id",
            "resource_group_name",
            "provider_namespace",
            "resource_type",
            "name",
        ]
        .into_iter()
        .map(|key| (key.to_string(), Type::String))
        .collect(),
    )
}

#[async_trait]
impl Function for ParseResourceId {
    fn name(&self) -> &'static str {
        "parse_resource_id"
    }

    fn definition(&self) -> FunctionDefinition {
        FunctionDefinition {
            parameters: vec![string_parameter("id", "An Azure Resource Manager resource ID.")],
            variadic: None,
            return_type: parsed_id_type(),
            summary: "Splits an ARM resource ID into its parts".into(),
            description: "Returns an object with `subscription_id`, `resource_group_name`, `provider_namespace`, `resource_type` and `name`. Parts the ID does not have (a subscription or resource group ID) are null.".into(),
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        let raw = string_argument(&args, 0)?;
        let parsed = ResourceId::parse(raw).map_err(|reason| FunctionError {
            text: format!("id: {reason}"),
            argument: Some(0),
        })?;
        let text = |part: Option<&str>| part.map_or(Value::Null, |s| Value::String(s.to_string()));
        let fields: BTreeMap<String, Value> = [
            (
                "subscription_id",
                text(Some(parsed.subscription_id.as_str())),
            ),
            (
                "resource_group_name",
                text(parsed.resource_group_name.as_deref()),
            ),
            (
                "provider_namespace",
                text(parsed.provider_namespace.as_deref()),
            ),
            ("resource_type", text(parsed.resource_type.as_deref())),
            ("name", text(parsed.name.as_deref())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        Ok(Value::Object(fields))
    }
}
