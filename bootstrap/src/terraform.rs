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

extern "C" {
    /// The C library's umask(2) (`mode_t` is 32 bits on Linux).
    fn umask(mask: u32) -> u32;
}

/// Files Terraform writes that hold secrets in clear: closed to 0600 after every run, whatever
/// umask or earlier run made them.
const SECRET_OUTPUTS: &[&str] = &["plan.tfplan", "terraform.tfstate", "terraform.tfstate.backup"];

/// Opens the log for appending, 0600 whatever the umask (Terraform's output may quote values).
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Terraform in one working directory.
pub struct Terraform {
    binary: String,
    dir: PathBuf,
    log: PathBuf,
    environment: BTreeMap<String, String>,
}

impl Terraform {
    /// Terraform (see [`binary`]) working in `dir`, logging to `log`, with `environment` added
    /// to its own.
    pub fn new(dir: &Path, log: &Path, environment: BTreeMap<String, String>) -> Terraform {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let binary = binary(std::env::var("STRATUS_TERRAFORM").ok(), &path, &|p| p.is_file());
        Terraform { binary, dir: dir.to_path_buf(), log: log.to_path_buf(), environment }
    }

    /// `terraform <args>` in the working directory, non-interactive, with the credentials,
    /// under umask 077: every file it writes (the plan with every variable in clear, the state)
    /// is its owner's only.
    fn command(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.binary);
        // SAFETY: umask(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                umask(0o077);
                Ok(())
            });
        }
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .envs(&self.environment);
        // A CLI configuration file that does not exist makes every command warn.
        if std::env::var_os("TF_CLI_CONFIG_FILE").is_some_and(|f| !Path::new(&f).exists()) {
            command.env("TF_CLI_CONFIG_FILE", "/dev/null");
        }
        command
    }

    /// Sets [`SECRET_OUTPUTS`] in the working directory to 0600.
    fn close_secret_outputs(&self) {
        use std::os::unix::fs::PermissionsExt;
        for name in SECRET_OUTPUTS {
            let path = self.dir.join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }

    /// Runs `terraform <args>`; returns its standard output.
    pub fn run(&self, args: &[&str]) -> Result<String, TerraformError> {
        let mut command = self.command(args);
        let output =
            command.output().map_err(|source| TerraformError::Start { binary: self.binary.clone(), source })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let mut log = open_log(&self.log).map_err(|source| TerraformError::Log { path: self.log.clone(), source })?;
        writeln!(log, "$ terraform {}\n{stdout}{stderr}", args.join(" "))
            .map_err(|source| TerraformError::Log { path: self.log.clone(), source })?;
        self.close_secret_outputs();
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

impl Terraform {
    /// Runs `terraform <args>` (which must include `-json`), calling `on_event` with each
    /// machine-readable event as it arrives; returns the events.
    pub fn run_json(&self, args: &[&str], mut on_event: impl FnMut(&Event)) -> Result<Vec<Event>, TerraformError> {
        use std::io::BufRead;
        let mut command = self.command(args);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child =
            command.spawn().map_err(|source| TerraformError::Start { binary: self.binary.clone(), source })?;
        let stdout = child.stdout.take().expect("piped");
        let mut log = open_log(&self.log).map_err(|source| TerraformError::Log { path: self.log.clone(), source })?;
        let _ = writeln!(log, "$ terraform {}", args.join(" "));
        let mut events = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            if let Some(event) = Event::parse(&line) {
                on_event(&event);
                events.push(event);
            }
        }
        let output =
            child.wait_with_output().map_err(|source| TerraformError::Start { binary: self.binary.clone(), source })?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let _ = writeln!(log, "{stderr}");
        self.close_secret_outputs();
        if output.status.success() {
            return Ok(events);
        }
        let mut summary: Vec<String> =
            events.iter().filter(|e| e.level == "error").map(|e| format!("  {}", e.message)).collect();
        if summary.is_empty() {
            summary.push(summarise(&stderr));
        }
        Err(TerraformError::Failed {
            command: args.first().unwrap_or(&"").to_string(),
            summary: summary.join("\n"),
            log: self.log.clone(),
        })
    }
}

/// The program to run: `STRATUS_TERRAFORM` when set, else `terraform` if a folder of `path`
/// has it, else `tofu` (OpenTofu) if one has that, else `terraform` (whose absence is then
/// reported when it is run).
pub fn binary(chosen: Option<String>, path: &std::ffi::OsStr, is_file: &dyn Fn(&Path) -> bool) -> String {
    if let Some(chosen) = chosen.filter(|c| !c.is_empty()) {
        return chosen;
    }
    let on_path = |name: &str| std::env::split_paths(path).any(|folder| is_file(&folder.join(name)));
    match ["terraform", "tofu"].into_iter().find(|name| on_path(name)) {
        Some(found) => found.to_string(),
        None => "terraform".to_string(),
    }
}

/// One line of `terraform ... -json` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `apply_start`, `apply_complete`, `apply_errored`, `change_summary`, `diagnostic`, ...
    pub kind: String,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// The human message.
    pub message: String,
    /// The resource address, for resource events.
    pub resource: Option<String>,
    /// For `change_summary`: resources to add, change and remove.
    pub changes: Option<(u64, u64, u64)>,
    /// For `planned_change`: `create`, `update`, `delete`, `replace`, ...
    pub action: Option<String>,
}

