//! Generated secret objects: passwords, certificate authorities, certificates signed by them,
//! and SSH key pairs. Passwords and SSH keys draw from the caller's CSPRNG (so tests can seed
//! one); certificate keys are ECDSA P-256 from the operating system's CSPRNG.

use base64::Engine as _;
use rand::{CryptoRng, Rng};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use ring::signature::KeyPair as _;
use serde::{Deserialize, Serialize};

use crate::model::ValueType;

/// Default password length.
pub const DEFAULT_PASSWORD_LENGTH: u32 = 32;
/// Default password alphabet: letters and digits.
pub const DEFAULT_PASSWORD_CHARACTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Default certificate validity.
pub const DEFAULT_VALID_DAYS: u32 = 3650;

/// One generated object; parameters sharing a generator id receive parts of the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GeneratedObject {
    /// A password.
    Password {
        /// The password.
        value: String,
    },
    /// A certificate (a CA when `is_ca`) and its private key, both PEM.
    Certificate {
        /// True for a certificate authority.
        is_ca: bool,
        /// PEM certificate.
        certificate: String,
        /// PEM PKCS#8 private key.
        private_key: String,
    },
    /// An SSH key pair.
    SshKey {
        /// OpenSSH private key.
        private_key: String,
        /// `ssh-ed25519 AAAA... comment`.
        public_key: String,
        /// `SHA256:...` fingerprint.
        fingerprint: String,
    },
}

impl GeneratedObject {
    /// The part of the object a parameter of `value_type` receives (`None` for passwords).
    pub fn value(&self, value_type: Option<ValueType>) -> Option<&str> {
        match (self, value_type) {
            (GeneratedObject::Password { value }, None) => Some(value),
            (GeneratedObject::Certificate { certificate, .. }, Some(ValueType::Certificate)) => Some(certificate),
            (GeneratedObject::Certificate { private_key, .. }, Some(ValueType::PrivateKey)) => Some(private_key),
            (GeneratedObject::SshKey { private_key, .. }, Some(ValueType::PrivateKey)) => Some(private_key),
            (GeneratedObject::SshKey { public_key, .. }, Some(ValueType::PublicKey)) => Some(public_key),
            (GeneratedObject::SshKey { fingerprint, .. }, Some(ValueType::Fingerprint)) => Some(fingerprint),
            _ => None,
        }
    }
}

/// A generator that could not produce its object.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Certificate generation or signing failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The stored CA cannot sign (not a CA object, or unreadable).
    #[error("no generated certificate authority \"{0}\" to sign with")]
    NotACa(String),
    /// A stored object is of another kind than the generator now asks for.
    #[error("the stored object of generator \"{0}\" is of another kind than the SDL now declares")]
    WrongKind(String),
    /// The validity period does not fit in a certificate.
    #[error("a validity of {0} days ends after the year 9999")]
    Validity(u32),
    /// A subject alternative name is neither a DNS name nor an IP address.
    #[error("subject alternative name {} is neither a DNS name nor an IP address", crate::error::quote(.0))]
    BadSan(String),
}

/// The user name of binding `binding_id`: `b` and the first hex digits of the id's SHA-256,
/// `max_length` characters in all (at most 65) — the same for the same id, letters and digits
/// only, so it needs no quoting in SQL or shells.
pub fn binding_username(binding_id: &str, max_length: u32) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, binding_id.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let digits = (max_length.max(2) as usize - 1).min(hex.len());
    format!("b{}", &hex[..digits])
}

/// A random password of `length` characters drawn uniformly from `characters`.
pub fn password(rng: &mut (impl Rng + CryptoRng), length: u32, characters: &str) -> String {
    let mut alphabet: Vec<char> = characters.chars().collect();
    if alphabet.is_empty() {
        // Validation refuses an empty alphabet; never divide by nothing if it was skipped.
        alphabet = DEFAULT_PASSWORD_CHARACTERS.chars().collect();
    }
    (0..length).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
}

