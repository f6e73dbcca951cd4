//! Provider logs as Terraform shows them. go-plugin reads the provider's stderr as hclog JSON
//! lines and re-logs each one into Terraform's log at its own level, as
//! `[WARN]  provider.terraform-provider-mig_v…: <message>: key=value …`, the way it shows a
//! Go provider's. A line go-plugin cannot parse (an `@timestamp` not in the layout
//! `2006-01-02T15:04:05.000000Z07:00`, say) is demoted to DEBUG raw text instead, so under
//! `TF_LOG=WARN` the provider's warnings would vanish: these tests run real Terraform at WARN.
//!
//! The warning used: `SSL_CERT_FILE` naming a file with no PEM certificate in it, which the
//! provider ignores with a warning when it is configured (provider/src/azure/config/).

use acceptance_tests::{Emulator, Workdir};
use serde_json::json;

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const MESSAGE: &str = "SSL_CERT_FILE holds no PEM certificate; ignored";

/// A configuration against the emulator whose plan configures the provider, with
/// `SSL_CERT_FILE` pointing at a file that holds no certificate, and `TF_LOG` (or another
/// log variable) set as given.
fn workdir(emulator: &Emulator, log_env: &[(&str, &str)]) -> (Workdir, String) {
    let mut work =
        Workdir::new(&emulator.configuration(r#"data "mig_client_config" "current" {}"#));
    let not_pem = work.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "this file holds no certificate\n").unwrap();
    let not_pem = not_pem.display().to_string();
    work.env("SSL_CERT_FILE", &not_pem);
    for (key, value) in log_env {
        work.env(key, value);
    }
    (work, not_pem)
}

/// The lines of Terraform's log (stderr) that the provider wrote.
fn provider_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.contains(" provider.terraform-provider-mig"))
        .collect()
}

/// `<timestamp> [LEVEL] <logger>: <message>: <pairs>` split up.
struct Entry<'a> {
    level: &'a str,
    logger: &'a str,
    message: &'a str,
    pairs: &'a str,
}

fn parse(line: &str) -> Entry<'_> {
    let (_, rest) = line.split_once(" [").expect("a level in brackets");
    let (level, rest) = rest.split_once(']').expect("closing bracket");
    let (logger, rest) = rest.trim_start().split_once(": ").expect("logger name");
    let (message, pairs) = rest.split_once(": ").unwrap_or((rest, ""));
    Entry {
        level,
        logger,
        message,
        pairs,
    }
}

fn plan(work: &Workdir) -> String {
    work.init();
    let output = work.run(&["plan", "-input=false", "-no-color"]);
    assert!(output.success, "plan failed:\n{}", output.all());
    output.stderr
}

#[test]
fn a_provider_warning_shows_at_warn_as_a_structured_entry() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let (work, not_pem) = workdir(&emulator, &[("TF_LOG", "WARN")]);
    let stderr = plan(&work);

    let lines = provider_lines(&stderr);
    let warning = lines
        .iter()
        .find(|line| line.contains(MESSAGE))
        .unwrap_or_else(|| panic!("no provider warning in Terraform's log:\n{stderr}"));
    let entry = parse(warning);
    assert_eq!(entry.level, "WARN", "{warning}");
    assert!(
        entry.logger.starts_with("provider.terraform-provider-mig"),
        "{warning}"
    );
    assert_eq!(entry.message, MESSAGE, "{warning}");
    // The fields as key=value pairs, the provider's own and hclog's.
    let pairs: Vec<&str> = entry.pairs.split(' ').collect();
    assert!(
        pairs.contains(&format!("path={not_pem}").as_str()),
        "{warning}"
    );
    assert!(pairs.contains(&"@module=provider.mig"), "{warning}");
    assert!(
        pairs.iter().any(|pair| pair.starts_with("@caller=")),
        "{warning}"
    );
    // go-plugin adds `timestamp` only when it parsed the line's `@timestamp`.
    assert!(
        pairs.iter().any(|pair| pair.starts_with("timestamp=")),
        "{warning}"
    );

    // Nothing of the provider's below WARN, and no raw JSON (a line go-plugin could not
    // parse would be printed as it came).
    for line in &lines {
        let entry = parse(line);
        assert!(
            matches!(entry.level, "WARN" | "ERROR"),
            "a provider line below WARN: {line}"
        );
        assert!(!entry.message.starts_with('{'), "unparsed: {line}");
    }
}

#[test]
fn tf_log_provider_alone_sets_the_level_and_json_keeps_the_fields() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));

    // TF_LOG_PROVIDER=WARN without TF_LOG: only provider lines, at their level.
    let (work, _) = workdir(&emulator, &[("TF_LOG_PROVIDER", "WARN")]);
    let stderr = plan(&work);
    let warning = provider_lines(&stderr)
        .into_iter()
        .find(|line| line.contains(MESSAGE))
        .unwrap_or_else(|| panic!("no provider warning in Terraform's log:\n{stderr}"));
    assert_eq!(parse(warning).level, "WARN", "{warning}");

    // TF_LOG=JSON: Terraform's log as JSON lines, the provider's with its level, message and
    // fields.
    let (work, not_pem) = workdir(&emulator, &[("TF_LOG", "JSON")]);
    let stderr = plan(&work);
    let entry = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["@message"] == MESSAGE)
        .unwrap_or_else(|| panic!("no provider warning in the JSON log:\n{stderr}"));
    assert_eq!(entry["@level"], "warn", "{entry}");
    assert_eq!(entry["path"], not_pem.as_str(), "{entry}");
    assert_eq!(entry["@module"], "provider.mig", "{entry}");
}

/// Where a provider line says it was logged from.
fn caller(line: &str) -> &str {
    parse(line)
        .pairs
        .split(' ')
        .find_map(|pair| pair.strip_prefix("@caller="))
        .unwrap_or("")
}

/// A library's source file, as `@caller` names it (under Cargo's registry).
fn from_a_library(line: &str) -> bool {
    caller(line).contains(".cargo/registry/")
}

#[test]
fn debug_shows_the_providers_story_and_only_trace_adds_the_libraries_chatter() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    // A data source that reads from ARM: the provider logs each request at DEBUG.
    let logged_plan = |level: &str| {
        let mut work =
            Workdir::new(&emulator.configuration(r#"data "mig_subscriptions" "all" {}"#));
        work.env("TF_LOG", level);
        plan(&work)
    };

    let stderr = logged_plan("DEBUG");
    let lines = provider_lines(&stderr);
    assert!(
        lines.iter().any(|line| parse(line).level == "DEBUG"
            && caller(line).starts_with("provider/src/azure/arm/")),
        "no DEBUG line of the provider's own ARM requests:\n{stderr}"
    );
    let chatter: Vec<&&str> = lines
        .iter()
        .filter(|line| from_a_library(line) && matches!(parse(line).level, "DEBUG" | "TRACE"))
        .collect();
    assert!(
        chatter.is_empty(),
        "libraries' DEBUG lines at TF_LOG=DEBUG:\n{chatter:#?}"
    );

    // TRACE is for reading the HTTP/2 and TLS layers too: their lines come back.
    let stderr = logged_plan("TRACE");
    assert!(
        provider_lines(&stderr)
            .iter()
            .any(|line| from_a_library(line) && matches!(parse(line).level, "DEBUG" | "TRACE")),
        "no library line at TF_LOG=TRACE:\n{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
}
