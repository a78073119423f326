//! Live progress of long operations, one trait for every caller (`hsm`, `bootstrap install`,
//! later the controller's events): named steps, per-object readiness, notes. Two ways to show
//! it on stderr: a spinner line over finished lines on a terminal ([`Terminal`]), plain lines
//! otherwise ([`Lines`]); [`Quiet`] shows nothing. Every line carries the time since the
//! operation started, written `+12.3s`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::objects::Kind;
use crate::readiness::Readiness;

/// How many names of things still being waited for a spinner line shows.
const SHOWN_WAITING: usize = 4;

/// Receives progress of an operation.
pub trait Progress: Send + Sync {
    /// Step `index` of `total` starts.
    fn step(&self, index: usize, total: usize, title: &str, objects: usize);
    /// The readiness of everything being waited for changed.
    fn waiting(&self, statuses: &[Readiness]);
    /// Something worth a line of its own.
    fn note(&self, text: &str);
    /// The operation finished.
    fn finish(&self);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: usize, _: usize, _: &str, _: usize) {}
    fn waiting(&self, _: &[Readiness]) {}
    fn note(&self, _: &str) {}
    fn finish(&self) {}
}

/// The progress display for stderr: [`Terminal`] when it is one, [`Lines`] otherwise.
pub fn stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Terminal::new())
    } else {
        Box::new(Lines::new())
    }
}

/// What both displays track: the current step and what finished in it.
struct Tracker {
    started: Instant,
    state: Mutex<(String, BTreeSet<(Kind, String)>)>,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker { started: Instant::now(), state: Mutex::new((String::new(), BTreeSet::new())) }
    }

    fn stamp(&self, text: &str) -> String {
        format!("{text} (+{:.1}s)", self.started.elapsed().as_secs_f64())
    }

    fn step(&self, index: usize, total: usize, title: &str, objects: usize) -> (String, String) {
        let header = format!("[{index}/{total}] {title}");
        let line = self.stamp(&format!("{header}: {objects} object{}", if objects == 1 { "" } else { "s" }));
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (header.clone(), BTreeSet::new());
        (header, line)
    }

    /// Lines for what finished since the last call, and the step's header.
    fn finished(&self, statuses: &[Readiness]) -> (Vec<String>, String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        for s in statuses.iter().filter(|s| s.done) {
            if state.1.insert((s.kind, s.name.clone())) {
                let what = if s.kind == Kind::Job {
                    "complete".to_string()
                } else {
                    format!("ready {}/{}", s.ready, s.desired)
                };
                lines.push(self.stamp(&format!("  {} {} {what}", s.kind, s.name)));
            }
        }
        (lines, state.0.clone())
    }
}

/// The spinner's message while waiting: done count and the first few names still pending,
/// with how many more there are.
pub fn waiting_summary(header: &str, statuses: &[Readiness]) -> String {
    let done = statuses.iter().filter(|s| s.done).count();
    let pending: Vec<&Readiness> = statuses.iter().filter(|s| !s.done).collect();
    if pending.is_empty() {
        return format!("{header}: {done}/{} done", statuses.len());
    }
    let mut names: Vec<String> =
        pending.iter().take(SHOWN_WAITING).map(|s| format!("{} {}/{}", s.name, s.ready, s.desired)).collect();
    if pending.len() > SHOWN_WAITING {
        names.push(format!("+{} more", pending.len() - SHOWN_WAITING));
    }
    format!("{header}: {done}/{} done; waiting for {}", statuses.len(), names.join(", "))
}

/// Progress on a terminal: finished lines scroll above a spinner that shows what is pending.
pub struct Terminal {
    bar: ProgressBar,
    tracker: Tracker,
}

impl Terminal {
    /// A spinner on stderr.
    pub fn new() -> Terminal {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Terminal { bar, tracker: Tracker::new() }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Terminal {
    fn step(&self, index: usize, total: usize, title: &str, objects: usize) {
        let (header, line) = self.tracker.step(index, total, title, objects);
        self.bar.println(line);
        self.bar.set_message(header);
    }

    fn waiting(&self, statuses: &[Readiness]) {
        let (lines, header) = self.tracker.finished(statuses);
        for line in lines {
            self.bar.println(line);
        }
        self.bar.set_message(waiting_summary(&header, statuses));
    }

    fn note(&self, text: &str) {
        self.bar.println(self.tracker.stamp(text));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Progress as plain lines (logs, CI, pipes).
pub struct Lines {
    tracker: Tracker,
}

impl Lines {
    /// Lines on stderr.
    pub fn new() -> Lines {
        Lines { tracker: Tracker::new() }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Lines {
    fn step(&self, index: usize, total: usize, title: &str, objects: usize) {
        eprintln!("{}", self.tracker.step(index, total, title, objects).1);
    }

    fn waiting(&self, statuses: &[Readiness]) {
        for line in self.tracker.finished(statuses).0 {
            eprintln!("{line}");
        }
    }

    fn note(&self, text: &str) {
        eprintln!("{}", self.tracker.stamp(text));
    }

    fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, done: bool) -> Readiness {
        Readiness { ready: i32::from(done), desired: 1, done, ..Readiness::unknown(Kind::Deployment, "ns", name) }
    }

    #[test]
    fn the_waiting_summary_says_how_many_more_are_pending() {
        let statuses: Vec<Readiness> =
            ["a", "b", "c", "d", "e", "f"].iter().enumerate().map(|(i, n)| status(n, i == 0)).collect();
        assert_eq!(
            waiting_summary("[5/6] workloads", &statuses),
            "[5/6] workloads: 1/6 done; waiting for b 0/1, c 0/1, d 0/1, e 0/1, +1 more"
        );
        let all_done: Vec<Readiness> = ["a", "b"].iter().map(|n| status(n, true)).collect();
        assert_eq!(waiting_summary("[5/6] workloads", &all_done), "[5/6] workloads: 2/2 done");
    }

    #[test]
    fn each_finished_object_is_reported_once() {
        let tracker = Tracker::new();
        tracker.step(1, 2, "workloads", 2);
        let (first, _) = tracker.finished(&[status("a", true), status("b", false)]);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("  Deployment a ready 1/1 (+"), "{first:?}");
        let (second, header) = tracker.finished(&[status("a", true), status("b", true)]);
        assert_eq!(second.len(), 1, "a is not reported again");
        assert_eq!(header, "[1/2] workloads");
    }
}
