//! The deployment files agree with the binary: every `vigil` command in
//! `docker-compose.yml` and `deploy/k8s/*.yaml`, with every `VIGIL_*`
//! variable given to it turned into its flag, is accepted by `vigil`
//! (unknown flags, unknown variables and invalid values fail here rather
//! than in a cluster), and every Kubernetes workload probes `/healthz` and
//! `/readyz` on the port the service listens on.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_yaml_ng::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
            value
        })
        .collect()
}

/// `VIGIL_*` variable → the long flag it sets, for one role, read from
/// `vigil <role…> --help`.
fn env_flags(role: &[String]) -> BTreeMap<String, String> {
    let mut args: Vec<&str> = role.iter().map(String::as_str).collect();
    args.push("--help");
    let (code, out, err) = common::run_vigil(&args, None).expect("vigil runs");
    assert_eq!(code, 0, "vigil {role:?} --help: {err}");
    let mut map = BTreeMap::new();
    let mut flag = None;
    for line in out.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--").or_else(|| {
            trimmed
                .strip_prefix('-')
                .and_then(|r| r.split_once(", --").map(|(_, f)| f))
        }) {
            flag = rest.split([' ', '=']).next().map(str::to_owned);
        }
        if let Some(start) = line.find("[env: ") {
            let name = line[start + 6..].split('=').next().unwrap_or_default();
            if let Some(f) = &flag {
                map.insert(name.to_owned(), f.clone());
            }
        }
    }
    assert!(!map.is_empty(), "no [env: …] in vigil {role:?} --help");
    map
}

/// How many leading words of a command name the role (`train`, or
/// `models keygen`).
fn role_of(args: &[String]) -> Vec<String> {
    let first = args.first().cloned().expect("a command");
    if first == "models" {
        args.iter().take(2).cloned().collect()
    } else {
        vec![first]
    }
}

/// Runs `vigil <args> <--flag value for each env> --help` and fails with a
/// message naming `what` when vigil refuses it. `shared` variables (from a
/// ConfigMap used by several roles) are passed only where the role has
/// them.
fn check_command(
    what: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    shared: &BTreeMap<String, String>,
) {
    let flags = env_flags(&role_of(args));
    let mut argv: Vec<String> = args.to_vec();
    for (name, value) in env {
        let flag = flags
            .get(name)
            .unwrap_or_else(|| panic!("{what}: vigil {args:?} has no variable {name}"));
        argv.push(format!("--{flag}={value}"));
    }
    for (name, value) in shared {
        if let Some(flag) = flags.get(name) {
            argv.push(format!("--{flag}={value}"));
        }
    }
    argv.push("--help".into());
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (code, _, err) = common::run_vigil(&refs, None).expect("vigil runs");
    assert_eq!(code, 0, "{what}: vigil refuses {argv:?}:\n{err}");
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().map(scalar).collect())
        .unwrap_or_default()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .expect("a YAML scalar prints")
            .trim()
            .to_owned(),
    }
}

#[test]
fn compose_services_run_commands_vigil_accepts() {
    let compose = load(&repo_root().join("docker-compose.yml")).remove(0);
    let services = compose["services"].as_mapping().expect("services");
    let mut checked = 0;
    for (name, service) in services {
        let name = scalar(name);
        let is_vigil = service["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("vigil:"));
        // Services that replace the entrypoint (a shell, the load
        // generator) do not run `vigil` directly.
        if !is_vigil || !service["entrypoint"].is_null() {
            continue;
        }
        let args = strings(&service["command"]);
        let env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .map(|m| m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect())
            .unwrap_or_default();
        let (own, shared): (BTreeMap<_, _>, BTreeMap<_, _>) = env
            .into_iter()
            .partition(|(k, _)| !is_shared_compose_var(k));
        check_command(&format!("compose service {name}"), &args, &own, &shared);
        checked += 1;
    }
    assert!(
        checked >= 4,
        "only {checked} vigil services in docker-compose.yml"
    );
}

/// Variables set for every compose service from one anchor, whether or
/// not that role reads them.
fn is_shared_compose_var(name: &str) -> bool {
    matches!(
        name,
        "VIGIL_KAFKA_BROKERS"
            | "VIGIL_MQTT_URL"
            | "VIGIL_HTTP_ADDR"
            | "VIGIL_LOG_FORMAT"
            | "VIGIL_LOG"
            | "VIGIL_KAFKA_PARTITIONS"
    )
}

#[test]
fn kubernetes_workloads_run_commands_vigil_accepts_and_probe_health() {
    let dir = repo_root().join("deploy/k8s");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/k8s") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            docs.extend(load(&path).into_iter().map(|d| (path.clone(), d)));
        }
    }
    let config: BTreeMap<String, String> = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "vigil-config")
        .and_then(|(_, d)| d["data"].as_mapping())
        .expect("ConfigMap vigil-config")
        .iter()
        .map(|(k, v)| (scalar(k), scalar(v)))
        .collect();
    let http_port: u64 = config["VIGIL_HTTP_ADDR"]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("VIGIL_HTTP_ADDR has a port");

    let mut used: BTreeMap<String, bool> = config.keys().map(|k| (k.clone(), false)).collect();
    let mut checked = 0;
    for (path, doc) in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let pod = match kind {
            "Deployment" | "StatefulSet" => &doc["spec"]["template"]["spec"],
            "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        for container in pod["containers"].as_sequence().expect("containers") {
            let what = format!("{} {}/{}", path.display(), kind, scalar(&container["name"]));
            assert_eq!(container["image"], "vigil", "{what}: image");
            let args = strings(&container["args"]);
            let env: BTreeMap<String, String> = container["env"]
                .as_sequence()
                .map(|list| {
                    list.iter()
                        .map(|e| {
                            let value = if e["value"].is_null() {
                                "from-the-pod".to_owned()
                            } else {
                                scalar(&e["value"])
                            };
                            (scalar(&e["name"]), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let uses_config = container["envFrom"].as_sequence().is_some_and(|l| {
                l.iter()
                    .any(|e| e["configMapRef"]["name"] == "vigil-config")
            });
            let shared = if uses_config {
                config.clone()
            } else {
                BTreeMap::new()
            };
            check_command(&what, &args, &env, &shared);
            let flags = env_flags(&role_of(&args));
            for name in shared.keys() {
                if flags.contains_key(name) {
                    used.insert(name.clone(), true);
                }
            }
            checked += 1;

            if kind != "CronJob" {
                let port = &container["ports"][0]["containerPort"];
                assert_eq!(port.as_u64(), Some(http_port), "{what}: containerPort");
                assert_eq!(
                    container["livenessProbe"]["httpGet"]["path"], "/healthz",
                    "{what}: liveness probe"
                );
                assert_eq!(
                    container["readinessProbe"]["httpGet"]["path"], "/readyz",
                    "{what}: readiness probe"
                );
            }
        }
    }
    assert!(
        checked >= 4,
        "only {checked} vigil containers in deploy/k8s"
    );
    let unused: Vec<_> = used.iter().filter(|(_, u)| !**u).map(|(k, _)| k).collect();
    assert!(
        unused.is_empty(),
        "ConfigMap variables no workload reads: {unused:?}"
    );
}
