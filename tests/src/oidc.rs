//! A real OpenID provider for tests: npm `oidc-provider` 9 run by `tests/oidc/server.mjs` with
//! Node (`STRATUS_NODE`, else `node` on PATH), on a free loopback port, killed by its PID when
//! dropped. Its packages are installed with `npm ci` into `tests/oidc/node_modules` when they are
//! missing (never otherwise, so tests run offline once installed; `scripts/test` installs them).
//!
//! The provider issues JWT access tokens (RS256, `typ: at+jwt`) for the configured resources,
//! each carrying `sub`, `preferred_username`, `groups`, `client_id`, `iss`, `aud`, `exp`.
//! Clients get them by the device authorization grant (a user confirms the code and signs in
//! with their password through the provider's pages: [`Provider::approve_device`] does what
//! the user's browser does, over plain HTTP) or by the password grant
//! ([`Provider::password_token`]); refresh tokens with `offline_access`.
//!
//! Blocking calls run on a thread of their own, so the helpers can be used from async tests
//! too.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// The device authorization grant's type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A user of the provider.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name, also the token's `sub` and `preferred_username`.
    pub username: String,
    /// Password.
    pub password: String,
    /// The `groups` claim.
    pub groups: Vec<String>,
}

/// A resource (API) access tokens are issued for.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The resource indicator (an absolute URI) clients may ask for with `resource=`.
    pub indicator: String,
    /// The tokens' `aud` (default: the indicator).
    pub audience: Option<String>,
    /// Access token lifetime in seconds (default 600).
    pub access_token_ttl: Option<u64>,
}

/// What the provider serves: resources (the first is the default one), public clients, users.
#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer named in tokens and discovery (default `http://127.0.0.1:<port>`); another
    /// provider's issuer makes tokens that claim to be its but are signed by other keys.
    pub issuer: Option<String>,
    /// Resources; the first is used when a client names none.
    pub resources: Vec<Resource>,
    /// Public client ids (device code, refresh token and password grants allowed).
    pub clients: Vec<String>,
    /// Users.
    pub users: Vec<User>,
}

/// The audience of [`Config::standard`].
pub const HSM_AUDIENCE: &str = "https://hsm.stratus.test";

impl Config {
    /// One resource whose tokens have `audience`, the client `hsm`, no users.
    pub fn new(audience: &str) -> Config {
        Config {
            issuer: None,
            resources: vec![Resource { indicator: audience.to_string(), audience: None, access_token_ttl: None }],
            clients: vec!["hsm".to_string()],
            users: Vec::new(),
        }
    }

    /// The HSM server's roles: audience [`HSM_AUDIENCE`], client `hsm`, users `admin`
    /// (group `hsm-admins`), `developer` (`hsm-developers`), `viewer` (`hsm-viewers`) and
    /// `nobody` (group `staff`), each with the password `<name>-password`.
    pub fn standard() -> Config {
        Config::new(HSM_AUDIENCE)
            .user("admin", "admin-password", &["hsm-admins"])
            .user("developer", "developer-password", &["hsm-developers"])
            .user("viewer", "viewer-password", &["hsm-viewers"])
            .user("nobody", "nobody-password", &["staff"])
    }

    /// Adds a user.
    pub fn user(mut self, username: &str, password: &str, groups: &[&str]) -> Config {
        self.users.push(User {
            username: username.to_string(),
            password: password.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        self
    }

    /// Adds a resource.
    pub fn resource(mut self, indicator: &str, audience: Option<&str>, access_token_ttl: Option<u64>) -> Config {
        self.resources.push(Resource {
            indicator: indicator.to_string(),
            audience: audience.map(str::to_string),
            access_token_ttl,
        });
        self
    }

    /// The same with the issuer `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Config {
        self.issuer = Some(issuer.to_string());
        self
    }

    /// The JSON configuration `server.mjs` reads (`tests/README.md` describes it).
    pub fn to_json(&self) -> Value {
        let mut config = json!({
            "port": 0,
            "resources": self.resources.iter().map(|r| {
                let mut resource = json!({"indicator": r.indicator});
                if let Some(audience) = &r.audience { resource["audience"] = json!(audience); }
                if let Some(ttl) = r.access_token_ttl { resource["access_token_ttl"] = json!(ttl); }
                resource
            }).collect::<Vec<_>>(),
            "clients": self.clients.iter().map(|c| json!({"client_id": c})).collect::<Vec<_>>(),
            "users": self.users.iter().map(|u| json!({"username": u.username, "password": u.password, "groups": u.groups})).collect::<Vec<_>>(),
        });
        if let Some(issuer) = &self.issuer {
            config["issuer"] = json!(issuer);
        }
        config
    }
}

/// A token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    /// The access token (a JWT).
    pub access_token: String,
    /// Present with `offline_access`.
    pub refresh_token: Option<String>,
    /// Present with `openid` in a device flow.
    pub id_token: Option<String>,
    /// Seconds.
    pub expires_in: u64,
}

