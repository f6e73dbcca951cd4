//! Resource identity (Terraform 1.12+), kept for an object's whole life.
//!
//! Terraform refuses an identity that changes on update or refresh, while the attributes an
//! identity is derived from may well change in place. So a new object (create, import,
//! replacement) gets the identity its state gives ([`Resource::identity_of`]); from then on
//! the one Terraform holds is kept, on every plan, apply and read. State written before the
//! resource had identities gets one derived from it at the next read. The server does this
//! for every resource that declares an identity schema: resources only say how an identity
//! is read from a state.
//!
//! [`Resource::identity_of`]: crate::Resource::identity_of

use crate::value::Value;

/// `value` when every part of it is known (an identity is never planned unknown).
pub fn known(value: Value) -> Option<Value> {
    (!value.is_null() && value.is_fully_known()).then_some(value)
}

/// What a plan, apply or read needs to keep an object's identity, taken from the request
/// before the resource consumes it.
pub(crate) struct Kept {
    /// The identity Terraform holds for the object (`prior_identity`, `planned_identity` or
    /// `current_identity`).
    held: Option<Value>,
    /// The identity derived from the prior state (`None` on create).
    derived: Option<Value>,
    /// No prior object: a create (or the create half of a replacement).
    creating: bool,
}

impl Kept {
    pub fn new(
        held: Option<&Value>,
        prior_state: &Value,
        of: &dyn Fn(&Value) -> Option<Value>,
    ) -> Kept {
        Kept {
            held: held.filter(|v| !v.is_null()).cloned(),
            derived: if prior_state.is_null() {
                None
            } else {
                of(prior_state)
            },
            creating: prior_state.is_null(),
        }
    }

    /// The identity a plan reports: the prior one for an object that is kept, the new
    /// object's own (when known) on create or replacement, none on destroy.
    pub fn planned(
        self,
        planned_state: &Value,
        replacing: bool,
        of: &dyn Fn(&Value) -> Option<Value>,
    ) -> Option<Value> {
        if planned_state.is_null() {
            return None;
        }
        if self.creating || replacing {
            return of(planned_state);
        }
        self.held.or(self.derived)
    }

    /// The identity after apply or read: the one held (the prior one on update), else the
    /// object's own; none once the object is gone.
    pub fn after(self, new_state: &Value, of: &dyn Fn(&Value) -> Option<Value>) -> Option<Value> {
        if new_state.is_null() {
            return None;
        }
        self.held.or(self.derived).or_else(|| of(new_state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(state: &Value) -> Option<Value> {
        state
            .get("name")
            .as_str()
            .map(|name| Value::object([("name", Value::string(name))]))
    }

    fn state(name: &str) -> Value {
        Value::object([("name", Value::string(name))])
    }

    #[test]
    fn an_object_keeps_its_identity_through_in_place_changes() {
        let first = of(&state("a"));
        let kept = |held: Option<&Value>, prior: &Value| Kept::new(held, prior, &of);
        // Created: its own.
        assert_eq!(
            kept(None, &Value::Null).planned(&state("a"), false, &of),
            first
        );
        assert_eq!(kept(None, &Value::Null).after(&state("a"), &of), first);
        // Changed in place: the prior identity, whatever the state now says.
        let prior = state("a");
        assert_eq!(
            kept(first.as_ref(), &prior).planned(&state("b"), false, &of),
            first
        );
        assert_eq!(kept(first.as_ref(), &prior).after(&state("b"), &of), first);
        assert_eq!(kept(None, &prior).after(&state("b"), &of), first);
        // Replaced: the new object's own.
        assert_eq!(
            kept(first.as_ref(), &prior).planned(&state("b"), true, &of),
            of(&state("b"))
        );
        // Gone: none.
        assert_eq!(kept(first.as_ref(), &prior).after(&Value::Null, &of), None);
        assert_eq!(
            kept(first.as_ref(), &prior).planned(&Value::Null, false, &of),
            None
        );
    }

    #[test]
    fn unknown_identities_are_not_reported() {
        assert_eq!(known(Value::object([("name", Value::unknown())])), None);
        assert_eq!(known(Value::Null), None);
    }
}
