//! Protocol-foundation benchmark: handshake latency, GetProviderSchema latency and idle RSS of
//! provider binaries launched exactly as Terraform launches them (magic cookie, protocol
//! versions, AutoMTLS client certificate), side by side in one run.
//!
//! Usage: `handshake-bench --runs 30 NAME=PATH [NAME=PATH ...]`; the first NAME is "ours" and
//! the ratio rows compare it with each of the others. An empty or missing PATH is reported as
//! unavailable rather than failing the run.
//!
//! Each run: spawn, time to the handshake line on stdout; connect over mTLS (not timed); time
//! one GetProviderSchema; read VmRSS from /proc/<pid>/status (the idle RSS); then
//! GRPCController.Shutdown, and a kill if the process is still there after 2 s. Runs of the
//! providers are interleaved so that load from elsewhere on the machine hits them alike.
//!
//! The client certificate is the one go-plugin makes (a self-signed CA, see
//! `plugin_client::ClientIdentity`). A provider that hand-shakes but then refuses it on the
//! TLS connection could not serve Terraform; its row is then measured with a self-signed
//! non-CA client certificate instead, marked with `*`, and a footnote says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use acceptance_tests::plugin_client::{
    connect, connect_without_certificate, launch, terraform_env, ClientIdentity, Handshake,
    PluginProcess,
};
use tfplugin::wire::plugin::grpc_controller_client::GrpcControllerClient;
use tfplugin::wire::tfplugin6::provider_client::ProviderClient;
use tfplugin::wire::tfplugin6::{diagnostic, get_provider_schema};

const TARGET_HANDSHAKE_MS: f64 = 8.0;
const TARGET_RSS_MB: f64 = 10.0;

struct Provider {
    name: String,
    path: PathBuf,
    samples: Vec<Sample>,
    /// Why the provider has no numbers, when it has none.
    unavailable: Option<String>,
    failures: Vec<String>,
    /// Runs in which the process was still alive 2 s after GRPCController.Shutdown.
    shutdown_ignored: usize,
    notes: Vec<String>,
    client_cert: CertKind,
}

impl Provider {
    /// The name, with `*` when measured with the fallback (non-CA) client certificate.
    fn label(&self) -> String {
        match self.client_cert {
            CertKind::GoPlugin => self.name.clone(),
            CertKind::Leaf => format!("{}*", self.name),
        }
    }
}

/// Which client certificate PLUGIN_CLIENT_CERT carries.
#[derive(Clone, Copy, PartialEq)]
enum CertKind {
    /// go-plugin's: self-signed, `IsCA: true`; what Terraform sends.
    GoPlugin,
    /// Self-signed, not a CA: the fallback for a provider that refuses go-plugin's.
    Leaf,
}

struct Sample {
    handshake: Duration,
    schema: Duration,
    rss_kib: u64,
}

enum Transport {
    /// A server certificate in the handshake line; connected with the PLUGIN_CLIENT_CERT key.
    Mtls,
    /// No certificate in the handshake line: plaintext gRPC, as go-plugin would then use.
    Plaintext,
}

struct RunOutcome {
    sample: Sample,
    transport: Transport,
    handshake: Handshake,
    shutdown_ignored: bool,
}

fn usage() -> String {
    "usage: handshake-bench [--runs N] NAME=PATH [NAME=PATH ...]  (the first NAME is ours)".into()
}

fn parse_args() -> Result<(usize, Vec<Provider>), String> {
    let mut runs = 30;
    let mut providers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            let value = args.next().ok_or_else(usage)?;
            runs = value
                .parse()
                .map_err(|_| format!("--runs {value:?} is not a count"))?;
        } else if let Some(value) = arg.strip_prefix("--runs=") {
            runs = value
                .parse()
                .map_err(|_| format!("--runs {value:?} is not a count"))?;
        } else if arg == "-h" || arg == "--help" {
            return Err(usage());
        } else if let Some((name, path)) = arg.split_once('=') {
            providers.push(Provider {
                name: name.to_string(),
                path: PathBuf::from(path),
                samples: Vec::new(),
                unavailable: None,
                failures: Vec::new(),
                shutdown_ignored: 0,
                notes: Vec::new(),
                client_cert: CertKind::GoPlugin,
            });
        } else {
            return Err(format!("unexpected argument {arg:?}\n{}", usage()));
        }
    }
    if providers.is_empty() || runs == 0 {
        return Err(usage());
    }
    Ok((runs, providers))
}

fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// A failure before the handshake line, or after it (on the connection or a call).
enum RunError {
    Launch(String),
    Rpc(String),
}

impl RunError {
    fn message(&self) -> &str {
        match self {
            RunError::Launch(m) | RunError::Rpc(m) => m,
        }
    }
}

/// A client identity of either kind, with the environment Terraform would give the plugin.
enum Client {
    GoPlugin(ClientIdentity),
    Leaf(ClientIdentity),
}

impl Client {
    fn generate(kind: CertKind) -> Client {
        match kind {
            CertKind::GoPlugin => Client::GoPlugin(ClientIdentity::generate()),
            CertKind::Leaf => Client::Leaf(ClientIdentity::generate_leaf()),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Client::GoPlugin(identity) => terraform_env(identity),
            Client::Leaf(identity) => {
                let mut env = terraform_env(&ClientIdentity::generate());
                for (key, value) in env.iter_mut() {
                    if *key == "PLUGIN_CLIENT_CERT" {
                        value.clone_from(&identity.certificate_pem);
                    }
                }
                env
            }
        }
    }

    async fn connect(
        &self,
        handshake: &Handshake,
    ) -> Result<(tonic::transport::Channel, Transport), String> {
        if handshake.server_certificate_der.is_empty() {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", handshake.address))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| format!("plaintext connect: {e:?}"))?;
            return Ok((channel, Transport::Plaintext));
        }
        let channel = match self {
            Client::GoPlugin(identity) => connect(handshake, identity).await?,
            Client::Leaf(identity) => connect(handshake, identity).await?,
        };
        Ok((channel, Transport::Mtls))
    }
}

async fn get_schema(
    channel: tonic::transport::Channel,
) -> Result<get_provider_schema::Response, String> {
    let response = ProviderClient::new(channel)
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .map_err(|e| format!("GetProviderSchema: {e}"))?
        .into_inner();
    if let Some(error) = response
        .diagnostics
        .iter()
        .find(|d| d.severity == diagnostic::Severity::Error as i32)
    {
        return Err(format!("GetProviderSchema error: {}", error.summary));
    }
    if response.provider.is_none() {
        return Err("GetProviderSchema returned no provider schema".into());
    }
    Ok(response)
}

