//! Stratus's certificates, in one place: a cluster CA and what it issues — serving
//! certificates for API servers, client certificates for users and components (the
//! Kubernetes identity is the subject: CN = user, O = groups) — and kubeconfigs that carry
//! them. Pure: PEM strings in, PEM strings out; nothing touches the filesystem.
//! Used by `bootstrap` (the cluster it installs) and by the test control plane.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Certificates that could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing failed, or a PEM input is not a certificate or key.
    #[error("certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A host name given for a serving certificate is not a DNS name or IP address.
    #[error("certificates: {0:?} is not a host name or IP address")]
    Host(String),
}

/// A PEM certificate and the PEM (PKCS#8) key that goes with it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyedCertificate {
    /// PEM certificate.
    pub certificate: String,
    /// PEM private key.
    pub key: String,
}

impl std::fmt::Debug for KeyedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedCertificate(<key>)")
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A certificate authority: its certificate and key (PEM).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Ca(pub KeyedCertificate);

impl Ca {
    /// A new self-signed CA named `common_name`, valid ten years.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, 3650);
        let certificate = params.self_signed(&key)?;
        Ok(Ca(KeyedCertificate { certificate: certificate.pem(), key: key.serialize_pem() }))
    }

    /// The CA made earlier from its PEM certificate and key.
    pub fn from_pem(certificate: &str, key: &str) -> Ca {
        Ca(KeyedCertificate { certificate: certificate.to_string(), key: key.to_string() })
    }

    /// PEM of the CA certificate.
    pub fn certificate(&self) -> &str {
        &self.0.certificate
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_pem(&self.0.certificate, KeyPair::from_pem(&self.0.key)?)?)
    }

    /// A client certificate for user `user`, in `group` if given (Kubernetes reads CN as the
    /// user and O as a group; one group, as the certificates Stratus needs have), valid `days`
    /// days.
    pub fn issue_client(&self, user: &str, group: Option<&str>, days: i64) -> Result<KeyedCertificate, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        if let Some(group) = group {
            dn.push(DnType::OrganizationName, group);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, days);
        let certificate = params.signed_by(&key, &self.issuer()?)?;
        Ok(KeyedCertificate { certificate: certificate.pem(), key: key.serialize_pem() })
    }

    /// A serving certificate named `common_name` for `hosts` (DNS names or IP addresses),
    /// valid `days` days.
    pub fn issue_serving(&self, common_name: &str, hosts: &[&str], days: i64) -> Result<KeyedCertificate, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, common_name);
        for host in hosts {
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if is_host_name(host) => {
                    SanType::DnsName((*host).try_into().map_err(|_| PkiError::Host(host.to_string()))?)
                }
                Err(_) => return Err(PkiError::Host(host.to_string())),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, days);
        let certificate = params.signed_by(&key, &self.issuer()?)?;
        Ok(KeyedCertificate { certificate: certificate.pem(), key: key.serialize_pem() })
    }
}

/// A new key pair for signing service-account tokens, as PEM `(private key (PKCS#8), public
/// key)`: the API server's `--service-account-signing-key-file` and
/// `--service-account-key-file`.
pub fn signing_key() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// A kubeconfig (YAML) for `user` at the API server `server` (`https://host:port`), trusting
/// `ca_certificate` and presenting `client`; its one context, `user@cluster`, is current.
pub fn kubeconfig(cluster: &str, user: &str, server: &str, ca_certificate: &str, client: &KeyedCertificate) -> String {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let context = format!("{user}@{cluster}");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_certificate)}}],
        "users": [{"name": context, "user": {
            "client-certificate-data": b64(&client.certificate), "client-key-data": b64(&client.key)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": context}}],
    });
    // A JSON value of strings and maps always serialises.
    serde_norway::to_string(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pem: &str) -> (String, usize) {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let certificate = pem.parse_x509().unwrap();
        let sans = certificate.subject_alternative_name().unwrap().map_or(0, |san| san.value.general_names.len());
        (certificate.subject().to_string(), sans)
    }

    #[test]
    fn issued_certificates_name_their_subject_and_hosts() {
        let ca = Ca::generate("test").unwrap();
        let client = ca.issue_client("kubernetes-admin", Some("system:masters"), 1).unwrap();
        assert_eq!(parse(&client.certificate).0, "CN=kubernetes-admin, O=system:masters");
        let client = ca.issue_client("system:kube-scheduler", None, 1).unwrap();
        assert_eq!(parse(&client.certificate).0, "CN=system:kube-scheduler");

        let serving = ca.issue_serving("kube-apiserver", &["127.0.0.1", "localhost"], 1).unwrap();
        assert_eq!(parse(&serving.certificate).1, 2);
        assert!(matches!(ca.issue_serving("x", &["not a host"], 1), Err(PkiError::Host(_))));
    }

    #[test]
    fn kubeconfigs_name_the_server_and_carry_the_client() {
        let ca = Ca::generate("test").unwrap();
        let client = ca.issue_client("admin", Some("system:masters"), 1).unwrap();
        let text = kubeconfig("c", "admin", "https://127.0.0.1:6443", ca.certificate(), &client);
        let value: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(value["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(value["current-context"], "admin@c");
        let key = value["users"][0]["user"]["client-key-data"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), client.key);
    }
}
