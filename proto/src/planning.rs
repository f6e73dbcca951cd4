//! The declarative layer the server applies around a resource's own `plan`, from what the
//! schema declares (`Attribute::default_value`, `requires_replace`, `use_state_for_unknown`,
//! `validator`), so that rules Terraform's semantics make easy to get wrong live here once:
//!
//! - **Defaults** are applied where the *configuration* is null. Terraform's proposed new
//!   state keeps the prior value of an optional+computed attribute whose configuration is
//!   null, so defaulting from the proposed state would never take a removed argument back
//!   to its default.
//! - **Computed-only attributes** are unknown when the object is created; unknown when it
//!   is updated (some settable attribute differs from the prior state) unless declared
//!   `use_state_for_unknown`; and exactly their prior value when nothing changed, so a plan
//!   never shows spurious diffs.
//! - **Replacement**: an attribute declared `requires_replace` whose planned value differs
//!   from the prior one (ignoring letter case when so declared; unknown counts as differing)
//!   is reported in `requires_replace`.
//! - **Validators** run on known, non-null values; on a list, set or map of primitives each
//!   element is checked; diagnostics carry the attribute's path.
//!
//! Nested blocks and nested attributes are followed: `Single`/`Group` objects, `List`
//! elements by index and `Map` elements by key. Elements of sets cannot be matched between
//! configuration, prior and proposed values, so defaults and replacement are not applied
//! inside set-nested blocks (validators are).

use crate::diagnostics::{AttributePath, Diagnostics};
use crate::schema::{Attribute, Block, NestedBlock, NestingMode, ReplaceWhen};
use crate::types::Type;
use crate::value::Value;

static NULL: Value = Value::Null;

/// The attributes and nested blocks of one object.
#[derive(Clone, Copy)]
struct Shape<'a> {
    attributes: &'a [Attribute],
    blocks: &'a [NestedBlock],
}

impl<'a> Shape<'a> {
    fn of(block: &'a Block) -> Shape<'a> {
        Shape {
            attributes: &block.attributes,
            blocks: &block.block_types,
        }
    }

    /// Every nested object kind: nested attributes and nested blocks, with their nesting.
    fn children(self) -> impl Iterator<Item = (&'a str, NestingMode, Shape<'a>)> {
        let attributes = self.attributes.iter().filter_map(|a| {
            a.nested.as_ref().map(|nested| {
                (
                    a.name.as_str(),
                    nested.nesting,
                    Shape {
                        attributes: &nested.attributes,
                        blocks: &[],
                    },
                )
            })
        });
        let blocks = self
            .blocks
            .iter()
            .map(|b| (b.type_name.as_str(), b.nesting, Shape::of(&b.block)));
        attributes.chain(blocks)
    }
}

/// Rebuilds `target` (a nested value) element by element, each element given with its
/// counterpart in `other` (Null when there is none). Sets and non-collections are kept.
fn map_nested(
    nesting: NestingMode,
    other: &Value,
    target: &Value,
    f: &mut dyn FnMut(&Value, &Value) -> Value,
) -> Value {
    match (nesting, target) {
        (NestingMode::Single | NestingMode::Group, Value::Object(_)) => f(other, target),
        (NestingMode::List, Value::List(items)) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(i, t)| f(other.as_list().and_then(|l| l.get(i)).unwrap_or(&NULL), t))
                .collect(),
        ),
        (NestingMode::Map, Value::Map(items)) => Value::Map(
            items
                .iter()
                .map(|(k, t)| (k.clone(), f(other.get(k), t)))
                .collect(),
        ),
        _ => target.clone(),
    }
}

// ------------------------------------------------------------------------------------------
// Defaults
// ------------------------------------------------------------------------------------------

// The declared behaviour of a block, as methods of the block: the schema declares, this
// module acts on the declarations (the schema module needs nothing from here).
impl Block {
    /// `config` with every declared default filled in where the configuration is null.
    /// The server does this for data sources and actions; resources get it in their plan.
    pub fn apply_defaults(&self, config: &Value) -> Value {
        apply_defaults(self, config, config)
    }

    /// Runs the declared validators over `config` (the server does this at validation).
    pub fn validate(&self, config: &Value) -> Diagnostics {
        validate(self, config)
    }
}

