//! Typed models: a resource's configuration or state as a Rust struct, via serde, instead
//! of walking attribute maps by name.
//!
//! ```ignore
//! #[derive(Deserialize, Serialize)]
//! struct Model { scope: String, mode: String, tags: Option<BTreeMap<String, String>> }
//! let model: Model = tfplugin::model::decode(&request.config)?;
//! let state = tfplugin::model::encode(&model, &schema.value_type());
//! ```
//!
//! Decoding reads the `Value` directly (no JSON in between). Null decodes as `None` for an
//! `Option` (and as `()`/missing otherwise, which serde reports as an error for a required
//! field). Object attributes the struct does not name are ignored, whatever they hold.
//!
//! Unknown values: [`decode`] fails on the first unknown value the struct reads, with a
//! diagnostic naming its path (plan-time configuration can hold unknowns; check
//! `is_fully_known` or use [`decode_lenient`]). [`decode_lenient`] reads an unknown value as
//! null, so `Option` fields come out `None`: for planning with what is known.
//!
//! Encoding goes through `serde_json::Value` and is guided by the schema's type: lists, sets
//! and maps come out as such, `None` as null, object attributes the struct lacks as null,
//! numbers given as text for a number attribute are parsed.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Serialize;
use serde_json::Value as Json;

use crate::diagnostics::{AttributePath, Diagnostics, PathStep};
use crate::types::Type;
use crate::value::{Number, Value};

/// Decodes `value` into `T`; an unknown value `T` reads is an error naming its path.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, Diagnostics> {
    decode_with(value, false)
}

/// Decodes `value` into `T`, reading unknown values as null (`None`).
pub fn decode_lenient<T: DeserializeOwned>(value: &Value) -> Result<T, Diagnostics> {
    decode_with(value, true)
}

fn decode_with<T: DeserializeOwned>(value: &Value, lenient: bool) -> Result<T, Diagnostics> {
    let deserializer = ValueDeserializer {
        value,
        path: AttributePath::default(),
        lenient,
    };
    T::deserialize(deserializer).map_err(|error| error.into_diagnostics())
}

/// Encodes `model` as a value of type `ty`. A model that does not fit the type (a bug in
/// the provider) leaves null where it does not fit and logs an error; see [`try_encode`].
pub fn encode<T: Serialize>(model: &T, ty: &Type) -> Value {
    match serde_json::to_value(model) {
        Ok(json) => convert(&json, ty, &mut |message| {
            tracing::error!("model does not fit its schema: {message}")
        }),
        Err(error) => {
            tracing::error!("model cannot be serialized: {error}");
            Value::Null
        }
    }
}

/// `object` (a value of the object type `ty`) with the attributes `model` serializes
/// replaced by their encoding; the others, unknown ones included, are kept. For a model of
/// part of a resource, like its computed outcome.
pub fn update<T: Serialize>(object: &Value, model: &T, ty: &Type) -> Value {
    let mut fields = object.as_object().cloned().unwrap_or_default();
    let (Ok(Json::Object(json)), Type::Object(types)) = (serde_json::to_value(model), ty) else {
        tracing::error!("model cannot update an object: not an object");
        return object.clone();
    };
    for (name, value) in &json {
        if let Some(ty) = types.get(name) {
            let value = convert(value, ty, &mut |message| {
                tracing::error!("model does not fit its schema: {message}")
            });
            fields.insert(name.clone(), value);
        }
    }
    Value::Object(fields)
}

/// A resource's private state (the bytes Terraform keeps beside an object and never shows)
/// as a typed model, stored as JSON. Empty bytes are the default; bytes it cannot read (say,
/// written by another version) read as the default too, with a warning in the log.
pub fn private_from_bytes<T: DeserializeOwned + Default>(bytes: &[u8]) -> T {
    if bytes.is_empty() {
        return T::default();
    }
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        tracing::warn!(%error, "unreadable private state; treating it as empty");
        T::default()
    })
}

/// `model` as private state bytes: none at all for the default.
pub fn private_to_bytes<T: Serialize + Default + PartialEq>(model: &T) -> Vec<u8> {
    if *model == T::default() {
        return Vec::new();
    }
    serde_json::to_vec(model).expect("a private state model serializes")
}

/// Encodes `model` as a value of type `ty`, or says where it does not fit.
pub fn try_encode<T: Serialize>(model: &T, ty: &Type) -> Result<Value, String> {
    let json = serde_json::to_value(model).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let value = convert(&json, ty, &mut |message| problems.push(message));
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems.join("; "))
    }
}

