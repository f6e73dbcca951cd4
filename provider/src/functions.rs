//! Provider functions: `provider::mig::builtin_identity_id`, `builtin_identity_name` and
//! `parse_resource_id`. Pure computations over ARM IDs, no Azure calls: functions run
//! without the provider's configuration, so they judge each argument by its shape, with the
//! same rules (`crate::arguments`) the resources' and data sources' arguments follow.
//! Whether a region exists is for the data source and the resource to check, at plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{Function, FunctionDefinition, FunctionError, Parameter, Type, Value};

use crate::arguments;
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

/// Argument `index` checked by `rule`; a failure names the parameter.
fn checked_argument<'a>(
    args: &'a [Value],
    index: usize,
    parameter: &str,
    rule: fn(&str) -> Result<(), String>,
) -> Result<&'a str, FunctionError> {
    let raw = string_argument(args, index)?;
    rule(raw).map_err(|reason| FunctionError {
        text: format!("{parameter}: {reason}"),
        argument: Some(index as i64),
    })?;
    Ok(raw)
}

/// A region by its shape ([`arguments::check_region`]), as ARM spells it.
fn location_argument(args: &[Value], index: usize) -> Result<String, FunctionError> {
    let raw = checked_argument(args, index, "location", arguments::check_region)?;
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
                string_parameter("subscription_id", "The subscription's ID: a GUID, not a `/subscriptions/...` path."),
                string_parameter(
                    "location",
                    "The Azure region, as ARM spells it (`eastus`) or as the portal does (`East US`): letters and digits, white space ignored. Only the shape is checked (functions cannot ask Azure); the `mig_builtin_identity` data source and resource check at plan that the subscription has the region.",
                ),
            ],
            variadic: None,
            return_type: Type::String,
            summary: "Resource ID of the built-in policy's identity for a subscription and region".into(),
            description: "Returns `/subscriptions/{subscription_id}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{location}`, the identity Azure Policy's built-in \"Assign Built-In User-Assigned Managed Identity\" definitions create. An error names the argument when `subscription_id` is not a GUID or `location` is not shaped like a region name; whether the region exists is not checked (functions cannot call Azure).".into(),
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        let subscription = checked_argument(
            &args,
            0,
            "subscription_id",
            arguments::check_subscription_id,
        )?;
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
            parameters: vec![string_parameter(
                "location",
                "The Azure region (`eastus` or `East US`); only its shape is checked.",
            )],
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
            parameters: vec![string_parameter(
                "id",
                "An Azure Resource Manager ID (subscription, resource group or resource); a trailing `/` is ignored, a query string is an error.",
            )],
            variadic: None,
            return_type: parsed_id_type(),
            summary: "Splits an ARM resource ID into its parts".into(),
            description: "Returns an object with `subscription_id`, `resource_group_name`, `provider_namespace`, `resource_type` and `name`. Parts the ID does not have (a subscription or resource group ID) are null.".into(),
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        let raw = checked_argument(&args, 0, "id", arguments::check_resource_id)?;
        let parsed =
            ResourceId::parse(arguments::trim_arm_id(raw)).map_err(|reason| FunctionError {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    async fn call(function: &dyn Function, args: &[&str]) -> Result<Value, FunctionError> {
        function
            .call(args.iter().map(|a| Value::from(*a)).collect())
            .await
    }

    #[tokio::test]
    async fn builtin_identity_id_checks_shapes_by_the_shared_rules() {
        let id = call(&BuiltinIdentityId, &[SUB, "East US"]).await.unwrap();
        assert!(id.as_str().unwrap().ends_with("/Built-In-Identity-eastus"));
        // Functions cannot ask Azure: a well-shaped region is accepted (documented).
        assert!(call(&BuiltinIdentityId, &[SUB, "eastus3"]).await.is_ok());
        let error = call(
            &BuiltinIdentityId,
            &[&format!("/subscriptions/{SUB}"), "eastus"],
        )
        .await
        .unwrap_err();
        assert_eq!(error.argument, Some(0));
        assert!(
            error.text.starts_with("subscription_id: "),
            "{}",
            error.text
        );
        assert!(error.text.contains(&format!("`{SUB}`")), "{}", error.text);
        let error = call(&BuiltinIdentityId, &[SUB, "east-us!"])
            .await
            .unwrap_err();
        assert_eq!(error.argument, Some(1));
        assert!(error.text.starts_with("location: "), "{}", error.text);
        let error = call(&BuiltinIdentityName, &[""]).await.unwrap_err();
        assert_eq!(error.argument, Some(0));
    }

    #[tokio::test]
    async fn parse_resource_id_ignores_a_trailing_slash_and_refuses_a_query() {
        let group = format!("/subscriptions/{SUB}/resourceGroups/rg");
        let parsed = call(&ParseResourceId, &[&format!("{group}/")])
            .await
            .unwrap();
        assert_eq!(parsed.get("resource_group_name"), &Value::from("rg"));
        let error = call(
            &ParseResourceId,
            &[&format!("{group}?api-version=2022-09-01")],
        )
        .await
        .unwrap_err();
        assert!(error.text.starts_with("id: "), "{}", error.text);
        assert!(error.text.contains("query string"), "{}", error.text);
    }
}
