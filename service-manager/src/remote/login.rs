//! Signing in through the server's identity provider (OAuth 2.0 / OpenID Connect): discovery
//! of its endpoints from the issuer the server names, the resource owner password grant
//! (RFC 6749 §4.3), the device authorization grant (RFC 8628) and refreshing (RFC 6749 §6).
//! Who signed in is read from the tokens' claims for display only (the server verifies them).
//! Passwords, device codes and tokens go into request bodies only, never into a message.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::client::{parse, unreachable, AuthInfo};
use super::config::Session;
use super::{now, RemoteError};

/// The scopes asked for: an ID token with the user's name and groups (the server maps groups
/// to roles), and a refresh token to stay signed in.
pub const SCOPE: &str = "openid profile email groups offline_access";

/// The device grant's grant type (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The identity provider's endpoints and what `hsm` signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The issuer.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The audience (resource) asked for, when the server names one.
    pub audience: Option<String>,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Device authorization endpoint, when the provider has one.
    pub device_authorization_endpoint: Option<String>,
    /// Grant types the provider says it supports (empty when it does not say).
    pub grant_types: Vec<String>,
}

/// The part of the OpenID provider metadata `hsm` reads.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    grant_types_supported: Vec<String>,
}

/// A token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    id_token: Option<String>,
}

/// A token endpoint's error (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// What the device authorization endpoint answers (RFC 8628 §3.2).
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// What the user is asked to do to finish a device sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePrompt {
    /// Where to go.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// The same address with the code in it, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// Reads the provider's metadata (`<issuer>/.well-known/openid-configuration`) and checks
/// that it is the issuer the server named.
pub async fn discover(http: &reqwest::Client, auth: &AuthInfo) -> Result<Provider, RemoteError> {
    let issuer = auth.issuer.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{issuer}/.well-known/openid-configuration"))
        .map_err(|e| RemoteError::Protocol(format!("the server names issuer {:?}, not a URL: {e}", auth.issuer)))?;
    let answer = http.get(url.clone()).send().await.map_err(|e| unreachable(&url, &e))?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if !status.is_success() {
        return Err(RemoteError::Protocol(format!("{url} answered HTTP {status}: is {issuer} an OpenID provider?")));
    }
    let metadata: Metadata = parse(&url, &body)?;
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(RemoteError::Protocol(format!(
            "{url} says its issuer is {}, not {issuer} as the server says: refusing to sign in there",
            metadata.issuer
        )));
    }
    Ok(Provider {
        issuer: metadata.issuer,
        client_id: auth.client_id.clone(),
        audience: auth.audience.clone().filter(|a| !a.is_empty()),
        token_endpoint: metadata.token_endpoint,
        device_authorization_endpoint: metadata.device_authorization_endpoint,
        grant_types: metadata.grant_types_supported,
    })
}

impl Provider {
    /// Whether the provider says it supports `grant` (a provider that lists none is asked
    /// anyway).
    pub fn supports(&self, grant: &str) -> bool {
        self.grant_types.is_empty() || self.grant_types.iter().any(|g| g == grant)
    }

    /// The form fields every grant request carries: client id, scope and audience.
    fn common(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("client_id", self.client_id.clone()), ("scope", SCOPE.to_string())];
        if let Some(audience) = &self.audience {
            // RFC 8707's resource indicator: the provider issues a token for the server.
            form.push(("resource", audience.clone()));
        }
        form
    }
}

/// Posts `form` to the token endpoint: the tokens, or the provider's error code and text.
async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, String)],
) -> Result<Result<Tokens, OAuthError>, RemoteError> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| RemoteError::Protocol(format!("token endpoint {endpoint:?} is not a URL: {e}")))?;
    let answer = http.post(url.clone()).form(form).send().await.map_err(|e| unreachable(&url, &e))?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if status.is_success() {
        return Ok(Ok(parse(&url, &body)?));
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(error) => Ok(Err(error)),
        Err(_) => Err(RemoteError::Protocol(format!("{url} answered HTTP {status} without an OAuth error"))),
    }
}

/// The message of a refused grant.
fn refused(error: &OAuthError) -> String {
    let what = match error.error.as_str() {
        "invalid_grant" => "the provider refused the credentials",
        "unauthorized_client" | "unsupported_grant_type" => {
            "the provider does not allow this way of signing in for hsm"
        }
        "invalid_client" => "the provider does not know hsm's client id",
        "access_denied" => "the sign-in was denied",
        "expired_token" => "the code expired before the sign-in was finished",
        _ => "the provider refused",
    };
    let detail = error.error_description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
    format!("{what} ({}{detail})", error.error)
}

/// Signs `user` in with `password` (the password grant).
pub async fn password(
    http: &reqwest::Client,
    provider: &Provider,
    user: &str,
    password: &str,
) -> Result<Session, RemoteError> {
    if !provider.supports("password") {
        return Err(RemoteError::Login(format!(
            "{} does not offer sign-in with a password; run `hsm login` without -u to sign in in a browser",
            provider.issuer
        )));
    }
    let mut form = vec![("grant_type", "password".to_string()), ("username", user.to_string())];
    form.push(("password", password.to_string()));
    form.extend(provider.common());
    match token_request(http, &provider.token_endpoint, &form).await? {
        Ok(tokens) => session(provider, tokens, Some(user)),
        Err(error) => Err(RemoteError::Login(refused(&error))),
    }
}

