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
            write!(f, "{}: {}", self.path, self.message)
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
    #[error("{}: cannot read: {source}", path.display())]
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

/// The multi-line report for an invalid document.
pub fn invalid_report(source_name: &str, what: &str, problems: &[Problem]) -> String {
    let count = problems.len();
    let mut out =
        format!("{source_name} is not a valid {what} ({count} problem{}):", if count == 1 { "" } else { "s" });
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}
