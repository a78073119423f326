//! Validation of an SDL on its own and of an IDL against its SDL. Every rule runs and every
//! problem is reported, each with the JSON path of the offending value.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{quote, sanitize, Problem};
use crate::idl::Idl;
use crate::model::{
    Bindings, Component, DataType, GeneratorType, Parameter, PolicyRule, PortRef, Probe, Sdl, ValueType, WorkloadType,
};
use crate::names;
use crate::parse::closest;
use crate::template::{self, PLATFORM_VARIABLES};

/// Longest component or job name: StatefulSet pods carry a `controller-revision-hash` label of
/// the name plus 11 characters, which must stay within 63.
pub const COMPONENT_NAME_MAX: usize = 52;
/// Most ports one component may declare.
pub const MAX_PORTS: usize = 10;
/// Ports must be below this number (the node-port range starts at 30000).
pub const PORT_LIMIT: u32 = 30000;
/// Platforms a component may name.
pub const PLATFORMS: [&str; 2] = ["linux-x86_64", "linux-aarch64"];
/// Namespaces an instance may not take (besides every name starting with
/// [`RESERVED_NAMESPACE_PREFIX`]).
pub const RESERVED_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
/// Instance ids may not start with this: Kubernetes keeps `kube-*` namespaces for itself.
pub const RESERVED_NAMESPACE_PREFIX: &str = "kube-";
/// Most instances a component may run (Kubernetes replica counts are 32-bit; this is far
/// below, so a typo is not scheduled as millions of pods).
pub const MAX_INSTANCES: u32 = 1000;
/// Most virtual CPUs a component may ask for, as a request or a limit.
pub const MAX_VCPU: f64 = 1024.0;
/// Longest a certificate may be valid, in days (100 years).
pub const MAX_VALID_DAYS: u32 = 36_500;
/// Largest value of a probe's seconds and counts, and of a job's retry count (Kubernetes
/// keeps them as 32-bit integers).
pub const MAX_INT32: u32 = i32::MAX as u32;
/// Most keys a binding's `credentials` may add.
pub const MAX_BINDING_KEYS: usize = 32;
/// Longest a job may run, in seconds (30 days).
pub const MAX_JOB_TIMEOUT: u64 = 30 * 24 * 3600;
/// Most entries in any one list of an SDL or IDL (components, parameters, ports, ...).
pub const MAX_LIST_ENTRIES: usize = 1000;
/// Most list entries in a whole SDL, all lists together.
pub const MAX_TOTAL_ENTRIES: usize = 10_000;
/// Longest parameter value or default, in bytes (a Secret or ConfigMap holds at most 1 MiB
/// in all).
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Longest description (SDL or IDL), in bytes: it is kept in an annotation.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Most bytes of a component's entrypoint, all arguments together.
pub const MAX_ENTRYPOINT_BYTES: usize = 128 * 1024;
/// Where secret parameters are mounted: no volume may be mounted there or below.
pub const SECRETS_MOUNT: &str = "/etc/secrets";
/// Label key prefixes the platform sets itself; component labels may not use them.
pub const RESERVED_LABEL_PREFIXES: [&str; 4] = ["app.kubernetes.io/", "hsm.stratus.io/", "kubernetes.io/", "k8s.io/"];

/// Verbs a `service_account` rule may give (Kubernetes' resource verbs).
pub const RBAC_VERBS: [&str; 15] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "use",
    "approve",
    "sign",
    "*",
];
/// Verbs Kubernetes cannot limit to `resource_names`: the name is not part of the request
/// when it is authorised (a rule naming objects never allows them).
pub const VERBS_WITHOUT_NAMES: [&str; 2] = ["create", "deletecollection"];

const CAPABILITIES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Every problem in `sdl`, in document order; empty when it is valid.
pub fn validate_sdl(sdl: &Sdl) -> Vec<Problem> {
    let mut v = Validator { problems: Vec::new() };
    if !v.check_sizes(sdl) {
        // Lists this long are refused before the rules (some compare entries pairwise) run.
        return v.problems;
    }
    v.check_header(sdl);
    v.check_workloads(sdl);
    v.check_volumes(sdl);
    v.check_parameters(sdl);
    v.check_features(sdl);
    v.check_bindings(sdl);
    v.check_dependency_cycles(sdl);
    v.problems
}

