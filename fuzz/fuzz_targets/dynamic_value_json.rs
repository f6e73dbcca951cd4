//! `DynamicValue` JSON (stored state, handed to `UpgradeResourceState`) decoded against
//! every type the provider declares, strict and lenient. Whatever decodes must survive a
//! round trip through JSON and through msgpack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terraform_provider_mig_fuzz::{schema_types, MAX_INPUT};
use tfplugin::codec;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    for (name, ty) in schema_types() {
        for lenient in [false, true] {
            let Ok(value) = codec::from_json(data, ty, lenient) else {
                continue;
            };
            if let Ok(json) = codec::to_json(&value, ty) {
                let again = codec::from_json(json.as_bytes(), ty, false)
                    .unwrap_or_else(|e| panic!("{name}: written JSON {json} does not decode: {e}"));
                assert_eq!(value, again, "{name}: JSON round trip changed the value");
            }
            let encoded = codec::to_msgpack(&value, ty);
            let from_msgpack = codec::from_msgpack(&encoded, ty)
                .unwrap_or_else(|e| panic!("{name}: msgpack of a JSON value does not decode: {e}"));
            assert_eq!(
                value, from_msgpack,
                "{name}: msgpack round trip changed the value"
            );
        }
    }
});
