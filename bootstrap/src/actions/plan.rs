//! `plan`: validates, renders the Terraform configuration into the state directory, runs
//! `terraform init` (once per provider set) and `terraform plan -out=plan.tfplan`. Changes
//! nothing in any cloud.

use std::path::PathBuf;

use super::Context;
use crate::phases::Status;
use crate::Error;

/// Options of `plan`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
    /// The state directory (default `./stratus-<ClusterName>`).
    pub state_dir: Option<PathBuf>,
    /// Only render the configuration; do not run Terraform.
    pub render_only: bool,
}

/// What `plan` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Terraform's working directory with the rendered configuration.
    pub dir: PathBuf,
    /// Terraform's summary (`Plan: 3 to add, ...` or `No changes. ...`); `None` when only
    /// rendering.
    pub summary: Option<String>,
    /// The saved plan; `None` when only rendering.
    pub plan_file: Option<PathBuf>,
}

/// Renders and plans.
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    let config = super::validate::announce(&options.input, context)?;
    let prepared = crate::workspace::prepare(
        config,
        options.state_dir.as_deref(),
        &context.program,
        !options.render_only,
        context.report,
    )?;
    // Nothing made yet: the record says planned (a provisioned cluster stays what it is).
    let mut record = prepared.record()?;
    if matches!(record.status, None | Some(Status::Uninstalled)) {
        record.set_status(&prepared.state, Status::Planned)?;
    }
    if options.render_only {
        return Ok(Outcome { dir: prepared.dir, summary: None, plan_file: None });
    }
    let out = prepared.terraform.run(&["plan", "-input=false", "-no-color", "-out=plan.tfplan"])?;
    let summary = out
        .lines()
        .find(|l| l.starts_with("Plan:") || l.starts_with("No changes."))
        .unwrap_or("plan written")
        .to_string();
    context.report.line(&format!("terraform plan: {summary}"));
    Ok(Outcome { plan_file: Some(prepared.dir.join("plan.tfplan")), dir: prepared.dir, summary: Some(summary) })
}
