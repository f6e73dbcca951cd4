//! Logs in the JSON line format go-plugin reads from a plugin's stderr (hclog's), so
//! `TF_LOG=debug` shows them in Terraform's log with their level and fields.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The level from `TF_LOG_PROVIDER_MIG`, `TF_LOG_PROVIDER` or `TF_LOG`, as the Go SDK reads
/// them; nothing is logged when none is set.
pub fn level_from_env(get: impl Fn(&str) -> Option<String>) -> LevelFilter {
    let value = ["TF_LOG_PROVIDER_MIG", "TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|name| get(name).filter(|v| !v.trim().is_empty()));
    match value.map(|v| v.trim().to_ascii_uppercase()).as_deref() {
        Some("TRACE") | Some("JSON") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("INFO") => LevelFilter::INFO,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR") => LevelFilter::ERROR,
        Some(_) => LevelFilter::TRACE,
        None => LevelFilter::OFF,
    }
}

/// What is logged at `level`: every event of the plugin's own crates (this one and
/// `plugin_crate`), and the libraries' only up to INFO unless `level` is TRACE. At DEBUG the
/// libraries log every HTTP/2 frame and pooled connection: an estate's apply wrote 580,000
/// such lines beside the provider's 110,000, burying what `TF_LOG=debug` is read for.
fn log_filter(level: LevelFilter, plugin_crate: &str) -> Targets {
    let libraries = if level == LevelFilter::TRACE {
        level
    } else {
        level.min(LevelFilter::INFO)
    };
    Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_target(plugin_crate, level)
        .with_default(libraries)
}

/// Installs the stderr logger. Call once, first thing in `main`, with the binary's crate
/// name (`env!("CARGO_CRATE_NAME")`): its events are logged at Terraform's level.
pub fn init_logging(plugin_crate: &str) {
    let level = level_from_env(|name| std::env::var(name).ok());
    let subscriber = Registry::default().with(
        HclogLayer {
            module: "provider.mig",
        }
        .with_filter(log_filter(level, plugin_crate)),
    );
    let _ = tracing::subscriber::set_global_default(subscriber);
}

pub struct HclogLayer {
    pub module: &'static str,
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, serde_json::Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, serde_json::Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, serde_json::Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, serde_json::Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, serde_json::Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, serde_json::Value::from(format!("{value:?}")));
    }
}

impl Fields {
    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        let key = if field.name() == "message" {
            "@message"
        } else {
            field.name()
        };
        self.0.insert(key.to_string(), value);
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// go-plugin parses `@timestamp` with Go's layout `2006-01-02T15:04:05.000000Z07:00`: exactly
/// six fractional digits. A line whose timestamp does not parse is demoted to a DEBUG line of
/// raw text, losing its level, so warnings would vanish under `TF_LOG=WARN`.
fn hclog_timestamp(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// One log line, as hclog writes it. go-plugin turns it into an entry of Terraform's log at
/// its level, `<message>: key=value ...` (every field but `@message`, `@level` and
/// `@timestamp` becomes a pair); `caller` is `file:line`, as hclog's `@caller`.
pub fn format_line(
    module: &str,
    level: &Level,
    caller: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> String {
    let timestamp = hclog_timestamp(time::OffsetDateTime::now_utc());
    let mut line = serde_json::Map::new();
    line.insert("@level".into(), level_name(level).into());
    line.insert("@module".into(), module.into());
    line.insert("@timestamp".into(), timestamp.into());
    line.insert("@caller".into(), caller.into());
    if !fields.contains_key("@message") {
        line.insert("@message".into(), "".into());
    }
    line.extend(fields);
    serde_json::Value::Object(line).to_string()
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(serde_json::Map::new());
        event.record(&mut fields);
        let metadata = event.metadata();
        let caller = match (metadata.file(), metadata.line()) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => metadata.target().to_string(),
        };
        let line = format_line(self.module, metadata.level(), &caller, fields.0);
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_follows_terraform_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(level_from_env(env(&[])), LevelFilter::OFF);
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "debug")])),
            LevelFilter::DEBUG
        );
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "trace"), ("TF_LOG_PROVIDER", "WARN")])),
            LevelFilter::WARN
        );
        assert_eq!(
            level_from_env(env(&[("TF_LOG", "json")])),
            LevelFilter::TRACE
        );
    }

    #[test]
    fn libraries_log_below_info_only_at_trace() {
        let debug = log_filter(LevelFilter::DEBUG, "my_provider");
        assert!(debug.would_enable("my_provider::resources", &Level::DEBUG));
        assert!(debug.would_enable(env!("CARGO_CRATE_NAME"), &Level::DEBUG));
        assert!(!debug.would_enable("h2::codec::framed_read", &Level::DEBUG));
        assert!(debug.would_enable("h2::codec::framed_read", &Level::INFO));
        let trace = log_filter(LevelFilter::TRACE, "my_provider");
        assert!(trace.would_enable("h2::codec::framed_read", &Level::TRACE));
        let warn = log_filter(LevelFilter::WARN, "my_provider");
        assert!(!warn.would_enable("hyper_util::client", &Level::INFO));
        assert!(warn.would_enable("hyper_util::client", &Level::WARN));
        let off = log_filter(LevelFilter::OFF, "my_provider");
        assert!(!off.would_enable("my_provider", &Level::ERROR));
        assert!(!off.would_enable("h2", &Level::ERROR));
    }

    #[test]
    fn lines_are_hclog_json() {
        let mut fields = serde_json::Map::new();
        fields.insert("@message".into(), "listing machines".into());
        fields.insert("scope".into(), "/subscriptions/x".into());
        let line = format_line(
            "provider.mig",
            &Level::DEBUG,
            "provider/src/azure/arm.rs:42",
            fields,
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["@level"], "debug");
        assert_eq!(parsed["@caller"], "provider/src/azure/arm.rs:42");
        assert_eq!(parsed["@message"], "listing machines");
        assert_eq!(parsed["scope"], "/subscriptions/x");
        assert!(parsed["@timestamp"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn every_level_has_the_name_hclog_gives_it() {
        // hclog.LevelFromString: an unknown name would become the host's default level.
        for (level, name) in [
            (Level::TRACE, "trace"),
            (Level::DEBUG, "debug"),
            (Level::INFO, "info"),
            (Level::WARN, "warn"),
            (Level::ERROR, "error"),
        ] {
            let line = format_line("provider.mig", &level, "x.rs:1", serde_json::Map::new());
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed["@level"], name);
            assert_eq!(parsed["@message"], "", "always there");
        }
    }

    #[test]
    fn timestamps_have_the_six_fractional_digits_go_plugin_parses() {
        let at = time::macros::datetime!(2026-11-26 13:39:01.974123456 +01:00);
        assert_eq!(hclog_timestamp(at), "2026-11-26T12:39:01.974123Z");
    }
}
