//! Serving a router over plain HTTP or TLS, with the TLS configuration reloaded when its
//! files change (checked every few seconds) or on SIGHUP. A reload swaps the configuration
//! for new handshakes only: connections and requests in flight keep theirs, so rotation
//! drops nothing. A reload that fails (a key that does not match the new certificate while
//! the files are half rotated) keeps the old configuration and is logged; the next change
//! is tried again.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

use crate::first_read::FirstReadWithin;
use crate::web_config::WebConfig;
use crate::{server_config, TlsError};

/// How often the files are compared with what was loaded.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long requests in flight get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(30);

/// What a listener serves: plain HTTP, or TLS from a web config file.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP.
    Plain,
    /// TLS, reloadable.
    Tls(Arc<ReloadableTls>),
}

impl Transport {
    /// Plain without a web config file, or one without `tls_server_config`; TLS otherwise.
    /// Every file is read now, so a bad one stops the start with its name.
    pub fn from_web_config(path: Option<&Path>) -> Result<Transport, TlsError> {
        let Some(path) = path else {
            return Ok(Transport::Plain);
        };
        let (config, seen) = load(path)?;
        Ok(match config {
            None => Transport::Plain,
            Some(config) => Transport::Tls(Arc::new(ReloadableTls {
                web_config: path.to_owned(),
                rustls: RustlsConfig::from_config(Arc::new(config)),
                seen: std::sync::Mutex::new(seen),
            })),
        })
    }

    /// Refuses plain HTTP on an address other machines can reach unless `allowed` (the
    /// configuration says so explicitly). Loopback stays allowed: the embedded default
    /// listens there.
    pub fn check_plain(
        &self,
        address: SocketAddr,
        allowed: bool,
        key: &str,
    ) -> Result<(), TlsError> {
        if matches!(self, Transport::Plain) && !address.ip().is_loopback() && !allowed {
            return Err(TlsError::Config(format!(
                "refusing plain HTTP on {address}: give a web config file with tls_server_config, or set {key} = true to accept it"
            )));
        }
        Ok(())
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }
}

/// A TLS configuration and the files it came from.
pub struct ReloadableTls {
    web_config: PathBuf,
    rustls: RustlsConfig,
    /// The contents of every file as last loaded (or last tried).
    seen: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Reads the web config file and the files it names; returns the server configuration (or
/// `None` for plain HTTP) and the contents read, for change detection.
fn load(path: &Path) -> Result<(Option<rustls::ServerConfig>, Vec<Vec<u8>>), TlsError> {
    let web = WebConfig::read(path)?;
    let mut files = vec![path.to_owned()];
    let Some(settings) = &web.tls_server_config else {
        return Ok((None, contents(&files)));
    };
    files.extend([settings.cert_file.clone(), settings.key_file.clone()]);
    files.extend(settings.client_ca_file.clone());
    let seen = contents(&files);
    Ok((Some(server_config::build(settings)?), seen))
}

fn contents(files: &[PathBuf]) -> Vec<Vec<u8>> {
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

impl ReloadableTls {
    /// Reloads when any file changed (or always, when `force`). Returns whether a new
    /// configuration is in use.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let current = {
            let web = WebConfig::read(&self.web_config)?;
            let mut files = vec![self.web_config.clone()];
            if let Some(settings) = &web.tls_server_config {
                files.extend([settings.cert_file.clone(), settings.key_file.clone()]);
                files.extend(settings.client_ca_file.clone());
            }
            contents(&files)
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !force && *seen == current {
                return Ok(false);
            }
            *seen = current;
        }
        match load(&self.web_config)? {
            (Some(config), _) => {
                self.rustls.reload_from_config(Arc::new(config));
                Ok(true)
            }
            (None, _) => Err(TlsError::Config(format!(
                "{} no longer has tls_server_config; a running listener stays on TLS (restart to change)",
                self.web_config.display()
            ))),
        }
    }

    /// Checks for changes every few seconds and reloads on SIGHUP, until the process ends.
    fn spawn_watcher(self: &Arc<Self>) {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let force = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(signal) => signal.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                let tls = tls.clone();
                match tokio::task::spawn_blocking(move || tls.reload(force)).await {
                    Ok(Ok(true)) => tracing::info!("TLS certificate and settings reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => {
                        tracing::error!(%error, "TLS reload failed; serving with the previous configuration")
                    }
                    Err(error) => tracing::error!(%error, "TLS reload panicked"),
                }
            }
        });
    }
}

/// What keeps slow, idle and too many clients from exhausting a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client must send a request's whole header within this (slowloris), and an idle
    /// keep-alive connection waiting for its next request is closed after it.
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this (slow bodies).
    pub body_timeout: Duration,
    /// A TLS handshake must end within this.
    pub handshake_timeout: Duration,
    /// Connections served at once; beyond, new ones wait in the kernel's backlog while the
    /// established ones are served.
    pub max_connections: usize,
    /// On shutdown, requests in flight get this long; then the listener returns anyway.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain: DRAIN,
        }
    }
}

/// Serves `app` on `listener` with [`Limits::default`] until `shutdown` completes; see
/// [`serve_with`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, transport, shutdown, Limits::default()).await
}

/// hyper's own limits on header fields, above which it answers a bare 431 (HTTP/1.1) or
/// resets the stream (HTTP/2): set above what applications limit themselves to (the
/// remediator: 100 fields, 8 KiB), so that their limit, answered with a body, comes first.
const HYPER_MAX_HEADER_FIELDS: usize = 256;
/// See [`HYPER_MAX_HEADER_FIELDS`]; counted as HTTP/2 does (name, value, 32 per field).
const HYPER_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Serves `app` on `listener` (HTTP/1.1 and HTTP/2, plain or TLS) until `shutdown`
/// completes, then stops accepting and lets requests in flight finish for at most
/// `limits.drain`. Handlers can extract the peer's address (`ConnectInfo<SocketAddr>`).
/// Accepted sockets get `TCP_NODELAY`: without it a TLS handshake's small writes meet the
/// peer's delayed ACK and a new connection now and then waits 40 ms (measured in
/// bench/tls_scrape.sh). Written on hyper-util rather than `axum::serve`, which sets no
/// header timeout and no connection limit.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let app = app
        .layer(axum::middleware::from_fn(
            crate::refused_body::drain_refused_bodies,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ));
    if let Transport::Tls(tls) = &transport {
        tls.spawn_watcher();
    }
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(HYPER_MAX_HEADER_FIELDS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_read_timeout)
        .max_header_list_size(HYPER_MAX_HEADER_LIST_BYTES);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: established connections go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = match &transport {
            Transport::Plain => None,
            Transport::Tls(tls) => Some(tokio_rustls::TlsAcceptor::from(tls.rustls.get_inner())),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let served = match tls {
                None => {
                    let stream = FirstReadWithin::new(stream, limits.header_read_timeout);
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let stream = FirstReadWithin::new(stream, limits.header_read_timeout);
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s; stopping anyway",
            limits.drain.as_secs()
        );
    }
    Ok(())
}
