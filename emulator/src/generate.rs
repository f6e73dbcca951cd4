//! `azure-emulator generate`: large scenarios with a realistic mix of identities.

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::model::DEFAULT_TENANT;
use crate::util::stable_guid;

pub const REGIONS: &[&str] = &[
    "eastus",
    "westeurope",
    "westus2",
    "northeurope",
    "eastus2",
    "uksouth",
    "southeastasia",
    "japaneast",
    "australiaeast",
    "canadacentral",
    "francecentral",
    "centralus",
    "swedencentral",
    "germanywestcentral",
    "koreacentral",
    "brazilsouth",
];

/// A tiny deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

pub struct Options {
    pub vms: usize,
    pub regions: usize,
    pub scale_sets: usize,
    pub subscriptions: usize,
    /// Management groups `mg-1` … `mg-G` as a binary tree under the tenant root group
    /// (`mg-k`'s parent is `mg-k/2`), subscriptions dealt round-robin over them; 0: none, every
    /// subscription under the root.
    pub management_groups: usize,
    pub seed: u64,
}

fn builtin_id(sub: &str, region: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}")
}

/// One identity block from the mix: none, system, single UAMI, multiple UAMI,
/// system + UAMI, already holding the built-in identity (alone or with others).
fn identity_mix(
    rng: &mut Rng,
    sub: &str,
    region: &str,
    app_ids: &[String],
) -> (Value, &'static str) {
    let pick = |rng: &mut Rng| app_ids[rng.below(app_ids.len() as u64) as usize].clone();
    let roll = rng.below(100);
    match roll {
        0..=24 => (Value::Null, "none"),
        25..=44 => (json!({"type": "SystemAssigned"}), "system"),
        45..=59 => (
            json!({"type": "UserAssigned", "user_assigned": [pick(rng)]}),
            "single_uami",
        ),
        60..=69 => {
            let a = pick(rng);
            let mut b = pick(rng);
            if a == b {
                b = app_ids
                    [(app_ids.iter().position(|x| x == &a).unwrap_or(0) + 1) % app_ids.len()]
                .clone();
            }
            (
                json!({"type": "UserAssigned", "user_assigned": [a, b]}),
                "multi_uami",
            )
        }
        70..=81 => (
            json!({"type": "SystemAssigned, UserAssigned", "user_assigned": [pick(rng)]}),
            "system_uami",
        ),
        82..=89 => (
            json!({"type": "UserAssigned", "user_assigned": [builtin_id(sub, region)]}),
            "builtin_only",
        ),
        90..=95 => (
            json!({"type": "UserAssigned", "user_assigned": [pick(rng), builtin_id(sub, region)]}),
            "builtin_and_uami",
        ),
        _ => (
            json!({"type": "SystemAssigned, UserAssigned", "user_assigned": [builtin_id(sub, region)]}),
            "system_builtin",
        ),
    }
}

