//! Hostile input to the parser: size, nesting, alias bombs, files that are not files,
//! numbers that would lose their text, and error messages that must stay short and inert.

use std::time::{Duration, Instant};

use sdl::idl::Idl;
use sdl::limits::{MAX_DOCUMENT_BYTES, MAX_YAML_DEPTH};
use sdl::parse::{parse_document, read_document, Syntax};
use sdl::{LoadError, Sdl};

const HEADER: &str = "name: x\nsdl_version: '1'\nproduct_version: '1'\nvendor: v\n";

fn yaml_err(text: &str) -> sdl::ParseError {
    parse_document::<Sdl>(text, Syntax::Yaml, "s.yaml").unwrap_err()
}

#[test]
fn deeply_nested_yaml_is_refused_quickly() {
    for open in ["[", "{a: "] {
        let n = 200_000 / open.len();
        let close = if open == "[" { "]" } else { "}" };
        let text = format!("name: {}{}", open.repeat(n), close.repeat(n));
        let start = Instant::now();
        let err = yaml_err(&text);
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
        assert!(err.message.contains(&format!("nested more than {MAX_YAML_DEPTH} levels")), "{err}");
        assert_eq!(err.line, 1);
    }
}

#[test]
fn alias_bomb_is_refused_before_expansion() {
    // 20,000 aliases of a 50 KB anchor: a gigabyte if expanded.
    let mut text =
        format!("{HEADER}description: &d {}\ncomponents:\n  - name: a\n    entrypoint: [", "a".repeat(50_000));
    text.push_str(&"*d, ".repeat(20_000));
    text.push_str("*d]\n");
    let start = Instant::now();
    let err = yaml_err(&text);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(err.message.contains("MiB of text (an alias counts as all the text it repeats)"), "{err}");

    let mut nested = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        nested.push_str(&format!("a{i}: &a{i} [{}]\n", format!("*a{}, ", i - 1).repeat(10)));
    }
    let err = yaml_err(&nested);
    assert!(err.message.contains("more than 100000 values"), "{err}");
}

#[test]
fn modest_aliases_still_work() {
    let text = format!(
        "{HEADER}components:\n  - name: a\n    image: i:1\n    parameters: &p [A, B]\n  - name: b\n    image: i:1\n    parameters: *p\n"
    );
    let sdl: Sdl = parse_document(&text, Syntax::Yaml, "s.yaml").unwrap();
    assert_eq!(sdl.components[1].parameters, ["A", "B"]);
}

