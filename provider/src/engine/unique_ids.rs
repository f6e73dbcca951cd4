//! The unique IDs an ownership record keeps ([`UniqueIds`]): for each machine holding an
//! identity from us, which machine it was (`vmId`, a scale set's `uniqueId`) when we
//! attached it, so that one deleted and created again under the same resource ID is told
//! apart.
//!
//! Only equality is ever asked of them, so the record keeps a 64-bit digest of each machine
//! ID and of each unique ID rather than the strings. At 100,000 machines the strings made
//! Terraform's state 2.5 times larger (15.6 MB to 38.8 MB, the private state is base64 in
//! it); 16 bytes a machine add about 2.8 MB. Two of an object's machines sharing a digest
//! (about 1 in 10^9 for 100,000 of them) would only make one of them look created again,
//! which leaves it holding the identity: never a strip.

use std::collections::BTreeMap;

use base64::Engine;
use sha2::{Digest as _, Sha256};

/// The first 8 bytes of the SHA-256 of a lower-cased string: stable across releases and
/// platforms, as a persisted key must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(u64);

impl Digest {
    pub fn of(text: &str) -> Digest {
        let hash = Sha256::digest(text.to_ascii_lowercase().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        Digest(u64::from_be_bytes(first))
    }
}

/// Machine ID to the unique ID of the machine we attached to, both as [`Digest`]s. Any
/// casing of an ID finds the same entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UniqueIds(BTreeMap<Digest, Digest>);

/// Bytes one entry takes: the machine ID's digest, then the unique ID's.
const ENTRY_BYTES: usize = 16;

impl UniqueIds {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Records that `machine_id` is the machine whose unique ID is `unique_id`.
    pub fn record(&mut self, machine_id: &str, unique_id: &str) {
        self.0.insert(Digest::of(machine_id), Digest::of(unique_id));
    }

    /// What is recorded of `machine_id`, if anything.
    pub fn of(&self, machine_id: &str) -> Option<Digest> {
        self.0.get(&Digest::of(machine_id)).copied()
    }

    /// Records `unique_id` (as [`UniqueIds::of`] gave it) for `machine_id`.
    pub fn keep(&mut self, machine_id: &str, unique_id: Digest) {
        self.0.insert(Digest::of(machine_id), unique_id);
    }

    pub fn forget(&mut self, machine_id: &str) {
        self.0.remove(&Digest::of(machine_id));
    }

    /// Adds every entry of `other`, which wins where both record a machine.
    pub fn extend(&mut self, other: UniqueIds) {
        self.0.extend(other.0);
    }

    /// The entries of `machines` only.
    pub fn only<'a>(&self, machines: impl IntoIterator<Item = &'a String>) -> UniqueIds {
        UniqueIds(
            machines
                .into_iter()
                .filter_map(|machine| {
                    let key = Digest::of(machine);
                    self.0.get(&key).map(|unique_id| (key, *unique_id))
                })
                .collect(),
        )
    }

    fn to_text(&self) -> String {
        let mut bytes = Vec::with_capacity(self.0.len() * ENTRY_BYTES);
        for (machine, unique_id) in &self.0 {
            bytes.extend_from_slice(&machine.0.to_be_bytes());
            bytes.extend_from_slice(&unique_id.0.to_be_bytes());
        }
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    fn from_text(text: &str) -> Result<UniqueIds, String> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .map_err(|error| error.to_string())?;
        if bytes.len() % ENTRY_BYTES != 0 {
            return Err(format!(
                "{} bytes, not a whole number of {ENTRY_BYTES}-byte entries",
                bytes.len()
            ));
        }
        let word = |chunk: &[u8]| Digest(u64::from_be_bytes(chunk.try_into().expect("8 bytes")));
        Ok(UniqueIds(
            bytes
                .chunks_exact(ENTRY_BYTES)
                .map(|entry| (word(&entry[..8]), word(&entry[8..])))
                .collect(),
        ))
    }
}

/// Whether a machine listed with `listed` (its unique ID now) is the one recorded with
/// `recorded`. Without either (a state from before unique IDs were recorded, an ARM answer
/// without them) the resource ID alone decides, as it always did.
pub fn is_same_machine(recorded: Option<Digest>, listed: Option<&str>) -> bool {
    match (recorded, listed) {
        (Some(recorded), Some(listed)) => recorded == Digest::of(listed),
        _ => true,
    }
}

