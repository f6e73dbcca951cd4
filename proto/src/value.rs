//! Terraform values: what configuration, plans and state are made of. A provider works with
//! these; the wire encodings (msgpack, JSON) live in `codec`.

use std::collections::BTreeMap;
use std::fmt;

/// A cty number. Terraform's numbers are arbitrary-precision; integers and floats that fit
/// in 64 bits are kept as such, anything else keeps its exact decimal text.
#[derive(Debug, Clone)]
pub enum Number {
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A number that does not fit `i64`/`u64`/`f64` exactly, as decimal text.
    Big(String),
}

impl Number {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::Uint(n) => i64::try_from(*n).ok(),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(n) => *n as f64,
            Number::Uint(n) => *n as f64,
            Number::Float(f) => *f,
            Number::Big(text) => text.parse().unwrap_or(f64::NAN),
        }
    }

    /// Reads decimal text as Terraform writes numbers, keeping it exact when it is large.
    pub fn parse(text: &str) -> Option<Number> {
        if let Ok(n) = text.parse::<i64>() {
            return Some(Number::Int(n));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(Number::Uint(n));
        }
        let float: f64 = text.parse().ok()?;
        if !float.is_finite() {
            return None;
        }
        // Exact only if printing the float gives back the same number. Text kept as is must
        // also be a number as JSON writes it (`.5` and `+1` are not), since it goes back out.
        if format_float(float) == normalize_decimal(text) || !is_json_number(text) {
            Some(Number::Float(float))
        } else {
            Some(Number::Big(text.to_string()))
        }
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let whole_ok = digits(whole) && (whole == "0" || !whole.starts_with('0'));
    let fraction_ok = fraction.is_none_or(digits);
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    whole_ok && fraction_ok && exponent_ok
}

fn format_float(value: f64) -> String {
    normalize_decimal(&format!("{value}"))
}

/// Strips a trailing `.0` and a leading `+` so equal decimals compare equal as text.
fn normalize_decimal(text: &str) -> String {
    let text = text.trim_start_matches('+');
    let text = if text.contains('.') && !text.contains(['e', 'E']) {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    };
    text.to_string()
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_i64(), other.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => match (self, other) {
                (Number::Big(a), Number::Big(b)) => normalize_decimal(a) == normalize_decimal(b),
                (Number::Uint(a), Number::Uint(b)) => a == b,
                _ => self.as_f64() == other.as_f64(),
            },
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(n) => write!(f, "{n}"),
            Number::Uint(n) => write!(f, "{n}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Big(text) => f.write_str(text),
        }
    }
}

/// An unknown value's refinements (what Terraform already knows about it: not null, a
/// string prefix, a range), kept as Terraform sent them so they go back intact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Refinements(pub Option<Vec<u8>>);

/// A Terraform value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    /// Known only after apply.
    Unknown(Refinements),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements in no particular order; Terraform compares sets as sets.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

static NULL: Value = Value::Null;

impl Value {
    /// A wholly unknown value ("known after apply").
    pub fn unknown() -> Value {
        Value::Unknown(Refinements::default())
    }

    pub fn object<K: Into<String>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    pub fn int(n: i64) -> Value {
        Value::Number(Number::Int(n))
    }

    /// A set of strings.
    pub fn string_set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Set(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// A string-valued attribute, or Null when unset.
    pub fn optional_string(text: Option<impl Into<String>>) -> Value {
        text.map_or(Value::Null, |t| Value::String(t.into()))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// No unknown value anywhere inside.
    pub fn is_fully_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter().all(Value::is_fully_known)
            }
            Value::Map(items) | Value::Object(items) => items.values().all(Value::is_fully_known),
            _ => true,
        }
    }

    /// An object attribute or map element; Null when absent or when `self` is not an
    /// object, so lookups chain: `config.get("timeouts").get("create")`.
    pub fn get(&self, name: &str) -> &Value {
        match self {
            Value::Object(fields) | Value::Map(fields) => fields.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(Number::as_i64)
    }

    /// The elements of a list, set or tuple.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The strings of a known list or set of strings (unknown or null elements skipped).
    pub fn as_string_list(&self) -> Option<Vec<String>> {
        self.as_list().map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    }

    /// The string map of a known map of strings.
    pub fn as_string_map(&self) -> Option<BTreeMap<String, String>> {
        self.as_map().map(|items| {
            items
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
    }

    /// A copy of this object with one attribute replaced.
    pub fn with(&self, name: &str, value: Value) -> Value {
        let mut fields = self.as_object().cloned().unwrap_or_default();
        fields.insert(name.to_string(), value);
        Value::Object(fields)
    }

    /// Moves attribute `name` out of an object, leaving null in its place: for a large
    /// attribute that is rebuilt anyway, so that neither it nor the object is copied.
    pub fn take(&mut self, name: &str) -> Value {
        match self {
            Value::Object(fields) => fields.get_mut(name).map(std::mem::take).unwrap_or_default(),
            _ => Value::Null,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(Number::Int(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_chain_through_nulls() {
        let value = Value::object([("timeouts", Value::Null), ("name", Value::from("x"))]);
        assert_eq!(value.get("name").as_str(), Some("x"));
        assert!(value.get("timeouts").get("create").is_null());
        assert!(value.get("missing").is_null());
    }

    #[test]
    fn take_moves_an_attribute_out_and_leaves_null() {
        let mut value = Value::object([("big", Value::from("x")), ("small", Value::from("y"))]);
        assert_eq!(value.take("big"), Value::from("x"));
        assert_eq!(
            value,
            Value::object([("big", Value::Null), ("small", Value::from("y"))])
        );
        assert_eq!(value.take("missing"), Value::Null);
        assert_eq!(Value::from("not an object").take("big"), Value::Null);
    }

    #[test]
    fn unknown_anywhere_is_not_fully_known() {
        let value = Value::object([("ids", Value::Set(vec![Value::from("a"), Value::unknown()]))]);
        assert!(!value.is_fully_known());
        assert!(Value::object([("a", Value::Null)]).is_fully_known());
    }

    #[test]
    fn numbers_keep_large_values_exact() {
        assert_eq!(Number::parse("42"), Some(Number::Int(42)));
        assert_eq!(
            Number::parse("18446744073709551615"),
            Some(Number::Uint(u64::MAX))
        );
        assert!(matches!(Number::parse("1.5"), Some(Number::Float(f)) if f == 1.5));
        let big = "123456789012345678901234567890";
        assert!(matches!(Number::parse(big), Some(Number::Big(ref t)) if t == big));
        assert_eq!(Number::parse("not a number"), None);
        // Text that JSON cannot write back is kept as a float.
        assert!(matches!(Number::parse(".5"), Some(Number::Float(f)) if f == 0.5));
        assert!(matches!(Number::parse("+.5"), Some(Number::Float(f)) if f == 0.5));
        assert!(is_json_number("-0.5e+10") && !is_json_number("01") && !is_json_number("1."));
    }
}
