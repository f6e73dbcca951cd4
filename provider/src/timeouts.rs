//! The `timeouts` block every resource accepts, as azurerm users know it.

use std::time::Duration;

use tfplugin::{
    Attribute, AttributePath, Block, Diagnostics, NestedBlock, NestingMode, Type, Value,
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

/// The `timeouts` nested block.
pub fn block(defaults: Defaults) -> NestedBlock {
    let attribute = |name: &str, default: Duration| {
        Attribute::optional(name, Type::String).description(format!(
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

/// Diagnostics for durations that do not parse.
pub fn validate(config: &Value, diagnostics: &mut Diagnostics) {
    for name in ["create", "read", "update", "delete"] {
        if let Some(text) = config.get("timeouts").get(name).as_str() {
            if let Err(error) = humantime::parse_duration(text) {
                diagnostics.error_at(
                    AttributePath::root("timeouts").attribute(name),
                    "Invalid duration",
                    &format!("`{text}` is not a duration ({error}). Write it like `30s`, `10m` or `1h30m`."),
                );
            }
        }
    }
}
