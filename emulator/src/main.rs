//! `azure-emulator`: ARM, Entra ID, Microsoft Graph and the managed-identity
//! endpoints on one HTTPS listener. See README.md.

mod admin;
mod app;
mod arm;
mod auth;
mod authz;
mod generate;
mod graph;
mod hierarchy;
mod http;
mod jwt;
mod model;
mod realism;
mod scenario;
mod server;
mod tls;
mod util;

use std::path::{Path, PathBuf};

/// glibc's allocator spent a third of the emulator's CPU in `_int_malloc` and
/// `malloc_consolidate` serving large listings (every page renders and frees thousands of
/// small maps next to a large response buffer), on cores it shares with the provider and
/// Terraform in every benchmark; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::app::App;
use crate::model::World;
use crate::scenario::{build_world, Scenario};

struct Args {
    listen: String,
    graph_listen: Option<String>,
    ready_file: Option<PathBuf>,
    scenario: Option<PathBuf>,
    profile: String,
    state_file: Option<PathBuf>,
}

const USAGE: &str = "usage: azure-emulator --listen 127.0.0.1:0 [--graph-listen 127.0.0.1:0] --ready-file PATH [--scenario FILE] [--profile fast|realistic] [--state-file FILE]
       azure-emulator generate --vms N --regions R [--scale-sets M] [--subscriptions S] [--management-groups G] [--seed X] --out FILE";

fn parse_args(argv: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:0".into(),
        graph_listen: None,
        ready_file: None,
        scenario: None,
        profile: "fast".into(),
        state_file: None,
    };
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = || -> anyhow::Result<String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            argv.get(i)
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match name {
            "--listen" => a.listen = value()?,
            "--graph-listen" => a.graph_listen = Some(value()?),
            "--ready-file" => a.ready_file = Some(PathBuf::from(value()?)),
            "--scenario" => a.scenario = Some(PathBuf::from(value()?)),
            "--profile" => {
                a.profile = value()?;
                if !matches!(a.profile.as_str(), "fast" | "realistic") {
                    bail!("--profile must be fast or realistic");
                }
            }
            "--state-file" => a.state_file = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
        i += 1;
    }
    Ok(a)
}

/// The ready-file document.
pub fn ready_json(app: &App) -> Value {
    let world = app.world.read();
    let ep = app.arm_endpoint();
    json!({
        "arm_endpoint": ep,
        "authority_host": ep,
        "graph_endpoint": ep,
        // Graph on its own listener and host name (what `/metadata/endpoints` announces as
        // `microsoftGraphResourceId` and `graph`).
        "graph_host_endpoint": app.graph_endpoint(),
        "metadata_host": app.host,
        "ca_cert_file": app.ca_file,
        "tenant_id": world.tenant_id,
        "subscription_ids": world.subscriptions.keys().cloned().collect::<Vec<_>>(),
        "client_id": world.client.app_id,
        "client_secret": world.client.secret,
        "managed_identity_endpoint": format!("{}/msi/token", app.base),
        "managed_identity_header": app.msi_secret,
    })
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

fn load_world(args: &Args) -> anyhow::Result<World> {
    if let Some(state) = &args.state_file {
        if state.exists() {
            let bytes =
                std::fs::read(state).with_context(|| format!("read {}", state.display()))?;
            match serde_json::from_slice::<World>(&bytes) {
                Ok(w) => {
                    tracing::info!("state loaded from {}", state.display());
                    return Ok(w);
                }
                Err(e) => tracing::warn!(
                    "state file {} unreadable ({e}); starting fresh",
                    state.display()
                ),
            }
        }
    }
    let sc: Scenario = match &args.scenario {
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("read scenario {}", p.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parse scenario {}", p.display()))?
        }
        None => Scenario::default(),
    };
    Ok(build_world(&sc, &args.profile, None))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AZURE_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if argv.first().map(|s| s.as_str()) == Some("generate") {
        if let Err(e) = generate::run(&argv[1..]) {
            eprintln!("azure-emulator generate: {e:#}");
            std::process::exit(2);
        }
        return;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("azure-emulator: {e:#}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("azure-emulator: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let world = load_world(&args)?;
    // With a state file the TLS identity is kept beside it: a restart presents the same one.
    let tls = match &args.state_file {
        Some(state) => tls::load_or_generate(&state.with_extension("tls.json"))?,
        None => tls::generate()?,
    };
    let dir = match &args.ready_file {
        Some(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".")),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&dir).ok();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let ca_file = dir.join("ca.pem");
    write_atomically(&ca_file, tls.ca_pem.as_bytes())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let base = format!("https://{host}");
    // Graph's own listener: same interface, another port, and the host name `localhost`
    // when on loopback, so no URL of one is a prefix of the other's.
    let graph_listen = args
        .graph_listen
        .clone()
        .unwrap_or_else(|| format!("{}:0", addr.ip()));
    let graph_listener = tokio::net::TcpListener::bind(&graph_listen)
        .await
        .with_context(|| format!("bind {graph_listen}"))?;
    let graph_addr = graph_listener.local_addr()?;
    let graph_host = if graph_addr.ip().is_loopback() || graph_addr.ip().is_unspecified() {
        format!("localhost:{}", graph_addr.port())
    } else {
        graph_addr.to_string()
    };
    let profile = world.profile.clone();
    let app = Arc::new(App::new(
        world,
        base.clone(),
        host,
        format!("https://{graph_host}"),
        &profile,
        ca_file.display().to_string(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::serve(
        app.clone(),
        listener,
        tls.config.clone(),
        stop_rx.clone(),
        server::Listener::Main,
    ));
    let graph_server = tokio::spawn(server::serve(
        app.clone(),
        graph_listener,
        tls.config.clone(),
        stop_rx,
        server::Listener::Graph,
    ));
    if let Some(ready) = &args.ready_file {
        let doc = serde_json::to_vec_pretty(&ready_json(&app))?;
        write_atomically(ready, &doc)?;
    }
    tracing::info!(
        "azure-emulator listening on {base}/ and Graph on {} (profile {profile})",
        app.graph_endpoint()
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), graph_server).await;
    if let Some(state) = &args.state_file {
        let world = app.world.read();
        let bytes = serde_json::to_vec(&*world)?;
        write_atomically(state, &bytes)?;
        tracing::info!("state saved to {}", state.display());
    }
    Ok(())
}
