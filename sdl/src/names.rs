//! Kubernetes naming rules for everything in an SDL/IDL that becomes a name, a label value,
//! a Secret key or an environment variable. Each check returns `None` when the value is fine,
//! or what was expected. Values are quoted with [`quote`] (escaped, cut when long).

use crate::error::quote;

/// Longest Kubernetes DNS label (namespaces, Service names).
pub const DNS_LABEL_MAX: usize = 63;

/// An RFC 1123 DNS label: lowercase letters, digits and `-`, starting and ending with a
/// letter or digit, at most 63 characters.
pub fn dns_label(value: &str) -> Option<String> {
    let q = quote(value);
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > DNS_LABEL_MAX {
        return Some(format!("{q} is {} characters long; at most {DNS_LABEL_MAX} are allowed", value.len()));
    }
    let ok_chars = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends =
        value.as_bytes()[0].is_ascii_alphanumeric() && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric();
    if !ok_chars || !ok_ends {
        return Some(format!(
            "{q} is not a DNS label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    None
}

/// An RFC 1035 label (Service names): a DNS label that starts with a letter.
pub fn dns1035_label(value: &str) -> Option<String> {
    let q = quote(value);
    if let Some(problem) = dns_label(value) {
        return Some(problem);
    }
    if !value.as_bytes()[0].is_ascii_lowercase() {
        return Some(format!("{q} must start with a lowercase letter"));
    }
    None
}

/// A port name (IANA service name): at most 15 lowercase letters, digits and `-`, with at least
/// one letter, no leading, trailing or double `-`.
pub fn port_name(value: &str) -> Option<String> {
    let q = quote(value);
    if value.len() > 15 {
        return Some(format!("{q} is longer than 15 characters"));
    }
    let ok = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if !ok {
        return Some(format!(
            "{q} is not a port name: use lowercase letters, digits and single '-' between them, with at least one letter"
        ));
    }
    None
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending with a
/// letter or digit (empty is allowed by Kubernetes but not here).
pub fn label_value(value: &str) -> Option<String> {
    let q = quote(value);
    let ok_chars = value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let ok_ends = !value.is_empty()
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric();
    if value.len() > DNS_LABEL_MAX || !ok_chars || !ok_ends {
        return Some(format!(
            "{q} is not usable as a label value: at most 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
        ));
    }
    None
}

/// A secret parameter name: lowercase-with-dashes (it becomes a Secret key and a file name).
pub fn secret_key(value: &str) -> Option<String> {
    let q = quote(value);
    if dns_label(value).is_some() {
        return Some(format!(
            "secret parameter {q} must be lowercase-with-dashes (letters, digits and '-', at most 63 characters), as it becomes a file in /etc/secrets/"
        ));
    }
    None
}

/// An environment variable name: a letter or `_`, then letters, digits or `_`.
pub fn env_name(value: &str) -> Option<String> {
    let q = quote(value);
    let mut bytes = value.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Some(format!(
            "{q} is not an environment variable name: use letters, digits and '_', not starting with a digit"
        ));
    }
    None
}

/// A label key of the form `[prefix/]name`.
pub fn label_key(value: &str) -> Option<String> {
    let q = quote(value);
    let (prefix, name) = match value.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    let prefix_ok =
        prefix.is_none_or(|p| p.len() <= 253 && !p.is_empty() && p.split('.').all(|part| dns_label(part).is_none()));
    if !prefix_ok || label_value(name).is_some() {
        return Some(format!(
            "{q} is not a label key: [prefix/]name, name at most 63 letters, digits, '.', '_' or '-'"
        ));
    }
    None
}

/// Longest DNS subdomain (Service external names, label key prefixes).
pub const DNS_SUBDOMAIN_MAX: usize = 253;

/// An RFC 1123 DNS subdomain: dot-separated DNS labels, at most 253 characters.
pub fn dns_subdomain(value: &str) -> Option<String> {
    let q = quote(value);
    if value.len() > DNS_SUBDOMAIN_MAX {
        return Some(format!("{q} is {} characters long; at most {DNS_SUBDOMAIN_MAX} are allowed", value.len()));
    }
    if value.is_empty() || value.split('.').any(|part| dns_label(part).is_some()) {
        return Some(format!(
            "{q} is not a DNS name: dot-separated labels of lowercase letters, digits and '-', each starting and ending with a letter or digit"
        ));
    }
    None
}

/// Longest image reference accepted.
pub const IMAGE_REFERENCE_MAX: usize = 512;

/// A container image reference, `[registry[:port]/]path[:tag][@algorithm:digest]`, as the
/// container runtime parses it: lowercase path components separated by `/`, at most one tag
/// and at most one digest, no whitespace or control characters.
pub fn image_reference(value: &str) -> Option<String> {
    let q = quote(value);
    let bad = |why: &str| Some(format!("{q} is not an image reference: {why}"));
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > IMAGE_REFERENCE_MAX {
        return bad(&format!("longer than {IMAGE_REFERENCE_MAX} characters"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    let (rest, digest) = match value.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        let ok = match digest.split_once(':') {
            Some((algorithm, hex)) => {
                !algorithm.is_empty()
                    && algorithm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                    && hex.len() >= 32
                    && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            }
            None => false,
        };
        if !ok {
            return bad(
                "the digest must be algorithm:hex, e.g. sha256: and 64 lowercase hex digits, and only one is allowed",
            );
        }
    }
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let mut bytes = tag.bytes();
        let ok = tag.len() <= 128
            && matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return bad("a tag is at most 128 letters, digits, '_', '.' or '-', not starting with '.' or '-', and only one is allowed");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= DNS_LABEL_MAX
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
            if !host_ok || !port_ok {
                return bad("the registry must be a host name with an optional :port");
            }
            parts.remove(0);
        }
    }
    let component_ok = |part: &str| {
        let bytes = part.as_bytes();
        !part.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !part.contains("..")
            && !part.contains("___")
    };
    if parts.is_empty() || !parts.iter().all(|p| component_ok(p)) {
        return bad(
            "path components are lowercase letters, digits and single separators ('.', '_', '__', '-') between them",
        );
    }
    None
}

/// `path` with `//`, `/./` and a trailing `/` removed; `None` when it has a `..` component
/// (which may climb anywhere) or is not absolute.
pub fn normalise_absolute_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// A registry that replaces images' registries: `host[:port][/path]`, the host a DNS name
/// (letters may be uppercase), an IPv4 address or a bracketed IPv6 address.
pub fn registry(value: &str) -> Option<String> {
    let q = quote(value);
    let expected = || Some(format!("{q} is not a registry: expected host[:port][/path], e.g. mirror.example.com:5000"));
    let (authority, path) = value.split_once('/').unwrap_or((value, ""));
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else { return expected() };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return expected();
        }
        match after {
            "" => (None, None),
            p if p.starts_with(':') => (None, Some(&p[1..])),
            _ => return expected(),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        if host.len() > DNS_SUBDOMAIN_MAX || host.split('.').any(|l| dns_label(&l.to_ascii_lowercase()).is_some()) {
            return expected();
        }
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |n| n == 0) || !p.bytes().all(|b| b.is_ascii_digit())) {
        return expected();
    }
    let path_ok = path.is_empty()
        || path.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        });
    if !path_ok {
        return expected();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label("mysql-1"), None);
        assert!(dns_label("MySQL").is_some());
        assert!(dns_label("-a").is_some());
        assert!(dns_label("a-").is_some());
        assert!(dns_label("").is_some());
        assert!(dns_label(&"a".repeat(64)).unwrap().contains("64 characters"));
        assert_eq!(dns_label(&"a".repeat(63)), None);
        assert_eq!(dns_label("1abc"), None);
        assert!(dns1035_label("1abc").is_some());
    }

    #[test]
    fn port_names() {
        assert_eq!(port_name("http"), None);
        assert_eq!(port_name("consul-serf-u"), None);
        assert!(port_name("a-very-long-port-name").unwrap().contains("longer than 15"));
        assert!(port_name("8080").is_some());
        assert!(port_name("a--b").is_some());
        assert!(port_name("HTTP").is_some());
    }

    #[test]
    fn label_values_and_keys() {
        assert_eq!(label_value("1.0.0-rc.1"), None);
        assert!(label_value("1.0.0+build").is_some());
        assert!(label_value(&"1".repeat(64)).is_some());
        assert_eq!(label_key("stratus.io/tier"), None);
        assert_eq!(label_key("tier"), None);
        assert!(label_key("Bad Key").is_some());
    }

    #[test]
    fn image_references() {
        for good in [
            "mysql:8.4.3",
            "docker.io/library/mysql:8.4.3",
            "localhost:5000/a/b_c__d-e.f:1.0",
            "quay.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "img:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference(good), None, "{good}");
        }
        for bad in [
            "mysql:8.4\n",
            "my sql:8",
            "mysql:8:9",
            "mysql:8@sha256:aa@sha256:bb",
            "mysql@sha256:xyz",
            "MySQL:8",
            "mysql:.8",
            "a//b:1",
            "",
            "bad_host.io:99x/a:1",
        ] {
            assert!(image_reference(bad).is_some(), "{bad:?}");
        }
        assert!(!image_reference("a\u{1b}[2J:1").unwrap().contains('\u{1b}'));
    }

    #[test]
    fn paths_normalise() {
        assert_eq!(normalise_absolute_path("/etc//secrets/").as_deref(), Some("/etc/secrets"));
        assert_eq!(normalise_absolute_path("/etc/./secrets").as_deref(), Some("/etc/secrets"));
        assert_eq!(normalise_absolute_path("/").as_deref(), Some("/"));
        assert_eq!(normalise_absolute_path("//").as_deref(), Some("/"));
        assert_eq!(normalise_absolute_path("/a/../etc/secrets"), None);
        assert_eq!(normalise_absolute_path("etc"), None);
        assert_eq!(dns_subdomain("db.example.com"), None);
        assert!(dns_subdomain("db..example").is_some());
    }

    #[test]
    fn subdomains_and_registries() {
        assert_eq!(dns_subdomain("fast-ssd"), None);
        assert_eq!(dns_subdomain("sql.example.com"), None);
        assert!(dns_subdomain("").is_some());
        assert!(dns_subdomain("bad host").unwrap().contains("not a DNS name"));
        assert!(dns_subdomain("a;rm -rf").is_some());
        assert!(dns_subdomain("a..b").is_some());
        assert!(dns_subdomain("Fast").is_some());
        assert!(dns_subdomain(&"a.".repeat(127)).unwrap().contains("at most 253"));
        assert!(dns_subdomain("a\u{1b}[31m").unwrap().contains("\\u{1b}"), "control characters are escaped");
        for good in
            ["mirror.local:5000", "Registry.Example.com", "10.0.0.5:5000", "[2001:db8::1]:5000", "host/team/sub"]
        {
            assert_eq!(registry(good), None, "{good}");
        }
        for bad in
            ["", "bad registry", "host:0", "host:99999", "host:", "[::1", "[nope]:5000", "host/Team", "host//x", "a\nb"]
        {
            assert!(registry(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn env_and_secret_names() {
        assert_eq!(env_name("DOMAIN"), None);
        assert_eq!(env_name("_x1"), None);
        assert!(env_name("1X").is_some());
        assert!(env_name("my-var").is_some());
        assert_eq!(secret_key("cluster-admin-password"), None);
        assert!(secret_key("ADMIN_PASSWORD").is_some());
    }
}
