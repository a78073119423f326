//! Authentication and authorisation: the server is an OpenID Connect *resource server*.
//!
//! It discovers the issuer (`/.well-known/openid-configuration`), fetches its JSON Web Key Set
//! and keeps it (fetched again for a key id it does not know, at most every
//! [`JWKS_MIN_REFRESH`]), and verifies every bearer token: an asymmetric signature by a key of
//! the set with the algorithm the key is for (`none` and HMAC are refused), `iss`, `aud`,
//! `exp` and `nbf` (with a small leeway). The token's groups (the claim `--roles-claim`, a list
//! or a space-separated string such as `scope`) give a role: [`Role::Admin`] (everything),
//! [`Role::Developer`] (read, and create, change and delete instances), [`Role::Viewer`] (read).
//!
//! [`authorize`] is a middleware over the whole router: the role a request needs comes from
//! its method and path alone ([`required_role`]), so routes added later are covered without
//! touching their handlers. It answers 401 (`WWW-Authenticate: Bearer`) before any handler for
//! a missing or invalid token and 403 `forbidden` for a missing role, hands the handler the
//! [`Principal`] in the request's extensions, and writes the audit log (target
//! `hsm_server::audit`): one line per write and per denied request with the user, the verb and
//! the instance — never a token.
//!
//! A token that passed every check is remembered (by its SHA-256 digest, with the principal it
//! names) until its `exp` plus the leeway, so a client that sends the same token with every
//! request pays for the signature once; a remembered token is checked in full again once the
//! key set has been fetched anew (a key that left the set stops its tokens at once), and the
//! memory holds at most [`VERIFIED_TOKENS`] tokens.
//!
//! The pure parts (roles, the role a route needs, the bearer header, audit verbs) are plain
//! functions; the shell is [`Authenticator`] (HTTP to the issuer, the key cache).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The JWKS is fetched again for an unknown key id at most this often.
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

/// At most this many verified tokens are remembered.
pub const VERIFIED_TOKENS: usize = 4096;

/// How long a request to the issuer may take.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest discovery document or key set read.
const ISSUER_BODY_LIMIT: usize = 1 << 20;

/// The realm named in `WWW-Authenticate`.
const REALM: &str = "hsm";

/// A role, from least to most allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: every `GET`.
    Viewer,
    /// Reads, and creates, changes and deletes instances.
    Developer,
    /// Everything.
    Admin,
}

impl Role {
    /// `viewer`, `developer` or `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The groups that give each role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGroups {
    /// Group of [`Role::Admin`].
    pub admin: String,
    /// Group of [`Role::Developer`].
    pub developer: String,
    /// Group of [`Role::Viewer`].
    pub viewer: String,
}

impl Default for RoleGroups {
    fn default() -> RoleGroups {
        RoleGroups { admin: "hsm-admins".into(), developer: "hsm-developers".into(), viewer: "hsm-viewers".into() }
    }
}

impl RoleGroups {
    /// The highest role `groups` give, if any.
    pub fn role(&self, groups: &[String]) -> Option<Role> {
        let has = |group: &str| groups.iter().any(|g| g == group);
        if has(&self.admin) {
            Some(Role::Admin)
        } else if has(&self.developer) {
            Some(Role::Developer)
        } else if has(&self.viewer) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// The groups that give `role` or more, for messages.
    fn groups_for(&self, role: Role) -> String {
        match role {
            Role::Admin => self.admin.clone(),
            Role::Developer => format!("{} or {}", self.developer, self.admin),
            Role::Viewer => format!("{}, {} or {}", self.viewer, self.developer, self.admin),
        }
    }
}

/// How the server checks tokens (the `--oidc-*` flags).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The issuer URL, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// The `aud` tokens must have.
    pub audience: String,
    /// The public client `hsm login` uses (told to clients by `GET /v1/info`).
    pub client_id: String,
    /// The claim holding the groups (a dotted path into nested objects, e.g.
    /// `realm_access.roles`): a list of strings or a space-separated string.
    pub roles_claim: String,
    /// Groups → roles.
    pub groups: RoleGroups,
    /// PEM CA certificates to trust for the issuer, besides the usual roots.
    pub ca_file: Option<PathBuf>,
    /// Clock skew tolerated for `exp` and `nbf`.
    pub leeway: Duration,
    /// The key set is fetched again for an unknown key id at most this often.
    pub jwks_min_refresh: Duration,
}

