//! The deployment files agree with the binary: every `vigil` command in
//! `docker-compose.yml` and `deploy/k8s/*.yaml`, with every `VIGIL_*`
//! variable given to it turned into its flag, is accepted by `vigil`
//! (unknown flags, unknown variables and invalid values fail here rather
//! than in a cluster), and every Kubernetes workload probes `/healthz` and
//! `/readyz` on the port the service listens on. Then the checks of
//! `deploy_checks` on the real files (restricted Pod Security, readable
//! keys, the whole Kafka configuration, StatefulSets, autoscalers, the
//! compose defects), and each check on a seeded broken manifest
//! (`deploy_seeded/`), so a check that no longer catches its defect fails
//! here too.

mod common;
mod deploy_checks;
mod deploy_seeded;

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
            // `[env: NAME=value]`, or `[env: NAME]` where values are hidden.
            let name = line[start + 6..]
                .split(['=', ']'])
                .next()
                .unwrap_or_default();
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
            | "VIGIL_KAFKA_REPLICATION_FACTOR"
    )
}

#[test]
fn kubernetes_workloads_run_commands_vigil_accepts_and_probe_health() {
    let docs = k8s_docs();
    // Each ConfigMap's variables, by name.
    let maps: BTreeMap<String, BTreeMap<String, String>> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ConfigMap")
        .map(|(_, d)| {
            let data = d["data"]
                .as_mapping()
                .map(|m| m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect())
                .unwrap_or_default();
            (scalar(&d["metadata"]["name"]), data)
        })
        .collect();
    let config = maps.get("vigil-config").expect("ConfigMap vigil-config");
    let http_port: u64 = config["VIGIL_HTTP_ADDR"]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("VIGIL_HTTP_ADDR has a port");

    // Variables only: a ConfigMap may also hold a mounted file (the
    // actions rules).
    let mut used: BTreeMap<String, bool> = maps
        .values()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with("VIGIL_"))
        .map(|k| (k.clone(), false))
        .collect();
    let mut checked = 0;
    for (path, doc) in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let pod = match kind {
            "Deployment" | "StatefulSet" | "Job" => &doc["spec"]["template"]["spec"],
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
            let mut shared = BTreeMap::new();
            for from in container["envFrom"].as_sequence().into_iter().flatten() {
                if let Some(name) = from["configMapRef"]["name"].as_str() {
                    let map = maps
                        .get(name)
                        .unwrap_or_else(|| panic!("{what}: no ConfigMap {name}"));
                    shared.extend(map.clone());
                }
            }
            check_command(&what, &args, &env, &shared);
            let flags = env_flags(&role_of(&args));
            for name in shared.keys() {
                if flags.contains_key(name) {
                    used.insert(name.clone(), true);
                }
            }
            checked += 1;

            if kind != "CronJob" && kind != "Job" {
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

/// Every YAML document under `deploy/k8s` (base, top level, overlays)
/// with its file, less the kustomization files.
fn k8s_docs() -> Vec<(PathBuf, Value)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Value)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && !path.ends_with("kustomization.yaml")
            {
                out.extend(load(&path).into_iter().map(|d| (path.clone(), d)));
            }
        }
    }
    let mut docs = Vec::new();
    walk(&repo_root().join("deploy/k8s"), &mut docs);
    docs
}

fn docs_only(docs: Vec<(PathBuf, Value)>) -> Vec<Value> {
    docs.into_iter().map(|(_, d)| d).collect()
}

/// Whether `vigil ROLE` creates Kafka topics (has VIGIL_KAFKA_CREATE_TOPICS).
fn creates_topics(role: &str) -> bool {
    env_flags(&[role.to_owned()]).contains_key("VIGIL_KAFKA_CREATE_TOPICS")
}

fn assert_none(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{what}:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn kubernetes_files_have_none_of_the_known_defects() {
    let docs = docs_only(k8s_docs());
    let workloads = docs.iter().filter(|d| deploy_checks::pod_spec(d).is_some());
    assert!(workloads.count() >= 7, "workloads in deploy/k8s");
    for doc in &docs {
        assert_none("restricted", deploy_checks::restricted_violations(doc));
        assert_none(
            "secrets readable",
            deploy_checks::unreadable_secret_violations(doc),
        );
    }
    assert_none(
        "kafka configuration",
        deploy_checks::kafka_config_violations(&docs, &creates_topics),
    );
    assert_none("workloads", deploy_checks::workload_shape_violations(&docs));
    assert_none("autoscalers", deploy_checks::autoscaler_violations(&docs));
    assert_none("API tokens", deploy_checks::api_token_violations(&docs));
    let scalers: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "ScaledObject" || d["kind"] == "HorizontalPodAutoscaler")
        .map(deploy_checks::name_of)
        .collect();
    assert_eq!(
        scalers.len(),
        2,
        "a KEDA ScaledObject and the CPU fallback: {scalers:?}"
    );
    // The trainer's key is mounted, and so checked above.
    let trainers = docs.iter().filter(|d| {
        deploy_checks::pod_spec(d).is_some_and(|p| {
            p["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|v| v["secret"]["items"][0]["key"] == "signing.key")
        })
    });
    assert_eq!(trainers.count(), 2, "the first-model Job and the CronJob");
}

#[test]
fn prometheus_rule_has_the_groups_of_the_rules_file() {
    let rules = load(&repo_root().join("deploy/prometheus/vigil.rules.yml")).remove(0);
    let docs = docs_only(k8s_docs());
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"], rules["groups"],
        "deploy/k8s/operators/monitoring.yaml differs from deploy/prometheus/vigil.rules.yml"
    );
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/vigil.rules.yml"))
        .expect("rules");
    let named = assert_metrics_exported("vigil.rules.yml", &text);
    assert!(named >= 8, "only {named} metric names in the rules");
}

