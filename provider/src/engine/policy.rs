//! The built-in policy's decision for one VM or scale set, as pure functions.
//!
//! Source: ../shared/reference/policy-semantics.md (the existence condition of policy
//! definitions d367bd60-64ca-4364-98ea-276775bddd94 and 516187d4-ef64-4a1b-ad6b-a7348502976c).
//! Nothing here talks to Azure or Terraform, so every rule is unit tested on its own.

use std::collections::{BTreeMap, BTreeSet};

/// `identity.type` of a VM or scale set, as ARM spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityType {
    None,
    SystemAssigned,
    UserAssigned,
    SystemAssignedUserAssigned,
}

impl IdentityType {
    /// Parses ARM's spelling, tolerant of case and spacing (`SystemAssigned,UserAssigned`).
    pub fn parse(raw: Option<&str>) -> IdentityType {
        let Some(raw) = raw else {
            return IdentityType::None;
        };
        let parts: BTreeSet<String> = raw
            .split(',')
            .map(|part| part.trim().to_ascii_lowercase())
            .filter(|part| !part.is_empty())
            .collect();
        match (
            parts.contains("systemassigned"),
            parts.contains("userassigned"),
        ) {
            (true, true) => IdentityType::SystemAssignedUserAssigned,
            (true, false) => IdentityType::SystemAssigned,
            (false, true) => IdentityType::UserAssigned,
            (false, false) => IdentityType::None,
        }
    }

    pub fn as_arm(self) -> &'static str {
        match self {
            IdentityType::None => "None",
            IdentityType::SystemAssigned => "SystemAssigned",
            IdentityType::UserAssigned => "UserAssigned",
            IdentityType::SystemAssignedUserAssigned => "SystemAssigned, UserAssigned",
        }
    }

    pub fn has_system_assigned(self) -> bool {
        matches!(
            self,
            IdentityType::SystemAssigned | IdentityType::SystemAssignedUserAssigned
        )
    }

    pub fn has_user_assigned(self) -> bool {
        matches!(
            self,
            IdentityType::UserAssigned | IdentityType::SystemAssignedUserAssigned
        )
    }
}

/// The identity block of a VM or scale set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityBlock {
    pub kind: IdentityType,
    /// Keys of `userAssignedIdentities`, as Azure returned them.
    pub user_assigned_ids: Vec<String>,
}

impl IdentityBlock {
    pub fn holds(&self, identity_id: &str) -> bool {
        self.user_assigned_ids
            .iter()
            .any(|id| id.eq_ignore_ascii_case(identity_id))
    }
}

/// What the policy does to one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It already holds the target identity.
    Compliant,
    /// It is left alone, for this reason.
    Skip(SkipReason),
    /// It gets the identity; the write is [`assignment_patch`].
    Assign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// `type` is exactly `UserAssigned` with exactly one identity: IMDS picks it by default,
    /// and a second identity would break token requests that name none.
    SingleUserAssigned,
    ExcludedById,
    ExcludedByTag,
    /// Still provisioning, or failed: the policy waits for `AfterProvisioning`; so do we.
    NotProvisioned,
}

impl SkipReason {
    /// The value in the `skipped` map of `mig_identity_assignment`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SingleUserAssigned => "single_user_assigned",
            SkipReason::ExcludedById => "excluded_by_id",
            SkipReason::ExcludedByTag => "excluded_by_tag",
            SkipReason::NotProvisioned => "not_provisioned",
        }
    }
}

/// What the user asked for, beyond the target identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub skip_single_user_assigned: bool,
    /// Lower-cased resource IDs.
    pub exclude_ids: BTreeSet<String>,
    /// Tag key -> value; a VM carrying any one pair is excluded. Keys compare
    /// case-insensitively as ARM tag names do; values exactly.
    pub exclude_tags: BTreeMap<String, String>,
}

/// The parts of a VM the decision reads.
#[derive(Debug, Clone)]
pub struct Machine<'a> {
    pub id: &'a str,
    pub identity: &'a IdentityBlock,
    pub tags: &'a BTreeMap<String, String>,
    pub provisioning_state: Option<&'a str>,
}

