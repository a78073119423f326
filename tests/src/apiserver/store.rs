//! The object store and its semantics: uid, resourceVersion (bumped only on real change),
//! generation, creationTimestamp, create/replace/merge-patch/server-side apply/delete, label and
//! field selectors, the event log behind watches, namespace termination, and the controller
//! that makes workloads ready, jobs finish and load balancers get addresses.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::resources::{ResourceType, RESOURCES};

/// Events kept for watches that resume from a resourceVersion.
const EVENT_LOG: usize = 20_000;

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `plural.group` of its type.
    pub resource: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// The key of `name` of type `rt` in `namespace`.
    pub fn new(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            resource: rt.qualified(),
            namespace: if rt.namespaced { namespace.into() } else { String::new() },
            name: name.into(),
        }
    }
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion after the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// To which object.
    pub key: Key,
    /// The object after the change (before, for deletions).
    pub object: Value,
}

/// An API error, rendered as a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Details: name and kind.
    pub details: Option<(String, String)>,
    /// Field causes (`{reason, message, field}`) of an Invalid error.
    pub causes: Vec<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, causes: Vec::new() }
    }

    /// 404 for `name` of type `rt`.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: Some((name.into(), rt.plural.into())),
            ..Self::new(404, "NotFound", format!("{} \"{name}\" not found", rt.qualified()))
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml; got {content_type}"))
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some((name, kind)) = &self.details {
            status["details"] = json!({"name": name, "kind": kind});
            if !self.causes.is_empty() {
                status["details"]["causes"] = json!(self.causes);
            }
        }
        status
    }
}

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How long after a spec change workloads report ready, jobs finish and load balancers get
    /// an address.
    pub ready_after: Duration,
    /// Jobs with these names fail instead of completing.
    pub failing_jobs: BTreeSet<String>,
    /// Nodes whose kubelets register with the server. Like real ones they are `NotReady`
    /// until a network plugin runs: a ready DaemonSet whose pods mount the host's
    /// `/etc/cni/net.d`.
    pub kubelets: Vec<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            ready_after: Duration::from_millis(200),
            failing_jobs: BTreeSet::new(),
            kubelets: Vec::new(),
        }
    }
}

/// A parsed label selector requirement.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A label selector (`a=b,c!=d,e in (x,y),!f,g`) plus a field selector of `=`, `==` and `!=`
/// terms on dotted paths (`metadata.name`, `spec.nodeName`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Vec<Requirement>,
    /// `(path, value, equal)`.
    fields: Vec<(String, String, bool)>,
}

/// The string at dotted `path` in `object` (empty when absent).
fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for part in path.split('.') {
        current = &current[part];
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Selector {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub fn parse(label_selector: Option<&str>, field_selector: Option<&str>) -> Result<Selector, ApiError> {
        let mut selector = Selector::default();
        if let Some(text) = label_selector.filter(|t| !t.trim().is_empty()) {
            for part in split_top_level(text) {
                selector.labels.push(parse_requirement(part.trim())?);
            }
        }
        if let Some(text) = field_selector.filter(|t| !t.trim().is_empty()) {
            for part in text.split(',') {
                let (path, value, equal) = if let Some((path, value)) = part.split_once("!=") {
                    (path, value, false)
                } else if let Some((path, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                    (path, value, true)
                } else {
                    return Err(ApiError::bad_request(format!("invalid field selector: {part}")));
                };
                if !(path.starts_with("metadata.") || path.starts_with("spec.") || path.starts_with("status.")) {
                    return Err(ApiError::bad_request(format!("field label not supported: {path}")));
                }
                selector.fields.push((path.to_string(), value.to_string(), equal));
            }
        }
        Ok(selector)
    }

    /// Whether `object` matches.
    pub fn matches(&self, object: &Value) -> bool {
        if !self.fields.iter().all(|(path, value, equal)| (field_value(object, path) == *value) == *equal) {
            return false;
        }
        let labels = object["metadata"]["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.labels.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: \"{part}\""));
    let set = |rest: &str| -> Result<Vec<String>, ApiError> {
        let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key.trim().into()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, rest)) = part.split_once(" notin ") {
        return Ok(Requirement::NotIn(k.trim().into(), set(rest)?));
    }
    if let Some((k, rest)) = part.split_once(" in ") {
        return Ok(Requirement::In(k.trim().into(), set(rest)?));
    }
    if part.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) && !part.is_empty() {
        return Ok(Requirement::Exists(part.into()));
    }
    Err(bad())
}

