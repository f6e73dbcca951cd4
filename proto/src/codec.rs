//! The two encodings of `DynamicValue`: msgpack (what Terraform sends and expects for every
//! value) and JSON (stored state handed to `UpgradeResourceState`). Both are read against
//! the schema's type, as cty does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::value::RawValue;

use crate::types::Type;
use crate::value::{Number, Refinements, Value};

/// msgpack extension code cty writes for a wholly unknown value.
const UNKNOWN_EXT: i8 = 0;
/// msgpack extension code cty writes for an unknown value with refinements.
const REFINED_UNKNOWN_EXT: i8 = 12;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct DecodeError {
    /// Where in the value, like `.tags["env"]` or `.ids[2]`.
    pub path: String,
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> DecodeError {
    DecodeError {
        path: if path.is_empty() {
            "value".into()
        } else {
            path.to_string()
        },
        message: message.into(),
    }
}

// ------------------------------------------------------------------------------------------
// msgpack
// ------------------------------------------------------------------------------------------

pub fn to_msgpack(value: &Value, ty: &Type) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_msgpack(&mut out, value, ty);
    out
}

fn write_msgpack(out: &mut Vec<u8>, value: &Value, ty: &Type) {
    use rmp::encode as enc;
    // Writes into a Vec cannot fail.
    match value {
        Value::Null => enc::write_nil(out).expect("vec write"),
        Value::Unknown(Refinements(None)) => out.extend_from_slice(&[0xd4, UNKNOWN_EXT as u8, 0]),
        Value::Unknown(Refinements(Some(payload))) => {
            enc::write_ext_meta(out, payload.len() as u32, REFINED_UNKNOWN_EXT).expect("vec write");
            out.extend_from_slice(payload);
        }
        _ if *ty == Type::Dynamic => {
            let actual = infer_type(value);
            enc::write_array_len(out, 2).expect("vec write");
            enc::write_bin(out, &actual.to_json_bytes()).expect("vec write");
            write_msgpack(out, value, &actual);
        }
        Value::Bool(flag) => enc::write_bool(out, *flag).expect("vec write"),
        Value::Number(number) => match number {
            Number::Int(n) => {
                enc::write_sint(out, *n).expect("vec write");
            }
            Number::Uint(n) => {
                enc::write_uint(out, *n).expect("vec write");
            }
            Number::Float(f) => enc::write_f64(out, *f).expect("vec write"),
            Number::Big(text) => enc::write_str(out, text).expect("vec write"),
        },
        Value::String(text) => enc::write_str(out, text).expect("vec write"),
        Value::List(items) | Value::Set(items) => {
            let element = match ty {
                Type::List(e) | Type::Set(e) => e.as_ref(),
                _ => &Type::Dynamic,
            };
            enc::write_array_len(out, items.len() as u32).expect("vec write");
            for item in items {
                write_msgpack(out, item, element);
            }
        }
        Value::Tuple(items) => {
            enc::write_array_len(out, items.len() as u32).expect("vec write");
            for (index, item) in items.iter().enumerate() {
                let element = match ty {
                    Type::Tuple(types) => types.get(index).unwrap_or(&Type::Dynamic),
                    _ => &Type::Dynamic,
                };
                write_msgpack(out, item, element);
            }
        }
        Value::Map(items) => {
            let element = match ty {
                Type::Map(e) => e.as_ref(),
                _ => &Type::Dynamic,
            };
            enc::write_map_len(out, items.len() as u32).expect("vec write");
            for (key, item) in items {
                enc::write_str(out, key).expect("vec write");
                write_msgpack(out, item, element);
            }
        }
        Value::Object(fields) => match ty {
            // Every attribute of the type is written, absent ones as null, in name order.
            Type::Object(attributes) => {
                enc::write_map_len(out, attributes.len() as u32).expect("vec write");
                for (name, attribute_type) in attributes {
                    enc::write_str(out, name).expect("vec write");
                    write_msgpack(
                        out,
                        fields.get(name).unwrap_or(&Value::Null),
                        attribute_type,
                    );
                }
            }
            _ => {
                enc::write_map_len(out, fields.len() as u32).expect("vec write");
                for (name, item) in fields {
                    enc::write_str(out, name).expect("vec write");
                    write_msgpack(out, item, &Type::Dynamic);
                }
            }
        },
    }
}

/// The type a value has on its own, for values of a `dynamic` attribute.
pub fn infer_type(value: &Value) -> Type {
    match value {
        Value::Null | Value::Unknown(_) => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::list(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Set(items) => Type::set(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Map(items) => Type::map(items.values().next().map_or(Type::Dynamic, infer_type)),
        Value::Object(fields) => Type::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), infer_type(value)))
                .collect(),
        ),
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect()),
    }
}

pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let mut reader = bytes;
    let raw = rmpv::decode::read_value(&mut reader)
        .map_err(|e| error("", format!("invalid msgpack: {e}")))?;
    if !reader.is_empty() {
        return Err(error("", "trailing bytes after the msgpack value"));
    }
    convert_msgpack(raw, ty, &mut String::new())
}

fn convert_msgpack(raw: rmpv::Value, ty: &Type, path: &mut String) -> Result<Value, DecodeError> {
    use rmpv::Value as M;
    match raw {
        M::Nil => return Ok(Value::Null),
        M::Ext(code, payload) => {
            let refinements = (code == REFINED_UNKNOWN_EXT).then_some(payload);
            return Ok(Value::Unknown(Refinements(refinements)));
        }
        _ => {}
    }
    match (ty, raw) {
        (Type::Dynamic, M::Array(mut pair)) if pair.len() == 2 => {
            let value = pair.pop().expect("two elements");
            let type_json = match pair.pop().expect("two elements") {
                M::Binary(bytes) => bytes,
                M::String(text) => text.into_bytes(),
                _ => return Err(error(path, "dynamic value without its type")),
            };
            let actual = Type::from_json_bytes(&type_json).map_err(|e| error(path, e))?;
            convert_msgpack(value, &actual, path)
        }
        (Type::Dynamic, _) => Err(error(path, "dynamic value must be a [type, value] pair")),
        (Type::Bool, M::Boolean(flag)) => Ok(Value::Bool(flag)),
        (Type::Number, M::Integer(n)) => Ok(Value::Number(match n.as_i64() {
            Some(signed) => Number::Int(signed),
            None => Number::Uint(n.as_u64().expect("an integer is i64 or u64")),
        })),
        // cty has no NaN (it is not equal to itself, so no value could hold it).
        (Type::Number, M::F64(f)) if f.is_nan() => Err(error(path, "NaN is not a number")),
        (Type::Number, M::F32(f)) if f.is_nan() => Err(error(path, "NaN is not a number")),
        (Type::Number, M::F64(f)) => Ok(Value::Number(Number::Float(f))),
        (Type::Number, M::F32(f)) => Ok(Value::Number(Number::Float(f as f64))),
        (Type::Number, M::String(text)) => {
            let text = text
                .into_str()
                .ok_or_else(|| error(path, "number text is not UTF-8"))?;
            Number::parse(&text)
                .map(Value::Number)
                .ok_or_else(|| error(path, format!("{text:?} is not a number")))
        }
        (Type::String, M::String(text)) => text
            .into_str()
            .map(Value::String)
            .ok_or_else(|| error(path, "string is not UTF-8")),
        (Type::List(element), M::Array(items)) => {
            Ok(Value::List(convert_items(items, element, path)?))
        }
        (Type::Set(element), M::Array(items)) => {
            Ok(Value::Set(convert_items(items, element, path)?))
        }
        (Type::Tuple(types), M::Array(items)) => {
            if items.len() != types.len() {
                return Err(error(
                    path,
                    format!(
                        "tuple of {} elements, expected {}",
                        items.len(),
                        types.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (index, (item, element)) in items.into_iter().zip(types).enumerate() {
                let mark = path.len();
                let _ = write!(path, "[{index}]");
                out.push(convert_msgpack(item, element, path)?);
                path.truncate(mark);
            }
            Ok(Value::Tuple(out))
        }
        (Type::Map(element), M::Map(entries)) => {
            let mut out = BTreeMap::new();
            for (key, item) in entries {
                let key = msgpack_key(key, path)?;
                let mark = path.len();
                let _ = write!(path, "[{key:?}]");
                out.insert(key, convert_msgpack(item, element, path)?);
                path.truncate(mark);
            }
            Ok(Value::Map(out))
        }
        (Type::Object(attributes), M::Map(entries)) => {
            let mut out: BTreeMap<String, Value> = BTreeMap::new();
            for (key, item) in entries {
                let key = msgpack_key(key, path)?;
                let Some(attribute_type) = attributes.get(&key) else {
                    return Err(error(path, format!("unsupported attribute {key:?}")));
                };
                let mark = path.len();
                let _ = write!(path, ".{key}");
                out.insert(key, convert_msgpack(item, attribute_type, path)?);
                path.truncate(mark);
            }
            for name in attributes.keys() {
                out.entry(name.clone()).or_insert(Value::Null);
            }
            Ok(Value::Object(out))
        }
        (ty, raw) => Err(error(
            path,
            format!("expected {}, got msgpack {raw}", ty.to_json()),
        )),
    }
}

fn convert_items(
    items: Vec<rmpv::Value>,
    element: &Type,
    path: &mut String,
) -> Result<Vec<Value>, DecodeError> {
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let mark = path.len();
        let _ = write!(path, "[{index}]");
        out.push(convert_msgpack(item, element, path)?);
        path.truncate(mark);
    }
    Ok(out)
}

fn msgpack_key(key: rmpv::Value, path: &str) -> Result<String, DecodeError> {
    match key {
        rmpv::Value::String(text) => text
            .into_str()
            .ok_or_else(|| error(path, "key is not UTF-8")),
        other => Err(error(path, format!("map key {other} is not a string"))),
    }
}

// ------------------------------------------------------------------------------------------
// JSON
// ------------------------------------------------------------------------------------------

/// Reads JSON (as Terraform stores state) against a type. Numbers keep their exact text.
/// Object attributes the type does not have are dropped when `lenient` (old state after a
/// schema change), and an error otherwise.
pub fn from_json(bytes: &[u8], ty: &Type, lenient: bool) -> Result<Value, DecodeError> {
    let raw: &RawValue =
        serde_json::from_slice(bytes).map_err(|e| error("", format!("invalid JSON: {e}")))?;
    convert_json(raw, ty, lenient, &mut String::new())
}

fn parse_raw<'a, T: serde::Deserialize<'a>>(
    raw: &'a RawValue,
    path: &str,
    what: &str,
) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get())
        .map_err(|_| error(path, format!("expected {what}, got {}", raw.get())))
}

fn convert_json(
    raw: &RawValue,
    ty: &Type,
    lenient: bool,
    path: &mut String,
) -> Result<Value, DecodeError> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(Value::Null);
    }
    match ty {
        Type::Bool => Ok(Value::Bool(parse_raw(raw, path, "a bool")?)),
        Type::String => Ok(Value::String(parse_raw(raw, path, "a string")?)),
        Type::Number => {
            // cty also accepts numbers written as strings.
            let digits = if text.starts_with('"') {
                parse_raw::<String>(raw, path, "a number")?
            } else {
                text.to_string()
            };
            Number::parse(&digits)
                .map(Value::Number)
                .ok_or_else(|| error(path, format!("{digits} is not a number")))
        }
        Type::List(element) | Type::Set(element) => {
            let items: Vec<&RawValue> = parse_raw(raw, path, "an array")?;
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                let mark = path.len();
                let _ = write!(path, "[{index}]");
                out.push(convert_json(item, element, lenient, path)?);
                path.truncate(mark);
            }
            Ok(if matches!(ty, Type::Set(_)) {
                Value::Set(out)
            } else {
                Value::List(out)
            })
        }
        Type::Tuple(types) => {
            let items: Vec<&RawValue> = parse_raw(raw, path, "an array")?;
            if items.len() != types.len() {
                return Err(error(
                    path,
                    format!(
                        "tuple of {} elements, expected {}",
                        items.len(),
                        types.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (index, (item, element)) in items.into_iter().zip(types).enumerate() {
                let mark = path.len();
                let _ = write!(path, "[{index}]");
                out.push(convert_json(item, element, lenient, path)?);
                path.truncate(mark);
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(element) => {
            let entries: BTreeMap<String, &RawValue> = parse_raw(raw, path, "an object")?;
            let mut out = BTreeMap::new();
            for (key, item) in entries {
                let mark = path.len();
                let _ = write!(path, "[{key:?}]");
                let value = convert_json(item, element, lenient, path)?;
                path.truncate(mark);
                out.insert(key, value);
            }
            Ok(Value::Map(out))
        }
        Type::Object(attributes) => {
            let entries: BTreeMap<String, &RawValue> = parse_raw(raw, path, "an object")?;
            let mut out = BTreeMap::new();
            for (key, item) in entries {
                let Some(attribute_type) = attributes.get(&key) else {
                    if lenient {
                        continue;
                    }
                    return Err(error(path, format!("unsupported attribute {key:?}")));
                };
                let mark = path.len();
                let _ = write!(path, ".{key}");
                let value = convert_json(item, attribute_type, lenient, path)?;
                path.truncate(mark);
                out.insert(key, value);
            }
            for name in attributes.keys() {
                out.entry(name.clone()).or_insert(Value::Null);
            }
            Ok(Value::Object(out))
        }
        Type::Dynamic => {
            #[derive(serde::Deserialize)]
            struct Typed<'a> {
                #[serde(borrow)]
                value: &'a RawValue,
                #[serde(borrow, rename = "type")]
                ty: &'a RawValue,
            }
            let typed: Typed = parse_raw(raw, path, "a {\"value\", \"type\"} object")?;
            let actual =
                Type::from_json_bytes(typed.ty.get().as_bytes()).map_err(|e| error(path, e))?;
            convert_json(typed.value, &actual, lenient, path)
        }
    }
}

/// Writes a known value as JSON against its type. Unknown values have no JSON form.
pub fn to_json(value: &Value, ty: &Type) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(64);
    write_json(&mut out, value, ty, &mut String::new())?;
    Ok(out)
}

fn write_json(
    out: &mut String,
    value: &Value,
    ty: &Type,
    path: &mut String,
) -> Result<(), DecodeError> {
    let quoted = |text: &str| serde_json::to_string(text).expect("strings serialize");
    match value {
        Value::Unknown(_) => return Err(error(path, "unknown values cannot be written as JSON")),
        Value::Null => out.push_str("null"),
        _ if *ty == Type::Dynamic => {
            let actual = infer_type(value);
            out.push_str("{\"value\":");
            write_json(out, value, &actual, path)?;
            let _ = write!(out, ",\"type\":{}}}", actual.to_json());
        }
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => match number {
            Number::Float(f) if !f.is_finite() => {
                return Err(error(path, "infinite numbers have no JSON form"))
            }
            Number::Float(f) => {
                let text = serde_json::to_string(f).expect("finite floats serialize");
                out.push_str(&text);
            }
            other => {
                let _ = write!(out, "{other}");
            }
        },
        Value::String(text) => out.push_str(&quoted(text)),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let element = match ty {
                    Type::List(e) | Type::Set(e) => e.as_ref(),
                    Type::Tuple(types) => types.get(index).unwrap_or(&Type::Dynamic),
                    _ => &Type::Dynamic,
                };
                let mark = path.len();
                let _ = write!(path, "[{index}]");
                write_json(out, item, element, path)?;
                path.truncate(mark);
            }
            out.push(']');
        }
        Value::Map(fields) | Value::Object(fields) => {
            out.push('{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let element = match ty {
                    Type::Map(e) => e.as_ref(),
                    Type::Object(attributes) => attributes.get(key).unwrap_or(&Type::Dynamic),
                    _ => &Type::Dynamic,
                };
                out.push_str(&quoted(key));
                out.push(':');
                let mark = path.len();
                let _ = write!(path, ".{key}");
                write_json(out, item, element, path)?;
                path.truncate(mark);
            }
            out.push('}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_type() -> impl Strategy<Value = Type> {
        let leaf = prop_oneof![Just(Type::String), Just(Type::Number), Just(Type::Bool)];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(Type::list),
                inner.clone().prop_map(Type::set),
                inner.clone().prop_map(Type::map),
                prop::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4)
                    .prop_map(Type::Object),
                prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
            ]
        })
    }

    fn arb_number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::Int),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Number::Uint),
            (any::<i32>(), 1..1000u32)
                .prop_map(|(whole, part)| Number::Float(whole as f64 + 1.0 / (part as f64 + 1.0))),
            "[1-9][0-9]{25,40}".prop_map(Number::Big),
        ]
    }

    /// A value of the given type; `unknowns` allows unknown values (msgpack only).
    fn arb_value(ty: Type, unknowns: bool) -> BoxedStrategy<Value> {
        let known: BoxedStrategy<Value> = match ty {
            Type::String => ".{0,12}".prop_map(Value::String).boxed(),
            Type::Number => arb_number().prop_map(Value::Number).boxed(),
            Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Type::Dynamic => Just(Value::Null).boxed(),
            Type::List(element) => prop::collection::vec(arb_value(*element, unknowns), 0..4)
                .prop_map(Value::List)
                .boxed(),
            Type::Set(element) => prop::collection::vec(arb_value(*element, unknowns), 0..4)
                .prop_map(Value::Set)
                .boxed(),
            Type::Map(element) => {
                prop::collection::btree_map(".{0,6}", arb_value(*element, unknowns), 0..4)
                    .prop_map(Value::Map)
                    .boxed()
            }
            Type::Object(attributes) => {
                let fields: Vec<_> = attributes
                    .into_iter()
                    .map(|(name, ty)| arb_value(ty, unknowns).prop_map(move |v| (name.clone(), v)))
                    .collect();
                fields
                    .prop_map(|fields| Value::Object(fields.into_iter().collect()))
                    .boxed()
            }
            Type::Tuple(types) => {
                let items: Vec<_> = types
                    .into_iter()
                    .map(|ty| arb_value(ty, unknowns))
                    .collect();
                items.prop_map(Value::Tuple).boxed()
            }
        };
        if unknowns {
            prop_oneof![
                6 => known,
                1 => Just(Value::Null),
                1 => Just(Value::unknown()),
                1 => prop::collection::vec(any::<u8>(), 1..8).prop_map(|p| Value::Unknown(Refinements(Some(p)))),
            ]
            .boxed()
        } else {
            prop_oneof![8 => known, 1 => Just(Value::Null)].boxed()
        }
    }

    fn typed_value(unknowns: bool) -> impl Strategy<Value = (Type, Value)> {
        arb_type().prop_flat_map(move |ty| (Just(ty.clone()), arb_value(ty, unknowns)))
    }

    proptest! {
        #[test]
        fn msgpack_round_trips((ty, value) in typed_value(true)) {
            let bytes = to_msgpack(&value, &ty);
            prop_assert_eq!(from_msgpack(&bytes, &ty).unwrap(), value);
        }

        #[test]
        fn json_round_trips((ty, value) in typed_value(false)) {
            let text = to_json(&value, &ty).unwrap();
            prop_assert_eq!(from_json(text.as_bytes(), &ty, false).unwrap(), value);
        }

        #[test]
        fn dynamic_values_carry_their_type((ty, value) in typed_value(false)) {
            let bytes = to_msgpack(&value, &Type::Dynamic);
            let decoded = from_msgpack(&bytes, &Type::Dynamic).unwrap();
            // Null and empty collections lose nothing; otherwise the value comes back whole.
            prop_assert_eq!(to_msgpack(&decoded, &Type::Dynamic), bytes);
            let _ = ty;
        }
    }

    #[test]
    fn unknown_is_written_as_cty_writes_it() {
        assert_eq!(
            to_msgpack(&Value::unknown(), &Type::String),
            vec![0xd4, 0, 0]
        );
    }

    #[test]
    fn refinements_pass_through_intact() {
        // A refined unknown string as Terraform sends it: ext 12 with a msgpack map payload.
        let payload = vec![0x81, 0x01, 0xc2];
        let mut bytes = Vec::new();
        rmp::encode::write_ext_meta(&mut bytes, payload.len() as u32, 12).unwrap();
        bytes.extend_from_slice(&payload);
        let value = from_msgpack(&bytes, &Type::String).unwrap();
        assert_eq!(value, Value::Unknown(Refinements(Some(payload))));
        assert_eq!(to_msgpack(&value, &Type::String), bytes);
    }

    #[test]
    fn large_numbers_stay_exact_through_json() {
        let text = br#"{"n": 123456789012345678901234567890.5}"#;
        let ty = Type::object([("n", Type::Number)]);
        let value = from_json(text, &ty, false).unwrap();
        assert_eq!(
            value.get("n"),
            &Value::Number(Number::Big("123456789012345678901234567890.5".into()))
        );
        assert_eq!(
            to_json(&value, &ty).unwrap(),
            r#"{"n":123456789012345678901234567890.5}"#
        );
    }

    #[test]
    fn nan_is_refused_and_infinity_kept() {
        let mut nan = Vec::new();
        rmp::encode::write_f64(&mut nan, f64::NAN).unwrap();
        assert!(from_msgpack(&nan, &Type::Number).is_err());
        let mut infinity = Vec::new();
        rmp::encode::write_f64(&mut infinity, f64::INFINITY).unwrap();
        assert!(from_msgpack(&infinity, &Type::Number).is_ok());
    }

    #[test]
    fn errors_name_the_path() {
        let ty = Type::object([("tags", Type::map(Type::Number))]);
        let err = from_json(br#"{"tags": {"env": "prod"}}"#, &ty, false).unwrap_err();
        assert_eq!(err.path, r#".tags["env"]"#);
        let err = from_json(br#"{"other": 1}"#, &ty, false).unwrap_err();
        assert!(err.message.contains("unsupported attribute"), "{err}");
        assert!(
            from_json(br#"{"other": 1}"#, &ty, true).is_ok(),
            "lenient drops unknown attributes"
        );
    }

    #[test]
    fn absent_object_attributes_decode_as_null() {
        let ty = Type::object([("a", Type::String), ("b", Type::Bool)]);
        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 1).unwrap();
        rmp::encode::write_str(&mut bytes, "a").unwrap();
        rmp::encode::write_str(&mut bytes, "x").unwrap();
        let value = from_msgpack(&bytes, &ty).unwrap();
        assert!(value.get("b").is_null());
        assert_eq!(value.get("a").as_str(), Some("x"));
    }
}
