//! cty types, as Terraform writes them in schemas: `"string"`, `["list","number"]`,
//! `["object",{"a":"bool"}]`, and so on.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

/// A Terraform (cty) type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    String,
    Number,
    Bool,
    /// Any type; values travel with their type attached.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }

    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }

    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    pub fn object<'a>(attributes: impl IntoIterator<Item = (&'a str, Type)>) -> Type {
        Type::Object(
            attributes
                .into_iter()
                .map(|(name, ty)| (name.to_string(), ty))
                .collect(),
        )
    }

    /// The JSON form Terraform expects in schemas and in dynamic values.
    pub fn to_json(&self) -> Json {
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::Dynamic => json!("dynamic"),
            Type::List(element) => json!(["list", element.to_json()]),
            Type::Set(element) => json!(["set", element.to_json()]),
            Type::Map(element) => json!(["map", element.to_json()]),
            Type::Object(attributes) => {
                let attributes: serde_json::Map<String, Json> = attributes
                    .iter()
                    .map(|(name, ty)| (name.clone(), ty.to_json()))
                    .collect();
                json!(["object", attributes])
            }
            Type::Tuple(elements) => {
                json!([
                    "tuple",
                    elements.iter().map(Type::to_json).collect::<Vec<_>>()
                ])
            }
        }
    }

    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("a type always serializes")
    }

    /// Reads a type from its JSON form. Optional-attribute markers (the third element of an
    /// object type) are accepted and dropped: they only matter to Terraform's conversions.
    pub fn from_json(json: &Json) -> Result<Type, String> {
        match json {
            Json::String(name) => match name.as_str() {
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(format!("unknown primitive type {other:?}")),
            },
            Json::Array(parts) => {
                let kind = parts.first().and_then(Json::as_str).unwrap_or_default();
                let argument = parts
                    .get(1)
                    .ok_or_else(|| format!("type {json} lacks its argument"))?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(argument)?)),
                    "set" => Ok(Type::set(Type::from_json(argument)?)),
                    "map" => Ok(Type::map(Type::from_json(argument)?)),
                    "object" => {
                        let attributes = argument.as_object().ok_or_else(|| {
                            format!("object type {json} needs a map of attributes")
                        })?;
                        let mut out = BTreeMap::new();
                        for (name, ty) in attributes {
                            out.insert(name.clone(), Type::from_json(ty)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elements = argument
                            .as_array()
                            .ok_or_else(|| format!("tuple type {json} needs a list of types"))?;
                        Ok(Type::Tuple(
                            elements
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(format!("unknown type constructor {other:?}")),
                }
            }
            other => Err(format!("{other} is not a type")),
        }
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<Type, String> {
        let json: Json =
            serde_json::from_slice(bytes).map_err(|e| format!("type is not JSON: {e}"))?;
        Type::from_json(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips() {
        let ty = Type::object([
            ("name", Type::String),
            ("tags", Type::map(Type::String)),
            ("ids", Type::set(Type::String)),
            ("pair", Type::Tuple(vec![Type::Number, Type::Bool])),
            ("anything", Type::Dynamic),
            ("nested", Type::list(Type::object([("n", Type::Number)]))),
        ]);
        assert_eq!(Type::from_json_bytes(&ty.to_json_bytes()).unwrap(), ty);
        assert_eq!(
            ty.to_json()[1]["tags"],
            json!(["map", "string"]),
            "maps are written as Terraform writes them"
        );
    }

    #[test]
    fn optional_attribute_markers_are_accepted() {
        let json = json!(["object", {"a": "string"}, ["a"]]);
        assert_eq!(
            Type::from_json(&json).unwrap(),
            Type::object([("a", Type::String)])
        );
    }

    #[test]
    fn nonsense_is_an_error() {
        assert!(Type::from_json(&json!("strin")).is_err());
        assert!(Type::from_json(&json!(["list"])).is_err());
        assert!(Type::from_json(&json!(42)).is_err());
    }
}
