//! The Stratus installer.
//!
//! [`properties`] reads `bootstrap.properties`; [`config`] turns its entries into a typed,
//! validated configuration (one module per provider, [`config::Provider`] carrying that
//! provider's settings); [`render`] writes the Terraform configuration for it from the
//! handlebars templates in `terraform-templates/<provider>/` through a typed model;
//! [`terraform`] runs the Terraform binary at the edge; [`platform`] plans the add-ons a new
//! cluster gets as service manager objects, which [`kube`] applies and awaits through the
//! service manager's Kubernetes layer. [`actions`] holds one module per verb (validate, plan,
//! preflight, provision, install, status, uninstall) with typed outcomes and [`Error`]s that
//! carry their exit codes; [`phases`] is the phase runner and the one state record;
//! [`workspace`] the state directory; [`helper`] the questions to the cloud helper;
//! [`progress`] where progress goes. The `bootstrap` binary only parses flags, prompts and
//! prints.

pub mod actions;
pub mod cloud;
pub mod clouds;
pub mod config;
mod error;
pub mod helper;
pub mod kube;
pub mod nodes;
pub mod phases;
pub mod pki;
pub mod platform;
pub mod progress;
pub mod properties;
pub mod render;
pub mod terraform;
pub mod workspace;

pub use error::Error;

use std::collections::BTreeMap;
use std::path::Path;

/// Bad input: every problem found in one file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not one bootstrap reads (not a regular file, too big, not UTF-8 text).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A line is malformed.
    #[error("{}:{}: {}", path.display(), source.line, source.message)]
    Syntax {
        /// The file.
        path: std::path::PathBuf,
        /// The line.
        source: properties::SyntaxError,
    },
    /// The configuration breaks rules.
    #[error("{}", invalid(path, problems))]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Every problem.
        problems: Vec<config::Problem>,
    },
}

fn invalid(path: &Path, problems: &[config::Problem]) -> String {
    let count = problems.len();
    let mut out = format!(
        "{} is not a valid configuration ({count} problem{}):",
        path.display(),
        if count == 1 { "" } else { "s" }
    );
    // Every problem up to a hundred; a file with more is not a configuration with typos.
    for p in problems.iter().take(MAX_PROBLEMS_SHOWN) {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    if count > MAX_PROBLEMS_SHOWN {
        out.push_str(&format!("\n  ... and {} more", count - MAX_PROBLEMS_SHOWN));
    }
    out
}

/// How many problems of one file are listed.
const MAX_PROBLEMS_SHOWN: usize = 100;

/// The largest file bootstrap reads as input: the properties file, `clouds.yaml`, SSH keys and
/// CA bundles (1 MiB; real ones are a few KiB).
pub const MAX_INPUT_FILE: u64 = 1 << 20;

/// A file bootstrap reads as input that is not fit to be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be opened or read (missing, no permission).
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// It is not a regular file, or is too big.
    #[error("{0}")]
    Unfit(String),
}

/// Whether `path` is a regular file (symlinks followed) of at most [`MAX_INPUT_FILE`] bytes:
/// devices (`/dev/zero`), FIFOs, sockets and directories are refused before anything opens
/// them, so nothing hangs or reads forever.
pub fn check_input_file(path: &Path) -> Result<std::fs::Metadata, FileError> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(FileError::Unfit("is a directory; expected a regular file".into()));
    }
    if !meta.is_file() {
        return Err(FileError::Unfit(
            "is not a regular file (a device, FIFO or socket); expected a regular file".into(),
        ));
    }
    if meta.len() > MAX_INPUT_FILE {
        return Err(FileError::Unfit(format!(
            "is {} bytes; expected a file of at most {MAX_INPUT_FILE} bytes (1 MiB)",
            meta.len()
        )));
    }
    Ok(meta)
}

/// The bytes of the input file `path`, checked by [`check_input_file`] and read with a bound
/// (a file that grows past [`MAX_INPUT_FILE`] meanwhile is refused too).
pub fn read_input_file(path: &Path) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    check_input_file(path)?;
    // O_NONBLOCK: should a FIFO take the file's place after the check, opening it does not wait.
    const O_NONBLOCK: i32 = 0o4000;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(FileError::Unfit("is not a regular file; expected a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_FILE {
        return Err(FileError::Unfit(format!("expected a file of at most {MAX_INPUT_FILE} bytes (1 MiB)")));
    }
    Ok(bytes)
}

