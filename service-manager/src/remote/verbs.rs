//! The `hsm` verbs against an HSM server: `api`, `login`, `logout`, `info`, and the catalog
//! and instance verbs, each returning what `hsm` prints on stdout. Answers are read into
//! service-manager's own types so that the same printing code (`output`) renders them as it
//! does against a kubeconfig. Waiting follows the instance's server-sent events, then polls
//! `GET /v1/instances/{id}`, until a terminal state.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;

use super::client::{ca_certificates, check_url, fetch_info, http_client, Info, Remote};
use super::config::{Config, Target};
use super::login::{self, DevicePrompt};
use super::{now, RemoteError};
use crate::actions::delete::Outcome as Deleted;
use crate::actions::get::InstanceDetail;
use crate::instance::{Record, State};
use crate::output::{self, Format, ServiceDetail, ServiceSummary};
use crate::progress::Progress;

/// How often a waiting verb asks for the instance again.
pub const POLL: Duration = Duration::from_secs(2);

/// `hsm api URL`: checks that an HSM server answers at `url` (with `ca_file`'s CA, or no
/// certificate check with `skip_ssl_validation`) and stores it as the target. A session
/// for another server is forgotten.
pub async fn set_target(
    dir: &Path,
    url: &str,
    ca_file: Option<&Path>,
    skip_ssl_validation: bool,
    timeout: Duration,
) -> Result<String, RemoteError> {
    let url = check_url(url)?;
    let ca_certificates = match ca_file {
        None => None,
        Some(file) => {
            let pem = std::fs::read_to_string(file)
                .map_err(|e| RemoteError::Usage(format!("--ca-file {}: {e}", file.display())))?;
            ca_certificates(&pem).map_err(|e| RemoteError::Usage(format!("--ca-file {}: {e}", file.display())))?;
            Some(pem)
        }
    };
    let target = Target { url: url.clone(), ca_certificates, skip_ssl_validation };
    let http = http_client(&target, timeout)?;
    let info = fetch_info(&http, &url).await.map_err(|e| match e {
        RemoteError::Unreachable { url, why } if why.contains("certificate") || why.contains("UnknownIssuer") => {
            RemoteError::Unreachable {
                url,
                why: format!("{why} (give the CA of the server's certificate with --ca-file FILE)"),
            }
        }
        other => other,
    })?;
    let mut config = Config::load(dir)?;
    let same = config.target.as_ref().is_some_and(|t| t.url == url);
    if !same {
        config.session = None;
    }
    config.target = Some(target);
    config.save(dir)?;
    let mut out = format!("target: {url}\n{}", describe(&info));
    if skip_ssl_validation {
        out.push_str("warning: the server's certificate is not checked (--skip-ssl-validation)\n");
    }
    match (&info.auth, &config.session) {
        (Some(_), None) => out.push_str("not signed in: run `hsm login`\n"),
        (Some(_), Some(session)) => out.push_str(&format!("signed in as {}\n", session.user)),
        (None, _) => {}
    }
    Ok(out)
}

/// The lines describing a server's `/v1/info`.
fn describe(info: &Info) -> String {
    let auth = match &info.auth {
        Some(auth) => format!("{} (client {})", auth.issuer, auth.client_id),
        None => "none (the server checks no token)".into(),
    };
    format!(
        "server version: {}\nAPI version:    {}\ncatalog:        {}\nsign-in:        {auth}\n",
        info.server_version, info.api_version, info.catalog
    )
}

/// `hsm api`: the target, or that there is none.
pub fn show_target(dir: &Path) -> Result<String, RemoteError> {
    let config = Config::load(dir)?;
    Ok(match &config.target {
        None => "no target set: hsm uses the cluster of the kubeconfig (`hsm api URL` sets an HSM server)\n".into(),
        Some(target) => {
            let check = if target.skip_ssl_validation {
                " (certificate not checked)"
            } else if target.ca_certificates.is_some() {
                " (with its own CA)"
            } else {
                ""
            };
            let who = match &config.session {
                Some(session) => format!("signed in as {}", session.user),
                None => "not signed in".into(),
            };
            format!("target: {}{check}\n{who}\n", target.url)
        }
    })
}

