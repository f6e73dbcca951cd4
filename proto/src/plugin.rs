//! Serving a provider the way Terraform launches plugins (HashiCorp go-plugin): magic
//! cookie, protocol negotiation, AutoMTLS, the handshake line on stdout, the health,
//! controller and stdio services, and `--debug` for attaching a debugger.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::provider::Provider;
use crate::server::ProviderService;
use crate::wire::{plugin as go_plugin, tfplugin6};

/// Terraform's magic cookie: set in the environment of every provider it starts.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version, first field of the handshake line.
const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol this server speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// go-plugin allows messages up to 2 GiB; Terraform sends whole states.
const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "this is a Terraform provider plugin, started by Terraform, not by hand: declare azure-mig/mig in required_providers and run `terraform init`. To attach a debugger, run it with --debug"
    )]
    NotStartedByTerraform,
    #[error("Terraform offers plugin protocol versions {offered}, this provider speaks only {PROTOCOL_VERSION}: use Terraform 1.0 or later, or OpenTofu")]
    NoCommonProtocol { offered: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on 127.0.0.1 (ports {min}-{max}): {source}")]
    Listen {
        min: u16,
        max: u16,
        source: std::io::Error,
    },
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot write the handshake: {0}")]
    Handshake(std::io::Error),
}

/// Serves `provider` until Terraform shuts it down. With `--debug` on the command line,
/// serves without Terraform and prints the `TF_REATTACH_PROVIDERS` value to use.
pub async fn serve<P: Provider>(provider: Arc<P>) -> Result<(), ServeError> {
    let debug = std::env::args()
        .skip(1)
        .any(|arg| arg == "--debug" || arg == "-debug");
    if debug {
        return serve_debug(provider).await;
    }
    if std::env::var(MAGIC_COOKIE_KEY).ok().as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NotStartedByTerraform);
    }
    negotiate_protocol(std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok().as_deref())?;
    let listener = listen(port_range()).await?;
    let address = listener.local_addr().map_err(ServeError::Handshake)?;
    let client_certificate = std::env::var("PLUGIN_CLIENT_CERT")
        .ok()
        .filter(|pem| !pem.trim().is_empty());
    let (shutdown, shutdown_requested) = watch::channel(false);
    let handshake_certificate;
    let incoming = match client_certificate {
        Some(pem) => {
            let tls = crate::tls::server_config(&pem)?;
            handshake_certificate =
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(&tls.certificate_der);
            accept_tls(listener, tls.config)
        }
        None => {
            handshake_certificate = String::new();
            accept_plain(listener)
        }
    };
    write_handshake(&format!(
        "{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{address}|grpc|{handshake_certificate}"
    ))?;
    tracing::debug!(%address, "serving tfplugin6");
    run(provider, incoming, shutdown, shutdown_requested, false).await
}

async fn serve_debug<P: Provider>(provider: Arc<P>) -> Result<(), ServeError> {
    let listener = listen((0, 0)).await?;
    let address = listener.local_addr().map_err(ServeError::Handshake)?;
    let reattach = serde_json::json!({
        format!("registry.terraform.io/azure-mig/{}", provider.type_name()): {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": {"Network": "tcp", "String": address.to_string()},
        }
    });
    println!(
        "Provider started in debug mode. To attach Terraform, set in its environment:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n\nCtrl-C stops the provider."
    );
    let (shutdown, shutdown_requested) = watch::channel(false);
    run(
        provider,
        accept_plain(listener),
        shutdown,
        shutdown_requested,
        true,
    )
    .await
}

/// Picks protocol 6 from what Terraform offers (`PLUGIN_PROTOCOL_VERSIONS=5,6`).
pub fn negotiate_protocol(offered: Option<&str>) -> Result<u32, ServeError> {
    let Some(offered) = offered.filter(|s| !s.trim().is_empty()) else {
        // Older go-plugin clients do not say; they use the handshake's version.
        return Ok(PROTOCOL_VERSION);
    };
    let speaks_ours = offered
        .split(',')
        .any(|version| version.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
    if speaks_ours {
        Ok(PROTOCOL_VERSION)
    } else {
        Err(ServeError::NoCommonProtocol {
            offered: offered.to_string(),
        })
    }
}

fn port_range() -> (u16, u16) {
    let port = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u16>().ok())
    };
    match (port("PLUGIN_MIN_PORT"), port("PLUGIN_MAX_PORT")) {
        (Some(min), Some(max)) if min <= max && min > 0 => (min, max),
        _ => (0, 0),
    }
}