/// The objects and everything the server remembers about them.
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// When each object's spec last changed (the controller counts from there).
    changed: BTreeMap<Key, Instant>,
    /// The last configuration each field manager applied to each object.
    applied: BTreeMap<(Key, String), Value>,
    log: VecDeque<Event>,
    events: broadcast::Sender<Event>,
    load_balancers: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            changed: BTreeMap::new(),
            applied: BTreeMap::new(),
            log: VecDeque::new(),
            events: broadcast::channel(4096).0,
            load_balancers: 0,
        }
    }
}

fn resource_type(key: &Key) -> &'static ResourceType {
    RESOURCES.iter().find(|r| r.qualified() == key.resource).expect("keys are made from served types")
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn new_uid() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let map = target.as_object_mut().expect("made an object above");
            for (k, v) in patch {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Removes from `target` the fields present in `previous` but absent from `current` (what a
/// field manager stopped applying).
fn remove_dropped(target: &mut Value, previous: &Value, current: &Value) {
    let (Some(target), Some(previous)) = (target.as_object_mut(), previous.as_object()) else { return };
    for (k, prev) in previous {
        match current.get(k) {
            None => {
                target.remove(k);
            }
            Some(cur) => {
                if let Some(t) = target.get_mut(k) {
                    remove_dropped(t, prev, cur);
                }
            }
        }
    }
}

/// The object without server-maintained bookkeeping, to tell real changes from no-ops.
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(field);
        }
    }
    copy
}