/// A device authorization answer (RFC 8628 §3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    /// Polled for at the token endpoint.
    pub device_code: String,
    /// What the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code filled in.
    pub verification_uri_complete: Option<String>,
    /// Seconds.
    pub expires_in: u64,
}

/// A running provider.
pub struct Provider {
    child: Child,
    url: String,
    issuer: String,
    ca_certificate: Option<String>,
    config: Config,
    log: PathBuf,
    /// The temporary folder of its files (none when the caller named a folder).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// Node: `STRATUS_NODE`, else `node` on PATH.
pub fn node() -> PathBuf {
    std::env::var_os("STRATUS_NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"))
}

/// Runs `npm ci` in `tests/oidc` when `node_modules/oidc-provider` is missing, one process at
/// a time (a lock file), so concurrent test binaries do not race.
pub fn install() {
    let dir = project_dir();
    let installed = || dir.join("node_modules/oidc-provider/package.json").exists();
    if installed() {
        return;
    }
    let lock = std::fs::File::create(std::env::temp_dir().join("stratus-oidc-npm-ci.lock")).expect("the npm lock file");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0, "locking the npm lock file");
    if installed() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("npm (Node's package manager) runs: install Node.js and npm, or run scripts/test");
    assert!(
        output.status.success(),
        "npm ci in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts `server.mjs` with `config` (written into `dir`, readable by its owner only: it
/// holds the users' passwords; its stderr appended to `dir/provider.log`) and waits up to 30 s
/// for its ready line (a stalled provider is started once more): the process and its URL. With `die_with_parent`, the provider gets
/// SIGTERM when the thread that started it ends.
fn spawn(config: &Value, dir: &Path, die_with_parent: bool) -> (Child, String) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let file = dir.join("provider.json");
    let _ = std::fs::remove_file(&file);
    let mut private = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file).unwrap();
    std::io::Write::write_all(&mut private, &serde_json::to_vec_pretty(config).unwrap()).unwrap();
    drop(private);
    let log = dir.join("provider.log");
    // Twice in many hundreds of starts (under a loaded suite) a provider printed nothing for
    // 60 s. A stalled one is asked for Node's diagnostic report (its JavaScript stack and
    // open handles; printed with the test's output and kept in TMPDIR/stratus-oidc-stalls.log
    // for whoever looks into it), stopped, and started once more.
    for attempt in 1..=2 {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut command = Command::new(node());
        command
            .args(["--report-on-signal", "--report-signal=SIGUSR2"])
            .arg(format!("--report-directory={}", dir.display()))
            .arg(project_dir().join("server.mjs"))
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if die_with_parent {
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!("{} does not start: {e} (install Node.js or set STRATUS_NODE)", node().display())
        });
        let line = crate::process::first_line(&mut child, Duration::from_secs(30));
        if let Some(url) = line.trim().strip_prefix("ready ") {
            return (child, url.to_string());
        }
        let stalled = line.is_empty() && child.try_wait().ok().flatten().is_none();
        let report = if stalled { stall_report(&mut child, dir) } else { String::new() };
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if !stalled || attempt == 2 {
            panic!("the OpenID provider did not start (it said {line:?}):\n{said}\n{report}");
        }
        eprintln!("the OpenID provider printed nothing within 30 s; starting it again\n{report}");
    }
    unreachable!("the loop returns or panics")
}