/// `hsm logout`: forgets the session's tokens (the target stays).
pub fn logout(dir: &Path) -> Result<String, RemoteError> {
    let mut config = Config::load(dir)?;
    match config.session.take() {
        None => Ok("not signed in\n".into()),
        Some(session) => {
            config.save(dir)?;
            Ok(format!("signed out {}\n", session.user))
        }
    }
}

/// `hsm info`: the server's `/v1/info` and who is signed in.
pub async fn info(remote: &mut Remote) -> Result<String, RemoteError> {
    let info = fetch_info(remote.http(), &remote.target().url.clone()).await?;
    let who = match (remote.session(), &info.auth) {
        (Some(session), _) => {
            let expiry = match session.expires_at {
                Some(at) if at <= now() => " (token expired; renewed on the next request)".to_string(),
                Some(at) => format!(" (token valid for {}s more)", at - now()),
                None => String::new(),
            };
            format!("signed in as:   {}{expiry}\n", session.user)
        }
        (None, Some(_)) => "signed in as:   nobody (`hsm login` signs in)\n".into(),
        (None, None) => String::new(),
    };
    Ok(format!("target:         {}\n{}{who}", remote.target().url, describe(&info)))
}

/// How `hsm login` signs in.
pub enum SignIn {
    /// The password grant.
    Password {
        /// User name.
        user: String,
        /// Password (secret).
        password: String,
    },
    /// The device authorization grant.
    Device,
}

/// `hsm login`: finds the provider from the server's `/v1/info`, signs in and stores the
/// session. `show` tells the user where to finish a device sign-in.
pub async fn login(remote: &mut Remote, how: SignIn, show: impl FnOnce(&DevicePrompt)) -> Result<String, RemoteError> {
    let info = fetch_info(remote.http(), &remote.target().url.clone()).await?;
    let Some(auth) = info.auth else {
        return Ok(format!("{} checks no token: there is nothing to sign in to\n", remote.target().url));
    };
    let provider = login::discover(remote.http(), &auth).await?;
    let session = match how {
        SignIn::Password { user, password } => login::password(remote.http(), &provider, &user, &password).await?,
        SignIn::Device => login::device(remote.http(), &provider, show).await?,
    };
    let user = session.user.clone();
    remote.save_session(Some(session))?;
    Ok(format!("signed in to {} as {user}\n", remote.target().url))
}

/// `hsm list-services` from the server.
pub async fn list_services(remote: &mut Remote, format: Format) -> Result<String, RemoteError> {
    let services: Vec<ServiceSummary> = remote.get(&["v1", "services"]).await?;
    Ok(output::services(&services, format))
}

/// `hsm list-categories` from the server (the categories of `GET /v1/services`).
pub async fn list_categories(remote: &mut Remote, format: Format) -> Result<String, RemoteError> {
    let services: Vec<ServiceSummary> = remote.get(&["v1", "services"]).await?;
    Ok(output::categories(services.iter().map(|s| (s.id.as_str(), s.categories.as_slice())), format))
}

/// A product version's SDL versions (`GET /v1/services/{id}/product_versions/{pv}`).
#[derive(Deserialize)]
struct ProductVersion {
    sdl_versions: Vec<output::VersionDetail>,
}

/// An SDL version's parameters and components.
#[derive(Deserialize)]
struct SdlVersion {
    product_version: String,
    sdl_version: String,
    parameters: Vec<output::ParameterDetail>,
    components: Vec<String>,
}

/// `hsm get-service` from the server: the service, and the parameters of the version asked
/// for (the newest when none is).
pub async fn get_service(
    remote: &mut Remote,
    id: &str,
    product_version: Option<&str>,
    sdl_version: Option<&str>,
    format: Format,
) -> Result<String, RemoteError> {
    let mut detail: ServiceDetail = remote.get(&["v1", "services", id]).await?;
    if let Some(pv) = product_version {
        let sv = match sdl_version {
            Some(sv) => sv.to_string(),
            None => {
                let versions: ProductVersion = remote.get(&["v1", "services", id, "product_versions", pv]).await?;
                let newest = versions
                    .sdl_versions
                    .last()
                    .ok_or_else(|| RemoteError::Protocol(format!("the server lists no SDL version of {id} {pv}")))?;
                newest.sdl_version.clone()
            }
        };
        let version: SdlVersion =
            remote.get(&["v1", "services", id, "product_versions", pv, "sdl_versions", &sv]).await?;
        detail.parameters_of = format!("{}/{}", version.product_version, version.sdl_version);
        detail.parameters = version.parameters;
        detail.components = version.components;
    }
    Ok(detail.render(format))
}

