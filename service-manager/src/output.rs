//! Printing: plans as YAML or a kubectl `List`, catalog listings as tables, JSON or YAML.
//! Secret values never leave through here: plans are redacted before rendering.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use sdl::catalog::{Catalog, Service};
use sdl::Sdl;
use serde::{Deserialize, Serialize};

use crate::plan::{KubeObject, Plan};

/// What secret values are replaced with.
pub const REDACTED: &str = "<redacted>";

/// Output formats of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A plain table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A copy of `plan` whose Secrets show `<redacted>` instead of their values.
pub fn redact(plan: &Plan) -> Plan {
    let mut copy = plan.clone();
    for step in &mut copy.steps {
        for object in &mut step.objects {
            if let KubeObject::Secret(secret) = object {
                *secret = redact_secret(secret);
            }
        }
    }
    copy
}

/// A copy of `secret` with every value replaced by `<redacted>` (keys kept).
pub fn redact_secret(secret: &Secret) -> Secret {
    let keys = secret.data.iter().flat_map(|d| d.keys()).chain(secret.string_data.iter().flat_map(|d| d.keys()));
    let string_data: BTreeMap<String, String> = keys.map(|k| (k.clone(), REDACTED.to_string())).collect();
    Secret { data: None, string_data: Some(string_data), ..secret.clone() }
}

/// The plan as multi-document YAML, each step introduced by a comment, Secrets showing
/// `<redacted>` for each value: for review and golden files, never for applying.
pub fn plan_yaml(plan: &Plan) -> String {
    render_yaml(&redact(plan))
}

fn render_yaml(plan: &Plan) -> String {
    let mut out =
        format!("# instance {} of {} ({} objects)\n", plan.instance_id, plan.service_id, plan.objects().count());
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        out.push_str(&format!("# step {}/{total}: {}\n", i + 1, step.phase.title()));
        for object in &step.objects {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(object).expect("Kubernetes objects serialise"));
        }
    }
    out
}

/// The plan as a kubectl-style `v1/List` in JSON, Secrets redacted: for review, never for
/// applying.
pub fn plan_json(plan: &Plan) -> String {
    render_json(&redact(plan))
}

fn render_json(plan: &Plan) -> String {
    let items: Vec<&KubeObject> = plan.objects().collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    serde_json::to_string_pretty(&list).expect("Kubernetes objects serialise") + "\n"
}

/// Output formats of a printed plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Multi-document YAML with a comment per step.
    Yaml,
    /// A kubectl-style `v1/List`.
    Json,
}

/// The plan as `hsm create-instance --dry-run` prints it. Without `show_secrets`, Secrets are
/// left out (a YAML comment names each and its keys): a printed plan piped to
/// `kubectl apply` must never create Secrets holding placeholders. With it, they are printed
/// with their real values.
pub fn plan(plan: &Plan, format: PlanFormat, show_secrets: bool) -> String {
    let mut shown = plan.clone();
    let mut left_out = Vec::new();
    if !show_secrets {
        for step in &mut shown.steps {
            step.objects.retain(|object| match object {
                KubeObject::Secret(secret) => {
                    let keys: Vec<&str> = secret.data.iter().flat_map(|d| d.keys()).map(String::as_str).collect();
                    left_out.push(format!("{} (keys: {})", object.name(), keys.join(", ")));
                    false
                }
                _ => true,
            });
        }
    }
    match format {
        PlanFormat::Yaml => {
            let rendered = render_yaml(&shown);
            let (header, rest) = rendered.split_once('\n').unwrap_or((&rendered, ""));
            let notes: String = left_out
                .iter()
                .map(|s| format!("# Secret {s} is left out: its values are secret (--show-secrets prints them)\n"))
                .collect();
            format!("{header}\n{notes}{rest}")
        }
        PlanFormat::Json => render_json(&shown),
    }
}

/// The summary `--dry-run` writes on stderr.
pub fn planned(prepared: &crate::request::Prepared, plan: &Plan) -> String {
    format!(
        "Planned instance {} of {} {}/{}: {} objects in {} steps (dry run: nothing was created).",
        plan.instance_id,
        prepared.service.id,
        prepared.version.product_version,
        prepared.version.sdl_version,
        plan.objects().count(),
        plan.steps.len()
    )
}

