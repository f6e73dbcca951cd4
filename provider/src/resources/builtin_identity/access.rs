//! A subscription the principal may not read or write now (access narrowed, the subscription
//! moved to another tenant, disabled): what a refresh keeps, and what an apply or destroy
//! that must write there says.
//!
//! A refresh refused (401, 403, a read-only subscription's 409) keeps the identity exactly
//! as recorded and warns, naming the subscription, the resource, the cause and the fix, so
//! one narrowed subscription does not fail the plan of a whole estate; `mig_subscriptions`
//! and `mig_estate_assignment` keep the same subscription the same way. A 404 is not a
//! refusal: the resource is gone. Private state remembers the refusal
//! ([`super::model::Ownership::unreadable`]) so the plan adds nothing for it (a missing lock
//! is held, not planned). A write refused fails, naming the subscription, and the state keeps
//! what exists: nothing it could not confirm gone is forgotten, no write it could not do is
//! recorded.

use super::model::Target;
use crate::azure::arm::ArmError;

/// Whether ARM refused because of who asks or the subscription's state, not because the
/// resource is gone or a passing failure: 401 (the subscription moved to another tenant),
/// 403 (no role there, a deny assignment), or 409 from a disabled, read-only subscription.
pub(super) fn refused(error: &ArmError) -> bool {
    let code = error.code.to_ascii_lowercase();
    matches!(error.status, 401 | 403)
        || (error.status == 409 && (code.contains("disabled") || code.contains("readonly")))
}

/// What a refresh does with one read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Read<T> {
    /// Found: refreshed from what Azure has.
    Found(T),
    /// ARM answered 404: gone, Terraform plans to create it again.
    Gone,
    /// Refused: kept as recorded, for this cause (ARM's answer), with this warning.
    Kept {
        cause: String,
        summary: String,
        warning: String,
    },
    /// Any other failure (after retries): the refresh fails.
    Failed(String),
}

/// Decides [`Read`] for the read of `what` (`the identity`, `the lock`) of `target`.
pub(super) fn decide<T>(
    target: &Target,
    what: &str,
    result: Result<Option<T>, ArmError>,
) -> Read<T> {
    match result {
        Ok(Some(found)) => Read::Found(found),
        Ok(None) => Read::Gone,
        Err(error) if refused(&error) => Read::Kept {
            cause: error.to_string(),
            summary: kept_summary(target, what),
            warning: kept_warning(target, what, &error),
        },
        Err(error) => Read::Failed(error.to_string()),
    }
}

/// The summary of [`Read::Kept`]'s warning: the subscription when the identity itself could
/// not be read, `what` was refused when only that was (a role that may read identities but
/// not locks).
fn kept_summary(target: &Target, what: &str) -> String {
    let subscription = target.identity.subscription_id();
    if what == IDENTITY {
        format!("Subscription {subscription} cannot be read: kept as recorded")
    } else {
        format!("Reading {what} in subscription {subscription} was refused: kept as recorded")
    }
}

/// What [`decide`] is told it reads when it reads the identity itself.
pub(super) const IDENTITY: &str = "the identity";

const FORGET: &str = "to stop managing it here, remove it from the configuration with a `removed` block (`lifecycle { destroy = false }`), or `terraform state rm` for one instance of a `for_each`: Terraform forgets it and leaves it in Azure";

fn kept_warning(target: &Target, what: &str, error: &ArmError) -> String {
    let subscription = target.identity.subscription_id();
    format!(
        "Reading {what} {identity} in subscription {subscription} was refused: {error}\n\nThe principal Terraform runs as may not read subscription {subscription} now (access narrowed, the subscription moved to another tenant or disabled). The state keeps the identity as last recorded, plans show no change for it while its configuration is unchanged, and the rest of the configuration plans and applies; an apply or destroy that must change it fails until access is back. To read it again, grant the principal Reader on subscription {subscription} (Owner to change it); {FORGET}.",
        identity = target.identity,
    )
}

/// The detail of an apply's or destroy's error: ARM's answer, and when it is a refusal, the
/// subscription that refused, what the state keeps and the fix.
pub(super) fn explain(target: &Target, error: &ArmError) -> String {
    if !refused(error) {
        return error.to_string();
    }
    let subscription = target.identity.subscription_id();
    format!(
        "{error}\n\nSubscription {subscription} refused it: the principal Terraform runs as may not change {identity} there now (access narrowed, the subscription moved to another tenant or disabled). The state keeps what exists. Grant the principal Owner on subscription {subscription} (or Contributor and User Access Administrator) and apply again; or, {FORGET}.",
        identity = target.identity,
    )
}

/// The summary of [`change_warning`].
pub(super) fn change_summary(target: &Target) -> String {
    format!(
        "Subscription {} cannot be read: this change will fail",
        target.identity.subscription_id()
    )
}

/// While the last refresh was refused (`unreadable`: why), a lock that is `wanted` and
/// missing is held (no change) with this warning: nothing is added for the identity.
pub(super) fn held_lock(target: &Target, wanted: bool, unreadable: Option<&str>) -> Option<String> {
    let cause = unreadable.filter(|_| wanted)?;
    Some(format!(
        "{} has no lock `{}` recorded, and subscription {} could not be read ({cause}): placing the lock waits until it can be read again. Nothing is planned for it.",
        target.identity,
        target.lock_name(),
        target.identity.subscription_id(),
    ))
}