/// `target` with each declared default set where `config` is null (unknown stays unknown).
pub fn apply_defaults(block: &Block, config: &Value, target: &Value) -> Value {
    defaults(Shape::of(block), config, target)
}

fn defaults(shape: Shape, config: &Value, target: &Value) -> Value {
    let Value::Object(fields) = target else {
        return target.clone();
    };
    let mut out = fields.clone();
    for attribute in shape.attributes {
        if let Some(default) = &attribute.plan.default {
            if config.get(&attribute.name).is_null() {
                out.insert(attribute.name.clone(), default.clone());
            }
        }
    }
    for (name, nesting, child) in shape.children() {
        if let Some(value) = out.get(name) {
            let updated = map_nested(nesting, config.get(name), value, &mut |c, t| {
                defaults(child, c, t)
            });
            out.insert(name.to_string(), updated);
        }
    }
    Value::Object(out)
}

// ------------------------------------------------------------------------------------------
// The planned value of computed attributes
// ------------------------------------------------------------------------------------------

/// The proposed new state as the schema's declarations say it should be planned: defaults
/// where the configuration is null, then computed-only attributes unknown on create,
/// unknown on update (unless `use_state_for_unknown`), their prior value otherwise.
/// A null `proposed` (destroy) is returned as is.
pub fn plan_proposed(block: &Block, config: &Value, prior: &Value, proposed: &Value) -> Value {
    if proposed.is_null() || proposed.is_unknown() {
        return proposed.clone();
    }
    let shape = Shape::of(block);
    let planned = defaults(shape, config, proposed);
    let creating = prior.is_null();
    let changed = !creating && !semantic_eq(&settable(shape, &planned), &settable(shape, prior));
    computed(shape, &planned, prior, creating, changed)
}

/// Whether `planned` changes anything the configuration sets, compared to `prior`.
pub fn settable_changed(block: &Block, prior: &Value, planned: &Value) -> bool {
    let shape = Shape::of(block);
    !semantic_eq(&settable(shape, planned), &settable(shape, prior))
}

/// The value with computed-only attributes nulled, at every level.
fn settable(shape: Shape, value: &Value) -> Value {
    let Value::Object(fields) = value else {
        return value.clone();
    };
    let mut out = fields.clone();
    for attribute in shape.attributes {
        if attribute.is_computed_only() {
            out.insert(attribute.name.clone(), Value::Null);
        }
    }
    for (name, nesting, child) in shape.children() {
        if let Some(value) = out.get(name) {
            if !value.is_null() {
                let updated = map_nested(nesting, value, value, &mut |_, t| settable(child, t));
                out.insert(name.to_string(), updated);
            }
        }
    }
    Value::Object(out)
}

fn computed(shape: Shape, planned: &Value, prior: &Value, creating: bool, changed: bool) -> Value {
    let Value::Object(fields) = planned else {
        return planned.clone();
    };
    let mut out = fields.clone();
    for attribute in shape.attributes {
        if !attribute.is_computed_only() {
            continue;
        }
        let before = prior.get(&attribute.name);
        // Unchanged, or declared to keep its value through an update: the prior value.
        let keep = !changed || (attribute.plan.use_state_for_unknown && !before.is_null());
        let value = if !creating && keep {
            before.clone()
        } else {
            Value::unknown()
        };
        out.insert(attribute.name.clone(), value);
    }
    for (name, nesting, child) in shape.children() {
        let is_computed_only = shape
            .attributes
            .iter()
            .any(|a| a.name == name && a.is_computed_only());
        if is_computed_only {
            continue;
        }
        if let Some(value) = out.get(name) {
            let updated = map_nested(nesting, prior.get(name), value, &mut |p, t| {
                computed(child, t, p, creating || p.is_null(), changed)
            });
            out.insert(name.to_string(), updated);
        }
    }
    Value::Object(out)
}

// ------------------------------------------------------------------------------------------
// Replacement
// ------------------------------------------------------------------------------------------