/// The prompt for a missing parameter: its name, description and an example (unless the
/// description already gives it).
pub fn prompt(name: &str, parameter: Option<&sdl::model::Parameter>) -> String {
    let description = parameter.and_then(|p| p.description.clone());
    let example = parameter
        .and_then(|p| p.example.clone())
        .filter(|e| !description.as_ref().is_some_and(|d| d.contains(e.as_str())));
    let description = description.map(|d| format!(" ({d})")).unwrap_or_default();
    let example = example.map(|e| format!(" [e.g. {e}]")).unwrap_or_default();
    format!("{name}{description}{example}: ")
}

/// `public locations:` and one line per public Service, its address and ports, e.g.
/// `  router 192.0.2.3: http 80, https 443`; nothing when there are none.
pub fn locations_lines(locations: &[crate::actions::get::Location]) -> String {
    if locations.is_empty() {
        return String::new();
    }
    let mut by_service: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for l in locations {
        let port = format!("{} {}", l.port_name, l.public_port);
        match by_service.iter_mut().find(|(s, a, _)| *s == l.service_name && *a == l.public_location) {
            Some((_, _, ports)) => ports.push(port),
            None => by_service.push((&l.service_name, &l.public_location, vec![port])),
        }
    }
    let lines: String = by_service
        .iter()
        .map(|(service, address, ports)| format!("  {service} {address}: {}\n", ports.join(", ")))
        .collect();
    format!("public locations:\n{lines}")
}

/// What `create-instance` says when done: the instance, objects, state and where its public
/// ports are.
pub fn created(outcome: &crate::actions::create::Outcome) -> String {
    let verb = if outcome.existed { "converged" } else { "created" };
    format!(
        "instance {} {verb}: {} objects applied, state {}\n{}",
        outcome.instance_id,
        outcome.objects,
        outcome.state,
        locations_lines(&outcome.locations)
    )
}

/// What `upgrade-instance` and `configure-instance` say when done.
pub fn changed(outcome: &crate::actions::change::Outcome) -> String {
    let removed =
        if outcome.removed.is_empty() { String::new() } else { format!(", removed {}", outcome.removed.join(", ")) };
    let what = if outcome.from == outcome.to {
        format!("reconfigured at {}", outcome.to)
    } else {
        format!("upgraded from {} to {}", outcome.from, outcome.to)
    };
    format!(
        "instance {} {what}: {} objects applied{removed}, state {}\n{}",
        outcome.instance_id,
        outcome.applied,
        outcome.state,
        locations_lines(&outcome.locations)
    )
}

/// `hsm get-credentials` output: the secret values, as asked for.
pub fn credentials(credentials: &crate::actions::credentials::Credentials, format: Format) -> String {
    match format {
        Format::Table if credentials.values.is_empty() => "the instance has no secret parameters\n".to_string(),
        Format::Table => {
            let rows: Vec<Vec<String>> = credentials.values.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
            table(&["NAME", "VALUE"], &rows)
        }
        _ => structured(credentials, format),
    }
}

/// `hsm create-binding` / `delete-binding` output: one binding, without its credentials.
pub fn binding(summary: &crate::binding::BindingSummary, format: Format) -> String {
    match format {
        Format::Table => {
            let message = match &summary.state {
                crate::binding::BindingState::Failed { message } => format!(": {message}"),
                _ => String::new(),
            };
            format!(
                "binding {} of instance {}: {}{message} (Secret {} in namespace {})\n",
                summary.id,
                summary.instance_id,
                summary.state.name(),
                summary.secret_name,
                summary.instance_id
            )
        }
        _ => structured(summary, format),
    }
}

/// `hsm list-bindings` output: the bindings of an instance, without their credentials.
pub fn bindings(summaries: &[crate::binding::BindingSummary], format: Format) -> String {
    match format {
        Format::Table if summaries.is_empty() => "the instance has no bindings\n".to_string(),
        Format::Table => {
            let rows: Vec<Vec<String>> = summaries
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.state.name().to_string(),
                        s.secret_name.clone(),
                        s.created.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["BINDING", "STATE", "SECRET", "CREATED"], &rows)
        }
        _ => structured(&summaries, format),
    }
}

