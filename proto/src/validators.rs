//! Validators declared on attributes (`Attribute::validator`). The server runs them at
//! ValidateResourceConfig, ValidateDataResourceConfig, ValidateActionConfig and PlanAction,
//! on known, non-null values only, and turns a failure into an error diagnostic at the
//! attribute's path. On a list, set or map of primitives a validator sees each element.

use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// The check itself: `Err(detail)` when the value is not acceptable.
pub type Check = dyn Fn(&Value) -> Result<(), String> + Send + Sync;

/// A named check: `summary` becomes the diagnostic's summary, the check's error its detail.
#[derive(Clone)]
pub struct Validator {
    summary: String,
    check: Arc<Check>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Validator {
    pub fn new(
        summary: impl Into<String>,
        check: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Validator {
        Validator {
            summary: summary.into(),
            check: Arc::new(check),
        }
    }

    /// A check of string values; values of other kinds pass.
    pub fn string(
        summary: impl Into<String>,
        check: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Validator {
        Validator::new(summary, move |value| match value.as_str() {
            Some(text) => check(text),
            None => Ok(()),
        })
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Runs the check.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        (self.check)(value)
    }

    /// Both checks, this one first; the summary is the failing one's.
    pub fn and(self, other: Validator) -> Validator {
        let summary = self.summary.clone();
        Validator::new(summary, move |value| {
            self.check(value)?;
            other.check(value).map_err(|detail| {
                // Keep the second validator's summary visible when it is the one failing.
                if other.summary == self.summary {
                    detail
                } else {
                    format!("{}: {detail}", other.summary)
                }
            })
        })
    }

    /// A string that is exactly one of `allowed`.
    pub fn one_of(summary: impl Into<String>, allowed: &[&str]) -> Validator {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        Validator::string(summary, move |text| {
            if allowed.iter().any(|a| a == text) {
                Ok(())
            } else {
                Err(format!(
                    "`{text}` is not allowed; use {}.",
                    or_list(&allowed)
                ))
            }
        })
    }

    /// A string that is one of `allowed`, in any case.
    pub fn one_of_ignoring_case(summary: impl Into<String>, allowed: &[&str]) -> Validator {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        Validator::string(summary, move |text| {
            if allowed.iter().any(|a| a.eq_ignore_ascii_case(text)) {
                Ok(())
            } else {
                Err(format!(
                    "`{text}` is not allowed; use {}.",
                    or_list(&allowed)
                ))
            }
        })
    }

    /// A whole number of at least `min`.
    pub fn whole_number_at_least(summary: impl Into<String>, min: i64) -> Validator {
        Validator::new(summary, move |value| match value.as_number() {
            None => Ok(()),
            Some(n) => match n.as_i64() {
                None => Err("must be a whole number.".into()),
                Some(n) if n < min => Err(format!("must be {min} or more.")),
                Some(_) => Ok(()),
            },
        })
    }
}

fn or_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_accept_and_reject() {
        let mode = Validator::one_of("Invalid mode", &["delete", "report"]);
        assert!(mode.check(&Value::from("delete")).is_ok());
        assert_eq!(
            mode.check(&Value::from("purge")).unwrap_err(),
            "`purge` is not allowed; use `delete` or `report`."
        );
        let kinds = Validator::one_of_ignoring_case("Unknown", &["User", "Group"]);
        assert!(kinds.check(&Value::from("user")).is_ok());
        let limit = Validator::whole_number_at_least("Invalid limit", 0);
        assert!(limit.check(&Value::int(0)).is_ok());
        assert!(limit.check(&Value::int(-1)).is_err());
        assert!(limit
            .check(&Value::Number(crate::value::Number::Float(1.5)))
            .is_err());
    }

    #[test]
    fn validators_compose() {
        let short = Validator::string("Too long", |s| {
            if s.len() <= 3 {
                Ok(())
            } else {
                Err("at most 3".into())
            }
        });
        let both = Validator::one_of_ignoring_case("Unknown", &["abc", "abcd"]).and(short);
        assert!(both.check(&Value::from("ABC")).is_ok());
        assert_eq!(
            both.check(&Value::from("abcd")).unwrap_err(),
            "Too long: at most 3"
        );
        assert!(both.check(&Value::from("x")).is_err());
    }
}