/// Signs in with the device authorization grant: `show` is given the address and code to
/// enter, then the token endpoint is polled at the interval the provider asks for (slower
/// after `slow_down`) until the sign-in is finished, denied or the code expires.
pub async fn device(
    http: &reqwest::Client,
    provider: &Provider,
    show: impl FnOnce(&DevicePrompt),
) -> Result<Session, RemoteError> {
    let endpoint = provider.device_authorization_endpoint.as_deref().ok_or_else(|| {
        RemoteError::Login(format!(
            "{} has no device authorization endpoint; sign in with -u USER (and -p PASSWORD or the prompt)",
            provider.issuer
        ))
    })?;
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| RemoteError::Protocol(format!("device endpoint {endpoint:?} is not a URL: {e}")))?;
    let answer = http.post(url.clone()).form(&provider.common()).send().await.map_err(|e| unreachable(&url, &e))?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<OAuthError>(&body) {
            Ok(error) => RemoteError::Login(refused(&error)),
            Err(_) => RemoteError::Protocol(format!("{url} answered HTTP {status}")),
        });
    }
    let authorization: DeviceAuthorization = parse(&url, &body)?;
    show(&DevicePrompt {
        verification_uri: authorization.verification_uri.clone(),
        user_code: authorization.user_code.clone(),
        verification_uri_complete: authorization.verification_uri_complete.clone(),
        expires_in: Duration::from_secs(authorization.expires_in),
    });
    let deadline = now() + authorization.expires_in;
    // RFC 8628 §3.5: 5 seconds unless the provider says otherwise; 5 more after each slow_down.
    let mut interval = authorization.interval.unwrap_or(5).max(1);
    let mut form = vec![("grant_type", DEVICE_GRANT.to_string())];
    form.push(("device_code", authorization.device_code.clone()));
    form.push(("client_id", provider.client_id.clone()));
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        match token_request(http, &provider.token_endpoint, &form).await? {
            Ok(tokens) => return session(provider, tokens, None),
            Err(error) if error.error == "authorization_pending" => {}
            Err(error) if error.error == "slow_down" => interval += 5,
            Err(error) => return Err(RemoteError::Login(refused(&error))),
        }
        if now() >= deadline {
            return Err(RemoteError::Login("the code expired before the sign-in was finished".into()));
        }
    }
}

/// New tokens for `current` from its refresh token (the provider may rotate it).
pub async fn refresh(http: &reqwest::Client, current: &Session) -> Result<Session, RemoteError> {
    let Some(refresh_token) = &current.refresh_token else {
        return Err(RemoteError::Login("no refresh token".into()));
    };
    let mut form = vec![("grant_type", "refresh_token".to_string())];
    form.push(("refresh_token", refresh_token.clone()));
    form.push(("client_id", current.client_id.clone()));
    if let Some(audience) = &current.audience {
        form.push(("resource", audience.clone()));
    }
    match token_request(http, &current.token_endpoint, &form).await? {
        Ok(tokens) => {
            let provider = Provider {
                issuer: current.issuer.clone(),
                client_id: current.client_id.clone(),
                audience: current.audience.clone(),
                token_endpoint: current.token_endpoint.clone(),
                device_authorization_endpoint: None,
                grant_types: Vec::new(),
            };
            let mut session = session(&provider, tokens, Some(&current.user))?;
            // A provider that does not rotate refresh tokens keeps the old one valid.
            if session.refresh_token.is_none() {
                session.refresh_token = current.refresh_token.clone();
            }
            Ok(session)
        }
        Err(error) => Err(RemoteError::Login(refused(&error))),
    }
}

/// The session of `tokens`: who signed in is the ID token's (else the access token's)
/// `preferred_username`, `email`, `name` or `sub`; `user` when none says.
fn session(provider: &Provider, tokens: Tokens, user: Option<&str>) -> Result<Session, RemoteError> {
    let from_claims = tokens
        .id_token
        .as_deref()
        .and_then(user_of)
        .or_else(|| user_of(&tokens.access_token))
        .or(user.map(String::from));
    Ok(Session {
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
        audience: provider.audience.clone(),
        token_endpoint: provider.token_endpoint.clone(),
        user: from_claims.unwrap_or_else(|| "(unknown user)".into()),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.expires_in.map(|seconds| now() + seconds),
    })
}

/// The user named by a JWT's claims (not verified: for display only); `None` for a token
/// that is not a JWT.
pub fn user_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["preferred_username", "email", "name", "sub"]
        .iter()
        .find_map(|claim| claims.get(claim).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(String::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let part = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2ln", part(&serde_json::json!({"alg": "RS256"})), part(&claims))
    }

    #[test]
    fn the_user_is_read_from_the_claims() {
        assert_eq!(
            user_of(&jwt(serde_json::json!({"sub": "42", "preferred_username": "ada"}))).as_deref(),
            Some("ada")
        );
        assert_eq!(user_of(&jwt(serde_json::json!({"sub": "42"}))).as_deref(), Some("42"));
        assert_eq!(user_of("opaque-token"), None);
        assert_eq!(user_of("a.!!!.c"), None);
    }

    #[test]
    fn refusals_name_the_oauth_error_and_no_secret() {
        let error = OAuthError { error: "invalid_grant".into(), error_description: Some("wrong password".into()) };
        assert_eq!(refused(&error), "the provider refused the credentials (invalid_grant: wrong password)");
    }
}
