//! What the converger remembers so that an instance with nothing changed is not written to.
//!
//! Every object of an instance that the controller watches passes through [`Seen::observe`]
//! on its way to trigger a reconcile: its resourceVersion (a deletion carries a new one) is
//! kept per instance. After an apply that left an instance ready, the reconcile remembers
//! the [`Inputs`] it started from: the Instance's generation, a digest of its secret
//! parameters' values and a digest of its objects' resourceVersions as seen *before* the
//! apply. The next reconcile of that instance ([`decide`]) skips the apply, the operation
//! lock and the status write when its inputs are the same and the status says ready at this
//! generation — so resyncs and the echoes of the controller's own writes cost no writes. Any
//! change of an object (drift: deleted, scaled, edited, or a readiness change), of the spec
//! or of a secret parameter applies as before. The memory is the process's own: a new leader
//! or a restarted controller applies every instance once.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Resource;

/// The resourceVersions of every watched object of every instance, as the watches saw them.
#[derive(Debug, Default)]
pub struct Seen {
    objects: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Seen {
    /// Notes `object` (of instance `instance`) as its latest watch event shows it.
    pub fn observe<K: Resource<DynamicType = ()>>(&self, instance: &str, object: &K) {
        let meta = object.meta();
        let key = format!(
            "{}/{}/{}",
            K::kind(&()),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        );
        let version = meta.resource_version.clone().unwrap_or_default();
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.entry(instance.to_string()).or_default().insert(key, version);
    }

    /// A digest of what is known of instance `instance`'s objects now.
    pub fn digest(&self, instance: &str) -> u64 {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        digest(&objects.get(instance))
    }

    /// Forgets instance `instance` (it was deleted).
    pub fn forget(&self, instance: &str) {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).remove(instance);
    }
}

/// A digest of `value` (for this process only: the memory is never stored).
pub fn digest(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// What an apply of an instance starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// The Instance's `metadata.generation` (its spec).
    pub generation: Option<i64>,
    /// Digest of the secret parameters' values.
    pub values: u64,
    /// Digest of the instance's objects' resourceVersions ([`Seen::digest`]).
    pub objects: u64,
}

/// An apply of an instance that succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Converged {
    /// What it started from.
    pub inputs: Inputs,
    /// When.
    pub at: Instant,
    /// Whether it left the instance ready.
    pub ready: bool,
}

/// What a reconcile of a live instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Plan, take the lock, apply, read readiness, write the status if it changed.
    Apply,
    /// Nothing changed since the last apply left it ready: write nothing, look again later.
    Skip,
    /// Not ready yet, applied moments ago from the same spec and values: read the workloads'
    /// readiness only (the objects' changes are most likely their statuses moving); apply
    /// again once they are all ready, or when the recheck is due.
    Readiness,
}

/// Whether to apply. Skip only when the last apply (`last`, `age` ago) left the instance
/// ready from the same inputs as `now`, its status still says ready at this generation
/// (`ready`), and it was not longer ago than `reapply_every` (a re-apply now and then repairs
/// what a watch could have missed while disconnected). Only read readiness when the last
/// apply left it not ready, from the same spec and secret values, less than `recheck` ago.
pub fn decide(
    last: Option<&Converged>,
    age: Duration,
    now: &Inputs,
    ready: bool,
    reapply_every: Duration,
    recheck: Duration,
) -> Decision {
    match last {
        Some(last) if last.ready && last.inputs == *now && ready && age < reapply_every => Decision::Skip,
        Some(last)
            if !last.ready
                && last.inputs.generation == now.generation
                && last.inputs.values == now.values
                && age < recheck =>
        {
            Decision::Readiness
        }
        _ => Decision::Apply,
    }
}

/// The remembered applies, per instance.
#[derive(Debug, Default)]
pub struct Memory {
    converged: Mutex<HashMap<String, Converged>>,
}

impl Memory {
    /// The last apply that left `instance` ready, if remembered.
    pub fn get(&self, instance: &str) -> Option<Converged> {
        self.converged.lock().unwrap_or_else(|e| e.into_inner()).get(instance).copied()
    }