impl<M: AsRef<str>, U: AsRef<str>> FromIterator<(M, U)> for UniqueIds {
    /// From `machine ID -> unique ID` pairs, as records before this form kept them.
    fn from_iter<I: IntoIterator<Item = (M, U)>>(pairs: I) -> UniqueIds {
        let mut ids = UniqueIds::default();
        for (machine, unique_id) in pairs {
            ids.record(machine.as_ref(), unique_id.as_ref());
        }
        ids
    }
}

/// Kept as one base64 string of 16-byte entries, sorted by machine.
impl serde::Serialize for UniqueIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

/// Reads what [`Serialize`](serde::Serialize) writes, and the map of strings (`machine ID ->
/// unique ID`) records kept before it.
impl<'de> serde::Deserialize<'de> for UniqueIds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<UniqueIds, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Kept {
            Compact(String),
            Strings(BTreeMap<String, String>),
        }
        match Kept::deserialize(deserializer)? {
            Kept::Compact(text) => UniqueIds::from_text(&text).map_err(serde::de::Error::custom),
            Kept::Strings(pairs) => Ok(pairs.iter().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_casing_of_a_machine_finds_its_unique_id() {
        let mut ids = UniqueIds::default();
        ids.record("/SUBSCRIPTIONS/S/VM/A", "VMID-1");
        assert_eq!(ids.of("/subscriptions/s/vm/a"), Some(Digest::of("vmid-1")));
        assert!(is_same_machine(
            ids.of("/Subscriptions/s/vm/A"),
            Some("vmid-1")
        ));
        assert!(!is_same_machine(
            ids.of("/subscriptions/s/vm/a"),
            Some("vmid-2")
        ));
        assert!(
            is_same_machine(ids.of("/subscriptions/s/vm/b"), Some("vmid-2")),
            "no record"
        );
        assert!(
            is_same_machine(ids.of("/subscriptions/s/vm/a"), None),
            "nothing listed"
        );
        ids.forget("/subscriptions/S/vm/a");
        assert!(ids.is_empty());
    }

    #[test]
    fn the_compact_form_reads_back_and_takes_16_bytes_a_machine() {
        let mut ids = UniqueIds::default();
        for n in 0..1000 {
            ids.record(
                &format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{n}"),
                &format!("6a3c5d1e-0000-4000-8000-{n:012}"),
            );
        }
        let json = serde_json::to_string(&ids).unwrap();
        // 16,000 bytes in base64 (4 characters per 3 bytes, no padding) and two quotes.
        assert_eq!(json.len(), (16_000usize * 4).div_ceil(3) + 2);
        assert_eq!(serde_json::from_str::<UniqueIds>(&json).unwrap(), ids);
    }

    #[test]
    fn the_map_of_strings_earlier_releases_wrote_reads_as_digests() {
        let old: UniqueIds = serde_json::from_str(
            r#"{"/subscriptions/s/vm/a":"vmid-a","/subscriptions/s/vm/b":"vmid-b"}"#,
        )
        .unwrap();
        assert_eq!(old.len(), 2);
        assert!(is_same_machine(
            old.of("/subscriptions/S/vm/A"),
            Some("VMID-A")
        ));
        assert!(!is_same_machine(
            old.of("/subscriptions/s/vm/b"),
            Some("vmid-a")
        ));
    }

    #[test]
    fn a_digest_is_the_first_8_bytes_of_the_sha256_of_the_lower_cased_text() {
        // SHA-256("abc") = ba7816bf8f01cfea...: pinned, as every record written depends on it.
        assert_eq!(Digest::of("ABC"), Digest(0xba78_16bf_8f01_cfea));
    }

    #[test]
    fn only_keeps_the_named_machines_and_extend_lets_the_newer_win() {
        let mut ids = UniqueIds::default();
        ids.record("/vm/a", "1");
        ids.record("/vm/b", "2");
        let only_a = ids.only([&"/VM/A".to_string(), &"/vm/c".to_string()]);
        assert_eq!(only_a.len(), 1);
        assert_eq!(only_a.of("/vm/a"), Some(Digest::of("1")));
        let mut newer = UniqueIds::default();
        newer.record("/vm/a", "1-again");
        ids.extend(newer);
        assert_eq!(ids.of("/vm/a"), Some(Digest::of("1-again")));
        assert_eq!(ids.of("/vm/b"), Some(Digest::of("2")));
    }

    #[test]
    fn a_compact_form_cut_short_is_refused() {
        assert!(serde_json::from_str::<UniqueIds>(r#""AAAAAAAAAAA""#).is_err());
    }
}