impl AuthConfig {
    /// `issuer` and `audience` with the defaults: client `hsm`, claim `groups`, the default
    /// groups, no extra CA, 5 s leeway, the key set fetched again at most every
    /// [`JWKS_MIN_REFRESH`].
    pub fn new(issuer: &str, audience: &str) -> AuthConfig {
        AuthConfig {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            client_id: "hsm".into(),
            roles_claim: "groups".into(),
            groups: RoleGroups::default(),
            ca_file: None,
            leeway: Duration::from_secs(5),
            jwks_min_refresh: JWKS_MIN_REFRESH,
        }
    }
}

/// What `GET /v1/info` tells clients about signing in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuthInfo {
    /// The OpenID issuer to sign in with.
    pub issuer: String,
    /// The public client id to use.
    pub client_id: String,
    /// The audience (resource indicator) to ask tokens for.
    pub audience: String,
}

/// Why the authenticator cannot be built (bad configuration: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--oidc-issuer` is not an http(s) URL.
    #[error("--oidc-issuer: {0}")]
    Issuer(String),
    /// `--oidc-audience` is empty.
    #[error("--oidc-audience: must not be empty")]
    Audience,
    /// `--oidc-ca-file` cannot be read or holds no certificate.
    #[error("--oidc-ca-file: {0}")]
    CaFile(String),
    /// `--roles-claim` is empty.
    #[error("--roles-claim: must not be empty")]
    RolesClaim,
}

/// Who made a request, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `sub`.
    pub subject: String,
    /// `preferred_username`, when the token has one.
    pub username: Option<String>,
    /// The role the token's groups give.
    pub role: Option<Role>,
}

impl Principal {
    /// The name for the audit log: `preferred_username (sub)` or `sub`, control characters
    /// replaced (a log line stays one line).
    pub fn display(&self) -> String {
        let text = match &self.username {
            Some(name) if name != &self.subject => format!("{name} ({})", self.subject),
            _ => self.subject.clone(),
        };
        text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
    }
}

/// Why a token is refused (the 401's `error_description`; never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The token is not valid, and why.
    Invalid(String),
    /// The issuer cannot be reached to get its keys (503).
    IssuerUnavailable(String),
}

/// The claims read from an access token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// A public key and the one algorithm it verifies.
type VerifyingKey = (DecodingKey, Algorithm);

/// The verifying keys of the issuer, by key id.
#[derive(Default)]
struct Keys {
    jwks_uri: Option<String>,
    by_id: HashMap<String, VerifyingKey>,
    /// Keys without a key id (used for tokens without one when they are the only key).
    anonymous: Vec<VerifyingKey>,
    fetched: Option<Instant>,
    /// How many times the key set was fetched.
    fetches: u64,
    /// The last failed attempt and why: within the refresh interval requests get this answer
    /// instead of waiting on the issuer again.
    failed: Option<(Instant, String)>,
}

/// The resource server's token checks: configuration, the HTTP client for the issuer and
/// the cached key set.
pub struct Authenticator {
    config: AuthConfig,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// Held while fetching, so one request fetches and the others wait for it.
    fetching: Mutex<()>,
    /// Incremented with every key set fetched: remembered tokens of an older set are checked
    /// again.
    generation: AtomicU64,
    /// Tokens that passed every check, by their SHA-256 digest.
    verified: std::sync::RwLock<HashMap<[u8; 32], Verified>>,
}

