//! Rendered Terraform: golden files per provider example (`tests/golden/<provider>/`,
//! refreshed with `UPDATE_GOLDEN=1`), `terraform fmt -check` on all of it, values that look
//! like HCL expressions staying literal, secrets kept out of `.tf` files, a real
//! `terraform init/plan` of the `local` provider through `bootstrap plan` and `terraform
//! validate` of what it rendered, IDs for OpenStack projects and domains, and OpenTofu when
//! Terraform is not there. (Apply, destroy and a kill mid-apply: `provision.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

// Only its Terraform runner is used here.
#[allow(dead_code)]
mod common;
use common::terraform;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn render(properties: &Path) -> bootstrap::render::Rendered {
    let config = bootstrap::load(properties, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let pki = bootstrap::pki::Pki::generate(&config.cluster_name).unwrap();
    bootstrap::render::render(&config, &pki).unwrap()
}

/// `bootstrap plan` of `examples/<provider>.properties` into `state`.
fn plan_example(provider: &str, state: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["plan", "-i"])
        .arg(examples().join(format!("{provider}.properties")))
        .arg("--state-dir")
        .arg(state)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap()
}

const PROVIDERS: [&str; 4] = ["openstack", "aws", "vsphere", "local"];

#[test]
fn rendered_examples_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let examples_dir = std::fs::canonicalize(examples()).unwrap();
    let mut mismatched = Vec::new();
    for provider in PROVIDERS {
        let rendered = render(&examples().join(format!("{provider}.properties")));
        for (name, content) in &rendered.files {
            let content = content.replace(&examples_dir.display().to_string(), "<examples>");
            let path = golden.join(provider).join(name);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &content).unwrap();
            } else if std::fs::read_to_string(&path).unwrap_or_default() != content {
                mismatched.push(path.display().to_string());
            }
        }
    }
    assert!(
        mismatched.is_empty(),
        "rendered Terraform differs from golden files (review, then UPDATE_GOLDEN=1):\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn everything_rendered_is_terraform_fmt_clean_and_keeps_secrets_out() {
    for provider in PROVIDERS {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render(&examples().join(format!("{provider}.properties")));
        bootstrap::write_rendered(dir.path(), &rendered).unwrap();
        let fmt = terraform(dir.path(), &["fmt", "-check", "-diff", "."]);
        assert!(
            fmt.status.success(),
            "{provider}: terraform fmt -check:\n{}{}",
            String::from_utf8_lossy(&fmt.stdout),
            String::from_utf8_lossy(&fmt.stderr)
        );
        for content in rendered.files.values() {
            assert!(!content.contains("example-password"), "{provider}: a secret reached a .tf file");
        }
        for name in rendered.secret_files.keys() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{provider}: {name} is readable by others");
        }
    }
}

#[test]
fn values_that_look_like_expressions_stay_literal() {
    let dir = tempfile::tempdir().unwrap();
    // A key file whose name holds every character HCL treats specially.
    let key_name = r#"key "${file("passwd")}" %{if true}x%{endif} \n"#;
    std::fs::write(dir.path().join(key_name), "not a key").unwrap();
    let text = std::fs::read_to_string(examples().join("local.properties")).unwrap();
    let text = text
        .replace("Local.SSHKeyFile = example-key", &format!("Local.SSHKeyFile = {}", key_name.replace('\\', "\\\\")));
    std::fs::write(dir.path().join("b.properties"), text).unwrap();
    let state = dir.path().join("state");
    let output = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["plan", "-i", "b.properties", "--state-dir", "state"])
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let shown = terraform(&state.join("terraform"), &["show", "-json", "plan.tfplan"]);
    let plan: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let value = &plan["planned_values"]["outputs"]["ssh_private_key_file"]["value"];
    let expected = std::fs::canonicalize(dir.path()).unwrap().join(key_name);
    assert_eq!(value.as_str(), Some(expected.to_str().unwrap()), "the path came through Terraform unchanged");

    // The same characters in OpenStack settings render to a configuration Terraform can parse.
    let text = std::fs::read_to_string(examples().join("openstack.properties")).unwrap();
    let text = text
        .replace("OpenStack.Username = operator", r#"OpenStack.Username = op"${var.x}%{if}\\"#)
        .replace("OpenStack.KeypairFile = example-key", "OpenStack.KeypairFile = ../example-key");
    let os = dir.path().join("os");
    std::fs::create_dir_all(&os).unwrap();
    std::fs::copy(examples().join("example-key"), dir.path().join("example-key")).unwrap();
    std::fs::write(os.join("b.properties"), text).unwrap();
    let rendered = render(&os.join("b.properties"));
    assert!(
        rendered.files["main.tf"].contains(r#"user_name = "op\"$${var.x}%%{if}\\""#),
        "{}",
        &rendered.files["main.tf"][..800]
    );
    bootstrap::write_rendered(&os.join("tf"), &rendered).unwrap();
    let fmt = terraform(&os.join("tf"), &["fmt", "-check", "."]);
    assert!(fmt.status.success(), "{}", String::from_utf8_lossy(&fmt.stderr));
}

#[test]
fn plan_runs_terraform_for_the_local_provider() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = plan_example("local", &state);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("Plan: 5 to add, 0 to change, 0 to destroy."), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for phase in ["validated", "rendered 7 file(s)", "terraform init", "terraform plan: Plan: 5 to add"] {
        assert!(stderr.contains(phase), "no {phase:?} in {stderr}");
    }
    // A second plan does not initialise again.
    let again = plan_example("local", &state);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("terraform init"));
    assert!(state.join("terraform/plan.tfplan").exists());
    assert!(std::fs::read_to_string(state.join("terraform.log")).unwrap().contains("$ terraform plan"));

    // `terraform validate` of the same directory: valid, without a warning.
    let validated = terraform(&state.join("terraform"), &["validate", "-json"]);
    let report: serde_json::Value = serde_json::from_slice(&validated.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["warning_count"], 0, "{report}");
}