async fn listen((min, max): (u16, u16)) -> Result<TcpListener, ServeError> {
    let mut last_error = None;
    for port in min..=max {
        match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(ServeError::Listen {
        min,
        max,
        source: last_error.unwrap_or_else(|| std::io::Error::other("empty port range")),
    })
}

fn write_handshake(line: &str) -> Result<(), ServeError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|_| stdout.flush())
        .map_err(ServeError::Handshake)
}

/// A connection, plain or TLS, as tonic wants it.
pub struct Connection {
    inner: Pin<Box<dyn Io>>,
}

trait Io: AsyncRead + AsyncWrite + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + 'static> Io for T {}

impl Connected for Connection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

type Incoming = Pin<Box<dyn Stream<Item = Result<Connection, std::io::Error>> + Send>>;

fn accept_plain(listener: TcpListener) -> Incoming {
    Box::pin(futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            Connection {
                inner: Box::pin(stream),
            }
        });
        Some((accepted, listener))
    }))
}

/// TLS handshakes run off the accept loop, so one slow client cannot hold up another.
fn accept_tls(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Incoming {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Connection, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            let (stream, peer): (TcpStream, SocketAddr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let _ = sender
                            .send(Ok(Connection {
                                inner: Box::pin(tls),
                            }))
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(%peer, %error, "TLS handshake with Terraform failed")
                    }
                }
            });
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

struct Controller {
    shutdown: watch::Sender<bool>,
}

#[tonic::async_trait]
impl go_plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<go_plugin::Empty>,
    ) -> Result<Response<go_plugin::Empty>, Status> {
        tracing::debug!("Terraform asked the plugin to shut down");
        let _ = self.shutdown.send(true);
        Ok(Response::new(go_plugin::Empty {}))
    }
}

struct Stdio {
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl go_plugin::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream =
        Pin<Box<dyn Stream<Item = Result<go_plugin::StdioData, Status>> + Send>>;

    /// Logs go to stderr directly (Terraform reads it); the stream stays open, empty, until
    /// shutdown, as go-plugin expects.
    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        let mut shutdown = self.shutdown.clone();
        let ended = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        Ok(Response::new(Box::pin(
            futures::stream::once(ended).filter_map(|_| async { None }),
        )))
    }
}

use futures::StreamExt;

async fn run<P: Provider>(
    provider: Arc<P>,
    incoming: Incoming,
    shutdown: watch::Sender<bool>,
    mut shutdown_requested: watch::Receiver<bool>,
    exit_on_interrupt: bool,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let provider_service =
        tfplugin6::provider_server::ProviderServer::new(ProviderService::new(provider))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let controller = go_plugin::grpc_controller_server::GrpcControllerServer::new(Controller {
        shutdown: shutdown.clone(),
    });
    let stdio = go_plugin::grpc_stdio_server::GrpcStdioServer::new(Stdio {
        shutdown: shutdown.subscribe(),
    });
    watch_signals(shutdown.clone(), exit_on_interrupt);
    let stopped = async move {
        let _ = shutdown_requested.wait_for(|stop| *stop).await;
    };
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(controller)
        .add_service(stdio)
        .add_service(provider_service)
        .serve_with_incoming_shutdown(incoming, stopped)
        .await?;
    Ok(())
}

/// Terraform handles Ctrl-C itself and tells the provider to stop over gRPC, so SIGINT is
/// ignored as go-plugin plugins ignore it; SIGTERM ends the process.
fn watch_signals(shutdown: watch::Sender<bool>, exit_on_interrupt: bool) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut interrupt), Ok(mut terminate)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {
                        if exit_on_interrupt {
                            let _ = shutdown.send(true);
                            return;
                        }
                        tracing::debug!("ignoring SIGINT: Terraform stops the provider over gRPC");
                    }
                    _ = terminate.recv() => {
                        let _ = shutdown.send(true);
                        return;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = exit_on_interrupt;
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = shutdown.send(true);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_six_is_picked_from_what_terraform_offers() {
        assert_eq!(negotiate_protocol(Some("5,6")).unwrap(), 6);
        assert_eq!(negotiate_protocol(Some("6")).unwrap(), 6);
        assert_eq!(negotiate_protocol(None).unwrap(), 6);
        let error = negotiate_protocol(Some("4,5")).unwrap_err().to_string();
        assert!(error.contains("4,5") && error.contains('6'), "{error}");
    }
}