/// Every problem in `idl` as an instance of `sdl` (whose id is `service_id`).
pub fn validate_idl(sdl: &Sdl, service_id: &str, idl: &Idl) -> Vec<Problem> {
    let mut v = Validator { problems: Vec::new() };
    for (field, len) in
        [("labels", idl.labels.len()), ("parameters", idl.parameters.len()), ("scaling", idl.scaling.len())]
    {
        if len > MAX_LIST_ENTRIES {
            v.push(field, format!("{len} entries; at most {MAX_LIST_ENTRIES} are allowed"));
        }
    }
    if !v.problems.is_empty() {
        return v.problems;
    }
    if let Some(id) = &idl.instance_id {
        if let Some(problem) = instance_id_problem(id) {
            v.push("instance_id", problem);
        }
    }
    if let Some(len) = idl.description.as_ref().map(String::len).filter(|l| *l > MAX_DESCRIPTION_BYTES) {
        v.push("description", format!("{len} bytes long; at most {MAX_DESCRIPTION_BYTES} are allowed"));
    }
    if let Some(id) = &idl.service_id {
        if id != service_id {
            v.push(
                "service_id",
                format!("{} does not match the service being created, {}", quote(id), quote(service_id)),
            );
        }
    }
    if let Some(name) = &idl.name {
        if name != &sdl.name {
            v.push("name", format!("{} does not match the service being created, {}", quote(name), quote(&sdl.name)));
        }
    }
    if let Some(vendor) = &idl.vendor {
        if vendor != &sdl.vendor {
            v.push("vendor", format!("{} does not match the service's vendor, {}", quote(vendor), quote(&sdl.vendor)));
        }
    }
    for (field, given, actual) in [
        ("product_version", &idl.product_version, &sdl.product_version),
        ("sdl_version", &idl.sdl_version, &sdl.sdl_version),
    ] {
        if let Some(given) = given {
            if given != actual {
                v.push(field, format!("{} does not match the version being created, {}", quote(given), quote(actual)));
            }
        }
    }
    for (i, label) in idl.labels.iter().enumerate() {
        if let Some(problem) = names::label_value(label) {
            v.push(format!("labels[{i}]"), problem);
        }
    }
    let mut seen = BTreeSet::new();
    for (i, param) in idl.parameters.iter().enumerate() {
        let path = format!("parameters[{i}]");
        if !seen.insert(param.name.as_str()) {
            v.push(format!("{path}.name"), format!("parameter {} is given twice", quote(&param.name)));
        }
        match sdl.parameter(&param.name) {
            None => v.push(
                format!("{path}.name"),
                unknown("parameter", &param.name, sdl.parameters.iter().map(|p| p.name.as_str())),
            ),
            Some(def) => {
                if let Some(problem) = check_value(def, &param.value) {
                    v.push(format!("{path}.value"), problem);
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, scaling) in idl.scaling.iter().enumerate() {
        let path = format!("scaling[{i}]");
        if !seen.insert(scaling.component.as_str()) {
            v.push(format!("{path}.component"), format!("component {} is scaled twice", quote(&scaling.component)));
        }
        let Some(component) = sdl.component(&scaling.component) else {
            v.push(
                format!("{path}.component"),
                unknown("component", &scaling.component, sdl.components.iter().map(|c| c.name.as_str())),
            );
            continue;
        };
        if scaling.min_instances > scaling.max_instances {
            v.push(
                format!("{path}.min_instances"),
                format!("{} is more than max_instances ({})", scaling.min_instances, scaling.max_instances),
            );
        }
        if scaling.min_instances < component.min_instances {
            v.push(
                format!("{path}.min_instances"),
                format!("{} is below the component's minimum of {}", scaling.min_instances, component.min_instances),
            );
        }
        if scaling.max_instances > component.max_instances {
            v.push(
                format!("{path}.max_instances"),
                format!("{} is above the component's maximum of {}", scaling.max_instances, component.max_instances),
            );
        }
    }
    v.problems
}

/// Why `id` cannot be an instance id (a namespace), if it cannot.
pub fn instance_id_problem(id: &str) -> Option<String> {
    if let Some(problem) = names::dns_label(id) {
        return Some(problem);
    }
    if RESERVED_NAMESPACES.contains(&id) {
        return Some(format!("{} is a reserved namespace; choose another instance id", quote(id)));
    }
    if id.starts_with(RESERVED_NAMESPACE_PREFIX) {
        return Some(format!(
            "{} is a reserved namespace (kube-* names belong to Kubernetes); choose another instance id",
            quote(id)
        ));
    }
    None
}

/// Checks a value given for parameter `def`: its data type, that it holds no NUL (it
/// becomes an environment variable or a file), and that a required parameter's value is not
/// empty. The value is quoted in the message only when the parameter is not secret.
pub fn check_value(def: &Parameter, value: &str) -> Option<String> {
    let shown = || if def.secret { "the secret value (not shown)".to_string() } else { quote(value) };
    if value.is_empty() && def.required {
        return Some(format!("parameter \"{}\" is required; an empty value is not a value", def.name));
    }
    if value.contains('\0') {
        return Some(format!("{} contains a NUL character", shown()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Some(format!("the value is {} bytes long; at most {MAX_VALUE_BYTES} are allowed", value.len()));
    }
    check_data_type(def.data_type, value).map(|problem| format!("{} {problem}", shown()))
}

/// Checks `value` against a parameter's data type; `None` when it fits. The message does not
/// repeat the value, which may be secret (see [`check_value`]): it reads "is not an integer".
pub fn check_data_type(data_type: Option<DataType>, value: &str) -> Option<String> {
    let ok = match data_type {
        None | Some(DataType::String) => true,
        Some(DataType::Integer) => value.parse::<i64>().is_ok(),
        Some(DataType::Number) => value.parse::<f64>().is_ok_and(f64::is_finite),
        Some(DataType::Boolean) => matches!(value, "true" | "false"),
    };
    if ok {
        None
    } else {
        let expected = match data_type {
            Some(DataType::Integer) => "an integer",
            Some(DataType::Number) => "a number",
            _ => "true or false",
        };
        Some(format!("is not {expected}"))
    }
}

/// "unknown X \"name\"" with the closest known name, if any is close.
fn unknown<'a>(what: &str, name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match closest(name, known) {
        Some(best) => format!("unknown {what} {} (did you mean {}?)", quote(name), quote(best)),
        None => format!("unknown {what} {}", quote(name)),
    }
}

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(sanitize(&path.into()), sanitize(&message.into())));
    }

    /// Refuses lists longer than [`MAX_LIST_ENTRIES`]; false when any is.
    fn check_sizes(&mut self, sdl: &Sdl) -> bool {
        let mut lists: Vec<(String, usize)> = vec![
            ("components".into(), sdl.components.len()),
            ("preflight".into(), sdl.preflight.len()),
            ("postflight".into(), sdl.postflight.len()),
            ("volumes".into(), sdl.volumes.len()),
            ("parameters".into(), sdl.parameters.len()),
        ];
        for (list, i, c) in sdl.all_workloads().take(MAX_LIST_ENTRIES * 3) {
            for (field, len) in [
                ("capabilities", c.capabilities.len()),
                ("entrypoint", c.entrypoint.len()),
                ("service_ports", c.service_ports.len()),
                ("volume_mounts", c.volume_mounts.len()),
                ("parameters", c.parameters.len()),
                ("depends_on", c.depends_on.len()),
                ("affinity", c.affinity.len()),
                ("labels", c.labels.len()),
                ("service_account.rules", c.service_account.as_ref().map_or(0, |a| a.rules.len())),
                ("service_account.cluster_rules", c.service_account.as_ref().map_or(0, |a| a.cluster_rules.len())),
            ] {
                lists.push((format!("{list}[{i}].{field}"), len));
            }
        }
        if let Some(features) = &sdl.features {
            lists.push(("features.auth".into(), features.auth.len()));
            for (i, zone) in features.auth.iter().enumerate().take(MAX_LIST_ENTRIES) {
                lists.push((format!("features.auth[{i}].clients"), zone.clients.len()));
            }
        }
        let total: usize = lists.iter().map(|(_, len)| len).sum();
        let mut ok = true;
        for (path, len) in lists {
            if len > MAX_LIST_ENTRIES {
                self.push(path, format!("{len} entries; at most {MAX_LIST_ENTRIES} are allowed"));
                ok = false;
            }
        }
        if ok && total > MAX_TOTAL_ENTRIES {
            self.push("", format!("{total} list entries in all; at most {MAX_TOTAL_ENTRIES} are allowed"));
            ok = false;
        }
        ok
    }

    fn check_header(&mut self, sdl: &Sdl) {
        if let Some(len) = sdl.description.as_ref().map(String::len).filter(|l| *l > MAX_DESCRIPTION_BYTES) {
            self.push("description", format!("{len} bytes long; at most {MAX_DESCRIPTION_BYTES} are allowed"));
        }
        if let Some(problem) = names::dns_label(&sdl.name) {
            self.push("name", problem);
        }
        if let Some(problem) = names::dns_label(&sdl.vendor) {
            self.push("vendor", problem);
        }
        if let Some(problem) = names::label_value(&sdl.sdl_version) {
            self.push("sdl_version", problem);
        }
        if let Some(problem) = names::label_value(&sdl.product_version) {
            self.push("product_version", problem);
        }
        if sdl.components.is_empty() {
            self.push("components", "a service needs at least one component");
        }
    }

    fn check_workloads(&mut self, sdl: &Sdl) {
        let mut first_seen: BTreeMap<&str, String> = BTreeMap::new();
        for (list, i, workload) in sdl.all_workloads() {
            let path = format!("{list}[{i}]");
            if let Some(previous) = first_seen.get(workload.name.as_str()) {
                self.push(format!("{path}.name"), format!("name \"{}\" is already used by {previous}", workload.name));
            } else {
                first_seen.insert(&workload.name, path.clone());
            }
            self.check_workload(sdl, &path, list != "components", workload);
        }
    }

    fn check_workload(&mut self, sdl: &Sdl, path: &str, is_job: bool, c: &Component) {
        if let Some(problem) = names::dns1035_label(&c.name) {
            self.push(format!("{path}.name"), problem);
        } else if c.name.len() > COMPONENT_NAME_MAX {
            self.push(
                format!("{path}.name"),
                format!("\"{}\" is {} characters long; at most {COMPONENT_NAME_MAX} are allowed", c.name, c.name.len()),
            );
        }
        if c.workload_type == WorkloadType::Vm {
            self.push(
                format!("{path}.workload_type"),
                "\"vm\" is not supported: Stratus runs components as containers",
            );
        }
        if let Some(platform) = &c.platform {
            if !PLATFORMS.contains(&platform.as_str()) {
                self.push(
                    format!("{path}.platform"),
                    format!(
                        "{} is not a supported platform (expected one of {})",
                        quote(platform),
                        PLATFORMS.join(", ")
                    ),
                );
            }
        }
        self.check_image_and_external(sdl, path, is_job, c);
        self.check_resources(path, c);
        self.check_instances(path, is_job, c);
        self.check_capabilities(path, c);
        self.check_ports(path, is_job, c);
        self.check_mounts(sdl, path, is_job, c);
        self.check_parameter_refs(sdl, path, c);
        self.check_depends_on(sdl, path, is_job, c);
        let mut label_keys = BTreeSet::new();
        for (j, label) in c.labels.iter().enumerate() {
            let label_path = format!("{path}.labels[{j}]");
            match label.split_once('=') {
                Some((key, value)) => {
                    if let Some(problem) = names::label_key(key).or_else(|| names::label_value(value)) {
                        self.push(label_path, problem);
                    } else if let Some(prefix) = RESERVED_LABEL_PREFIXES.iter().find(|p| key.starts_with(*p)) {
                        self.push(label_path, format!("label keys starting {prefix} are set by the platform"));
                    } else if !label_keys.insert(key) {
                        self.push(label_path, format!("label {} is given twice", quote(key)));
                    }
                }
                None => self.push(label_path, format!("{} is not of the form key=value", quote(label))),
            }
        }
        let entrypoint_bytes: usize = c.entrypoint.iter().map(String::len).sum();
        if entrypoint_bytes > MAX_ENTRYPOINT_BYTES {
            self.push(
                format!("{path}.entrypoint"),
                format!("{entrypoint_bytes} bytes in all; at most {MAX_ENTRYPOINT_BYTES} are allowed"),
            );
        }
        for (j, arg) in c.entrypoint.iter().enumerate() {
            if arg.contains('\0') {
                self.push(format!("{path}.entrypoint[{j}]"), "contains a NUL character");
            }
        }
        if let Some(probes) = &c.probes {
            for (kind, probe) in
                [("readiness", &probes.readiness), ("liveness", &probes.liveness), ("startup", &probes.startup)]
            {
                if let Some(probe) = probe {
                    self.check_probe(&format!("{path}.probes.{kind}"), c, probe);
                }
            }
        }
        if let Some(placement) = &c.placement {
            for (key, value) in &placement.node_selector {
                if let Some(problem) = names::label_key(key).or_else(|| names::label_value(value)) {
                    self.push(format!("{path}.placement.node_selector.{key}"), problem);
                }
            }
        }
        if let Some(account) = &c.service_account {
            for (field, rules) in [("rules", &account.rules), ("cluster_rules", &account.cluster_rules)] {
                for (j, rule) in rules.iter().enumerate() {
                    self.check_rule(&format!("{path}.service_account.{field}[{j}]"), rule);
                }
            }
        }
        if c.retry_count.is_some_and(|n| n > MAX_INT32) {
            self.push(format!("{path}.retry_count"), format!("at most {MAX_INT32}"));
        }
        if let Some(timeout) = c.timeout.filter(|t| *t > MAX_JOB_TIMEOUT) {
            self.push(
                format!("{path}.timeout"),
                format!("{timeout} seconds is more than the {MAX_JOB_TIMEOUT} (30 days) a job may run"),
            );
        }
        if !is_job {
            if c.retry_count.is_some() {
                self.push(format!("{path}.retry_count"), "only preflight and postflight jobs have a retry_count");
            }
            if c.timeout.is_some() {
                self.push(format!("{path}.timeout"), "only preflight and postflight jobs have a timeout");
            }
        } else if c.timeout == Some(0) {
            self.push(format!("{path}.timeout"), "must be at least 1 second");
        }
    }

    /// One RBAC rule of a `service_account`: every list given, known verbs, API groups and
    /// resources as Kubernetes names them, and names only where Kubernetes can check them.
    fn check_rule(&mut self, path: &str, rule: &PolicyRule) {
        for (field, list) in [("api_groups", &rule.api_groups), ("resources", &rule.resources), ("verbs", &rule.verbs)]
        {
            if list.is_empty() {
                self.push(format!("{path}.{field}"), "at least one entry is required");
            }
        }
        for (j, group) in rule.api_groups.iter().enumerate() {
            if !group.is_empty() && group != "*" {
                if let Some(problem) = names::dns_subdomain(group) {
                    self.push(format!("{path}.api_groups[{j}]"), problem);
                }
            }
        }
        for (j, resource) in rule.resources.iter().enumerate() {
            if let Some(problem) = resource_problem(resource) {
                self.push(format!("{path}.resources[{j}]"), problem);
            }
        }
        for (j, verb) in rule.verbs.iter().enumerate() {
            if !RBAC_VERBS.contains(&verb.as_str()) {
                self.push(format!("{path}.verbs[{j}]"), unknown("verb", verb, RBAC_VERBS));
            } else if !rule.resource_names.is_empty() && VERBS_WITHOUT_NAMES.contains(&verb.as_str()) {
                self.push(
                    format!("{path}.verbs[{j}]"),
                    format!(
                        "{} cannot be limited to resource_names (Kubernetes does not know the name when it authorises it); give it in a rule without resource_names",
                        quote(verb)
                    ),
                );
            }
        }
        for (j, name) in rule.resource_names.iter().enumerate() {
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
                self.push(format!("{path}.resource_names[{j}]"), format!("{} is not an object name", quote(name)));
            }
        }
    }

    fn check_image_and_external(&mut self, sdl: &Sdl, path: &str, is_job: bool, c: &Component) {
        if let Some(external) = &c.external_name {
            if is_job {
                self.push(format!("{path}.external_name"), "jobs cannot have an external_name");
            }
            if c.image.is_some() {
                self.push(
                    format!("{path}.image"),
                    "a component with an external_name runs no workload, so it has no image",
                );
            }
            for (field, present) in [
                ("volume_mounts", !c.volume_mounts.is_empty()),
                ("entrypoint", !c.entrypoint.is_empty()),
                ("probes", c.probes.is_some()),
                ("service_account", c.service_account.is_some()),
            ] {
                if present {
                    self.push(format!("{path}.{field}"), "not allowed on a component with an external_name");
                }
            }
            self.check_references(sdl, &format!("{path}.external_name"), external);
            if let Ok(filled) = template::substitute(external, |_| Some("x")) {
                if let Some(problem) = names::dns_subdomain(&filled) {
                    self.push(format!("{path}.external_name"), problem);
                }
            }
            return;
        }
        let Some(image) = &c.image else {
            self.push(format!("{path}.image"), "an image is required (or an external_name for a connector)");
            return;
        };
        let structured = c.repository.is_some() || c.organization.is_some() || c.tag.is_some();
        let tag = if structured {
            if image.contains(':') || image.contains('/') {
                self.push(
                    format!("{path}.image"),
                    format!("{} must be a bare image name when repository/organization/tag are given", quote(image)),
                );
            }
            c.tag.clone()
        } else {
            let last = image.rsplit('/').next().unwrap_or(image);
            if last.contains('@') {
                Some("digest".to_string())
            } else {
                last.split_once(':').map(|(_, tag)| tag.to_string())
            }
        };
        match tag.as_deref() {
            None => self.push(format!("{path}.image"), format!("image {} has no tag; pin a version", quote(image))),
            Some("latest") => {
                self.push(format!("{path}.tag"), "\"latest\" is not a pinned version; name a specific tag")
            }
            Some("") => self.push(format!("{path}.tag"), "must not be empty"),
            _ => {
                if let Some(problem) = c.image_reference(None).and_then(|r| names::image_reference(&r)) {
                    let field = if structured { structured_image_culprit(c) } else { "image" };
                    self.push(format!("{path}.{field}"), problem);
                }
            }
        }
    }

    fn check_resources(&mut self, path: &str, c: &Component) {
        if c.is_external() {
            return;
        }
        if c.min_ram_mb == 0 {
            self.push(format!("{path}.min_RAM_mb"), "must be at least 1 (MiB)");
        }
        if !c.min_vcpu.is_finite() || c.min_vcpu < 0.0 {
            self.push(format!("{path}.min_VCPU"), "must be zero or more");
        } else if let Some(problem) = vcpu_problem(c.min_vcpu) {
            self.push(format!("{path}.min_VCPU"), problem);
        }
        if let Some(problem) = c.max_vcpu.filter(|m| m.is_finite() && *m > 0.0).and_then(vcpu_problem) {
            self.push(format!("{path}.max_VCPU"), problem);
        }
        if let Some(max) = c.max_ram_mb {
            if max < c.min_ram_mb {
                self.push(format!("{path}.max_RAM_mb"), format!("{max} is below min_RAM_mb ({})", c.min_ram_mb));
            }
        }
        if let Some(max) = c.max_vcpu {
            if !max.is_finite() || max <= 0.0 || max < c.min_vcpu {
                self.push(
                    format!("{path}.max_VCPU"),
                    format!("{max} must be positive and at least min_VCPU ({})", c.min_vcpu),
                );
            }
        }
    }

    fn check_instances(&mut self, path: &str, is_job: bool, c: &Component) {
        if is_job {
            if c.min_instances != 1 || c.max_instances != 1 {
                self.push(format!("{path}.min_instances"), "jobs run once: min_instances and max_instances must be 1");
            }
            return;
        }
        if c.max_instances == 0 {
            self.push(format!("{path}.max_instances"), "must be at least 1");
        }
        for (field, count) in [("min_instances", c.min_instances), ("max_instances", c.max_instances)] {
            if count > MAX_INSTANCES {
                self.push(
                    format!("{path}.{field}"),
                    format!("{count} is more than the {MAX_INSTANCES} instances allowed"),
                );
            }
        }
        if c.min_instances > c.max_instances {
            self.push(
                format!("{path}.min_instances"),
                format!("{} is more than max_instances ({})", c.min_instances, c.max_instances),
            );
        }
    }

    fn check_capabilities(&mut self, path: &str, c: &Component) {
        for (j, cap) in c.capabilities.iter().enumerate() {
            let bare = cap.strip_prefix("CAP_").unwrap_or(cap);
            if bare == "ALL" {
                if c.capabilities.len() > 1 {
                    self.push(
                        format!("{path}.capabilities[{j}]"),
                        "\"ALL\" grants every capability; list nothing else beside it",
                    );
                }
            } else if !CAPABILITIES.contains(&bare) {
                self.push(format!("{path}.capabilities[{j}]"), unknown("Linux capability", cap, CAPABILITIES));
            }
        }
    }

    fn check_ports(&mut self, path: &str, is_job: bool, c: &Component) {
        if is_job && !c.service_ports.is_empty() {
            self.push(format!("{path}.service_ports"), "jobs cannot serve ports");
            return;
        }
        if c.service_ports.len() > MAX_PORTS {
            self.push(
                format!("{path}.service_ports"),
                format!("{} ports declared; at most {MAX_PORTS} are allowed per component", c.service_ports.len()),
            );
        }
        let mut names = BTreeSet::new();
        let mut sources = BTreeSet::new();
        for (j, port) in c.service_ports.iter().enumerate() {
            let port_path = format!("{path}.service_ports[{j}]");
            if let Some(problem) = names::port_name(&port.name) {
                self.push(format!("{port_path}.name"), problem);
            }
            if !names.insert(port.name.as_str()) {
                self.push(format!("{port_path}.name"), format!("port name \"{}\" is used twice", port.name));
            }
            for (field, number) in [("source_port", port.source_port), ("target_port", port.target_port)] {
                if number == 0 || number >= PORT_LIMIT {
                    self.push(
                        format!("{port_path}.{field}"),
                        format!(
                            "{number} is out of range: ports are 1 to {} (ranges must be listed port by port)",
                            PORT_LIMIT - 1
                        ),
                    );
                }
            }
            if !sources.insert((port.source_port, port.protocol)) {
                self.push(
                    format!("{port_path}.source_port"),
                    format!("{}/{} is declared twice", port.source_port, port.protocol.as_str()),
                );
            }
        }
    }

    fn check_mounts(&mut self, sdl: &Sdl, path: &str, is_job: bool, c: &Component) {
        let mut mountpoints: BTreeSet<String> = BTreeSet::new();
        for (j, mount) in c.volume_mounts.iter().enumerate() {
            let mount_path = format!("{path}.volume_mounts[{j}]");
            match sdl.volume(&mount.volume_name) {
                None => self.push(
                    format!("{mount_path}.volume_name"),
                    unknown("volume", &mount.volume_name, sdl.volumes.iter().map(|v| v.name.as_str())),
                ),
                Some(volume) if is_job && !volume.shared => self.push(
                    format!("{mount_path}.volume_name"),
                    format!("jobs can only mount shared volumes; \"{}\" is not shared", volume.name),
                ),
                Some(_) => {}
            }
            let point = quote(&mount.mountpoint);
            let normal = names::normalise_absolute_path(&mount.mountpoint);
            match &normal {
                _ if mount.mountpoint.chars().any(char::is_control) => {
                    self.push(format!("{mount_path}.mountpoint"), format!("{point} contains control characters"))
                }
                _ if !mount.mountpoint.starts_with('/') => {
                    self.push(format!("{mount_path}.mountpoint"), format!("{point} must be an absolute path"))
                }
                None => self.push(
                    format!("{mount_path}.mountpoint"),
                    format!("{point} must not contain '..': name the directory itself"),
                ),
                Some(n) if n == "/" => self.push(
                    format!("{mount_path}.mountpoint"),
                    format!("{point} is the container's root; mount the volume in a directory"),
                ),
                Some(n) if n == SECRETS_MOUNT || n.starts_with(&format!("{SECRETS_MOUNT}/")) => self.push(
                    format!("{mount_path}.mountpoint"),
                    format!("{point}: {SECRETS_MOUNT} is where secret parameters are mounted"),
                ),
                Some(n) => {
                    if !mountpoints.insert(n.clone()) {
                        self.push(format!("{mount_path}.mountpoint"), format!("{point} is mounted twice"));
                    }
                }
            }
        }
    }

    fn check_parameter_refs(&mut self, sdl: &Sdl, path: &str, c: &Component) {
        let mut seen = BTreeSet::new();
        for (j, name) in c.parameters.iter().enumerate() {
            if sdl.parameter(name).is_none() {
                self.push(
                    format!("{path}.parameters[{j}]"),
                    unknown("parameter", name, sdl.parameters.iter().map(|p| p.name.as_str())),
                );
            }
            if !seen.insert(name.as_str()) {
                self.push(format!("{path}.parameters[{j}]"), format!("parameter \"{name}\" is listed twice"));
            }
        }
    }

    fn check_depends_on(&mut self, sdl: &Sdl, path: &str, is_job: bool, c: &Component) {
        if is_job && !c.depends_on.is_empty() {
            self.push(
                format!("{path}.depends_on"),
                "jobs are ordered by preflight/postflight; depends_on is for components",
            );
            return;
        }
        for (j, dep) in c.depends_on.iter().enumerate() {
            if dep == &c.name {
                self.push(format!("{path}.depends_on[{j}]"), "a component cannot depend on itself");
            } else if sdl.component(dep).is_none() {
                self.push(
                    format!("{path}.depends_on[{j}]"),
                    unknown("component", dep, sdl.components.iter().map(|c| c.name.as_str())),
                );
            }
        }
    }

    fn check_probe(&mut self, path: &str, c: &Component, probe: &Probe) {
        let kinds = [probe.http.is_some(), probe.tcp.is_some(), probe.exec.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.push(path.to_string(), "give exactly one of http, tcp or exec");
        }
        let port_ref = probe.http.as_ref().map(|h| &h.port).or(probe.tcp.as_ref().map(|t| &t.port));
        let kind = if probe.http.is_some() { "http" } else { "tcp" };
        match port_ref {
            Some(PortRef::Name(name)) if !c.service_ports.iter().any(|p| &p.name == name) => self.push(
                format!("{path}.{kind}.port"),
                unknown("port", name, c.service_ports.iter().map(|p| p.name.as_str())),
            ),
            Some(PortRef::Number(n)) if *n == 0 || *n > 65535 => {
                self.push(format!("{path}.{kind}.port"), format!("{n} is not a port number"))
            }
            _ => {}
        }
        if let Some(http) = &probe.http {
            if !http.path.starts_with('/') {
                self.push(format!("{path}.http.path"), format!("{} must start with '/'", quote(&http.path)));
            }
            if let Some(scheme) = &http.scheme {
                if scheme != "HTTP" && scheme != "HTTPS" {
                    self.push(format!("{path}.http.scheme"), format!("{} must be HTTP or HTTPS", quote(scheme)));
                }
            }
        }
        if probe.exec.as_ref().is_some_and(|e| e.is_empty()) {
            self.push(format!("{path}.exec"), "the command must not be empty");
        }
        if probe.exec.as_ref().is_some_and(|e| e.iter().any(|a| a.contains('\0'))) {
            self.push(format!("{path}.exec"), "contains a NUL character");
        }
        if let Some(http) = &probe.http {
            if http.path.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
                self.push(format!("{path}.http.path"), "must not contain whitespace or control characters");
            }
        }
        for (field, value) in [
            ("initial_delay_seconds", probe.initial_delay_seconds),
            ("period_seconds", probe.period_seconds),
            ("timeout_seconds", probe.timeout_seconds),
            ("failure_threshold", probe.failure_threshold),
        ] {
            if value.is_some_and(|v| v > MAX_INT32) {
                self.push(format!("{path}.{field}"), format!("at most {MAX_INT32}"));
            }
        }
    }

    fn check_volumes(&mut self, sdl: &Sdl) {
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, volume) in sdl.volumes.iter().enumerate() {
            let path = format!("volumes[{i}]");
            if let Some(problem) = names::dns_label(&volume.name) {
                self.push(format!("{path}.name"), problem);
            }
            if volume.size_gb == 0 {
                self.push(format!("{path}.size_gb"), "must be at least 1 (GiB)");
            }
            if let Some(&j) = first.get(volume.name.as_str()) {
                let other = &sdl.volumes[j];
                if volume.shared && other.shared && volume.size_gb != other.size_gb {
                    self.push(
                        format!("{path}.size_gb"),
                        format!(
                            "shared volume \"{}\" is declared again with {} GiB; volumes[{j}] says {} GiB",
                            volume.name, volume.size_gb, other.size_gb
                        ),
                    );
                } else if volume != other {
                    self.push(
                        format!("{path}.name"),
                        format!("volume \"{}\" is already declared by volumes[{j}]", volume.name),
                    );
                }
                continue;
            }
            first.insert(&volume.name, i);
            let mounted_by: Vec<&str> = sdl
                .all_workloads()
                .filter(|(_, _, c)| c.volume_mounts.iter().any(|m| m.volume_name == volume.name))
                .map(|(_, _, c)| c.name.as_str())
                .collect();
            if mounted_by.is_empty() {
                self.push(path, format!("volume \"{}\" is not mounted by any component", volume.name));
            } else if !volume.shared && mounted_by.len() > 1 {
                self.push(
                    format!("{path}.shared"),
                    format!(
                        "volume \"{}\" is mounted by {}; a volume used by several components must be shared",
                        volume.name,
                        mounted_by.join(", ")
                    ),
                );
            }
        }
    }

    fn check_parameters(&mut self, sdl: &Sdl) {
        let used = used_parameters(sdl);
        let ca_ids: Vec<&str> = sdl
            .parameters
            .iter()
            .filter_map(|p| p.generator.as_ref())
            .filter(|g| g.generate.kind == GeneratorType::CACertificate)
            .map(|g| g.id.as_str())
            .collect();
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        let mut generators: BTreeMap<&str, (usize, BTreeSet<ValueType>)> = BTreeMap::new();
        for (i, p) in sdl.parameters.iter().enumerate() {
            let path = format!("parameters[{i}]");
            if let Some(&j) = first.get(p.name.as_str()) {
                self.push(
                    format!("{path}.name"),
                    format!("parameter \"{}\" is already declared by parameters[{j}]", p.name),
                );
                continue;
            }
            first.insert(&p.name, i);
            let name_problem = if p.secret { names::secret_key(&p.name) } else { names::env_name(&p.name) };
            if let Some(problem) = name_problem {
                self.push(format!("{path}.name"), problem);
            } else if p.name.starts_with("HCP_") {
                self.push(format!("{path}.name"), "names starting with HCP_ are reserved for platform variables");
            }
            if !used.contains(p.name.as_str()) {
                self.push(path.clone(), format!("parameter \"{}\" is not used by any component", p.name));
            }
            if let Some(default) = &p.default {
                if let Some(problem) = check_value(p, default) {
                    self.push(format!("{path}.default"), problem);
                }
            }
            let Some(generator) = &p.generator else {
                continue;
            };
            let g = &generator.generate;
            let gen_path = format!("{path}.generator");
            if !p.secret {
                self.push(format!("{path}.secret"), "a generated parameter must be secret");
            }
            if generator.id.is_empty() {
                self.push(format!("{gen_path}.id"), "must not be empty");
            }
            if let Some(days) = g.valid_days.filter(|d| *d == 0 || *d > MAX_VALID_DAYS) {
                self.push(
                    format!("{gen_path}.generate.valid_days"),
                    format!("{days} is out of range: 1 to {MAX_VALID_DAYS} days"),
                );
            }
            let allowed: &[ValueType] = match g.kind {
                GeneratorType::Password => &[],
                GeneratorType::CACertificate | GeneratorType::Certificate => {
                    &[ValueType::Certificate, ValueType::PrivateKey]
                }
                GeneratorType::SSH => &[ValueType::PrivateKey, ValueType::PublicKey, ValueType::Fingerprint],
            };
            match (g.value_type, allowed.is_empty()) {
                (Some(_), true) => self.push(format!("{gen_path}.generate.value_type"), "a Password has no value_type"),
                (None, false) => self.push(
                    format!("{gen_path}.generate.value_type"),
                    format!("required for {:?}: one of {}", g.kind, value_type_list(allowed)),
                ),
                (Some(vt), false) if !allowed.contains(&vt) => self.push(
                    format!("{gen_path}.generate.value_type"),
                    format!("{vt:?} is not produced by {:?}: expected one of {}", g.kind, value_type_list(allowed)),
                ),
                _ => {}
            }
            if g.kind == GeneratorType::Password {
                if let Some(length) = g.length {
                    if !(8..=4096).contains(&length) {
                        self.push(
                            format!("{gen_path}.generate.length"),
                            format!("{length} is out of range: 8 to 4096"),
                        );
                    }
                }
                if let Some(chars) = &g.characters {
                    if chars.is_empty() || !chars.chars().all(|ch| ch.is_ascii_graphic()) {
                        self.push(
                            format!("{gen_path}.generate.characters"),
                            "must be a non-empty set of printable ASCII characters",
                        );
                    }
                }
            } else if g.length.is_some() || g.characters.is_some() {
                self.push(format!("{gen_path}.generate"), "length and characters apply only to a Password");
            }
            if let Some(bits) = g.key_length {
                if g.kind == GeneratorType::Password || bits != 256 {
                    self.push(
                        format!("{gen_path}.generate.key_length"),
                        format!("{bits} is not supported: keys are ECDSA P-256 (certificates) or Ed25519 (SSH), key_length 256"),
                    );
                }
            }
            if g.kind == GeneratorType::Certificate {
                match &g.ca {
                    Some(ca) if !ca_ids.contains(&ca.as_str()) => self.push(
                        format!("{gen_path}.generate.ca"),
                        unknown("CA generator id", ca, ca_ids.iter().copied()),
                    ),
                    None if ca_ids.iter().collect::<BTreeSet<_>>().len() != 1 => self.push(
                        format!("{gen_path}.generate.ca"),
                        "name the CA generator id: the SDL does not have exactly one CACertificate",
                    ),
                    _ => {}
                }
                for (j, san) in g.subject_alt_names.iter().enumerate() {
                    self.check_references(sdl, &format!("{gen_path}.generate.subject_alt_names[{j}]"), san);
                }
            } else {
                if !g.subject_alt_names.is_empty() {
                    self.push(
                        format!("{gen_path}.generate.subject_alt_names"),
                        "only a Certificate has subject_alt_names",
                    );
                }
                if g.ca.is_some() {
                    self.push(format!("{gen_path}.generate.ca"), "only a Certificate is signed by a CA");
                }
            }
            match generators.get_mut(generator.id.as_str()) {
                None => {
                    generators.insert(&generator.id, (i, g.value_type.into_iter().collect()));
                }
                Some((j, value_types)) => {
                    let mut other =
                        sdl.parameters[*j].generator.as_ref().map(|o| o.generate.clone()).unwrap_or_default();
                    other.value_type = g.value_type;
                    if &other != g {
                        self.push(
                            format!("{gen_path}.generate"),
                            format!("generator \"{}\" is declared differently by parameters[{j}]", generator.id),
                        );
                    } else if let Some(vt) = g.value_type {
                        if !value_types.insert(vt) {
                            self.push(
                                format!("{gen_path}.generate.value_type"),
                                format!(
                                    "another parameter already receives the {vt:?} of generator \"{}\"",
                                    generator.id
                                ),
                            );
                        }
                    } else {
                        self.push(
                            format!("{gen_path}.id"),
                            format!("two parameters receive the same password of generator \"{}\"", generator.id),
                        );
                    }
                }
            }
        }
    }

    /// Checks every `${NAME}` in `text` names a non-secret parameter or a platform variable.
    fn check_references(&mut self, sdl: &Sdl, path: &str, text: &str) {
        match template::references(text) {
            Err(problem) => self.push(path.to_string(), problem),
            Ok(names) => {
                for name in names {
                    match sdl.parameter(name) {
                        Some(p) if p.secret => {
                            self.push(path.to_string(), format!("\"${{{name}}}\" refers to a secret parameter"))
                        }
                        Some(_) => {}
                        None if PLATFORM_VARIABLES.contains(&name) => {}
                        None => self.push(
                            path.to_string(),
                            unknown(
                                "parameter",
                                name,
                                sdl.parameters.iter().map(|p| p.name.as_str()).chain(PLATFORM_VARIABLES),
                            ),
                        ),
                    }
                }
            }
        }
    }

    fn check_bindings(&mut self, sdl: &Sdl) {
        let Some(bindings) = &sdl.bindings else {
            return;
        };
        if let Some(problem) = names::dns_label(&bindings.binding_type) {
            self.push("bindings.type", problem);
        }
        if let Some(problem) = bindings.provider.as_deref().and_then(names::dns_label) {
            self.push("bindings.provider", problem);
        }
        let endpoint = &bindings.endpoint;
        match sdl.component(&endpoint.component) {
            None => self.push(
                "bindings.endpoint.component",
                unknown("component", &endpoint.component, sdl.components.iter().map(|c| c.name.as_str())),
            ),
            Some(c) if !c.service_ports.iter().any(|p| p.name == endpoint.port) => self.push(
                "bindings.endpoint.port",
                unknown(
                    &format!("port of component {}:", quote(&c.name)),
                    &endpoint.port,
                    c.service_ports.iter().map(|p| p.name.as_str()),
                ),
            ),
            Some(_) => {}
        }
        if let Some(user) = &bindings.user {
            if !(8..=63).contains(&user.max_length) {
                self.push("bindings.user.max_length", format!("{} is out of range; expected 8 to 63", user.max_length));
            }
            if !(16..=128).contains(&user.password_length) {
                self.push(
                    "bindings.user.password_length",
                    format!("{} is out of range; expected 16 to 128", user.password_length),
                );
            }
        }
        if bindings.credentials.len() > MAX_BINDING_KEYS {
            self.push(
                "bindings.credentials",
                format!("{} keys; at most {MAX_BINDING_KEYS} are allowed", bindings.credentials.len()),
            );
            return;
        }
        let reserved = Bindings::reserved_keys(bindings.user.is_some());
        for (key, text) in &bindings.credentials {
            let path = format!("bindings.credentials.{key}");
            let key_ok = !key.is_empty()
                && key.len() <= 253
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !key_ok {
                self.push(
                    path.clone(),
                    format!("{} is not a Secret key: use letters, digits, '-', '_' and '.' (at most 253)", quote(key)),
                );
            } else if reserved.contains(&key.as_str()) {
                let why = if matches!(key.as_str(), "username" | "password") {
                    "set from the generated per-binding user (bindings.user)"
                } else {
                    "set by Stratus"
                };
                self.push(path.clone(), format!("key {} is {why}", quote(key)));
            }
            match template::references(text) {
                Err(problem) => self.push(path, problem),
                Ok(references) => {
                    let variables = Bindings::variables(bindings.user.is_some());
                    for name in references {
                        if sdl.parameter(name).is_some()
                            || PLATFORM_VARIABLES.contains(&name)
                            || variables.contains(&name)
                        {
                            continue;
                        }
                        let hint = if bindings.user.is_none() && Bindings::variables(true).contains(&name) {
                            format!("\"${{{name}}}\" needs per-binding credentials (bindings.user)")
                        } else {
                            unknown(
                                "parameter",
                                name,
                                sdl.parameters
                                    .iter()
                                    .map(|p| p.name.as_str())
                                    .chain(PLATFORM_VARIABLES)
                                    .chain(variables.iter().copied()),
                            )
                        };
                        self.push(path.clone(), hint);
                    }
                }
            }
        }
        for (field, job) in [("bind_job", &bindings.bind_job), ("unbind_job", &bindings.unbind_job)] {
            if let Some(job) = job {
                self.check_workload(sdl, &format!("bindings.{field}"), true, job);
            }
        }
    }

    fn check_features(&mut self, sdl: &Sdl) {
        let Some(features) = &sdl.features else {
            return;
        };
        for (i, zone) in features.auth.iter().enumerate() {
            let path = format!("features.auth[{i}]");
            if let Some(problem) = names::dns_label(&zone.auth_zone) {
                self.push(format!("{path}.auth_zone"), problem);
            }
            let mut ids = BTreeSet::new();
            for (j, client) in zone.clients.iter().enumerate() {
                let client_path = format!("{path}.clients[{j}]");
                if client.id.is_empty() {
                    self.push(format!("{client_path}.id"), "must not be empty");
                } else if !ids.insert(client.id.as_str()) {
                    self.push(format!("{client_path}.id"), format!("client {} is declared twice", quote(&client.id)));
                }
                if let Some(name) = &client.secret_parameter {
                    match sdl.parameter(name) {
                        None => self.push(
                            format!("{client_path}.secret_parameter"),
                            unknown("parameter", name, sdl.parameters.iter().map(|p| p.name.as_str())),
                        ),
                        Some(p) if !p.secret => self.push(
                            format!("{client_path}.secret_parameter"),
                            format!("parameter \"{name}\" holds a client secret, so it must be secret"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn check_dependency_cycles(&mut self, sdl: &Sdl) {
        if let Some(cycle) = dependency_cycle(sdl) {
            let start = sdl.components.iter().position(|c| c.name == cycle[0]).unwrap_or(0);
            self.push(format!("components[{start}].depends_on"), format!("dependency cycle: {}", cycle.join(" -> ")));
        }
    }
}

/// Which field of a structured image (`repository`, `organization`, `image`, `tag`) makes
/// the whole reference invalid.
/// Why `resource` is not a resource as an RBAC rule names it (`secrets`, `instances/status`,
/// `*`), if it is not.
fn resource_problem(resource: &str) -> Option<String> {
    let part = |p: &str| {
        p == "*"
            || (!p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    };
    let ok = match resource.split_once('/') {
        Some((name, sub)) => part(name) && part(sub) && !sub.contains('/'),
        None => part(resource),
    };
    (!ok).then(|| format!("{} is not a resource name (e.g. secrets, deployments/scale or *)", quote(resource)))
}

fn structured_image_culprit(c: &Component) -> &'static str {
    let bad = |reference: String| names::image_reference(&reference).is_some();
    if c.tag.as_ref().is_some_and(|tag| bad(format!("a:{tag}"))) {
        "tag"
    } else if c.repository.as_ref().is_some_and(|registry| bad(format!("{registry}/a:1"))) {
        "repository"
    } else if c.organization.as_ref().is_some_and(|org| bad(format!("registry.io/{org}/a:1"))) {
        "organization"
    } else {
        "image"
    }
}

/// Why `vcpu` (finite, positive) cannot be a CPU quantity, if it cannot: above
/// [`MAX_VCPU`], or finer than a thousandth (Kubernetes counts millicores).
fn vcpu_problem(vcpu: f64) -> Option<String> {
    if vcpu > MAX_VCPU {
        return Some(format!("{vcpu} is more than the {MAX_VCPU} virtual CPUs allowed"));
    }
    let millicores = vcpu * 1000.0;
    if (millicores - millicores.round()).abs() > 1e-6 {
        return Some(format!("{vcpu} is finer than a thousandth of a CPU (Kubernetes counts millicores)"));
    }
    None
}

fn value_type_list(types: &[ValueType]) -> String {
    let names: Vec<String> = types
        .iter()
        .map(|t| serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
        .collect();
    names.join(", ")
}

/// Names of parameters referenced anywhere in the SDL.
fn used_parameters(sdl: &Sdl) -> BTreeSet<&str> {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    if let Some(bindings) = &sdl.bindings {
        for text in bindings.credentials.values() {
            used.extend(template::references(text).unwrap_or_default());
        }
        for job in bindings.jobs() {
            used.extend(job.parameters.iter().map(String::as_str));
        }
    }
    for (_, _, c) in sdl.all_workloads() {
        used.extend(c.parameters.iter().map(String::as_str));
        if let Some(external) = &c.external_name {
            used.extend(template::references(external).unwrap_or_default());
        }
    }
    for p in &sdl.parameters {
        if let Some(g) = &p.generator {
            for san in &g.generate.subject_alt_names {
                used.extend(template::references(san).unwrap_or_default());
            }
        }
    }
    if let Some(features) = &sdl.features {
        for zone in &features.auth {
            used.extend(zone.clients.iter().filter_map(|c| c.secret_parameter.as_deref()));
        }
    }
    used
}

/// The first dependency cycle among components, as names ending where they began.
pub fn dependency_cycle(sdl: &Sdl) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        sdl: &'a Sdl,
        name: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Active => {
                let start = stack.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            Mark::New => {}
        }
        marks.insert(name, Mark::Active);
        stack.push(name);
        if let Some(component) = sdl.component(name) {
            // Self-dependencies are reported on their own.
            for dep in component.depends_on.iter().filter(|d| *d != name) {
                if let Some(cycle) = visit(sdl, dep, marks, stack) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for c in &sdl.components {
        if let Some(cycle) = visit(sdl, &c.name, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
