//! The `bootstrap` command line: the example configurations validate, and the bad-input
//! corpus (`tests/bad-input/<case>/`: `args`, `bootstrap.properties`, `expected.txt`) gets
//! its exact message (`{dir}` standing for the case's folder), exit code 2, nothing on
//! stdout, no file created, and no secret value of the input in any output. Runs with an
//! empty environment, so no OS_*/AWS_* variable leaks in. Also: credentials from the
//! environment and from `clouds.yaml`, and the cloud helper's own errors.

mod cloud_helper;
mod fixtures;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bootstrap(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap()
}

/// Every path under `dir`, with its permission bits: nothing may be created, removed or
/// changed, however deep.
fn listing(dir: &Path) -> BTreeSet<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut all = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            all.extend(listing(&path));
        }
        all.insert((path, meta.permissions().mode()));
    }
    all
}

/// Values of secret keys in a properties file.
fn secret_values(text: &str) -> Vec<String> {
    let secrets: Vec<&str> = bootstrap::config::secret_keys().collect();
    bootstrap::properties::parse(text)
        .map(|entries| {
            entries
                .into_iter()
                .filter(|e| secrets.contains(&e.key.as_str()) && e.value.len() > 3)
                .map(|e| e.value)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bad_input_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let args: Vec<String> =
            std::fs::read_to_string(case.join("args")).unwrap().lines().map(str::to_string).collect();
        let expected = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap()
            .replace("{dir}", &case.canonicalize().unwrap().display().to_string());
        let before = listing(case);
        let output = bootstrap(case, &args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(2) {
            failures.push(format!("{name}: exit code {:?}", output.status.code()));
        }
        if !output.stdout.is_empty() {
            failures.push(format!("{name}: printed on stdout"));
        }
        if stderr != expected {
            failures.push(format!("{name}:\n  expected: {expected:?}\n  got:      {stderr:?}"));
        }
        if listing(case) != before {
            failures.push(format!("{name}: created files"));
        }
        let input = std::fs::read_to_string(case.join("bootstrap.properties")).unwrap_or_default();
        for secret in secret_values(&input) {
            if stderr.contains(&secret) {
                failures.push(format!("{name}: a secret value appears in the output"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn examples_validate() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (provider, summary) in [
        ("openstack", "provider openstack, 1 master(s), 3 node(s), 2 GlusterFS node(s), domain stratus.example.com"),
        ("aws", "provider aws, 3 master(s), 3 node(s), 2 GlusterFS node(s), domain stratus.example.com"),
        ("vsphere", "provider vsphere, 1 master(s), 2 node(s), 2 GlusterFS node(s), domain stratus.example.com"),
        ("local", "provider local, 1 master(s), 2 node(s), 2 GlusterFS node(s), domain stratus.example.com"),
    ] {
        let output = bootstrap(&examples, &["validate".into(), "-i".into(), format!("{provider}.properties")]);
        assert!(output.status.success(), "{provider}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{provider}.properties: valid; {summary}\n"));
    }
}

#[test]
fn credentials_may_come_from_the_environment() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(examples.join("openstack.properties")).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("OpenStack.Password") && !l.starts_with("OpenStack.AuthURL"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("b.properties"), without).unwrap();
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        command.args(["validate", "-i", "b.properties"]).current_dir(dir.path()).env_clear();
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let missing = run(&[]);
    assert_eq!(missing.status.code(), Some(2));
    let ok = run(&[("OS_PASSWORD", "from-env-secret"), ("OS_AUTH_URL", "https://keystone.example.com:5000/v3")]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(!String::from_utf8_lossy(&ok.stdout).contains("from-env-secret"));
}

#[test]
fn openstack_credentials_may_come_from_clouds_yaml_and_secure_yaml() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(examples.join("openstack.properties")).unwrap();
    let without = fixtures::without_openstack_credentials(&text);
    std::fs::write(dir.path().join("b.properties"), &without).unwrap();
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    // ~/.config/openstack/ is one of the places looked in.
    let config = dir.path().join("home/.config/openstack");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("clouds.yaml"),
        "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.example.com:5000\n      username: ops\n      project_name: stratus\n      user_domain_name: Default\n    region_name: RegionTwo\n",
    )
    .unwrap();
    std::fs::write(config.join("secure.yaml"), "clouds:\n  prod:\n    auth:\n      password: from-secure-yaml\n")
        .unwrap();
    let terraform = dir.path().join("state/terraform");
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        command
            .args(["plan", "--render-only", "-i", "b.properties", "--state-dir", "state"])
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path().join("home"));
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };

    let ok = run(&[("OS_CLOUD", "prod")]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let main = std::fs::read_to_string(terraform.join("main.tf")).unwrap();
    for value in ["https://keystone.example.com:5000/v3", "\"ops\"", "\"stratus\"", "\"Default\"", "\"RegionTwo\""] {
        assert!(main.contains(value), "{value} from clouds.yaml is not in main.tf:\n{main}");
    }
    // The unversioned URL became Keystone's v3 one (checked above); the password from
    // secure.yaml goes only into the 0600 variables file.
    let tfvars = std::fs::read_to_string(terraform.join("secrets.auto.tfvars")).unwrap();
    assert_eq!(tfvars, "openstack_password = \"from-secure-yaml\"\n");
    let printed = format!("{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    assert!(!printed.contains("from-secure-yaml") && !main.contains("from-secure-yaml"));

    // An environment variable wins over the cloud; a cloud that is not there is one problem.
    let from_env = run(&[("OS_CLOUD", "prod"), ("OS_REGION_NAME", "RegionThree")]);
    assert!(from_env.status.success());
    assert!(std::fs::read_to_string(terraform.join("main.tf")).unwrap().contains("\"RegionThree\""));
    let missing = run(&[("OS_CLOUD", "staging")]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        format!(
            "error: b.properties is not a valid configuration (1 problem):\n  OpenStack.Cloud: cloud \"staging\" (from OS_CLOUD): not in {}/home/.config/openstack/clouds.yaml (it has: prod)\n",
            dir.path().display()
        )
    );
}

#[test]
fn without_its_cloud_helper_bootstrap_says_where_it_looked() {
    // `bootstrap` alone in a folder, with a PATH that has no `bootstrap-cloud` either.
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("bootstrap");
    std::fs::copy(env!("CARGO_BIN_EXE_bootstrap"), &lonely).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let output = Command::new(&lonely)
        .args(["preflight", "-i"])
        .arg(examples.join("aws.properties"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot run the cloud helper bootstrap-cloud: No such file or directory")
            && stderr.contains("it is built and installed next to bootstrap"),
        "{stderr}"
    );
}

#[test]
fn the_cloud_helper_refuses_what_is_not_a_request_without_echoing_it() {
    use std::io::Write;
    let helper = cloud_helper::path();
    let mut child = Command::new(&helper)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"call": "aws-preflight", "password": "hunter2-secret"#).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: bootstrap-cloud: not a request (line 1, column "), "{stderr}");
    assert!(!stderr.contains("hunter2-secret") && output.stdout.is_empty());

    // Run by hand, it says what it is instead of waiting for a request.
    let by_hand = Command::new(&helper).arg("--help").stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(by_hand.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&by_hand.stderr).starts_with("bootstrap-cloud is run by bootstrap"));
}

/// The local example in a fresh folder with `edit` applied to its text; returns the folder.
fn local_example(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    let text = std::fs::read_to_string(examples.join("local.properties")).unwrap();
    std::fs::write(dir.path().join("b.properties"), edit(text)).unwrap();
    dir
}

fn validate(dir: &Path) -> (Option<i32>, String) {
    let output = bootstrap(dir, &["validate".into(), "-i".into(), "b.properties".into()]);
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_leading_bom_and_cr_only_or_crlf_line_endings_are_read_as_plain_lines() {
    for (what, edit) in [
        ("BOM", Box::new(|t: String| format!("\u{feff}{t}")) as Box<dyn Fn(String) -> String>),
        ("CR only", Box::new(|t: String| t.replace('\n', "\r"))),
        ("CRLF", Box::new(|t: String| t.replace('\n', "\r\n"))),
        ("BOM and CR only", Box::new(|t: String| format!("\u{feff}{}", t.replace('\n', "\r")))),
    ] {
        let dir = local_example(edit);
        assert_eq!(validate(dir.path()), (Some(0), String::new()), "{what}");
    }
}

#[test]
fn key_files_that_are_fifos_or_too_big_and_oversized_properties_are_refused_without_hanging() {
    let dir = local_example(|t| t.replace("Local.SSHKeyFile = example-key", "Local.SSHKeyFile = key-fifo"));
    assert!(Command::new("mkfifo").arg(dir.path().join("key-fifo")).status().unwrap().success());
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("Local.SSHKeyFile: file \"key-fifo\" is not a regular file (a device, FIFO or socket); expected a regular file"),
        "{stderr}"
    );

    let dir = local_example(|t| t.replace("Local.SSHKeyFile = example-key", "Local.SSHKeyFile = big-key"));
    std::fs::write(dir.path().join("big-key"), vec![b'k'; (1 << 20) + 1]).unwrap();
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "Local.SSHKeyFile: file \"big-key\" is 1048577 bytes; expected a file of at most 1048576 bytes (1 MiB)"
        ),
        "{stderr}"
    );

    let dir = local_example(|t| format!("{t}{}", "# padding\n".repeat(120_000)));
    let size = std::fs::metadata(dir.path().join("b.properties")).unwrap().len();
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!("error: b.properties: is {size} bytes; expected a file of at most 1048576 bytes (1 MiB)\n")
    );

    // A FIFO as the properties file: refused at once, not waited on.
    let dir = tempfile::tempdir().unwrap();
    assert!(Command::new("mkfifo").arg(dir.path().join("b.properties")).status().unwrap().success());
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: b.properties: is not a regular file (a device, FIFO or socket); expected a regular file\n"
    );
}

#[test]
fn a_file_of_thousands_of_problems_or_huge_values_is_answered_quickly_and_briefly() {
    let unknown: String = (0..40_000).map(|i| format!("UnknownKeyNumber{i} = x\n")).collect();
    let dir = local_example(|t| format!("{t}{unknown}"));
    let started = std::time::Instant::now();
    let (code, stderr) = validate(dir.path());
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: b.properties is not a valid configuration (40000 problems):\n"),
        "{stderr:.300}"
    );
    assert_eq!(stderr.lines().count(), 102, "{stderr:.300}");
    assert!(stderr.ends_with("\n  ... and 39900 more\n"), "{stderr:.300}");

    // A value of most of a mebibyte is shown by its ends.
    let huge = "a".repeat(1_000_000);
    let dir = local_example(|t| {
        t.replace("Local.NodeAddresses = 192.0.2.11, 192.0.2.12", &format!("Local.NodeAddresses = {huge}"))
    });
    let (code, stderr) = validate(dir.path());
    assert_eq!(code, Some(2));
    assert!(stderr.len() < 2000 && stderr.contains(" characters)…"), "{stderr:.2000}");
}