/// Every `vigil_*` metric name in the source of every service, as quoted
/// in its registration.
fn exported_metrics() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut all = String::new();
    for entry in std::fs::read_dir(repo_root().join("services"))
        .expect("services")
        .flatten()
    {
        walk(&entry.path().join("src"), &mut all);
    }
    all
}

/// Asserts that every `vigil_*` name in `text` (histogram suffixes
/// dropped) is a metric a service registers; returns how many there were.
fn assert_metrics_exported(what: &str, text: &str) -> usize {
    let exported = exported_metrics();
    let mut named = 0;
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("vigil_") && word.len() > "vigil_".len() {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            named += 1;
            assert!(
                exported.contains(&format!("\"{base}\"")),
                "{what} uses {word}, which no service exports"
            );
        }
    }
    named
}

#[test]
fn grafana_dashboards_use_the_provisioned_datasource_and_exported_metrics() {
    let provisioned =
        load(&repo_root().join("deploy/grafana/provisioning/datasources/prometheus.yml")).remove(0);
    let uid = scalar(&provisioned["datasources"][0]["uid"]);
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .flatten()
    {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let dash: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let panels = dash["panels"].as_array().expect("panels");
        assert!(
            panels.len() >= 8,
            "{}: {} panels",
            path.display(),
            panels.len()
        );
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                assert_eq!(
                    target["datasource"]["uid"],
                    uid,
                    "{}: panel {} queries another datasource",
                    path.display(),
                    panel["title"]
                );
            }
        }
        let named = assert_metrics_exported(&path.display().to_string(), &text);
        assert!(named >= 20, "{}: only {named} metric names", path.display());
        dashboards += 1;
    }
    assert!(dashboards >= 1, "no dashboard in deploy/grafana/dashboards");
}

#[test]
fn compose_file_has_none_of_the_known_defects() {
    let compose = load(&repo_root().join("docker-compose.yml")).remove(0);
    assert_none("compose", deploy_checks::compose_violations(&compose));
    // The health checks run `vigil probe` on the port the service serves.
    let services = compose["services"].as_mapping().expect("services");
    let mut probed = 0;
    for (name, s) in services {
        let test = strings(&s["healthcheck"]["test"]);
        if test.get(1).is_some_and(|c| c.ends_with("/vigil")) {
            let port = s["environment"]["VIGIL_HTTP_ADDR"]
                .as_str()
                .and_then(|a| a.rsplit(':').next())
                .expect("VIGIL_HTTP_ADDR");
            assert_eq!(
                test[2..],
                [
                    "probe".to_owned(),
                    format!("http://127.0.0.1:{port}/readyz")
                ],
                "{name:?}: health check"
            );
            let (code, _, err) =
                common::run_vigil(&[&test[2], &test[3], "--help"], None).expect("vigil runs");
            assert_eq!(code, 0, "{name:?}: {err}");
            probed += 1;
        }
    }
    assert!(
        probed >= 6,
        "only {probed} services probed with vigil probe"
    );
}

#[test]
fn dockerfile_syntax_line_comes_first_and_it_has_a_healthcheck() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    assert!(
        text.starts_with("# syntax="),
        "the # syntax line must be the first line"
    );
    assert!(
        text.lines().any(|l| l.starts_with("HEALTHCHECK")
            || l.contains("CMD [\"/usr/local/bin/vigil\", \"probe\"")),
        "no HEALTHCHECK with vigil probe"
    );
}

/// The output of `kubectl kustomize DIR`, or `None` (saying so) where
/// kubectl is missing; scripts/deploy-check.sh installs it in CI.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    let out = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: kubectl kustomize {}: {e}", dir.display());
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("kustomize output is YAML"))
            .collect(),
    )
}

#[test]
fn every_rendered_kustomization_has_none_of_the_known_defects() {
    let root = repo_root().join("deploy/k8s");
    let mut dirs = vec![root.clone()];
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(root.join("overlays"))
        .expect("deploy/k8s/overlays")
        .map(|e| e.expect("dir entry").path())
        .collect();
    overlays.sort();
    dirs.extend(overlays);
    assert!(
        dirs.len() >= 4,
        "deploy/k8s, dev, production, without-operators"
    );
    for dir in dirs {
        let Some(docs) = kustomize(&dir) else {
            return;
        };
        let what = |check: &str| format!("{} ({check})", dir.display());
        assert!(
            docs.iter()
                .all(|d| d["metadata"]["namespace"] == "vigil" || d["kind"] == "Namespace"),
            "{}",
            what("every object in namespace vigil")
        );
        for doc in &docs {
            assert_none(
                &what("restricted"),
                deploy_checks::restricted_violations(doc),
            );
            assert_none(
                &what("secrets readable"),
                deploy_checks::unreadable_secret_violations(doc),
            );
            if let Some(pod) = deploy_checks::pod_spec(doc) {
                for c in pod["containers"].as_sequence().into_iter().flatten() {
                    let image = c["image"].as_str().unwrap_or_default();
                    assert!(
                        image.contains("/vigil:"),
                        "{}: image {image:?}",
                        what("images: applied")
                    );
                }
            }
        }
        assert_none(
            &what("kafka configuration"),
            deploy_checks::kafka_config_violations(&docs, &creates_topics),
        );
        assert_none(
            &what("workloads"),
            deploy_checks::workload_shape_violations(&docs),
        );
        assert_none(
            &what("autoscalers"),
            deploy_checks::autoscaler_violations(&docs),
        );
        assert_none(
            &what("API tokens"),
            deploy_checks::api_token_violations(&docs),
        );
    }
}