#[test]
fn oversized_text_and_files_are_refused() {
    let text = format!("{HEADER}description: '{}'\n", "a".repeat(MAX_DOCUMENT_BYTES));
    let err = yaml_err(&text);
    assert!(err.message.contains("more than the 4 MiB"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdl.yaml");
    std::fs::write(&path, &text).unwrap();
    let err = read_document::<Sdl>(&path).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("more than the 4 MiB"), "{err}");
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_document::<Sdl>(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file (a directory)"), "{err}");
    let err = read_document::<Sdl>(std::path::Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(err.contains("not a regular file (a character device)"), "{err}");

    let fifo = dir.path().join("fifo.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    // Opening a FIFO would block until a writer comes; the check must refuse it first.
    let err = read_document::<Sdl>(&fifo).unwrap_err().to_string();
    assert!(err.contains("not a regular file (a named pipe)"), "{err}");

    // A symbolic link to a regular file is followed.
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, HEADER).unwrap();
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(read_document::<Sdl>(&link).unwrap().name, "x");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"name\": \"\xff\"}").unwrap();
    let err = read_document::<Sdl>(&bad).unwrap_err().to_string();
    assert!(err.contains("not UTF-8 text (line 1, column 11)"), "{err}");
}

#[test]
fn a_symlinked_secret_file_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let content = format!("root:{}:19000:0:99999:7:::", "x".repeat(5000));
    std::fs::write(&secret, &content).unwrap();
    let link = dir.path().join("sdl.yaml");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let err = read_document::<Sdl>(&link).unwrap_err().to_string();
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert!(!err.contains(&"x".repeat(100)), "{err}");
}

fn default_of(text: &str, syntax: Syntax) -> Result<String, String> {
    let doc = match syntax {
        Syntax::Yaml => format!(
            "{HEADER}components: [{{name: a, image: 'i:1', parameters: [P]}}]\nparameters:\n  - name: P\n    default: {text}\n"
        ),
        Syntax::Json => format!(
            r#"{{"name":"x","sdl_version":"1","product_version":"1","vendor":"v","parameters":[{{"name":"P","default":{text}}}]}}"#
        ),
    };
    parse_document::<Sdl>(&doc, syntax, "s")
        .map(|s| s.parameters[0].default.clone().unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn yaml_scalars_keep_their_exact_text() {
    for text in ["1.10", "0x1F", "0o17", "+5", "1e3", "007", "true", "12345678901234567890123", "1.0"] {
        assert_eq!(default_of(text, Syntax::Yaml).unwrap(), text);
    }
    assert_eq!(default_of("'quoted'", Syntax::Yaml).unwrap(), "quoted");
    let idl: Idl = parse_document("parameters:\n  - name: V\n    value: 1.10\n", Syntax::Yaml, "i.yaml").unwrap();
    assert_eq!(idl.parameters[0].value, "1.10");
}

#[test]
fn json_numbers_that_would_lose_their_text_are_refused() {
    assert_eq!(default_of("3306", Syntax::Json).unwrap(), "3306");
    assert_eq!(default_of("-12", Syntax::Json).unwrap(), "-12");
    assert_eq!(default_of("18446744073709551615", Syntax::Json).unwrap(), "18446744073709551615");
    for text in ["1.10", "1e3", "12345678901234567890123", "1.0"] {
        let err = default_of(text, Syntax::Json).unwrap_err();
        assert!(err.contains("parameters[0].default") && err.contains("write it as a string in quotes"), "{err}");
    }
    assert_eq!(default_of("\"1.10\"", Syntax::Json).unwrap(), "1.10");
}

#[test]
fn control_characters_in_input_are_escaped_in_errors() {
    let err = parse_document::<Sdl>(
        "{\"name\":\"x\",\"sdl_version\":\"1\",\"product_version\":\"1\",\"vendor\":\"v\",\"\\u001b[31mevil\\u0000\":1}",
        Syntax::Json,
        "s.json",
    )
    .unwrap_err()
    .to_string();
    assert!(!err.chars().any(|c| c.is_control()), "{err:?}");
    assert!(err.contains("\\u{1b}[31mevil\\u{0}"), "{err}");
}

#[test]
fn long_user_text_is_cut_in_errors() {
    let long = "k".repeat(100_000);
    let err = parse_document::<Sdl>(&format!("{{\"{long}\": 1}}"), Syntax::Json, "s.json").unwrap_err().to_string();
    assert!(err.len() < 600, "{} bytes: {err}", err.len());
    let err = yaml_err(&format!("name: [{}]", "v".repeat(100_000)));
    assert!(err.to_string().len() < 600);
}

#[test]
fn a_key_given_twice_is_an_error() {
    let sdl = format!("{HEADER}components:\n  - name: a\n    image: i:1\n    image: j:2\n");
    let err = yaml_err(&sdl);
    assert!(err.message.contains("duplicate field `image`"), "{err}");
    let sdl = format!(
        "{HEADER}components:\n  - name: a\n    placement:\n      node_selector:\n        zone: a\n        zone: b\n"
    );
    let err = yaml_err(&sdl);
    assert_eq!(err.path, "components[0].placement.node_selector");
    assert!(err.message.contains("key \"zone\" is given twice"), "{err}");
    let json = r#"{"name":"x","sdl_version":"1","product_version":"1","vendor":"v","components":[{"name":"a","placement":{"node_selector":{"k":"1","k":"2"}}}]}"#;
    let err = parse_document::<Sdl>(json, Syntax::Json, "s.json").unwrap_err();
    assert!(err.message.contains("key \"k\" is given twice"), "{err}");
    let idl = r#"{"parameters":[{"name":"A","value":"1","value":"2"}]}"#;
    let err = parse_document::<Idl>(idl, Syntax::Json, "i.json").unwrap_err();
    assert!(err.message.contains("duplicate field `value`"), "{err}");
}

#[test]
fn yaml_null_is_not_a_value() {
    for value in ["~", "null", ""] {
        let text = format!("parameters:\n  - name: V\n    value: {value}\n");
        let err = parse_document::<Idl>(&text, Syntax::Yaml, "i.yaml").unwrap_err();
        assert_eq!(err.path, "parameters[0].value", "{err}");
        assert!(err.message.contains("invalid type: unit value"), "{err}");
    }
    let idl: Idl = parse_document("parameters:\n  - name: V\n    value: '~'\n", Syntax::Yaml, "i.yaml").unwrap();
    assert_eq!(idl.parameters[0].value, "~");
}

#[test]
fn a_refused_json_number_is_not_repeated() {
    let idl = r#"{"parameters":[{"name":"pin","value":98765.4321}]}"#;
    let err = parse_document::<Idl>(idl, Syntax::Json, "i.json").unwrap_err().to_string();
    assert!(!err.contains("98765"), "{err}");
    assert!(err.contains("parameters[0].value"), "{err}");
}

#[test]
fn a_large_hostile_json_sdl_validates_quickly() {
    // Many components, each listing many parameters and dependencies: refused by size
    // before any pairwise rule runs.
    let params: Vec<String> = (0..900).map(|i| format!("{{\"name\":\"P{i}\"}}")).collect();
    let refs: Vec<String> = (0..900).map(|i| format!("\"P{i}\"")).collect();
    let component = |i: usize| {
        format!(
            "{{\"name\":\"c{i}\",\"image\":\"i:1\",\"min_RAM_mb\":1,\"parameters\":[{}],\"depends_on\":[\"c{}\"]}}",
            refs.join(","),
            i + 1
        )
    };
    let components: Vec<String> = (0..300).map(component).collect();
    let text = format!(
        r#"{{"name":"x","sdl_version":"1","product_version":"1","vendor":"v","components":[{}],"parameters":[{}]}}"#,
        components.join(","),
        params.join(",")
    );
    assert!(text.len() < MAX_DOCUMENT_BYTES);
    let sdl: Sdl = parse_document(&text, Syntax::Json, "s.json").unwrap();
    let start = Instant::now();
    let problems = sdl::validate::validate_sdl(&sdl);
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("at most 10000 are allowed"), "{problems:?}");
}
