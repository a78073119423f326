//! OpenStack's `clouds.yaml` (and `secure.yaml`, which usually holds the passwords): where
//! the files are looked for and how one named cloud is read from them. Pure: the reader is
//! handed the files' texts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings of one cloud, flattened: `auth.auth_url`, `auth.password`, `region_name`,
/// `cacert`, ... (scalars only, as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cloud {
    /// The cloud's name.
    pub name: String,
    /// The `clouds.yaml` it came from.
    pub file: PathBuf,
    values: BTreeMap<String, String>,
}

impl Cloud {
    /// The first of `fields` this cloud sets to something non-empty.
    pub fn get(&self, fields: &[&str]) -> Option<String> {
        fields.iter().find_map(|f| self.values.get(*f).filter(|v| !v.is_empty()).cloned())
    }
}

/// Why a cloud could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudsError {
    /// None of the places holds a `clouds.yaml`.
    #[error("no clouds.yaml found (looked for {})", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound(Vec<PathBuf>),
    /// The file is not YAML, or not in the `clouds: {name: {...}}` shape.
    #[error("{}: {message}", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file has no cloud of that name.
    #[error("not in {} (it has: {})", file.display(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    Unknown {
        /// The name asked for.
        name: String,
        /// The file.
        file: PathBuf,
        /// The clouds it has.
        known: Vec<String>,
    },
}

/// Where `file_name` (`clouds.yaml` or `secure.yaml`) is looked for, first match wins:
/// `OS_CLIENT_CONFIG_FILE` (for `clouds.yaml`), the properties file's folder,
/// `~/.config/openstack/`, then `/etc/openstack/`.
pub fn search_paths(file_name: &str, env: &BTreeMap<String, String>, base_dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if file_name == "clouds.yaml" {
        if let Some(file) = env.get("OS_CLIENT_CONFIG_FILE").filter(|f| !f.is_empty()) {
            paths.push(PathBuf::from(file));
        }
    }
    paths.push(base_dir.join(file_name));
    if let Some(home) = env.get("HOME").filter(|h| !h.is_empty()) {
        paths.push(Path::new(home).join(".config/openstack").join(file_name));
    }
    paths.push(Path::new("/etc/openstack").join(file_name));
    paths
}

