//! TLS for koji-exporter's and koji-remediator's listeners and for the remediator's
//! requests to its agents, with rustls (ring) and no OpenSSL. Listeners take a web config
//! file in the Prometheus exporter toolkit's format (`--web.config.file`, as node_exporter),
//! reload it and the certificate files on change or SIGHUP without dropping requests, and
//! can require client certificates from a CA, pinned to subject alternative names.

pub mod allowed_names;
pub mod client_config;
pub mod first_read;
pub mod pem_files;
pub mod refused_body;
pub mod serve;
pub mod server_config;
pub mod web_config;

use std::path::PathBuf;

pub use serve::{serve, serve_with, Limits, Transport};
pub use web_config::WebConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key where there is one.
        reason: String,
    },
    /// The settings do not make a TLS configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}