/// `hsm list-instances` from the server.
pub async fn list_instances(remote: &mut Remote, format: Format) -> Result<String, RemoteError> {
    let records: Vec<Record> = remote.get(&["v1", "instances"]).await?;
    Ok(output::list_instances(&records, format))
}

/// `hsm get-instance` from the server.
pub async fn get_instance(remote: &mut Remote, id: &str, format: Format) -> Result<String, RemoteError> {
    let detail: InstanceDetail = remote.get(&["v1", "instances", id]).await?;
    Ok(output::instance_detail(&detail, format))
}

/// What `create-instance` asks the server for (`POST /v1/instances`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Create {
    /// Service id.
    pub service_id: String,
    /// Product version (newest when absent).
    pub product_version: Option<String>,
    /// SDL version (newest of the product version when absent).
    pub sdl_version: Option<String>,
    /// Instance id (assigned by the server when absent).
    pub instance_id: Option<String>,
    /// Parameter values (secret ones too: they travel in the body only).
    pub parameters: BTreeMap<String, String>,
}

impl Create {
    /// The request body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({"service_id": self.service_id});
        let fields = [
            ("product_version", &self.product_version),
            ("sdl_version", &self.sdl_version),
            ("instance_id", &self.instance_id),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                body[name] = serde_json::Value::String(value.clone());
            }
        }
        if !self.parameters.is_empty() {
            body["parameters"] = serde_json::json!(self.parameters);
        }
        body
    }
}

/// Whether and how long to wait for an operation to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Wait at all.
    pub wait: bool,
    /// For how long.
    pub timeout: Duration,
}

/// `hsm create-instance` through the server: `POST /v1/instances`, then (unless told not to)
/// waiting until the instance runs or fails.
pub async fn create_instance(
    remote: &mut Remote,
    request: &Create,
    wait: Wait,
    progress: &dyn Progress,
) -> Result<String, RemoteError> {
    let started = Instant::now();
    let Created { record: created, objects } =
        remote.send(Method::POST, &["v1", "instances"], &[], Some(&request.body())).await?;
    let id = created.instance_id.clone();
    progress.note(&format!("instance {id} accepted by the server (state {})", created.state));
    if !wait.wait {
        return Ok(format!(
            "instance {id} created: state {} (not waiting; `hsm get-instance {id}` follows it)\n",
            created.state
        ));
    }
    let detail = follow(remote, &id, wait.timeout, progress, |_| true).await?;
    progress.note(&format!("done in {:.1}s", started.elapsed().as_secs_f64()));
    let applied = objects.map(|n| format!("{n} objects applied, ")).unwrap_or_default();
    Ok(format!(
        "instance {id} created: {applied}state {}\n{}",
        detail.record.state,
        output::locations_lines(&detail.service_locations)
    ))
}

/// The answer to `POST /v1/instances`: the instance's summary and the size of its plan (which
/// older servers do not send).
#[derive(serde::Deserialize)]
struct Created {
    #[serde(flatten)]
    record: Record,
    #[serde(default)]
    objects: Option<usize>,
}

