//! rustls client configurations, for reqwest's `use_preconfigured_tls`: trust a given CA
//! (or the system's roots) and optionally present a client certificate (mutual TLS). The
//! server's certificate is always checked against the host name of the URL.

use std::path::Path;

use rustls::ClientConfig;

use crate::{pem_files, server_config::provider, TlsError};

/// Trusts the CAs in `ca_file`; presents the certificate and key when given.
pub fn build(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let roots = pem_files::roots(ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_file, key_file)) => {
            let certs = pem_files::certificates(cert_file)?;
            let key = pem_files::private_key(key_file)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|error| TlsError::Invalid {
                    path: key_file.to_owned(),
                    reason: format!("does not go with {}: {error}", cert_file.display()),
                })
        }
    }
}
