//! Unit tests of `mig_builtin_identity`'s pure decisions.

use std::collections::BTreeMap;

use tfplugin::{model, AttributePath, Value};

use super::locks::{is_refusal, lock_plan, permissions_fingerprint, LockPlan};
use super::model::{self as m, schema, state_type, LockDenial, Ownership, Target};
use super::plan;
use super::read::{parse_import_id, ImportTarget};
use super::LOCK_PERMISSION;
use crate::azure::arm::ArmError;
use crate::azure::authorization::Permission;
use crate::azure::ids::UserAssignedIdentityId;

// The typed functions under test, seen as values (as Terraform sends them).
fn decode(value: &Value) -> m::Model {
    model::decode(value).expect("a value of the schema")
}

fn encode(model: &m::Model) -> Value {
    model::encode(model, state_type())
}

fn validate_arguments(config: &Value) -> tfplugin::Diagnostics {
    m::validate_arguments(&decode(config))
}

fn with_dependent_defaults(config: &Value, provider_subscription: Option<&str>) -> Value {
    encode(&m::with_dependent_defaults(
        &decode(config),
        provider_subscription,
    ))
}

fn plan_target(arguments: &Value) -> Result<Option<Target>, String> {
    m::plan_target(&decode(arguments))
}

fn replacements(prior: &Value, planned: &Value) -> Vec<AttributePath> {
    let prior = (!prior.is_null()).then(|| decode(prior));
    plan::replacements(prior.as_ref(), &decode(planned))
}

fn state_value(configured: &Value, target: &Target, lock_present: bool) -> Value {
    encode(&m::state_value(
        &decode(configured),
        target,
        None,
        lock_present,
    ))
}

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const OTHER_SUB: &str = "11111111-1111-1111-1111-111111111111";

fn config(fields: &[(&str, Value)]) -> Value {
    let mut all: BTreeMap<String, Value> = schema()
        .block
        .attributes
        .iter()
        .map(|a| (a.name.clone(), Value::Null))
        .collect();
    all.insert("timeouts".into(), Value::Null);
    for (name, value) in fields {
        all.insert(name.to_string(), value.clone());
    }
    Value::Object(all)
}

fn plan_target_of(
    config: &Value,
    provider_subscription: Option<&str>,
) -> Result<Option<Target>, String> {
    plan_target(&with_dependent_defaults(config, provider_subscription))
}

#[test]
fn defaults_are_the_policys() {
    let target = plan_target_of(
        &config(&[("location", Value::from("West Europe"))]),
        Some(SUB),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        target.identity.to_string(),
        format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope")
    );
    assert!(target.lock);
    assert_eq!(target.resource_group_location, "eastus");
    assert_eq!(
        target.lock_name(),
        "CanNotDeleteLock-Built-In-Identity-westeurope"
    );
}

#[test]
fn byo_identity_in_another_subscription_is_not_locked_by_default() {
    let id = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
    let target = plan_target_of(
        &config(&[
            ("location", Value::from("eastus")),
            ("existing_identity_id", Value::from(id.as_str())),
        ]),
        Some(SUB),
    )
    .unwrap()
    .unwrap();
    assert!(target.existing);
    assert!(
        !target.lock,
        "1.1.0 semantics: no lock outside the VMs' subscription"
    );
    let same = id.replace(OTHER_SUB, SUB);
    let target = plan_target_of(
        &config(&[
            ("location", Value::from("eastus")),
            ("existing_identity_id", Value::from(same.as_str())),
        ]),
        Some(SUB),
    )
    .unwrap()
    .unwrap();
    assert!(target.lock);
}