/// Reads cloud `name` from the first `clouds.yaml` that `read` finds among the search paths,
/// with the same cloud's settings from the first `secure.yaml` filling in what it leaves out.
pub fn find(
    name: &str,
    env: &BTreeMap<String, String>,
    base_dir: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Result<Cloud, CloudsError> {
    let first = |file_name: &str| {
        search_paths(file_name, env, base_dir).into_iter().find_map(|path| read(&path).map(|text| (path, text)))
    };
    let Some((file, text)) = first("clouds.yaml") else {
        return Err(CloudsError::NotFound(search_paths("clouds.yaml", env, base_dir)));
    };
    let mut cloud = parse(&text, &file, name)?;
    if let Some((secure_file, secure_text)) = first("secure.yaml") {
        // A secure.yaml without this cloud adds nothing.
        match parse(&secure_text, &secure_file, name) {
            Ok(secure) => {
                for (key, value) in secure.values {
                    cloud.values.entry(key).or_insert(value);
                }
            }
            Err(CloudsError::Unknown { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(cloud)
}

/// Cloud `name` of one `clouds.yaml` text.
pub fn parse(text: &str, file: &Path, name: &str) -> Result<Cloud, CloudsError> {
    let malformed = |message: String| CloudsError::Malformed { file: file.to_path_buf(), message };
    let document: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| malformed(format!("not valid YAML: {e}")))?;
    let Some(clouds) = document.get("clouds").and_then(serde_norway::Value::as_mapping) else {
        return Err(malformed("expected a `clouds:` mapping of cloud names to their settings".into()));
    };
    let Some(entry) = clouds.get(name) else {
        return Err(CloudsError::Unknown {
            name: name.to_string(),
            file: file.to_path_buf(),
            known: clouds.keys().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        });
    };
    let Some(entry) = entry.as_mapping() else {
        return Err(malformed(format!("clouds.{name}: expected a mapping of settings")));
    };
    let mut values = BTreeMap::new();
    flatten("", entry, &mut values);
    Ok(Cloud { name: name.to_string(), file: file.to_path_buf(), values })
}

fn flatten(prefix: &str, mapping: &serde_norway::Mapping, out: &mut BTreeMap<String, String>) {
    for (key, value) in mapping {
        let Some(key) = key.as_str() else { continue };
        let path = format!("{prefix}{key}");
        match value {
            serde_norway::Value::String(s) => {
                out.insert(path, s.clone());
            }
            serde_norway::Value::Number(n) => {
                out.insert(path, n.to_string());
            }
            serde_norway::Value::Bool(b) => {
                out.insert(path, b.to_string());
            }
            serde_norway::Value::Mapping(inner) => flatten(&format!("{path}."), inner, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUDS: &str = "clouds:\n  prod:\n    auth:\n      auth_url: https://keystone.example.com:5000/v3\n      username: ops\n      project_name: stratus\n      user_domain_name: Default\n    region_name: RegionTwo\n    identity_api_version: 3\n  lab:\n    auth:\n      auth_url: http://lab:5000/v3\n";

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: BTreeMap<PathBuf, String> = entries.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
        move |p: &Path| map.get(p).cloned()
    }

    #[test]
    fn a_named_cloud_is_flattened_and_secure_yaml_fills_in_the_password() {
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/op".to_string())].into();
        let read = files(&[
            ("/home/op/.config/openstack/clouds.yaml", CLOUDS),
            (
                "/etc/openstack/secure.yaml",
                "clouds:\n  prod:\n    auth:\n      password: s3cret\n      username: ignored\n",
            ),
        ]);
        let cloud = find("prod", &env, Path::new("/work"), &read).unwrap();
        assert_eq!(cloud.file, PathBuf::from("/home/op/.config/openstack/clouds.yaml"));
        assert_eq!(cloud.get(&["auth.auth_url"]).as_deref(), Some("https://keystone.example.com:5000/v3"));
        assert_eq!(cloud.get(&["auth.username"]).as_deref(), Some("ops"), "clouds.yaml wins over secure.yaml");
        assert_eq!(cloud.get(&["auth.password"]).as_deref(), Some("s3cret"));
        assert_eq!(cloud.get(&["auth.project_id", "auth.project_name"]).as_deref(), Some("stratus"));
        assert_eq!(cloud.get(&["identity_api_version"]).as_deref(), Some("3"));
    }

    #[test]
    fn the_first_file_found_wins_and_client_config_file_comes_first() {
        let env: BTreeMap<String, String> = [
            ("HOME".to_string(), "/home/op".to_string()),
            ("OS_CLIENT_CONFIG_FILE".to_string(), "/srv/clouds.yaml".to_string()),
        ]
        .into();
        let read = files(&[("/srv/clouds.yaml", CLOUDS), ("/work/clouds.yaml", "clouds: {}\n")]);
        assert_eq!(find("lab", &env, Path::new("/work"), &read).unwrap().file, PathBuf::from("/srv/clouds.yaml"));
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/op".to_string())].into();
        assert_eq!(
            find("lab", &env, Path::new("/work"), &read).unwrap_err().to_string(),
            "not in /work/clouds.yaml (it has: none)"
        );
    }

    #[test]
    fn errors_name_the_file_and_what_is_wrong() {
        let env = BTreeMap::new();
        assert_eq!(
            find("prod", &env, Path::new("/work"), &files(&[])).unwrap_err().to_string(),
            "no clouds.yaml found (looked for /work/clouds.yaml, /etc/openstack/clouds.yaml)"
        );
        assert_eq!(
            find("dev", &env, Path::new("/work"), &files(&[("/work/clouds.yaml", CLOUDS)])).unwrap_err().to_string(),
            "not in /work/clouds.yaml (it has: prod, lab)"
        );
        let bad = find("prod", &env, Path::new("/work"), &files(&[("/work/clouds.yaml", "clouds: [a\n")]));
        assert!(bad.unwrap_err().to_string().starts_with("/work/clouds.yaml: not valid YAML: "));
        assert_eq!(
            find("prod", &env, Path::new("/work"), &files(&[("/work/clouds.yaml", "prod: {}\n")]))
                .unwrap_err()
                .to_string(),
            "/work/clouds.yaml: expected a `clouds:` mapping of cloud names to their settings"
        );
    }
}