#[test]
fn projects_and_domains_given_by_id_render_as_ids_and_stay_fmt_clean() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples().join("example-key"), dir.path().join("example-key")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not checked here").unwrap();
    let text = std::fs::read_to_string(examples().join("openstack.properties"))
        .unwrap()
        .replace("OpenStack.DomainName = default", "OpenStack.DomainID = 2b6e6c1e")
        .replace("OpenStack.ProjectName = stratus", "OpenStack.ProjectID = 8d3f0a9c\nOpenStack.CACertFile = ca.pem");
    std::fs::write(dir.path().join("b.properties"), text).unwrap();
    let rendered = render(&dir.path().join("b.properties"));
    let main = &rendered.files["main.tf"];
    for line in ["  domain_id = \"2b6e6c1e\"\n", "  tenant_id = \"8d3f0a9c\"\n", "  cacert_file = \""] {
        assert!(main.contains(line), "no {line:?} in\n{}", &main[..900]);
    }
    assert!(!main.contains("tenant_name") && !main.contains("domain_name"), "{}", &main[..900]);
    bootstrap::write_rendered(&dir.path().join("tf"), &rendered).unwrap();
    let fmt = terraform(&dir.path().join("tf"), &["fmt", "-check", "-diff", "."]);
    assert!(fmt.status.success(), "{}", String::from_utf8_lossy(&fmt.stdout));
}

#[test]
fn opentofu_is_used_when_terraform_is_not_on_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A `tofu` that notes each call and hands it to the real binary (OpenTofu takes the same
    // commands); the PATH holds no `terraform`.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v terraform"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let calls = dir.path().join("calls");
    std::fs::write(bin.join("tofu"), format!("#!/bin/sh\necho \"$1\" >> {}\nexec {real} \"$@\"\n", calls.display()))
        .unwrap();
    std::fs::set_permissions(bin.join("tofu"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["plan", "-i"])
        .arg(examples().join("local.properties"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("PATH", &bin)
        .env_remove("STRATUS_TERRAFORM")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "init\nplan\n");
}

#[test]
fn terraform_failures_are_summarised_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let output = plan_example("openstack", dir.path());
    // No provider plugin can be downloaded here: init fails, and says so briefly.
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: terraform init failed:\n  Error: "), "{stderr}");
    // The cause Terraform wraps onto later lines of its diagnostic is shown, not only its title.
    let error = stderr.lines().find(|l| l.starts_with("  Error: ")).unwrap();
    assert!(
        ["no such host", "connection refused", "network is unreachable", "i/o timeout", "dial tcp"]
            .iter()
            .any(|cause| error.contains(cause)),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with(&format!("(full output in {})", dir.path().join("terraform.log").display())),
        "{stderr}"
    );
    assert!(!stderr.contains("example-password"));
}

/// Every directory under `dir` (and `dir`) with its mode, and every file with its mode and bytes.
fn walk(dir: &Path, dirs: &mut Vec<(PathBuf, u32)>, files: &mut Vec<(PathBuf, u32, Vec<u8>)>) {
    use std::os::unix::fs::PermissionsExt;
    dirs.push((dir.to_path_buf(), std::fs::metadata(dir).unwrap().permissions().mode() & 0o777));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, dirs, files);
        } else if meta.is_file() {
            files.push((path.clone(), meta.permissions().mode() & 0o777, std::fs::read(&path).unwrap()));
        }
    }
}

