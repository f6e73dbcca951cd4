//! The duration rule of `timeouts` and `min_age` (provider/src/arguments.rs
//! `check_duration`: humantime's parser, zero refused where an operation needs time) and
//! what the provider then does with a duration: print it in messages, compare it with a
//! role assignment's age (`time::Duration`, orphans::old_enough) and make deadlines from it.
//! arguments.rs needs the Azure client, so the rule's two steps are called here directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terraform_provider_mig_fuzz::MAX_INPUT;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(duration) = humantime::parse_duration(text) else {
        return;
    };
    let _positive = !duration.is_zero();
    // Messages print durations; printed, they parse back to the same.
    let shown = humantime::format_duration(duration).to_string();
    assert_eq!(
        humantime::parse_duration(&shown).ok(),
        Some(duration),
        "{text:?} printed as {shown:?}"
    );
    // `min_age` against a role assignment's creation time.
    let min_age = time::Duration::try_from(duration).unwrap_or(time::Duration::MAX);
    let created = time::OffsetDateTime::UNIX_EPOCH;
    let _ = time::OffsetDateTime::now_utc() - created >= min_age;
    // Deadlines: tokio's `sleep` and `timeout` saturate; an `Instant` sum must be checked.
    let _ = std::time::Instant::now().checked_add(duration);
});
