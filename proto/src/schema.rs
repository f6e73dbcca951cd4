//! Schemas: the attributes and blocks of providers, resources, data sources, actions and list
//! resources, with builders, and the value type a schema implies.

use std::collections::BTreeMap;

use crate::types::Type;
use crate::validators::Validator;
use crate::value::Value;
use crate::wire::tfplugin6 as wire;

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(version: i64, block: Block) -> Schema {
        Schema { version, block }
    }

    /// The object type of values of this schema.
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }

    pub(crate) fn to_wire(&self) -> wire::Schema {
        wire::Schema {
            version: self.version,
            block: Some(self.block.to_wire(self.version)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub block_types: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
    /// What to use instead, shown to users (`deprecation_message`, protocol 6.10); for a
    /// nested block, also the detail of the warning the server gives at validation when the
    /// block is in the configuration. Setting it implies `deprecated`.
    pub deprecation_message: String,
    /// Protocol 6.11 (Terraform 1.16): a nested block the provider may set when the
    /// configuration leaves it out. Only Terraform that declares `computed_blocks_allowed`
    /// honours it; the server refuses a configuration of such a resource from older
    /// Terraform at validation.
    pub computed: bool,
}

impl Block {
    pub fn value_type(&self) -> Type {
        let mut fields: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.value_type()))
            .collect();
        for nested in &self.block_types {
            let object = nested.block.value_type();
            let ty = match nested.nesting {
                NestingMode::Single | NestingMode::Group => object,
                NestingMode::List => Type::list(object),
                NestingMode::Set => Type::set(object),
                NestingMode::Map => Type::map(object),
            };
            fields.insert(nested.type_name.clone(), ty);
        }
        Type::Object(fields)
    }

    fn to_wire(&self, version: i64) -> wire::schema::Block {
        wire::schema::Block {
            version,
            attributes: self.attributes.iter().map(Attribute::to_wire).collect(),
            block_types: self.block_types.iter().map(NestedBlock::to_wire).collect(),
            description: self.description.clone(),
            description_kind: wire::StringKind::Markdown as i32,
            deprecated: self.deprecated || !self.deprecation_message.is_empty(),
            deprecation_message: self.deprecation_message.clone(),
            computed: self.computed,
        }
    }

    /// Whether this block or one nested in it is `computed` (protocol 6.11).
    pub fn has_computed_blocks(&self) -> bool {
        self.block_types
            .iter()
            .any(|nested| nested.block.computed || nested.block.has_computed_blocks())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestingMode {
    Single,
    List,
    Set,
    Map,
    /// Like `Single`, but never null: absent means all attributes null.
    Group,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: NestingMode,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn new(type_name: &str, nesting: NestingMode, block: Block) -> NestedBlock {
        NestedBlock {
            type_name: type_name.to_string(),
            block,
            nesting,
            min_items: 0,
            max_items: 0,
        }
    }

    pub fn min_items(mut self, n: i64) -> Self {
        self.min_items = n;
        self
    }

    pub fn max_items(mut self, n: i64) -> Self {
        self.max_items = n;
        self
    }

    /// Deprecated, with the message users see: in the schema and as the detail of the
    /// warning the server gives at validation when the block is in the configuration.
    pub fn deprecated_because(mut self, message: impl Into<String>) -> Self {
        self.block.deprecated = true;
        self.block.deprecation_message = message.into();
        self
    }

    /// Protocol 6.11: the provider may set this block when the configuration leaves it out.
    pub fn computed(mut self) -> Self {
        self.block.computed = true;
        self
    }

    fn to_wire(&self) -> wire::schema::NestedBlock {
        use wire::schema::nested_block::NestingMode as W;
        wire::schema::NestedBlock {
            type_name: self.type_name.clone(),
            block: Some(self.block.to_wire(0)),
            nesting: match self.nesting {
                NestingMode::Single => W::Single,
                NestingMode::List => W::List,
                NestingMode::Set => W::Set,
                NestingMode::Map => W::Map,
                NestingMode::Group => W::Group,
            } as i32,
            min_items: self.min_items,
            max_items: self.max_items,
        }
    }
}

/// Attributes nested inside an attribute (`nested_type`), as opposed to a nested block.
#[derive(Debug, Clone)]
pub struct NestedAttributes {
    pub attributes: Vec<Attribute>,
    /// `Group` is not allowed here; use `Single`.
    pub nesting: NestingMode,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    /// Ignored when `nested` is set.
    pub r#type: Type,
    pub nested: Option<NestedAttributes>,
    /// Markdown.
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub deprecated: bool,
    /// What to use instead: sent to Terraform (`deprecation_message`) and the detail of the
    /// warning the server gives at validation when the argument is set. Setting it implies
    /// `deprecated`.
    pub deprecation_message: String,
    pub write_only: bool,
    /// Declared behaviour the server applies (the planning module); never sent to
    /// Terraform.
    pub plan: AttributePlan,
    /// Checks of known, non-null configuration values (element-wise on collections).
    pub validators: Vec<Validator>,
}

/// How an attribute plans, declared on the schema and applied by the server before the
/// resource's own `plan` runs.
#[derive(Debug, Clone, Default)]
pub struct AttributePlan {
    /// Planned when the configuration value is null, on create and on update alike.
    pub default: Option<Value>,
    /// A planned value that differs from the prior one replaces the resource.
    pub requires_replace: Option<ReplaceWhen>,
    /// A computed attribute keeps its prior value on update instead of going unknown.
    pub use_state_for_unknown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceWhen {
    /// Any change.
    Changed,
    /// A change other than letter case (ARM IDs, names).
    ChangedIgnoringCase,
}

impl Attribute {
    fn new(name: &str, r#type: Type) -> Attribute {
        Attribute {
            name: name.to_string(),
            r#type,
            nested: None,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            deprecated: false,
            deprecation_message: String::new(),
            write_only: false,
            plan: AttributePlan::default(),
            validators: Vec::new(),
        }
    }

    pub fn required(name: &str, r#type: Type) -> Attribute {
        Attribute {
            required: true,
            ..Attribute::new(name, r#type)
        }
    }

    pub fn optional(name: &str, r#type: Type) -> Attribute {
        Attribute {
            optional: true,
            ..Attribute::new(name, r#type)
        }
    }

    pub fn computed(name: &str, r#type: Type) -> Attribute {
        Attribute {
            computed: true,
            ..Attribute::new(name, r#type)
        }
    }

    /// Set by the user or, when left out, by the provider.
    pub fn optional_computed(mut self) -> Attribute {
        self.optional = true;
        self.computed = true;
        self.required = false;
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Attribute {
        self.description = text.into();
        self
    }

    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    /// Deprecated without saying what to use instead; prefer `deprecated_because`.
    pub fn deprecated(mut self) -> Attribute {
        self.deprecated = true;
        self
    }

    /// Deprecated, with the message users see: in the schema Terraform shows
    /// (`deprecation_message`) and as the detail of the warning the server gives at
    /// validation whenever the argument is set.
    pub fn deprecated_because(mut self, message: impl Into<String>) -> Attribute {
        self.deprecated = true;
        self.deprecation_message = message.into();
        self
    }

    pub fn write_only(mut self) -> Attribute {
        self.write_only = true;
        self
    }

    /// The value planned when the configuration leaves this attribute out (or sets it to
    /// null), also on update: removing the argument goes back to the default. Makes the
    /// attribute optional+computed.
    pub fn default_value(mut self, value: impl Into<Value>) -> Attribute {
        self.plan.default = Some(value.into());
        self.optional_computed()
    }

    /// Changing this attribute replaces the resource.
    pub fn requires_replace(mut self) -> Attribute {
        self.plan.requires_replace = Some(ReplaceWhen::Changed);
        self
    }

    /// Changing this attribute other than in letter case replaces the resource.
    pub fn requires_replace_ignoring_case(mut self) -> Attribute {
        self.plan.requires_replace = Some(ReplaceWhen::ChangedIgnoringCase);
        self
    }

    /// For a computed attribute: on update, plan the prior value instead of unknown.
    pub fn use_state_for_unknown(mut self) -> Attribute {
        self.plan.use_state_for_unknown = true;
        self
    }

    /// Adds a validator; several compose (each runs and reports on its own).
    pub fn validator(mut self, validator: Validator) -> Attribute {
        self.validators.push(validator);
        self
    }

    /// Computed and not settable: only the provider writes it.
    pub fn is_computed_only(&self) -> bool {
        self.computed && !self.optional && !self.required
    }

    pub fn nested(mut self, nesting: NestingMode, attributes: Vec<Attribute>) -> Attribute {
        self.nested = Some(NestedAttributes {
            attributes,
            nesting,
        });
        self
    }

    pub fn value_type(&self) -> Type {
        match &self.nested {
            None => self.r#type.clone(),
            Some(nested) => {
                let object = Type::Object(
                    nested
                        .attributes
                        .iter()
                        .map(|a| (a.name.clone(), a.value_type()))
                        .collect(),
                );
                match nested.nesting {
                    NestingMode::Single | NestingMode::Group => object,
                    NestingMode::List => Type::list(object),
                    NestingMode::Set => Type::set(object),
                    NestingMode::Map => Type::map(object),
                }
            }
        }
    }

    fn to_wire(&self) -> wire::schema::Attribute {
        use wire::schema::object::NestingMode as W;
        let nested_type = self.nested.as_ref().map(|nested| wire::schema::Object {
            attributes: nested.attributes.iter().map(Attribute::to_wire).collect(),
            nesting: match nested.nesting {
                NestingMode::Single | NestingMode::Group => W::Single,
                NestingMode::List => W::List,
                NestingMode::Set => W::Set,
                NestingMode::Map => W::Map,
            } as i32,
            #[allow(deprecated)]
            min_items: 0,
            #[allow(deprecated)]
            max_items: 0,
        });
        wire::schema::Attribute {
            name: self.name.clone(),
            r#type: if nested_type.is_some() {
                Vec::new()
            } else {
                self.r#type.to_json_bytes()
            },
            nested_type,
            description: self.description.clone(),
            required: self.required,
            optional: self.optional,
            computed: self.computed,
            sensitive: self.sensitive,
            description_kind: wire::StringKind::Markdown as i32,
            deprecated: self.deprecated || !self.deprecation_message.is_empty(),
            deprecation_message: self.deprecation_message.clone(),
            write_only: self.write_only,
        }
    }
}

/// The identity of a managed resource (protocol 6.9+): a small object that names one
/// resource instance, used by `import` blocks with `identity` and by list resources.
#[derive(Debug, Clone)]
pub struct IdentitySchema {
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
}

#[derive(Debug, Clone)]
pub struct IdentityAttribute {
    pub name: String,
    pub r#type: Type,
    pub required_for_import: bool,
    pub optional_for_import: bool,
    pub description: String,
}

impl IdentitySchema {
    pub fn value_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.r#type.clone()))
                .collect(),
        )
    }

    pub(crate) fn to_wire(&self) -> wire::ResourceIdentitySchema {
        wire::ResourceIdentitySchema {
            version: self.version,
            identity_attributes: self
                .attributes
                .iter()
                .map(|a| wire::resource_identity_schema::IdentityAttribute {
                    name: a.name.clone(),
                    r#type: a.r#type.to_json_bytes(),
                    required_for_import: a.required_for_import,
                    optional_for_import: a.optional_for_import,
                    description: a.description.clone(),
                })
                .collect(),
        }
    }
}
