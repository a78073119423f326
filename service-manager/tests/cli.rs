//! The `hsm` binary end to end: listings, dry runs, secrets kept out of output, and the
//! bad-input corpus (`tests/bad-input/<case>/`: `args`, one argument per line, run inside the
//! case folder; `expected.txt`, the exact stderr). Every bad input must exit 2, print nothing on
//! stdout and leave the case folder unchanged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hsm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hsm"));
    command.env_remove("HSM_CATALOG").env_remove("HSM_LOG");
    command
}

fn run(args: &[&str]) -> Output {
    hsm().args(args).output().expect("hsm runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn bad_input_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let args: Vec<String> =
            std::fs::read_to_string(case.join("args")).unwrap().lines().map(str::to_string).collect();
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let before = listing(case);
        let output = hsm().args(&args).current_dir(case).output().unwrap();
        let got = stderr(&output);
        if output.status.code() != Some(2) {
            failures.push(format!("{name}: exit code {:?}, expected 2", output.status.code()));
        }
        if !output.stdout.is_empty() {
            failures.push(format!("{name}: printed on stdout: {}", stdout(&output)));
        }
        if got != expected {
            failures.push(format!("{name}:\n  expected: {expected:?}\n  got:      {got:?}"));
        }
        if got.contains("panicked") {
            failures.push(format!("{name}: panicked"));
        }
        if listing(case) != before {
            failures.push(format!("{name}: created files"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn list_services_looks_like_stackato() {
    let output = run(&["list-services"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let columns: Vec<&str> = header.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns, vec!["ID", "NAME", "PRODUCT VERSIONS", "CATEGORIES", "LABELS"]);
    let mysql = lines.find(|l| l.starts_with("stackato.hpe.mysql ")).expect("mysql is listed");
    assert!(mysql.contains("8.0, 8.4") && mysql.contains("Data") && mysql.contains("MySQL, Dev Grade"), "{mysql}");
    // Columns line up: every row's second column starts where NAME does.
    let name_at = header.find("NAME").unwrap();
    for line in text.lines().skip(1) {
        let (before, after) = line.split_at(name_at);
        assert!(before.ends_with(' ') && !after.starts_with(' '), "misaligned: {line}");
    }
}

#[test]
fn list_services_as_json_and_yaml() {
    let output = run(&["list-services", "-o", "json"]);
    let services: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let ids: Vec<&str> = services.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in [
        "stackato.hpe.hcf",
        "stackato.hpe.hcp",
        "stackato.hpe.hsc",
        "stackato.hpe.mongo",
        "stackato.hpe.mssql",
        "stackato.hpe.mysql",
        "stackato.hpe.pass-through",
        "stackato.hpe.postgres",
        "stackato.hpe.rabbitmq",
        "stackato.hpe.rds-mysql",
        "stackato.hpe.rds-postgres",
        "stackato.hpe.redis",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let yaml = stdout(&run(&["list-services", "-o", "yaml"]));
    let parsed: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(parsed, services);
}

#[test]
fn list_categories() {
    let output = run(&["list-categories", "-o", "json"]);
    let categories: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let messaging = categories.as_array().unwrap().iter().find(|c| c["category"] == "Messaging").unwrap();
    assert_eq!(messaging["services"], serde_json::json!(["stackato.hpe.rabbitmq"]));
}

#[test]
fn get_service_shows_versions_and_parameters() {
    let output = run(&["get-service", "stackato.hpe.mysql", "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let detail: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(detail["parameters_of"], "8.4/1.0.0");
    assert_eq!(detail["versions"][1]["upgrade_from"], serde_json::json!(["8.0"]));
    let root = detail["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "root-password").unwrap();
    assert_eq!(
        (root["secret"].as_bool(), root["generated"].as_bool(), root["required"].as_bool()),
        (Some(true), Some(true), Some(true))
    );

    let older = stdout(&run(&["get-service", "stackato.hpe.mysql", "8.0", "-o", "json"]));
    assert!(older.contains("\"parameters_of\": \"8.0/1.0.0\""));

    let table = stdout(&run(&["get-service", "stackato.hpe.hcf"]));
    assert!(table.contains("PARAMETERS (4.0.1/1.0.0)"));
    let domain = table.lines().find(|l| l.starts_with("DOMAIN ")).unwrap();
    assert!(domain.split_whitespace().take(3).eq(["DOMAIN", "yes", "no"]), "{domain}");
}

#[test]
fn dry_run_prints_a_plan_and_never_a_secret() {
    let output = run(&[
        "create-instance",
        "stackato.hpe.mysql",
        "--instance-id",
        "orders-db",
        "--set",
        "root-password=Sup3r-Secret-Value",
        "--dry-run",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(
        yaml.starts_with("# instance orders-db of stackato.hpe.mysql (6 objects)\n# Secret secret-parameters (keys: root-password) is left out: its values are secret (--show-secrets prints them)\n"),
        "{yaml}"
    );
    assert!(yaml.contains("image: docker.io/library/mysql:8.4.3"));
    assert!(!yaml.contains("Sup3r-Secret-Value") && !stderr(&output).contains("Sup3r-Secret-Value"));
    assert!(stderr(&output).contains("dry run: nothing was created"));

    let output =
        run(&["create-instance", "stackato.hpe.mysql", "8.0", "--instance-id", "old", "--dry-run", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["Namespace", "ConfigMap", "NetworkPolicy", "Service", "Service", "StatefulSet"],
        "a printed plan piped to kubectl apply must not create Secrets holding placeholders"
    );
    assert!(stdout(&output).contains("mysql:8.0.40"));
    assert!(!stdout(&output).contains("<redacted>"));

    // Asked for explicitly, the Secret is printed with its real values.
    let output = run(&[
        "create-instance",
        "stackato.hpe.mysql",
        "--instance-id",
        "orders-db",
        "--set",
        "root-password=Sup3r-Secret-Value",
        "--dry-run",
        "-o",
        "json",
        "--show-secrets",
    ]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let secret = list["items"].as_array().unwrap().iter().find(|i| i["kind"] == "Secret").expect("the Secret is shown");
    let encoded = secret["data"]["root-password"].as_str().unwrap();
    assert_eq!(encoded, "U3VwM3ItU2VjcmV0LVZhbHVl", "base64 of the real value");
    let refused = run(&["create-instance", "stackato.hpe.mysql", "--show-secrets"]);
    assert_eq!(refused.status.code(), Some(2), "--show-secrets only with --dry-run");
}

#[test]
fn generated_instance_ids_are_dns_labels() {
    let output = run(&["create-instance", "stackato.hpe.redis", "--dry-run", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let namespace = list["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(namespace.starts_with("redis-") && namespace.len() == "redis-".len() + 6, "{namespace}");
    assert!(namespace.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
}

#[test]
fn idl_files_in_json_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("idl.json");
    std::fs::write(
        &json,
        r#"{"instance_id": "cf", "parameters": [{"name": "DOMAIN", "value": "cf.example.com"}],
            "scaling": [{"component": "router", "min_instances": 3, "max_instances": 3}]}"#,
    )
    .unwrap();
    let yaml = dir.path().join("idl.yaml");
    std::fs::write(&yaml, "instance_id: cf\nparameters:\n  - name: DOMAIN\n    value: cf.example.com\nscaling:\n  - component: router\n    min_instances: 3\n    max_instances: 3\n").unwrap();
    let mut outputs = Vec::new();
    for file in [&json, &yaml] {
        let output =
            run(&["create-instance", "stackato.hpe.hcf", "-i", file.to_str().unwrap(), "--dry-run", "-o", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let list: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        let router = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == "Deployment" && i["metadata"]["name"] == "router")
            .unwrap();
        assert_eq!(router["spec"]["replicas"], 3);
        outputs.push(list["items"].as_array().unwrap().len());
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn bad_input_is_reported_before_any_cluster_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let output = hsm()
        .args(["create-instance", "stackato.hpe.mysql", "--instance-id", "db", "--set", "NOPE=1", "--kubeconfig"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--set NOPE: unknown parameter \"NOPE\""), "{}", stderr(&output));
}

#[test]
fn lint_accepts_the_shipped_catalog() {
    let output = run(&["lint"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).ends_with("12 services, 13 versions, no problems\n"), "{}", stdout(&output));
}

#[test]
fn catalog_location_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let output = hsm().env("HSM_CATALOG", dir.path()).arg("list-services").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with(&format!("error: {}/config.json: cannot read:", dir.path().display())),
        "{}",
        stderr(&output)
    );
}

/// Runs `hsm` on a pseudo-terminal (util-linux `script`), answering prompts as they appear.
fn on_terminal(args: &str, answers: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_hsm"));
    let mut child = Command::new("script")
        .args(["-qfc", &command, "/dev/null"])
        .env_remove("HSM_CATALOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut stdin = child.stdin.take().unwrap();
    for (prompt, answer) in answers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !seen.contains(prompt) {
            let chunk = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("no prompt {prompt:?} in {seen:?}"));
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        write!(stdin, "{answer}\r").unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    child.wait().unwrap();
    seen
}

#[test]
fn missing_parameters_are_asked_for_on_a_terminal_secrets_without_echo() {
    let out = on_terminal(
        "create-instance stackato.hpe.rds-mysql --instance-id r --dry-run -o json",
        &[("HOST (", "db.example.com"), ("USERNAME (", "app"), ("password (", "S3cret-Typed-PW")],
    );
    assert!(out.contains("stackato.hpe.rds-mysql needs values for: HOST, USERNAME, password"), "{out}");
    assert!(out.contains("\"externalName\": \"db.example.com\""), "{out}");
    assert!(out.contains("\"USERNAME\": \"app\""), "{out}");
    assert!(!out.contains("S3cret-Typed-PW"), "the secret was echoed or printed: {out}");
}

/// A catalog with the working service `test.acme.good`; returns its folder.
fn small_catalog(dir: &Path) -> PathBuf {
    let sdl = r#"{"name": "good", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
        "components": [{"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64}]}"#;
    let root = dir.join("catalog");
    let version = root.join("services/acme/good/1/1.0.0/sdl");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("sdl.json"), sdl).unwrap();
    std::fs::write(root.join("services/acme/good/config.json"), r#"{"description": "works"}"#).unwrap();
    std::fs::write(root.join("config.json"), r#"{"name": "test"}"#).unwrap();
    root
}

#[test]
fn lint_warns_about_files_it_did_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_catalog(dir.path());
    std::fs::write(root.join("services/acme/good/1/sdl.json"), "{}").unwrap();
    let output = run(&["lint", root.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{}: 1 service, 1 version, no problems\n", root.display()));
    assert_eq!(
        stderr(&output),
        format!(
            "warning: {}/services/acme/good/1/sdl.json: not read: the catalog layout has no place for it (an SDL goes in services/<vendor>/<service>/<product_version>/<sdl_version>/sdl/sdl.json)\n",
            root.display()
        )
    );
}

#[test]
fn one_broken_service_does_not_hide_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_catalog(dir.path());
    let broken = root.join("services/acme/broken");
    std::fs::create_dir_all(broken.join("1/1.0.0/sdl")).unwrap();
    std::fs::write(broken.join("config.json"), "{ not json").unwrap();
    let catalog = root.to_str().unwrap();
    let output = run(&["--catalog", catalog, "list-services"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("test.acme.good"), "{}", stdout(&output));
    assert!(!stdout(&output).contains("broken"));
    assert!(stderr(&output).starts_with("warning: service test.acme.broken left out: "), "{}", stderr(&output));
    let output = run(&["--catalog", catalog, "get-service", "test.acme.good"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&["--catalog", catalog, "get-service", "test.acme.broken"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("error: service \"test.acme.broken\" cannot be read: "), "{}", stderr(&output));
    let output = run(&["lint", catalog]);
    assert_eq!(output.status.code(), Some(2), "lint still fails on it");
}

#[test]
fn help_shows_cluster_flags_only_where_a_cluster_is_used_and_says_defaults() {
    let help = |args: &[&str]| stdout(&run(args));
    for offline in [&["list-services", "--help"][..], &["get-service", "--help"], &["lint", "--help"]] {
        let text = help(offline);
        assert!(!text.contains("--kubeconfig") && !text.contains("--concurrency"), "{offline:?}:\n{text}");
    }
    for online in [&["list-instances", "--help"][..], &["create-instance", "--help"], &["delete-instance", "--help"]] {
        let text = help(online);
        assert!(text.contains("--kubeconfig") && text.contains("--request-timeout"), "{online:?}:\n{text}");
    }
    assert!(
        help(&["--help"]).contains("[default: the catalog/ folder of the Stratus checkout"),
        "{}",
        help(&["--help"])
    );
}
