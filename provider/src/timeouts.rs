//! The `timeouts` block every resource accepts, as azurerm users know it.

use std::time::Duration;

use tfplugin::{Attribute, Block, NestedBlock, NestingMode, Type, Value};

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

/// The `timeouts` nested block; its attributes declare their validator
/// (`arguments::positive_duration`: a duration, and not zero, since every operation needs
/// time), which the server runs at validation.
pub fn block(defaults: Defaults) -> NestedBlock {
    let attribute = |name: &str, default: Duration| {
        Attribute::optional(name, Type::String)
            .validator(crate::arguments::positive_duration())
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

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::AttributePath;

    const DEFAULTS: Defaults = Defaults {
        create: Duration::from_secs(60),
        read: Duration::from_secs(60),
        update: Duration::from_secs(60),
        delete: Duration::from_secs(60),
    };

    #[test]
    fn declared_validators_refuse_what_is_not_a_positive_duration() {
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
                ("delete", Value::from("0s")),
            ]),
        )]);
        let declared = block.validate(&config);
        assert_eq!(declared.items.len(), 2, "{declared:?}");
        assert!(declared.items[1].detail.contains("no time"), "zero refused");
        assert_eq!(
            declared.items[0].attribute,
            Some(AttributePath::root("timeouts").attribute("create"))
        );
        assert_eq!(
            declared.items[1].attribute,
            Some(AttributePath::root("timeouts").attribute("delete"))
        );
    }
}
