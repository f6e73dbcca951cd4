//! Between the wire and the provider's types: decoding and encoding values and identities
//! against a schema's type, client capabilities, deferrals and diagnostics.

use super::*;

pub(super) fn unknown_type(kind: &str, type_name: &str) -> Vec<wire::Diagnostic> {
    Diagnostics::from_error(
        &format!("Unknown {kind} type"),
        &format!("This provider has no {kind} type `{type_name}`."),
    )
    .to_wire()
}

/// Adds `extra` to `diagnostics`, leaving out any already there (a resource that still
/// checks by hand what its schema declares reports each problem once).
pub(super) fn merge(diagnostics: &mut Diagnostics, extra: Diagnostics) {
    for diagnostic in extra.items {
        if !diagnostics.items.contains(&diagnostic) {
            diagnostics.items.push(diagnostic);
        }
    }
}

pub(super) fn unsupported(what: &str) -> Vec<wire::Diagnostic> {
    Diagnostics::from_error(
        &format!("{what} not supported"),
        &format!("The mig provider does not implement {what}."),
    )
    .to_wire()
}

pub(super) fn decode(
    value: Option<&wire::DynamicValue>,
    ty: &Type,
) -> Result<Value, Vec<wire::Diagnostic>> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    let decoded = if !value.msgpack.is_empty() {
        codec::from_msgpack(&value.msgpack, ty)
    } else if !value.json.is_empty() {
        codec::from_json(&value.json, ty, false)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|error| {
        Diagnostics::from_error(
            "Value does not match the schema",
            &format!("Terraform sent a value the provider cannot read: {error}. This is a bug; please report it."),
        )
        .to_wire()
    })
}

pub(super) fn encode(value: &Value, ty: &Type) -> Option<wire::DynamicValue> {
    Some(wire::DynamicValue {
        msgpack: codec::to_msgpack(value, ty),
        json: Vec::new(),
    })
}

pub(super) fn decode_identity(
    data: Option<&wire::ResourceIdentityData>,
    ty: Option<&Type>,
) -> Result<Option<Value>, Vec<wire::Diagnostic>> {
    match (data.and_then(|d| d.identity_data.as_ref()), ty) {
        (Some(value), Some(ty)) => decode(Some(value), ty).map(|v| (!v.is_null()).then_some(v)),
        _ => Ok(None),
    }
}

pub(super) fn encode_identity(
    value: Option<&Value>,
    ty: Option<&Type>,
) -> Option<wire::ResourceIdentityData> {
    match (value, ty) {
        (Some(value), Some(ty)) if !value.is_null() => Some(wire::ResourceIdentityData {
            identity_data: encode(value, ty),
        }),
        _ => None,
    }
}

pub(super) fn capabilities(wire: Option<&wire::ClientCapabilities>) -> ClientCapabilities {
    wire.map(|c| ClientCapabilities {
        deferral_allowed: c.deferral_allowed,
        write_only_attributes_allowed: c.write_only_attributes_allowed,
        store_planned_private: c.store_planned_private,
        computed_blocks_allowed: c.computed_blocks_allowed,
    })
    .unwrap_or_default()
}

pub(super) fn deferred(reason: Option<DeferredReason>) -> Option<wire::Deferred> {
    use wire::deferred::Reason;
    reason.map(|reason| wire::Deferred {
        reason: match reason {
            DeferredReason::ResourceConfigUnknown => Reason::ResourceConfigUnknown,
            DeferredReason::ProviderConfigUnknown => Reason::ProviderConfigUnknown,
            DeferredReason::AbsentPrerequisite => Reason::AbsentPrereq,
        } as i32,
    })
}

/// A copy of `state` that is valid as configuration: attributes only the provider sets
/// (computed, not optional) become null. Used by `terraform plan -generate-config-out`.
pub(super) fn config_from_state(state: &Value, block: &crate::schema::Block) -> Value {
    let Some(fields) = state.as_object() else {
        return state.clone();
    };
    let mut out: BTreeMap<String, Value> = fields.clone();
    for attribute in &block.attributes {
        if attribute.computed && !attribute.optional {
            out.insert(attribute.name.clone(), Value::Null);
        }
    }
    for nested in &block.block_types {
        if let Some(value) = fields.get(&nested.type_name) {
            let converted = match value {
                Value::List(items) => Value::List(
                    items
                        .iter()
                        .map(|v| config_from_state(v, &nested.block))
                        .collect(),
                ),
                Value::Set(items) => Value::Set(
                    items
                        .iter()
                        .map(|v| config_from_state(v, &nested.block))
                        .collect(),
                ),
                Value::Map(items) => Value::Map(
                    items
                        .iter()
                        .map(|(k, v)| (k.clone(), config_from_state(v, &nested.block)))
                        .collect(),
                ),
                Value::Object(_) => config_from_state(value, &nested.block),
                other => other.clone(),
            };
            out.insert(nested.type_name.clone(), converted);
        }
    }
    Value::Object(out)
}

pub(super) fn function_to_wire(function: &dyn Function) -> wire::Function {
    let definition = function.definition();
    let parameter = |p: &crate::provider::Parameter| wire::function::Parameter {
        name: p.name.clone(),
        r#type: p.r#type.to_json_bytes(),
        allow_null_value: p.allow_null,
        allow_unknown_values: p.allow_unknown,
        description: p.description.clone(),
        description_kind: wire::StringKind::Markdown as i32,
    };
    wire::Function {
        parameters: definition.parameters.iter().map(parameter).collect(),
        variadic_parameter: definition.variadic.as_ref().map(parameter),
        r#return: Some(wire::function::Return {
            r#type: definition.return_type.to_json_bytes(),
        }),
        summary: definition.summary.clone(),
        description: definition.description.clone(),
        description_kind: wire::StringKind::Markdown as i32,
        deprecation_message: String::new(),
    }
}