#[test]
fn conflicting_and_malformed_arguments_name_the_attribute() {
    // What the server runs at validate: the declared validators, then the resource's.
    let validate = |config: &Value| {
        let mut diagnostics = schema().block.validate(config);
        diagnostics.extend(validate_arguments(config));
        diagnostics
    };
    let diagnostics = validate(&config(&[
        ("location", Value::from("mars!")),
        ("existing_identity_id", Value::from("/subscriptions/x")),
        ("name", Value::from("mine")),
    ]));
    let attributes: Vec<String> = diagnostics
        .items
        .iter()
        .filter_map(|d| d.attribute.as_ref())
        .map(|p| format!("{:?}", p.steps[0]))
        .collect();
    for name in ["location", "existing_identity_id", "name"] {
        assert!(
            attributes.iter().any(|a| a.contains(name)),
            "{name} not named: {attributes:?}"
        );
    }
}

#[test]
fn arguments_azure_would_refuse_are_refused_by_the_shared_rules() {
    let validate = |fields: &[(&str, Value)]| {
        let config = config(fields);
        let mut diagnostics = schema().block.validate(&config);
        diagnostics.extend(validate_arguments(&config));
        diagnostics
            .items
            .iter()
            .map(|d| (d.attribute.clone(), d.summary.clone()))
            .collect::<Vec<_>>()
    };
    let at = |name: &str| Some(AttributePath::root(name));
    let tags = |name: &str, value: &str| {
        Value::Map(
            [(name.to_string(), Value::from(value))]
                .into_iter()
                .collect(),
        )
    };
    let location = ("location", Value::from("eastus"));
    for (fields, attribute, summary) in [
        (
            vec![location.clone(), ("resource_group_name", Value::from(""))],
            at("resource_group_name"),
            "Invalid resource group name",
        ),
        (
            vec![location.clone(), ("resource_group_name", Value::from("a/b"))],
            at("resource_group_name"),
            "Invalid resource group name",
        ),
        (
            vec![location.clone(), ("name", Value::from("has space"))],
            at("name"),
            "Invalid identity name",
        ),
        (
            vec![location.clone(), ("name", Value::from("-lead"))],
            at("name"),
            "Invalid identity name",
        ),
        (
            vec![
                location.clone(),
                ("tags", tags("a<b", "x")),
            ],
            Some(AttributePath::root("tags").key_string("a<b")),
            "Invalid tag name",
        ),
        (
            vec![
                location.clone(),
                ("tags", tags("k", &"v".repeat(257))),
            ],
            Some(AttributePath::root("tags").key_string("k")),
            "Invalid tag value",
        ),
        (
            vec![
                location.clone(),
                ("existing_identity_id", Value::from(format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x?api-version=2023-01-31"))),
            ],
            at("existing_identity_id"),
            "Invalid identity ID",
        ),
        (
            vec![
                location.clone(),
                ("timeouts", Value::object([("create", Value::from("0s")), ("read", Value::Null), ("update", Value::Null), ("delete", Value::Null)])),
            ],
            Some(AttributePath::root("timeouts").attribute("create")),
            "Invalid duration",
        ),
    ] {
        let found = validate(&fields);
        assert!(
            found.iter().any(|(a, s)| *a == attribute && s == summary),
            "{fields:?}: {found:?}"
        );
    }
    // A trailing slash is accepted (and trimmed where used).
    let slash = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x/");
    assert!(validate(&[
        location.clone(),
        ("existing_identity_id", Value::from(slash.as_str()))
    ])
    .is_empty());
    let target = plan_target_of(
        &config(&[
            location,
            ("existing_identity_id", Value::from(slash.as_str())),
        ]),
        Some(SUB),
    )
    .unwrap()
    .unwrap();
    assert_eq!(target.identity.to_string(), slash.trim_end_matches('/'));
}

#[test]
fn replacement_compares_meanings_not_spellings() {
    let id = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x");
    let prior = config(&[
        ("location", Value::from("eastus")),
        ("subscription_id", Value::from(SUB)),
        ("existing_identity_id", Value::from(id.as_str())),
    ]);
    let respelled = prior
        .with("location", Value::from("East US"))
        .with(
            "existing_identity_id",
            Value::from(format!(
                "{}/",
                id.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions")
            )),
        )
        .with("subscription_id", Value::from(OTHER_SUB));
    assert!(
        replacements(&prior, &respelled).is_empty(),
        "same region, same identity; the subscription of your own identity replaces nothing"
    );
    let moved = respelled.with("location", Value::from("westeurope"));
    assert_eq!(
        replacements(&prior, &moved),
        vec![AttributePath::root("location")]
    );
    let created = prior.with("existing_identity_id", Value::Null);
    let other_subscription = created.with("subscription_id", Value::from(OTHER_SUB));
    assert_eq!(
        replacements(&created, &other_subscription),
        vec![AttributePath::root("subscription_id")]
    );
    assert_eq!(
        replacements(&created, &created.with("location", Value::unknown())),
        vec![AttributePath::root("location")],
        "an unknown value may differ"
    );
}

#[test]
fn planned_value_knows_the_ids_but_not_the_principal() {
    let config = config(&[("location", Value::from("eastus"))]);
    let target = plan_target_of(&config, Some(SUB)).unwrap().unwrap();
    let planned = state_value(&config, &target, true);
    assert!(planned
        .get("id")
        .as_str()
        .unwrap()
        .ends_with("Built-In-Identity-eastus"));
    assert!(planned
        .get("lock_id")
        .as_str()
        .unwrap()
        .ends_with("/locks/CanNotDeleteLock-Built-In-Identity-eastus"));
    assert!(planned.get("principal_id").is_unknown());
    assert!(planned.get("tags").is_null());
}

#[test]
fn ownership_survives_private_state() {
    let ownership = Ownership {
        created_resource_group: true,
        placed_lock: false,
        adopted_identity: true,
        lock_denied: None,
        unreadable: Some("AuthorizationFailed".into()),
    };
    assert_eq!(Ownership::from_private(&ownership.to_private()), ownership);
    assert_eq!(Ownership::from_private(b""), Ownership::default());
    // Private state written before adoption was recorded: what we created stays ours.
    let old = Ownership::from_private(br#"{"created_resource_group":false,"placed_lock":true}"#);
    assert!(!old.adopted_identity);
}

#[test]
fn an_adopted_identity_and_its_lock_are_not_ours_unless_we_placed_the_lock() {
    let target = plan_target_of(&config(&[("location", Value::from("eastus"))]), Some(SUB))
        .unwrap()
        .unwrap();
    let adopted = Ownership {
        adopted_identity: true,
        ..Ownership::default()
    };
    assert!(!adopted.owns_identity(&target));
    assert!(!adopted.owns_lock(&target));
    let locked_by_us = Ownership {
        placed_lock: true,
        ..adopted
    };
    assert!(locked_by_us.owns_lock(&target));
    assert!(!locked_by_us.owns_identity(&target));
    assert!(Ownership::default().owns_identity(&target));
}

#[test]
fn defaults_come_from_the_configuration_not_the_proposed_state() {
    let defaulted = with_dependent_defaults(
        &config(&[("location", Value::from("West Europe"))]),
        Some(SUB),
    );
    assert_eq!(defaulted.get("subscription_id").as_str(), Some(SUB));
    assert_eq!(
        defaulted.get("resource_group_name").as_str(),
        Some("Built-In-Identity-RG")
    );
    assert_eq!(
        defaulted.get("resource_group_location").as_str(),
        Some("eastus")
    );
    assert_eq!(
        defaulted.get("name").as_str(),
        Some("Built-In-Identity-westeurope")
    );
    assert_eq!(defaulted.get("lock").as_bool(), Some(true));
    // A configured value wins; an unknown one stays unknown, and so do defaults that
    // depend on it.
    let configured = with_dependent_defaults(
        &config(&[
            ("location", Value::unknown()),
            ("lock", Value::Bool(false)),
            ("resource_group_location", Value::unknown()),
        ]),
        Some(SUB),
    );
    assert_eq!(configured.get("lock").as_bool(), Some(false));
    assert!(configured.get("resource_group_location").is_unknown());
    assert!(configured.get("name").is_unknown());
    // Bring your own: nothing to name, the lock as the policy decides.
    let id = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
    let byo = with_dependent_defaults(
        &config(&[
            ("location", Value::from("eastus")),
            ("existing_identity_id", Value::from(id.as_str())),
        ]),
        Some(SUB),
    );
    assert!(byo.get("name").is_null());
    assert!(byo.get("resource_group_name").is_null());
    assert_eq!(byo.get("lock").as_bool(), Some(false));
    // Unknown whether it is your own: nothing is decided.
    let unknown = with_dependent_defaults(
        &config(&[
            ("location", Value::from("eastus")),
            ("existing_identity_id", Value::unknown()),
        ]),
        Some(SUB),
    );
    assert!(unknown.get("name").is_unknown());
    assert!(unknown.get("lock").is_unknown());
    assert_eq!(
        plan_target_of(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::unknown()),
            ]),
            Some(SUB)
        ),
        Ok(None),
        "an unknown `existing_identity_id` is not a policy-named identity"
    );
}