impl Store {
    /// Subscribes to live events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Events after `rv` for a watch resuming there; `Err` (410 Gone) when they are no longer kept.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Event>, ApiError> {
        if rv < self.rv && self.log.front().is_some_and(|e| e.rv > rv + 1) {
            return Err(ApiError::new(410, "Expired", format!("too old resource version: {rv} ({})", self.rv)));
        }
        Ok(self.log.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Every object (for tests and inspection).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// The object at `key`.
    pub fn get(&self, rt: &ResourceType, key: &Key) -> Result<Value, ApiError> {
        self.objects.get(key).cloned().ok_or_else(|| ApiError::not_found(rt, &key.name))
    }

    /// Objects of type `rt` (in `namespace`, or everywhere) matching `selector`, and the
    /// list's resourceVersion.
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>, selector: &Selector) -> (Vec<Value>, u64) {
        let resource = rt.qualified();
        let items = self
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, v)| selector.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, self.rv)
    }

    fn check_namespace_usable(&self, key: &Key) -> Result<(), ApiError> {
        if key.namespace.is_empty() {
            return Ok(());
        }
        let ns_type = &RESOURCES[0];
        let ns = self
            .objects
            .get(&Key::new(ns_type, "", &key.namespace))
            .ok_or_else(|| ApiError::not_found(ns_type, &key.namespace))?;
        if ns["status"]["phase"] == "Terminating" {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    resource_type(key).qualified(),
                    key.name,
                    key.namespace
                ),
            ));
        }
        Ok(())
    }

    fn validate_new(&self, rt: &ResourceType, key: &Key, object: &Value) -> Result<(), ApiError> {
        let valid = if rt.group == "rbac.authorization.k8s.io" {
            // RBAC objects only need names that are valid path segments (`system:...`).
            !key.name.is_empty() && !key.name.contains(['/', '%']) && key.name != "." && key.name != ".."
        } else if rt.label_names() {
            is_dns_label(&key.name)
        } else {
            is_dns_subdomain(&key.name)
        };
        if !valid {
            let rule = if rt.label_names() { "a lowercase RFC 1123 label" } else { "a lowercase RFC 1123 subdomain" };
            let cause = format!(
                "Invalid value: \"{}\": {rule} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                key.name
            );
            return Err(ApiError {
                details: Some((key.name.clone(), rt.kind.into())),
                causes: vec![json!({"reason": "FieldValueInvalid", "message": cause, "field": "metadata.name"})],
                ..ApiError::new(
                    422,
                    "Invalid",
                    format!("{} \"{}\" is invalid: metadata.name: {cause}", rt.kind, key.name),
                )
            });
        }
        if object["apiVersion"].as_str().is_some_and(|v| v != rt.api_version())
            || object["kind"].as_str().is_some_and(|k| k != rt.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the object's apiVersion/kind ({}/{}) does not match the request path ({}/{})",
                object["apiVersion"],
                object["kind"],
                rt.api_version(),
                rt.kind
            )));
        }
        Ok(())
    }

    /// Stores `object` at `key` (creating or replacing), keeping server fields, and records
    /// the event; a change that changes nothing returns the stored object untouched.
    fn commit(&mut self, rt: &ResourceType, key: &Key, mut object: Value, keep_status: bool) -> Value {
        let old = self.objects.get(key).cloned();
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        let meta = object["metadata"].as_object_mut().map(std::mem::take).unwrap_or_default();
        object["metadata"] = Value::Object(meta);
        object["metadata"]["name"] = json!(key.name);
        if rt.namespaced {
            object["metadata"]["namespace"] = json!(key.namespace);
        } else if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        match &old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "deletionTimestamp"] {
                    if let Some(v) = old["metadata"].get(field) {
                        object["metadata"][field] = v.clone();
                    }
                }
                if keep_status {
                    match old.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => {
                            if let Some(map) = object.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                let generation = old["metadata"]["generation"].as_i64();
                if let Some(generation) = generation {
                    let bump = old.get("spec") != object.get("spec");
                    object["metadata"]["generation"] = json!(if bump { generation + 1 } else { generation });
                }
                if comparable(old) == comparable(&object) {
                    return old.clone();
                }
                if old.get("spec") != object.get("spec") {
                    self.changed.insert(key.clone(), Instant::now());
                }
            }
            None => {
                object["metadata"]["uid"] = json!(new_uid());
                object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
                if object.get("spec").is_some() {
                    object["metadata"]["generation"] = json!(1);
                }
                if keep_status {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
                if rt.kind == "Namespace" {
                    object["status"] = json!({"phase": "Active"});
                    object["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                self.changed.insert(key.clone(), Instant::now());
            }
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), object.clone());
        let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
        self.record(Event { rv: self.rv, kind, key: key.clone(), object: object.clone() });
        object
    }

    fn record(&mut self, event: Event) {
        if self.log.len() == EVENT_LOG {
            self.log.pop_front();
        }
        self.log.push_back(event.clone());
        let _ = self.events.send(event);
    }

    /// `POST`: creates `object`; 409 AlreadyExists when the name is taken.
    pub fn create(&mut self, rt: &ResourceType, namespace: &str, object: Value) -> Result<Value, ApiError> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", rt.kind),
            ));
        }
        if let Some(ns) = object["metadata"]["namespace"].as_str() {
            if rt.namespaced && ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let key = Key::new(rt, namespace, &name);
        self.validate_new(rt, &key, &object)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError {
                details: Some((name.clone(), rt.plural.into())),
                ..ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", rt.qualified()))
            });
        }
        self.check_namespace_usable(&key)?;
        Ok(self.commit(rt, &key, object, true))
    }

    /// `PUT`: replaces the object; 409 Conflict on a stale resourceVersion.
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        key: &Key,
        object: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get(rt, key)?;
        if object["metadata"]["name"].as_str().is_some_and(|n| n != key.name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
            if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
                return Err(self.conflict(rt, key));
            }
        }
        self.validate_new(rt, key, &object)?;
        let object = if status_only {
            let mut next = old.clone();
            next["status"] = object.get("status").cloned().unwrap_or(Value::Null);
            next
        } else {
            object
        };
        Ok(self.commit(rt, key, object, !status_only))
    }

    fn conflict(&self, rt: &ResourceType, key: &Key) -> ApiError {
        ApiError {
            details: Some((key.name.clone(), rt.plural.into())),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.qualified(),
                    key.name
                ),
            )
        }
    }

    /// `PATCH` with a merge (or strategic merge) patch.
    pub fn patch(&mut self, rt: &ResourceType, key: &Key, patch: &Value, status_only: bool) -> Result<Value, ApiError> {
        let old = self.get(rt, key)?;
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
            if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
                return Err(self.conflict(rt, key));
            }
        }
        let mut next = old.clone();
        if status_only {
            if let Some(status) = patch.get("status") {
                merge_patch(&mut next["status"], status);
            }
        } else {
            merge_patch(&mut next, patch);
        }
        if let Some(meta) = next["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        Ok(self.commit(rt, key, next, !status_only))
    }

    /// `PATCH` with `application/apply-patch+yaml`: server-side apply by `manager`. Creates the
    /// object when absent; otherwise drops the fields this manager applied before and no longer
    /// applies, and merges the rest (lists are replaced whole). Returns the object and whether it
    /// was created.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        key: &Key,
        applied: Value,
        manager: &str,
    ) -> Result<(Value, bool), ApiError> {
        if applied["metadata"]["name"].as_str().is_some_and(|n| n != key.name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        if rt.namespaced && applied["metadata"]["namespace"].as_str().is_some_and(|n| n != key.namespace) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut applied = applied;
        if let Some(meta) = applied["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        self.validate_new(rt, key, &applied)?;
        let record = (key.clone(), manager.to_string());
        let (object, created) = match self.objects.get(key).cloned() {
            None => {
                self.check_namespace_usable(key)?;
                let mut object = applied.clone();
                object["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Apply", "apiVersion": rt.api_version(), "fieldsType": "FieldsV1"}]);
                (self.commit(rt, key, object, true), true)
            }
            Some(old) => {
                let mut next = old.clone();
                if let Some(previous) = self.applied.get(&record) {
                    remove_dropped(&mut next, previous, &applied);
                }
                merge_patch(&mut next, &strip_nulls(&applied));
                let mut managers: Vec<Value> = old["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
                if !managers.iter().any(|m| m["manager"] == manager) {
                    managers.push(json!({"manager": manager, "operation": "Apply", "apiVersion": rt.api_version(), "fieldsType": "FieldsV1"}));
                }
                next["metadata"]["managedFields"] = Value::Array(managers);
                (self.commit(rt, key, next, true), false)
            }
        };
        self.applied.insert(record, applied);
        Ok((object, created))
    }

    /// `DELETE`. Namespaces go Terminating first and disappear with their content on the
    /// controller's next pass.
    pub fn delete(&mut self, rt: &ResourceType, key: &Key) -> Result<Value, ApiError> {
        let old = self.get(rt, key)?;
        if rt.kind == "Namespace" {
            if old["status"]["phase"] == "Terminating" {
                return Ok(old);
            }
            let mut next = old.clone();
            next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            next["status"]["phase"] = json!("Terminating");
            self.rv += 1;
            next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.objects.insert(key.clone(), next.clone());
            self.record(Event { rv: self.rv, kind: EventType::Modified, key: key.clone(), object: next.clone() });
            return Ok(next);
        }
        Ok(self.remove(key))
    }

    fn remove(&mut self, key: &Key) -> Value {
        let old = self.objects.remove(key).expect("checked by the caller");
        self.changed.remove(key);
        self.applied.retain(|(k, _), _| k != key);
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Event { rv: self.rv, kind: EventType::Deleted, key: key.clone(), object: gone });
        old
    }

    /// One controller pass at `now`: finish terminating namespaces, then bring workloads,
    /// jobs and load balancers whose spec changed at least `ready_after` ago to their
    /// finished state.
    pub fn reconcile(&mut self, now: Instant, config: &ControllerConfig) {
        let terminating: Vec<String> = self
            .objects
            .iter()
            .filter(|(k, v)| k.resource == "namespaces" && v["status"]["phase"] == "Terminating")
            .map(|(k, _)| k.name.clone())
            .collect();
        for ns in terminating {
            let contents: Vec<Key> = self.objects.keys().filter(|k| k.namespace == ns).cloned().collect();
            for key in contents {
                self.remove(&key);
            }
            self.remove(&Key { resource: "namespaces".into(), namespace: String::new(), name: ns });
        }

        let due: Vec<Key> = self
            .changed
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= config.ready_after)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.changed.remove(&key);
            let Some(object) = self.objects.get(&key).cloned() else { continue };
            let rt = resource_type(&key);
            let status = match rt.kind {
                "Deployment" | "StatefulSet" => {
                    let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
                    let mut status = json!({
                        "observedGeneration": object["metadata"]["generation"], "replicas": replicas,
                        "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas,
                    });
                    if rt.kind == "StatefulSet" {
                        status["currentReplicas"] = json!(replicas);
                    } else {
                        status["conditions"] =
                            json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]);
                    }
                    status
                }
                "DaemonSet" => daemon_set_status(&object, self.node_count()),
                "Job" => {
                    if config.failing_jobs.contains(&key.name) {
                        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit"}]})
                    } else {
                        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                    }
                }
                "Service" if object["spec"]["type"] == "LoadBalancer" => {
                    if object["status"]["loadBalancer"]["ingress"].is_array() {
                        continue;
                    }
                    self.load_balancers += 1;
                    let n = self.load_balancers;
                    json!({"loadBalancer": {"ingress": [{"ip": format!("192.0.2.{}", n % 250 + 1)}]}})
                }
                _ => continue,
            };
            if rt.kind == "StatefulSet" {
                self.create_claims(&key, &object);
            }
            let mut next = object.clone();
            next["status"] = status;
            self.commit(rt, &key, next, false);
            // A status update is not a spec change.
            self.changed.remove(&key);
        }
        self.run_kubelets(config);
        self.reclaim_volumes();
    }

    /// What the volume controller and a CSI driver do together: a volume whose claim is gone
    /// and whose reclaim policy is `Delete` is deleted.
    fn reclaim_volumes(&mut self) {
        let released: Vec<Key> = self
            .objects
            .iter()
            .filter(|(k, v)| {
                k.resource == "persistentvolumes"
                    && v["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
                    && v["spec"]["claimRef"].is_object()
                    && !self.objects.keys().any(|c| {
                        c.resource == "persistentvolumeclaims"
                            && c.namespace == v["spec"]["claimRef"]["namespace"].as_str().unwrap_or_default()
                            && c.name == v["spec"]["claimRef"]["name"].as_str().unwrap_or_default()
                    })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in released {
            self.remove(&key);
        }
    }

    fn node_count(&self) -> i64 {
        self.objects.keys().filter(|k| k.resource == "nodes").count() as i64
    }

    /// What kubelets and the DaemonSet controller do: register the configured nodes, keep
    /// each scheduled DaemonSet on every node, and report nodes Ready once a network plugin's
    /// DaemonSet is ready.
    fn run_kubelets(&mut self, config: &ControllerConfig) {
        let node_type = RESOURCES.iter().find(|r| r.kind == "Node").expect("nodes are served");
        let sets_type = RESOURCES.iter().find(|r| r.kind == "DaemonSet").expect("daemon sets are served");
        for name in &config.kubelets {
            let key = Key::new(node_type, "", name);
            if !self.objects.contains_key(&key) {
                let node = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}});
                self.commit(node_type, &key, node, false);
                self.changed.remove(&key);
            }
        }
        let nodes = self.node_count();
        let scheduled: Vec<(Key, Value, bool)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.resource == "daemonsets.apps")
            .map(|(k, v)| (k.clone(), v.clone(), !self.changed.contains_key(k)))
            .collect();
        let mut network_ready = false;
        for (key, set, started) in scheduled {
            // Scheduled on every node at once; ready once the pods had time to start.
            let mut status = daemon_set_status(&set, nodes);
            if !started {
                status["numberReady"] = json!(0);
                status["numberAvailable"] = json!(0);
                status["numberUnavailable"] = json!(nodes);
            }
            let mounts_cni = set["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .is_some_and(|volumes| volumes.iter().any(|v| v["hostPath"]["path"] == "/etc/cni/net.d"));
            network_ready |= mounts_cni && started && nodes > 0;
            if set["status"] != status {
                let mut next = set.clone();
                next["status"] = status;
                self.commit(sets_type, &key, next, false);
            }
        }
        let node_keys: Vec<Key> = self.objects.keys().filter(|k| k.resource == "nodes").cloned().collect();
        for key in node_keys {
            let node = self.objects[&key].clone();
            let (status, reason, message) = if network_ready {
                ("True", "KubeletReady", "kubelet is posting ready status")
            } else {
                (
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
                )
            };
            let wanted = json!({
                "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "containerd://1.7.24"},
            });
            if node["status"] != wanted {
                let mut next = node;
                next["status"] = wanted;
                self.commit(node_type, &key, next, false);
            }
        }
    }
}

