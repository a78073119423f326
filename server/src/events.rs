//! `GET /v1/instances/{id}/events`: an instance's state as server-sent events. An event
//! `state` carries the instance's detail (as `GET /v1/instances/{id}`, no secret value) at once
//! and again whenever it changes, driven by a watch on the instance's `Instance`
//! (`kube::runtime::watcher`); the stream ends after a terminal state: running or failed (for
//! the spec the converger was last given), or deleted. An instance without an `Instance`
//! (created without the converger) has nothing to watch: its one event is its detail. A
//! stream also ends when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use service_manager::declared::{self, Followed};
use service_manager::resource::Instance;
use tokio::sync::mpsc;

use crate::api::{self, InstanceDetail, InstanceState};
use crate::error::{self, ApiError};
use crate::routes::ApiPath;
use crate::serve::AppState;
use crate::writes::cluster;

/// The SSE event name of every event.
pub const EVENT: &str = "state";

/// One event of the stream as the OpenAPI document describes it (OpenAPI 3.1 describes each
/// event of a `text/event-stream`): the name [`EVENT`] and, as `data`, the JSON of an
/// [`InstanceDetail`] (`contentMediaType` and `contentSchema`, so that a client or a checker
/// such as schemathesis can read and check it).
pub struct InstanceEvent;

impl utoipa::PartialSchema for InstanceEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::extensions::Extensions;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let detail = serde_json::json!({"$ref": "#/components/schemas/InstanceDetail"});
        ObjectBuilder::new()
            .description(Some("A server-sent event: its name and its data"))
            .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([EVENT])))
            .required("event")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The instance's detail, as JSON"))
                    .content_media_type("application/json")
                    .extensions(Some(Extensions::from_iter([("contentSchema", detail)]))),
            )
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for InstanceEvent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((InstanceDetail::name().into(), <InstanceDetail as utoipa::PartialSchema>::schema()));
        <InstanceDetail as utoipa::ToSchema>::schemas(schemas);
    }
}

/// How often the stream looks whether its client went away while nothing changes.
const CLIENT_CHECK: Duration = Duration::from_secs(15);

/// Whether the converger is done with `instance`'s latest spec: it runs or it failed.
pub fn settled(instance: &Instance) -> bool {
    if instance.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let id = instance.metadata.name.as_deref().unwrap_or_default();
    matches!(
        declared::follow(id, instance.status.as_ref(), instance.metadata.generation),
        Followed::Running(_) | Followed::Failed(..)
    )
}

/// `detail` once its instance is gone.
pub fn gone(mut detail: InstanceDetail) -> InstanceDetail {
    detail.instance.state = InstanceState::Deleted;
    detail.instance.operation = None;
    detail.components.clear();
    detail.service_locations.clear();
    detail
}

fn event(detail: &InstanceDetail) -> Event {
    Event::default().event(EVENT).json_data(detail).unwrap_or_else(|_| Event::default().event(EVENT).data("{}"))
}

/// Follows instance `id` from its detail `first`, sending each changed detail to `sender`
/// until a terminal state or until the client goes away.
async fn follow(state: AppState, id: String, first: InstanceDetail, sender: mpsc::Sender<Event>) {
    let Some(cluster) = state.cluster() else { return };
    let api: Api<Instance> = Api::all(cluster.client());
    let config = watcher::Config::default().fields(&format!("metadata.name={id}"));
    let mut changes = watcher(api, config).default_backoff().boxed();
    let mut last = first;
    loop {
        let change = tokio::select! {
            change = changes.next() => change,
            _ = sender.closed() => return,
            _ = state.stopped() => return,
            _ = tokio::time::sleep(CLIENT_CHECK) => continue,
        };
        let (instance, deleted) = match change {
            Some(Ok(watcher::Event::Apply(instance) | watcher::Event::InitApply(instance))) => (Some(instance), false),
            Some(Ok(watcher::Event::Delete(_))) => (None, true),
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
            Some(Err(error)) => {
                tracing::debug!(instance = %id, %error, "watching the Instance");
                continue;
            }
            None => return,
        };
        // Each call bounded by the request timeout from now.
        let cluster = state.cluster().unwrap_or_else(|| cluster.clone());
        let detail = match (deleted, declared::get(&cluster, &id).await) {
            (true, _) | (false, Err(service_manager::instance::InstanceError::NotFound(_))) => gone(last.clone()),
            (false, Ok(detail)) => api::instance_detail(&detail),
            (false, Err(error)) => {
                tracing::debug!(instance = %id, %error, "reading the instance");
                continue;
            }
        };
        let terminal =
            deleted || detail.instance.state == InstanceState::Deleted || instance.as_ref().is_some_and(settled);
        if detail != last || terminal {
            if sender.send(event(&detail)).await.is_err() {
                return;
            }
            last = detail;
        }
        if terminal {
            return;
        }
    }
}

/// An instance's state as server-sent events: an event `state` whose data is the instance's
/// detail, at once and on every change, until it runs, fails or is deleted.
#[utoipa::path(
    get, path = "/v1/instances/{id}/events", tag = "instances",
    params(("id" = String, Path, description = "Instance id (a DNS label)")),
    responses(
        (status = 200, description = "A stream of server-sent events named `state`, each one's data the instance's detail (as GET /v1/instances/{id}); it ends after running, failed or deleted", content_type = "text/event-stream", body = InstanceEvent),
        (status = 400, description = "Malformed instance id", body = ApiError),
        (status = 404, description = "No such instance", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn instance_events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = error::instance_id(&id)?.to_string();
    let cluster = cluster(&state)?;
    let first = api::instance_detail(&declared::get(&cluster, &id).await?);
    let instance = declared::instance(&cluster, &id).await.ok().flatten();
    let (sender, receiver) = mpsc::channel(16);
    let _ = sender.send(event(&first)).await;
    let watched = instance.as_ref().is_some_and(|i| !settled(i));
    let done = first.instance.state == InstanceState::Deleted;
    if watched && !done {
        tokio::spawn(follow(state, id, first, sender));
    }
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_manager::resource::{InstanceSpec, InstanceStatus};

    fn instance(generation: i64, observed: Option<i64>, state: service_manager::resource::InstanceState) -> Instance {
        let mut instance =
            Instance::new("a", InstanceSpec { service_id: "stackato.hpe.redis".into(), ..Default::default() });
        instance.metadata.generation = Some(generation);
        instance.status = observed.map(|observed| InstanceStatus {
            observed_generation: Some(observed),
            state: Some(state),
            ..InstanceStatus::default()
        });
        instance
    }

    #[test]
    fn a_stream_ends_once_the_latest_spec_runs_or_failed() {
        use service_manager::resource::InstanceState::*;
        assert!(settled(&instance(2, Some(2), Running)));
        assert!(settled(&instance(2, Some(2), Failed)));
        assert!(!settled(&instance(2, Some(2), Creating)));
        // Running, but the converger has not seen the latest change yet.
        assert!(!settled(&instance(3, Some(2), Running)));
        assert!(!settled(&instance(1, None, Running)));
        let mut deleting = instance(2, Some(2), Running);
        deleting.metadata.deletion_timestamp = Some(k8s_time());
        assert!(!settled(&deleting));
    }

    fn k8s_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap())
    }
}
