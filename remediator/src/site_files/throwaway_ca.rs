//! A certificate authority made on the spot and the certificates the example web
//! configurations name, for trying mutual TLS without a site CA (rcgen, ECDSA P-256).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::{CertificateNames, SiteFilesError};

/// One PEM file to write under `tls/`.
pub struct PemFile {
    /// Its name under `tls/`.
    pub name: String,
    /// Its content.
    pub pem: String,
    /// A private key (mode 0600) rather than a certificate.
    pub private: bool,
    /// What it is and where it goes.
    pub purpose: String,
}

fn failed(error: rcgen::Error) -> SiteFilesError {
    SiteFilesError::Certificate(error.to_string())
}

/// The CA and every certificate, in memory: nothing is written until all are made.
pub fn issue(names: &CertificateNames) -> Result<Vec<PemFile>, SiteFilesError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "koji-runbook throwaway CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca = ca_params.self_signed(&ca_key).map_err(failed)?;

    let mut files = vec![
        PemFile {
            name: "ca.crt".into(),
            pem: ca.pem(),
            private: false,
            purpose: "the throwaway CA: client_ca_file of web-config-agent.yml and \
                      web-config-exporter.yml, [forwarding.tls] ca_file, and the ca_file \
                      of Alertmanager's and Prometheus' tls_config and of --ca-file"
                .into(),
        },
        PemFile {
            name: "ca.key".into(),
            pem: ca_key.serialize_pem(),
            private: true,
            purpose: "the CA's key, only to issue more certificates: keep it off every server"
                .into(),
        },
    ];
    let leaves: [(&str, &[String], &[ExtendedKeyUsagePurpose], &str); 5] = [
        (
            "remediator",
            &names.central,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            "the central instance's HTTPS listener (web-config-central.yml)",
        ),
        (
            "central",
            &names.central,
            &[ExtendedKeyUsagePurpose::ClientAuth],
            "the central instance's client certificate to its agents ([forwarding.tls] \
             cert_file, key_file); agents allow its name in client_allowed_sans",
        ),
        (
            "agent",
            &names.agents,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            "the agents' HTTPS listener (web-config-agent.yml; copy to each agent host)",
        ),
        (
            "exporter",
            &names.exporters,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            "the exporters' HTTPS listener (web-config-exporter.yml under /etc/koji-exporter; \
             copy to each exporter host)",
        ),
        (
            "prometheus",
            &names.prometheus,
            &[ExtendedKeyUsagePurpose::ClientAuth],
            "Prometheus' client certificate for scraping the exporters (scrape_configs \
             tls_config cert_file, key_file); exporters allow its name in client_allowed_sans",
        ),
    ];
    for (stem, leaf_names, usages, purpose) in leaves {
        let mut params = CertificateParams::new(leaf_names.to_vec()).map_err(failed)?;
        params.distinguished_name.push(
            DnType::CommonName,
            leaf_names.first().map_or(stem, String::as_str),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(failed)?;
        files.push(PemFile {
            name: format!("{stem}.crt"),
            pem: cert.pem(),
            private: false,
            purpose: format!("{purpose}; for {}", leaf_names.join(", ")),
        });
        files.push(PemFile {
            name: format!("{stem}.key"),
            pem: key.serialize_pem(),
            private: true,
            purpose: format!("the key of {stem}.crt"),
        });
    }
    Ok(files)
}
