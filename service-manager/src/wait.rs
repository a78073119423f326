//! Waiting until workloads are ready and jobs complete: one watch (kube's runtime watcher)
//! per kind and namespace, readiness from [`crate::readiness`], progress to a
//! [`Progress`]. Bounded by the cluster's deadline ([`Cluster::with_timeout`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;

use crate::cluster::{Cluster, ClusterError};
use crate::objects::{Kind, KubeObject};
use crate::progress::Progress;
use crate::readiness::Readiness;

/// Why waiting ended without everything ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// A call or a watch failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A job failed.
    #[error("job \"{name}\" failed: {message}")]
    JobFailed {
        /// The job.
        name: String,
        /// Its failure condition.
        message: String,
    },
    /// The deadline passed.
    #[error("timed out after {seconds}s waiting for {what}:\n{details}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// What was waited for.
        what: String,
        /// Each object not ready, with its latest condition and event.
        details: String,
    },
}

/// Waits until every Deployment, StatefulSet and DaemonSet among `objects` is ready and every
/// Job complete; `what` names the wait in a timeout. A failed job ends the wait at once.
pub async fn until_ready<'a>(
    cluster: &Cluster,
    objects: impl IntoIterator<Item = &'a KubeObject>,
    what: &str,
    progress: &dyn Progress,
) -> Result<(), WaitError> {
    let mut pending: BTreeMap<(Kind, String, String), Readiness> = objects
        .into_iter()
        .filter(|o| o.kind().is_awaited())
        .map(|o| {
            let namespace = o.namespace().unwrap_or_default().to_string();
            let readiness = Readiness::unknown(o.kind(), &namespace, o.name());
            ((o.kind(), namespace, o.name().to_string()), readiness)
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let groups: BTreeSet<(Kind, String)> = pending.keys().map(|(k, ns, _)| (*k, ns.clone())).collect();
    let mut events = futures::stream::select_all(groups.iter().map(|(kind, ns)| cluster.readiness(*kind, ns)));
    loop {
        if pending.values().all(|r| r.done) {
            return Ok(());
        }
        let next = match cluster.deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline, events.next()).await,
            None => Ok(events.next().await),
        };
        let readiness = match next {
            Err(_) => return Err(timeout(cluster, &pending, what).await),
            Ok(None) => {
                return Err(ClusterError::Transport { action: "watch".into(), message: "the watch ended".into() }.into())
            }
            Ok(Some(result)) => result?,
        };
        let key = (readiness.kind, readiness.namespace.clone(), readiness.name.clone());
        if let Some(slot) = pending.get_mut(&key) {
            if let Some(message) = &readiness.failed {
                return Err(WaitError::JobFailed { name: readiness.name.clone(), message: message.clone() });
            }
            if *slot != readiness {
                *slot = readiness;
                let statuses: Vec<Readiness> = pending.values().cloned().collect();
                progress.waiting(&statuses);
            }
        }
    }
}

/// The timeout error: each object not ready with its status and the newest event about it
/// (image pulls, scheduling, crashes), asked with a short bound of its own.
async fn timeout(cluster: &Cluster, pending: &BTreeMap<(Kind, String, String), Readiness>, what: &str) -> WaitError {
    let asking = cluster.with_timeout(Duration::from_secs(5));
    let namespaces: BTreeSet<&str> = pending.values().filter(|r| !r.done).map(|r| r.namespace.as_str()).collect();
    let mut events = Vec::new();
    for namespace in namespaces {
        events.extend(asking.list::<Event>(namespace, None).await.unwrap_or_default());
    }
    let details: Vec<String> = pending
        .values()
        .filter(|r| !r.done)
        .map(|r| {
            let status = r.condition.clone().unwrap_or_else(|| "no status reported yet".into());
            let event = latest_event(&events, &r.namespace, &r.name)
                .map(|e| format!("; latest event: {e}"))
                .unwrap_or_default();
            format!("  {} {}: {}/{} ready; {status}{event}", r.kind, r.name, r.ready, r.desired)
        })
        .collect();
    WaitError::Timeout {
        seconds: cluster.timeout().map(|t| t.as_secs()).unwrap_or_default(),
        what: what.to_string(),
        details: details.join("\n"),
    }
}

/// The newest event about `namespace/name` or its pods (`<name>-...`), as `Reason: message`.
pub fn latest_event(events: &[Event], namespace: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}-");
    events
        .iter()
        .filter(|e| e.metadata.namespace.as_deref().is_none_or(|ns| ns == namespace))
        .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n == name || n.starts_with(&prefix)))
        .max_by_key(|e| {
            // Core events carry lastTimestamp (whole seconds); those recorded through
            // events.k8s.io (the scheduler's) only eventTime (microseconds). Compared by the
            // second, then by the order the server stored them in.
            let at = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.first_timestamp.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            (at.map(|t| t.as_second()), e.metadata.resource_version.as_ref().and_then(|v| v.parse::<u64>().ok()))
        })
        .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, last: Option<&str>, event_time: Option<&str>, rv: u64) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("e{rv}"), "namespace": "ns", "resourceVersion": rv.to_string()},
            "involvedObject": {"kind": "Pod", "name": "db-0", "namespace": "ns"},
            "reason": reason, "message": "m", "lastTimestamp": last, "eventTime": event_time,
        }))
        .unwrap()
    }

    #[test]
    fn the_latest_event_is_by_the_second_then_by_storage_order() {
        // A kubelet's event (whole seconds) stored after the scheduler's (microseconds) in the
        // same second is the newer one; a later second wins whatever the order.
        let scheduled = event("Scheduled", None, Some("2026-01-01T00:00:10.900000Z"), 5);
        let pulling = event("Failed", Some("2026-01-01T00:00:10Z"), None, 6);
        assert_eq!(latest_event(&[scheduled.clone(), pulling.clone()], "ns", "db").unwrap(), "Failed: m");
        let later = event("Started", None, Some("2026-01-01T00:00:11.000001Z"), 4);
        assert_eq!(latest_event(&[scheduled, pulling, later], "ns", "db").unwrap(), "Started: m");
        assert_eq!(latest_event(&[], "ns", "db"), None);
    }
}