/// The paths of attributes declared `requires_replace` whose planned value differs from
/// the prior one. Empty when creating (`prior` null) or destroying (`planned` null).
pub fn requires_replace(block: &Block, prior: &Value, planned: &Value) -> Vec<AttributePath> {
    let mut out = Vec::new();
    if !prior.is_null() && !planned.is_null() {
        replace(
            Shape::of(block),
            prior,
            planned,
            &AttributePath::default(),
            &mut out,
        );
    }
    out
}

fn replace(
    shape: Shape,
    prior: &Value,
    planned: &Value,
    path: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for attribute in shape.attributes {
        let Some(when) = attribute.plan.requires_replace else {
            continue;
        };
        let (before, after) = (prior.get(&attribute.name), planned.get(&attribute.name));
        let same = match when {
            ReplaceWhen::Changed => semantic_eq(before, after),
            ReplaceWhen::ChangedIgnoringCase => {
                semantic_eq(&lower_case(before), &lower_case(after))
            }
        };
        if !same {
            out.push(path.clone().attribute(&attribute.name));
        }
    }
    for (name, nesting, child) in shape.children() {
        let (before, after) = (prior.get(name), planned.get(name));
        let here = path.clone().attribute(name);
        match (nesting, before, after) {
            (NestingMode::Single | NestingMode::Group, Value::Object(_), Value::Object(_)) => {
                replace(child, before, after, &here, out)
            }
            (NestingMode::List, Value::List(b), Value::List(a)) => {
                for (i, (b, a)) in b.iter().zip(a).enumerate() {
                    replace(child, b, a, &here.clone().key_int(i as i64), out);
                }
            }
            (NestingMode::Map, Value::Map(b), Value::Map(a)) => {
                for (key, a) in a {
                    if let Some(b) = b.get(key) {
                        replace(child, b, a, &here.clone().key_string(key), out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn lower_case(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.to_lowercase()),
        Value::List(items) => Value::List(items.iter().map(lower_case).collect()),
        Value::Set(items) => Value::Set(items.iter().map(lower_case).collect()),
        Value::Tuple(items) => Value::Tuple(items.iter().map(lower_case).collect()),
        Value::Map(items) => Value::Map(
            items
                .iter()
                .map(|(k, v)| (k.clone(), lower_case(v)))
                .collect(),
        ),
        Value::Object(items) => Value::Object(
            items
                .iter()
                .map(|(k, v)| (k.clone(), lower_case(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Equality as Terraform sees it: sets compare as sets, an absent object attribute equals
/// null, an unknown value equals nothing.
pub fn semantic_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Unknown(_), _) | (_, Value::Unknown(_)) => false,
        (Value::Set(x), Value::Set(y)) => {
            x.len() == y.len()
                && x.iter().all(|e| y.iter().any(|f| semantic_eq(e, f)))
                && y.iter().all(|f| x.iter().any(|e| semantic_eq(e, f)))
        }
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(e, f)| semantic_eq(e, f))
        }
        (Value::Map(x), Value::Map(y)) | (Value::Object(x), Value::Object(y)) => x
            .keys()
            .chain(y.keys())
            .all(|k| semantic_eq(a.get(k), b.get(k))),
        _ => a == b,
    }
}

// ------------------------------------------------------------------------------------------
// Validators
// ------------------------------------------------------------------------------------------

/// Runs every declared validator over the known, non-null values of `config`.
pub fn validate(block: &Block, config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    check(
        Shape::of(block),
        config,
        &AttributePath::default(),
        true,
        &mut diagnostics,
    );
    diagnostics
}

/// Only the warnings for deprecated arguments and blocks the configuration sets (part of
/// `validate`; for the provider block, whose other checks are the provider's own).
pub fn deprecations(block: &Block, config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    check(
        Shape::of(block),
        config,
        &AttributePath::default(),
        false,
        &mut diagnostics,
    );
    diagnostics
}

fn check(
    shape: Shape,
    value: &Value,
    path: &AttributePath,
    validators: bool,
    diagnostics: &mut Diagnostics,
) {
    for attribute in shape.attributes {
        let value = value.get(&attribute.name);
        let here = path.clone().attribute(&attribute.name);
        if attribute.deprecated && !value.is_null() && !value.is_unknown() {
            deprecated(
                diagnostics,
                here.clone(),
                "Attribute",
                "argument",
                &attribute.deprecation_message,
            );
        }
        if !validators || attribute.validators.is_empty() {
            continue;
        }
        let element_wise = attribute.nested.is_none()
            && matches!(
                attribute.r#type,
                Type::List(_) | Type::Set(_) | Type::Map(_)
            );
        let targets = if element_wise {
            elements(value, &here)
        } else {
            vec![(here, value)]
        };
        for (path, value) in targets {
            if value.is_null() || value.is_unknown() {
                continue;
            }
            for validator in &attribute.validators {
                if let Err(detail) = validator.check(value) {
                    diagnostics.error_at(path.clone(), validator.summary(), &detail);
                }
            }
        }
    }
    for nested in shape.blocks {
        let block = &nested.block;
        let present = match value.get(&nested.type_name) {
            Value::Null => false,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => !items.is_empty(),
            Value::Map(items) => !items.is_empty(),
            v => !v.is_unknown(),
        };
        if block.deprecated && present {
            let here = path.clone().attribute(&nested.type_name);
            deprecated(
                diagnostics,
                here,
                "Block",
                "block",
                &block.deprecation_message,
            );
        }
    }
    for (name, nesting, child) in shape.children() {
        let nested = value.get(name);
        let here = path.clone().attribute(name);
        let objects = match nesting {
            NestingMode::Single | NestingMode::Group => vec![(here, nested)],
            _ => elements(nested, &here),
        };
        for (path, object) in objects {
            check(child, object, &path, validators, diagnostics);
        }
    }
}

/// The warning for a deprecated argument or block that the configuration sets, as
/// terraform-plugin-framework gives it ("Attribute Deprecated" with the deprecation message),
/// naming the argument in the detail too: Terraform shows the line, CI logs often only the
/// text.
fn deprecated(
    diagnostics: &mut Diagnostics,
    path: AttributePath,
    kind: &str,
    noun: &str,
    message: &str,
) {
    let detail = if message.is_empty() {
        format!("The {noun} \"{path}\" is deprecated and will be removed in a future version of the provider.")
    } else {
        format!("The {noun} \"{path}\" is deprecated. {message}")
    };
    diagnostics.warning_at(path, &format!("{kind} Deprecated"), &detail);
}

/// The known elements of a collection with their paths (set elements have no path of their
/// own here: they are reported at the set).
fn elements<'v>(value: &'v Value, path: &AttributePath) -> Vec<(AttributePath, &'v Value)> {
    match value {
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (path.clone().key_int(i as i64), v))
            .collect(),
        Value::Set(items) => items.iter().map(|v| (path.clone(), v)).collect(),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| (path.clone().key_string(k), v))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::NestedBlock;
    use crate::validators::Validator;

    /// `name` (replace), `scope` (replace ignoring case), `mode` (default), `limit`
    /// (default), `tags` (optional), `id` (computed, kept), `outcome` (computed), and a
    /// `timeouts` block with a default and a validator.
    fn block() -> Block {
        Block {
            attributes: vec![
                Attribute::required("name", Type::String).requires_replace(),
                Attribute::required("scope", Type::String).requires_replace_ignoring_case(),
                Attribute::optional("mode", Type::String)
                    .default_value("enforce")
                    .validator(Validator::one_of("Invalid mode", &["enforce", "audit"])),
                Attribute::optional("limit", Type::Number)
                    .default_value(50)
                    .validator(Validator::whole_number_at_least("Invalid limit", 0)),
                Attribute::optional("kinds", Type::set(Type::String))
                    .validator(Validator::one_of("Unknown kind", &["vm", "vmss"])),
                Attribute::optional("names", Type::list(Type::String))
                    .validator(Validator::one_of("Unknown name", &["a", "b"])),
                Attribute::optional("tags", Type::map(Type::String)),
                Attribute::computed("id", Type::String).use_state_for_unknown(),
                Attribute::computed("outcome", Type::String),
            ],
            block_types: vec![NestedBlock::new(
                "timeouts",
                NestingMode::Single,
                Block {
                    attributes: vec![Attribute::optional("create", Type::String)
                        .default_value("30m")
                        .validator(Validator::string("Invalid duration", |s| {
                            if s.ends_with('m') {
                                Ok(())
                            } else {
                                Err(format!("`{s}` is not a duration"))
                            }
                        }))],
                    ..Block::default()
                },
            )],
            ..Block::default()
        }
    }

    fn object(fields: &[(&str, Value)]) -> Value {
        let Type::Object(types) = block().value_type() else {
            unreachable!()
        };
        let mut all: std::collections::BTreeMap<String, Value> =
            types.into_keys().map(|name| (name, Value::Null)).collect();
        for (name, value) in fields {
            all.insert(name.to_string(), value.clone());
        }
        Value::Object(all)
    }

    fn prior() -> Value {
        object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/subscriptions/ABC")),
            ("mode", Value::from("audit")),
            ("limit", Value::int(50)),
            ("id", Value::from("x-1")),
            ("outcome", Value::from("done")),
        ])
    }

    /// Terraform's proposed new state: config, with prior values where an optional+computed
    /// or computed attribute's config is null.
    fn proposed(config: &Value, prior: &Value) -> Value {
        let mut fields = config.as_object().unwrap().clone();
        for attribute in &block().attributes {
            if attribute.computed && config.get(&attribute.name).is_null() {
                fields.insert(attribute.name.clone(), prior.get(&attribute.name).clone());
            }
        }
        Value::Object(fields)
    }

    fn plan(config: &Value, prior: &Value) -> Value {
        plan_proposed(&block(), config, prior, &proposed(config, prior))
    }

    #[test]
    fn default_applies_when_config_is_null_though_proposed_kept_the_prior_value() {
        let config = object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/subscriptions/ABC")),
        ]);
        let proposed = proposed(&config, &prior());
        assert_eq!(proposed.get("mode"), &Value::from("audit"), "the trap");
        let planned = plan(&config, &prior());
        assert_eq!(planned.get("mode"), &Value::from("enforce"));
        assert_eq!(planned.get("limit"), &Value::int(50));
    }

    #[test]
    fn default_is_not_applied_when_config_sets_the_value_or_it_is_unknown() {
        let config = object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/subscriptions/ABC")),
            ("mode", Value::from("audit")),
            ("limit", Value::unknown()),
        ]);
        let planned = plan(&config, &prior());
        assert_eq!(planned.get("mode"), &Value::from("audit"));
        assert!(
            planned.get("limit").is_unknown(),
            "unknown config stays unknown"
        );
    }

    #[test]
    fn defaults_inside_a_nested_block_apply_only_when_the_block_is_there() {
        let with_block = object(&[
            ("name", Value::from("x")),
            ("timeouts", Value::object([("create", Value::Null)])),
        ]);
        let planned = plan(&with_block, &Value::Null);
        assert_eq!(planned.get("timeouts").get("create"), &Value::from("30m"));
        let without = object(&[("name", Value::from("x"))]);
        assert!(plan(&without, &Value::Null).get("timeouts").is_null());
        // Data sources and actions: config only.
        let defaulted = block().apply_defaults(&without);
        assert_eq!(defaulted.get("mode"), &Value::from("enforce"));
    }

    #[test]
    fn computed_attributes_are_unknown_on_create() {
        let config = object(&[("name", Value::from("x")), ("scope", Value::from("/s"))]);
        let planned = plan(&config, &Value::Null);
        assert!(planned.get("id").is_unknown());
        assert!(planned.get("outcome").is_unknown());
        assert!(requires_replace(&block(), &Value::Null, &planned).is_empty());
    }

    #[test]
    fn computed_attributes_keep_their_prior_value_when_nothing_changed() {
        let config = object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/subscriptions/ABC")),
            ("mode", Value::from("audit")),
        ]);
        let planned = plan(&config, &prior());
        assert!(semantic_eq(&planned, &prior()), "{planned:?}");
        assert!(requires_replace(&block(), &prior(), &planned).is_empty());
    }

    #[test]
    fn computed_attributes_go_unknown_on_change_unless_use_state_for_unknown() {
        let config = object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/subscriptions/ABC")),
            ("mode", Value::from("enforce")),
        ]);
        let planned = plan(&config, &prior());
        assert!(planned.get("outcome").is_unknown());
        assert_eq!(
            planned.get("id"),
            &Value::from("x-1"),
            "use_state_for_unknown"
        );
        assert!(requires_replace(&block(), &prior(), &planned).is_empty());
    }

    #[test]
    fn requires_replace_only_when_the_value_changes() {
        let renamed = object(&[
            ("name", Value::from("y")),
            ("scope", Value::from("/subscriptions/ABC")),
            ("mode", Value::from("audit")),
        ]);
        let planned = plan(&renamed, &prior());
        assert_eq!(
            requires_replace(&block(), &prior(), &planned),
            vec![AttributePath::root("name")]
        );
        let unknown = renamed.with("name", Value::unknown());
        assert_eq!(
            requires_replace(&block(), &prior(), &plan(&unknown, &prior())),
            vec![AttributePath::root("name")],
            "an unknown value may differ"
        );
    }

    #[test]
    fn requires_replace_ignoring_case() {
        let recased = object(&[
            ("name", Value::from("x")),
            ("scope", Value::from("/SUBSCRIPTIONS/abc")),
            ("mode", Value::from("audit")),
        ]);
        assert!(requires_replace(&block(), &prior(), &plan(&recased, &prior())).is_empty());
        let moved = recased.with("scope", Value::from("/subscriptions/other"));
        assert_eq!(
            requires_replace(&block(), &prior(), &plan(&moved, &prior())),
            vec![AttributePath::root("scope")]
        );
        // "name" is case-sensitive.
        let renamed = recased.with("name", Value::from("X"));
        assert_eq!(
            requires_replace(&block(), &prior(), &plan(&renamed, &prior())),
            vec![AttributePath::root("name")]
        );
    }

    #[test]
    fn destroy_is_left_alone() {
        assert!(plan_proposed(&block(), &Value::Null, &prior(), &Value::Null).is_null());
        assert!(requires_replace(&block(), &prior(), &Value::Null).is_empty());
    }

    #[test]
    fn sets_compare_as_sets() {
        let a = Value::string_set(["a", "b"]);
        let b = Value::string_set(["b", "a"]);
        assert!(semantic_eq(&a, &b));
        assert!(!semantic_eq(&a, &Value::string_set(["a"])));
        assert!(!semantic_eq(&Value::unknown(), &Value::unknown()));
    }

    fn paths(diagnostics: &Diagnostics) -> Vec<(AttributePath, String)> {
        diagnostics
            .iter()
            .map(|d| (d.attribute.clone().unwrap(), d.summary.clone()))
            .collect()
    }

    #[test]
    fn validators_name_the_path() {
        let config = object(&[
            ("mode", Value::from("purge")),
            ("limit", Value::int(-1)),
            ("timeouts", Value::object([("create", Value::from("soon"))])),
        ]);
        let found = paths(&validate(&block(), &config));
        assert_eq!(
            found,
            vec![
                (AttributePath::root("mode"), "Invalid mode".to_string()),
                (AttributePath::root("limit"), "Invalid limit".to_string()),
                (
                    AttributePath::root("timeouts").attribute("create"),
                    "Invalid duration".to_string()
                ),
            ]
        );
    }

    #[test]
    fn validators_skip_unknown_and_null_values() {
        let config = object(&[
            ("mode", Value::unknown()),
            (
                "kinds",
                Value::Set(vec![Value::unknown(), Value::from("vm")]),
            ),
            ("timeouts", Value::unknown()),
        ]);
        assert!(validate(&block(), &config).is_empty());
    }

    #[test]
    fn validators_see_each_element_of_lists_and_sets() {
        let config = object(&[
            ("kinds", Value::string_set(["vm", "robot"])),
            (
                "names",
                Value::List(vec![Value::from("a"), Value::from("z"), Value::unknown()]),
            ),
        ]);
        let found = paths(&validate(&block(), &config));
        assert_eq!(
            found,
            vec![
                (AttributePath::root("kinds"), "Unknown kind".to_string()),
                (
                    AttributePath::root("names").key_int(1),
                    "Unknown name".to_string()
                ),
            ]
        );
        let diagnostics = validate(&block(), &config);
        assert!(diagnostics.items[0].detail.contains("`robot`"));
    }
}