fn convert(json: &Json, ty: &Type, problem: &mut dyn FnMut(String)) -> Value {
    let mismatch = |problem: &mut dyn FnMut(String)| {
        problem(format!("{json} is not a {}", ty.to_json()));
        Value::Null
    };
    match (ty, json) {
        (_, Json::Null) => Value::Null,
        (_, Json::String(text)) if text == crate::typed::maybe::UNKNOWN => Value::unknown(),
        (Type::String, Json::String(text)) => Value::String(text.clone()),
        (Type::String, Json::Number(n)) => Value::String(n.to_string()),
        (Type::String, Json::Bool(b)) => Value::String(b.to_string()),
        (Type::Number, Json::Number(n)) => json_number(n),
        (Type::Number, Json::String(text)) => match Number::parse(text) {
            Some(n) => Value::Number(n),
            None => mismatch(problem),
        },
        (Type::Bool, Json::Bool(b)) => Value::Bool(*b),
        (Type::List(element), Json::Array(items)) => {
            Value::List(items.iter().map(|i| convert(i, element, problem)).collect())
        }
        (Type::Set(element), Json::Array(items)) => {
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                let value = convert(item, element, problem);
                if !out.contains(&value) {
                    out.push(value);
                }
            }
            Value::Set(out)
        }
        (Type::Tuple(elements), Json::Array(items)) if elements.len() == items.len() => {
            Value::Tuple(
                items
                    .iter()
                    .zip(elements)
                    .map(|(i, t)| convert(i, t, problem))
                    .collect(),
            )
        }
        (Type::Map(element), Json::Object(items)) => Value::Map(
            items
                .iter()
                .map(|(k, v)| (k.clone(), convert(v, element, problem)))
                .collect(),
        ),
        (Type::Object(attributes), Json::Object(items)) => Value::Object(
            attributes
                .iter()
                .map(|(name, ty)| {
                    let value = items
                        .get(name)
                        .map_or(Value::Null, |v| convert(v, ty, problem));
                    (name.clone(), value)
                })
                .collect(),
        ),
        (Type::Dynamic, json) => dynamic(json),
        _ => mismatch(problem),
    }
}

fn json_number(n: &serde_json::Number) -> Value {
    Value::Number(if let Some(i) = n.as_i64() {
        Number::Int(i)
    } else if let Some(u) = n.as_u64() {
        Number::Uint(u)
    } else {
        Number::Float(n.as_f64().unwrap_or(f64::NAN))
    })
}