#[test]
fn import_ids_name_the_mode() {
    let id = format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus");
    assert_eq!(
        parse_import_id(&format!(" {id} ")),
        Ok(ImportTarget::Named(
            UserAssignedIdentityId::parse(&id).unwrap()
        ))
    );
    let mine = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
    assert_eq!(
        parse_import_id(&format!("existing:{mine}")),
        Ok(ImportTarget::Existing {
            id_text: mine.clone(),
            identity: UserAssignedIdentityId::parse(&mine).unwrap(),
            location: None,
            subscription: None,
        })
    );
    assert_eq!(
        parse_import_id(&format!(
            "existing:{mine}?location=West Europe&subscription_id={SUB}"
        )),
        Ok(ImportTarget::Existing {
            id_text: mine.clone(),
            identity: UserAssignedIdentityId::parse(&mine).unwrap(),
            location: Some("westeurope".into()),
            subscription: Some(SUB.into()),
        })
    );
    assert!(parse_import_id(&format!("existing:{mine}?lock=false")).is_err());
    assert!(parse_import_id("existing:/subscriptions/x").is_err());
    assert!(parse_import_id("Built-In-Identity-eastus").is_err());
}

fn role(actions: &[&str], not_actions: &[&str]) -> Permission {
    Permission {
        actions: actions.iter().map(|a| a.to_string()).collect(),
        not_actions: not_actions.iter().map(|a| a.to_string()).collect(),
    }
}