/// The input file `path` as UTF-8 text (see [`read_input_file`]).
pub fn read_input_text(path: &Path) -> Result<String, FileError> {
    let bytes = read_input_file(path)?;
    text_of(bytes).map_err(FileError::Unfit)
}

/// `bytes` as UTF-8 text; UTF-16 (with or without a byte-order mark), NUL bytes and invalid
/// UTF-8 are refused with what was expected.
fn text_of(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]);
    if utf16 || bytes.contains(&0) {
        return Err("is not UTF-8 text (UTF-16? it has NUL bytes); save it as UTF-8".into());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!("is not UTF-8 text (invalid byte at offset {}); save it as UTF-8", e.utf8_error().valid_up_to())
    })
}

/// Reads and validates the properties file at `path`, taking credentials from `env`.
pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<config::Config, InputError> {
    let text = read_input_text(path).map_err(|e| match e {
        FileError::Io(source) => InputError::Io { path: path.to_path_buf(), source },
        FileError::Unfit(message) => InputError::File { path: path.to_path_buf(), message },
    })?;
    let entries = properties::parse(&text).map_err(|source| InputError::Syntax { path: path.to_path_buf(), source })?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    let check = |p: &Path| match check_input_file(p) {
        Ok(_) => Ok(()),
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let read = |p: &Path| read_input_text(p).ok();
    let surroundings = config::Surroundings { env, check_file: &check, base_dir: &base, read_file: &read };
    config::read(&entries, &surroundings).map_err(|problems| InputError::Invalid { path: path.to_path_buf(), problems })
}

/// Makes `path` a directory only its owner can enter (0700), creating it and any missing
/// parents (0700 too); an existing directory of more open mode is closed to 0700. Something
/// else at `path` is an error saying what was expected.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "is not a directory; expected a directory (or nothing there yet)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
        }
        Err(e) => Err(e),
    }
}

/// Writes `content` to `path` with mode 0600 whatever the umask, replacing what is there
/// (through a temporary file and a rename: a kill never leaves half a file).
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    std::io::Write::write_all(&mut file, content)?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// Writes `rendered` into `dir` (created 0700 if needed): plain files 0644, secret files
/// 0600 (whatever the umask).
///
/// A file that already holds the same bytes (and, for a secret file, is a regular file with
/// mode 0600) is left alone: a re-run changes no mtime, and truncating a file on ext4 would
/// otherwise start its writeback at close.
pub fn write_rendered(dir: &Path, rendered: &render::Rendered) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    private_dir(dir)?;
    for (name, content) in &rendered.files {
        let path = dir.join(name);
        if !holds(&path, content, None) {
            std::fs::write(path, content)?;
        }
    }
    for (name, content) in &rendered.secret_files {
        let path = dir.join(name);
        if holds(&path, content, Some(0o600)) {
            continue;
        }
        if let Some(parent) = path.parent() {
            private_dir(parent)?;
        }
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, content.as_bytes())?;
    }
    Ok(())
}

/// What a working directory holds after [`render_into`]: enough to run Terraform there
/// whether it rendered afresh or found the same rendering already in place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenderRecord {
    /// [`render::inputs_digest`] of the configuration, PKI and program that rendered.
    pub inputs: String,
    /// [`render::Rendered::fingerprint`] of what was rendered.
    pub fingerprint: String,
    /// [`render::Rendered::required_providers`].
    pub providers: String,
    /// Names of the files holding secrets.
    pub secret_files: Vec<String>,
    /// Every rendered file as it was left: name → (size, modification time in ns, mode).
    pub files: BTreeMap<String, (u64, i128, u32)>,
}

/// The record's file in the working directory.
const RENDER_RECORD: &str = ".stratus-rendered";