/// Asks the plugin to stop and waits up to 2 s; false if it had to be killed.
async fn shut_down(plugin: &mut PluginProcess, channel: tonic::transport::Channel) -> bool {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        GrpcControllerClient::new(channel).shutdown(tfplugin::wire::plugin::Empty {}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = plugin.child.try_wait() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false // PluginProcess's Drop kills it.
}

async fn one_run(path: &Path, kind: CertKind) -> Result<RunOutcome, RunError> {
    let client = Client::generate(kind);
    let mut plugin = launch(path, &client.env()).map_err(RunError::Launch)?;
    let handshake = plugin.handshake.clone();
    let (channel, transport) = client.connect(&handshake).await.map_err(RunError::Rpc)?;
    let started = Instant::now();
    get_schema(channel.clone()).await.map_err(RunError::Rpc)?;
    let schema = started.elapsed();
    let rss_kib = vm_rss_kib(plugin.child.id()).map_err(RunError::Rpc)?;
    let shutdown_ignored = !shut_down(&mut plugin, channel).await;
    Ok(RunOutcome {
        sample: Sample {
            handshake: plugin.startup,
            schema,
            rss_kib,
        },
        transport,
        handshake,
        shutdown_ignored,
    })
}

/// Whether GetProviderSchema fails for a client that does not hold PLUGIN_CLIENT_CERT's key:
/// one with another certificate of the same kind, and one with no certificate at all.
async fn probe_strangers(path: &Path, kind: CertKind) -> Result<String, String> {
    let client = Client::generate(kind);
    let plugin = launch(path, &client.env())?;
    if plugin.handshake.server_certificate_der.is_empty() {
        return Ok("no TLS, so any local client gets through".into());
    }
    let stranger = Client::generate(kind);
    let other_refused = match stranger.connect(&plugin.handshake).await {
        Err(_) => true,
        Ok((channel, _)) => get_schema(channel).await.is_err(),
    };
    let anonymous_refused = match connect_without_certificate(&plugin.handshake).await {
        Err(_) => true,
        Ok(channel) => get_schema(channel).await.is_err(),
    };
    let verdict = |refused: bool| if refused { "refused" } else { "NOT refused" };
    Ok(format!(
        "a client with another certificate: {}; a client with no certificate: {}",
        verdict(other_refused),
        verdict(anonymous_refused)
    ))
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stats {
    handshake_median: f64,
    handshake_p90: f64,
    schema_median: f64,
    rss_median: f64,
}

fn stats(samples: &[Sample]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let handshake: Vec<f64> = samples.iter().map(|s| ms(s.handshake)).collect();
    let schema: Vec<f64> = samples.iter().map(|s| ms(s.schema)).collect();
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect();
    Some(Stats {
        handshake_median: percentile(&handshake, 50.0),
        handshake_p90: percentile(&handshake, 90.0),
        schema_median: percentile(&schema, 50.0),
        rss_median: percentile(&rss, 50.0),
    })
}

fn describe_transport(outcome: &RunOutcome) -> String {
    let h = &outcome.handshake;
    let line = format!(
        "{}|{}|{}|{}",
        h.core_version, h.protocol_version, h.network, h.protocol
    );
    match outcome.transport {
        Transport::Mtls => format!(
            "handshake `{line}|<cert>`: AutoMTLS, server certificate in the line, connected with the PLUGIN_CLIENT_CERT key"
        ),
        Transport::Plaintext => format!(
            "handshake `{line}|` with NO server certificate: AutoMTLS not done although PLUGIN_CLIENT_CERT was set; measured over plaintext gRPC"
        ),
    }
}

async fn bench(runs: usize, providers: &mut [Provider]) {
    // One untimed run each first: page cache, and what the handshake looks like.
    for provider in providers.iter_mut() {
        if provider.path.as_os_str().is_empty() {
            provider.unavailable = Some("no binary (its build failed)".into());
            continue;
        }
        if !provider.path.is_file() {
            provider.unavailable = Some(format!("{} not built", provider.path.display()));
            continue;
        }
        match one_run(&provider.path, CertKind::GoPlugin).await {
            Ok(outcome) => provider.notes.push(describe_transport(&outcome)),
            Err(RunError::Launch(error)) => provider.unavailable = Some(error),
            Err(RunError::Rpc(refused)) => match one_run(&provider.path, CertKind::Leaf).await {
                Ok(outcome) => {
                    provider.client_cert = CertKind::Leaf;
                    provider.notes.push(format!(
                        "handed go-plugin's client certificate (self-signed, IsCA=true, as Terraform sends it), \
                         it printed its handshake line but then failed: {refused}. Under Terraform its gRPC \
                         calls would fail the same way. Its row (*) is measured with a self-signed NON-CA \
                         client certificate in PLUGIN_CLIENT_CERT instead, otherwise as Terraform runs it"
                    ));
                    provider.notes.push(describe_transport(&outcome));
                }
                Err(error) => {
                    provider.unavailable = Some(format!(
                        "go-plugin's client certificate: {refused}; a non-CA one: {}",
                        error.message()
                    ))
                }
            },
        }
    }
    for _ in 0..runs {
        for provider in providers.iter_mut().filter(|p| p.unavailable.is_none()) {
            match one_run(&provider.path, provider.client_cert).await {
                Ok(outcome) => {
                    provider.shutdown_ignored += usize::from(outcome.shutdown_ignored);
                    provider.samples.push(outcome.sample);
                }
                Err(error) => provider.failures.push(error.message().to_string()),
            }
        }
    }
    for provider in providers.iter_mut().filter(|p| p.unavailable.is_none()) {
        match probe_strangers(&provider.path, provider.client_cert).await {
            Ok(note) => provider.notes.push(note),
            Err(error) => provider
                .notes
                .push(format!("stranger-certificate probe failed: {error}")),
        }
        if provider.shutdown_ignored > 0 {
            provider.notes.push(format!(
                "{} of {} runs still alive 2 s after GRPCController.Shutdown (killed)",
                provider.shutdown_ignored,
                provider.samples.len()
            ));
        }
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "n/a".into()
    }
}

/// Prints the table, the targets and the footnotes. Missing a target is reported, not fatal.
fn report(runs: usize, providers: &[Provider]) {
    println!("### Protocol foundation: handshake, GetProviderSchema, idle RSS ({runs} runs each, interleaved)");
    println!();
    println!("| provider | handshake median (ms) | handshake p90 (ms) | GetProviderSchema median (ms) | idle RSS median (MB) | runs ok |");
    println!("|---|---:|---:|---:|---:|---:|");
    let all: Vec<Option<Stats>> = providers.iter().map(|p| stats(&p.samples)).collect();
    for (provider, stats) in providers.iter().zip(&all) {
        match stats {
            Some(s) => println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.1} | {}/{runs} |",
                provider.label(),
                s.handshake_median,
                s.handshake_p90,
                s.schema_median,
                s.rss_median,
                provider.samples.len()
            ),
            None => println!(
                "| {} | unavailable | unavailable | unavailable | unavailable | 0/{runs} |",
                provider.label()
            ),
        }
    }
    let ours = &providers[0];
    if let Some(o) = &all[0] {
        for (other, theirs) in providers.iter().zip(&all).skip(1) {
            match theirs {
                Some(t) => println!(
                    "| ratio {}/{} | {} | {} | {} | {} | |",
                    ours.label(),
                    other.label(),
                    ratio(o.handshake_median, t.handshake_median),
                    ratio(o.handshake_p90, t.handshake_p90),
                    ratio(o.schema_median, t.schema_median),
                    ratio(o.rss_median, t.rss_median)
                ),
                None => println!(
                    "| ratio {}/{} | n/a | n/a | n/a | n/a | |",
                    ours.label(),
                    other.label()
                ),
            }
        }
    }
    println!();
    match &all[0] {
        Some(o) => {
            let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
            let handshake_ok = o.handshake_median < TARGET_HANDSHAKE_MS;
            let rss_ok = o.rss_median < TARGET_RSS_MB;
            println!(
                "Targets ({}): handshake median {:.2} ms < {TARGET_HANDSHAKE_MS} ms: {}; idle RSS median {:.1} MB < {TARGET_RSS_MB} MB: {}",
                ours.label(),
                o.handshake_median,
                verdict(handshake_ok),
                o.rss_median,
                verdict(rss_ok)
            );
        }
        None => println!("Targets ({}): not measured", ours.label()),
    }
    println!();
    println!("Handshake = spawn to the go-plugin handshake line on stdout, with TF_PLUGIN_MAGIC_COOKIE, PLUGIN_PROTOCOL_VERSIONS=5,6 and PLUGIN_CLIENT_CERT set as Terraform sets them. GetProviderSchema = one call on an established mTLS channel. Idle RSS = VmRSS right after that call. MB = 2^20 bytes.");
    for provider in providers {
        if let Some(reason) = &provider.unavailable {
            println!("- {}: unavailable: {reason}", provider.label());
        }
        for note in &provider.notes {
            println!("- {}: {note}", provider.label());
        }
        if !provider.failures.is_empty() {
            println!(
                "- {}: {} failed runs, first: {}",
                provider.label(),
                provider.failures.len(),
                provider.failures[0]
            );
        }
    }
}

fn main() -> ExitCode {
    let (runs, mut providers) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(runs, &mut providers));
    report(runs, &providers);
    if providers[0].samples.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