/// A DaemonSet's status with one ready pod on each of `nodes` nodes.
fn daemon_set_status(set: &Value, nodes: i64) -> Value {
    json!({
        "observedGeneration": set["metadata"]["generation"], "desiredNumberScheduled": nodes,
        "currentNumberScheduled": nodes, "updatedNumberScheduled": nodes, "numberReady": nodes,
        "numberAvailable": nodes, "numberMisscheduled": 0,
    })
}

impl Store {
    /// What the StatefulSet controller does: a claim `<template>-<set>-<ordinal>` per
    /// instance and claim template, kept when the set goes away.
    fn create_claims(&mut self, key: &Key, set: &Value) {
        let pvc = RESOURCES.iter().find(|r| r.kind == "PersistentVolumeClaim").expect("claims are served");
        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
        for template in set["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default() {
            let template_name = template["metadata"]["name"].as_str().unwrap_or_default();
            for ordinal in 0..replicas {
                let name = format!("{template_name}-{}-{ordinal}", key.name);
                let claim_key = Key::new(pvc, &key.namespace, &name);
                if self.objects.contains_key(&claim_key) {
                    continue;
                }
                let claim = json!({
                    "metadata": {"name": name, "labels": template["metadata"]["labels"].clone()},
                    "spec": template["spec"].clone(),
                    "status": {"phase": "Bound"},
                });
                self.commit(pvc, &claim_key, claim, false);
                self.changed.remove(&claim_key);
            }
        }
    }
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    fn ns(store: &mut Store, name: &str) {
        store.create(find("", "v1", "namespaces").unwrap(), "", json!({"metadata": {"name": name}})).unwrap();
    }

