//! The cluster's credentials, made before any machine exists: the Kubernetes CA, the kubeadm
//! join token and certificate key, the CA hash joining nodes check, and an admin kubeconfig.
//! Kept in the state directory (0600) and reused by every later run, so a resumed install
//! joins the same cluster.

use rand::Rng;
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use stratus_pki::{Ca, KeyedCertificate};

use crate::config::Secret;

/// Everything secret a cluster is born with.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pki {
    /// PEM CA certificate.
    pub ca_certificate: String,
    /// PEM CA key.
    pub ca_key: String,
    /// kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub join_token: String,
    /// kubeadm certificate key (64 hex characters) for control-plane joins.
    pub certificate_key: String,
    /// PEM client certificate of `kubernetes-admin` (group `system:masters`).
    pub admin_certificate: String,
    /// PEM key of the admin certificate.
    pub admin_key: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki(<redacted>)")
    }
}

/// A PKI that could not be made, or a stored one that is not what bootstrap wrote.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating failed.
    #[error("generating the cluster credentials: {0}")]
    Generate(#[from] stratus_pki::PkiError),
    /// A stored PKI is damaged: the field and what was expected.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(field: &str, expected: &str) -> PkiError {
    PkiError::Invalid(format!("{field} is not {expected}"))
}

/// The DER of the one PEM certificate in `pem`.
fn certificate_der(field: &str, pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| invalid(field, "a PEM certificate (-----BEGIN CERTIFICATE-----)"))?;
    pem.parse_x509().map_err(|_| invalid(field, "an X.509 certificate"))?;
    Ok(pem.contents)
}

fn random_string(rng: &mut impl Rng, alphabet: &[u8], length: usize) -> String {
    (0..length).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

impl Pki {
    /// A new CA, token, certificate key and admin certificate for cluster `name`.
    pub fn generate(name: &str) -> Result<Pki, PkiError> {
        let mut rng = rand::rng();
        let ca = Ca::generate(&format!("kubernetes ({name})"))?;
        let admin = ca.issue_client("kubernetes-admin", Some("system:masters"), 365)?;
        let lower = b"abcdefghijklmnopqrstuvwxyz0123456789";
        Ok(Pki {
            ca_certificate: ca.0.certificate,
            ca_key: ca.0.key,
            join_token: format!("{}.{}", random_string(&mut rng, lower, 6), random_string(&mut rng, lower, 16)),
            certificate_key: random_string(&mut rng, b"0123456789abcdef", 64),
            admin_certificate: admin.certificate,
            admin_key: admin.key,
        })
    }

    /// `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo, as `kubeadm join
    /// --discovery-token-ca-cert-hash` expects. Read from the certificate (cheap), not
    /// recomputed from the key.
    pub fn ca_cert_hash(&self) -> Result<String, PkiError> {
        let der = certificate_der("ca_certificate", &self.ca_certificate)?;
        let (_, certificate) =
            x509_parser::parse_x509_certificate(&der).map_err(|_| invalid("ca_certificate", "an X.509 certificate"))?;
        let spki = certificate.tbs_certificate.subject_pki.raw;
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        Ok(format!("sha256:{}", digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>()))
    }

    /// Checks a PKI read back from the state directory: certificates and keys parse, the
    /// token and certificate key have kubeadm's form. The error names the field at fault.
    pub fn check(&self) -> Result<(), PkiError> {
        self.ca_cert_hash()?;
        certificate_der("admin_certificate", &self.admin_certificate)?;
        for (field, pem) in [("ca_key", &self.ca_key), ("admin_key", &self.admin_key)] {
            KeyPair::from_pem(pem).map_err(|_| invalid(field, "a PEM private key"))?;
        }
        let token_part =
            |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let token_ok = self.join_token.split_once('.').is_some_and(|(a, b)| token_part(a, 6) && token_part(b, 16));
        if !token_ok {
            return Err(invalid("join_token", "a kubeadm token ([a-z0-9]{6}.[a-z0-9]{16})"));
        }
        if self.certificate_key.len() != 64 || !self.certificate_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("certificate_key", "64 hexadecimal digits"));
        }
        Ok(())
    }

    /// An admin kubeconfig for the API at `server` (`https://host:6443`).
    pub fn admin_kubeconfig(&self, cluster: &str, server: &str) -> Secret {
        let admin = KeyedCertificate { certificate: self.admin_certificate.clone(), key: self.admin_key.clone() };
        Secret::new(stratus_pki::kubeconfig(cluster, "admin", server, &self.ca_certificate, &admin))
    }
}