pub fn scenario(o: &Options) -> Value {
    let mut rng = Rng(o.seed);
    let regions: Vec<&str> = REGIONS
        .iter()
        .copied()
        .cycle()
        .take(o.regions.max(1))
        .collect();
    let nsubs = o.subscriptions.max(1);
    let mut subs = Vec::new();
    let mut deleted = Vec::new();
    let mut mix_counts = serde_json::Map::new();
    for s in 0..nsubs {
        let sub = if s == 0 {
            crate::model::DEFAULT_SUBSCRIPTION.to_string()
        } else {
            format!("00000000-0000-0000-0000-{:012}", s + 1)
        };
        let vms_here = o.vms / nsubs + usize::from(s < o.vms % nsubs);
        let vmss_here = o.scale_sets / nsubs + usize::from(s < o.scale_sets % nsubs);
        let mut rgs = vec![
            json!({"name": "Built-In-Identity-RG", "location": "eastus"}),
            json!({"name": "rg-identities", "location": regions[0]}),
        ];
        let mut identities = Vec::new();
        let mut app_ids: Vec<Vec<String>> = Vec::new();
        for region in &regions {
            let mut ids = Vec::new();
            for k in 0..3 {
                let name = format!("id-app-{region}-{k}");
                identities.push(
                    json!({"name": name, "resource_group": "rg-identities", "location": region}),
                );
                ids.push(format!("/subscriptions/{sub}/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"));
            }
            app_ids.push(ids);
            for g in 0..4 {
                rgs.push(json!({"name": format!("rg-app-{region}-{g}"), "location": region}));
            }
        }
        let mut vms = Vec::new();
        for i in 0..vms_here {
            let ri = rng.below(regions.len() as u64) as usize;
            let region = regions[ri];
            let (identity, label) = identity_mix(&mut rng, &sub, region, &app_ids[ri]);
            *mix_counts.entry(label).or_insert(json!(0)) =
                json!(mix_counts.get(label).and_then(|v| v.as_u64()).unwrap_or(0) + 1);
            let mut vm = json!({
                "name": format!("vm-{region}-{i:05}"),
                "resource_group": format!("rg-app-{region}-{}", rng.below(4)),
                "location": region,
                "tags": {"env": (["prod", "dev", "test"][rng.below(3) as usize]), "owner": format!("team-{}", rng.below(8))}
            });
            if !identity.is_null() {
                vm["identity"] = identity;
            }
            vms.push(vm);
        }
        let mut vmss = Vec::new();
        for i in 0..vmss_here {
            let ri = rng.below(regions.len() as u64) as usize;
            let region = regions[ri];
            let (identity, _) = identity_mix(&mut rng, &sub, region, &app_ids[ri]);
            let mut ss = json!({
                "name": format!("vmss-{region}-{i:04}"),
                "resource_group": format!("rg-app-{region}-{}", rng.below(4)),
                "location": region
            });
            if !identity.is_null() {
                ss["identity"] = identity;
            }
            vmss.push(ss);
        }
        // Orphaned role assignments: principals that no longer exist.
        let mut ras = Vec::new();
        for k in 0..(3 + o.vms / 1000) {
            let pid = stable_guid(&format!("deleted:{sub}:{k}"));
            deleted.push(json!(pid));
            ras.push(json!({"scope": format!("/subscriptions/{sub}"), "role": "Reader", "principal_id": pid, "principal_type": "ServicePrincipal"}));
        }
        subs.push(json!({
            "id": sub,
            "display_name": format!("Generated subscription {}", s + 1),
            "regions": regions,
            "resource_groups": rgs,
            "user_assigned_identities": identities,
            "virtual_machines": vms,
            "scale_sets": vmss,
            "role_assignments": ras,
            "locks": []
        }));
    }
    let management_groups: Vec<Value> = (1..=o.management_groups)
        .map(|k| {
            let placed: Vec<&Value> = subs
                .iter()
                .enumerate()
                .filter(|(s, _)| s % o.management_groups + 1 == k)
                .map(|(_, sub)| &sub["id"])
                .collect();
            let mut group = json!({
                "id": format!("mg-{k}"),
                "display_name": format!("Generated group {k}"),
                "subscriptions": placed,
            });
            if k > 1 {
                group["parent"] = json!(format!("mg-{}", k / 2));
            }
            group
        })
        .collect();
    json!({
        "tenant_id": DEFAULT_TENANT,
        "management_groups": management_groups,
        "subscriptions": subs,
        "deleted_principals": deleted,
        "principals": [],
        "realism": {},
        "_generated": {"vms": o.vms, "regions": o.regions, "scale_sets": o.scale_sets, "management_groups": o.management_groups, "seed": o.seed, "identity_mix": mix_counts}
    })
}

pub fn run(argv: &[String]) -> anyhow::Result<()> {
    let mut o = Options {
        vms: 100,
        regions: 3,
        scale_sets: 0,
        subscriptions: 1,
        management_groups: 0,
        seed: 42,
    };
    let mut out: Option<String> = None;
    let mut i = 0;
    while i < argv.len() {
        let name = argv[i].as_str();
        let val = argv
            .get(i + 1)
            .cloned()
            .with_context(|| format!("{name} needs a value"));
        match name {
            "--vms" => o.vms = val?.parse()?,
            "--regions" => o.regions = val?.parse()?,
            "--scale-sets" => o.scale_sets = val?.parse()?,
            "--subscriptions" => o.subscriptions = val?.parse()?,
            "--management-groups" => o.management_groups = val?.parse()?,
            "--seed" => o.seed = val?.parse()?,
            "--out" => out = Some(val?),
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    let doc = scenario(&o);
    let bytes = serde_json::to_vec_pretty(&doc)?;
    match out {
        Some(p) if p != "-" => std::fs::write(&p, bytes).with_context(|| format!("write {p}"))?,
        _ => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_scenario_loads() {
        let doc = scenario(&Options {
            vms: 200,
            regions: 3,
            scale_sets: 5,
            subscriptions: 1,
            management_groups: 0,
            seed: 7,
        });
        let sc: crate::scenario::Scenario = serde_json::from_value(doc).unwrap();
        let w = crate::scenario::build_world(&sc, "fast", None);
        assert_eq!(w.vms.len(), 200);
        assert_eq!(w.vmss.len(), 5);
        assert!(w.vms.values().any(|v| v.identity.user.len() >= 2));
        assert!(w.vms.values().any(|v| v.identity.is_none()));
        assert!(w
            .identities
            .keys()
            .any(|k| k.contains("built-in-identity-")));
        assert!(w.management_groups.is_empty());
    }

    #[test]
    fn generated_management_groups_form_a_tree_holding_every_subscription() {
        let doc = scenario(&Options {
            vms: 20,
            regions: 2,
            scale_sets: 0,
            subscriptions: 5,
            management_groups: 3,
            seed: 7,
        });
        let sc: crate::scenario::Scenario = serde_json::from_value(doc).unwrap();
        let w = crate::scenario::build_world(&sc, "fast", None);
        assert_eq!(w.management_groups.len(), 3);
        assert_eq!(w.management_groups["mg-1"].parent, None);
        assert_eq!(w.management_groups["mg-3"].parent.as_deref(), Some("mg-1"));
        assert_eq!(w.subscription_groups.len(), 5);
        assert_eq!(
            w.subscription_groups[crate::model::DEFAULT_SUBSCRIPTION],
            "mg-1"
        );
    }
}
