//! The identity's `CanNotDelete` lock: reading, placing and removing it, and whether a plan
//! places a missing one or holds it ([`lock_plan`]) because ARM would refuse it again.

use super::apply::read_back;
use super::model::{LockDenial, Target};
use super::LOCK_PERMISSION;
use crate::azure::arm::ArmError;
use crate::azure::authorization::{self, Permission};
use crate::azure::ids;
use crate::azure::AzureClients;
use crate::timeouts::{Halt, Step};

/// Whether a failed lock write is a refusal that would happen again (a 4xx: no permission,
/// a deny assignment or policy, a conflicting lock), not a transient failure (a 5xx or a
/// connection error after retries, a throttle, a timeout), which a failing apply retries.
pub(super) fn is_refusal(error: &ArmError) -> bool {
    (400..500).contains(&error.status) && error.status != 408 && error.status != 429
}

/// The principal's permissions at a scope in a form that compares equal exactly when they
/// are the same, whatever the order ARM lists roles and actions in.
pub(super) fn permissions_fingerprint(permissions: &[Permission]) -> String {
    let normalized = |list: &[String]| {
        let mut actions: Vec<String> = list.iter().map(|a| a.to_ascii_lowercase()).collect();
        actions.sort();
        actions.dedup();
        actions.join(",")
    };
    let mut roles: Vec<String> = permissions
        .iter()
        .map(|p| format!("{}!{}", normalized(&p.actions), normalized(&p.not_actions)))
        .collect();
    roles.sort();
    roles.dedup();
    roles.join(";")
}

/// What a plan does about a lock that is wanted and missing.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum LockPlan {
    /// Plan placing it: `lock_id` unknown until apply.
    Place,
    /// No change (`lock_id` stays null), and this warning: placing it would be refused.
    Hold(String),
}

/// Decides [`LockPlan`] from the recorded refusal, if any, and the principal's permissions at
/// the identity now (or why they could not be read). Held: the principal lacks
/// `Microsoft.Authorization/locks/write`; or ARM refused although the principal had it (a deny
/// assignment, a policy) and its permissions are the same as then; or ARM refused and the
/// permissions cannot be read. Placed otherwise: nothing was refused, or the permissions
/// changed since (a role granted), so the next plan after the permission appears places it.
pub(super) fn lock_plan(
    target: &Target,
    denial: Option<&LockDenial>,
    permissions: Result<&[Permission], &str>,
) -> LockPlan {
    let (identity, lock) = (&target.identity, target.lock_name());
    let kept = "Nothing is planned for it and applies succeed without it; the identity is kept.";
    match (permissions, denial) {
        (Ok(permissions), _) if !authorization::allows(permissions, LOCK_PERMISSION) => {
            LockPlan::Hold(format!(
                "{identity} has no lock `{lock}`, and the principal Terraform runs as may not place it: it lacks `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator grant it; Contributor excludes it). {kept} Grant the permission: the next plan places the lock, in place."
            ))
        }
        (Ok(permissions), Some(denial))
            if denial.permissions.as_deref() == Some(&permissions_fingerprint(permissions)) =>
        {
            LockPlan::Hold(format!(
                "{identity} has no lock `{lock}`: ARM refused to place it although the principal has `{LOCK_PERMISSION}` ({reason}); a deny assignment or a policy may forbid it. {kept} The next plan places it once the principal's permissions at the identity change; to ask again sooner, once the cause is gone, apply with `lock = false`, then set `lock` back to `true`.",
                reason = denial.reason
            ))
        }
        (Ok(_), _) | (Err(_), None) => LockPlan::Place,
        (Err(error), Some(denial)) => LockPlan::Hold(format!(
            "{identity} has no lock `{lock}`: ARM refused to place it ({reason}), and the principal's permissions at the identity cannot be read now ({error}). {kept} The next plan that reads them allowing `{LOCK_PERMISSION}`, changed since the refusal, places it.",
            reason = denial.reason
        )),
    }
}

/// Whether our lock is on the identity.
pub(super) async fn lock_exists(clients: &AzureClients, target: &Target) -> Result<bool, ArmError> {
    clients
        .locks
        .get(&target.identity.to_string(), &target.lock_name())
        .await
        .map(|lock| lock.is_some())
}

pub(super) async fn place_lock(clients: &AzureClients, target: &Target) -> Result<(), ArmError> {
    clients
        .locks
        .create_or_update(
            &target.identity.to_string(),
            &target.lock_name(),
            "CanNotDelete",
            ids::BUILTIN_LOCK_NOTES,
        )
        .await
        .map(|_| ())
}

pub(super) async fn remove_lock(clients: &AzureClients, target: &Target) -> Result<(), ArmError> {
    clients
        .locks
        .delete(&target.identity.to_string(), &target.lock_name())
        .await
}

/// Whether the lock is there after a lock write whose outcome is unknown; `None` when that
/// cannot be read either.
pub(super) async fn lock_read_back(clients: &AzureClients, target: &Target) -> Option<bool> {
    read_back(lock_exists(clients, target)).await.ok()
}

/// Places the lock under `halt`: `Ok(true)` when it is there afterwards, `Ok(false)` when it
/// is not (halted before, or read back missing), `Err` when placing it failed.
pub(super) async fn place_lock_halted(
    clients: &AzureClients,
    target: &Target,
    halt: &Halt,
) -> Result<bool, ArmError> {
    match halt.run(place_lock(clients, target)).await {
        Step::Done(result) => result.map(|()| true),
        Step::NotSent => Ok(false),
        Step::Unknown => Ok(lock_read_back(clients, target).await.unwrap_or(false)),
    }
}

/// The principal's permissions at the identity, fingerprinted; `None` when they cannot be read.
pub(super) async fn permissions_now(
    clients: &AzureClients,
    target: &Target,
    halt: &Halt,
) -> Option<String> {
    match halt
        .run(
            clients
                .authorization
                .permissions(&target.identity.to_string()),
        )
        .await
    {
        Step::Done(Ok(permissions)) => Some(permissions_fingerprint(&permissions)),
        _ => None,
    }
}

/// The warning of a create or update that has the identity but not its lock.
pub(super) fn lock_not_placed(target: &Target, error: &str) -> String {
    format!(
        "{identity} exists and is recorded in state, but its lock `{lock}` is missing: {error}\n\nPlacing the lock needs `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator; Contributor excludes it). Grant it to the principal Terraform runs as: the next plan places the lock, in place. Until then plans show no change and warn. The identity, its principal ID and its role assignments are kept.",
        identity = target.identity,
        lock = target.lock_name(),
    )
}
