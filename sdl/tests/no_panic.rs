//! No panic on any input: a real catalog SDL, in JSON and YAML, mutated with hostile pieces
//! (terminal escapes, NUL, aliases, brackets, huge numbers, tags), goes through parsing,
//! validation and resolution; every error must stay printable and short.

use rand::{Rng, SeedableRng};
use sdl::parse::{parse_document, Syntax};
use sdl::{Idl, Sdl};

#[test]
fn mutated_sdls_never_panic_and_errors_stay_printable() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../catalog/services/hpe/hcf/4.0.1/1.0.0/sdl/sdl.json"
    ))
    .unwrap();
    let sdl: Sdl = parse_document(&base, Syntax::Json, "x").unwrap();
    let yaml = serde_norway::to_string(&sdl).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let pieces = [
        "\u{1b}[31m",
        "\0",
        "*a",
        "&a ",
        "[",
        "{",
        "]",
        "}",
        "\"",
        "'",
        "~",
        "1e999",
        "-1",
        "99999999999999999999999",
        ":",
        "- ",
        "\n",
        "  ",
        "..",
        "/",
        "kube-",
        "@sha256:",
        "!!binary ",
        "? ",
        "|",
        ">",
        "#",
        ",",
        "0x1F",
        "1.10",
        "${",
        "}",
        "\t",
    ];
    let mut ok = 0;
    for i in 0..800 {
        let (text, syntax) = if i % 2 == 0 { (base.clone(), Syntax::Json) } else { (yaml.clone(), Syntax::Yaml) };
        let mut bytes = text.into_bytes();
        for _ in 0..rng.random_range(1..6) {
            let pos = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => {
                    let p = pieces[rng.random_range(0..pieces.len())];
                    bytes.splice(pos..pos, p.bytes());
                }
                1 => {
                    let end = (pos + rng.random_range(1..20)).min(bytes.len());
                    bytes.drain(pos..end);
                }
                _ => {
                    let c = bytes[rng.random_range(0..bytes.len())];
                    bytes[pos] = c;
                }
            }
        }
        let Ok(text) = String::from_utf8(bytes) else { continue };
        let result = std::panic::catch_unwind(|| match parse_document::<Sdl>(&text, syntax, "f") {
            Err(e) => {
                let s = e.to_string();
                assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
                assert!(s.len() < 1500, "{}", s.len());
                false
            }
            Ok(sdl) => {
                let problems = sdl::validate::validate_sdl(&sdl);
                let report = sdl::error::invalid_report("f", "SDL", &problems);
                for line in report.lines() {
                    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
                }
                let idl = Idl { instance_id: Some("a".into()), ..Idl::default() };
                let _ = sdl::validate::validate_idl(&sdl, "x", &idl);
                if problems.is_empty() {
                    let ctx = sdl::resolve::ResolveContext { instance_id: "a", cluster_domain: "cluster.local" };
                    let _ = sdl::resolve::resolve(
                        &sdl,
                        &idl,
                        &Default::default(),
                        &ctx,
                        &mut rand::rngs::StdRng::seed_from_u64(1),
                    );
                }
                true
            }
        });
        match result {
            Ok(true) => ok += 1,
            Ok(false) => {}
            Err(_) => panic!("panic on input {i}: {text}"),
        }
    }
    eprintln!("parsed ok: {ok}");
}