/// A binding's credentials (`get-credentials --binding`), as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingCredentials {
    /// Instance id.
    pub instance_id: String,
    /// Binding id.
    pub binding_id: String,
    /// The binding Secret's keys and values.
    pub values: BTreeMap<String, String>,
}

/// `hsm get-credentials --binding` output.
pub fn binding_credentials(credentials: &BindingCredentials, format: Format) -> String {
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = credentials.values.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
            table(&["KEY", "VALUE"], &rows)
        }
        _ => structured(credentials, format),
    }
}

/// What `delete-instance` says when done.
pub fn deleted(id: &str, outcome: &crate::actions::delete::Outcome) -> String {
    use crate::actions::delete::Outcome;
    match outcome {
        Outcome::AlreadyGone => format!("instance {id} does not exist; nothing to delete\n"),
        Outcome::Deleted => format!("instance {id} deleted\n"),
        Outcome::VolumesKept(claims) => format!(
            "instance {id} deleted; kept in namespace {id}: volume claims {} and the instance's parameters (create the instance again with --instance-id {id} to reattach them)\n",
            if claims.is_empty() { "(none)".to_string() } else { claims.join(", ") }
        ),
    }
}

/// The warning about a file the catalog layout has no place for.
pub fn stray(path: &std::path::Path) -> String {
    format!(
        "warning: {}: not read: the catalog layout has no place for it (an SDL goes in services/<vendor>/<service>/<product_version>/<sdl_version>/sdl/sdl.json)",
        sdl::error::sanitize(&path.display().to_string())
    )
}

/// What `lint` says when everything is valid.
pub fn linted(
    path: &std::path::Path,
    idl: Option<&std::path::Path>,
    outcome: &crate::actions::lint::Outcome,
) -> String {
    use crate::actions::lint::Outcome;
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match outcome {
        Outcome::Catalog { services, versions, .. } => format!(
            "{}: {}, {}, no problems\n",
            path.display(),
            plural(*services, "service", "services"),
            plural(*versions, "version", "versions")
        ),
        Outcome::Sdl => format!("{}: valid SDL\n", path.display()),
        Outcome::SdlAndIdl => format!(
            "{}: valid SDL; {}: valid instance definition\n",
            path.display(),
            idl.map(|p| p.display().to_string()).unwrap_or_default()
        ),
    }
}

/// A plain text table: columns padded to their widest cell plus three spaces; `(none)`
/// instead of a header over nothing.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        let kept = out.trim_end_matches(' ').len();
        out.truncate(kept);
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Renders `value` as JSON or YAML.
pub fn structured<T: Serialize>(value: &T, format: Format) -> String {
    match format {
        Format::Yaml => serde_norway::to_string(value).expect("listings serialise"),
        _ => serde_json::to_string_pretty(value).expect("listings serialise") + "\n",
    }
}

/// One row of `hsm list-services`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Product versions, oldest first.
    pub product_versions: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Description.
    pub description: String,
}

impl ServiceSummary {
    /// The summary of `service`.
    pub fn of(service: &Service) -> Self {
        ServiceSummary {
            id: service.id.clone(),
            name: service.name.clone(),
            vendor: service.vendor.clone(),
            product_versions: service.product_versions(),
            categories: service.config.categories.clone(),
            labels: service.config.labels.clone(),
            description: service.config.description.clone(),
        }
    }
}

/// `hsm list-services` output.
pub fn list_services(catalog: &Catalog, format: Format) -> String {
    let summaries: Vec<ServiceSummary> = catalog.services.iter().map(ServiceSummary::of).collect();
    services(&summaries, format)
}

/// The services of `summaries` as `hsm list-services` prints them.
pub fn services(summaries: &[ServiceSummary], format: Format) -> String {
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = summaries
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.name.clone(),
                        s.product_versions.join(", "),
                        s.categories.join(", "),
                        s.labels.join(", "),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "PRODUCT VERSIONS", "CATEGORIES", "LABELS"], &rows)
        }
        _ => structured(&summaries, format),
    }
}

