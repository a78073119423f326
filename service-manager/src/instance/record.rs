//! The record each instance keeps on the cluster. There is no database: the record is the
//! instance's namespace — labels (service id, versions, managed-by) from the plan and
//! annotations for state, timestamps, the IDL (secret values removed), the last message and
//! the running operation. Secret values and generated objects live in the plan's Secret,
//! non-secret values in its ConfigMap; together they are the stored values a re-run or
//! upgrade resolves with ([`stored_values`]).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use sdl::resolve::Stored;
use sdl::Idl;
use serde::{Deserialize, Serialize};

use super::InstanceError;
use crate::cluster::Cluster;
use crate::labels;
use crate::plan::{CONFIG_MAP_NAME, GENERATED_KEY, RECORD_SECRET_NAME, SECRET_NAME};

/// Annotation: the instance's state.
pub const STATE: &str = "hsm.stratus.io/state";
/// Annotation: `<holder> <unix seconds>` while an operation runs.
pub const OPERATION: &str = "hsm.stratus.io/operation";
/// Annotation: a random id of the operation that created the namespace, so that the process
/// whose creation reply was lost recognises the namespace as its own.
pub const OPERATION_ID: &str = "hsm.stratus.io/operation-id";
/// Annotation: the IDL the instance was created or last changed with (no secret values).
pub const IDL: &str = "hsm.stratus.io/idl";
/// Annotation: creation time (RFC 3339).
pub const CREATED: &str = "hsm.stratus.io/created";
/// Annotation: time of the last change (RFC 3339).
pub const UPDATED: &str = "hsm.stratus.io/updated";
/// Annotation: why the last operation failed, or what was kept.
pub const MESSAGE: &str = "hsm.stratus.io/message";

/// The states of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Being created (or re-created after an interruption).
    Creating,
    /// Created; every workload was ready at the end of the last operation.
    Running,
    /// The last operation failed (see the message).
    Failed,
    /// Being upgraded or reconfigured.
    Upgrading,
    /// Being deleted.
    Deleting,
    /// Deleted except for its volume claims (`--keep-volumes`).
    Deleted,
    /// A state this version of hsm does not know.
    Unknown,
}

impl State {
    /// The annotation's text.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Running => "running",
            State::Failed => "failed",
            State::Upgrading => "upgrading",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Unknown => "unknown",
        }
    }

    /// Reads the annotation's text; anything else is [`State::Unknown`].
    pub fn parse(text: &str) -> State {
        [State::Creating, State::Running, State::Failed, State::Upgrading, State::Deleting, State::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(State::Unknown)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The running operation recorded on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// `host/pid` of the hsm process.
    pub holder: String,
    /// Unix seconds of the last renewal.
    pub since: u64,
}

/// What an instance's namespace says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Instance id (the namespace).
    pub instance_id: String,
    /// Service id.
    pub service_id: String,
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// State.
    pub state: State,
    /// Created (RFC 3339).
    pub created: String,
    /// Last changed (RFC 3339).
    pub updated: Option<String>,
    /// Failure or note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The running operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// The IDL (no secret values).
    #[serde(skip)]
    pub idl: Idl,
    /// Why the recorded IDL could not be read, when it could not.
    #[serde(skip)]
    pub idl_error: Option<String>,
    /// The id of the operation that created the namespace.
    #[serde(skip)]
    pub operation_id: Option<String>,
    /// The namespace's resourceVersion (for conditional updates).
    #[serde(skip)]
    pub resource_version: String,
    /// Whether the namespace is being deleted.
    #[serde(skip)]
    pub terminating: bool,
}