/// The policy's existence condition, plus the user's exclusions, for one machine.
pub fn decide(machine: &Machine<'_>, target_identity_id: &str, rules: &Rules) -> Decision {
    if rules.exclude_ids.contains(&machine.id.to_ascii_lowercase()) {
        return Decision::Skip(SkipReason::ExcludedById);
    }
    let excluded_by_tag = machine.tags.iter().any(|(key, value)| {
        rules
            .exclude_tags
            .iter()
            .any(|(exclude_key, exclude_value)| {
                exclude_key.eq_ignore_ascii_case(key) && exclude_value == value
            })
    });
    if excluded_by_tag {
        return Decision::Skip(SkipReason::ExcludedByTag);
    }
    let identity = machine.identity;
    // Condition 1: type contains UserAssigned and the target is already a key.
    if identity.kind.has_user_assigned() && identity.holds(target_identity_id) {
        return Decision::Compliant;
    }
    if !is_provisioned(machine.provisioning_state) {
        return Decision::Skip(SkipReason::NotProvisioned);
    }
    // Condition 2: type is exactly UserAssigned with exactly one identity. The edge case
    // `SystemAssigned, UserAssigned` with one is not skipped: IMDS defaults to the
    // system-assigned identity there, so a second user-assigned one breaks nothing.
    if rules.skip_single_user_assigned
        && identity.kind == IdentityType::UserAssigned
        && identity.user_assigned_ids.len() == 1
    {
        return Decision::Skip(SkipReason::SingleUserAssigned);
    }
    Decision::Assign
}

/// `Succeeded` (and `Updating`, which an already-provisioned VM passes through) count as
/// provisioned; `Creating`, `Failed`, `Deleting` and friends do not.
fn is_provisioned(state: Option<&str>) -> bool {
    match state {
        None => true,
        Some(state) => {
            state.eq_ignore_ascii_case("Succeeded") || state.eq_ignore_ascii_case("Updating")
        }
    }
}

/// The identity block to PATCH onto a machine so it gains `target` and keeps everything it
/// had (PATCH merges `userAssignedIdentities`; only the new key is sent).
pub fn assignment_patch(current: &IdentityBlock, target: &str) -> serde_json::Value {
    let kind = if current.kind.has_system_assigned() {
        IdentityType::SystemAssignedUserAssigned
    } else {
        IdentityType::UserAssigned
    };
    serde_json::json!({
        "type": kind.as_arm(),
        "userAssignedIdentities": { target: {} }
    })
}