/// `hsm upgrade-instance` / `configure-instance` through the server: `PATCH
/// /v1/instances/{id}` with the target version and/or parameters, then (unless told not to)
/// waiting until the change is carried out.
pub async fn change_instance(
    remote: &mut Remote,
    id: &str,
    target: Option<(String, Option<String>)>,
    parameters: BTreeMap<String, String>,
    wait: Wait,
    progress: &dyn Progress,
) -> Result<String, RemoteError> {
    let started = Instant::now();
    let before: InstanceDetail = remote.get(&["v1", "instances", id]).await?;
    let from = format!("{}/{}", before.record.product_version, before.record.sdl_version);
    let mut body = serde_json::json!({});
    if let Some((pv, sv)) = &target {
        body["product_version"] = serde_json::json!(pv);
        if let Some(sv) = sv {
            body["sdl_version"] = serde_json::json!(sv);
        }
    }
    if !parameters.is_empty() {
        body["parameters"] = serde_json::json!(parameters);
    }
    let accepted: Record = remote.send(Method::PATCH, &["v1", "instances", id], &[], Some(&body)).await?;
    progress.note(&format!("change of instance {id} accepted by the server (state {})", accepted.state));
    if !wait.wait {
        let to = format!("{}/{}", accepted.product_version, accepted.sdl_version);
        return Ok(format!("instance {id} changed ({from} to {to}): state {} (not waiting)\n", accepted.state));
    }
    // The change is seen once the instance has left `running` (or its last change time
    // moved); it is carried out when it is back at the version asked for, or has failed.
    let updated_before = before.record.updated.clone();
    let mut moved = accepted.state != State::Running;
    let done = follow(remote, id, wait.timeout, progress, move |detail: &InstanceDetail| {
        moved = moved || detail.record.state != State::Running || detail.record.updated != updated_before;
        let at_target = target.as_ref().is_none_or(|(pv, sv)| {
            detail.record.product_version == *pv && sv.as_ref().is_none_or(|sv| detail.record.sdl_version == *sv)
        });
        moved && (detail.record.state == State::Failed || at_target)
    })
    .await?;
    progress.note(&format!("done in {:.1}s", started.elapsed().as_secs_f64()));
    let to = format!("{}/{}", done.record.product_version, done.record.sdl_version);
    let what = if from == to { format!("reconfigured at {to}") } else { format!("upgraded from {from} to {to}") };
    Ok(format!(
        "instance {id} {what}: state {}\n{}",
        done.record.state,
        output::locations_lines(&done.service_locations)
    ))
}

