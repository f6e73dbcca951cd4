//! Unit tests of `mig_orphan_cleanup`'s arguments and values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use tfplugin::{model, AttributePath, Type, Value};

use super::resource::{schema, with_outcome};
use super::*;
use crate::orphans::Orphan;

fn config(fields: &[(&str, Value)]) -> Value {
    let mut all: BTreeMap<String, Value> = schema()
        .block
        .attributes
        .iter()
        .map(|a| (a.name.clone(), Value::Null))
        .collect();
    for (name, value) in fields {
        all.insert(name.to_string(), value.clone());
    }
    Value::Object(all)
}

const SCOPE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

#[test]
fn defaults_are_safe() {
    let block = schema().block;
    let (scope, rules) =
        search_from(&block.apply_defaults(&config(&[("scope", Value::from(SCOPE))]))).unwrap();
    assert!(scope.starts_with("/subscriptions/"));
    assert_eq!(
        rules.principal_types,
        BTreeSet::from(["serviceprincipal".to_string()])
    );
    assert_eq!(rules.min_age, Duration::from_secs(24 * 3600));
    let defaulted = block.apply_defaults(&config(&[]));
    assert_eq!(max_deletions(&defaulted), 50);
    assert_eq!(RemovalArguments::from(&defaulted).mode, Some(Mode::Delete));
}

/// Terraform's proposed new state keeps the prior value of an optional+computed
/// argument whose configuration is null: the declared default must win over it.
#[test]
fn removing_an_argument_plans_its_default_again() {
    let block = schema().block;
    let prior = with_outcome(
        &block.apply_defaults(&config(&[
            ("scope", Value::from(SCOPE)),
            ("mode", Value::from("report")),
            ("max_deletions", Value::int(5)),
            ("min_age", Value::from("1h")),
            ("principal_types", Value::string_set(["User"])),
        ])),
        &[],
        &BTreeSet::new(),
    );
    let config = config(&[("scope", Value::from(SCOPE))]);
    let mut proposed = prior.clone();
    for name in ["scope", "exclude_role_definition_ids"] {
        proposed = proposed.with(name, config.get(name).clone());
    }
    let planned = tfplugin::planning::plan_proposed(&block, &config, &prior, &proposed);
    assert_eq!(planned.get("mode"), &Value::from("delete"));
    assert_eq!(planned.get("max_deletions"), &Value::int(50));
    assert_eq!(planned.get("min_age"), &Value::from("24h"));
    assert_eq!(
        planned.get("principal_types"),
        &Value::string_set(["ServicePrincipal"])
    );
    assert!(
        planned.get("removed_ids").is_unknown(),
        "the outcome is replanned"
    );
    assert!(tfplugin::planning::requires_replace(&block, &prior, &planned).is_empty());
    let moved = planned.with("scope", Value::from(SCOPE.to_uppercase()));
    assert!(
        tfplugin::planning::requires_replace(&block, &prior, &moved).is_empty(),
        "ARM IDs compare without case"
    );
    let moved = planned.with("scope", Value::from(format!("{SCOPE}/resourceGroups/rg")));
    assert_eq!(
        tfplugin::planning::requires_replace(&block, &prior, &moved),
        vec![AttributePath::root("scope")]
    );
}

#[test]
fn bad_arguments_name_the_attribute() {
    let diagnostics = schema().block.validate(&config(&[
        ("scope", Value::from("/subscriptions/x/resourceGroups")),
        ("principal_types", Value::string_set(["Robot"])),
        ("min_age", Value::from("yesterday")),
        ("max_deletions", Value::int(-1)),
        ("mode", Value::from("purge")),
    ]));
    let named: Vec<String> = diagnostics
        .iter()
        .filter_map(|d| d.attribute.as_ref())
        .map(|p| format!("{:?}", p.steps[0]))
        .collect();
    for name in [
        "scope",
        "principal_types",
        "min_age",
        "max_deletions",
        "mode",
    ] {
        assert!(
            named.iter().any(|n| n.contains(name)),
            "{name} not named: {named:?}"
        );
    }
}

