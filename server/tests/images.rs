//! The platform's own images (`scripts/build-images`, `docs/images.md`), built without a daemon
//! from the binaries this test run built, then checked as a runtime sees them: the OCI
//! layout's index → manifest → config (entrypoint, non-root user, labels), the layer unpacked
//! by `umoci` and each binary started in it by `chroot` as uid 65532 with the image's
//! environment — it must answer `--version`, and `hsm` must read the catalog the image
//! carries. The hcp SDL must name exactly the images the script builds, and the Dockerfile's
//! version must be the crates'. Needs root (chroot, file owners), as the session and CI have.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `hsm`, next to this package's binary (`cargo test --workspace` builds it; otherwise it is
/// built here into the same target folder).
fn hsm() -> PathBuf {
    let own = Path::new(env!("CARGO_BIN_EXE_hsm-server"));
    let hsm = own.with_file_name("hsm");
    if !hsm.is_file() {
        let target = own.parent().and_then(Path::parent).expect("target folder");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "service-manager", "--bin", "hsm", "--target-dir"])
            .arg(target)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success() && hsm.is_file(), "cannot build hsm into {}", target.display());
    }
    hsm
}

/// The `version = "…"` of a crate's Cargo.toml (its first one: the package's).
fn crate_version(dir: &str) -> String {
    let text = std::fs::read_to_string(repo().join(dir).join("Cargo.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("version = \"")).expect("a version line");
    line.trim_start_matches("version = \"").trim_end_matches('"').to_string()
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn build_images(bin_dir: &Path, out: &Path) {
    let output = Command::new(repo().join("scripts/build-images"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    ok(output, "scripts/build-images");
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A blob of an OCI layout by its descriptor, checked against the descriptor's size.
fn blob(layout: &Path, descriptor: &Value) -> Value {
    let digest = descriptor["digest"].as_str().expect("a digest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let path = layout.join("blobs/sha256").join(hex);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), descriptor["size"].as_u64().unwrap(), "size of {digest}");
    json(&path)
}

/// One image of a layout: its manifest's digest and its config.
struct Image {
    manifest_digest: String,
    config: Value,
    manifest: Value,
}

/// index.json → the manifest tagged `tag` → its config, as a runtime resolves `layout:tag`.
fn image(layout: &Path, tag: &str) -> Image {
    assert_eq!(json(&layout.join("oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image per layout: {index}");
    let entry = &manifests[0];
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], tag);
    assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let manifest = blob(layout, entry);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let config = blob(layout, &manifest["config"]);
    Image { manifest_digest: entry["digest"].as_str().unwrap().to_string(), config, manifest }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap_or(&Vec::new()).iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Every file (not folder) under `dir`, as paths relative to `root`.
fn files(root: &Path, dir: &Path, into: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            files(root, &path, into);
        } else {
            into.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

/// Runs `args` in `rootfs` through chroot as 65532:65532 with exactly the image's environment.
fn run_in(rootfs: &Path, env: &[String], args: &[&str]) -> Output {
    // Coreutils' chroot by its path: the image's PATH (set below) does not have it.
    let mut command = Command::new("/usr/sbin/chroot");
    command.arg("--userspec=65532:65532").arg(rootfs).args(args).env_clear();
    for pair in env {
        let (key, value) = pair.split_once('=').expect("KEY=value");
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn images_run_as_non_root_and_answer_their_version() {
    let server_bin = Path::new(env!("CARGO_BIN_EXE_hsm-server"));
    let bin_dir = hsm().parent().unwrap().to_path_buf();
    assert_eq!(server_bin.parent().unwrap(), bin_dir);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("images");
    build_images(&bin_dir, &out);

    let revision = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo()).output().unwrap();
    let revision = if revision.status.success() {
        String::from_utf8(revision.stdout).unwrap().trim().to_string()
    } else {
        "unknown".to_string()
    };
    let listed = std::fs::read_to_string(out.join("images.txt")).unwrap();
    let sdl = json(&repo().join("catalog/services/hpe/hcp/4.0.2/1.0.0/sdl/sdl.json"));
    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();

    // name, crate, entrypoint, command, the hcp component that runs it.
    let expected = [
        ("hsm-server", "server", vec!["/usr/local/bin/hsm-server"], vec![], "hsm-server"),
        (
            "hsm",
            "service-manager",
            vec!["/usr/local/bin/hsm"],
            vec!["controller", "--catalog", "/catalog"],
            "hsm-controller",
        ),
    ];
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");
    for (name, krate, entrypoint, cmd, component) in expected {
        let version = crate_version(krate);
        let reference = format!("registry.stratus.local/stratus/{name}:{version}");
        assert!(listed.lines().any(|l| l == format!("{name} {version} {reference}")), "{name} in {listed}");

        let layout = out.join(name);
        let Image { config, manifest, .. } = image(&layout, &version);
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z", "SOURCE_DATE_EPOCH");
        let c = &config["config"];
        assert_eq!(strings(&c["Entrypoint"]), entrypoint, "{name}: entrypoint");
        assert_eq!(strings(&c["Cmd"]), cmd, "{name}: command");
        assert_eq!(c["User"], "65532:65532", "{name}: runs as the non-root user");
        let labels = &c["Labels"];
        assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/stratus-caas/stratus");
        assert_eq!(labels["org.opencontainers.image.version"], version.as_str());
        assert_eq!(labels["org.opencontainers.image.revision"], revision.as_str());
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1, "one layer");
        let env = strings(&c["Env"]);
        assert!(env.contains(&"HSM_CATALOG=/catalog".to_string()), "{env:?}");

        // The layer as a runtime unpacks it.
        let bundle = work.path().join(format!("bundle-{name}"));
        let unpack = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{version}", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        ok(unpack, "umoci unpack");
        let runtime = json(&bundle.join("config.json"));
        assert_eq!(runtime["process"]["user"]["uid"], 65532, "{name}: the runtime's user");
        assert_eq!(runtime["process"]["user"]["gid"], 65532);
        let rootfs = bundle.join("rootfs");
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");
        let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
        assert!(group.lines().any(|l| l.starts_with("nonroot:x:65532:")), "{group}");
        let bundle_pem = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
        assert!(bundle_pem.matches("-----BEGIN CERTIFICATE-----").count() > 50, "Debian's CA bundle");
        assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists(), "no shell in {name}");
        // Besides /etc and /catalog: the binary and shared libraries, nothing else.
        let mut others = Vec::new();
        files(&rootfs, &rootfs, &mut others);
        let binary = format!("usr/local/bin/{name}");
        others.retain(|f| !f.starts_with("etc/") && !f.starts_with("catalog/") && *f != binary && !f.contains(".so"));
        assert!(others.is_empty(), "{name} holds more than its binary and libraries: {others:?}");

        // The binary starts in the image as 65532 and answers its version.
        let version_line = ok(run_in(&rootfs, &env, &[entrypoint[0], "--version"]), &format!("{name} --version"));
        assert_eq!(version_line, format!("{name} {version}\n"));

        // The hcp SDL names this image, and the command it gives is found on the image's PATH.
        let spec = sdl["components"].as_array().unwrap().iter().find(|c| c["name"] == component).unwrap();
        let named = format!(
            "{}/{}/{}:{}",
            spec["repository"].as_str().unwrap(),
            spec["organization"].as_str().unwrap(),
            spec["image"].as_str().unwrap(),
            spec["tag"].as_str().unwrap()
        );
        assert_eq!(named, reference, "the hcp SDL's {component}");
        if let Some(program) = spec["entrypoint"].as_array().and_then(|e| e.first()).and_then(Value::as_str) {
            let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).expect("PATH in the image");
            assert!(
                path.split(':').any(|dir| rootfs.join(dir.trim_start_matches('/')).join(program).is_file()),
                "{program} on {path}"
            );
        }
        assert!(
            dockerfile.contains(&format!("ARG VERSION={version}\n")),
            "docker/Dockerfile's VERSION is not {version}"
        );
        assert!(dockerfile.contains(&format!("FROM base AS {name}\n")), "docker/Dockerfile has no target {name}");
    }

    // The catalog the images carry is the repository's, readable by the image's user.
    let rootfs = work.path().join("bundle-hsm/rootfs");
    let env = strings(&image(&out.join("hsm"), &crate_version("service-manager")).config["config"]["Env"]);
    let services =
        ok(run_in(&rootfs, &env, &["/usr/local/bin/hsm", "list-services", "-o", "json"]), "hsm list-services");
    let services: Value = serde_json::from_str(&services).unwrap();
    let ids: Vec<&str> = services.as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert!(ids.iter().any(|id| id.ends_with(".hpe.hcp")), "{ids:?}");
    assert!(ids.iter().any(|id| id.ends_with(".hpe.mysql")), "{ids:?}");

    // Same binaries and SOURCE_DATE_EPOCH: the same images, byte for byte.
    let again = work.path().join("again");
    build_images(&bin_dir, &again);
    for name in ["hsm-server", "hsm"] {
        let version = crate_version(if name == "hsm" { "service-manager" } else { "server" });
        assert_eq!(
            image(&out.join(name), &version).manifest_digest,
            image(&again.join(name), &version).manifest_digest,
            "{name} is reproducible"
        );
    }
}
