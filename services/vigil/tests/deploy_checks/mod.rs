//! Checks of the deployment files for the defects they once had, as
//! functions from parsed YAML to a list of violations (empty when the
//! files are right), so `tests/deploy.rs` runs them on the real files and
//! on seeded broken manifests alike:
//!
//! - Kubernetes: every workload meets the Pod Security "restricted"
//!   fields (plus a read-only root filesystem); every mounted secret is
//!   readable by the pod's user; every container of a role that creates
//!   Kafka topics gets the whole Kafka configuration; ingest and push are
//!   StatefulSets, every StatefulSet is labelled and governed by a
//!   headless Service; PodDisruptionBudgets cover the long-running roles;
//!   the scorers' autoscalers stay within the partition count.
//! - Compose: the signing key only in the trainer, published ports on
//!   127.0.0.1 by default, a health check on every Vigil service and
//!   `service_healthy` on every dependency that has one, the Kafka volume
//!   where Kafka writes and a listener advertised for the host.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

/// The pod spec of a workload, or `None` for other kinds.
pub fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// `Kind/name` of a document.
pub fn name_of(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod[*k].as_sequence())
        .flatten()
        .collect()
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

/// A container's setting, falling back to the pod's.
fn effective<'a>(container: &'a Value, pod: &'a Value, key: &str) -> &'a Value {
    let own = &container["securityContext"][key];
    if own.is_null() {
        &pod["securityContext"][key]
    } else {
        own
    }
}

/// Volume types the "restricted" standard allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// What keeps the workload `doc` from the Pod Security "restricted"
/// standard (and from a read-only root filesystem with a writable
/// `/tmp`).
pub fn restricted_violations(doc: &Value) -> Vec<String> {
    let Some(pod) = pod_spec(doc) else {
        return Vec::new();
    };
    let what = name_of(doc);
    let mut bad = Vec::new();
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(&pod[key]) {
            bad.push(format!("{what}: {key}"));
        }
    }
    for volume in pod["volumes"].as_sequence().into_iter().flatten() {
        let kind = volume
            .as_mapping()
            .and_then(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .find(|k| *k != "name")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
            bad.push(format!("{what}: volume type {kind:?}"));
        }
    }
    for c in containers(pod) {
        let cw = format!("{what} container {}", c["name"].as_str().unwrap_or("?"));
        if !is_true(effective(c, pod, "runAsNonRoot")) {
            bad.push(format!("{cw}: runAsNonRoot is not true"));
        }
        if effective(c, pod, "runAsUser").as_u64() == Some(0) {
            bad.push(format!("{cw}: runAsUser 0"));
        }
        let seccomp = effective(c, pod, "seccompProfile")["type"].as_str();
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            bad.push(format!("{cw}: seccompProfile is {seccomp:?}"));
        }
        let sc = &c["securityContext"];
        if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
            bad.push(format!("{cw}: allowPrivilegeEscalation is not false"));
        }
        if is_true(&sc["privileged"]) {
            bad.push(format!("{cw}: privileged"));
        }
        let drops: Vec<&str> = sc["capabilities"]["drop"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !drops.contains(&"ALL") {
            bad.push(format!("{cw}: capabilities do not drop ALL"));
        }
        for add in sc["capabilities"]["add"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if add.as_str() != Some("NET_BIND_SERVICE") {
                bad.push(format!("{cw}: adds capability {add:?}"));
            }
        }
        if !is_true(&sc["readOnlyRootFilesystem"]) {
            bad.push(format!("{cw}: readOnlyRootFilesystem is not true"));
        }
        let tmp_is_empty_dir = c["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|m| m["mountPath"] == "/tmp")
            .any(|m| {
                pod["volumes"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|v| v["name"] == m["name"] && !v["emptyDir"].is_null())
            });
        if !tmp_is_empty_dir {
            bad.push(format!("{cw}: no emptyDir on /tmp"));
        }
    }
    bad
}

/// The mode a secret volume gives the files a container sees.
fn secret_file_modes(volume: &Value) -> Vec<(String, u64)> {
    let secret = &volume["secret"];
    let default = secret["defaultMode"].as_u64().unwrap_or(0o644);
    match secret["items"].as_sequence() {
        Some(items) => items
            .iter()
            .map(|i| {
                (
                    i["path"].as_str().unwrap_or("?").to_owned(),
                    i["mode"].as_u64().unwrap_or(default),
                )
            })
            .collect(),
        None => vec![("*".to_owned(), default)],
    }
}