impl Record {
    /// The record in `namespace`, or `None` when hsm does not manage it.
    pub fn from_namespace(namespace: &Namespace) -> Option<Record> {
        let meta = &namespace.metadata;
        let labels = meta.labels.clone().unwrap_or_default();
        if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGER) {
            return None;
        }
        let annotations = meta.annotations.clone().unwrap_or_default();
        let operation = annotations.get(OPERATION).and_then(|text| {
            let (holder, since) = text.rsplit_once(' ')?;
            Some(Operation { holder: holder.to_string(), since: since.parse().ok()? })
        });
        let idl = annotations.get(IDL).map(|text| serde_json::from_str::<Idl>(text));
        Some(Record {
            instance_id: meta.name.clone().unwrap_or_default(),
            service_id: labels.get(labels::SERVICE_ID).cloned().unwrap_or_default(),
            product_version: labels.get(labels::VERSION).cloned().unwrap_or_default(),
            sdl_version: labels.get(labels::SDL_VERSION).cloned().unwrap_or_default(),
            state: annotations.get(STATE).map(|s| State::parse(s)).unwrap_or(State::Unknown),
            created: annotations
                .get(CREATED)
                .cloned()
                .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default(),
            updated: annotations.get(UPDATED).cloned(),
            message: annotations.get(MESSAGE).cloned(),
            operation,
            idl_error: idl.as_ref().and_then(|r| r.as_ref().err()).map(|e| e.to_string()),
            idl: idl.and_then(Result::ok).unwrap_or_default(),
            operation_id: annotations.get(OPERATION_ID).cloned(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some()
                || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 3339 now, to the second.
pub fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The IDL to record: every non-secret value given, with the instance id.
pub fn recorded_idl(idl: &Idl, sdl: &sdl::Sdl) -> String {
    let mut kept = idl.clone();
    kept.parameters.retain(|p| sdl.parameter(&p.name).is_some_and(|d| !d.secret));
    serde_json::to_string(&kept).expect("IDLs serialise")
}

/// What a re-run or upgrade resolves with: the recorded IDL's values, the secret values and
/// the generated objects. Those come from hsm's record Secret ([`RECORD_SECRET_NAME`]) when it
/// exists — so a `secret-parameters` deleted or edited by hand is put back as recorded — and
/// from `secret-parameters` otherwise (an instance created before the record existed, or whose
/// record was deleted). A record that cannot be read is an error, never an empty value:
/// regenerating would replace the instance's keys and passwords.
pub async fn stored_values(cluster: &Cluster, record: &Record) -> Result<Stored, InstanceError> {
    let corrupt = |what: String, error: String| InstanceError::Corrupt { id: record.instance_id.clone(), what, error };
    if let Some(error) = &record.idl_error {
        return Err(corrupt(format!("the namespace's {IDL} annotation"), error.clone()));
    }
    let mut stored = Stored::default();
    for p in &record.idl.parameters {
        stored.parameters.insert(p.name.clone(), p.value.clone());
    }
    if let Some(config) = cluster.get::<ConfigMap>(&record.instance_id, CONFIG_MAP_NAME).await? {
        stored.previous.extend(config.data.unwrap_or_default());
    }
    let mut secret = None;
    for name in [RECORD_SECRET_NAME, SECRET_NAME] {
        if let Some(found) = cluster.get::<Secret>(&record.instance_id, name).await? {
            secret = Some((name, found));
            break;
        }
    }
    if let Some((name, secret)) = secret {
        for (key, value) in secret.data.unwrap_or_default() {
            if key == GENERATED_KEY {
                let what = format!("Secret {name}'s {GENERATED_KEY}");
                let text = std::str::from_utf8(&value.0).map_err(|_| corrupt(what.clone(), "not UTF-8".into()))?;
                stored.generated = sdl::resolve::parse_generated(text, GENERATED_KEY)
                    .map_err(|e| corrupt(what.clone(), e.to_string()))?;
            } else {
                let text = String::from_utf8_lossy(&value.0).into_owned();
                stored.previous.insert(key.clone(), text.clone());
                stored.parameters.insert(key, text);
            }
        }
    }
    Ok(stored)
}

/// Records the outcome of an operation on the namespace — only what changed, so a re-run that
/// changes nothing moves no resourceVersion — and clears the operation annotation.
pub async fn finish(
    cluster: &Cluster,
    id: &str,
    before: Option<&Record>,
    state: State,
    message: Option<String>,
    idl_annotation: &str,
) -> Result<(), InstanceError> {
    let unchanged = before.is_some_and(|r| {
        r.state == state
            && r.message == message
            && r.operation.is_none()
            && serde_json::to_string(&r.idl).is_ok_and(|idl| idl == idl_annotation)
    });
    if !unchanged {
        let annotations = BTreeMap::from([
            (STATE.to_string(), Some(state.to_string())),
            (OPERATION.to_string(), None),
            (IDL.to_string(), Some(idl_annotation.to_string())),
            (UPDATED.to_string(), Some(rfc3339_now())),
            (MESSAGE.to_string(), message),
        ]);
        cluster.annotate_namespace(id, &annotations, None).await?;
    }
    Ok(())
}

/// Sets the instance's state annotation.
pub async fn set_state(cluster: &Cluster, id: &str, state: State) -> Result<(), InstanceError> {
    let annotations = BTreeMap::from([(STATE.to_string(), Some(state.to_string()))]);
    cluster.annotate_namespace(id, &annotations, None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_what_they_write() {
        for state in [State::Creating, State::Running, State::Failed, State::Upgrading, State::Deleting, State::Deleted]
        {
            assert_eq!(State::parse(state.as_str()), state);
        }
        assert_eq!(State::parse("paused"), State::Unknown);
        assert_eq!(serde_json::to_string(&State::Running).unwrap(), "\"running\"");
    }
}
