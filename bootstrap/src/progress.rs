//! Live progress of the installer's actions, one trait for every caller: timed phase lines,
//! Terraform's apply and destroy as resources finish, and — through
//! [`service_manager::progress::Progress`] — per-object readiness while platform objects and
//! the platform service come up. [`stderr`] picks the display: a bar over finished lines on a
//! terminal, plain timestamped lines otherwise; [`Quiet`] shows nothing (tests, library use).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use service_manager::progress::Progress;

use crate::terraform::Tally;

/// Receives progress of an installer action.
pub trait Report: Send + Sync {
    /// A line of its own: a phase started or ended, something done or waited for.
    fn line(&self, text: &str);
    /// A Terraform apply or destroy moved on; `finished` is the line for a resource that
    /// just finished, if one did.
    fn terraform(&self, tally: &Tally, finished: Option<&str>);
    /// The Terraform run ended.
    fn terraform_done(&self);
    /// A display for Kubernetes readiness, for one wait (the caller calls its `finish`: on a
    /// terminal it is a spinner that must not outlive the wait).
    fn kube(&self) -> Box<dyn Progress>;
}

/// Shows nothing.
pub struct Quiet;

impl Report for Quiet {
    fn line(&self, _: &str) {}
    fn terraform(&self, _: &Tally, _: Option<&str>) {}
    fn terraform_done(&self) {}
    fn kube(&self) -> Box<dyn Progress> {
        Box::new(service_manager::progress::Quiet)
    }
}

/// The display for stderr: a bar when stderr is a terminal, plain lines otherwise.
pub fn stderr() -> Box<dyn Report> {
    Box::new(Stderr { started: Instant::now(), bar: Mutex::new(None), terminal: std::io::stderr().is_terminal() })
}

/// Progress on stderr, every line stamped with the time since the action started.
struct Stderr {
    started: Instant,
    terminal: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Stderr {
    fn stamp(&self, text: &str) -> String {
        format!("[{:>6.1}s] {text}", self.started.elapsed().as_secs_f64())
    }
}

impl Report for Stderr {
    fn line(&self, text: &str) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            Some(bar) => bar.println(self.stamp(text)),
            None => eprintln!("{}", self.stamp(text)),
        }
    }

    fn terraform(&self, tally: &Tally, finished: Option<&str>) {
        if !self.terminal {
            if let Some(line) = finished {
                self.line(line);
            }
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(tally.total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_length(tally.total);
        bar.set_position(tally.done);
        bar.set_message(match tally.in_flight.is_empty() {
            true => String::new(),
            false => format!("in flight: {}", tally.in_flight.join(", ")),
        });
        if let Some(line) = finished {
            bar.println(self.stamp(line));
        }
    }

    fn terraform_done(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn kube(&self) -> Box<dyn Progress> {
        service_manager::progress::stderr()
    }
}

/// Collects lines (tests of library actions).
#[derive(Default)]
pub struct Collect {
    /// Every line, in order.
    pub lines: Mutex<Vec<String>>,
}

impl Collect {
    /// The lines so far, one string.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

impl Report for Collect {
    fn line(&self, text: &str) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(text.to_string());
    }
    fn terraform(&self, _: &Tally, finished: Option<&str>) {
        if let Some(line) = finished {
            self.line(line);
        }
    }
    fn terraform_done(&self) {}
    fn kube(&self) -> Box<dyn Progress> {
        Box::new(service_manager::progress::Quiet)
    }
}