/// Secret files mounted into a container that its user cannot read.
/// Kubernetes writes them owned by root, in group `fsGroup` when the pod
/// sets one (and root's group otherwise); the container's process runs
/// as `runAsUser` with `fsGroup` among its groups.
pub fn unreadable_secret_violations(doc: &Value) -> Vec<String> {
    let Some(pod) = pod_spec(doc) else {
        return Vec::new();
    };
    let what = name_of(doc);
    let fs_group = pod["securityContext"]["fsGroup"].as_u64();
    let mut bad = Vec::new();
    for c in containers(pod) {
        let user = effective(c, pod, "runAsUser").as_u64();
        let group = effective(c, pod, "runAsGroup").as_u64();
        let mut groups: BTreeSet<u64> = group.into_iter().chain(fs_group).collect();
        groups.extend(
            pod["securityContext"]["supplementalGroups"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
        let file_group = fs_group.unwrap_or(0);
        for mount in c["volumeMounts"].as_sequence().into_iter().flatten() {
            let Some(volume) = pod["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == mount["name"] && !v["secret"].is_null())
            else {
                continue;
            };
            for (path, mode) in secret_file_modes(volume) {
                let readable = match user {
                    Some(0) => mode & 0o400 != 0,
                    _ => mode & 0o004 != 0 || (groups.contains(&file_group) && mode & 0o040 != 0),
                };
                if !readable {
                    bad.push(format!(
                        "{what}: {}/{path} (mode {mode:o}, owner 0, group {file_group}) is not readable by user {user:?} in groups {groups:?}",
                        mount["mountPath"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    bad
}

/// The Kafka settings every topic-creating role must be given.
pub const KAFKA_KEYS: &[&str] = &[
    "VIGIL_KAFKA_BROKERS",
    "VIGIL_KAFKA_PARTITIONS",
    "VIGIL_KAFKA_REPLICATION_FACTOR",
    "VIGIL_KAFKA_OPTIONS",
];

/// Containers of roles that create topics (`creates_topics(role)` says
/// which: those with `VIGIL_KAFKA_CREATE_TOPICS`) lacking the whole Kafka
/// configuration: the ConfigMap `vigil-kafka` (which must hold every
/// [`KAFKA_KEYS`]) and the optional Secret `vigil-kafka-auth` from
/// `envFrom`, and no `VIGIL_KAFKA_*` of their own that would differ from
/// the other roles'.
pub fn kafka_config_violations(
    docs: &[Value],
    creates_topics: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut bad = Vec::new();
    match docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "vigil-kafka")
    {
        Some(map) => {
            for key in KAFKA_KEYS {
                if map["data"][*key].is_null() {
                    bad.push(format!("ConfigMap/vigil-kafka: no {key}"));
                }
            }
        }
        None => bad.push("no ConfigMap vigil-kafka".into()),
    }
    for doc in docs {
        let Some(pod) = pod_spec(doc) else { continue };
        for c in containers(pod) {
            let role = c["args"][0].as_str().unwrap_or_default();
            if !creates_topics(role) {
                continue;
            }
            let cw = format!(
                "{} container {}",
                name_of(doc),
                c["name"].as_str().unwrap_or("?")
            );
            let from: Vec<&Value> = c["envFrom"].as_sequence().into_iter().flatten().collect();
            if !from
                .iter()
                .any(|e| e["configMapRef"]["name"] == "vigil-kafka")
            {
                bad.push(format!(
                    "{cw} (vigil {role}): no envFrom ConfigMap vigil-kafka"
                ));
            }
            if !from
                .iter()
                .any(|e| e["secretRef"]["name"] == "vigil-kafka-auth")
            {
                bad.push(format!(
                    "{cw} (vigil {role}): no envFrom Secret vigil-kafka-auth"
                ));
            }
            for e in c["env"].as_sequence().into_iter().flatten() {
                let name = e["name"].as_str().unwrap_or_default();
                if name.starts_with("VIGIL_KAFKA_") {
                    bad.push(format!("{cw}: sets {name} itself"));
                }
            }
        }
    }
    bad
}

/// API tokens: the ConfigMap `vigil-config` names `VIGIL_API_TOKENS_FILE`
/// when `VIGIL_HTTP_ADDR` is not a loopback address (else every role
/// refuses to start), and every container reading that ConfigMap mounts
/// the Secret `vigil-api-tokens` at the file's folder.
pub fn api_token_violations(docs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(config) = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "vigil-config")
    else {
        return vec!["no ConfigMap vigil-config".into()];
    };
    let addr = config["data"]["VIGIL_HTTP_ADDR"]
        .as_str()
        .unwrap_or("127.0.0.1:8080");
    let loopback = addr.starts_with("127.") || addr.starts_with("[::1]");
    let Some(file) = config["data"]["VIGIL_API_TOKENS_FILE"].as_str() else {
        if !loopback {
            bad.push(format!(
                "ConfigMap/vigil-config: VIGIL_HTTP_ADDR {addr} without VIGIL_API_TOKENS_FILE"
            ));
        }
        return bad;
    };
    let folder = file.rsplit_once('/').map_or("", |(d, _)| d);
    for doc in docs {
        let Some(pod) = pod_spec(doc) else { continue };
        let tokens_volumes: Vec<&str> = pod["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|v| v["secret"]["secretName"] == "vigil-api-tokens")
            .filter_map(|v| v["name"].as_str())
            .collect();
        for c in containers(pod) {
            let reads_config = c["envFrom"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|e| e["configMapRef"]["name"] == "vigil-config");
            if !reads_config {
                continue;
            }
            let mounted = c["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["mountPath"] == folder
                        && m["name"]
                            .as_str()
                            .is_some_and(|n| tokens_volumes.contains(&n))
                });
            if !mounted {
                bad.push(format!(
                    "{} container {}: VIGIL_API_TOKENS_FILE {file} but no Secret vigil-api-tokens mounted at {folder}",
                    name_of(doc),
                    c["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    bad
}

/// Workload kinds by component label, and StatefulSets without labels or
/// a headless governing Service, and components without a disruption
/// budget: ingest, push, score and audit must be StatefulSets (stable
/// names: MQTT client ids, static group membership).
pub fn workload_shape_violations(docs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let component = |d: &Value| {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let kinds: BTreeMap<String, String> = docs
        .iter()
        .filter(|d| pod_spec(d).is_some() && d["kind"] != "CronJob" && d["kind"] != "Job")
        .map(|d| {
            (
                component(d),
                d["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for role in ["ingest", "push", "score", "audit"] {
        match kinds.get(role) {
            Some(kind) if kind == "StatefulSet" => {}
            other => bad.push(format!("{role}: a {other:?}, not a StatefulSet")),
        }
        let has_pdb = docs.iter().any(|d| {
            d["kind"] == "PodDisruptionBudget"
                && d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == role
        });
        if !has_pdb {
            bad.push(format!("{role}: no PodDisruptionBudget"));
        }
    }
    for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
        let what = name_of(set);
        if set["metadata"]["labels"]
            .as_mapping()
            .is_none_or(|m| m.is_empty())
        {
            bad.push(format!("{what}: no labels"));
        }
        let service = set["spec"]["serviceName"].as_str().unwrap_or_default();
        let governing = docs
            .iter()
            .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == service);
        match governing {
            None => bad.push(format!("{what}: no Service {service:?}")),
            Some(svc) => {
                if svc["spec"]["clusterIP"] != "None" {
                    bad.push(format!("{what}: Service {service} is not headless"));
                }
                let pod_labels = &set["spec"]["template"]["metadata"]["labels"];
                let selects = svc["spec"]["selector"]
                    .as_mapping()
                    .is_some_and(|m| m.iter().all(|(k, v)| &pod_labels[k] == v));
                if !selects {
                    bad.push(format!(
                        "{what}: Service {service} does not select its pods"
                    ));
                }
            }
        }
    }
    bad
}

/// Autoscalers of the scorers beyond the partition count of
/// `vigil-kafka`, or (KEDA) on other brokers, group or topic than the
/// scorers use.
pub fn autoscaler_violations(docs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let kafka = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "vigil-kafka");
    let partitions: u64 = kafka
        .and_then(|k| k["data"]["VIGIL_KAFKA_PARTITIONS"].as_str())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let brokers = kafka.and_then(|k| k["data"]["VIGIL_KAFKA_BROKERS"].as_str());
    for doc in docs {
        let (max, target) = match doc["kind"].as_str() {
            Some("ScaledObject") => (
                &doc["spec"]["maxReplicaCount"],
                &doc["spec"]["scaleTargetRef"],
            ),
            Some("HorizontalPodAutoscaler") => {
                (&doc["spec"]["maxReplicas"], &doc["spec"]["scaleTargetRef"])
            }
            _ => continue,
        };
        let what = name_of(doc);
        match max.as_u64() {
            Some(m) if m <= partitions => {}
            m => bad.push(format!(
                "{what}: max replicas {m:?} beyond {partitions} partitions"
            )),
        }
        if target["kind"] != "StatefulSet" || target["name"] != "vigil-score" {
            bad.push(format!(
                "{what}: scales {target:?}, not StatefulSet vigil-score"
            ));
        }
        if doc["kind"] == "ScaledObject" {
            let triggers = doc["spec"]["triggers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            let kafka_trigger = triggers.iter().find(|t| t["type"] == "kafka");
            match kafka_trigger {
                None => bad.push(format!("{what}: no kafka trigger")),
                Some(t) => {
                    let m = &t["metadata"];
                    if m["bootstrapServers"].as_str() != brokers {
                        bad.push(format!(
                            "{what}: bootstrapServers differ from VIGIL_KAFKA_BROKERS"
                        ));
                    }
                    if m["consumerGroup"] != "vigil-score" || m["topic"] != "vigil.telemetry" {
                        bad.push(format!("{what}: not the scorers' group and topic"));
                    }
                }
            }
        }
    }
    bad
}

/// `${VAR:-default}` replaced by its default (the value with VAR unset).
fn with_defaults(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The host address a compose port publishes on (`None`: every address).
fn published_host(port: &Value) -> Option<String> {
    match port {
        Value::String(s) => {
            let s = with_defaults(s);
            let parts: Vec<&str> = s.split(':').collect();
            (parts.len() == 3).then(|| parts[0].to_owned())
        }
        Value::Mapping(_) => port["host_ip"].as_str().map(with_defaults),
        _ => None,
    }
}

/// Compose defects: the signing key in a service other than the trainer
/// (and the one-shot `keys`), ports published beyond 127.0.0.1, a Vigil
/// service without a health check, a dependency on a service with a
/// health check that does not wait for it to be healthy, Kafka's volume
/// elsewhere than its log directory, no Kafka listener advertised on
/// 127.0.0.1, a Vigil service without the whole Kafka configuration.
pub fn compose_violations(compose: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(services) = compose["services"].as_mapping() else {
        return vec!["no services".into()];
    };
    let is_vigil = |s: &Value| s["image"].as_str().is_some_and(|i| i.starts_with("vigil:"));
    let has_health =
        |s: &Value| !s["healthcheck"]["test"].is_null() && !is_true(&s["healthcheck"]["disable"]);
    // The volume that holds the signing key: the one the trainer reads it
    // from.
    let mut key_volumes = BTreeSet::new();
    for (_, s) in services {
        if let Some(path) = s["environment"]["VIGIL_SIGNING_KEY"].as_str() {
            for v in s["volumes"].as_sequence().into_iter().flatten() {
                if let Some((vol, target)) = v.as_str().and_then(|v| v.split_once(':')) {
                    let target = target.split(':').next().unwrap_or_default();
                    if path.starts_with(&format!("{}/", target.trim_end_matches('/'))) {
                        key_volumes.insert(vol.to_owned());
                    }
                }
            }
        }
    }
    if key_volumes.is_empty() {
        bad.push("no service reads VIGIL_SIGNING_KEY from a volume".into());
    }
    for (name, s) in services {
        let name = name.as_str().unwrap_or("?");
        let trains = !s["environment"]["VIGIL_SIGNING_KEY"].is_null();
        for v in s["volumes"].as_sequence().into_iter().flatten() {
            let vol = v
                .as_str()
                .and_then(|v| v.split(':').next())
                .unwrap_or_default();
            if key_volumes.contains(vol) && !trains && name != "keys" {
                bad.push(format!("{name}: mounts the signing key volume {vol}"));
            }
        }
        for p in s["ports"].as_sequence().into_iter().flatten() {
            match published_host(p) {
                Some(h) if h == "127.0.0.1" || h == "localhost" || h == "::1" => {}
                h => bad.push(format!(
                    "{name}: port {p:?} published on {h:?}, not 127.0.0.1"
                )),
            }
        }
        if is_vigil(s) && s["entrypoint"].is_null() && !has_health(s) {
            bad.push(format!("{name}: no health check"));
        }
        if is_vigil(s) && s["entrypoint"].is_null() {
            for key in KAFKA_KEYS.iter().filter(|k| **k != "VIGIL_KAFKA_OPTIONS") {
                if s["environment"][*key].is_null() {
                    bad.push(format!("{name}: no {key}"));
                }
            }
        }
        for (dep, cond) in s["depends_on"].as_mapping().into_iter().flatten() {
            let dep_service = &compose["services"][dep];
            let condition = cond["condition"].as_str().unwrap_or("service_started");
            if has_health(dep_service) && condition != "service_healthy" {
                bad.push(format!(
                    "{name}: depends on {dep:?} with {condition}, not service_healthy"
                ));
            }
        }
    }
    let kafka = &compose["services"]["kafka"];
    let log_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
        .as_str()
        .unwrap_or("/tmp/kraft-combined-logs");
    let mounted = kafka["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|v| {
            v.as_str()
                .and_then(|v| v.split(':').nth(1))
                .is_some_and(|t| t.trim_end_matches('/') == log_dir.trim_end_matches('/'))
        });
    if !mounted {
        bad.push(format!("kafka: no volume at its log directory {log_dir}"));
    }
    let advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .unwrap_or_default();
    if !advertised.contains("://127.0.0.1:") && !advertised.contains("://localhost:") {
        bad.push(format!(
            "kafka: no listener advertised for the host ({advertised})"
        ));
    }
    bad
}