/// One row of `hsm list-categories`.
#[derive(Debug, Clone, Serialize)]
pub struct CategorySummary {
    /// Category name.
    pub category: String,
    /// Ids of the services in it.
    pub services: Vec<String>,
}

/// `hsm list-categories` output.
pub fn list_categories(catalog: &Catalog, format: Format) -> String {
    categories(catalog.services.iter().map(|s| (s.id.as_str(), s.config.categories.as_slice())), format)
}

/// The categories of `services` (id, categories) with their services, as `hsm
/// list-categories` prints them.
pub fn categories<'a>(services: impl Iterator<Item = (&'a str, &'a [String])>, format: Format) -> String {
    let mut by_category: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, categories) in services {
        for category in categories {
            by_category.entry(category).or_default().push(id.to_string());
        }
    }
    let categories: Vec<CategorySummary> = by_category
        .into_iter()
        .map(|(category, services)| CategorySummary { category: category.to_string(), services })
        .collect();
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = categories
                .iter()
                .map(|c| vec![c.category.clone(), c.services.len().to_string(), c.services.join(", ")])
                .collect();
            table(&["CATEGORY", "SERVICES", "IDS"], &rows)
        }
        _ => structured(&categories, format),
    }
}

/// One version in `hsm get-service`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionDetail {
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// `<pv>` or `<pv>/<sv>` entries this version upgrades from.
    pub upgrade_from: Vec<String>,
}

/// One parameter in `hsm get-service`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParameterDetail {
    /// Name.
    pub name: String,
    /// Must have a value after defaults and generators.
    pub required: bool,
    /// Secret.
    pub secret: bool,
    /// Cannot change after creation.
    pub immutable: bool,
    /// Generated when not given.
    pub generated: bool,
    /// Default (secret defaults are redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `hsm get-service` details.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceDetail {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: ServiceSummary,
    /// Every version.
    pub versions: Vec<VersionDetail>,
    /// Product and SDL version the parameters below belong to.
    pub parameters_of: String,
    /// Parameters of that version.
    pub parameters: Vec<ParameterDetail>,
    /// Components of that version.
    pub components: Vec<String>,
}