/// Renders `config` with `pki` into `dir` — unless `dir`'s record says the same inputs
/// (configuration, PKI and `program`, see [`render::inputs_digest`]) were rendered there and
/// every file is still as it was left (size, modification time, mode), in which case nothing
/// is rendered or written. Returns the record and whether it rendered.
pub fn render_into(
    dir: &Path,
    config: &config::Config,
    pki: &pki::Pki,
    program: &str,
) -> Result<(RenderRecord, bool), Error> {
    let inputs = render::inputs_digest(config, pki, program);
    let record_path = dir.join(RENDER_RECORD);
    let recorded: Option<RenderRecord> =
        read_input_file(&record_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(record) = recorded.filter(|r| r.inputs == inputs) {
        if record.files.iter().all(|(name, state)| file_state(&dir.join(name)).as_ref() == Some(state)) {
            return Ok((record, false));
        }
    }
    let rendered = render::render(config, pki)?;
    write_rendered(dir, &rendered).map_err(Error::io(dir))?;
    let mut files = BTreeMap::new();
    for name in rendered.files.keys().chain(rendered.secret_files.keys()) {
        let path = dir.join(name);
        let state = file_state(&path).ok_or_else(|| Error::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "written but not there"),
        })?;
        files.insert(name.clone(), state);
    }
    let record = RenderRecord {
        inputs,
        fingerprint: rendered.fingerprint(),
        providers: rendered.required_providers(),
        secret_files: rendered.secret_files.keys().cloned().collect(),
        files,
    };
    // The record goes last: a run killed before it renders again.
    let bytes = serde_json::to_vec(&record).expect("render records serialise");
    std::fs::write(&record_path, bytes).map_err(Error::io(&record_path))?;
    Ok((record, true))
}

/// Size, modification time (ns since the epoch) and permission bits of a regular file.
fn file_state(path: &Path) -> Option<(u64, i128, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
    Some((meta.len(), i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()), meta.mode() & 0o7777))
}

/// What `KeepTerraform = false` clears from the Terraform working directory `dir` once an
/// install or provision has succeeded: the saved plan (it holds every variable, passwords
/// included) and the secret files named in `secret_files` (the cloud password, the machines'
/// cloud-configs with the cluster CA key and join token), with folders they leave empty. Every
/// run renders them again before Terraform needs them; the state, the configuration and the
/// provider plugins stay. Returns the names removed.
pub fn clear_terraform_secrets<'a>(
    dir: &Path,
    secret_files: impl IntoIterator<Item = &'a String>,
) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in std::iter::once("plan.tfplan".to_string()).chain(secret_files.into_iter().cloned()) {
        let path = dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        // Folders the file leaves empty (`cloud-init/`) go too; a non-empty one stays.
        let mut parent = path.parent();
        while let Some(folder) = parent.filter(|p| p.starts_with(dir) && *p != dir) {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
            parent = folder.parent();
        }
    }
    Ok(removed)
}

/// Whether `path` is a regular file holding exactly `content` (with permission bits `mode`,
/// when given).
fn holds(path: &Path, content: &str, mode: Option<u32>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    meta.is_file()
        && meta.len() == content.len() as u64
        && mode.is_none_or(|m| meta.permissions().mode() & 0o777 == m)
        && std::fs::read(path).is_ok_and(|bytes| bytes == content.as_bytes())
}

/// Something in the state directory that is not what bootstrap left there (exit code 2), or
/// that could not be read or written (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Damaged or of the wrong kind: the message names the path and what was expected.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(String),
}

impl StateError {
    /// The exit code: 2 for bad input, 1 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            StateError::Invalid(_) => 2,
            StateError::Io(_) => 1,
        }
    }

    /// `path: e`, as [`StateError::Invalid`] when `e` says something of the wrong kind is
    /// there.
    pub fn of(path: &Path, e: std::io::Error) -> StateError {
        let message = format!("{}: {e}", path.display());
        match e.kind() {
            std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::IsADirectory
            | std::io::ErrorKind::AlreadyExists => StateError::Invalid(message),
            _ => StateError::Io(message),
        }
    }
}

