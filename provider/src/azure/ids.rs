//! Typed Azure Resource Manager IDs: parsing, validation and formatting in one place.
//! ARM compares IDs case-insensitively; these types keep the spelling they were given.

use std::fmt;

/// The resource group Azure Policy's built-in identities live in.
pub const BUILTIN_RESOURCE_GROUP: &str = "Built-In-Identity-RG";
/// The notes the policy writes on its lock.
pub const BUILTIN_LOCK_NOTES: &str =
    "Please do not delete this User-Assigned Identity since extensions enabled by Azure Policy are relying on their existence.";

pub fn builtin_identity_name(location: &str) -> String {
    format!("Built-In-Identity-{location}")
}

pub fn builtin_lock_name(identity_name: &str) -> String {
    format!("CanNotDeleteLock-{identity_name}")
}

pub fn builtin_identity_id(
    subscription: &SubscriptionId,
    location: &str,
) -> UserAssignedIdentityId {
    UserAssignedIdentityId::new(
        subscription.as_str(),
        BUILTIN_RESOURCE_GROUP,
        &builtin_identity_name(location),
    )
}

/// A region as ARM spells it: `East US` and `eastus` are both `eastus`.
pub fn normalize_location(raw: &str) -> Result<String, String> {
    let normalized: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    if normalized.is_empty()
        || !normalized
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "{raw:?} is not an Azure region name; use the name ARM uses, like \"eastus\" or \"westeurope\" (\"East US\" is accepted too)"
        ));
    }
    Ok(normalized)
}