fn contributor() -> Vec<Permission> {
    vec![role(
        &["*"],
        &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    )]
}

fn eastus() -> Target {
    plan_target_of(&config(&[("location", Value::from("eastus"))]), Some(SUB))
        .unwrap()
        .unwrap()
}

#[test]
fn a_principal_that_may_not_lock_holds_the_lock_with_a_warning_naming_the_permission() {
    let target = eastus();
    for denial in [
        None,
        Some(LockDenial {
            reason: "AuthorizationFailed".into(),
            permissions: Some(permissions_fingerprint(&contributor())),
        }),
    ] {
        match lock_plan(&target, denial.as_ref(), Ok(&contributor())) {
            LockPlan::Hold(detail) => {
                assert!(detail.contains(LOCK_PERMISSION), "{detail}");
                assert!(detail.contains("next plan places the lock"), "{detail}");
            }
            LockPlan::Place => panic!("a Contributor cannot place it"),
        }
    }
    // The permission appears (User Access Administrator next to Contributor): placed.
    let mut granted = contributor();
    granted.push(role(&["Microsoft.Authorization/*"], &[]));
    let denial = LockDenial {
        reason: "AuthorizationFailed".into(),
        permissions: Some(permissions_fingerprint(&contributor())),
    };
    assert_eq!(
        lock_plan(&target, Some(&denial), Ok(&granted)),
        LockPlan::Place
    );
    assert_eq!(lock_plan(&target, None, Ok(&granted)), LockPlan::Place);
}

