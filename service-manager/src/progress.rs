//! Live progress of long operations on stderr: named steps, per-component readiness and
//! elapsed time. A spinner line on a terminal (indicatif), plain timestamped lines otherwise.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::instance::Readiness;

/// Receives progress of an operation.
pub trait Progress: Send + Sync {
    /// Step `index` of `total` starts.
    fn step(&self, index: usize, total: usize, title: &str, objects: usize);
    /// The readiness of everything being waited for changed.
    fn waiting(&self, statuses: &[Readiness]);
    /// The operation finished.
    fn finish(&self);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: usize, _: usize, _: &str, _: usize) {}
    fn waiting(&self, _: &[Readiness]) {}
    fn finish(&self) {}
}

/// Reports on stderr.
pub struct Stderr {
    bar: Option<ProgressBar>,
    started: Instant,
    state: Mutex<(String, BTreeSet<String>)>,
}

impl Stderr {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Stderr {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Stderr { bar, started: Instant::now(), state: Mutex::new((String::new(), BTreeSet::new())) }
    }

    fn line(&self, text: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => bar.println(format!("{text} ({elapsed:.1}s)")),
            None => eprintln!("{text} ({elapsed:.1}s)"),
        }
    }
}

impl Default for Stderr {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Stderr {
    fn step(&self, index: usize, total: usize, title: &str, objects: usize) {
        let header = format!("[{index}/{total}] {title}");
        self.line(&format!("{header}: {objects} object{}", if objects == 1 { "" } else { "s" }));
        if let Some(bar) = &self.bar {
            bar.set_message(header.clone());
        }
        *self.state.lock().expect("progress lock") = (header, BTreeSet::new());
    }

    fn waiting(&self, statuses: &[Readiness]) {
        let mut state = self.state.lock().expect("progress lock");
        for s in statuses.iter().filter(|s| s.done) {
            if state.1.insert(format!("{}/{}", s.kind, s.name)) {
                let what =
                    if s.kind == "Job" { "complete".to_string() } else { format!("ready {}/{}", s.ready, s.desired) };
                self.line(&format!("  {} {} {what}", s.kind, s.name));
            }
        }
        if let Some(bar) = &self.bar {
            let done = statuses.iter().filter(|s| s.done).count();
            let waiting: Vec<String> = statuses
                .iter()
                .filter(|s| !s.done)
                .take(4)
                .map(|s| format!("{} {}/{}", s.name, s.ready, s.desired))
                .collect();
            bar.set_message(format!("{}: {done}/{} done; waiting for {}", state.0, statuses.len(), waiting.join(", ")));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