/// `hsm delete-instance` through the server: `confirm` is asked first (given what will be
/// deleted), then `DELETE /v1/instances/{id}`, then waiting until it is gone.
pub async fn delete_instance(
    remote: &mut Remote,
    id: &str,
    keep_volumes: bool,
    timeout: Duration,
    confirm: impl FnOnce(&str) -> bool,
) -> Result<String, RemoteError> {
    let current: InstanceDetail = match remote.get(&["v1", "instances", id]).await {
        Ok(detail) => detail,
        Err(RemoteError::Api { status: 404, .. }) => return Ok(output::deleted(id, &Deleted::AlreadyGone)),
        Err(other) => return Err(other),
    };
    let r = &current.record;
    let volumes = if keep_volumes { " (its volume claims are kept)" } else { " and its volumes with their data" };
    let question = format!(
        "Delete instance {id} of {} {}/{} on {}{volumes}?",
        r.service_id,
        r.product_version,
        r.sdl_version,
        remote.target().url
    );
    if !confirm(&question) {
        return Err(RemoteError::Cancelled);
    }
    let query: &[(&str, &str)] = if keep_volumes { &[("keep_volumes", "true")] } else { &[] };
    match remote.call(Method::DELETE, &["v1", "instances", id], query, None).await {
        Ok(_) => {}
        Err(RemoteError::Api { status: 404, .. }) => return Ok(output::deleted(id, &Deleted::AlreadyGone)),
        Err(other) => return Err(other),
    }
    let deadline = Instant::now() + timeout;
    loop {
        match remote.get::<InstanceDetail>(&["v1", "instances", id]).await {
            Err(RemoteError::Api { status: 404, .. }) => return Ok(output::deleted(id, &Deleted::Deleted)),
            Err(other) => return Err(other),
            Ok(detail) if detail.record.state == State::Deleted => {
                return Ok(output::deleted(id, &Deleted::VolumesKept(detail.volume_claims)))
            }
            Ok(detail) if detail.record.state == State::Failed => {
                return Err(RemoteError::Failed {
                    id: id.to_string(),
                    message: detail.record.message.unwrap_or_else(|| "deleting failed".into()),
                })
            }
            Ok(detail) if Instant::now() >= deadline => {
                return Err(RemoteError::Timeout {
                    id: id.to_string(),
                    after: humantime::format_duration(timeout).to_string(),
                    state: detail.record.state.to_string(),
                    not_done: String::new(),
                })
            }
            Ok(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Follows instance `id` until it runs and `done` agrees (success), fails, or `timeout`
/// passes: through its server-sent events (`GET /v1/instances/{id}/events`), and by polling
/// `GET /v1/instances/{id}` once the stream ends or breaks without an answer.
async fn follow(
    remote: &mut Remote,
    id: &str,
    timeout: Duration,
    progress: &dyn Progress,
    mut done: impl FnMut(&InstanceDetail) -> bool,
) -> Result<InstanceDetail, RemoteError> {
    let deadline = Instant::now() + timeout;
    if let Some(outcome) = follow_events(remote, id, (deadline, timeout), progress, &mut done).await {
        return outcome;
    }
    loop {
        let detail: InstanceDetail = remote.get(&["v1", "instances", id]).await?;
        if let Some(outcome) = judge(id, detail, &mut done, deadline, timeout, progress) {
            return outcome;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The events of instance `id` until one decides (`Some`), or `None` when the stream could
/// not be opened or ended first (the caller then polls).
async fn follow_events(
    remote: &mut Remote,
    id: &str,
    (deadline, timeout): (Instant, Duration),
    progress: &dyn Progress,
    done: &mut impl FnMut(&InstanceDetail) -> bool,
) -> Option<Result<InstanceDetail, RemoteError>> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut answer = remote.open_stream(&["v1", "instances", id, "events"], left).await.ok()?;
    let mut events = EventReader::default();
    loop {
        let chunk = match tokio::time::timeout_at(deadline.into(), answer.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            // The stream ended or broke: polling takes over (and times out when it is time).
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
        };
        for data in events.push(&chunk) {
            let Ok(detail) = serde_json::from_str::<InstanceDetail>(&data) else { continue };
            if let Some(outcome) = judge(id, detail, done, deadline, timeout, progress) {
                return Some(outcome);
            }
        }
    }
}

/// What one look at the instance decides: done, failed, gone, timed out — or nothing yet
/// (`None`, after showing the waiting components).
fn judge(
    id: &str,
    detail: InstanceDetail,
    done: &mut impl FnMut(&InstanceDetail) -> bool,
    deadline: Instant,
    timeout: Duration,
    progress: &dyn Progress,
) -> Option<Result<InstanceDetail, RemoteError>> {
    let finished = done(&detail);
    match detail.record.state {
        State::Running if finished => return Some(Ok(detail)),
        State::Failed if finished => {
            return Some(Err(RemoteError::Failed {
                id: id.to_string(),
                message: detail.record.message.unwrap_or_else(|| "no reason given".into()),
            }))
        }
        State::Deleting | State::Deleted => {
            return Some(Err(RemoteError::Failed {
                id: id.to_string(),
                message: format!("it is {} (by someone else?)", detail.record.state),
            }))
        }
        _ => {}
    }
    progress.waiting(&detail.components);
    if Instant::now() < deadline {
        return None;
    }
    let not_done = detail
        .components
        .iter()
        .filter(|c| !c.done)
        .map(|c| format!("  {} {}: {}/{} ready", c.kind.as_str(), c.name, c.ready, c.desired))
        .collect::<Vec<_>>()
        .join("\n");
    Some(Err(RemoteError::Timeout {
        id: id.to_string(),
        after: humantime::format_duration(timeout).to_string(),
        state: detail.record.state.to_string(),
        not_done,
    }))
}

/// Server-sent events read from chunks as they come: the `data` of each complete event
/// (its `data:` lines joined), whatever its name; comments and other fields are skipped.
#[derive(Default)]
struct EventReader {
    pending: Vec<u8>,
    data: Vec<String>,
}

impl EventReader {
    /// Takes `chunk`; returns the data of the events it completed.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut complete = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    complete.push(std::mem::take(&mut self.data).join("\n"));
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
            }
        }
        complete
    }
}

/// How often a waiting binding verb asks for the binding again.
const BINDING_POLL: Duration = Duration::from_millis(500);

/// `hsm create-binding` against the server: `POST /v1/instances/{id}/bindings`, then polls
/// the binding until it is ready (or failed, or `timeout` passed). No credential is printed.
pub async fn create_binding(
    remote: &mut Remote,
    instance: &str,
    binding: &str,
    timeout: Duration,
    format: Format,
) -> Result<String, RemoteError> {
    use crate::binding::{BindingState, BindingSummary};
    let body = serde_json::json!({ "binding_id": binding });
    let mut summary: BindingSummary =
        remote.send(Method::POST, &["v1", "instances", instance, "bindings"], &[], Some(&body)).await?;
    let deadline = Instant::now() + timeout;
    loop {
        match &summary.state {
            BindingState::Ready => return Ok(output::binding(&summary, format)),
            BindingState::Failed { message } => {
                return Err(RemoteError::Failed {
                    id: instance.to_string(),
                    message: format!("binding {binding}: {message}"),
                })
            }
            _ if Instant::now() >= deadline => {
                return Err(RemoteError::Timeout {
                    id: instance.to_string(),
                    after: humantime::format_duration(timeout).to_string(),
                    state: format!("binding {binding} {}", summary.state.name()),
                    not_done: String::new(),
                })
            }
            _ => {}
        }
        tokio::time::sleep(BINDING_POLL).await;
        summary = remote.get(&["v1", "instances", instance, "bindings", binding]).await?;
    }
}

/// `hsm list-bindings` against the server.
pub async fn list_bindings(remote: &mut Remote, instance: &str, format: Format) -> Result<String, RemoteError> {
    let summaries: Vec<crate::binding::BindingSummary> = remote.get(&["v1", "instances", instance, "bindings"]).await?;
    Ok(output::bindings(&summaries, format))
}

/// `hsm delete-binding` against the server: `DELETE …/bindings/{bid}`, then polls until the
/// binding is gone (404).
pub async fn delete_binding(
    remote: &mut Remote,
    instance: &str,
    binding: &str,
    timeout: Duration,
    format: Format,
) -> Result<String, RemoteError> {
    use crate::binding::{BindingState, BindingSummary};
    let path = ["v1", "instances", instance, "bindings", binding];
    let summary: BindingSummary = remote.send(Method::DELETE, &path, &[], None).await?;
    let deadline = Instant::now() + timeout;
    loop {
        match remote.get::<BindingSummary>(&path).await {
            Err(RemoteError::Api { status: 404, .. }) => return Ok(output::binding(&summary, format)),
            Err(other) => return Err(other),
            Ok(BindingSummary { state: BindingState::Failed { message }, .. }) => {
                return Err(RemoteError::Failed {
                    id: instance.to_string(),
                    message: format!("binding {binding}: {message}"),
                })
            }
            Ok(current) if Instant::now() >= deadline => {
                return Err(RemoteError::Timeout {
                    id: instance.to_string(),
                    after: humantime::format_duration(timeout).to_string(),
                    state: format!("binding {binding} {}", current.state.name()),
                    not_done: String::new(),
                })
            }
            Ok(_) => tokio::time::sleep(BINDING_POLL).await,
        }
    }
}

/// `hsm get-credentials --binding` against the server (`GET …/bindings/{bid}/credentials`,
/// which needs the developer role).
pub async fn binding_credentials(
    remote: &mut Remote,
    instance: &str,
    binding: &str,
    format: Format,
) -> Result<String, RemoteError> {
    let values: BTreeMap<String, String> =
        remote.get(&["v1", "instances", instance, "bindings", binding, "credentials"]).await?;
    let credentials =
        output::BindingCredentials { instance_id: instance.to_string(), binding_id: binding.to_string(), values };
    Ok(output::binding_credentials(&credentials, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks_and_comments_are_skipped() {
        let mut reader = EventReader::default();
        assert!(reader.push(b": keep-alive\n\nevent: state\ndata: {\"a\"").is_empty());
        assert_eq!(reader.push(b":1}\r\n\r\ndata: x\ndata: y\n\n"), ["{\"a\":1}", "x\ny"]);
        assert!(reader.push(b"event: state\n").is_empty());
    }

    #[test]
    fn create_bodies_carry_only_what_was_given() {
        let request = Create { service_id: "stackato.hpe.redis".into(), ..Create::default() };
        assert_eq!(request.body(), serde_json::json!({"service_id": "stackato.hpe.redis"}));
        let request = Create {
            service_id: "stackato.hpe.mysql".into(),
            product_version: Some("5.7".into()),
            sdl_version: None,
            instance_id: Some("db".into()),
            parameters: BTreeMap::from([("MYSQL_PASSWORD".to_string(), "pw".to_string())]),
        };
        assert_eq!(
            request.body(),
            serde_json::json!({"service_id": "stackato.hpe.mysql", "product_version": "5.7", "instance_id": "db",
                "parameters": {"MYSQL_PASSWORD": "pw"}})
        );
    }
}