#[test]
fn a_lock_refused_despite_the_permission_is_held_until_the_permissions_change() {
    let target = eastus();
    let owner = vec![role(&["*"], &[])];
    let denial = LockDenial {
        reason: "RequestDisallowedByPolicy: disallowed (HTTP 403)".into(),
        permissions: Some(permissions_fingerprint(&owner)),
    };
    match lock_plan(&target, Some(&denial), Ok(&owner)) {
        LockPlan::Hold(detail) => {
            assert!(detail.contains("RequestDisallowedByPolicy"), "{detail}");
            assert!(detail.contains("`lock = false`"), "{detail}");
        }
        LockPlan::Place => panic!("the same permissions would be refused again"),
    }
    // Permissions changed since the refusal: asked again.
    let changed = vec![role(&["*"], &[]), role(&["Microsoft.Authorization/*"], &[])];
    assert_eq!(
        lock_plan(&target, Some(&denial), Ok(&changed)),
        LockPlan::Place
    );
    // Refused when the permissions could not be read: asked again once they can be.
    let unread = LockDenial {
        permissions: None,
        ..denial.clone()
    };
    assert_eq!(
        lock_plan(&target, Some(&unread), Ok(&owner)),
        LockPlan::Place
    );
    // Permissions unreadable now: held after a refusal, placed when nothing was refused.
    assert!(matches!(
        lock_plan(&target, Some(&denial), Err("HTTP 500")),
        LockPlan::Hold(detail) if detail.contains("HTTP 500")
    ));
    assert_eq!(lock_plan(&target, None, Err("HTTP 500")), LockPlan::Place);
}

#[test]
fn permissions_fingerprints_ignore_order_and_case() {
    let a = vec![
        role(
            &["*"],
            &[
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/*/Delete",
            ],
        ),
        role(&["Microsoft.Compute/*/read"], &[]),
    ];
    let b = vec![
        role(&["microsoft.compute/*/READ"], &[]),
        role(
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
            ],
        ),
    ];
    assert_eq!(permissions_fingerprint(&a), permissions_fingerprint(&b));
    assert_ne!(
        permissions_fingerprint(&a),
        permissions_fingerprint(&a[..1])
    );
}

#[test]
fn only_refusals_are_recorded_transient_failures_are_not() {
    let status = |status: u16| ArmError {
        status,
        ..ArmError::transport("x")
    };
    for refused in [400, 403, 404, 409] {
        assert!(is_refusal(&status(refused)), "{refused}");
    }
    for transient in [0, 408, 429, 500, 503] {
        assert!(!is_refusal(&status(transient)), "{transient}");
    }
}

#[test]
fn a_denial_survives_private_state_and_older_private_state_has_none() {
    let ownership = Ownership {
        lock_denied: Some(LockDenial {
            reason: "AuthorizationFailed".into(),
            permissions: Some("*!".into()),
        }),
        ..Ownership::default()
    };
    assert_eq!(Ownership::from_private(&ownership.to_private()), ownership);
    let old = Ownership::from_private(br#"{"created_resource_group":true,"placed_lock":true}"#);
    assert_eq!(old.lock_denied, None);
}

#[test]
fn only_a_201_makes_a_create_ours_a_200_is_adopted() {
    use crate::azure::arm::put_created;
    assert!(put_created(201));
    // 200: it existed (someone created it between our read and our PUT, or a retry of a
    // PUT whose answer was lost); 202: not said. Neither is taken for ours.
    for status in [200, 202] {
        assert!(!put_created(status), "{status}");
    }
    // What create records for an identity its PUT found: adopted, never deleted.
    let target = eastus();
    let found = Ownership {
        adopted_identity: !put_created(200),
        created_resource_group: put_created(200),
        ..Ownership::default()
    };
    assert!(!found.owns_identity(&target));
    assert!(!found.created_resource_group);
    let created = Ownership {
        adopted_identity: !put_created(201),
        ..Ownership::default()
    };
    assert!(created.owns_identity(&target));
}