/// Node's diagnostic report of a stalled provider (SIGUSR2; `--report-on-signal`): its
/// JavaScript stack and active libuv handles (a listening socket or not), also appended to
/// TMPDIR/stratus-oidc-stalls.log. The event loop writes it, so a blocked loop gives none.
fn stall_report(child: &mut Child, dir: &Path) -> String {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return String::new() };
    // SAFETY: signals our own child by its PID.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    let started = std::time::Instant::now();
    let report = loop {
        let found = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("report.") && n.ends_with(".json"))
        });
        if let Some(value) =
            found.and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break value;
        }
        if started.elapsed() > Duration::from_secs(5) {
            // The report is written from the event loop: none means the loop itself is stuck.
            break Value::Null;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let handles: Vec<String> = report["libuv"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|handle| handle["is_active"] == true)
        .map(|handle| format!("{} {}", handle["type"].as_str().unwrap_or("?"), handle["localEndpoint"]))
        .collect();
    let text = match report {
        Value::Null => {
            "stalled OpenID provider: no diagnostic report within 5 s (its event loop is blocked)\n".to_string()
        }
        _ => format!(
            "stalled OpenID provider: JavaScript stack {}\nactive libuv handles: {}\n",
            report["javascriptStack"],
            handles.join(", ")
        ),
    };
    if let Ok(mut file) =
        std::fs::OpenOptions::new().create(true).append(true).open(std::env::temp_dir().join("stratus-oidc-stalls.log"))
    {
        let _ = std::io::Write::write_all(&mut file, text.as_bytes());
    }
    text
}

/// Runs `f` on a thread of its own (blocking HTTP must not run on an async runtime's thread).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// An HTTP client with a cookie jar, trusting `ca` (PEM) when given.
fn client(ca: Option<&str>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder().cookie_store(true).timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("a PEM CA"));
    }
    builder.build().expect("an HTTP client")
}

