//! `${NAME}` references inside SDL strings (certificate SANs, external names): finding them
//! and substituting values.

/// Platform values every instance has, usable as `${NAME}` in SANs and external names.
pub const PLATFORM_VARIABLES: [&str; 2] = ["HCP_INSTANCE_ID", "HCP_SERVICE_DOMAIN_SUFFIX"];

/// The names referenced as `${NAME}` in `text`, in order; `Err` with a message when a `${`
/// is never closed.
pub fn references(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("\"{text}\" has a \"${{\" without a closing \"}}\""))?;
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// Replaces every `${NAME}` in `text` with `lookup(NAME)`; `Err(NAME)` for the first name
/// without a value.
pub fn substitute<'a>(text: &'a str, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(after.to_string());
        };
        let name = &after[..end];
        out.push_str(lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_substitutes() {
        assert_eq!(references("*.${DOMAIN}").unwrap(), vec!["DOMAIN"]);
        assert_eq!(references("a.${X}.${Y}").unwrap(), vec!["X", "Y"]);
        assert!(references("a.${X").is_err());
        let got = substitute("*.${DOMAIN}:${P}", |n| match n {
            "DOMAIN" => Some("example.com"),
            "P" => Some("1"),
            _ => None,
        });
        assert_eq!(got.unwrap(), "*.example.com:1");
        assert_eq!(substitute("${NOPE}", |_| None).unwrap_err(), "NOPE");
    }
}
