//! A rustls server configuration from `tls_server_config` (ring as the crypto provider,
//! no OpenSSL).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::allowed_names::AllowedNames;
use crate::web_config::{ClientAuth, MinVersion, TlsServerSettings};
use crate::{pem_files, TlsError};

/// The crypto provider both sides use.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration, reading every file it names.
pub fn build(settings: &TlsServerSettings) -> Result<ServerConfig, TlsError> {
    let certs = pem_files::certificates(&settings.cert_file)?;
    let key = pem_files::private_key(&settings.key_file)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        MinVersion::TLS12 => rustls::DEFAULT_VERSIONS,
        MinVersion::TLS13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder = match (settings.client_auth_type, &settings.client_ca_file) {
        (ClientAuth::NoClientCert, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca_file)) => {
            let roots = Arc::new(pem_files::roots(ca_file)?);
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if mode == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
            if settings.client_allowed_sans.is_empty() {
                builder.with_client_cert_verifier(verifier)
            } else {
                let pinned = AllowedNames::new(verifier, &settings.client_allowed_sans)
                    .map_err(TlsError::Config)?;
                builder.with_client_cert_verifier(Arc::new(pinned))
            }
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Invalid {
            path: settings.key_file.clone(),
            reason: format!("does not go with {}: {error}", settings.cert_file.display()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