/// The cluster's PKI from `path`, or a new one written there (0600) for every later run. A
/// `pki.json` that is not one bootstrap wrote is [`StateError::Invalid`], naming what is wrong.
pub fn load_or_create_pki(path: &Path, cluster: &str) -> Result<pki::Pki, StateError> {
    let expected = "expected the pki.json an earlier run of bootstrap wrote (if no machine was ever made from this state directory, remove it to make a new one)";
    match read_input_file(path) {
        Ok(bytes) => {
            let pki: pki::Pki = serde_json::from_slice(&bytes)
                .map_err(|e| StateError::Invalid(format!("{}: not a cluster PKI ({e}); {expected}", path.display())))?;
            pki.check().map_err(|e| StateError::Invalid(format!("{}: {e}; {expected}", path.display())))?;
            return Ok(pki);
        }
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(FileError::Io(e)) => return Err(StateError::Io(format!("{}: cannot read: {e}", path.display()))),
        Err(FileError::Unfit(why)) => {
            return Err(StateError::Invalid(format!("{}: {why}; {expected}", path.display())))
        }
    }
    let pki = pki::Pki::generate(cluster).map_err(|e| StateError::Io(e.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dir(parent).map_err(|e| StateError::of(parent, e))?;
    }
    let text = serde_json::to_string(&pki).map_err(|e| StateError::Io(format!("{}: {e}", path.display())))?;
    // create_new: two runs at once never both make a PKI.
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
    };
    write().map_err(|e| StateError::of(path, e))?;
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn rendered(main: &str, secret: &str) -> render::Rendered {
        render::Rendered {
            files: [("main.tf".to_string(), main.to_string())].into(),
            secret_files: [("secrets.auto.tfvars".to_string(), secret.to_string())].into(),
            ..Default::default()
        }
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn rewriting_the_same_files_leaves_them_alone_and_changed_ones_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (main, secret) = (dir.path().join("main.tf"), dir.path().join("secrets.auto.tfvars"));
        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for path in [&main, &secret] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
        }

        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        assert_eq!(modified(&main), old, "unchanged file rewritten");
        assert_eq!(modified(&secret), old, "unchanged secret file rewritten");

        // Same length, other bytes: rewritten.
        write_rendered(dir.path(), &rendered("b", "s = 2")).unwrap();
        assert_eq!(std::fs::read_to_string(&main).unwrap(), "b");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 2");
        assert_ne!(modified(&main), old);
    }

    #[test]
    fn clearing_removes_the_plan_and_the_secret_files_and_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render::Rendered {
            files: [("main.tf".to_string(), "x".to_string())].into(),
            secret_files: [
                ("secrets.auto.tfvars".to_string(), "p".to_string()),
                ("cloud-init/master-0.yaml".to_string(), "c".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        write_rendered(dir.path(), &rendered).unwrap();
        for kept in ["terraform.tfstate", "plan.tfplan"] {
            std::fs::write(dir.path().join(kept), "{}").unwrap();
        }
        let removed = clear_terraform_secrets(dir.path(), rendered.secret_files.keys()).unwrap();
        assert_eq!(removed, ["plan.tfplan", "cloud-init/master-0.yaml", "secrets.auto.tfvars"]);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left, ["main.tf", "terraform.tfstate"]);
        assert_eq!(clear_terraform_secrets(dir.path(), rendered.secret_files.keys()).unwrap(), Vec::<String>::new());
    }

    fn example() -> config::Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.properties");
        load(&path, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn the_same_inputs_are_not_rendered_twice_and_anything_changed_is() {
        let dir = tempfile::tempdir().unwrap();
        let (config, pki) = (example(), pki::Pki::generate("demo").unwrap());
        let (first, rendered) = render_into(dir.path(), &config, &pki, "bootstrap 1").unwrap();
        assert!(rendered);
        assert_eq!(first.fingerprint, render::render(&config, &pki).unwrap().fingerprint());
        assert_eq!(first.files.len(), 7);

        let (again, rendered) = render_into(dir.path(), &config, &pki, "bootstrap 1").unwrap();
        assert!(!rendered, "the same inputs were rendered again");
        assert_eq!(again, first);

        // Another program, another configuration or PKI: rendered again.
        assert!(render_into(dir.path(), &config, &pki, "bootstrap 2").unwrap().1);
        let mut bigger = config.clone();
        let config::Provider::Local(local) = &mut bigger.provider else { panic!("a local example") };
        local.nodes.push("10.0.0.30".into());
        bigger.node_count += 1;
        let (record, rendered) = render_into(dir.path(), &bigger, &pki, "bootstrap 2").unwrap();
        assert!(rendered && record.files.len() == 8 && record.fingerprint != first.fingerprint);
        let other_pki = pki::Pki::generate("demo").unwrap();
        assert!(render_into(dir.path(), &bigger, &other_pki, "bootstrap 2").unwrap().1);

        // A file edited, removed or opened up: rendered again, and put back as rendered.
        let main = dir.path().join("main.tf");
        let expected = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, format!("{expected}# edited\n")).unwrap();
        assert!(render_into(dir.path(), &bigger, &other_pki, "bootstrap 2").unwrap().1);
        assert_eq!(std::fs::read_to_string(&main).unwrap(), expected);
        std::fs::remove_file(dir.path().join("cloud-init/node-0.yaml")).unwrap();
        assert!(render_into(dir.path(), &bigger, &other_pki, "bootstrap 2").unwrap().1);
        assert!(dir.path().join("cloud-init/node-0.yaml").exists());
        let secret = dir.path().join("cloud-init/master-0.yaml");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(render_into(dir.path(), &bigger, &other_pki, "bootstrap 2").unwrap().1);
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!render_into(dir.path(), &bigger, &other_pki, "bootstrap 2").unwrap().1);
    }

    #[test]
    fn a_secret_file_with_the_right_content_but_open_permissions_is_recreated_0600() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secrets.auto.tfvars");
        std::fs::write(&secret, "s = 1").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 1");
    }

    #[test]
    fn no_properties_file_makes_reading_panic() {
        // A small deterministic fuzz: every provider, keys of each kind, values at the edges.
        const KEYS: &[&str] = &[
            "Provider",
            "NodeCount",
            "MasterCount",
            "GlusterNodeCount",
            "HCPDomainName",
            "KubernetesVersion",
            "PodCIDR",
            "ServiceCIDR",
            "ClusterName",
            "KeepTerraform",
            "Local.MasterAddresses",
            "Local.NodeAddresses",
            "Local.GlusterFSAddresses",
            "Local.APIAddress",
            "Local.APIPort",
            "Local.SSHUser",
            "Local.SSHPort",
            "Local.MachineDir",
            "Local.SSHKeyFile",
            "OpenStack.AuthURL",
            "OpenStack.Password",
            "OpenStack.AvailabilityZones",
            "OpenStack.JumpboxCIDR",
            "OpenStack.CACertFile",
            "AWS.AvailabilityZones",
            "AWS.PublicSubnetIDsAndAZ",
            "AWS.SecretKey",
            "AWS.AccessKey",
            "VSphere.LBVIPAllocationStart",
            "VSphere.LBVIPAllocationEnd",
            "VSphere.Server",
            "VSphere.MasterMemoryMB",
            "VSphere.Datacenters",
            "LDAP.URI",
            "LDAP.BindPassword",
        ];
        const VALUES: &[&str] = &[
            "",
            " ",
            "0",
            "1",
            "3",
            "4294967296",
            "99999999999999999999",
            "-1",
            "+1",
            "1.33.0",
            "1.0.0",
            "1..",
            "/",
            "..",
            "/a/../b",
            "[::1]",
            "::",
            "::1",
            "2001:db8::1",
            "127.0.0.1",
            "0.0.0.0/0",
            "10.0.0.0/33",
            "10.0.0.1/",
            "/8",
            "10.244.0.0/32",
            "a@b",
            "https://",
            "https://@",
            "https://[",
            "https://[::1",
            "https://[::1]:99999",
            "https://h:",
            "ldap://x:",
            "é",
            "\\u0000",
            "\\",
            "local",
            "AWS",
            "OpenStack",
            "VSphere",
            "a,b,,c",
            "a, A",
            "example-key",
            "/dev/zero",
            "\u{feff}",
            "subnet-1:",
            ":",
            "255.255.255.255",
            "1.2.3.4, 1.2.3.4",
            "x.",
            ".x",
            "-a",
            "a-",
            "0x7f.1",
            "010.0.0.1",
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example-key"), "k").unwrap();
        let path = dir.path().join("f.properties");
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut text = format!("Provider = {}\n", ["local", "AWS", "OpenStack", "VSphere", "x"][next(5)]);
            for _ in 0..next(12) {
                let value = (0..1 + next(2)).map(|_| VALUES[next(VALUES.len())]).collect::<Vec<_>>().join("");
                text.push_str(&format!("{} = {value}\n", KEYS[next(KEYS.len())]));
            }
            std::fs::write(&path, &text).unwrap();
            let result =
                std::panic::catch_unwind(|| load(&path, &BTreeMap::new()).map(|c| render::render(&c, &test_pki())));
            assert!(result.is_ok(), "reading panicked on:\n{text}");
        }
    }

    fn test_pki() -> pki::Pki {
        static PKI: std::sync::OnceLock<pki::Pki> = std::sync::OnceLock::new();
        PKI.get_or_init(|| pki::Pki::generate("fuzz").unwrap()).clone()
    }

    #[test]
    fn a_symlink_in_place_of_a_secret_file_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "s = 1").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = dir.path().join("secrets.auto.tfvars");
        std::os::unix::fs::symlink(&elsewhere, &secret).unwrap();
        write_rendered(dir.path(), &rendered("a", "s = 2")).unwrap();
        assert!(std::fs::symlink_metadata(&secret).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "s = 1");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 2");
    }
}
