//! The `timeouts` block every resource accepts, as azurerm users know it.

use std::time::Duration;

use tfplugin::{
    Attribute, AttributePath, Block, Diagnostics, NestedBlock, NestingMode, Type, Validator, Value,
};

/// Default durations of one resource type's operations.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub create: Duration,
    pub read: Duration,
    pub update: Duration,
    pub delete: Duration,
}

pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
}

impl Operation {
    fn attribute(&self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// `Err(detail)` when `text` is not a duration.
fn check_duration(text: &str) -> Result<(), String> {
    humantime::parse_duration(text)
        .map(|_| ())
        .map_err(|error| {
            format!("`{text}` is not a duration ({error}). Write it like `30s`, `10m` or `1h30m`.")
        })
}

/// The `timeouts` nested block; its attributes declare their validator, which the server
/// runs at validation.
pub fn block(defaults: Defaults) -> NestedBlock {
    let attribute = |name: &str, default: Duration| {
        Attribute::optional(name, Type::String)
            .validator(Validator::string("Invalid duration", check_duration))
            .description(format!(
                "How long the {name} may take, as a duration (`30s`, `10m`, `2h`). Default `{}`.",
                humantime::format_duration(default)
            ))
    };
    NestedBlock::new(
        "timeouts",
        NestingMode::Single,
        Block {
            attributes: vec![
                attribute("create", defaults.create),
                attribute("read", defaults.read),
                attribute("update", defaults.update),
                attribute("delete", defaults.delete),
            ],
            ..Block::default()
        },
    )
}

/// The duration for `operation`: the configured one, else the default.
pub fn get(resource: &Value, operation: Operation, defaults: Defaults) -> Duration {
    let default = match operation {
        Operation::Create => defaults.create,
        Operation::Read => defaults.read,
        Operation::Update => defaults.update,
        Operation::Delete => defaults.delete,
    };
    resource
        .get("timeouts")
        .get(operation.attribute())
        .as_str()
        .and_then(|text| humantime::parse_duration(text).ok())
        .unwrap_or(default)
}

/// Diagnostics for durations that do not parse, for code that checks by hand (at plan,
/// say). The validators `block` declares report the same at validation; the server reports
/// a diagnostic found both ways once.
pub fn validate(config: &Value, diagnostics: &mut Diagnostics) {
    for name in ["create", "read", "update", "delete"] {
        if let Some(text) = config.get("timeouts").get(name).as_str() {
            if let Err(detail) = check_duration(text) {
                diagnostics.error_at(
                    AttributePath::root("timeouts").attribute(name),
                    "Invalid duration",
                    &detail,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        create: Duration::from_secs(60),
        read: Duration::from_secs(60),
        update: Duration::from_secs(60),
        delete: Duration::from_secs(60),
    };

    #[test]
    fn declared_validators_and_the_hand_check_agree() {
        let block = Block {
            block_types: vec![block(DEFAULTS)],
            ..Block::default()
        };
        let config = Value::object([(
            "timeouts",
            Value::object([
                ("create", Value::from("soon")),
                ("read", Value::from("5m")),
                ("update", Value::unknown()),
                ("delete", Value::Null),
            ]),
        )]);
        let declared = block.validate(&config);
        let mut by_hand = Diagnostics::default();
        validate(&config, &mut by_hand);
        assert_eq!(declared, by_hand);
        assert_eq!(
            declared.items[0].attribute,
            Some(AttributePath::root("timeouts").attribute("create"))
        );
    }
}