/// The warning of a plan that `changed` an identity whose last refresh was refused
/// (`unreadable`: why): its apply will fail.
pub(super) fn change_warning(
    target: &Target,
    changed: bool,
    unreadable: Option<&str>,
) -> Option<String> {
    let cause = unreadable.filter(|_| changed)?;
    let subscription = target.identity.subscription_id();
    Some(format!(
        "The last refresh could not read {identity} in subscription {subscription} ({cause}), and this plan changes it: the apply will fail for it unless the principal may write there again. Grant the principal Owner on subscription {subscription}, or revert the change; {FORGET}.",
        identity = target.identity,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ids::UserAssignedIdentityId;

    const SUB: &str = "c0000000-0000-4000-8000-00000000000c";

    fn target() -> Target {
        Target {
            identity: UserAssignedIdentityId::parse(&format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus")).unwrap(),
            existing: false,
            subscription: SUB.into(),
            location: "eastus".into(),
            resource_group_location: "eastus".into(),
            lock: true,
            tags: Default::default(),
        }
    }

    fn error(status: u16, code: &str) -> ArmError {
        ArmError {
            status,
            code: code.into(),
            message: "no".into(),
            request_id: None,
            after_unanswered_attempt: false,
        }
    }

    #[test]
    fn a_refusal_keeps_what_was_recorded_and_names_the_subscription_and_the_fix() {
        for refusal in [
            error(403, "AuthorizationFailed"),
            error(401, "InvalidAuthenticationTokenTenant"),
            error(409, "ReadOnlyDisabledSubscription"),
        ] {
            let Read::<()>::Kept {
                cause,
                summary,
                warning,
            } = decide(&target(), IDENTITY, Err(refusal.clone()))
            else {
                panic!("{refusal:?} keeps it");
            };
            assert_eq!(cause, refusal.to_string());
            for word in [
                SUB,
                "Built-In-Identity-eastus",
                &refusal.code,
                "Reader",
                "`removed`",
            ] {
                assert!(warning.contains(word), "{word}: {warning}");
            }
            assert_eq!(
                summary,
                format!("Subscription {SUB} cannot be read: kept as recorded")
            );
        }
    }

    #[test]
    fn a_lock_read_refused_alone_is_named_as_the_lock() {
        let Read::<()>::Kept { summary, .. } = decide(
            &target(),
            "the lock of the identity",
            Err(error(403, "AuthorizationFailed")),
        ) else {
            panic!("a refused lock read keeps the state");
        };
        assert!(
            summary.starts_with("Reading the lock of the identity in subscription")
                && summary.contains(SUB),
            "{summary}"
        );
    }

    #[test]
    fn a_404_is_gone_and_other_failures_fail() {
        assert_eq!(decide::<()>(&target(), IDENTITY, Ok(None)), Read::Gone);
        assert_eq!(decide(&target(), IDENTITY, Ok(Some(1))), Read::Found(1));
        // A passing failure, a bad request, or a conflict that is not the subscription's
        // state (a lock in the way) is no refusal.
        for other in [
            error(500, "InternalServerError"),
            error(0, "ConnectionFailed"),
            error(400, "InvalidRequest"),
            error(409, "ScopeLocked"),
            error(429, "TooManyRequests"),
        ] {
            assert!(!refused(&other), "{other:?}");
            assert!(
                matches!(decide::<()>(&target(), "the identity", Err(other.clone())), Read::Failed(ref e) if e.contains(&other.code)),
                "{other:?}"
            );
            assert_eq!(explain(&target(), &other), other.to_string());
        }
    }

    #[test]
    fn a_refused_write_names_the_subscription_and_the_fix() {
        let detail = explain(&target(), &error(403, "AuthorizationFailed"));
        for word in [
            SUB,
            "AuthorizationFailed",
            "Owner",
            "`removed`",
            "state keeps",
        ] {
            assert!(detail.contains(word), "{word}: {detail}");
        }
        assert!(change_summary(&target()).contains(SUB));
    }

    #[test]
    fn while_unreadable_a_plan_adds_nothing_and_warns_of_a_change() {
        let cause = Some("AuthorizationFailed: no (HTTP 403)");
        // A wanted, missing lock is held while the subscription cannot be read.
        let held = held_lock(&target(), true, cause).expect("held");
        assert!(
            held.contains(SUB) && held.contains("AuthorizationFailed"),
            "{held}"
        );
        assert_eq!(held_lock(&target(), false, cause), None, "not wanted");
        assert_eq!(
            held_lock(&target(), true, None),
            None,
            "readable: the plan decides"
        );
        // A change is planned as configured, with a warning that its apply will fail.
        let warning = change_warning(&target(), true, cause).expect("warned");
        for word in [SUB, "AuthorizationFailed", "Owner", "`removed`"] {
            assert!(warning.contains(word), "{word}: {warning}");
        }
        assert_eq!(change_warning(&target(), false, cause), None, "no change");
        assert_eq!(change_warning(&target(), true, None), None, "readable");
    }
}
