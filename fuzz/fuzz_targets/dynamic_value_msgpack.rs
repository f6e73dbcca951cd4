//! `DynamicValue` msgpack (what Terraform sends for every config, plan and state) decoded
//! against every type the provider declares. Whatever decodes must survive a round trip:
//! re-encoded it decodes to the same value, and, when known, so does its JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terraform_provider_mig_fuzz::{has_unknown, schema_types, MAX_INPUT};
use tfplugin::codec;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    for (name, ty) in schema_types() {
        let Ok(value) = codec::from_msgpack(data, ty) else {
            continue;
        };
        let encoded = codec::to_msgpack(&value, ty);
        let again = codec::from_msgpack(&encoded, ty)
            .unwrap_or_else(|e| panic!("{name}: re-encoded msgpack does not decode: {e}"));
        assert_eq!(value, again, "{name}: msgpack round trip changed the value");
        if !has_unknown(&value) {
            if let Ok(json) = codec::to_json(&value, ty) {
                let from_json = codec::from_json(json.as_bytes(), ty, false)
                    .unwrap_or_else(|e| panic!("{name}: written JSON {json} does not decode: {e}"));
                assert_eq!(
                    value, from_json,
                    "{name}: JSON round trip changed the value"
                );
            }
        }
    }
});
