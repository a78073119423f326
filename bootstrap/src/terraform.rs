//! The edge to the `terraform` (or `tofu`) binary: runs it in the cluster's working directory
//! with credentials in its environment, appends everything it prints to a log file, and turns
//! failures into short summaries (the `Error:` lines) that point at the log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A failed Terraform run.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    /// The binary could not be started.
    #[error("cannot run {binary}: {source} (install Terraform 1.5+ or OpenTofu, or set STRATUS_TERRAFORM)")]
    Start {
        /// The binary.
        binary: String,
        /// Why.
        source: std::io::Error,
    },
    /// Terraform exited with an error.
    #[error("terraform {command} failed:\n{summary}\n(full output in {})", log.display())]
    Failed {
        /// The subcommand.
        command: String,
        /// Its `Error:` lines.
        summary: String,
        /// The log file.
        log: PathBuf,
    },
    /// The log could not be written.
    #[error("{}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Terraform in one working directory.
pub struct Terraform {
    binary: String,
    dir: PathBuf,
    log: PathBuf,
    environment: BTreeMap<String, String>,
}

impl Terraform {
    /// Terraform (`STRATUS_TERRAFORM`, else `terraform` on PATH) working in `dir`, logging to
    /// `log`, with `environment` added to its own.
    pub fn new(dir: &Path, log: &Path, environment: BTreeMap<String, String>) -> Terraform {
        let binary = std::env::var("STRATUS_TERRAFORM").unwrap_or_else(|_| "terraform".into());
        Terraform { binary, dir: dir.to_path_buf(), log: log.to_path_buf(), environment }
    }

    /// Runs `terraform <args>`; returns its standard output.
    pub fn run(&self, args: &[&str]) -> Result<String, TerraformError> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .envs(&self.environment);
        // A CLI configuration file that does not exist makes every command warn.
        let config_missing = std::env::var_os("TF_CLI_CONFIG_FILE").is_some_and(|f| !Path::new(&f).exists());
        if config_missing {
            command.env("TF_CLI_CONFIG_FILE", "/dev/null");
        }
        let output =
            command.output().map_err(|source| TerraformError::Start { binary: self.binary.clone(), source })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| TerraformError::Log { path: self.log.clone(), source })?;
        writeln!(log, "$ terraform {}\n{stdout}{stderr}", args.join(" "))
            .map_err(|source| TerraformError::Log { path: self.log.clone(), source })?;
        if output.status.success() {
            return Ok(stdout);
        }
        Err(TerraformError::Failed {
            command: args.first().unwrap_or(&"").to_string(),
            summary: summarise(&stderr),
            log: self.log.clone(),
        })
    }
}

/// The `Error:` lines of Terraform's output (with the line after each), without colour codes.
pub fn summarise(output: &str) -> String {
    let clean: String = strip_ansi(output);
    let lines: Vec<&str> = clean.lines().map(|l| l.trim_start_matches(['│', '╷', '╵', ' '])).collect();
    let mut summary = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("Error:") {
            let detail = lines[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(" — {}", l.trim()))
                .unwrap_or_default();
            summary.push(format!("  {line}{detail}"));
        }
    }
    if summary.is_empty() {
        summary.push(format!("  {}", lines.iter().rev().find(|l| !l.trim().is_empty()).unwrap_or(&"(no output)")));
    }
    summary.join("\n")
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_error_lines() {
        let output = "\u{1b}[31m╷\u{1b}[0m\n│ Error: Failed to query available provider packages\n│ \n│ Could not retrieve the list of available versions\n╵\n";
        assert_eq!(
            summarise(output),
            "  Error: Failed to query available provider packages — Could not retrieve the list of available versions"
        );
    }
}
