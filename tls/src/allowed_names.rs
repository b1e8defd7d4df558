//! Pins client certificates to subject alternative names (`client_allowed_sans`): the
//! chain is verified against the CA first, then the leaf must be valid for one of the
//! names. A certificate from the right CA issued to another machine is refused during the
//! handshake, before any request is read.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// A verifier that adds the name check to a chain verifier.
#[derive(Debug)]
pub struct AllowedNames {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<ServerName<'static>>,
}

impl AllowedNames {
    /// Wraps `inner`; `names` are DNS names or IP addresses.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, names: &[String]) -> Result<Self, String> {
        let names = names
            .iter()
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|_| format!("{name:?} is neither a DNS name nor an IP address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowedNames { inner, names })
    }
}

impl ClientCertVerifier for AllowedNames {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let allowed = self
            .names
            .iter()
            .any(|name| leaf.verify_is_valid_for_subject_name(name).is_ok());
        if allowed {
            Ok(verified)
        } else {
            tracing::warn!("refused a client certificate issued to a name not allowed");
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