impl Event {
    /// Parses one JSON line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let changes = value.get("changes").map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            (n("add"), n("change"), n("remove"))
        });
        Some(Event {
            kind: value["type"].as_str()?.to_string(),
            level: value["@level"].as_str().unwrap_or("info").to_string(),
            message: value["@message"].as_str().unwrap_or_default().to_string(),
            resource: value["hook"]["resource"]["addr"]
                .as_str()
                .or(value["change"]["resource"]["addr"].as_str())
                .map(str::to_string),
            changes,
            action: value["change"]["action"].as_str().map(str::to_string),
        })
    }
}

/// How far an apply or destroy has got, from its `-json` events: resources finished out of
/// the total the plan announced, and the ones in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Resources the plan changes.
    pub total: u64,
    /// Resources finished (or failed) so far.
    pub done: u64,
    /// Resources started and not yet finished, in the order they started.
    pub in_flight: Vec<String>,
}

impl Tally {
    /// Nothing done yet out of `total`.
    pub fn new(total: u64) -> Tally {
        Tally { total, ..Tally::default() }
    }

    /// Takes one event. When it finishes a resource, returns the line to print for it:
    /// `3/5 <verb> <address>` (or `FAILED`), followed by what is still in flight.
    pub fn observe(&mut self, event: &Event, verb: &str) -> Option<String> {
        let resource = event.resource.clone().unwrap_or_default();
        match event.kind.as_str() {
            "apply_start" => {
                self.in_flight.push(resource);
                None
            }
            "apply_complete" | "apply_errored" => {
                self.in_flight.retain(|r| r != &resource);
                self.done += 1;
                // Terraform may finish more than the plan counted (a replace is two steps).
                self.total = self.total.max(self.done);
                let outcome = if event.kind == "apply_errored" { "FAILED" } else { verb };
                let waiting = match self.in_flight.is_empty() {
                    true => String::new(),
                    false => format!("; in flight: {}", self.in_flight.join(", ")),
                };
                Some(format!("{}/{} {outcome} {resource}{waiting}", self.done, self.total))
            }
            _ => None,
        }
    }
}

/// The machines (`node-1`, `master-0`, ...) a plan deletes or replaces, from its
/// `planned_change` events: what has to be drained before the apply.
pub fn machines_going_away(events: &[Event]) -> Vec<String> {
    const MACHINES: &[&str] = &[
        "terraform_data.machine",
        "vsphere_virtual_machine.machine",
        "aws_instance.",
        "openstack_compute_instance_v2.",
    ];
    let mut keys = Vec::new();
    for event in events {
        if event.kind != "planned_change" || !matches!(event.action.as_deref(), Some("delete" | "replace")) {
            continue;
        }
        let Some(address) = &event.resource else { continue };
        if !MACHINES.iter().any(|m| address.starts_with(m)) {
            continue;
        }
        let Some((resource, index)) = address.trim_end_matches(']').split_once('[') else { continue };
        let key = match index.trim_matches('"').parse::<u32>() {
            // `aws_instance.node[2]`: role from the resource name, index from the count.
            Ok(n) => format!("{}-{n}", resource.rsplit('.').next().unwrap_or_default()),
            // `terraform_data.machine["node-1"]`: the key is the machine.
            Err(_) => index.trim_matches('"').to_string(),
        };
        keys.push(key);
    }
    keys
}

/// The longest detail shown for one error (the first paragraph of its diagnostic).
const MAX_DETAIL: usize = 600;