    #[test]
    fn selectors() {
        let object = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        let matches = |l: &str| Selector::parse(Some(l), None).unwrap().matches(&object);
        assert!(matches("app=web"));
        assert!(matches("app==web,tier!=back"));
        assert!(matches("tier in (front, back)"));
        assert!(!matches("tier notin (front)"));
        assert!(matches("app,!missing"));
        assert!(!matches("missing"));
        assert!(Selector::parse(None, Some("metadata.name=a")).unwrap().matches(&object));
        assert!(!Selector::parse(None, Some("metadata.name=b")).unwrap().matches(&object));
        assert!(Selector::parse(Some("a in b"), None).is_err());
    }

    #[test]
    fn resource_version_moves_only_on_change() {
        let mut store = Store::default();
        ns(&mut store, "n");
        let cm = find("", "v1", "configmaps").unwrap();
        let key = Key::new(cm, "n", "c");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let (first, created) = store.apply(cm, &key, body.clone(), "hsm").unwrap();
        assert!(created);
        let (again, created) = store.apply(cm, &key, body, "hsm").unwrap();
        assert!(!created);
        assert_eq!(first["metadata"]["resourceVersion"], again["metadata"]["resourceVersion"]);
        let changed = store.apply(cm, &key, json!({"metadata": {"name": "c"}, "data": {"b": "2"}}), "hsm").unwrap().0;
        assert_ne!(first["metadata"]["resourceVersion"], changed["metadata"]["resourceVersion"]);
        assert_eq!(changed["data"], json!({"b": "2"}), "fields the manager stopped applying are removed");
        assert_eq!(changed["metadata"]["uid"], first["metadata"]["uid"]);
    }

