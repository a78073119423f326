//! Error types shared by parsing, validation, resolution and catalog reading. Every error
//! names the file and, where there is one, the JSON path of the offending value.

use std::fmt;
use std::path::PathBuf;

/// One validation problem: where (a JSON path such as `components[3].service_ports[0].name`)
/// and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// JSON path of the offending value; empty for the document as a whole.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", shorten(&self.path, 2 * MAX_QUOTED_CHARS), self.message)
        }
    }
}

/// A document that could not be read as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ParseError {
    /// File name (or another name of the input, such as `<stdin>`).
    pub source_name: String,
    /// JSON path of the value being read when the error happened.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

/// Failure to load a document from a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read: {}", sanitize(&path.display().to_string()), sanitize(&source.to_string()))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not well-formed or has fields of the wrong type.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The document parsed but breaks rules.
    #[error("{}", invalid_report(source_name, what, problems))]
    Invalid {
        /// File name.
        source_name: String,
        /// What the document should have been, e.g. `SDL`.
        what: &'static str,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Most problems one report lists; the rest are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 50;
/// Most characters of user text quoted in a message; longer text is cut in the middle.
pub const MAX_QUOTED_CHARS: usize = 80;
/// Most characters of one message.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The multi-line report for an invalid document: the first [`MAX_REPORTED_PROBLEMS`]
/// problems, then how many more there are.
pub fn invalid_report(source_name: &str, what: &str, problems: &[Problem]) -> String {
    let count = problems.len();
    let mut out = format!(
        "{} is not a valid {what} ({count} problem{}):",
        sanitize(source_name),
        if count == 1 { "" } else { "s" }
    );
    for problem in problems.iter().take(MAX_REPORTED_PROBLEMS) {
        out.push_str("\n  ");
        out.push_str(&sanitize(&problem.to_string()));
    }
    if count > MAX_REPORTED_PROBLEMS {
        out.push_str(&format!("\n  … and {} more", count - MAX_REPORTED_PROBLEMS));
    }
    out
}

/// `text` in double quotes, safe to print: control characters, quotes and backslashes
/// escaped, and at most [`MAX_QUOTED_CHARS`] characters kept (the middle is cut).
pub fn quote(text: &str) -> String {
    format!("\"{}\"", escape(&shorten(text, MAX_QUOTED_CHARS)))
}

/// `text` with control characters (terminal escapes, NUL, newlines, ...) written as
/// `\n`, `\u{1b}` and so on, so printing it cannot drive a terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_invisible(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional overrides and similar characters that change how a terminal shows text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// At most `max` characters of `text`, the middle replaced by `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max / 2).collect();
    let tail: String = text.chars().skip(count - (max - max / 2 - 1)).collect();
    format!("{head}…{tail}")
}

/// A message that may carry user text (a parser's message quoting the input), made safe to
/// print: control characters escaped, quoted runs longer than [`MAX_QUOTED_CHARS`] cut, and
/// the whole at most [`MAX_MESSAGE_CHARS`] characters.
pub fn sanitize(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut run = String::new();
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for ch in message.chars() {
        match quote {
            Some(q) if ch == q && previous != '\\' => {
                out.push_str(&shorten(&run, MAX_QUOTED_CHARS));
                out.push(ch);
                run.clear();
                quote = None;
            }
            Some(_) => run.push(ch),
            None => {
                if ch == '"' || ch == '`' {
                    quote = Some(ch);
                }
                out.push(ch);
            }
        }
        previous = ch;
        if out.len() > MAX_MESSAGE_CHARS * 8 {
            break;
        }
    }
    out.push_str(&shorten(&run, MAX_QUOTED_CHARS));
    let mut escaped = String::with_capacity(out.len());
    for ch in out.chars() {
        if ch.is_control() || is_invisible(ch) {
            escaped.extend(ch.escape_default());
        } else {
            escaped.push(ch);
        }
    }
    shorten(&escaped, MAX_MESSAGE_CHARS)
}