impl ServiceDetail {
    /// Details of `service`, with the parameters of the version whose SDL is `sdl`.
    pub fn of(service: &Service, sdl: &Sdl) -> Self {
        let versions = service
            .versions
            .iter()
            .map(|v| VersionDetail {
                product_version: v.product_version.clone(),
                sdl_version: v.sdl_version.clone(),
                upgrade_from: v.config.upgrade_from.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let parameters = sdl
            .parameters
            .iter()
            .map(|p| ParameterDetail {
                name: p.name.clone(),
                required: p.required,
                secret: p.secret,
                immutable: p.immutable,
                generated: p.generator.is_some(),
                default: p.default.as_ref().map(|d| if p.secret { REDACTED.to_string() } else { d.clone() }),
                description: p.description.clone(),
            })
            .collect();
        ServiceDetail {
            summary: ServiceSummary::of(service),
            versions,
            parameters_of: format!("{}/{}", sdl.product_version, sdl.sdl_version),
            parameters,
            components: sdl.components.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// Human-readable form.
    pub fn render(&self, format: Format) -> String {
        if format != Format::Table {
            return structured(self, format);
        }
        let s = &self.summary;
        let mut out = format!(
            "ID:           {}\nNAME:         {}\nVENDOR:       {}\nDESCRIPTION:  {}\nCATEGORIES:   {}\nLABELS:       {}\nCOMPONENTS:   {}\n\nVERSIONS\n",
            s.id,
            s.name,
            s.vendor,
            s.description,
            s.categories.join(", "),
            s.labels.join(", "),
            self.components.join(", "),
        );
        let rows: Vec<Vec<String>> = self
            .versions
            .iter()
            .map(|v| vec![v.product_version.clone(), v.sdl_version.clone(), v.upgrade_from.join(", ")])
            .collect();
        out.push_str(&table(&["PRODUCT VERSION", "SDL VERSION", "UPGRADES FROM"], &rows));
        out.push_str(&format!("\nPARAMETERS ({})\n", self.parameters_of));
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        let rows: Vec<Vec<String>> = self
            .parameters
            .iter()
            .map(|p| {
                let default = match (&p.default, p.generated) {
                    (Some(d), _) => d.clone(),
                    (None, true) => "(generated)".into(),
                    (None, false) => String::new(),
                };
                vec![
                    p.name.clone(),
                    yes(p.required),
                    yes(p.secret),
                    yes(p.immutable),
                    default,
                    p.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(&["NAME", "REQUIRED", "SECRET", "IMMUTABLE", "DEFAULT", "DESCRIPTION"], &rows));
        out
    }
}

/// Age of an RFC 3339 timestamp as kubectl prints it (`42s`, `5m`, `3h`, `2d`).
pub fn age(timestamp: &str) -> String {
    let Ok(then) = time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339) else {
        return "<unknown>".into();
    };
    let seconds = (time::OffsetDateTime::now_utc() - then).whole_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `hsm list-instances` output.
pub fn list_instances(records: &[crate::instance::Record], format: Format) -> String {
    match format {
        Format::Table if records.is_empty() => "no instances\n".into(),
        Format::Table => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        r.instance_id.clone(),
                        r.service_id.clone(),
                        r.product_version.clone(),
                        r.sdl_version.clone(),
                        r.state.to_string(),
                        age(&r.created),
                    ]
                })
                .collect();
            table(&["INSTANCE", "SERVICE", "VERSION", "SDL", "STATE", "AGE"], &rows)
        }
        _ => structured(&records, format),
    }
}

/// `hsm get-instance` output.
pub fn instance_detail(detail: &crate::actions::get::InstanceDetail, format: Format) -> String {
    if format != Format::Table {
        return structured(detail, format);
    }
    let r = &detail.record;
    let mut out = format!(
        "INSTANCE:   {}\nSERVICE:    {}\nVERSION:    {} (SDL {})\nSTATE:      {}\nCREATED:    {} ({} ago)\n",
        r.instance_id,
        r.service_id,
        r.product_version,
        r.sdl_version,
        r.state,
        r.created,
        age(&r.created)
    );
    if let Some(message) = &r.message {
        out.push_str(&format!("MESSAGE:    {message}\n"));
    }
    if let Some(op) = &r.operation {
        out.push_str(&format!("OPERATION:  running, held by {}\n", op.holder));
    }
    if !detail.available_upgrades.is_empty() {
        out.push_str(&format!("UPGRADES:   {} (hsm upgrade-instance)\n", detail.available_upgrades.join(", ")));
    }
    out.push_str("\nCOMPONENTS\n");
    let rows: Vec<Vec<String>> = detail
        .components
        .iter()
        .map(|c| vec![c.name.clone(), c.kind.to_string(), format!("{}/{}", c.ready, c.desired)])
        .collect();
    out.push_str(&table(&["NAME", "KIND", "READY"], &rows));
    out.push_str("\nSERVICE LOCATIONS\n");
    let rows: Vec<Vec<String>> = detail
        .service_locations
        .iter()
        .map(|l| vec![l.service_name.clone(), l.port_name.clone(), format!("{}:{}", l.public_location, l.public_port)])
        .collect();
    out.push_str(&table(&["SERVICE", "PORT", "LOCATION"], &rows));
    out.push_str("\nPARAMETERS\n");
    let rows: Vec<Vec<String>> = detail.parameters.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
    out.push_str(&table(&["NAME", "VALUE"], &rows));
    if !detail.volume_claims.is_empty() {
        out.push_str(&format!("\nVOLUME CLAIMS: {}\n", detail.volume_claims.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(description: &str, example: &str) -> sdl::model::Parameter {
        serde_json::from_value(serde_json::json!({"name": "DOMAIN", "description": description, "example": example}))
            .unwrap()
    }

    #[test]
    fn prompts_give_an_example_once() {
        let given = parameter("System domain, e.g. cf.example.com.", "cf.example.com");
        assert_eq!(prompt("DOMAIN", Some(&given)), "DOMAIN (System domain, e.g. cf.example.com.): ");
        let separate = parameter("System domain.", "cf.example.com");
        assert_eq!(prompt("DOMAIN", Some(&separate)), "DOMAIN (System domain.) [e.g. cf.example.com]: ");
        assert_eq!(prompt("X", None), "X: ");
    }
}