    #[test]
    fn generation_follows_spec() {
        let mut store = Store::default();
        ns(&mut store, "n");
        let deploy = find("apps", "v1", "deployments").unwrap();
        let key = Key::new(deploy, "n", "d");
        let v1 = store
            .apply(deploy, &key, json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}}), "m")
            .unwrap()
            .0;
        assert_eq!(v1["metadata"]["generation"], 1);
        let v2 = store
            .apply(deploy, &key, json!({"metadata": {"name": "d", "labels": {"a": "c"}}, "spec": {"replicas": 1}}), "m")
            .unwrap()
            .0;
        assert_eq!(v2["metadata"]["generation"], 1, "a label change is not a spec change");
        let v3 = store.apply(deploy, &key, json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}}), "m").unwrap().0;
        assert_eq!(v3["metadata"]["generation"], 2);
    }

    #[test]
    fn errors_have_kubernetes_codes() {
        let mut store = Store::default();
        let cm = find("", "v1", "configmaps").unwrap();
        let body = json!({"metadata": {"name": "c"}});
        assert_eq!(store.create(cm, "missing", body.clone()).unwrap_err().code, 404);
        ns(&mut store, "n");
        store.create(cm, "n", body.clone()).unwrap();
        let exists = store.create(cm, "n", body.clone()).unwrap_err();
        assert_eq!((exists.code, exists.reason), (409, "AlreadyExists"));
        let stale = store
            .replace(cm, &Key::new(cm, "n", "c"), json!({"metadata": {"name": "c", "resourceVersion": "1"}}), false)
            .unwrap_err();
        assert_eq!((stale.code, stale.reason), (409, "Conflict"));
        let invalid = store.create(cm, "n", json!({"metadata": {"name": "Bad_Name"}})).unwrap_err();
        assert_eq!((invalid.code, invalid.reason), (422, "Invalid"));
    }

    #[test]
    fn namespace_deletion_terminates_then_removes_content() {
        let mut store = Store::default();
        ns(&mut store, "n");
        let cm = find("", "v1", "configmaps").unwrap();
        store.create(cm, "n", json!({"metadata": {"name": "c"}})).unwrap();
        let nst = find("", "v1", "namespaces").unwrap();
        let terminating = store.delete(nst, &Key::new(nst, "", "n")).unwrap();
        assert_eq!(terminating["status"]["phase"], "Terminating");
        assert_eq!(store.create(cm, "n", json!({"metadata": {"name": "d"}})).unwrap_err().code, 403);
        store.reconcile(Instant::now(), &ControllerConfig::default());
        assert_eq!(store.all().count(), 0);
    }

    #[test]
    fn controller_makes_workloads_ready_after_the_delay() {
        let mut store = Store::default();
        ns(&mut store, "n");
        let sts = find("apps", "v1", "statefulsets").unwrap();
        let key = Key::new(sts, "n", "s");
        store.apply(sts, &key, json!({"metadata": {"name": "s"}, "spec": {"replicas": 3}}), "m").unwrap();
        let config = ControllerConfig { ready_after: Duration::from_secs(60), ..ControllerConfig::default() };
        store.reconcile(Instant::now(), &config);
        assert!(store.get(sts, &key).unwrap().get("status").is_none());
        store.reconcile(Instant::now() + Duration::from_secs(61), &config);
        let ready = store.get(sts, &key).unwrap();
        assert_eq!(ready["status"]["readyReplicas"], 3);
        assert_eq!(ready["status"]["observedGeneration"], 1);
    }
}
