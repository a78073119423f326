//! The operation lock: two `hsm` processes (or an `hsm` and the controller) never change one
//! instance at once, and a killed one never wedges it. A first creation holds the namespace's
//! operation annotation, set atomically as the namespace is created; an operation on an
//! existing instance holds the Lease [`LEASE_NAME`] in its namespace. Holders renew every
//! 20 s; one that is a dead process on this host, or has not renewed for
//! [`LOCK_TTL_SECONDS`], may be taken over. A live holder is reported, never waited for.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use super::record::{unix_now, Operation, Record, OPERATION};
use super::InstanceError;
use crate::cluster::{Cluster, ClusterError};
use crate::labels;

/// An operation not renewed for this long is abandoned and may be taken over.
pub const LOCK_TTL_SECONDS: u64 = 60;
/// Name of the Lease that marks an operation on an existing instance.
pub const LEASE_NAME: &str = "hsm-operation";
/// How often a holder renews.
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// Who may run an operation on an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// Nobody holds it.
    Free,
    /// This process holds it.
    Mine,
    /// The holder died or stopped renewing: it may be taken over.
    Abandoned(String),
    /// Another live hsm holds it.
    HeldBy(String, u64),
}

/// Decides whether `me` may take the operation lock at `now` (unix seconds). `alive(pid)`
/// tells whether a process of this host is alive.
pub fn lock_state(operation: Option<&Operation>, me: &str, now: u64, alive: impl Fn(u32) -> bool) -> Lock {
    lock_state_within(operation, me, now, LOCK_TTL_SECONDS, alive)
}

/// [`lock_state`] for a lock that is abandoned once not renewed for `ttl` seconds (the
/// controller's leader Lease shares the decision with a shorter one).
pub fn lock_state_within(
    operation: Option<&Operation>,
    me: &str,
    now: u64,
    ttl: u64,
    alive: impl Fn(u32) -> bool,
) -> Lock {
    let Some(op) = operation else { return Lock::Free };
    if op.holder == me {
        return Lock::Mine;
    }
    let age = now.saturating_sub(op.since);
    let (my_host, _) = me.rsplit_once('/').unwrap_or((me, ""));
    let dead_here = op
        .holder
        .rsplit_once('/')
        .is_some_and(|(host, pid)| host == my_host && pid.parse().map(|p| !alive(p)).unwrap_or(false));
    if dead_here || age > ttl {
        Lock::Abandoned(op.holder.clone())
    } else {
        Lock::HeldBy(op.holder.clone(), age)
    }
}

/// `host/pid` of this process.
pub fn holder_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

/// Whether process `pid` of this host is alive.
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn lease(namespace: &str, me: &str) -> Lease {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.into()),
            lease_duration_seconds: Some(LOCK_TTL_SECONDS as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

/// Takes the operation on an existing instance: its Lease, unless another live hsm holds it
/// (or is still creating the instance for the first time).
pub async fn take(cluster: &Cluster, record: &Record, me: &str) -> Result<(), InstanceError> {
    let id = &record.instance_id;
    let busy = |holder: String, age: u64| InstanceError::Busy { id: id.clone(), holder, age };
    if let Lock::HeldBy(holder, age) = lock_state(record.operation.as_ref(), me, unix_now(), process_alive) {
        return Err(busy(holder, age));
    }
    let wanted = lease(id, me);
    if cluster.create(id, &wanted).await?.is_some() {
        return Ok(());
    }
    let Some(current) = cluster.get::<Lease>(id, LEASE_NAME).await? else {
        // Released in between: one more try.
        return match cluster.create(id, &wanted).await? {
            Some(_) => Ok(()),
            None => Err(busy("unknown".into(), 0)),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let held = Operation {
        holder: spec.holder_identity.clone().unwrap_or_default(),
        since: spec.renew_time.as_ref().map(|t| t.0.as_second().max(0) as u64).unwrap_or(0),
    };
    match lock_state(Some(&held), me, unix_now(), process_alive) {
        Lock::HeldBy(holder, age) => Err(busy(holder, age)),
        Lock::Abandoned(holder) => {
            tracing::info!(instance = %id, %holder, "taking over an abandoned operation");
            let mut taken = current;
            taken.spec = wanted.spec;
            match cluster.replace(id, &taken).await {
                Ok(_) => Ok(()),
                Err(ClusterError::Api { code: 409, .. }) => Err(busy("unknown".into(), 0)),
                Err(other) => Err(other.into()),
            }
        }
        Lock::Free | Lock::Mine => Ok(()),
    }
}

/// Gives the operation on an existing instance back.
pub async fn release(cluster: &Cluster, id: &str) -> Result<(), InstanceError> {
    Ok(cluster.delete::<Lease>(id, LEASE_NAME).await?)
}

/// Gives the lock back after a failure; a failure to do so only delays the next operation
/// until the lock expires, so it is logged, not returned.
pub async fn release_quietly(cluster: &Cluster, id: &str) {
    if let Err(error) = release(cluster, id).await {
        tracing::warn!(%error, "could not release the operation lock");
    }
}

/// What a [`Renewer`] renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The namespace's operation annotation (a first creation).
    Annotation,
    /// The Lease (an operation on an existing instance).
    Lease,
}

/// Keeps an operation alive while it runs; stops when dropped.
pub struct Renewer(tokio::task::JoinHandle<()>);

impl Renewer {
    /// Starts renewing `held` for `me` on instance `namespace`.
    pub fn start(cluster: &Cluster, namespace: &str, me: &str, held: Held) -> Renewer {
        let (cluster, namespace, me) = (cluster.clone(), namespace.to_string(), me.to_string());
        Renewer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let renewed = match held {
                    Held::Lease => {
                        let now = serde_json::to_value(MicroTime(k8s_openapi::jiff::Timestamp::now()))
                            .expect("times serialise");
                        let patch = serde_json::json!({"spec": {"renewTime": now}});
                        cluster.merge_patch::<Lease>(&namespace, LEASE_NAME, &patch).await.map(|_| ())
                    }
                    Held::Annotation => {
                        let annotations =
                            BTreeMap::from([(OPERATION.to_string(), Some(format!("{me} {}", unix_now())))]);
                        cluster.annotate_namespace(&namespace, &annotations, None).await.map(|_| ())
                    }
                };
                if let Err(error) = renewed {
                    tracing::warn!(%error, "could not renew the operation");
                }
            }
        }))
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_decisions() {
        let op = |holder: &str, since| Some(Operation { holder: holder.into(), since });
        assert_eq!(lock_state(None, "h/1", 100, |_| true), Lock::Free);
        assert_eq!(lock_state(op("h/1", 90).as_ref(), "h/1", 100, |_| true), Lock::Mine);
        assert_eq!(lock_state(op("h/2", 90).as_ref(), "h/1", 100, |_| true), Lock::HeldBy("h/2".into(), 10));
        assert_eq!(
            lock_state(op("h/2", 90).as_ref(), "h/1", 100, |_| false),
            Lock::Abandoned("h/2".into()),
            "dead process on this host"
        );
        assert_eq!(
            lock_state(op("other/2", 90).as_ref(), "h/1", 100, |_| false),
            Lock::HeldBy("other/2".into(), 10),
            "other hosts' processes are not checked"
        );
        assert_eq!(
            lock_state(op("other/2", 10).as_ref(), "h/1", 100, |_| true),
            Lock::Abandoned("other/2".into()),
            "not renewed for over a minute"
        );
    }
}