/// The value of the hidden form field `name` in `html`.
fn form_field(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// The `action` of the form with id `id` in `html`.
fn form_action(html: &str, id: &str) -> Option<String> {
    let form = &html[html.find(&format!("id=\"{id}\""))?..];
    let start = form.find("action=\"")? + 8;
    let end = form[start..].find('"')?;
    Some(form[start..start + end].to_string())
}

/// The claims of a JWT, not verified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

impl Provider {
    /// Installs the packages if needed, starts the provider with `config` and waits (up to 60
    /// s) for its ready line.
    pub fn start(config: &Config) -> Provider {
        Provider::start_with(config, false)
    }

    /// The same over HTTPS, with a serving certificate for 127.0.0.1 from a fresh private CA
    /// ([`Provider::ca_certificate`]): the issuer is `https://127.0.0.1:PORT`.
    pub fn start_tls(config: &Config) -> Provider {
        Provider::start_with(config, true)
    }

    fn start_with(config: &Config, tls: bool) -> Provider {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = tls.then(|| stratus_pki::Ca::generate("test OpenID provider CA").expect("a CA"));
        let mut provider = Provider::start_in(config, dir.path(), ca.as_ref(), 1, false);
        provider._dir = Some(dir);
        provider
    }

    /// Starts the provider with its files (`provider.json`, `provider.log`, and with `ca`
    /// `tls.crt`/`tls.key`, a serving certificate for 127.0.0.1 and localhost valid `days`
    /// days: HTTPS) in `dir`, which stays. With `die_with_parent` it gets SIGTERM when the
    /// calling thread ends (a long-running process's child, `dev_cluster`).
    pub fn start_in(
        config: &Config,
        dir: &Path,
        ca: Option<&stratus_pki::Ca>,
        days: i64,
        die_with_parent: bool,
    ) -> Provider {
        install();
        let log = dir.join("provider.log");
        let mut json = config.to_json();
        let mut ca_certificate = None;
        if let Some(ca) = ca {
            let serving =
                ca.issue_serving("test OpenID provider", &["127.0.0.1", "localhost"], days).expect("a certificate");
            let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
            std::fs::write(&cert, &serving.certificate).unwrap();
            let _ = std::fs::remove_file(&key);
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).unwrap();
            std::io::Write::write_all(&mut file, serving.key.as_bytes()).unwrap();
            json["tls"] = json!({"cert_file": cert, "key_file": key});
            ca_certificate = Some(ca.certificate().to_string());
        }
        let (child, url) = spawn(&json, dir, die_with_parent);
        let issuer = config.issuer.clone().unwrap_or_else(|| url.clone());
        Provider { child, url, issuer, ca_certificate, config: config.clone(), log, _dir: None }
    }

    /// The provider's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// PEM of the CA of its serving certificate ([`Provider::start_tls`]).
    pub fn ca_certificate(&self) -> Option<&str> {
        self.ca_certificate.as_deref()
    }

    /// Stops the provider and starts it again on the same port with the same issuer and
    /// configuration but new signing keys (a key rotation; tokens issued before are lost
    /// with its in-memory state).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut config = self.config.to_json();
        config["issuer"] = json!(self.issuer);
        let dir = self.log.parent().expect("the provider's folder").to_path_buf();
        if self.ca_certificate.is_some() {
            config["tls"] = json!({"cert_file": dir.join("tls.crt"), "key_file": dir.join("tls.key")});
        }
        config["port"] = json!(self.url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("a port"));
        let (child, url) = spawn(&config, &dir, false);
        assert_eq!(url, self.url, "the provider came back elsewhere");
        self.child = child;
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash) unless the configuration
    /// names another.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where it listens, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The provider's stderr so far (for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The configured user `username`.
    pub fn user(&self, username: &str) -> &User {
        self.config.users.iter().find(|u| u.username == username).unwrap_or_else(|| panic!("no user {username}"))
    }

    /// POSTs `form` to the token endpoint: the status and the JSON answer.
    pub fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}/token", self.url);
        let ca = self.ca_certificate.clone();
        let form: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        off_runtime(move || {
            let response = client(ca.as_deref()).post(url).form(&form).send().expect("the token endpoint answers");
            let status = response.status().as_u16();
            (status, response.json().unwrap_or(Value::Null))
        })
    }

    fn tokens(&self, form: &[(&str, &str)]) -> Result<Tokens, Value> {
        match self.token_request(form) {
            (200, body) => Ok(serde_json::from_value(body).expect("a token answer")),
            (_, body) => Err(body),
        }
    }

    /// The password grant for client `hsm` with scope `openid offline_access` and the
    /// default resource; `Err` holds the provider's error answer (`invalid_grant` for a wrong
    /// password).
    pub fn password_token(&self, username: &str, password: &str) -> Result<Tokens, Value> {
        self.password_token_for(username, password, None)
    }

    /// The same for the resource `resource` (its audience and lifetime).
    pub fn password_token_for(&self, username: &str, password: &str, resource: Option<&str>) -> Result<Tokens, Value> {
        let mut form = vec![
            ("grant_type", "password"),
            ("client_id", "hsm"),
            ("username", username),
            ("password", password),
            ("scope", "openid offline_access"),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        self.tokens(&form)
    }

    /// An access token of the configured user `username` (password grant); panics if refused.
    pub fn access_token(&self, username: &str) -> String {
        let user = self.user(username);
        self.password_token(&user.username, &user.password)
            .unwrap_or_else(|e| panic!("password grant for {username}: {e}"))
            .access_token
    }

    /// New tokens for a refresh token (client `hsm`).
    pub fn refresh(&self, refresh_token: &str) -> Result<Tokens, Value> {
        self.tokens(&[("grant_type", "refresh_token"), ("client_id", "hsm"), ("refresh_token", refresh_token)])
    }

    /// Starts a device authorization for client `hsm` with `scope`.
    pub fn device_authorization(&self, scope: &str) -> DeviceAuthorization {
        let url = format!("{}/device/auth", self.url);
        let ca = self.ca_certificate.clone();
        let scope = scope.to_string();
        off_runtime(move || {
            let response = client(ca.as_deref())
                .post(url)
                .form(&[("client_id", "hsm"), ("scope", scope.as_str())])
                .send()
                .expect("the device authorization endpoint answers");
            assert!(response.status().is_success(), "device authorization: {}", response.status());
            response.json().expect("a device authorization answer")
        })
    }

    /// Polls the token endpoint once for `device_code`: tokens, or the error answer
    /// (`authorization_pending` until the user has approved).
    pub fn device_token(&self, device_code: &str) -> Result<Tokens, Value> {
        self.tokens(&[("grant_type", DEVICE_CODE_GRANT), ("client_id", "hsm"), ("device_code", device_code)])
    }

    /// What a user does in a browser for a device flow: opens `verification_uri` (the
    /// provider's page), enters `user_code`, confirms, and signs in with `username` and
    /// `password` on the login form. `Err` says what the pages answered instead (a wrong
    /// password: `"401: ..."`).
    pub fn approve_device(
        &self,
        verification_uri: &str,
        user_code: &str,
        username: &str,
        password: &str,
    ) -> Result<(), String> {
        let (uri, code, user, pass) =
            (verification_uri.to_string(), user_code.to_string(), username.to_string(), password.to_string());
        let base = self.url.clone();
        let ca = self.ca_certificate.clone();
        off_runtime(move || {
            let http = client(ca.as_deref());
            let text = |r: reqwest::blocking::Response| -> (u16, String, String) {
                let status = r.status().as_u16();
                let url = r.url().to_string();
                let mut body = String::new();
                let _ = r.take(1 << 20).read_to_string(&mut body);
                (status, url, body)
            };
            let get = |url: &str| http.get(url).send().map(text).map_err(|e| format!("GET {url}: {e}"));
            let post = |url: &str, form: &[(&str, &str)]| {
                http.post(url).form(form).send().map(text).map_err(|e| format!("POST {url}: {e}"))
            };
            let absolute =
                |action: &str| if action.starts_with('/') { format!("{base}{action}") } else { action.to_string() };
            // The code entry page.
            let (status, url, page) = get(&uri)?;
            let xsrf = form_field(&page, "xsrf").ok_or(format!("{status} at {url}: no code form: {page}"))?;
            let action = absolute(&form_action(&page, "op.deviceInputForm").ok_or("no code form action")?);
            // Enter the code; the provider asks to confirm the device.
            let (status, url, page) = post(&action, &[("xsrf", &xsrf), ("user_code", &code)])?;
            let confirm = form_field(&page, "confirm").ok_or(format!("{status} at {url}: no confirmation: {page}"))?;
            let xsrf = form_field(&page, "xsrf").ok_or("no xsrf on the confirmation")?;
            let action = absolute(&form_action(&page, "op.deviceConfirmForm").ok_or("no confirmation action")?);
            // Confirm: redirected to the login form.
            let (status, url, page) = post(&action, &[("xsrf", &xsrf), ("user_code", &code), ("confirm", &confirm)])?;
            let login =
                absolute(&form_action(&page, "login").ok_or(format!("{status} at {url}: no login form: {page}"))?);
            // Sign in: redirected through consent back to the device flow's success page.
            let (status, url, page) = post(&login, &[("username", &user), ("password", &pass)])?;
            if status != 200 || !page.contains("You are signed in") {
                return Err(format!("{status} at {url}: {page}"));
            }
            Ok(())
        })
    }

    /// A device flow from start to tokens: authorization, [`Provider::approve_device`] as
    /// `username`, then the token request.
    pub fn device_flow_token(&self, username: &str, password: &str) -> Result<Tokens, String> {
        let authorization = self.device_authorization("openid offline_access");
        self.approve_device(&authorization.verification_uri, &authorization.user_code, username, password)?;
        self.device_token(&authorization.device_code).map_err(|e| e.to_string())
    }

    /// The provider's JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        let url = format!("{}/jwks", self.url);
        let ca = self.ca_certificate.clone();
        off_runtime(move || client(ca.as_deref()).get(url).send().and_then(|r| r.json()).expect("the JWKS"))
    }
}