/// A remembered token: whom it names, until when it may be used, and the key set it was
/// checked against.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    /// `exp` plus the leeway, in seconds since the epoch.
    until: u64,
    generation: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks `config` and builds the HTTP client (with `--oidc-ca-file`'s certificates). The
    /// issuer is contacted on first use, so the server starts while it is still down.
    pub fn new(config: AuthConfig) -> Result<Authenticator, ConfigError> {
        let url = reqwest::Url::parse(&config.issuer)
            .map_err(|e| ConfigError::Issuer(format!("{} is not a URL: {e}", sdl::error::quote(&config.issuer))))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ConfigError::Issuer(format!(
                "{} is not an http(s) URL with a host",
                sdl::error::quote(&config.issuer)
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::Issuer(format!(
                "{} must not have a query or fragment",
                sdl::error::quote(&config.issuer)
            )));
        }
        if config.audience.trim().is_empty() {
            return Err(ConfigError::Audience);
        }
        if config.roles_claim.trim().is_empty() {
            return Err(ConfigError::RolesClaim);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(ISSUER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hsm-server/", env!("CARGO_PKG_VERSION")));
        if let Some(file) = &config.ca_file {
            let pem = std::fs::read(file).map_err(|e| ConfigError::CaFile(format!("{}: {e}", file.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError::CaFile(format!("{}: {e}", file.display())))?;
            if certificates.is_empty() {
                return Err(ConfigError::CaFile(format!("{}: no PEM certificate in it", file.display())));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| ConfigError::CaFile(format!("the HTTP client: {e}")))?;
        Ok(Authenticator {
            config,
            http,
            keys: RwLock::new(Keys::default()),
            fetching: Mutex::new(()),
            generation: AtomicU64::new(0),
            verified: std::sync::RwLock::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// What clients are told by `GET /v1/info`.
    pub fn info(&self) -> AuthInfo {
        AuthInfo {
            issuer: self.config.issuer.clone(),
            client_id: self.config.client_id.clone(),
            audience: self.config.audience.clone(),
        }
    }

    /// How many times the key set has been fetched (successfully).
    pub async fn key_fetches(&self) -> u64 {
        self.keys.read().await.fetches
    }

    /// Discovers the issuer and fetches its keys now (at start, to say early when the issuer
    /// cannot be reached).
    pub async fn refresh(&self) -> Result<(), String> {
        let _fetching = self.fetching.lock().await;
        self.fetch().await
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}"));
        }
        if response.content_length().is_some_and(|n| n > ISSUER_BODY_LIMIT as u64) {
            return Err(format!("GET {url}: the answer is larger than {ISSUER_BODY_LIMIT} bytes"));
        }
        let bytes = response.bytes().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        if bytes.len() > ISSUER_BODY_LIMIT {
            return Err(format!("GET {url}: the answer is larger than {ISSUER_BODY_LIMIT} bytes"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    /// Discovery (once) and the key set; the caller holds `fetching`.
    async fn fetch(&self) -> Result<(), String> {
        let jwks_uri = match self.keys.read().await.jwks_uri.clone() {
            Some(uri) => uri,
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
                let document = self.get_json(&url).await?;
                if document["issuer"].as_str() != Some(self.config.issuer.as_str()) {
                    return Err(format!(
                        "{url} names the issuer {}, not {}",
                        document["issuer"],
                        sdl::error::quote(&self.config.issuer)
                    ));
                }
                document["jwks_uri"].as_str().ok_or_else(|| format!("{url} has no jwks_uri"))?.to_string()
            }
        };
        let set = self.get_json(&jwks_uri).await?;
        let (by_id, anonymous) = verifying_keys(&set);
        if by_id.is_empty() && anonymous.is_empty() {
            return Err(format!("{jwks_uri} holds no signing key this server can use"));
        }
        let mut keys = self.keys.write().await;
        let fetches = keys.fetches + 1;
        *keys =
            Keys { jwks_uri: Some(jwks_uri), by_id, anonymous, fetched: Some(Instant::now()), fetches, failed: None };
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The key and algorithm for a token's key id, fetching the set when the id is unknown
    /// (at most every `jwks_min_refresh`; after a failed attempt, the same wait, answering
    /// with that failure meanwhile).
    async fn key_for(&self, kid: Option<&str>) -> Result<VerifyingKey, Refusal> {
        let lookup = |keys: &Keys| match kid {
            Some(kid) => keys.by_id.get(kid).cloned(),
            None if keys.by_id.len() + keys.anonymous.len() == 1 => {
                keys.anonymous.first().cloned().or_else(|| keys.by_id.values().next().cloned())
            }
            None => None,
        };
        if let Some(found) = lookup(&*self.keys.read().await) {
            return Ok(found);
        }
        let _fetching = self.fetching.lock().await;
        {
            // Fetched by another request meanwhile, or fetched too recently to fetch again.
            let keys = self.keys.read().await;
            if let Some(found) = lookup(&keys) {
                return Ok(found);
            }
            if keys.fetched.is_some_and(|at| at.elapsed() < self.config.jwks_min_refresh) {
                return Err(Refusal::Invalid("the token is not signed by a key of the issuer".into()));
            }
            if let Some((at, error)) = &keys.failed {
                if at.elapsed() < self.config.jwks_min_refresh {
                    return Err(Refusal::IssuerUnavailable(error.clone()));
                }
            }
        }
        if let Err(error) = self.fetch().await {
            tracing::warn!("the OpenID issuer's keys cannot be fetched: {error}");
            self.keys.write().await.failed = Some((Instant::now(), error.clone()));
            return Err(Refusal::IssuerUnavailable(error));
        }
        lookup(&*self.keys.read().await)
            .ok_or_else(|| Refusal::Invalid("the token is not signed by a key of the issuer".into()))
    }

    /// How many verified tokens are remembered.
    pub fn remembered(&self) -> usize {
        self.verified.read().map_or(0, |verified| verified.len())
    }

    /// Verifies `token`: the principal it names, or why it is refused. A token verified before
    /// against the same key set and not yet expired is answered from memory.
    pub async fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let digest = digest(token);
        let generation = self.generation.load(Ordering::SeqCst);
        let remembered = self.verified.read().ok().and_then(|verified| verified.get(&digest).cloned());
        if let Some(hit) = remembered {
            if hit.generation == generation && unix_now() <= hit.until {
                return Ok(hit.principal);
            }
        }
        let (principal, exp) = self.check(token).await?;
        let until = exp.saturating_add(self.config.leeway.as_secs());
        // The generation read before the check: a set fetched during it makes the entry stale.
        self.remember(digest, Verified { principal: principal.clone(), until, generation });
        Ok(principal)
    }

    fn remember(&self, digest: [u8; 32], entry: Verified) {
        let Ok(mut verified) = self.verified.write() else { return };
        if verified.len() >= VERIFIED_TOKENS && !verified.contains_key(&digest) {
            let now = unix_now();
            let current = self.generation.load(Ordering::SeqCst);
            verified.retain(|_, old| now <= old.until && old.generation == current);
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(digest, entry);
    }

    /// Every check of `token`: the principal and the token's `exp`.
    async fn check(&self, token: &str) -> Result<(Principal, u64), Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match unsigned(token) {
            true => Refusal::Invalid("the token is unsigned (alg none)".into()),
            false => Refusal::Invalid(describe(&e)),
        })?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(Refusal::Invalid(format!("the token's algorithm {:?} is not accepted", header.alg)));
        }
        let (key, algorithm) = self.key_for(header.kid.as_deref()).await?;
        if header.alg != algorithm {
            return Err(Refusal::Invalid(format!(
                "the token's algorithm {:?} is not its key's ({algorithm:?})",
                header.alg
            )));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| Refusal::Invalid(describe(&e)))?;
        let claims = data.claims;
        let groups = claim_path(&claims.other, &self.config.roles_claim).map(strings).unwrap_or_default();
        let principal = Principal {
            subject: claims.sub,
            username: claims.preferred_username,
            role: self.config.groups.role(&groups),
        };
        // `exp` is required and checked above; a number that is not a whole one is cut.
        let exp = claims.other.get("exp").and_then(|exp| exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64)));
        Ok((principal, exp.unwrap_or(0)))
    }
}

/// The signature algorithms accepted: asymmetric ones only (no `none`, no HMAC: a public key
/// is no secret).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether `token`'s header says `alg: none` (which no JWT library parses as an algorithm).
fn unsigned(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else { return false };
    serde_json::from_slice::<Value>(&bytes)
        .is_ok_and(|h| h["alg"].as_str().is_some_and(|a| a.eq_ignore_ascii_case("none")))
}

/// A token error in words.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "the token's signature is not valid".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the token is not a well-formed JWT".into()
        }
        _ => format!("the token is not valid: {error}"),
    }
}

/// The signing keys of a JWK set: by key id, and those without one. Keys of other uses,
/// symmetric keys and keys this server cannot use are left out.
fn verifying_keys(set: &Value) -> (HashMap<String, VerifyingKey>, Vec<VerifyingKey>) {
    let mut by_id = HashMap::new();
    let mut anonymous = Vec::new();
    for value in set["keys"].as_array().into_iter().flatten() {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else { continue };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(algorithm) = key_algorithm(&jwk) else { continue };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
        match jwk.common.key_id {
            Some(kid) => {
                by_id.insert(kid, (key, algorithm));
            }
            None => anonymous.push((key, algorithm)),
        }
    }
    (by_id, anonymous)
}

/// The one algorithm a public key verifies: its `alg`, else what its type implies.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let declared = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
        Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => return None,
        None => None,
    };
    let family_fits = |algorithm: Algorithm| match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(
                algorithm,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            )
        }
        AlgorithmParameters::EllipticCurve(p) => matches!(
            (algorithm, &p.curve),
            (Algorithm::ES256, EllipticCurve::P256) | (Algorithm::ES384, EllipticCurve::P384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => algorithm == Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => false,
    };
    let algorithm = declared.or(match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Some(Algorithm::ES384),
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    })?;
    family_fits(algorithm).then_some(algorithm)
}