/// The `Error:` lines of Terraform's output, each with the first paragraph of its detail
/// unwrapped onto it (where the cause is: "no such host", "permission denied", ...), without
/// colour codes.
pub fn summarise(output: &str) -> String {
    let clean: String = strip_ansi(output);
    let lines: Vec<&str> = clean.lines().map(|l| l.trim_start_matches(['│', '╷', '╵', ' '])).collect();
    let mut summary = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("Error:") {
            let paragraph: Vec<&str> = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty() && !l.starts_with("Error:"))
                .collect();
            let mut detail = paragraph.join(" ");
            if detail.chars().count() > MAX_DETAIL {
                detail = format!("{}…", detail.chars().take(MAX_DETAIL).collect::<String>());
            }
            let detail = if detail.is_empty() { detail } else { format!(" — {detail}") };
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
    fn terraform_is_preferred_then_tofu_and_the_override_wins() {
        let path = std::ffi::OsString::from("/opt/tofu/bin:/usr/local/bin");
        let only = |present: &'static [&'static str]| move |p: &Path| present.iter().any(|f| p == Path::new(f));
        assert_eq!(binary(None, &path, &only(&["/usr/local/bin/terraform", "/opt/tofu/bin/tofu"])), "terraform");
        assert_eq!(binary(None, &path, &only(&["/opt/tofu/bin/tofu"])), "tofu");
        assert_eq!(binary(None, &path, &only(&[])), "terraform");
        assert_eq!(binary(Some("/srv/tf".into()), &path, &only(&["/opt/tofu/bin/tofu"])), "/srv/tf");
    }

    #[test]
    fn json_events_parse() {
        let start = Event::parse(r#"{"@level":"info","@message":"x: Creating...","type":"apply_start","hook":{"resource":{"addr":"terraform_data.machine[\"node-0\"]"}}}"#).unwrap();
        assert_eq!(
            (start.kind.as_str(), start.resource.as_deref()),
            ("apply_start", Some("terraform_data.machine[\"node-0\"]"))
        );
        let summary = Event::parse(r#"{"@level":"info","@message":"Apply complete!","type":"change_summary","changes":{"add":2,"change":0,"remove":1}}"#).unwrap();
        assert_eq!(summary.changes, Some((2, 0, 1)));
        assert!(Event::parse("not json").is_none());
    }

    #[test]
    fn the_tally_counts_finished_resources_and_keeps_the_ones_in_flight() {
        let event = |kind: &str, addr: &str| {
            Event::parse(&format!(r#"{{"type":"{kind}","hook":{{"resource":{{"addr":"{addr}"}}}}}}"#)).unwrap()
        };
        let mut tally = Tally::new(3);
        assert_eq!(tally.observe(&event("apply_start", "a.x"), "ready"), None);
        assert_eq!(tally.observe(&event("apply_start", "a.y"), "ready"), None);
        assert_eq!(tally.observe(&event("apply_progress", "a.y"), "ready"), None);
        assert_eq!(
            tally.observe(&event("apply_complete", "a.x"), "ready").as_deref(),
            Some("1/3 ready a.x; in flight: a.y")
        );
        assert_eq!(tally.observe(&event("apply_errored", "a.y"), "ready").as_deref(), Some("2/3 FAILED a.y"));
        assert_eq!(tally.in_flight, Vec::<String>::new());
        tally.observe(&event("apply_complete", "a.z"), "ready");
        assert_eq!(tally.observe(&event("apply_complete", "a.w"), "ready").as_deref(), Some("4/4 ready a.w"));
    }

    #[test]
    fn machines_going_away_come_from_deleted_or_replaced_instances() {
        let events: Vec<Event> = [
            r#"{"type":"planned_change","change":{"resource":{"addr":"terraform_data.machine[\"node-1\"]"},"action":"delete"}}"#,
            r#"{"type":"planned_change","change":{"resource":{"addr":"aws_instance.node[2]"},"action":"replace"}}"#,
            r#"{"type":"planned_change","change":{"resource":{"addr":"aws_instance.node[3]"},"action":"create"}}"#,
            r#"{"type":"planned_change","change":{"resource":{"addr":"aws_security_group.cluster"},"action":"delete"}}"#,
            r#"{"type":"planned_change","change":{"resource":{"addr":"openstack_compute_instance_v2.master[0]"},"action":"update"}}"#,
        ]
        .iter()
        .filter_map(|l| Event::parse(l))
        .collect();
        assert_eq!(machines_going_away(&events), ["node-1", "node-2"]);
    }

    #[test]
    fn summaries_keep_error_lines() {
        let output = "\u{1b}[31m╷\u{1b}[0m\n│ Error: Failed to query available provider packages\n│ \n│ Could not retrieve the list of available versions\n╵\n";
        assert_eq!(
            summarise(output),
            "  Error: Failed to query available provider packages — Could not retrieve the list of available versions"
        );
    }

    #[test]
    fn summaries_show_the_cause_terraform_wraps_onto_later_lines() {
        // `terraform init -no-color` offline, as printed.
        let output = "Initializing provider plugins...\n\
            Error: Failed to query available provider packages\n\n\
            Could not retrieve the list of available versions for provider hashicorp/aws:\n\
            could not connect to registry.terraform.io: failed to request discovery\n\
            document: Get \"https://registry.terraform.io/.well-known/terraform.json\":\n\
            dial tcp: lookup registry.terraform.io on 10.255.255.53:53: no such host\n\n\
            To see which modules are currently depending on hashicorp/aws and what\n\
            versions are specified, run the following command:\n    terraform providers\n";
        let summary = summarise(output);
        assert!(summary.starts_with("  Error: Failed to query available provider packages — Could not retrieve"));
        assert!(summary.ends_with("registry.terraform.io on 10.255.255.53:53: no such host"), "{summary}");
        assert!(!summary.contains("terraform providers") && !summary.contains('\n'), "{summary}");
        let long = format!("Error: x\n\n{}\n", "word ".repeat(500));
        assert!(summarise(&long).chars().count() < MAX_DETAIL + 40);
    }
}
