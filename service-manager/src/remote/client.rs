//! The HTTP client of the HSM server's API v1: the TLS settings of the target (its CA, or no
//! check at all when asked), the bearer token of the session (refreshed before a request when
//! it has expired), URLs built from path segments (never by pasting text into a path), and
//! every answer turned into a typed value or a [`RemoteError`] carrying `hsm`'s exit code.
//! Tokens are only ever put in the `Authorization` header; no error message contains one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::config::{Config, Session, Target};
use super::{login, now, RemoteError};

/// `GET /v1/info`: what the server is and where to sign in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Info {
    /// The server's version.
    pub server_version: String,
    /// The API version, `v1`.
    pub api_version: String,
    /// The catalog's name.
    pub catalog: String,
    /// The identity provider; `None` when the server checks no token.
    #[serde(default)]
    pub auth: Option<AuthInfo>,
}

/// The identity provider the server trusts (`auth` of `GET /v1/info`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthInfo {
    /// The OIDC issuer URL.
    pub issuer: String,
    /// The client id `hsm` signs in as.
    pub client_id: String,
    /// The audience the server expects in access tokens.
    #[serde(default)]
    pub audience: Option<String>,
}

/// The API's error shape.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: String,
    message: String,
}

/// How early before its expiry an access token is refreshed.
const REFRESH_MARGIN: u64 = 30;