/// `raw` as [`normalize_location`] spells it, borrowed when ARM already spelled it so: the
/// estate's filters ask this of every listed machine, and ARM's listings use that spelling.
pub fn normalized_location(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let already = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if already {
        Some(std::borrow::Cow::Borrowed(raw))
    } else {
        normalize_location(raw).ok().map(std::borrow::Cow::Owned)
    }
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups.iter().zip(lengths).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

pub fn validate_guid(what: &str, text: &str) -> Result<(), String> {
    if is_guid(text) {
        Ok(())
    } else {
        Err(format!(
            "{what} {text:?} is not a GUID; it looks like 00000000-0000-0000-0000-000000000000"
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    pub fn parse_guid(text: &str) -> Result<SubscriptionId, String> {
        validate_guid("subscription ID", text)?;
        Ok(SubscriptionId(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ARM resource ID split into its parts. Nested types are joined with `/`, like
/// `virtualMachineScaleSets/virtualMachines`, and `name` is the last name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    pub subscription_id: String,
    pub resource_group_name: Option<String>,
    pub provider_namespace: Option<String>,
    pub resource_type: Option<String>,
    pub name: Option<String>,
}

const ID_SHAPE: &str =
    "an ARM ID looks like /subscriptions/{guid}[/resourceGroups/{name}[/providers/{Namespace}/{type}/{name}]]";

impl ResourceId {
    pub fn parse(text: &str) -> Result<ResourceId, String> {
        let trimmed = text.trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        if segments.len() < 3
            || !segments[0].is_empty()
            || !segments[1].eq_ignore_ascii_case("subscriptions")
        {
            return Err(format!("{text:?} is not a resource ID: {ID_SHAPE}"));
        }
        if segments[1..].iter().any(|s| s.is_empty()) {
            return Err(format!("{text:?} has an empty segment: {ID_SHAPE}"));
        }
        let subscription_id = segments[2].to_string();
        validate_guid("subscription ID", &subscription_id)
            .map_err(|e| format!("{e} (in {text:?})"))?;
        let mut rest = &segments[3..];
        let mut resource_group_name = None;
        if let [keyword, group, tail @ ..] = rest {
            if keyword.eq_ignore_ascii_case("resourceGroups") {
                resource_group_name = Some(group.to_string());
                rest = tail;
            }
        }
        if rest.is_empty() {
            return Ok(ResourceId {
                subscription_id,
                resource_group_name,
                provider_namespace: None,
                resource_type: None,
                name: None,
            });
        }
        let [keyword, namespace, pairs @ ..] = rest else {
            return Err(format!("{text:?} is not a resource ID: {ID_SHAPE}"));
        };
        if !keyword.eq_ignore_ascii_case("providers") || pairs.is_empty() || pairs.len() % 2 != 0 {
            return Err(format!("{text:?} is not a resource ID: {ID_SHAPE}"));
        }
        let types: Vec<&str> = pairs.iter().step_by(2).copied().collect();
        Ok(ResourceId {
            subscription_id,
            resource_group_name,
            provider_namespace: Some(namespace.to_string()),
            resource_type: Some(types.join("/")),
            name: pairs.last().map(|s| s.to_string()),
        })
    }
}

/// Where the provider looks for machines: a subscription or a resource group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    subscription_id: String,
    resource_group: Option<String>,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        let shape = "a scope is a subscription (/subscriptions/{guid}) or a resource group (/subscriptions/{guid}/resourceGroups/{name})";
        let id =
            ResourceId::parse(text).map_err(|_| format!("{text:?} is not a scope: {shape}"))?;
        if id.provider_namespace.is_some() {
            return Err(format!("{text:?} is a resource, not a scope: {shape}"));
        }
        Ok(Scope {
            subscription_id: id.subscription_id,
            resource_group: id.resource_group_name,
        })
    }

    pub fn subscription(subscription_id: &str) -> Scope {
        Scope {
            subscription_id: subscription_id.to_string(),
            resource_group: None,
        }
    }

    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}", self.subscription_id)?;
        if let Some(group) = &self.resource_group {
            write!(f, "/resourceGroups/{group}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAssignedIdentityId {
    subscription_id: String,
    resource_group: String,
    name: String,
}

impl UserAssignedIdentityId {
    pub fn new(subscription_id: &str, resource_group: &str, name: &str) -> Self {
        UserAssignedIdentityId {
            subscription_id: subscription_id.to_string(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let shape = "a user-assigned identity ID looks like /subscriptions/{guid}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}";
        let id = ResourceId::parse(text).map_err(|e| format!("{e}; {shape}"))?;
        let is_identity = id
            .provider_namespace
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("Microsoft.ManagedIdentity"))
            && id
                .resource_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("userAssignedIdentities"));
        match (is_identity, id.resource_group_name, id.name) {
            (true, Some(resource_group), Some(name)) => Ok(UserAssignedIdentityId {
                subscription_id: id.subscription_id,
                resource_group,
                name,
            }),
            _ => Err(format!("{text:?} is not a user-assigned identity: {shape}")),
        }
    }

    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }

    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for UserAssignedIdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn locations_are_normalised_as_arm_spells_them() {
        assert_eq!(normalize_location("East US").unwrap(), "eastus");
        assert_eq!(normalize_location("westeurope").unwrap(), "westeurope");
        assert!(normalize_location("east-us!")
            .unwrap_err()
            .contains("eastus"));
        assert!(normalize_location("  ").is_err());
    }

    #[test]
    fn builtin_identity_id_is_the_policys() {
        let sub = SubscriptionId::parse_guid(SUB).unwrap();
        assert_eq!(
            builtin_identity_id(&sub, "eastus").to_string(),
            format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus")
        );
        assert!(SubscriptionId::parse_guid("not-a-guid").is_err());
    }

    #[test]
    fn resource_ids_split_into_parts() {
        let id = ResourceId::parse(&format!(
            "/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0"
        ))
        .unwrap();
        assert_eq!(id.resource_group_name.as_deref(), Some("rg"));
        assert_eq!(id.provider_namespace.as_deref(), Some("Microsoft.Compute"));
        assert_eq!(
            id.resource_type.as_deref(),
            Some("virtualMachineScaleSets/virtualMachines")
        );
        assert_eq!(id.name.as_deref(), Some("0"));
        let group = ResourceId::parse(&format!("/subscriptions/{SUB}/resourceGroups/rg")).unwrap();
        assert_eq!(group.name, None);
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions/not-a-guid",
            &format!("/subscriptions/{SUB}/providers/X"),
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn scopes_are_subscriptions_or_groups() {
        assert_eq!(
            Scope::parse(&format!("/subscriptions/{SUB}/"))
                .unwrap()
                .to_string(),
            format!("/subscriptions/{SUB}")
        );
        let group = Scope::parse(&format!("/subscriptions/{SUB}/resourceGroups/rg")).unwrap();
        assert_eq!(
            group.to_string(),
            format!("/subscriptions/{SUB}/resourceGroups/rg")
        );
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        );
        assert!(Scope::parse(&vm).unwrap_err().contains("not a scope"));
    }

    #[test]
    fn identity_ids_are_checked() {
        let text = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1");
        let id = UserAssignedIdentityId::parse(&text).unwrap();
        assert_eq!((id.resource_group(), id.name()), ("rg", "id1"));
        assert_eq!(id.to_string(), text);
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        );
        assert!(UserAssignedIdentityId::parse(&vm).is_err());
    }
}