/// A value of no declared type: arrays become tuples and objects objects, as cty infers.
fn dynamic(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => json_number(n),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Tuple(items.iter().map(dynamic).collect()),
        Json::Object(items) => Value::Object(
            items
                .iter()
                .map(|(k, v)| (k.clone(), dynamic(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------

/// A decoding failure and where it happened.
#[derive(Debug)]
pub struct DecodeError {
    path: Option<AttributePath>,
    message: String,
}

impl DecodeError {
    fn at(path: &AttributePath, message: impl Into<String>) -> DecodeError {
        DecodeError {
            path: Some(path.clone()),
            message: message.into(),
        }
    }

    fn into_diagnostics(self) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let detail = format!("{}.", self.message);
        match self.path {
            Some(path) if !path.steps.is_empty() => {
                diagnostics.error_at(path, "Cannot read the value", &detail)
            }
            _ => diagnostics.error("Cannot read the value", &detail),
        }
        diagnostics
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.steps.is_empty() => {
                write!(f, "{}: {}", display_path(path), self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DecodeError {
            path: None,
            message: message.to_string(),
        }
    }
}

/// `timeouts.create`, `tags["env"]`, `items[0]`.
pub fn display_path(path: &AttributePath) -> String {
    let mut out = String::new();
    for step in &path.steps {
        match step {
            PathStep::Attribute(name) if out.is_empty() => out.push_str(name),
            PathStep::Attribute(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathStep::KeyString(key) => out.push_str(&format!("[{key:?}]")),
            PathStep::KeyInt(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

struct ValueDeserializer<'a> {
    value: &'a Value,
    path: AttributePath,
    lenient: bool,
}

impl<'a> ValueDeserializer<'a> {
    fn child(&self, value: &'a Value, path: AttributePath) -> ValueDeserializer<'a> {
        ValueDeserializer {
            value,
            path,
            lenient: self.lenient,
        }
    }

    fn unknown(&self) -> DecodeError {
        DecodeError::at(&self.path, "the value is not known yet (known after apply)")
    }

    /// Errors raised below without a path get this one.
    fn locate(&self, error: DecodeError) -> DecodeError {
        if error.path.is_some() {
            error
        } else {
            DecodeError {
                path: Some(self.path.clone()),
                ..error
            }
        }
    }
}

impl<'de, 'a> de::Deserializer<'de> for ValueDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Unknown(_) if self.lenient => visitor.visit_unit(),
            Value::Unknown(_) => return Err(self.unknown()),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(Number::Int(n)) => visitor.visit_i64(*n),
            Value::Number(Number::Uint(n)) => visitor.visit_u64(*n),
            Value::Number(Number::Float(f)) => visitor.visit_f64(*f),
            Value::Number(Number::Big(text)) => visitor.visit_str(text),
            Value::String(text) => visitor.visit_str(text),
            Value::List(items) | Value::Tuple(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                parent: &self,
                keyed: true,
            }),
            Value::Set(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                parent: &self,
                keyed: false,
            }),
            Value::Map(items) | Value::Object(items) => visitor.visit_map(Map {
                items: items.iter(),
                current: None,
                parent: &self,
                object: matches!(self.value, Value::Object(_)),
            }),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            Value::Unknown(_) if self.lenient => visitor.visit_none(),
            Value::Unknown(_) => Err(self.unknown()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        // A `typed::Maybe` reads an unknown value as `Maybe::Unknown`, never an error.
        if name == crate::typed::maybe::TOKEN && self.value.is_unknown() {
            return visitor.visit_unit();
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::String(text) => {
                let inner: de::value::StrDeserializer<'_, DecodeError> =
                    text.as_str().into_deserializer();
                visitor.visit_enum(inner).map_err(|e| self.locate(e))
            }
            Value::Unknown(_) if !self.lenient => Err(self.unknown()),
            _ => Err(DecodeError::at(
                &self.path,
                "expected a string naming one of the allowed values",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        // Attributes the model does not name are skipped, known or not.
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Seq<'p, 'a, I> {
    items: I,
    parent: &'p ValueDeserializer<'a>,
    /// Lists and tuples name elements by index; set elements have no path of their own.
    keyed: bool,
}

impl<'de, 'p, 'a, I: Iterator<Item = (usize, &'a Value)>> de::SeqAccess<'de> for Seq<'p, 'a, I> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = if self.keyed {
            self.parent.path.clone().key_int(index as i64)
        } else {
            self.parent.path.clone()
        };
        let child = self.parent.child(value, path);
        let located = child.path.clone();
        seed.deserialize(child).map(Some).map_err(|e| {
            if e.path.is_some() {
                e
            } else {
                DecodeError {
                    path: Some(located),
                    ..e
                }
            }
        })
    }
}

struct Map<'p, 'a, I> {
    items: I,
    current: Option<(&'a String, &'a Value)>,
    parent: &'p ValueDeserializer<'a>,
    object: bool,
}

impl<'de, 'p, 'a, I: Iterator<Item = (&'a String, &'a Value)>> de::MapAccess<'de>
    for Map<'p, 'a, I>
{
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.items.next() else {
            return Ok(None);
        };
        self.current = Some((key, value));
        let key: de::value::StrDeserializer<'_, DecodeError> = key.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (key, value) = self
            .current
            .take()
            .expect("serde asks for a value after its key");
        let path = if self.object {
            self.parent.path.clone().attribute(key)
        } else {
            self.parent.path.clone().key_string(key)
        };
        let child = self.parent.child(value, path);
        let located = child.path.clone();
        seed.deserialize(child).map_err(|e| {
            if e.path.is_some() {
                e
            } else {
                DecodeError {
                    path: Some(located),
                    ..e
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Owned {
        machines: Vec<String>,
    }

    #[test]
    fn private_state_round_trips_is_empty_for_the_default_and_survives_garbage() {
        let owned = Owned {
            machines: vec!["/m1".into()],
        };
        let bytes = private_to_bytes(&owned);
        assert_eq!(private_from_bytes::<Owned>(&bytes), owned);
        assert!(private_to_bytes(&Owned::default()).is_empty());
        assert_eq!(private_from_bytes::<Owned>(b""), Owned::default());
        assert_eq!(
            private_from_bytes::<Owned>(b"\x00not json"),
            Owned::default()
        );
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Timeouts {
        create: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Enforce,
        Audit,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Model {
        scope: String,
        mode: Mode,
        limit: i64,
        kinds: BTreeSet<String>,
        names: Vec<String>,
        tags: Option<BTreeMap<String, String>>,
        note: Option<String>,
        enabled: bool,
        timeouts: Option<Timeouts>,
        items: Vec<Item>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        id: String,
        weight: Option<f64>,
    }

    fn ty() -> Type {
        Type::object([
            ("scope", Type::String),
            ("mode", Type::String),
            ("limit", Type::Number),
            ("kinds", Type::set(Type::String)),
            ("names", Type::list(Type::String)),
            ("tags", Type::map(Type::String)),
            ("note", Type::String),
            ("enabled", Type::Bool),
            ("timeouts", Type::object([("create", Type::String)])),
            (
                "items",
                Type::list(Type::object([
                    ("id", Type::String),
                    ("weight", Type::Number),
                ])),
            ),
            ("computed_only", Type::String),
        ])
    }

    fn model() -> Model {
        Model {
            scope: "/s".into(),
            mode: Mode::Audit,
            limit: 50,
            kinds: BTreeSet::from(["vm".to_string(), "vmss".to_string()]),
            names: vec!["b".into(), "a".into()],
            tags: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
            note: None,
            enabled: true,
            timeouts: Some(Timeouts { create: None }),
            items: vec![Item {
                id: "1".into(),
                weight: Some(1.5),
            }],
        }
    }

    #[test]
    fn a_model_round_trips_with_sets_maps_options_and_nested_objects() {
        let value = encode(&model(), &ty());
        assert_eq!(value.get("kinds"), &Value::string_set(["vm", "vmss"]));
        assert!(matches!(value.get("names"), Value::List(_)));
        assert!(matches!(value.get("tags"), Value::Map(_)));
        assert!(value.get("note").is_null(), "None is null");
        assert!(
            value.get("computed_only").is_null(),
            "attributes the model lacks are null"
        );
        assert!(value.get("timeouts").get("create").is_null());
        assert_eq!(value.get("mode"), &Value::from("audit"));
        assert_eq!(value.get("limit"), &Value::int(50));
        assert_eq!(decode::<Model>(&value).unwrap(), model());
        assert!(try_encode(&model(), &ty()).is_ok());
    }

    #[test]
    fn attributes_the_model_does_not_name_are_ignored_even_unknown() {
        let value = encode(&model(), &ty()).with("computed_only", Value::unknown());
        assert_eq!(decode::<Model>(&value).unwrap(), model());
    }

    #[test]
    fn decoding_an_unknown_value_names_its_path() {
        let value = encode(&model(), &ty());
        let items = Value::List(vec![Value::object([
            ("id", Value::unknown()),
            ("weight", Value::Null),
        ])]);
        let error = decode::<Model>(&value.with("items", items)).unwrap_err();
        let diagnostic = &error.items[0];
        assert_eq!(
            diagnostic.attribute,
            Some(AttributePath::root("items").key_int(0).attribute("id"))
        );
        assert!(diagnostic.detail.contains("not known"), "{diagnostic:?}");

        let error = decode::<Model>(&value.with("note", Value::unknown())).unwrap_err();
        assert_eq!(error.items[0].attribute, Some(AttributePath::root("note")));
    }

    #[test]
    fn lenient_decoding_reads_unknown_as_none() {
        let value = encode(&model(), &ty()).with("note", Value::unknown());
        let decoded: Model = decode_lenient(&value).unwrap();
        assert_eq!(decoded.note, None);
    }

    #[test]
    fn type_errors_name_the_path() {
        let value = encode(&model(), &ty()).with("limit", Value::from("many"));
        let error = decode::<Model>(&value).unwrap_err();
        assert_eq!(error.items[0].attribute, Some(AttributePath::root("limit")));
        let value = encode(&model(), &ty()).with("mode", Value::from("purge"));
        let error = decode::<Model>(&value).unwrap_err();
        assert_eq!(error.items[0].attribute, Some(AttributePath::root("mode")));
        let missing = Value::object([("scope", Value::from("/s"))]);
        assert!(decode::<Model>(&missing).is_err());
    }

    #[test]
    fn update_replaces_only_what_the_model_names() {
        #[derive(Serialize)]
        struct Outcome {
            note: String,
            kinds: Vec<String>,
        }
        let before = encode(&model(), &ty()).with("limit", Value::unknown());
        let after = update(
            &before,
            &Outcome {
                note: "done".into(),
                kinds: vec!["x".into()],
            },
            &ty(),
        );
        assert_eq!(after.get("note"), &Value::from("done"));
        assert_eq!(after.get("kinds"), &Value::string_set(["x"]));
        assert!(after.get("limit").is_unknown(), "the rest is kept");
        assert_eq!(after.get("scope"), before.get("scope"));
    }

    #[test]
    fn a_model_that_does_not_fit_is_reported() {
        #[derive(Serialize)]
        struct Wrong {
            scope: Vec<i64>,
        }
        let error = try_encode(&Wrong { scope: vec![1] }, &ty()).unwrap_err();
        assert!(error.contains("[1]"), "{error}");
        assert!(encode(&Wrong { scope: vec![1] }, &ty())
            .get("scope")
            .is_null());
    }
}
