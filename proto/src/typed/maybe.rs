//! [`Maybe`]: an attribute of a typed model that may be null, unknown (known after apply) or
//! known, as terraform-plugin-framework's `types.String` is.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// The newtype name [`crate::model`]'s decoder recognises: an unknown value read into a
/// `Maybe` is [`Maybe::Unknown`], not an error.
pub(crate) const TOKEN: &str = "$tfplugin::Maybe";

/// How [`Maybe::Unknown`] travels through the JSON [`crate::model::encode`] goes through;
/// the encoder turns it back into an unknown value whatever the attribute's type.
pub(crate) const UNKNOWN: &str = "\u{0}tfplugin:unknown\u{0}";

/// An attribute's value in a typed model: null, unknown or known.
///
/// Decoding never fails on an unknown value read into a `Maybe` (it does for a plain
/// field or an `Option`); encoding [`Maybe::Unknown`] gives an unknown value. Use it for
/// every attribute a plan can hold unknown: arguments (configuration can interpolate
/// values known after apply) and computed attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Maybe<T> {
    #[default]
    Null,
    Unknown,
    Known(T),
}

impl<T> Maybe<T> {
    /// The known value; `None` when null or unknown.
    pub fn known(&self) -> Option<&T> {
        match self {
            Maybe::Known(value) => Some(value),
            _ => None,
        }
    }

    /// The known value, owned; `None` when null or unknown.
    pub fn into_known(self) -> Option<T> {
        match self {
            Maybe::Known(value) => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Maybe::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Maybe::Unknown)
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Maybe::Known(_))
    }

    pub fn as_ref(&self) -> Maybe<&T> {
        match self {
            Maybe::Null => Maybe::Null,
            Maybe::Unknown => Maybe::Unknown,
            Maybe::Known(value) => Maybe::Known(value),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Maybe<U> {
        match self {
            Maybe::Null => Maybe::Null,
            Maybe::Unknown => Maybe::Unknown,
            Maybe::Known(value) => Maybe::Known(f(value)),
        }
    }

    /// `self` unless it is null, then `other` (a default that applies only to null).
    pub fn or_if_null(self, other: Maybe<T>) -> Maybe<T> {
        match self {
            Maybe::Null => other,
            kept => kept,
        }
    }
}

impl Maybe<String> {
    /// The known text; `None` when null or unknown.
    pub fn as_str(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

impl<T> From<Option<T>> for Maybe<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Maybe::Null, Maybe::Known)
    }
}

impl<T: Serialize> Serialize for Maybe<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Maybe::Null => serializer.serialize_none(),
            Maybe::Unknown => serializer.serialize_str(UNKNOWN),
            Maybe::Known(value) => serializer.serialize_some(value),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaybeVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MaybeVisitor<T> {
            type Value = Maybe<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, null or unknown")
            }

            // Only `crate::model`'s decoder visits a unit for a `Maybe`: the value is unknown.
            fn visit_unit<E: de::Error>(self) -> Result<Maybe<T>, E> {
                Ok(Maybe::Unknown)
            }

            fn visit_none<E: de::Error>(self) -> Result<Maybe<T>, E> {
                Ok(Maybe::Null)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Maybe<T>, D::Error> {
                T::deserialize(d).map(Maybe::Known)
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Maybe<T>, D::Error> {
                Option::<T>::deserialize(d).map(Maybe::from)
            }
        }
        deserializer.deserialize_newtype_struct(TOKEN, MaybeVisitor(PhantomData))
    }
}
