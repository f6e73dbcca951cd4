//! Resource identity (Terraform 1.12+): the small object that names one resource object, for
//! `import` blocks with `identity` and for list resources (`terraform query`).
//!
//! Each resource says how a state names its object (`Resource::identity_of`); the plugin
//! layer keeps an object's identity for its whole life from that (see `tfplugin::identity`).

use tfplugin::{IdentityAttribute, Type};

/// A string identity attribute.
pub fn attribute(name: &str, required: bool, description: &str) -> IdentityAttribute {
    IdentityAttribute {
        name: name.to_string(),
        r#type: Type::String,
        required_for_import: required,
        optional_for_import: !required,
        description: description.to_string(),
    }
}

/// `value` when every part of it is known.
pub use tfplugin::identity::known;
