//! Bounds on what an input document may cost to read. YAML is checked event by event with
//! the same parser serde_norway uses (libyaml), before serde_norway loads the whole document:
//! libyaml's time grows with the square of flow-collection nesting (`[[[[...`), and serde_norway
//! expands every alias into a fresh copy of its anchor, so a small file can ask for gigabytes.
//! The pre-pass stops at the first event past a limit, so refusing costs little.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use unsafe_libyaml_norway as unsafe_sys;

/// Largest SDL or IDL file (or text) accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of sequences and mappings in a YAML document.
pub const MAX_YAML_DEPTH: usize = 64;
/// Most values (scalars, sequences, mappings) a YAML document may hold once every alias is
/// expanded.
pub const MAX_YAML_NODES: u64 = 100_000;
/// Most bytes of scalar text a YAML document may hold once every alias is expanded.
pub const MAX_YAML_SCALAR_BYTES: u64 = 8 * 1024 * 1024;

/// A limit broken at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Clone, Copy, Default)]
struct Size {
    nodes: u64,
    bytes: u64,
}

struct Frame {
    anchor: Option<Vec<u8>>,
    start: Size,
}

/// Walks the YAML events of `text` and stops at the first limit broken. Syntax errors are
/// left to serde_norway (which reports them with the same parser), so they pass here.
pub(crate) fn check_yaml(text: &str) -> Result<(), Exceeded> {
    // SAFETY: the parser is initialised before use and deleted once; `text` outlives it; each
    // event is read only after a successful parse (which fills it) and deleted after use.
    unsafe {
        let mut parser = MaybeUninit::<unsafe_sys::yaml_parser_t>::zeroed();
        let parser = parser.as_mut_ptr();
        if unsafe_sys::yaml_parser_initialize(parser).fail {
            return Err(Exceeded { line: 1, column: 1, message: "cannot start the YAML parser".into() });
        }
        unsafe_sys::yaml_parser_set_encoding(parser, unsafe_sys::YAML_UTF8_ENCODING);
        unsafe_sys::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        let result = walk(parser);
        unsafe_sys::yaml_parser_delete(parser);
        result
    }
}

unsafe fn anchor_bytes(anchor: *const u8) -> Option<Vec<u8>> {
    if anchor.is_null() {
        return None;
    }
    Some(std::ffi::CStr::from_ptr(anchor.cast()).to_bytes().to_vec())
}

unsafe fn walk(parser: *mut unsafe_sys::yaml_parser_t) -> Result<(), Exceeded> {
    let mut total = Size::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<Vec<u8>, Size> = HashMap::new();
    loop {
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::zeroed();
        let event = event.as_mut_ptr();
        if unsafe_sys::yaml_parser_parse(parser, event).fail {
            return Ok(());
        }
        let kind = (*event).type_;
        let mark = (*event).start_mark;
        let at = |message: String| Exceeded { line: mark.line as usize + 1, column: mark.column as usize + 1, message };
        let mut outcome = Ok(());
        match kind {
            unsafe_sys::YAML_STREAM_END_EVENT => {
                unsafe_sys::yaml_event_delete(event);
                return Ok(());
            }
            unsafe_sys::YAML_SCALAR_EVENT => {
                let scalar = (*event).data.scalar;
                let size = Size { nodes: 1, bytes: scalar.length };
                total.nodes += 1;
                total.bytes = total.bytes.saturating_add(scalar.length);
                if let Some(name) = anchor_bytes(scalar.anchor) {
                    anchors.insert(name, size);
                }
            }
            unsafe_sys::YAML_SEQUENCE_START_EVENT | unsafe_sys::YAML_MAPPING_START_EVENT => {
                let anchor = if kind == unsafe_sys::YAML_SEQUENCE_START_EVENT {
                    (*event).data.sequence_start.anchor
                } else {
                    (*event).data.mapping_start.anchor
                };
                stack.push(Frame { anchor: anchor_bytes(anchor), start: total });
                total.nodes += 1;
                if stack.len() > MAX_YAML_DEPTH {
                    outcome = Err(at(format!(
                        "YAML nested more than {MAX_YAML_DEPTH} levels deep; an SDL or IDL needs far fewer"
                    )));
                }
            }
            unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                if let Some(frame) = stack.pop() {
                    if let Some(name) = frame.anchor {
                        let size =
                            Size { nodes: total.nodes - frame.start.nodes, bytes: total.bytes - frame.start.bytes };
                        anchors.insert(name, size);
                    }
                }
            }
            unsafe_sys::YAML_ALIAS_EVENT => {
                // An alias to an anchor still open (a recursive alias) or to no anchor is
                // refused by serde_norway; count it as one value here.
                let size = anchor_bytes((*event).data.alias.anchor)
                    .and_then(|name| anchors.get(&name).copied())
                    .unwrap_or(Size { nodes: 1, bytes: 0 });
                total.nodes = total.nodes.saturating_add(size.nodes);
                total.bytes = total.bytes.saturating_add(size.bytes);
            }
            _ => {}
        }
        unsafe_sys::yaml_event_delete(event);
        outcome?;
        if total.nodes > MAX_YAML_NODES {
            return Err(at(format!(
                "YAML holds more than {MAX_YAML_NODES} values (an alias counts as every value it repeats); an SDL or IDL needs far fewer"
            )));
        }
        if total.bytes > MAX_YAML_SCALAR_BYTES {
            return Err(at(format!(
                "YAML holds more than {} MiB of text (an alias counts as all the text it repeats)",
                MAX_YAML_SCALAR_BYTES / (1024 * 1024)
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_documents_pass() {
        assert_eq!(check_yaml("a: [1, 2, {b: c}]\nd: &x e\nf: *x\n"), Ok(()));
        assert_eq!(check_yaml("a: [unclosed"), Ok(()));
    }

    #[test]
    fn deep_flow_nesting_is_refused_early() {
        let text = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let start = std::time::Instant::now();
        let err = check_yaml(&text).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        // The document mapping is the first level; the 64th bracket opens the 65th.
        assert_eq!((err.line, err.column), (1, 3 + MAX_YAML_DEPTH));
        assert!(err.message.contains("nested more than 64"), "{}", err.message);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // Each level doubles: 2^30 values from a few hundred bytes.
        let mut text = String::from("a0: &a0 [x, x]\n");
        for i in 1..30 {
            text.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        let err = check_yaml(&text).unwrap_err();
        assert!(err.message.contains("an alias counts as every value it repeats"), "{}", err.message);
        let big = format!("s: &s {}\nl: [{}]\n", "y".repeat(10_000), "*s, ".repeat(1_000));
        assert!(check_yaml(&big).unwrap_err().message.contains("MiB of text"));
    }
}
