//! What the fuzz targets share: the provider's schemas and the input size cap.

use std::sync::OnceLock;

use tfplugin::Type;

/// Inputs larger than this are skipped (scripts/fuzz also passes it as `-max_len`): a
/// Terraform value or an ARM request body is kilobytes, and libFuzzer's `-malloc_limit_mb`
/// catches an allocation out of proportion to the input.
pub const MAX_INPUT: usize = 64 * 1024;

/// Every value type the provider declares (fuzz/schemas/mig.json, written by
/// fuzz/dump-schemas from the provider's own schema), then `dynamic`.
pub fn schema_types() -> &'static [(String, Type)] {
    static TYPES: OnceLock<Vec<(String, Type)>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../schemas/mig.json")).expect("schemas JSON");
        let mut types: Vec<(String, Type)> = json
            .as_object()
            .expect("schemas are an object of types")
            .iter()
            .map(|(name, ty)| {
                let ty = Type::from_json(ty).unwrap_or_else(|e| panic!("schema {name}: {e}"));
                (name.clone(), ty)
            })
            .collect();
        assert!(types.len() > 10, "fuzz/schemas/mig.json lacks schemas");
        types.push(("dynamic".into(), Type::Dynamic));
        types
    })
}

/// Whether the value holds an unknown anywhere (unknowns have no JSON form).
pub fn has_unknown(value: &tfplugin::Value) -> bool {
    use tfplugin::Value;
    match value {
        Value::Unknown(_) => true,
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter().any(has_unknown)
        }
        Value::Map(fields) | Value::Object(fields) => fields.values().any(has_unknown),
        _ => false,
    }
}