    /// Remembers that an apply from `inputs` succeeded, leaving `instance` ready or not.
    pub fn remember(&self, instance: &str, inputs: Inputs, ready: bool) {
        let mut converged = self.converged.lock().unwrap_or_else(|e| e.into_inner());
        converged.insert(instance.to_string(), Converged { inputs, at: Instant::now(), ready });
    }

    /// Forgets `instance`: its next reconcile applies.
    pub fn forget(&self, instance: &str) {
        self.converged.lock().unwrap_or_else(|e| e.into_inner()).remove(instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::ObjectMeta;

    const HOUR: Duration = Duration::from_secs(3600);

    fn inputs(generation: i64, values: u64, objects: u64) -> Inputs {
        Inputs { generation: Some(generation), values, objects }
    }

    const RECHECK: Duration = Duration::from_secs(10);

    fn applied(inputs: Inputs, ready: bool) -> Converged {
        Converged { inputs, at: Instant::now(), ready }
    }

    fn decide_now(last: Option<&Converged>, age: Duration, now: &Inputs, ready: bool) -> Decision {
        decide(last, age, now, ready, HOUR, RECHECK)
    }

    #[test]
    fn nothing_changed_and_ready_is_skipped() {
        let last = applied(inputs(1, 7, 9), true);
        assert_eq!(decide_now(Some(&last), Duration::ZERO, &inputs(1, 7, 9), true), Decision::Skip);
    }

    #[test]
    fn any_change_or_no_memory_applies() {
        let last = applied(inputs(1, 7, 9), true);
        let now = Duration::from_secs(5);
        assert_eq!(decide_now(None, now, &inputs(1, 7, 9), true), Decision::Apply, "a new leader or a restart");
        assert_eq!(decide_now(Some(&last), now, &inputs(2, 7, 9), true), Decision::Apply, "a spec change");
        assert_eq!(decide_now(Some(&last), now, &inputs(1, 8, 9), true), Decision::Apply, "a secret parameter");
        assert_eq!(decide_now(Some(&last), now, &inputs(1, 7, 10), true), Decision::Apply, "an object changed");
        assert_eq!(decide_now(Some(&last), now, &inputs(1, 7, 9), false), Decision::Apply, "status not ready");
        assert_eq!(decide_now(Some(&last), HOUR, &inputs(1, 7, 9), true), Decision::Apply, "re-applied now and then");
    }

    #[test]
    fn a_creating_instance_reads_readiness_between_applies() {
        let last = applied(inputs(1, 7, 9), false);
        let soon = Duration::from_secs(2);
        // Its objects moved (statuses): readiness only, until the recheck is due.
        assert_eq!(decide_now(Some(&last), soon, &inputs(1, 7, 10), false), Decision::Readiness);
        assert_eq!(decide_now(Some(&last), RECHECK, &inputs(1, 7, 10), false), Decision::Apply);
        // A spec or secret change applies at once.
        assert_eq!(decide_now(Some(&last), soon, &inputs(2, 7, 9), false), Decision::Apply);
        assert_eq!(decide_now(Some(&last), soon, &inputs(1, 8, 9), false), Decision::Apply);
    }

    fn deployment(name: &str, version: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("db".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_digest_follows_every_object_of_the_instance_and_only_its_own() {
        let seen = Seen::default();
        seen.observe("db", &deployment("mysql", "10"));
        seen.observe("db", &deployment("proxy", "11"));
        let before = seen.digest("db");
        // A relist that shows the same versions changes nothing.
        seen.observe("db", &deployment("mysql", "10"));
        assert_eq!(seen.digest("db"), before);
        // Another instance's objects do not count.
        seen.observe("other", &deployment("mysql", "12"));
        assert_eq!(seen.digest("db"), before);
        // A change (or a deletion, which carries a new version) does.
        seen.observe("db", &deployment("mysql", "13"));
        assert_ne!(seen.digest("db"), before);
        seen.forget("db");
        assert_eq!(seen.digest("db"), digest(&None::<&BTreeMap<String, String>>));
    }

    #[test]
    fn memory_remembers_and_forgets() {
        let memory = Memory::default();
        assert!(memory.get("db").is_none());
        memory.remember("db", inputs(1, 2, 3), true);
        assert_eq!(memory.get("db").unwrap().inputs, inputs(1, 2, 3));
        memory.forget("db");
        assert!(memory.get("db").is_none());
    }
}