/// The identity block to PATCH onto a machine so it loses `target` and nothing else.
/// Returns `None` when the machine no longer holds it.
pub fn removal_patch(current: &IdentityBlock, target: &str) -> Option<serde_json::Value> {
    let held = current
        .user_assigned_ids
        .iter()
        .find(|id| id.eq_ignore_ascii_case(target))?;
    let others_remain = current.user_assigned_ids.len() > 1;
    if others_remain {
        return Some(serde_json::json!({
            "type": current.kind.as_arm(),
            "userAssignedIdentities": { held.as_str(): null }
        }));
    }
    // The last user-assigned identity: ARM wants the type without UserAssigned and no map.
    let kind = if current.kind.has_system_assigned() {
        IdentityType::SystemAssigned
    } else {
        IdentityType::None
    };
    Some(serde_json::json!({ "type": kind.as_arm() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "/subscriptions/s/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus";
    const OTHER: &str = "/subscriptions/s/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id";
    const THIRD: &str = "/subscriptions/s/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/third";

    fn block(kind: &str, ids: &[&str]) -> IdentityBlock {
        IdentityBlock {
            kind: IdentityType::parse(Some(kind)),
            user_assigned_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn decide_for(identity: &IdentityBlock, state: &str, rules: &Rules) -> Decision {
        let tags = BTreeMap::new();
        decide(
            &Machine {
                id: "/subscriptions/s/resourceGroups/app/providers/Microsoft.Compute/virtualMachines/vm1",
                identity,
                tags: &tags,
                provisioning_state: Some(state),
            },
            TARGET,
            rules,
        )
    }

    fn default_rules() -> Rules {
        Rules {
            skip_single_user_assigned: true,
            ..Rules::default()
        }
    }

    #[test]
    fn identity_permutations_follow_the_policy_rule() {
        let rules = default_rules();
        let table: Vec<(&str, IdentityBlock, Decision)> = vec![
            ("no identity", block("None", &[]), Decision::Assign),
            (
                "system assigned",
                block("SystemAssigned", &[]),
                Decision::Assign,
            ),
            (
                "exactly one UAMI, type UserAssigned: the single-UAMI skip",
                block("UserAssigned", &[OTHER]),
                Decision::Skip(SkipReason::SingleUserAssigned),
            ),
            (
                "one UAMI plus SystemAssigned: IMDS defaults to system, so assigned",
                block("SystemAssigned, UserAssigned", &[OTHER]),
                Decision::Assign,
            ),
            (
                "two UAMIs",
                block("UserAssigned", &[OTHER, THIRD]),
                Decision::Assign,
            ),
            (
                "already holds the target",
                block("UserAssigned", &[OTHER, TARGET]),
                Decision::Compliant,
            ),
            (
                "holds only the target (type UserAssigned, one identity) is compliant, not skipped",
                block("UserAssigned", &[TARGET]),
                Decision::Compliant,
            ),
            (
                "target ID in other casing",
                block(
                    "SystemAssigned,UserAssigned",
                    &[&TARGET.to_ascii_uppercase()],
                ),
                Decision::Compliant,
            ),
        ];
        for (name, identity, expected) in table {
            assert_eq!(
                decide_for(&identity, "Succeeded", &rules),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_single_uami_skip_can_be_turned_off() {
        let rules = Rules {
            skip_single_user_assigned: false,
            ..Rules::default()
        };
        assert_eq!(
            decide_for(&block("UserAssigned", &[OTHER]), "Succeeded", &rules),
            Decision::Assign
        );
    }

    #[test]
    fn machines_still_provisioning_or_failed_are_not_forced() {
        let rules = default_rules();
        for state in ["Creating", "Failed", "Deleting"] {
            assert_eq!(
                decide_for(&block("None", &[]), state, &rules),
                Decision::Skip(SkipReason::NotProvisioned),
                "{state}"
            );
        }
        assert_eq!(
            decide_for(&block("None", &[]), "Updating", &rules),
            Decision::Assign
        );
    }

    #[test]
    fn exclusions_by_id_and_tag_win() {
        let identity = block("None", &[]);
        let mut tags = BTreeMap::new();
        tags.insert("Environment".to_string(), "prod".to_string());
        let machine = Machine {
            id: "/subscriptions/s/resourceGroups/app/providers/Microsoft.Compute/virtualMachines/VM1",
            identity: &identity,
            tags: &tags,
            provisioning_state: Some("Succeeded"),
        };
        let by_id = Rules {
            exclude_ids: [machine.id.to_ascii_lowercase()].into_iter().collect(),
            ..default_rules()
        };
        assert_eq!(
            decide(&machine, TARGET, &by_id),
            Decision::Skip(SkipReason::ExcludedById)
        );
        let by_tag = Rules {
            exclude_tags: [("environment".to_string(), "prod".to_string())]
                .into_iter()
                .collect(),
            ..default_rules()
        };
        assert_eq!(
            decide(&machine, TARGET, &by_tag),
            Decision::Skip(SkipReason::ExcludedByTag)
        );
        let other_value = Rules {
            exclude_tags: [("environment".to_string(), "dev".to_string())]
                .into_iter()
                .collect(),
            ..default_rules()
        };
        assert_eq!(decide(&machine, TARGET, &other_value), Decision::Assign);
    }

    #[test]
    fn assignment_keeps_system_assigned_and_sends_only_the_new_key() {
        assert_eq!(
            assignment_patch(&block("SystemAssigned", &[]), TARGET),
            serde_json::json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {TARGET: {}}})
        );
        assert_eq!(
            assignment_patch(&block("UserAssigned", &[OTHER, THIRD]), TARGET),
            serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {TARGET: {}}})
        );
        assert_eq!(
            assignment_patch(&block("None", &[]), TARGET),
            serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {TARGET: {}}})
        );
    }

    #[test]
    fn removal_restores_the_type_and_keeps_other_identities() {
        assert_eq!(
            removal_patch(&block("UserAssigned", &[OTHER, TARGET]), TARGET),
            Some(
                serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {TARGET: null}})
            )
        );
        assert_eq!(
            removal_patch(&block("SystemAssigned, UserAssigned", &[TARGET]), TARGET),
            Some(serde_json::json!({"type": "SystemAssigned"}))
        );
        assert_eq!(
            removal_patch(&block("UserAssigned", &[TARGET]), TARGET),
            Some(serde_json::json!({"type": "None"}))
        );
        assert_eq!(
            removal_patch(&block("UserAssigned", &[OTHER]), TARGET),
            None
        );
    }

    #[test]
    fn identity_type_parsing_is_lenient_about_spelling() {
        assert_eq!(
            IdentityType::parse(Some("systemassigned, userassigned")),
            IdentityType::SystemAssignedUserAssigned
        );
        assert_eq!(
            IdentityType::parse(Some("SystemAssigned,UserAssigned")),
            IdentityType::SystemAssignedUserAssigned
        );
        assert_eq!(IdentityType::parse(None), IdentityType::None);
        assert_eq!(IdentityType::parse(Some("None")), IdentityType::None);
    }
}