/// `bootstrap <args>` under umask 022 (what most shells have), in `dir`.
fn bootstrap_umask_022(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap()
}

#[test]
fn plan_leaves_secrets_only_in_0600_files_in_0700_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples().join("example-key"), dir.path().join("example-key")).unwrap();
    // A real plan of the local provider, and a rendering of OpenStack with a canary password.
    std::fs::copy(examples().join("local.properties"), dir.path().join("local.properties")).unwrap();
    let canary = "canary-password-5b0e1f9d";
    let text = std::fs::read_to_string(examples().join("openstack.properties")).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("OpenStack.Password") {
                format!("OpenStack.Password = {canary}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("openstack.properties"), text).unwrap();
    for (properties, state, extra) in [("local", "local-state", None), ("openstack", "os-state", Some("--render-only"))]
    {
        let mut args = vec!["plan", "-i"];
        let input = format!("{properties}.properties");
        args.push(&input);
        args.extend(["--state-dir", state]);
        args.extend(extra);
        let output = bootstrap_umask_022(dir.path(), &args);
        assert!(output.status.success(), "{properties}: {}", String::from_utf8_lossy(&output.stderr));
        let state = dir.path().join(state);
        let pki: bootstrap::pki::Pki = serde_json::from_slice(&std::fs::read(state.join("pki.json")).unwrap()).unwrap();
        let key_line = |pem: &str| pem.lines().nth(1).unwrap().to_string();
        let canaries = [
            canary.to_string(),
            pki.join_token.clone(),
            pki.certificate_key.clone(),
            key_line(&pki.ca_key),
            key_line(&pki.admin_key),
        ];
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        walk(&state, &mut dirs, &mut files);
        for (path, mode) in &dirs {
            assert_eq!(*mode, 0o700, "{properties}: directory {} is {mode:o}", path.display());
        }
        let always_secret =
            ["pki.json", "kubeconfig", "plan.tfplan", "terraform.tfstate", "terraform.log", "state.json"];
        let mut secret_files = 0;
        for (path, mode, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            let name = path.file_name().unwrap().to_string_lossy();
            let holds = canaries.iter().any(|c| text.contains(c.as_str())) || always_secret.contains(&name.as_ref());
            if holds {
                secret_files += 1;
                assert_eq!(*mode, 0o600, "{properties}: {} holds a secret but is {mode:o}", path.display());
            }
        }
        assert!(secret_files >= 3, "{properties}: the canaries were found nowhere ({secret_files} files)");
        if extra.is_none() {
            assert!(state.join("terraform/plan.tfplan").exists(), "no plan to check");
        } else {
            let tfvars = std::fs::read_to_string(state.join("terraform/secrets.auto.tfvars")).unwrap();
            assert!(tfvars.contains(canary));
        }
    }
}

#[test]
fn remote_shell_lines_interpolate_no_value_of_the_configuration_but_the_checked_machine_dir() {
    // Whatever reaches a template, a remote shell line may only use the sudo prefix, the
    // resource's ID and the machine directory (an absolute path of [A-Za-z0-9._/-]).
    let allowed = ["local.sudo", "self.id", "local.machine_dir"];
    for provider in PROVIDERS {
        let main = render(&examples().join(format!("{provider}.properties"))).files.remove("main.tf").unwrap();
        let mut in_inline = false;
        for line in main.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("inline = [") {
                in_inline = true;
                continue;
            }
            if in_inline && trimmed == "]" {
                in_inline = false;
            }
            if !in_inline {
                continue;
            }
            for piece in line.split("${").skip(1) {
                let expression = piece.split('}').next().unwrap();
                assert!(allowed.contains(&expression), "{provider}: ${{{expression}}} in a shell line: {line}");
            }
        }
    }
    // The machine's details travel as a file's content, not an echo line.
    let main = render(&examples().join("local.properties")).files.remove("main.tf").unwrap();
    assert!(main.contains("content     = jsonencode({ cluster = local.cluster"), "{main}");
    assert!(!main.contains("echo '"), "{main}");
}
