//! Small helpers: clocks, GUIDs, timestamps, ARM id handling.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_secs() -> u64 {
    now_ms() / 1000
}

pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 with 7 fractional digits, as ARM writes timestamps.
pub fn rfc3339_ms(ms: u64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}+00:00",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.nanosecond() / 100
    )
}

/// RFC 3339 UTC with a `Z`, as Graph and role assignments write them.
pub fn rfc3339_z(ms: u64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    dt.format(&Rfc3339)
        .unwrap_or_default()
        .replace("+00:00", "Z")
}

/// `M/D/YYYY h:mm:ss AM` as ARM's token errors print times.
pub fn arm_clock(secs: u64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (h12, ampm) = match dt.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{} {}:{:02}:{:02} {}",
        dt.month() as u8,
        dt.day(),
        dt.year(),
        h12,
        dt.minute(),
        dt.second(),
        ampm
    )
}

/// The RFC 7231 date for `Date`-like headers.
pub fn http_date(ms: u64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[dt.month() as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Lower-cases an ARM id and strips a trailing slash: the key used in maps.
pub fn key(id: &str) -> String {
    let mut k = id.trim_end_matches('/').to_ascii_lowercase();
    if !k.starts_with('/') {
        k.insert(0, '/');
    }
    k
}

/// Whether `scope` equals `id` or is an ancestor of it (case-insensitive, segment-wise).
pub fn scope_contains(scope: &str, id: &str) -> bool {
    let s = key(scope);
    let i = key(id);
    if s == "/" {
        return true;
    }
    i == s || (i.starts_with(&s) && i.as_bytes().get(s.len()) == Some(&b'/'))
}

pub fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// The subscription id in an ARM id, if any.
pub fn subscription_of(id: &str) -> Option<String> {
    let mut parts = id.split('/').filter(|p| !p.is_empty());
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("subscriptions") {
            return parts.next().map(|s| s.to_ascii_lowercase());
        }
    }
    None
}

/// A deterministic GUID derived from text (for stable ids in generated scenarios).
pub fn stable_guid(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Title-cases an Azure region name for `displayName` ("westeurope" -> "West Europe").
/// Public Azure regions with their display names: every subscription lists them, as Azure's
/// do, besides the regions its scenario names.
pub const PUBLIC_REGIONS: &[(&str, &str)] = &[
    ("eastus", "East US"),
    ("eastus2", "East US 2"),
    ("westus", "West US"),
    ("westus2", "West US 2"),
    ("westus3", "West US 3"),
    ("centralus", "Central US"),
    ("northcentralus", "North Central US"),
    ("southcentralus", "South Central US"),
    ("westcentralus", "West Central US"),
    ("northeurope", "North Europe"),
    ("westeurope", "West Europe"),
    ("uksouth", "UK South"),
    ("ukwest", "UK West"),
    ("francecentral", "France Central"),
    ("germanywestcentral", "Germany West Central"),
    ("swedencentral", "Sweden Central"),
    ("switzerlandnorth", "Switzerland North"),
    ("norwayeast", "Norway East"),
    ("japaneast", "Japan East"),
    ("japanwest", "Japan West"),
    ("australiaeast", "Australia East"),
    ("southeastasia", "Southeast Asia"),
    ("eastasia", "East Asia"),
    ("canadacentral", "Canada Central"),
    ("brazilsouth", "Brazil South"),
    ("centralindia", "Central India"),
    ("koreacentral", "Korea Central"),
    ("southafricanorth", "South Africa North"),
    ("uaenorth", "UAE North"),
];

pub fn region_display_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    PUBLIC_REGIONS
        .iter()
        .find(|(k, _)| *k == lower)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Normalises a location as ARM stores it ("West Europe" -> "westeurope").
pub fn normalize_location(loc: &str) -> String {
    loc.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_containment_is_segment_wise() {
        assert!(scope_contains(
            "/subscriptions/a",
            "/subscriptions/A/resourceGroups/x"
        ));
        assert!(!scope_contains("/subscriptions/a", "/subscriptions/ab"));
        assert!(scope_contains("/", "/subscriptions/ab"));
    }

    #[test]
    fn arm_clock_formats() {
        assert_eq!(arm_clock(0), "1/1/1970 12:00:00 AM");
    }
}
