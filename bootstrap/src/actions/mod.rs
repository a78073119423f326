//! One module per verb of the installer, as library calls (Helm's `pkg/action` shape): each
//! has an `Options` struct and a `run` returning what it did (its `Outcome`) or an
//! [`crate::Error`] carrying its exit code. Progress goes to the [`Context`]'s report;
//! confirmations are asked through it. The `bootstrap` binary only parses flags, prompts,
//! prints outcomes and picks exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod install;
pub mod plan;
pub mod preflight;
pub mod provision;
pub mod status;
pub mod uninstall;
pub mod validate;

/// What every action runs with: the environment (credentials may come from it), where
/// progress goes, who confirms destruction, and the running program (its cloud helper sits
/// next to it; a rebuilt program renders afresh).
pub struct Context<'a> {
    /// The process environment.
    pub env: &'a BTreeMap<String, String>,
    /// Where progress goes.
    pub report: &'a dyn crate::progress::Report,
    /// Asked before resources are destroyed, unless the options say yes already; `false`
    /// cancels.
    pub confirm: &'a dyn Fn(&str) -> bool,
    /// The installer program.
    pub program: PathBuf,
}

impl Context<'_> {
    /// Whether `question` is answered yes: by `yes`, or by the one asked.
    pub fn confirmed(&self, yes: bool, question: &str) -> bool {
        yes || (self.confirm)(question)
    }
}

/// A current-thread Tokio runtime for the Kubernetes calls of one action.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts")
}
