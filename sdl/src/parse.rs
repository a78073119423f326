//! Reading SDL/IDL documents from JSON or YAML, with errors that carry the file, line,
//! column and JSON path, and a "did you mean" for misspelt field and variant names.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{sanitize, shorten, LoadError, ParseError, MAX_QUOTED_CHARS};
use crate::limits;
use crate::model::scalar;

/// Input syntax of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON (the SDL's native form).
    Json,
    /// YAML.
    Yaml,
}

impl Syntax {
    /// YAML for `.yaml`/`.yml` files, JSON otherwise.
    pub fn for_path(path: &Path) -> Syntax {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") | Some("yml") => Syntax::Yaml,
            _ => Syntax::Json,
        }
    }
}

/// Parses `text` as a `T`. `source_name` names the input in errors.
///
/// Text longer than [`limits::MAX_DOCUMENT_BYTES`] is refused, and so is YAML nested deeper
/// than [`limits::MAX_YAML_DEPTH`] or whose aliases expand past
/// [`limits::MAX_YAML_NODES`] values or [`limits::MAX_YAML_SCALAR_BYTES`] of text.
pub fn parse_document<T: DeserializeOwned>(text: &str, syntax: Syntax, source_name: &str) -> Result<T, ParseError> {
    if text.len() > limits::MAX_DOCUMENT_BYTES {
        return Err(error(source_name, String::new(), 1, 1, &too_big(text.len() as u64)));
    }
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
            let value = result.map_err(|e| {
                let path = render_path(e.path());
                let inner = e.into_inner();
                let (line, column) = (inner.line(), inner.column());
                error(source_name, path, line, column, &inner.to_string())
            })?;
            de.end().map_err(|e| error(source_name, String::new(), e.line(), e.column(), &e.to_string()))?;
            Ok(value)
        }
        Syntax::Yaml => {
            limits::check_yaml(text).map_err(|e| error(source_name, String::new(), e.line, e.column, &e.message))?;
            let de = serde_norway::Deserializer::from_str(text);
            let _text_scalars = scalar::TextScalars::enter();
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = render_path(e.path());
                let inner = e.into_inner();
                let (line, column) = inner.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
                // serde_norway prefixes its own rendering of the path; the path is reported apart.
                let message = inner.to_string();
                let message = match message.split_once(": ") {
                    Some((prefix, rest)) if !prefix.contains(' ') && !path.is_empty() && path.starts_with(prefix) => {
                        rest.to_string()
                    }
                    _ => message,
                };
                error(source_name, path, line, column, &message)
            })
        }
    }
}

fn too_big(len: u64) -> String {
    format!("{len} bytes is more than the {} MiB an SDL or IDL may have", limits::MAX_DOCUMENT_BYTES / (1024 * 1024))
}

/// Reads and parses the file at `path`; the syntax follows the file extension. The file must
/// be a regular file (a symbolic link to one is followed) of at most
/// [`limits::MAX_DOCUMENT_BYTES`]; it is read with a bounded read, never past that size.
pub fn read_document<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = read_text(path)?;
    Ok(parse_document(&text, Syntax::for_path(path), &path.display().to_string())?)
}

/// The text of the regular file at `path`, refused when larger than
/// [`limits::MAX_DOCUMENT_BYTES`] or not UTF-8.
pub fn read_text(path: &Path) -> Result<String, LoadError> {
    let fail = |source: std::io::Error| LoadError::Io { path: path.to_path_buf(), source };
    let refuse = |message: String| fail(std::io::Error::new(std::io::ErrorKind::InvalidInput, message));
    // Checked before opening: opening a FIFO would wait for a writer.
    let metadata = std::fs::metadata(path).map_err(fail)?;
    if !metadata.is_file() {
        return Err(refuse(format!("not a regular file ({})", file_kind(&metadata.file_type()))));
    }
    let file = std::fs::File::open(path).map_err(fail)?;
    let metadata = file.metadata().map_err(fail)?;
    if !metadata.is_file() {
        return Err(refuse(format!("not a regular file ({})", file_kind(&metadata.file_type()))));
    }
    if metadata.len() > limits::MAX_DOCUMENT_BYTES as u64 {
        return Err(refuse(too_big(metadata.len())));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limits::MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() > limits::MAX_DOCUMENT_BYTES {
        return Err(refuse(too_big(bytes.len() as u64)));
    }
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = position_of(e.as_bytes(), e.utf8_error().valid_up_to());
        refuse(format!("not UTF-8 text (line {line}, column {column})"))
    })
}