/// The value at a dotted `path` in `claims`.
fn claim_path<'a>(claims: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// A claim's strings: a list's, or a space-separated string's (as `scope`).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Value::String(text) => text.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The paths anyone may read: health, readiness, metrics, the server's info and this API's
/// document.
pub const PUBLIC_PATHS: [&str; 5] = ["/healthz", "/readyz", "/metrics", "/v1/info", "/v1/openapi.json"];

/// The role `method` on `path` needs; `None` for a public route (`GET`/`HEAD` of
/// [`PUBLIC_PATHS`]). Reads need [`Role::Viewer`]; writes of instances (`/v1/instances`
/// and below) [`Role::Developer`]; any other write [`Role::Admin`]. Unknown routes need a
/// role too, so that who may not read cannot probe them.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    let read = *method == Method::GET || *method == Method::HEAD;
    if read && PUBLIC_PATHS.contains(&path) {
        return None;
    }
    if read && is_credentials(path) {
        return Some(Role::Developer);
    }
    if read || *method == Method::OPTIONS {
        return Some(Role::Viewer);
    }
    let instances = path == "/v1/instances" || path.starts_with("/v1/instances/");
    Some(if instances { Role::Developer } else { Role::Admin })
}

/// Whether `path` is a binding's credentials (`/v1/instances/{id}/bindings/{bid}/credentials`),
/// which reading needs more than a viewer.
fn is_credentials(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["", "v1", "instances", _, "bindings", _, "credentials"])
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    let text = value?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The audit log's verb and instance for a request: `create-instance`, `change-instance`,
/// `delete-instance`, else the method and path; the instance id from the path (or, for a
/// create, from the answer's `Location`).
pub fn audit_verb(method: &Method, path: &str) -> (String, Option<String>) {
    let rest = path.strip_prefix("/v1/instances");
    let instance = rest
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.split('/').next())
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let verb = match (method.as_str(), rest) {
        ("POST", Some("" | "/")) => "create-instance".to_string(),
        ("PATCH", Some(r)) if instance.is_some() && r.matches('/').count() == 1 => "change-instance".to_string(),
        ("DELETE", Some(r)) if instance.is_some() && r.matches('/').count() == 1 => "delete-instance".to_string(),
        ("POST", Some(r)) if instance.is_some() && r.trim_end_matches('/').ends_with("/bindings") => {
            "create-binding".to_string()
        }
        ("DELETE", Some(r)) if instance.is_some() && r.matches('/').count() == 3 && r.contains("/bindings/") => {
            "delete-binding".to_string()
        }
        ("GET", Some(r)) if instance.is_some() && r.trim_end_matches('/').ends_with("/credentials") => {
            "get-credentials".to_string()
        }
        _ => format!("{method} {path}"),
    };
    (verb, instance)
}