fn validity(params: &mut CertificateParams, valid_days: u32) -> Result<(), GenerateError> {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now
        .checked_add(time::Duration::days(i64::from(valid_days)))
        .filter(|end| end.year() <= 9999)
        .ok_or(GenerateError::Validity(valid_days))?;
    Ok(())
}

/// A self-signed certificate authority named `common_name`.
pub fn certificate_authority(common_name: &str, valid_days: u32) -> Result<GeneratedObject, GenerateError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Stratus");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, valid_days)?;
    let cert = params.self_signed(&key)?;
    Ok(GeneratedObject::Certificate { is_ca: true, certificate: cert.pem(), private_key: key.serialize_pem() })
}

/// A server and client certificate for `subject_alt_names` (DNS names, wildcards or IP
/// addresses), signed by the CA object `ca`. The first name is also the common name.
pub fn certificate(
    ca_id: &str,
    ca: &GeneratedObject,
    common_name: &str,
    subject_alt_names: &[String],
    valid_days: u32,
) -> Result<GeneratedObject, GenerateError> {
    let GeneratedObject::Certificate { is_ca: true, certificate: ca_pem, private_key: ca_key } = ca else {
        return Err(GenerateError::NotACa(ca_id.to_string()));
    };
    let ca_key = KeyPair::from_pem(ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject_alt_names.first().map(String::as_str).unwrap_or(common_name));
    params.distinguished_name = dn;
    for san in subject_alt_names {
        let entry = match san.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.as_str().try_into().map_err(|_| GenerateError::BadSan(san.clone()))?),
        };
        params.subject_alt_names.push(entry);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, valid_days)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(GeneratedObject::Certificate { is_ca: false, certificate: cert.pem(), private_key: key.serialize_pem() })
}

/// An Ed25519 SSH key pair in OpenSSH formats, with `comment` on the public key.
pub fn ssh_key(rng: &mut (impl Rng + CryptoRng), comment: &str) -> GeneratedObject {
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("a 32-byte seed is always accepted");
    let public = pair.public_key().as_ref().to_vec();

    let mut public_blob = Vec::new();
    put_string(&mut public_blob, b"ssh-ed25519");
    put_string(&mut public_blob, &public);

    // openssh-key-v1 private section: check ints, key type, public key, seed||public, comment, padding.
    let check: u32 = rng.random();
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, &public);
    let mut secret = seed.to_vec();
    secret.extend_from_slice(&public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut whole = b"openssh-key-v1\0".to_vec();
    put_string(&mut whole, b"none");
    put_string(&mut whole, b"none");
    put_string(&mut whole, b"");
    whole.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut whole, &public_blob);
    put_string(&mut whole, &private);

    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(&whole);
    let mut private_key = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(70) {
        private_key.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        private_key.push('\n');
    }
    private_key.push_str("-----END OPENSSH PRIVATE KEY-----\n");

    let digest = ring::digest::digest(&ring::digest::SHA256, &public_blob);
    let fingerprint = format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()));
    let public_key = format!("ssh-ed25519 {} {comment}", b64.encode(&public_blob));
    GeneratedObject::SshKey { private_key, public_key, fingerprint }
}

fn put_string(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn an_enormous_validity_is_an_error_not_a_panic() {
        assert!(matches!(certificate_authority("ca", u32::MAX), Err(GenerateError::Validity(_))));
    }

    #[test]
    fn password_honours_length_and_alphabet() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let value = password(&mut rng, 40, "ab");
        assert_eq!(value.len(), 40);
        assert!(value.chars().all(|c| c == 'a' || c == 'b'));
        assert!(value.contains('a') && value.contains('b'));
        let other = password(&mut rng, 40, "ab");
        assert_ne!(value, other);
    }

    #[test]
    fn ssh_fingerprint_matches_public_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let GeneratedObject::SshKey { public_key, fingerprint, private_key } = ssh_key(&mut rng, "test") else {
            panic!("not an SSH key")
        };
        let blob = base64::engine::general_purpose::STANDARD.decode(public_key.split(' ').nth(1).unwrap()).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &blob);
        assert_eq!(fingerprint, format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)));
        assert!(private_key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    }
}
