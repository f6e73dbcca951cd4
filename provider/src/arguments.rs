//! What each kind of argument accepts: one rule per kind of value, declared as a validator
//! on every attribute that takes it (resources, data sources, the action) and called by the
//! functions, so a value is judged the same way wherever it is written.
//!
//! Where Azure is lenient the rule is too, and the value is normalised where it is used
//! (`normalize_*`): any casing of an ARM ID, a trailing `/`, a region's portal spelling.
//! Where Azure would refuse the value, or where it would silently mean something else than
//! the user meant (a role name where an ID belongs, a group where a machine belongs), the
//! rule refuses it at `validate`, naming the fix.

use tfplugin::{AttributePath, Diagnostics, Validator};

use crate::azure::ids::{self, ResourceId, Scope, UserAssignedIdentityId};
use crate::azure::AzureClients;

const COMPUTE: &str = "Microsoft.Compute";
const MACHINE_TYPES: [&str; 2] = ["virtualMachines", "virtualMachineScaleSets"];

/// An ARM ID as compared: without a trailing `/`, lower case.
pub fn normalize_arm_id(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// An ARM ID as written to Azure: the given spelling without a trailing `/`.
pub fn trim_arm_id(id: &str) -> &str {
    id.trim_end_matches('/')
}

fn refuse_query(id: &str) -> Result<(), String> {
    if id.contains(['?', '#']) {
        return Err(format!(
            "`{id}` carries a query string; an ID ends at its name. Remove everything from `?` on."
        ));
    }
    if id.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{id}` contains white space; copy the ID exactly as Azure shows it."
        ));
    }
    Ok(())
}

/// The ID of a virtual machine or scale set.
pub fn check_machine_id(id: &str) -> Result<(), String> {
    refuse_query(id)?;
    let parsed = ResourceId::parse(id).map_err(|reason| format!("{reason}. Expected the ID of a virtual machine or scale set: /subscriptions/{{guid}}/resourceGroups/{{group}}/providers/Microsoft.Compute/virtualMachines/{{name}}."))?;
    let is_machine = parsed.resource_group_name.is_some()
        && parsed
            .provider_namespace
            .as_deref()
            .is_some_and(|ns| ns.eq_ignore_ascii_case(COMPUTE))
        && parsed
            .resource_type
            .as_deref()
            .is_some_and(|t| MACHINE_TYPES.iter().any(|m| m.eq_ignore_ascii_case(t)));
    if is_machine {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not the ID of a virtual machine or scale set (Microsoft.Compute/virtualMachines or Microsoft.Compute/virtualMachineScaleSets); to leave a whole group out, narrow `scope` or tag its machines and use `exclude_tags`."
        ))
    }
}

pub fn machine_id() -> Validator {
    Validator::string("Invalid machine ID", check_machine_id)
}

/// The ID of a user-assigned managed identity.
pub fn check_identity_id(id: &str) -> Result<(), String> {
    refuse_query(id)?;
    UserAssignedIdentityId::parse(trim_arm_id(id)).map(|_| ()).map_err(|reason| {
        format!("{reason}. Expected /subscriptions/{{guid}}/resourceGroups/{{group}}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{{name}}, e.g. `mig_builtin_identity.x.id`.")
    })
}

pub fn identity_id() -> Validator {
    Validator::string("Invalid identity ID", check_identity_id)
}

/// A subscription or resource group ID.
pub fn check_scope(id: &str) -> Result<(), String> {
    refuse_query(id)?;
    Scope::parse(trim_arm_id(id)).map(|_| ()).map_err(|reason| {
        format!("{reason}. Expected a subscription ID (/subscriptions/{{guid}}) or a resource group ID (/subscriptions/{{guid}}/resourceGroups/{{name}}).")
    })
}

pub fn scope() -> Validator {
    Validator::string("Invalid scope", check_scope)
}

/// A role definition: its full ID (at any scope) or its GUID. A role *name* is refused: a
/// name matches nothing, so what the user meant to protect would not be.
pub fn check_role_definition(text: &str) -> Result<(), String> {
    refuse_query(text)?;
    let guid = trim_arm_id(text).rsplit('/').next().unwrap_or_default();
    let is_id = text.contains('/')
        && text
            .to_ascii_lowercase()
            .contains("/providers/microsoft.authorization/roledefinitions/");
    let shape_ok = if text.contains('/') { is_id } else { true };
    if shape_ok && ids::validate_guid("role definition", guid).is_ok() {
        return Ok(());
    }
    Err(format!(
        "`{text}` is not a role definition ID or GUID. Give the role's ID, e.g. `/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c` or just `b24988ac-6180-42a0-ab88-20f7382dd24c` (Contributor); a role's name cannot be matched."
    ))
}

pub fn role_definition() -> Validator {
    Validator::string("Invalid role definition", check_role_definition)
}

/// The GUID of a role definition given by ID or GUID, lower case.
pub fn role_definition_guid(text: &str) -> String {
    trim_arm_id(text)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A region name, in ARM's spelling (`eastus`) or the portal's (`East US`). Whether the
/// subscription has it is checked at plan, against its region list.
pub fn region() -> Validator {
    Validator::string("Invalid region", |text| {
        ids::normalize_location(text).map(|_| ())
    })
}

/// A resource group name, by ARM's rules: 1 to 90 letters, digits, `_`, `-`, `.`, `(` or
/// `)`, not ending in `.`.
pub fn check_resource_group_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')');
    let length = name.chars().count();
    if length == 0 || length > 90 || !name.chars().all(allowed) || name.ends_with('.') {
        return Err(format!(
            "`{name}` is not a resource group name: 1 to 90 letters, digits, `_`, `-`, `.`, `(` or `)`, not ending in `.`."
        ));
    }
    Ok(())
}

pub fn resource_group_name() -> Validator {
    Validator::string("Invalid resource group name", check_resource_group_name)
}

/// A user-assigned identity's name, by ARM's rules: 3 to 128 letters, digits, `-` or `_`,
/// starting with a letter or digit.
pub fn check_identity_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !(3..=128).contains(&length) || !starts_well || !allowed {
        return Err(format!(
            "`{name}` is not a managed identity name: 3 to 128 letters, digits, `-` or `_`, starting with a letter or digit."
        ));
    }
    Ok(())
}

pub fn identity_name() -> Validator {
    Validator::string("Invalid identity name", check_identity_name)
}

/// A tag value: at most 256 characters.
pub fn check_tag_value(value: &str) -> Result<(), String> {
    if value.chars().count() > 256 {
        return Err("a tag value holds at most 256 characters.".to_string());
    }
    Ok(())
}

/// A tag name: 1 to 512 characters, none of `<>%&\?/`.
pub fn check_tag_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if length == 0 || length > 512 || name.contains(['<', '>', '%', '&', '\\', '?', '/']) {
        return Err(format!(
            "`{name}` is not a tag name: 1 to 512 characters, none of `<>%&\\?/`."
        ));
    }
    Ok(())
}

/// A map of tags: each key a tag name, each value a tag value. (Declared validators see map
/// elements, so the keys are checked by the resource's `validate_config` with
/// [`check_tag_name`].)
pub fn tag_value() -> Validator {
    Validator::string("Invalid tag value", check_tag_value)
}

/// A duration such as `30s`, `10m` or `1h30m`; zero is refused where an operation needs time.
pub fn check_duration(text: &str, allow_zero: bool) -> Result<(), String> {
    let duration = humantime::parse_duration(text).map_err(|error| {
        format!("`{text}` is not a duration ({error}). Write it like `30s`, `10m` or `1h30m`.")
    })?;
    if !allow_zero && duration.is_zero() {
        return Err(format!(
            "`{text}` leaves no time at all; give a positive duration like `30s` or `10m`."
        ));
    }
    Ok(())
}

pub fn positive_duration() -> Validator {
    Validator::string("Invalid duration", |text| check_duration(text, false))
}

/// A duration such as `24h`, zero included, where zero has a meaning (e.g. `min_age = "0s"`:
/// no age limit).
pub fn duration() -> Validator {
    Validator::string("Invalid duration", |text| check_duration(text, true))
}

/// Where role assignments are looked for: a subscription, a resource group or a management
/// group ID. A trailing `/` is accepted (and trimmed where used); a query string is not.
pub fn check_role_assignment_scope(id: &str) -> Result<(), String> {
    refuse_query(id)?;
    let trimmed = trim_arm_id(id);
    if let Some(name) = trimmed
        .to_ascii_lowercase()
        .strip_prefix("/providers/microsoft.management/managementgroups/")
    {
        if !name.is_empty() && !name.contains('/') {
            return Ok(());
        }
    }
    Scope::parse(trimmed).map(|_| ()).map_err(|reason| {
        format!("{reason}. Expected a subscription ID (/subscriptions/{{guid}}), a resource group ID (/subscriptions/{{guid}}/resourceGroups/{{name}}) or a management group ID (/providers/Microsoft.Management/managementGroups/{{name}}).")
    })
}

pub fn role_assignment_scope() -> Validator {
    Validator::string("Invalid scope", check_role_assignment_scope)
}

/// A machine resource type, in any casing: `virtualMachines` or `virtualMachineScaleSets`.
pub fn parse_machine_kind(text: &str) -> Option<crate::azure::compute::MachineKind> {
    use crate::azure::compute::MachineKind;
    if text.eq_ignore_ascii_case(MACHINE_TYPES[0]) {
        Some(MachineKind::VirtualMachine)
    } else if text.eq_ignore_ascii_case(MACHINE_TYPES[1]) {
        Some(MachineKind::ScaleSet)
    } else {
        None
    }
}

pub fn check_resource_type(text: &str) -> Result<(), String> {
    parse_machine_kind(text).map(|_| ()).ok_or_else(|| {
        format!("`{text}` is not one of `virtualMachines`, `virtualMachineScaleSets`.")
    })
}

/// Each element of `resource_types` (see [`check_resource_types_listed`] for the empty set).
pub fn resource_type() -> Validator {
    Validator::string("Unknown resource type", check_resource_type)
}

/// An error at `attribute` when `list` (a typed model's list or set; `None`: not set, or
/// unknown) is empty: a filter that matches nothing is refused, `fix` says what to write
/// instead.
pub fn check_listed<T>(
    list: Option<&[T]>,
    attribute: &str,
    summary: &str,
    fix: &str,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    if list.is_some_and(<[T]>::is_empty) {
        diagnostics.error_at(AttributePath::root(attribute), summary, fix);
    }
    diagnostics
}

/// `resource_types = []` is refused: it would match no machine.
pub fn check_resource_types_listed<T>(resource_types: Option<&[T]>) -> Diagnostics {
    check_listed(
        resource_types,
        "resource_types",
        "No resource types",
        "Name at least one of `virtualMachines` and `virtualMachineScaleSets`, or leave the argument out for both.",
    )
}

/// A subscription ID: a GUID (`00000000-0000-0000-0000-000000000000`), not a
/// `/subscriptions/{guid}` path nor a subscription's name.
pub fn check_subscription_id(text: &str) -> Result<(), String> {
    ids::SubscriptionId::parse_guid(text).map(|_| ()).map_err(|reason| {
        let hint = match text.trim_end_matches('/').rsplit_once("/subscriptions/") {
            Some((_, guid)) if ids::validate_guid("", guid).is_ok() => {
                format!(" Give the GUID alone: `{guid}`.")
            }
            _ => " Give the subscription's GUID, e.g. `data.mig_client_config.current.subscription_id`.".to_string(),
        };
        format!("{reason}.{hint}")
    })
}

pub fn subscription_id() -> Validator {
    Validator::string("Invalid subscription ID", check_subscription_id)
}

/// A region's name, in ARM's spelling (`eastus`) or the portal's (`East US`): letters and
/// digits, white space ignored. The same rule as [`region`], for code that is not a schema
/// (provider functions, which cannot ask Azure whether the region exists).
pub fn check_region(text: &str) -> Result<(), String> {
    ids::normalize_location(text).map(|_| ())
}

/// A management group: its name (`mg-corp`, or the tenant ID for the tenant root group) or
/// its ID (`/providers/Microsoft.Management/managementGroups/mg-corp`). ARM's naming rule: 1
/// to 90 letters, digits, `-`, `_`, `(`, `)` or `.`, not ending in `.`. A subscription ID is
/// refused, naming the fix.
pub fn check_management_group_id(text: &str) -> Result<(), String> {
    refuse_query(text)?;
    if text.to_ascii_lowercase().contains("/subscriptions/") {
        return Err(format!(
            "`{text}` is a subscription, not a management group. Give a group's name or ID here; subscriptions go where the configuration names subscriptions (`subscription_ids`), or leave the group out to cover every subscription the principal can see."
        ));
    }
    let name = crate::azure::management_groups::group_name(text);
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '(' | ')' | '.');
    let length = name.chars().count();
    if length == 0 || length > 90 || !name.chars().all(allowed) || name.ends_with('.') {
        return Err(format!(
            "`{text}` is not a management group: give its name (1 to 90 letters, digits, `-`, `_`, `(`, `)` or `.`, not ending in `.`; the tenant ID for the tenant root group) or its ID, /providers/Microsoft.Management/managementGroups/{{name}}."
        ));
    }
    Ok(())
}

/// An error at `attribute[key]` for each of `names` (the keys of the map `attribute`) that
/// is not a tag name ([`check_tag_name`]); declared validators see only a map's values.
pub fn check_tag_names<'a>(
    names: impl IntoIterator<Item = &'a String>,
    attribute: &str,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for name in names {
        if let Err(detail) = check_tag_name(name) {
            diagnostics.error_at(
                AttributePath::root(attribute).key_string(name),
                "Invalid tag name",
                &detail,
            );
        }
    }
    diagnostics
}

pub fn management_group_id() -> Validator {
    Validator::string("Invalid management group", check_management_group_id)
}

/// Any ARM ID: a subscription, resource group or resource. A trailing `/` is accepted (and
/// trimmed where used); a query string or white space is not.
pub fn check_resource_id(id: &str) -> Result<(), String> {
    refuse_query(id)?;
    ResourceId::parse(trim_arm_id(id)).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Checks only Azure can answer, made at plan once the value is known
// ---------------------------------------------------------------------------------------------

/// An error at `attribute` for each of `regions` (any spelling) the subscription does not
/// have. When the region list cannot be read, nothing is refused: apply will tell.
pub async fn check_regions_exist(
    clients: &AzureClients,
    subscription_id: &str,
    attribute: &str,
    regions: &[String],
) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    if regions.is_empty() {
        return diagnostics;
    }
    let known = match clients.subscriptions.regions(subscription_id).await {
        Ok(known) => known,
        Err(error) => {
            tracing::debug!(%error, "cannot list the subscription's regions; not checking them");
            return diagnostics;
        }
    };
    for region in regions {
        let Ok(name) = ids::normalize_location(region) else {
            continue;
        };
        if !known.contains(&name) {
            diagnostics.error_at(
                AttributePath::root(attribute),
                "Unknown region",
                &format!(
                    "Subscription {subscription_id} has no region `{region}`. Regions it has: {}.",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    diagnostics
}

/// An error at `attribute` when the user-assigned identity `id` does not exist (or the
/// principal cannot see it).
pub async fn check_identity_exists(
    clients: &AzureClients,
    attribute: &str,
    id: &str,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    let Ok(parsed) = UserAssignedIdentityId::parse(trim_arm_id(id)) else {
        return diagnostics;
    };
    match clients.identities.get(&parsed).await {
        Ok(Some(_)) => {}
        Ok(None) => diagnostics.error_at(
            AttributePath::root(attribute),
            "Identity not found",
            &format!(
                "`{id}` does not exist, or this principal cannot read it. Create it first (for example with `mig_builtin_identity`, and reference its `id`), or correct the ID."
            ),
        ),
        Err(error) if error.status == 403 => diagnostics.error_at(
            AttributePath::root(attribute),
            "Identity not readable",
            &format!(
                "This principal may not read `{id}` ({error}). Grant it Managed Identity Operator (or Reader) on the identity."
            ),
        ),
        Err(error) => {
            tracing::debug!(%error, "cannot read the identity; not checking it");
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::Value;

    const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

    #[test]
    fn machine_ids_must_name_a_machine() {
        let vm =
            format!("{SUB}/resourceGroups/app/providers/Microsoft.Compute/virtualMachines/vm1");
        assert!(check_machine_id(&vm).is_ok());
        assert!(
            check_machine_id(&format!("{vm}/")).is_ok(),
            "a trailing slash is normalised"
        );
        assert!(
            check_machine_id(&vm.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions")).is_ok()
        );
        assert!(
            check_machine_id(&format!("{SUB}/resourceGroups/app")).is_err(),
            "a group is not a machine"
        );
        assert!(check_machine_id(&format!("{vm}?api-version=2024-07-01")).is_err());
        assert!(check_machine_id("garbage").is_err());
        let disk = format!("{SUB}/resourceGroups/app/providers/Microsoft.Compute/disks/d1");
        assert!(check_machine_id(&disk).is_err());
        let scale_set = format!(
            "{SUB}/resourceGroups/app/providers/Microsoft.Compute/virtualMachineScaleSets/ss"
        );
        assert!(check_machine_id(&scale_set).is_ok());
        assert_eq!(normalize_arm_id(&format!("{vm}/")), vm.to_ascii_lowercase());
    }

    #[test]
    fn identity_ids_refuse_query_strings_and_accept_a_trailing_slash() {
        let id = format!("{SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one");
        assert!(check_identity_id(&id).is_ok());
        assert!(check_identity_id(&format!("{id}/")).is_ok());
        assert!(check_identity_id(&format!("{id}?api-version=2023-01-31")).is_err());
        assert!(check_identity_id(&format!("{SUB}/resourceGroups/ids")).is_err());
    }

    #[test]
    fn role_definitions_are_ids_or_guids_never_names() {
        assert!(check_role_definition("b24988ac-6180-42a0-ab88-20f7382dd24c").is_ok());
        assert!(check_role_definition(
            "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
        )
        .is_ok());
        assert!(check_role_definition(&format!(
            "{SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
        ))
        .is_ok());
        let refused = check_role_definition("Contributor").unwrap_err();
        assert!(refused.contains("b24988ac"), "names the fix: {refused}");
        assert!(check_role_definition(&format!(
            "{SUB}/resourceGroups/x/b24988ac-6180-42a0-ab88-20f7382dd24c"
        ))
        .is_err());
        assert_eq!(
            role_definition_guid("/providers/Microsoft.Authorization/roleDefinitions/B24988AC-6180-42A0-AB88-20F7382DD24C/"),
            "b24988ac-6180-42a0-ab88-20f7382dd24c"
        );
    }

    #[test]
    fn names_follow_arms_rules() {
        assert!(check_resource_group_name("Built-In-Identity-RG").is_ok());
        assert!(check_resource_group_name("rg(1).a").is_ok());
        for bad in ["", "a/b", "ends.", &"x".repeat(91), "has space"] {
            assert!(check_resource_group_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_identity_name("Built-In-Identity-eastus").is_ok());
        for bad in ["ab", "-lead", "has space", "a.b", &"x".repeat(129)] {
            assert!(check_identity_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_tag_name("env").is_ok());
        assert!(check_tag_name("a<b").is_err());
        assert!(check_tag_value(&"v".repeat(257)).is_err());
    }

    #[test]
    fn durations_refuse_zero_where_time_is_needed() {
        assert!(check_duration("30s", false).is_ok());
        assert!(check_duration("0s", false).is_err());
        assert!(check_duration("0s", true).is_ok());
        assert!(check_duration("soon", true).is_err());
    }

    #[test]
    fn validators_carry_the_rules() {
        let value = tfplugin::Value::from("Contributor");
        assert!(role_definition().check(&value).is_err());
        assert!(region().check(&tfplugin::Value::from("East US")).is_ok());
        assert!(region().check(&tfplugin::Value::from("east-us!")).is_err());
    }
    #[test]
    fn role_assignment_scopes_resource_types_and_empty_sets() {
        assert!(check_role_assignment_scope(SUB).is_ok());
        assert!(check_role_assignment_scope(&format!("{SUB}/resourceGroups/rg/")).is_ok());
        assert!(check_role_assignment_scope(
            "/providers/Microsoft.Management/managementGroups/root/"
        )
        .is_ok());
        assert!(check_role_assignment_scope(&format!("{SUB}?api-version=1")).is_err());
        assert!(
            check_role_assignment_scope("/providers/Microsoft.Management/managementGroups/")
                .is_err()
        );
        assert!(check_resource_type("VIRTUALMACHINES").is_ok());
        assert!(check_resource_type("disks").is_err());
        let no_types: &[String] = &[];
        let diagnostics = check_resource_types_listed(Some(no_types));
        assert_eq!(
            diagnostics.items[0].attribute,
            Some(AttributePath::root("resource_types"))
        );
        assert!(!check_resource_types_listed::<String>(None).has_errors());
        assert!(!check_resource_types_listed(Some(&["virtualMachines"])).has_errors());
        assert!(duration().check(&Value::from("0s")).is_ok());
        assert!(duration().check(&Value::from("-1h")).is_err());
    }
}

#[cfg(test)]
mod builtin_identity_rules {
    use super::*;

    #[test]
    fn subscription_ids_are_guids_and_a_path_names_the_guid_to_give() {
        assert!(check_subscription_id("00000000-0000-0000-0000-000000000001").is_ok());
        let path = check_subscription_id("/subscriptions/00000000-0000-0000-0000-000000000001")
            .unwrap_err();
        assert!(
            path.contains("`00000000-0000-0000-0000-000000000001`"),
            "{path}"
        );
        assert!(check_subscription_id("not-a-guid").is_err());
        assert!(subscription_id()
            .check(&tfplugin::Value::from("x"))
            .is_err());
    }

    #[test]
    fn regions_are_judged_by_their_shape() {
        assert!(check_region("East US 2").is_ok());
        assert!(
            check_region("eastus3").is_ok(),
            "existence is checked against Azure"
        );
        assert!(check_region("east-us!").is_err());
        assert!(check_region("").is_err());
    }

    #[test]
    fn resource_ids_accept_a_trailing_slash_and_refuse_a_query() {
        let group = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg";
        assert!(check_resource_id(group).is_ok());
        assert!(check_resource_id(&format!("{group}/")).is_ok());
        assert!(check_resource_id(&format!("{group}?api-version=2022-09-01")).is_err());
        assert!(check_resource_id("rg").is_err());
    }

    #[test]
    fn tag_names_are_checked_key_by_key() {
        let names = ["ok".to_string(), "a<b".to_string()];
        let diagnostics = check_tag_names(&names, "tags");
        assert_eq!(diagnostics.items.len(), 1);
        assert_eq!(
            diagnostics.items[0].attribute,
            Some(AttributePath::root("tags").key_string("a<b"))
        );
        assert!(check_tag_names(&[], "tags").is_empty());
    }
}
