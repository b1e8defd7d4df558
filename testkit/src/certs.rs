//! Throwaway certificate authorities and certificates for TLS tests (rcgen), written as PEM
//! files into a folder. Leaf certificates work as server and as client certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority; its certificate is in `cert_file`.
pub struct TestCa {
    /// The CA certificate (PEM).
    pub cert_file: PathBuf,
    cert: Certificate,
    key: KeyPair,
    dir: PathBuf,
}

/// A leaf certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `<dir>/<name>.crt`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        TestCa {
            cert_file,
            cert,
            key,
            dir: dir.to_owned(),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), written to
    /// `<dir>/<file_stem>.crt` and `.key`.
    pub fn issue(&self, file_stem: &str, names: &[&str]) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert_file: self.dir.join(format!("{file_stem}.crt")),
            key_file: self.dir.join(format!("{file_stem}.key")),
        };
        std::fs::write(&issued.cert_file, cert.pem()).unwrap();
        std::fs::write(&issued.key_file, key.serialize_pem()).unwrap();
        issued
    }
}
