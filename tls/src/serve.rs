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

use axum::serve::ListenerExt;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

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

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (up to 30 s). Handlers can extract the peer's address (`ConnectInfo<SocketAddr>`).
/// Accepted sockets get `TCP_NODELAY`: without it a TLS handshake's small writes meet the
/// peer's delayed ACK and a new connection now and then waits 40 ms (measured in
/// bench/tls_scrape.sh).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    match transport {
        Transport::Plain => {
            let listener = listener.tap_io(|stream| {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
            });
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Transport::Tls(tls) => {
            tls.spawn_watcher();
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(DRAIN));
            });
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.rustls.clone())
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            axum_server::from_tcp(listener.into_std()?)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(service)
                .await
        }
    }
}
