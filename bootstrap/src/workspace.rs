//! The state directory an action works in: checked before anything in it is created, made
//! 0700, holding the cluster PKI, the admin kubeconfig, the state record and Terraform's
//! working directory with the rendered configuration. [`prepare`] brings it to the point
//! where Terraform can run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::progress::Report;
use crate::terraform::Terraform;
use crate::{Error, StateError};

/// The state directory for `config`: `state_dir`, or `./stratus-<ClusterName>`.
pub fn state_dir(state_dir: Option<&Path>, config: &Config) -> PathBuf {
    state_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("stratus-{}", config.cluster_name)))
}

/// Checks that whatever is already at the state directory's paths is of the kind bootstrap
/// makes there (a directory, or a regular file), before anything is created: a mismatch is bad
/// input naming the path and what was expected.
pub fn check_state(state: &Path) -> Result<(), StateError> {
    let paths = [
        ("", true, "the state directory"),
        ("terraform", true, "Terraform's working directory"),
        ("pki.json", false, "the cluster PKI bootstrap writes"),
        ("kubeconfig", false, "the admin kubeconfig bootstrap writes"),
        ("state.json", false, "the state record bootstrap writes"),
        ("install.json", false, "the install record bootstrap writes"),
        ("credentials.yaml", false, "the credentials file bootstrap writes"),
        ("terraform.log", false, "Terraform's log"),
    ];
    for (name, directory, what) in paths {
        let path = if name.is_empty() { state.to_path_buf() } else { state.join(name) };
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let (ok, kind) = match directory {
            true => (meta.is_dir(), "a directory"),
            false => (meta.is_file(), "a regular file"),
        };
        if !ok {
            let is = if meta.is_dir() {
                "a directory"
            } else if meta.is_file() {
                "a file"
            } else {
                "not a regular file"
            };
            return Err(StateError::Invalid(format!(
                "{}: is {is}; expected {what} ({kind}, or nothing there yet)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Creates (or closes to 0700) the state directory and its `terraform/` folder.
pub fn state_dirs(state: &Path) -> Result<(), StateError> {
    for dir in [state.to_path_buf(), state.join("terraform")] {
        crate::private_dir(&dir).map_err(|e| StateError::of(&dir, e))?;
    }
    Ok(())
}

/// What identifies the running program for [`crate::render::inputs_digest`]: its path, size
/// and modification time (a rebuilt or upgraded program renders afresh).
pub fn program_identity(program: &Path) -> String {
    let meta = std::fs::metadata(program).ok();
    let modified = meta.as_ref().and_then(|m| m.modified().ok()).map(|t| format!("{t:?}")).unwrap_or_default();
    format!("{} {} {modified} {}", program.display(), meta.map(|m| m.len()).unwrap_or(0), env!("CARGO_PKG_VERSION"))
}

/// Everything before Terraform runs: validated configuration, credentials, rendered files.
pub struct Prepared {
    /// The configuration.
    pub config: Config,
    /// The state directory.
    pub state: PathBuf,
    /// Terraform's working directory (`<state>/terraform`).
    pub dir: PathBuf,
    /// Terraform in it.
    pub terraform: Terraform,
    /// Digest of the rendered files: what the provision phase is done for.
    pub rendered_fingerprint: String,
    /// Names of the rendered files holding secrets.
    pub secret_files: Vec<String>,
}

impl Prepared {
    /// Unless `KeepTerraform` is set: clears the saved plan and the rendered secret files from
    /// the working directory once a run has succeeded (the next run renders them again).
    pub fn clear_terraform_secrets(&self, report: &dyn Report) -> Result<(), Error> {
        if self.config.keep_terraform {
            return Ok(());
        }
        let removed = crate::clear_terraform_secrets(&self.dir, &self.secret_files).map_err(Error::io(&self.dir))?;
        if !removed.is_empty() {
            report.line(&format!(
                "removed the saved plan and secret files from {} ({} file(s); KeepTerraform = true keeps them)",
                self.dir.display(),
                removed.len()
            ));
        }
        Ok(())
    }

    /// The state record of this state directory.
    pub fn record(&self) -> Result<crate::phases::Record, Error> {
        Ok(crate::phases::Record::open(&self.state)?.0)
    }
}

/// Checks and makes the state directory of `config`, makes (or reads) the cluster PKI and the
/// admin kubeconfig, renders the Terraform configuration (unless unchanged) and, when `init`,
/// runs `terraform init` once per provider set.
pub fn prepare(
    config: Config,
    state_dir: Option<&Path>,
    program: &Path,
    init: bool,
    report: &dyn Report,
) -> Result<Prepared, Error> {
    let state = self::state_dir(state_dir, &config);
    let dir = state.join("terraform");
    // A damaged state directory is found before anything in it is created or changed.
    check_state(&state)?;
    let pki = crate::load_or_create_pki(&state.join("pki.json"), &config.cluster_name)?;
    state_dirs(&state)?;
    let kubeconfig = state.join("kubeconfig");
    if !kubeconfig.exists() {
        let server = crate::nodes::api_url(&config);
        crate::write_rendered(
            &state,
            &crate::render::Rendered {
                secret_files: [(
                    "kubeconfig".to_string(),
                    pki.admin_kubeconfig(&config.cluster_name, &server).expose().to_string(),
                )]
                .into(),
                ..Default::default()
            },
        )
        .map_err(|e| StateError::of(&state, e))?;
    }
    let (record, rendered) = crate::render_into(&dir, &config, &pki, &program_identity(program))?;
    let what = if rendered { "rendered" } else { "already rendered, unchanged:" };
    report.line(&format!("{what} {} file(s) in {}", record.files.len(), dir.display()));
    let environment: BTreeMap<String, String> = crate::render::environment(&config);
    let terraform = Terraform::new(&dir, &state.join("terraform.log"), environment);
    if init {
        // Init once per provider set: re-running it costs a second for nothing.
        let marker = dir.join(".stratus-init");
        if crate::read_input_text(&marker).ok().as_deref() != Some(record.providers.as_str()) {
            terraform.run(&["init", "-input=false", "-no-color"])?;
            std::fs::write(&marker, &record.providers).map_err(Error::io(&marker))?;
            report.line("terraform init");
        }
    }
    Ok(Prepared {
        config,
        state,
        dir,
        terraform,
        rendered_fingerprint: record.fingerprint,
        secret_files: record.secret_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_the_state_directory_expects_a_folder_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("terraform"), "").unwrap();
        let error = check_state(dir.path()).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().ends_with(
            "terraform: is a file; expected Terraform's working directory (a directory, or nothing there yet)"
        ));
        std::fs::remove_file(dir.path().join("terraform")).unwrap();
        std::fs::create_dir(dir.path().join("state.json")).unwrap();
        assert!(check_state(dir.path()).unwrap_err().to_string().contains("state.json: is a directory"));
    }
}