/// The 401 for `refusal` (503 when the issuer cannot be reached).
pub fn unauthorized(refusal: &Refusal) -> Response {
    let (status, code, message, challenge) = match refusal {
        Refusal::Missing => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this needs a bearer token (Authorization: Bearer <access token>); GET /v1/info names the issuer to sign in with".to_string(),
            format!("Bearer realm=\"{REALM}\""),
        ),
        Refusal::Invalid(why) => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("{why}; sign in again (hsm login)"),
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"", why.replace(['"', '\\'], "'")),
        ),
        Refusal::IssuerUnavailable(why) => {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "issuer_unavailable",
                format!("the token cannot be checked: the OpenID issuer's keys cannot be fetched ({why})"),
            );
            return error.into_response();
        }
    };
    let mut response = ApiError::new(status, code, message).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The 403 for a principal without `needed`.
pub fn forbidden(principal: &Principal, needed: Role, groups: &RoleGroups) -> Response {
    let has = principal.role.map(|r| format!("the role {r}")).unwrap_or_else(|| "no role".to_string());
    let message = format!(
        "this needs the role {needed} (group {}); {} has {has}",
        groups.groups_for(needed),
        principal.username.as_deref().unwrap_or(&principal.subject)
    );
    let mut response = ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
    let challenge = format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The middleware: checks the bearer token and the role the route needs before the handler
/// runs, puts the [`Principal`] into the request's extensions, and writes the audit log.
pub async fn authorize(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let Some(needed) = required_role(&method, &path) else { return next.run(request).await };
    let (verb, instance) = audit_verb(&method, &path);
    let refusal = match bearer(request.headers().get(header::AUTHORIZATION)) {
        None => Refusal::Missing,
        Some(token) => match auth.verify(token).await {
            Ok(principal) => {
                if principal.role.is_none_or(|role| role < needed) {
                    tracing::warn!(
                        target: "hsm_server::audit",
                        user = %principal.display(), verb = %verb, instance = %instance.as_deref().unwrap_or("-"),
                        needed = %needed, role = %principal.role.map(Role::name).unwrap_or("none"),
                        "denied: missing role"
                    );
                    return forbidden(&principal, needed, &auth.config.groups);
                }
                let write = !(method == Method::GET || method == Method::HEAD || method == Method::OPTIONS);
                let user = principal.display();
                request.extensions_mut().insert(principal);
                let response = next.run(request).await;
                if write {
                    let instance = instance.or_else(|| {
                        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
                        location.strip_prefix("/v1/instances/").map(str::to_string)
                    });
                    tracing::info!(
                        target: "hsm_server::audit",
                        user = %user, verb = %verb, instance = %instance.as_deref().unwrap_or("-"),
                        status = response.status().as_u16(),
                        "write"
                    );
                }
                return response;
            }
            Err(refusal) => refusal,
        },
    };
    let why = match &refusal {
        Refusal::Missing => "no bearer token".to_string(),
        Refusal::Invalid(why) | Refusal::IssuerUnavailable(why) => why.clone(),
    };
    tracing::warn!(
        target: "hsm_server::audit",
        user = %"-", verb = %verb, instance = %instance.as_deref().unwrap_or("-"), reason = %why,
        "denied: not authenticated"
    );
    unauthorized(&refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_give_the_highest_role() {
        let groups = RoleGroups::default();
        let of = |names: &[&str]| groups.role(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(of(&["hsm-viewers", "hsm-admins"]), Some(Role::Admin));
        assert_eq!(of(&["hsm-developers", "hsm-viewers"]), Some(Role::Developer));
        assert_eq!(of(&["hsm-viewers"]), Some(Role::Viewer));
        assert_eq!(of(&["staff", "HSM-ADMINS"]), None);
        assert!(Role::Viewer < Role::Developer && Role::Developer < Role::Admin);
    }

    #[test]
    fn routes_need_roles_by_method_and_path() {
        for path in PUBLIC_PATHS {
            assert_eq!(required_role(&Method::GET, path), None, "{path}");
            assert_eq!(required_role(&Method::POST, path), Some(Role::Admin), "{path}");
        }
        assert_eq!(required_role(&Method::GET, "/v1/instances"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::GET, "/v1/instances/x/events"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::GET, "/v1/nothing"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::POST, "/v1/instances"), Some(Role::Developer));
        assert_eq!(required_role(&Method::PATCH, "/v1/instances/x"), Some(Role::Developer));
        assert_eq!(required_role(&Method::GET, "/v1/instances/x/bindings"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::GET, "/v1/instances/x/bindings/b"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::GET, "/v1/instances/x/bindings/b/credentials"), Some(Role::Developer));
        assert_eq!(required_role(&Method::GET, "/v1/instances/x/bindings/b/credentials/"), Some(Role::Developer));
        assert_eq!(required_role(&Method::POST, "/v1/instances/x/bindings"), Some(Role::Developer));
        assert_eq!(required_role(&Method::DELETE, "/v1/instances/x/bindings/b"), Some(Role::Developer));
        assert_eq!(required_role(&Method::DELETE, "/v1/instances/x"), Some(Role::Developer));
        assert_eq!(required_role(&Method::POST, "/v1/instancesx"), Some(Role::Admin));
        assert_eq!(required_role(&Method::PUT, "/v1/services/a.b.c"), Some(Role::Admin));
        // A public path with a trailing slash is another path.
        assert_eq!(required_role(&Method::GET, "/v1/info/"), Some(Role::Viewer));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        assert_eq!(bearer(Some(&value("Bearer abc.def.ghi"))), Some("abc.def.ghi"));
        assert_eq!(bearer(Some(&value("bearer  abc"))), Some("abc"));
        assert_eq!(bearer(Some(&value("Basic YWxhZGRpbjpvcGVuc2VzYW1l"))), None);
        assert_eq!(bearer(Some(&value("Bearer "))), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn audit_verbs_name_the_instance() {
        let verb = |m: Method, p: &str| audit_verb(&m, p);
        assert_eq!(verb(Method::POST, "/v1/instances"), ("create-instance".into(), None));
        assert_eq!(verb(Method::PATCH, "/v1/instances/db"), ("change-instance".into(), Some("db".into())));
        assert_eq!(verb(Method::DELETE, "/v1/instances/db"), ("delete-instance".into(), Some("db".into())));
        assert_eq!(
            verb(Method::GET, "/v1/instances/db/events"),
            ("GET /v1/instances/db/events".into(), Some("db".into()))
        );
        assert_eq!(verb(Method::GET, "/v1/services"), ("GET /v1/services".into(), None));
    }

    #[test]
    fn groups_are_read_from_lists_strings_and_nested_claims() {
        let claims: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "groups": ["a", "b", 3],
            "scope": "openid hsm-viewers",
            "realm_access": {"roles": ["hsm-admins"]}
        }))
        .unwrap();
        assert_eq!(claim_path(&claims, "groups").map(strings), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(claim_path(&claims, "scope").map(strings).unwrap(), ["openid", "hsm-viewers"]);
        assert_eq!(claim_path(&claims, "realm_access.roles").map(strings).unwrap(), ["hsm-admins"]);
        assert_eq!(claim_path(&claims, "nothing.here"), None);
    }

    #[test]
    fn bad_configuration_names_the_flag() {
        let error = |config: AuthConfig| Authenticator::new(config).unwrap_err().to_string();
        assert!(error(AuthConfig::new("not a url", "a")).starts_with("--oidc-issuer: \"not a url\" is not a URL"));
        assert!(
            error(AuthConfig::new("ftp://idp", "a")).starts_with("--oidc-issuer: \"ftp://idp\" is not an http(s) URL")
        );
        assert_eq!(error(AuthConfig::new("https://idp", " ")), "--oidc-audience: must not be empty");
        let mut config = AuthConfig::new("https://idp", "a");
        config.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(error(config).starts_with("--oidc-ca-file: /nonexistent/ca.pem: "));
    }
}