/// Checks a server URL given to `hsm api`: `https://HOST[:PORT][/PATH]`, or `http://` to a
/// loopback address only (tokens never cross a network in clear text); no query, fragment
/// or user. Returns it without a trailing slash.
pub fn check_url(text: &str) -> Result<String, RemoteError> {
    let bad = |why: &str| RemoteError::Usage(format!("{}: {why}", sdl::error::quote(text)));
    let url = Url::parse(text.trim()).map_err(|e| bad(&format!("not a URL ({e}); e.g. https://hsm.example.com")))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host; e.g. https://hsm.example.com"))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
            let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad("plain http is only accepted for a loopback address; use https://"));
            }
        }
        other => return Err(bad(&format!("the scheme must be https (or http for loopback), not {other}"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a URL with a user name or password is not accepted; sign in with `hsm login`"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("the URL may not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The HTTP client for `target`: its CA certificates on top of the public roots, or no
/// certificate check with `skip_ssl_validation`; no redirects followed (a token is never
/// sent anywhere else); `timeout` for each whole request.
pub fn http_client(target: &Target, timeout: Duration) -> Result<reqwest::Client, RemoteError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("hsm/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout);
    if let Some(pem) = &target.ca_certificates {
        for certificate in ca_certificates(pem)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if target.skip_ssl_validation {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| RemoteError::Config(format!("cannot set up the HTTP client: {}", why(&e))))
}

/// The certificates of a PEM bundle; at least one.
pub fn ca_certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, RemoteError> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| RemoteError::Usage(format!("not PEM certificates: {}", why(&e))))?;
    if certificates.is_empty() {
        return Err(RemoteError::Usage("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The most specific reason of a transport error (the innermost source), with the outer one.
pub fn why(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reasons = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        source = inner.source();
    }
    // reqwest's outermost text repeats the URL, which the caller already names.
    if reasons.len() > 1 {
        reasons.remove(0);
    }
    reasons.join(": ")
}

/// The transport failure of a request to `url`.
pub fn unreachable(url: &Url, error: &reqwest::Error) -> RemoteError {
    let mut shown = url.clone();
    shown.set_query(None);
    let why = if error.is_timeout() { format!("no answer in time ({})", why(error)) } else { why(error) };
    RemoteError::Unreachable { url: shown.to_string(), why }
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub fn endpoint(base: &str, segments: &[&str]) -> Result<Url, RemoteError> {
    let mut url = Url::parse(base).map_err(|e| RemoteError::Config(format!("target {base}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| RemoteError::Config(format!("target {base} cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Reads a JSON answer as `T`; an answer of another shape names the JSON path.
pub fn parse<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, RemoteError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        RemoteError::Protocol(format!("{url} answered JSON this hsm cannot read at {}: {}", e.path(), e.inner()))
    })
}

/// The error an answer with a status other than 2xx stands for.
pub fn error_of(url: &Url, status: StatusCode, body: &[u8], signed_in: bool) -> RemoteError {
    let api: Option<ApiError> = serde_json::from_slice(body).ok();
    if status == StatusCode::UNAUTHORIZED {
        let host = url.host_str().unwrap_or_default();
        return RemoteError::NotSignedIn(match (signed_in, api) {
            (false, _) => format!("not signed in to {host}"),
            (true, Some(api)) => format!("{host} did not accept your session ({})", api.message),
            (true, None) => format!("{host} did not accept your session"),
        });
    }
    match api {
        Some(api) => RemoteError::Api { status: status.as_u16(), code: api.code, message: api.message },
        None => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).filter(|c| !c.is_control()).collect();
            RemoteError::Protocol(format!("{url} answered HTTP {status}: {text}"))
        }
    }
}

/// `GET /v1/info` of the server at `base`, without a token.
pub async fn fetch_info(http: &reqwest::Client, base: &str) -> Result<Info, RemoteError> {
    let url = endpoint(base, &["v1", "info"])?;
    let answer = http.get(url.clone()).send().await.map_err(|e| unreachable(&url, &e))?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if !status.is_success() {
        // GET /v1/info needs no token: a 401 too means something else answers here.
        return Err(match error_of(&url, status, &body, false) {
            RemoteError::Protocol(_) | RemoteError::NotSignedIn(_) => RemoteError::Protocol(format!(
                "{url} answered HTTP {status}: is {base} an HSM server? (it answers GET /v1/info)"
            )),
            other => other,
        });
    }
    parse(&url, &body).map_err(|e| RemoteError::Protocol(format!("{e} (is {base} an HSM server?)")))
}

/// The server of the configuration, with its session: every request of a remote verb.
pub struct Remote {
    dir: PathBuf,
    config: Config,
    target: Target,
    http: reqwest::Client,
}

impl Remote {
    /// The target stored in `dir`; `None` when none is set. `timeout` bounds each request.
    pub fn open(dir: &Path, timeout: Duration) -> Result<Option<Remote>, RemoteError> {
        let config = Config::load(dir)?;
        let Some(target) = config.target.clone() else { return Ok(None) };
        let http = http_client(&target, timeout)?;
        Ok(Some(Remote { dir: dir.to_path_buf(), config, target, http }))
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The session, when signed in.
    pub fn session(&self) -> Option<&Session> {
        self.config.session.as_ref()
    }

    /// The HTTP client (the target's TLS settings; also used for its identity provider).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Stores `session` (or forgets the session with `None`) in the configuration file.
    pub fn save_session(&mut self, session: Option<Session>) -> Result<(), RemoteError> {
        self.config.session = session;
        self.config.save(&self.dir)
    }

    /// The access token to send, refreshed first when it has expired (the new tokens are
    /// saved); `None` when not signed in.
    async fn bearer(&mut self) -> Result<Option<String>, RemoteError> {
        let Some(session) = self.config.session.clone() else { return Ok(None) };
        let expired = session.expires_at.is_some_and(|at| at <= now() + REFRESH_MARGIN);
        if !expired {
            return Ok(Some(session.access_token));
        }
        if session.refresh_token.is_none() {
            return Err(RemoteError::NotSignedIn(format!("your session as {} has expired", session.user)));
        }
        let refreshed = login::refresh(&self.http, &session).await.map_err(|e| match e {
            RemoteError::Login(why) => RemoteError::NotSignedIn(format!(
                "your session as {} has expired and cannot be renewed ({why})",
                session.user
            )),
            other => other,
        })?;
        let token = refreshed.access_token.clone();
        self.config.session = Some(refreshed);
        self.config.save(&self.dir)?;
        Ok(Some(token))
    }

    /// Sends `method` to the API path `segments` (with `query` and a JSON `body`) and returns
    /// the body of a 2xx answer; any other answer is an error.
    pub async fn call(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<(Url, Vec<u8>), RemoteError> {
        let mut url = endpoint(&self.target.url, segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let token = self.bearer().await?;
        let mut request = self.http.request(method, url.clone());
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = answer.status();
        let bytes = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(error_of(&url, status, &bytes, token.is_some()));
        }
        Ok((url, bytes.to_vec()))
    }

    /// `GET` of the API path `segments` as a stream (server-sent events), which may stay open
    /// for up to `limit` rather than the client's request timeout; the answer once its status
    /// is a 2xx, its body still to be read.
    pub async fn open_stream(&mut self, segments: &[&str], limit: Duration) -> Result<reqwest::Response, RemoteError> {
        let url = endpoint(&self.target.url, segments)?;
        let token = self.bearer().await?;
        let mut request =
            self.http.get(url.clone()).header(reqwest::header::ACCEPT, "text/event-stream").timeout(limit);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = answer.status();
        if !status.is_success() {
            let bytes = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
            return Err(error_of(&url, status, &bytes, token.is_some()));
        }
        Ok(answer)
    }

    /// `GET` of the API path `segments`, read as `T`.
    pub async fn get<T: DeserializeOwned>(&mut self, segments: &[&str]) -> Result<T, RemoteError> {
        let (url, body) = self.call(Method::GET, segments, &[], None).await?;
        parse(&url, &body)
    }

    /// `method` with a JSON `body` to the API path `segments`, the answer read as `T`.
    pub async fn send<T: DeserializeOwned>(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, RemoteError> {
        let (url, answer) = self.call(method, segments, query, body).await?;
        parse(&url, &answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(check_url("https://hsm.example.com/").unwrap(), "https://hsm.example.com");
        assert_eq!(check_url("https://hsm.example.com:8443/api/").unwrap(), "https://hsm.example.com:8443/api");
        assert_eq!(check_url("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(check_url("http://localhost:8080").unwrap(), "http://localhost:8080");
        assert_eq!(check_url("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        for (bad, why) in [
            ("hsm.example.com", "not a URL"),
            ("http://hsm.example.com", "only accepted for a loopback"),
            ("ftp://hsm.example.com", "scheme must be https"),
            ("https://admin:pw@hsm.example.com", "user name or password"),
            ("https://hsm.example.com/?x=1", "query or fragment"),
        ] {
            let error = check_url(bad).unwrap_err();
            assert!(matches!(error, RemoteError::Usage(_)), "{bad}");
            assert!(error.to_string().contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn endpoints_encode_each_segment() {
        let url = endpoint("https://h.example/base", &["v1", "services", "a/b c"]).unwrap();
        assert_eq!(url.as_str(), "https://h.example/base/v1/services/a%2Fb%20c");
        let url = endpoint("http://127.0.0.1:1", &["v1", "info"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/v1/info");
    }

    #[test]
    fn errors_in_the_api_shape_keep_code_and_message() {
        let url = endpoint("http://127.0.0.1:1", &["v1", "services", "x"]).unwrap();
        let body = br#"{"code":"unknown_service","message":"id: unknown service \"x\"","status":404}"#;
        let error = error_of(&url, StatusCode::NOT_FOUND, body, true);
        assert_eq!(error.exit_code(), 2);
        assert_eq!(error.to_string(), "id: unknown service \"x\"");
        let error = error_of(&url, StatusCode::UNAUTHORIZED, b"", false);
        assert_eq!(error.to_string(), "not signed in to 127.0.0.1: run `hsm login`");
        let error = error_of(&url, StatusCode::BAD_GATEWAY, b"<html>\nbad gateway</html>", false);
        assert!(error.to_string().ends_with("answered HTTP 502 Bad Gateway: <html>bad gateway</html>"), "{error}");
    }
}