#[test]
fn unknown_arguments_are_not_validated_and_good_ones_pass() {
    let diagnostics = schema().block.validate(&config(&[
        ("scope", Value::unknown()),
        ("principal_types", Value::Set(vec![Value::unknown()])),
        ("mode", Value::from("report")),
        ("max_deletions", Value::int(0)),
        ("min_age", Value::from("7d")),
    ]));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let whole = schema().block.validate(&config(&[(
        "max_deletions",
        Value::Number(tfplugin::Number::Float(1.5)),
    )]));
    assert_eq!(
        whole.items[0].detail,
        "`max_deletions` must be a whole number."
    );
}

#[test]
fn management_groups_are_scopes() {
    let scope = |text: &str| {
        schema()
            .block
            .validate(&config(&[("scope", Value::from(text))]))
    };
    assert!(scope("/providers/Microsoft.Management/managementGroups/root").is_empty());
    assert!(!scope("/providers/Microsoft.Management/managementGroups/").is_empty());
    assert!(
        scope(&format!("{SCOPE}/")).is_empty(),
        "a trailing / is trimmed"
    );
    assert!(!scope(&format!("{SCOPE}?api-version=1")).is_empty());
}

#[test]
fn role_names_are_refused_and_ids_compare_by_guid() {
    let diagnostics = schema().block.validate(&config(&[(
        "exclude_role_definition_ids",
        Value::string_set(["Contributor"]),
    )]));
    assert_eq!(
        diagnostics.items[0].attribute,
        Some(AttributePath::root("exclude_role_definition_ids"))
    );
    let block = schema().block;
    let (scope, rules) = search_from(&block.apply_defaults(&config(&[
        ("scope", Value::from(format!("{SCOPE}/"))),
        (
            "exclude_role_definition_ids",
            Value::string_set([
                "B24988AC-6180-42A0-AB88-20F7382DD24C",
                "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7/",
            ]),
        ),
    ])))
    .unwrap();
    assert_eq!(scope, SCOPE);
    assert_eq!(
        rules.excluded_roles,
        BTreeSet::from([
            "acdd72a7-3385-48ef-bd42-f606fba81ae7".to_string(),
            "b24988ac-6180-42a0-ab88-20f7382dd24c".to_string(),
        ])
    );
    let no_types: &[String] = &[];
    let empty = validate_principal_types(Some(no_types));
    assert_eq!(
        empty.items[0].attribute,
        Some(AttributePath::root("principal_types"))
    );
}

fn orphan_type() -> &'static Type {
    static TYPE: LazyLock<Type> = LazyLock::new(|| {
        orphaned_attribute("")
            .nested
            .map(|nested| {
                Type::Object(
                    nested
                        .attributes
                        .iter()
                        .map(|a| (a.name.clone(), a.value_type()))
                        .collect(),
                )
            })
            .expect("orphaned has nested attributes")
    });
    &TYPE
}

pub fn orphan_value(orphan: &Orphan) -> Value {
    model::encode(&OrphanModel::from(orphan), orphan_type())
}

fn orphan_from_value(value: &Value) -> Option<Orphan> {
    model::decode::<OrphanModel>(value).ok().map(Orphan::from)
}

#[test]
fn orphans_survive_a_round_trip_through_values() {
    let orphan = Orphan {
        id: "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/1".into(),
        principal_id: "p".into(),
        principal_type: "ServicePrincipal".into(),
        role_definition_id: "/r/x".into(),
        role_name: None,
        scope: "/subscriptions/s".into(),
        created_on: Some("2026-01-01T00:00:00Z".into()),
        inherited: true,
    };
    assert_eq!(orphan_from_value(&orphan_value(&orphan)), Some(orphan));
}
