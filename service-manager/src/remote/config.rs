//! `~/.hsm/config.json`: the HSM server `hsm` talks to (its URL and how its certificate is
//! checked), the identity provider it was signed in through, and the session's tokens. The
//! folder is `$HSM_HOME` when set; it is created with mode 0700 and the file is written with
//! mode 0600 (a new file renamed into place, so a reader never sees half of it).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RemoteError;

/// The environment variable naming the folder of `config.json` (default `~/.hsm`).
pub const HOME_ENV: &str = "HSM_HOME";

/// Everything `hsm` remembers about its server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server, once `hsm api` was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The signed-in session, after `hsm login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// An HSM server and how its TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Base URL, e.g. `https://hsm.example.com` (no trailing slash).
    pub url: String,
    /// PEM certificates of the CA(s) the server's certificate must chain to, besides the
    /// public roots (read from `--ca-file` when the target was set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Accept any certificate (`--skip-ssl-validation`).
    #[serde(default)]
    pub skip_ssl_validation: bool,
}

/// A signed-in session: the provider it came from and its tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The OIDC issuer.
    pub issuer: String,
    /// The OAuth2 client id `hsm` signs in as.
    pub client_id: String,
    /// The audience (resource) the access token is for, when the server names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The provider's token endpoint (for refreshing).
    pub token_endpoint: String,
    /// Who signed in (from the token's claims), for display.
    pub user: String,
    /// The access token (secret).
    pub access_token: String,
    /// The refresh token (secret), when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds when the access token expires, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for Session {
    /// Everything but the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The folder of `config.json`: `$HSM_HOME`, else `~/.hsm`.
pub fn home() -> Result<PathBuf, RemoteError> {
    if let Some(dir) = std::env::var_os(HOME_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(Path::new(&home).join(".hsm")),
        None => Err(RemoteError::Config(format!("neither {HOME_ENV} nor HOME is set: nowhere to keep config.json"))),
    }
}

/// `config.json` in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("config.json")
}

impl Config {
    /// The configuration in `dir`; empty when there is none yet. A file that cannot be read
    /// or parsed is an error naming it (and the JSON path at fault).
    pub fn load(dir: &Path) -> Result<Config, RemoteError> {
        let path = path_in(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(RemoteError::Config(format!("{}: {e}", path.display()))),
        };
        let deserializer = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { format!(" at {at}") };
            RemoteError::Config(format!("{}{at}: {} (run `hsm api URL` to start again)", path.display(), e.inner()))
        })
    }

    /// Writes the configuration to `dir` (created with mode 0700 when missing), the file with
    /// mode 0600.
    pub fn save(&self, dir: &Path) -> Result<(), RemoteError> {
        let fail = |what: &Path, e: std::io::Error| RemoteError::Config(format!("{}: {e}", what.display()));
        if !dir.is_dir() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail(dir, e))?;
        }
        let path = path_in(dir);
        let temporary = dir.join(format!(".config.json.{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let text = serde_json::to_string_pretty(self).expect("the configuration serialises") + "\n";
        let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary).and_then(
            |mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            },
        );
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(fail(&temporary, e));
        }
        // The mode asked for at creation is reduced by the umask, never widened: set it again.
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                fail(&path, e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            issuer: "https://idp.example".into(),
            client_id: "hsm".into(),
            audience: Some("https://hsm.example".into()),
            token_endpoint: "https://idp.example/token".into(),
            user: "admin".into(),
            access_token: "access-secret".into(),
            refresh_token: Some("refresh-secret".into()),
            expires_at: Some(1),
        }
    }

    #[test]
    fn saved_with_mode_0600_in_a_0700_folder_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("nested/.hsm");
        let config = Config {
            target: Some(Target {
                url: "https://hsm.example".into(),
                ca_certificates: None,
                skip_ssl_validation: true,
            }),
            session: Some(session()),
        };
        config.save(&home).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&path_in(&home)), 0o600);
        assert_eq!(Config::load(&home).unwrap(), config);
        // Saving again replaces the file and leaves no temporary file behind.
        Config::default().save(&home).unwrap();
        assert_eq!(Config::load(&home).unwrap(), Config::default());
        assert_eq!(std::fs::read_dir(&home).unwrap().count(), 1);
    }

    #[test]
    fn no_file_is_an_empty_configuration_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        std::fs::write(path_in(dir.path()), r#"{"target": {"url": 3}}"#).unwrap();
        let error = Config::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("config.json at target.url: invalid type"), "{error}");
    }

    #[test]
    fn the_debug_form_shows_no_token() {
        let shown = format!("{:?}", session());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("admin"));
    }
}
