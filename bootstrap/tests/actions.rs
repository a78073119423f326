//! The installer's actions as library calls, without the binary: validate, plan, status and
//! preflight run with a [`Context`] and answer with typed outcomes and errors carrying their
//! exit codes. (The binary's own output: `cli.rs`, `terraform.rs`, `provision.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap::actions::{self, Context};
use bootstrap::phases::Status;
use bootstrap::progress::Collect;

fn example(provider: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{provider}.properties"))
}

fn refuse(_: &str) -> bool {
    false
}

/// A context with `env` and the lines it reports collected in `report`.
fn context<'a>(env: &'a BTreeMap<String, String>, report: &'a Collect) -> Context<'a> {
    Context { env, report, confirm: &refuse, program: PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")) }
}

fn offline_env() -> BTreeMap<String, String> {
    BTreeMap::from([("TF_CLI_CONFIG_FILE".to_string(), "/dev/null".to_string())])
}

#[test]
fn validate_answers_with_the_configuration_or_every_problem_as_bad_input() {
    let (env, report) = (BTreeMap::new(), Collect::default());
    let outcome =
        actions::validate::run(&actions::validate::Options { input: example("local") }, &context(&env, &report))
            .unwrap();
    assert_eq!(outcome.config.provider.kind(), bootstrap::config::ProviderKind::Local);
    assert!(outcome.summary().starts_with("provider local, 1 master(s), "), "{}", outcome.summary());

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.properties");
    std::fs::write(&bad, "Provider = local\nNodeCount = many\n").unwrap();
    let error =
        actions::validate::run(&actions::validate::Options { input: bad }, &context(&env, &report)).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("NodeCount"), "{error}");
    assert!(!error.to_string().contains("--"), "no command-line wording in library errors: {error}");
}

#[test]
fn status_after_plan_says_planned_not_provisioned() {
    let (env, report) = (offline_env(), Collect::default());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let options = actions::plan::Options { input: example("local"), state_dir: Some(state.clone()), render_only: true };
    let planned = actions::plan::run(&options, &context(&env, &report)).unwrap();
    assert_eq!(planned.dir, state.join("terraform"));
    assert!(report.text().contains("validated ") && report.text().contains("rendered "), "{}", report.text());

    let status = actions::status::run(&actions::status::Options { state_dir: state.clone() }).unwrap();
    assert_eq!(status.status, Status::Planned);
    assert_eq!(status.status.describe(), "planned, not provisioned");
    assert!(!status.install_started() && status.outputs.is_empty());

    // The binary says the same, and succeeds.
    let output =
        Command::new(env!("CARGO_BIN_EXE_bootstrap")).args(["status", "--state-dir"]).arg(&state).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "status: planned, not provisioned\n");
}

#[test]
fn status_of_a_directory_without_a_cluster_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let error = actions::status::run(&actions::status::Options { state_dir: dir.path().to_path_buf() }).unwrap_err();
    assert!(matches!(error, bootstrap::Error::NoState(_)), "{error:?}");
    assert_eq!(error.exit_code(), 1);
    assert!(error.to_string().contains("nothing planned or provisioned"), "{error}");
    std::fs::write(dir.path().join("state.json"), "{").unwrap();
    let error = actions::status::run(&actions::status::Options { state_dir: dir.path().to_path_buf() }).unwrap_err();
    assert_eq!(error.exit_code(), 2, "a damaged record is bad input: {error}");
}

#[test]
fn plan_offline_shows_the_cause_of_terraforms_failure() {
    let (env, report) = (offline_env(), Collect::default());
    let dir = tempfile::tempdir().unwrap();
    let options =
        actions::plan::Options { input: example("aws"), state_dir: Some(dir.path().into()), render_only: false };
    let error = actions::plan::run(&options, &context(&env, &report)).unwrap_err();
    assert!(matches!(error, bootstrap::Error::Terraform(_)), "{error:?}");
    assert_eq!(error.exit_code(), 1);
    let text = error.to_string();
    // Not only the title of Terraform's diagnostic: the cause it wraps onto later lines.
    assert!(text.contains("Error: Failed to query available provider packages — Could not retrieve"), "{text}");
    assert!(
        ["no such host", "connection refused", "network is unreachable", "i/o timeout"]
            .iter()
            .any(|c| text.contains(c)),
        "{text}"
    );
    // The state record says planned: nothing was made.
    let status = actions::status::run(&actions::status::Options { state_dir: dir.path().into() }).unwrap();
    assert_eq!(status.status, Status::Planned);
}

#[test]
fn preflight_of_existing_machines_checks_nothing_beyond_the_configuration() {
    let (env, report) = (BTreeMap::new(), Collect::default());
    let outcome =
        actions::preflight::run(&actions::preflight::Options { input: example("local") }, &context(&env, &report))
            .unwrap();
    assert_eq!(outcome, actions::preflight::Outcome::NotChecked(bootstrap::config::ProviderKind::Local));
    assert_eq!(report.text(), "preflight: nothing to check beyond the configuration for existing machines");
}

#[test]
fn uninstall_asks_through_the_context_and_destroys_nothing_when_refused() {
    let (env, report) = (offline_env(), Collect::default());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let asked = std::sync::Mutex::new(Vec::new());
    let confirm = |question: &str| {
        asked.lock().unwrap().push(question.to_string());
        false
    };
    let context = Context {
        env: &env,
        report: &report,
        confirm: &confirm,
        program: PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")),
    };
    let options = actions::uninstall::Options { input: example("local"), state_dir: Some(state.clone()), yes: false };
    let error = actions::uninstall::run(&options, &context).unwrap_err();
    assert!(matches!(error, bootstrap::Error::Cancelled("destroyed")), "{error:?}");
    assert_eq!(error.exit_code(), 1);
    assert_eq!(error.to_string(), "cancelled: nothing was destroyed");
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].starts_with("Destroy every resource of cluster demo recorded in "), "{asked:?}");
    assert!(state.join("terraform/main.tf").exists(), "the rendered configuration stays");
    assert!(!report.text().contains("destroyed"), "{}", report.text());
    // Nothing was provisioned: the state record, if any, does not claim otherwise.
    let status = actions::status::run(&actions::status::Options { state_dir: state }).unwrap();
    assert_eq!(status.status, Status::Planned);
}
