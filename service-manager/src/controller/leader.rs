//! Leader election: of the `hsm controller` replicas, only the holder of the
//! coordination.k8s.io Lease [`LEASE_NAME`] reconciles. The holder renews it every
//! [`RENEW_EVERY`]; one that has not renewed for [`LEASE_SECONDS`] (or is a dead process on
//! this host) may be taken over, with the same decision as the operation lock
//! ([`lock_state_within`]). Every write carries the resourceVersion that was read, so of two
//! candidates that read the same Lease only one write succeeds: two never both win.
//!
//! A leader that cannot renew within [`RENEW_DEADLINE`] stops reconciling (before its Lease
//! can have expired for the others); one that shuts down gracefully clears the holder, so
//! another replica takes over at once instead of after the Lease expires.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;

use crate::instance::lock::{lock_state_within, process_alive, Lock};
use crate::instance::record::{unix_now, Operation};
use crate::labels;

/// Name of the controller's Lease.
pub const LEASE_NAME: &str = "hsm-controller";
/// How long a Lease not renewed stays its holder's.
pub const LEASE_SECONDS: u64 = 15;
/// How often the leader renews, and a replica standing by tries again.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A leader that has not renewed for this long stops (shorter than [`LEASE_SECONDS`], so it
/// has stopped before another may take over).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What a candidate does with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder is gone: take it.
    Acquire {
        /// The holder it is taken over from, if any.
        from: Option<String>,
    },
    /// It is ours: renew it.
    Renew,
    /// Another live replica holds it: stand by.
    Wait {
        /// Its holder.
        holder: String,
    },
}

/// Decides what `me` does at `now` (unix seconds) with the Lease whose spec is `spec` (`None`
/// when there is no Lease). `alive(pid)` tells whether a process of this host is alive.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: u64, alive: impl Fn(u32) -> bool) -> Decision {
    let holder = spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty());
    let Some(holder) = holder else { return Decision::Acquire { from: None } };
    let spec = spec.expect("a holder is in a spec");
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    let since = renewed.map(|t| t.0.as_second().max(0) as u64).unwrap_or(0);
    let ttl = spec.lease_duration_seconds.map(|s| s.max(1) as u64).unwrap_or(LEASE_SECONDS);
    let operation = Operation { holder, since };
    match lock_state_within(Some(&operation), me, now, ttl, alive) {
        Lock::Free => Decision::Acquire { from: None },
        Lock::Mine => Decision::Renew,
        Lock::Abandoned(holder) => Decision::Acquire { from: Some(holder) },
        Lock::HeldBy(holder, _) => Decision::Wait { holder },
    }
}

/// The outcome of one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This replica holds the Lease (acquired or renewed).
    Leading,
    /// Another holds it (or won the race for it).
    Standby(String),
}

/// One replica's candidacy for the Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    me: String,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

impl Elector {
    /// A candidate `me` for the Lease in `namespace`.
    pub fn new(client: Client, namespace: &str, me: &str) -> Elector {
        Elector { api: Api::namespaced(client, namespace), me: me.to_string() }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.me
    }

    /// Reads the Lease and acquires, renews or leaves it as [`decide`] says; a write that
    /// loses a race (409) is [`Outcome::Standby`].
    pub async fn try_lead(&self) -> Result<Outcome, kube::Error> {
        let params = PostParams::default();
        let Some(current) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    labels: Some(BTreeMap::from([(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string())])),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.me.clone()),
                    lease_duration_seconds: Some(LEASE_SECONDS as i32),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&params, &lease).await {
                Ok(_) => Ok(Outcome::Leading),
                Err(error) if conflict(&error) => Ok(Outcome::Standby("unknown".into())),
                Err(error) => Err(error),
            };
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        match decide(current.spec.as_ref(), &self.me, unix_now(), process_alive) {
            Decision::Wait { holder } => return Ok(Outcome::Standby(holder)),
            Decision::Renew => spec.renew_time = Some(now()),
            Decision::Acquire { from } => {
                if let Some(from) = from {
                    tracing::info!(%from, "taking over the controller Lease");
                }
                spec.holder_identity = Some(self.me.clone());
                spec.lease_duration_seconds = Some(LEASE_SECONDS as i32);
                spec.acquire_time = Some(now());
                spec.renew_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        // The resourceVersion read stays in the metadata: a write after anyone else's fails.
        let wanted = Lease { metadata: current.metadata, spec: Some(spec) };
        match self.api.replace(LEASE_NAME, &params, &wanted).await {
            Ok(_) => Ok(Outcome::Leading),
            Err(error) if conflict(&error) => Ok(Outcome::Standby("unknown".into())),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up (clears its holder) if this candidate still holds it.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(current) = self.api.get_opt(LEASE_NAME).await? else { return Ok(()) };
        let mut spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        let wanted = Lease { metadata: current.metadata, spec: Some(spec) };
        match self.api.replace(LEASE_NAME, &PostParams::default(), &wanted).await {
            Ok(_) => Ok(()),
            // Someone else wrote it meanwhile: it is not ours to clear any more.
            Err(error) if conflict(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed: i64, ttl: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: ttl,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn no_lease_or_no_holder_is_acquired() {
        assert_eq!(decide(None, "h/1", 100, |_| true), Decision::Acquire { from: None });
        assert_eq!(decide(Some(&spec(None, 99, Some(15))), "h/1", 100, |_| true), Decision::Acquire { from: None });
        assert_eq!(decide(Some(&spec(Some(""), 99, Some(15))), "h/1", 100, |_| true), Decision::Acquire { from: None });
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(decide(Some(&spec(Some("h/1"), 99, Some(15))), "h/1", 100, |_| true), Decision::Renew);
        // Even late: nobody else took it, so it is still ours.
        assert_eq!(decide(Some(&spec(Some("h/1"), 10, Some(15))), "h/1", 100, |_| true), Decision::Renew);
    }

    #[test]
    fn a_live_holder_is_waited_for_until_its_lease_expires() {
        let held = spec(Some("other/2"), 90, Some(15));
        assert_eq!(decide(Some(&held), "h/1", 100, |_| true), Decision::Wait { holder: "other/2".into() });
        assert_eq!(decide(Some(&held), "h/1", 105, |_| true), Decision::Wait { holder: "other/2".into() });
        assert_eq!(decide(Some(&held), "h/1", 106, |_| true), Decision::Acquire { from: Some("other/2".into()) });
        // The Lease's own duration counts; without one, the default.
        let long = spec(Some("other/2"), 90, Some(60));
        assert_eq!(decide(Some(&long), "h/1", 106, |_| true), Decision::Wait { holder: "other/2".into() });
        let unset = spec(Some("other/2"), 90, None);
        assert_eq!(decide(Some(&unset), "h/1", 106, |_| true), Decision::Acquire { from: Some("other/2".into()) });
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over_at_once() {
        let held = spec(Some("h/2"), 99, Some(15));
        assert_eq!(decide(Some(&held), "h/1", 100, |_| false), Decision::Acquire { from: Some("h/2".into()) });
        assert_eq!(decide(Some(&held), "h/1", 100, |_| true), Decision::Wait { holder: "h/2".into() });
    }

    #[test]
    fn the_leader_stops_before_its_lease_can_expire() {
        assert!(RENEW_EVERY < RENEW_DEADLINE);
        assert!(RENEW_DEADLINE < Duration::from_secs(LEASE_SECONDS));
    }
}