fn position_of(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = offset - before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn render_path(path: &serde_path_to_error::Path) -> String {
    let rendered = path.to_string();
    // "." is the document root; "?" is an error outside any value (a syntax error).
    if rendered == "." || rendered == "?" {
        String::new()
    } else {
        rendered
    }
}

fn error(source_name: &str, path: String, line: usize, column: usize, raw: &str) -> ParseError {
    ParseError {
        source_name: sanitize(source_name),
        path: shorten(&sanitize(&path), 2 * MAX_QUOTED_CHARS),
        line,
        column,
        message: sanitize(&explain(strip_position(raw))),
    }
}

/// serde_json and serde_norway append " at line L column C"; the position is reported apart.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Rewrites serde's "unknown field/variant" messages to suggest the closest expected name.
fn explain(message: &str) -> String {
    for kind in ["unknown field", "unknown variant"] {
        if let Some(rest) = message.strip_prefix(kind) {
            let names: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
            if let Some((given, expected)) = names.split_first() {
                if let Some(best) = closest(given, expected.iter().copied()) {
                    return format!("{kind} `{given}` (did you mean `{best}`?)");
                }
                if expected.is_empty() {
                    return format!("{kind} `{given}`: no fields are allowed here");
                }
                let list: Vec<String> = expected.iter().map(|n| format!("`{n}`")).collect();
                return format!("{kind} `{given}`, expected one of {}", list.join(", "));
            }
        }
    }
    message.to_string()
}

/// The candidate closest to `given`, when it is close enough to be a likely typo.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Edit distance costs the product of the lengths; nothing that long is a typo.
    if given.len() > 256 {
        return None;
    }
    let given_lower = given.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| c.len() <= 256)
        .take(10_000)
        .map(|c| (strsim::normalized_damerau_levenshtein(&given_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sdl;

    fn parse(text: &str) -> ParseError {
        parse_document::<Sdl>(text, Syntax::Json, "sdl.json").unwrap_err()
    }

    #[test]
    fn unknown_field_names_path_and_suggestion() {
        let err = parse(
            r#"{"name":"x","sdl_version":"1","product_version":"1","vendor":"v",
"components":[{"name":"a","image":"i","volume_mounts":[{"volume_name":"d","mountpath":"/d"}]}]}"#,
        );
        assert_eq!(err.path, "components[0].volume_mounts[0].mountpath");
        assert_eq!(err.message, "unknown field `mountpath` (did you mean `mountpoint`?)");
        assert_eq!((err.line, err.column), (2, 85));
    }

    #[test]
    fn wrong_type_names_expected_type() {
        let err = parse(
            r#"{"name":"x","sdl_version":"1","product_version":"1","vendor":"v","components":[{"name":"a","min_RAM_mb":"lots"}]}"#,
        );
        assert_eq!(err.path, "components[0].min_RAM_mb");
        assert!(err.message.starts_with("invalid type: string \"lots\", expected u32"), "{}", err.message);
    }

    #[test]
    fn unknown_variant_suggests_case_fix() {
        let err = parse(
            r#"{"name":"x","sdl_version":"1","product_version":"1","vendor":"v","components":[{"name":"a","service_ports":[{"name":"p","protocol":"tcp","source_port":1,"target_port":1}]}]}"#,
        );
        assert_eq!(err.message, "unknown variant `tcp` (did you mean `TCP`?)");
    }

    #[test]
    fn yaml_is_accepted_with_positions() {
        let sdl: Sdl =
            parse_document("name: x\nsdl_version: '1'\nproduct_version: '1'\nvendor: v\n", Syntax::Yaml, "s.yaml")
                .unwrap();
        assert_eq!(sdl.name, "x");
        let err = parse_document::<Sdl>(
            "name: x\nsdl_version: '1'\nproduct_version: '1'\nvendr: v\n",
            Syntax::Yaml,
            "s.yaml",
        )
        .unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(err.message, "unknown field `vendr` (did you mean `vendor`?)");
    }

    #[test]
    fn nested_yaml_errors_name_the_path_once() {
        let err = parse_document::<Sdl>(
            "name: x\nsdl_version: '1'\nproduct_version: '1'\nvendor: v\ncomponents:\n  - name: a\n    imag: b\n",
            Syntax::Yaml,
            "s.yaml",
        )
        .unwrap_err();
        assert_eq!(err.path, "components[0].imag");
        assert_eq!(err.message, "unknown field `imag` (did you mean `image`?)");
        assert_eq!(err.to_string(), "s.yaml:7:5: components[0].imag: unknown field `imag` (did you mean `image`?)");
    }

    #[test]
    fn syntax_errors_have_no_path() {
        let err = parse("{\"name\": \"x\",\n}");
        assert_eq!(err.to_string(), "sdl.json:2:1: trailing comma");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let err = parse(r#"{"name":"x","sdl_version":"1","product_version":"1","vendor":"v"} x"#);
        assert_eq!(err.message, "trailing characters");
    }

    #[test]
    fn closest_ignores_distant_names() {
        assert_eq!(closest("zzz", ["name", "image"]), None);
        assert_eq!(closest("imgae", ["name", "image"]), Some("image"));
    }
}
