//! Each check of `deploy_checks` on a seeded broken manifest or compose
//! file, so that a check which no longer catches its defect fails here.

use serde_yaml_ng::Value;

use super::{
    assert_metrics_exported, assert_none, creates_topics, deploy_checks, docs_only, k8s_docs,
};

/// Parses one YAML document.
fn yaml(text: &str) -> Value {
    let mut value: Value = serde_yaml_ng::from_str(text).expect("test YAML");
    value.apply_merge().expect("merge keys");
    value
}

/// The trainer as it was: the key 0400 (root's), the pod user 10001
/// without fsGroup, and none of the restricted fields.
const OLD_TRAIN_JOB: &str = r#"
kind: Job
metadata: {name: train}
spec:
  template:
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
        - name: train
          args: ["train", "--once"]
          envFrom: [{configMapRef: {name: vigil-config}}]
          volumeMounts: [{name: keys, mountPath: /etc/vigil/keys, readOnly: true}]
      volumes:
        - name: keys
          secret: {secretName: vigil-keys, defaultMode: 256}
"#;

#[test]
fn seeded_defect_unreadable_key_is_caught() {
    let broken = yaml(OLD_TRAIN_JOB);
    let found = deploy_checks::unreadable_secret_violations(&broken);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("not readable by user Some(10001)"),
        "{found:?}"
    );
    // 0440 alone is not enough without fsGroup (the files are root's
    // group), and enough with it.
    let mut fixed = broken.clone();
    fixed["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"] = 0o440.into();
    assert_eq!(deploy_checks::unreadable_secret_violations(&fixed).len(), 1);
    fixed["spec"]["template"]["spec"]["securityContext"]["fsGroup"] = 10001.into();
    assert_none("fixed", deploy_checks::unreadable_secret_violations(&fixed));
}

#[test]
fn seeded_defect_missing_restricted_fields_are_caught() {
    let found = deploy_checks::restricted_violations(&yaml(OLD_TRAIN_JOB));
    for field in [
        "seccompProfile",
        "allowPrivilegeEscalation",
        "drop ALL",
        "readOnlyRootFilesystem",
        "emptyDir on /tmp",
    ] {
        assert!(
            found.iter().any(|v| v.contains(field)),
            "{field} not reported: {found:?}"
        );
    }
    let host_path = yaml(
        r#"
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: x}]
      volumes: [{name: h, hostPath: {path: /}}]
"#,
    );
    let found = deploy_checks::restricted_violations(&host_path);
    assert!(found.iter().any(|v| v.contains("hostNetwork")), "{found:?}");
    assert!(found.iter().any(|v| v.contains("hostPath")), "{found:?}");
    assert!(
        found.iter().any(|v| v.contains("runAsNonRoot")),
        "{found:?}"
    );
}

#[test]
fn seeded_defect_dashboard_without_kafka_config_is_caught() {
    let docs = vec![
        yaml(
            r#"
kind: ConfigMap
metadata: {name: vigil-kafka}
data: {VIGIL_KAFKA_BROKERS: "k:9092", VIGIL_KAFKA_PARTITIONS: "12", VIGIL_KAFKA_REPLICATION_FACTOR: "3", VIGIL_KAFKA_OPTIONS: ""}
"#,
        ),
        // The dashboard as it was: only the brokers.
        yaml(
            r#"
kind: Deployment
metadata: {name: vigil-api}
spec:
  template:
    spec:
      containers:
        - name: api
          args: ["api"]
          env:
            - name: VIGIL_KAFKA_BROKERS
              valueFrom: {configMapKeyRef: {name: vigil-config, key: VIGIL_KAFKA_BROKERS}}
"#,
        ),
    ];
    let found = deploy_checks::kafka_config_violations(&docs, &creates_topics);
    assert!(
        found
            .iter()
            .any(|v| v.contains("no envFrom ConfigMap vigil-kafka")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("sets VIGIL_KAFKA_BROKERS itself")),
        "{found:?}"
    );
    // A role that does not create topics is not held to it, and a
    // ConfigMap without the partitions is caught.
    let found = deploy_checks::kafka_config_violations(&docs[..1], &creates_topics);
    assert_none("ConfigMap alone", found);
    let mut thin = docs[0].clone();
    thin["data"]
        .as_mapping_mut()
        .expect("data")
        .remove("VIGIL_KAFKA_PARTITIONS");
    let found = deploy_checks::kafka_config_violations(&[thin], &creates_topics);
    assert_eq!(found, ["ConfigMap/vigil-kafka: no VIGIL_KAFKA_PARTITIONS"]);
}

#[test]
fn seeded_defect_a_pod_without_the_api_tokens_is_caught() {
    let mut docs = docs_only(k8s_docs());
    assert_none("API tokens", deploy_checks::api_token_violations(&docs));
    for doc in docs.iter_mut() {
        if doc["kind"] == "StatefulSet" && doc["metadata"]["name"] == "vigil-score" {
            let mounts = doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                .as_sequence_mut()
                .expect("mounts");
            mounts.retain(|m| m["name"] != "api-tokens");
        }
    }
    let found = deploy_checks::api_token_violations(&docs);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("vigil-score"), "{found:?}");
    // Without the file on a non-loopback address every role would refuse
    // to start.
    for doc in docs.iter_mut() {
        if doc["kind"] == "ConfigMap" && doc["metadata"]["name"] == "vigil-config" {
            doc["data"]
                .as_mapping_mut()
                .expect("data")
                .remove("VIGIL_API_TOKENS_FILE");
        }
    }
    let found = deploy_checks::api_token_violations(&docs);
    assert!(
        found
            .iter()
            .any(|v| v.contains("without VIGIL_API_TOKENS_FILE")),
        "{found:?}"
    );
}

#[test]
fn seeded_defect_ingest_as_deployment_and_plain_audit_service_are_caught() {
    let mut docs = docs_only(k8s_docs());
    for doc in docs.iter_mut() {
        if doc["kind"] == "StatefulSet" && doc["metadata"]["name"] == "vigil-ingest" {
            doc["kind"] = "Deployment".into();
        }
        if doc["kind"] == "Service" && doc["metadata"]["name"] == "vigil-audit-pods" {
            doc["spec"]
                .as_mapping_mut()
                .expect("spec")
                .remove("clusterIP");
        }
        if doc["kind"] == "PodDisruptionBudget" && doc["metadata"]["name"] == "vigil-push" {
            doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "other".into();
        }
    }
    let found = deploy_checks::workload_shape_violations(&docs);
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("ingest: a Some(\"Deployment\")")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("vigil-audit-pods is not headless")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v == "push: no PodDisruptionBudget"),
        "{found:?}"
    );
}

#[test]
fn seeded_defect_autoscaler_beyond_the_partitions_is_caught() {
    let mut docs = docs_only(k8s_docs());
    for doc in docs.iter_mut() {
        if doc["kind"] == "ScaledObject" {
            doc["spec"]["maxReplicaCount"] = 48.into();
            doc["spec"]["triggers"][0]["metadata"]["bootstrapServers"] = "elsewhere:9092".into();
        }
    }
    let found = deploy_checks::autoscaler_violations(&docs);
    assert!(
        found.iter().any(|v| v.contains("beyond 12 partitions")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.contains("bootstrapServers")),
        "{found:?}"
    );
}

#[test]
fn seeded_defects_in_compose_are_caught() {
    let old = yaml(
        r#"
x-vigil: &vigil
  image: vigil:latest
  volumes: ["keys:/keys:ro"]
services:
  kafka:
    image: apache/kafka:3.9.0
    environment: {KAFKA_ADVERTISED_LISTENERS: "PLAINTEXT://kafka:9092"}
    ports: ["9092:9092"]
    volumes: ["kafka-data:/var/lib/kafka/data"]
    healthcheck: {test: ["CMD", "true"]}
  ingest:
    <<: *vigil
    command: ["ingest"]
    environment: {VIGIL_KAFKA_BROKERS: "kafka:9092"}
    ports: ["8081:8080"]
  train:
    <<: *vigil
    command: ["train"]
    environment: {VIGIL_SIGNING_KEY: /keys/signing.key}
    healthcheck: {test: ["CMD", "true"]}
  loadgen:
    <<: *vigil
    entrypoint: ["/usr/local/bin/vigil-loadgen"]
    depends_on: {train: {condition: service_started}}
"#,
    );
    let found = deploy_checks::compose_violations(&old);
    for expected in [
        "ingest: mounts the signing key volume keys",
        "loadgen: mounts the signing key volume keys",
        "kafka: port",
        "ingest: port",
        "ingest: no health check",
        "ingest: no VIGIL_KAFKA_PARTITIONS",
        "loadgen: depends on",
        "kafka: no volume at its log directory /tmp/kraft-combined-logs",
        "kafka: no listener advertised for the host",
    ] {
        assert!(
            found.iter().any(|v| v.starts_with(expected)),
            "{expected:?} not reported: {found:#?}"
        );
    }
    assert!(
        !found.iter().any(|v| v.starts_with("train: mounts")),
        "{found:#?}"
    );
}

#[test]
#[should_panic(expected = "uses vigil_score_made_up_total, which no service exports")]
fn seeded_defect_a_metric_no_service_exports_is_caught() {
    assert_metrics_exported("seeded", "rate(vigil_score_made_up_total[5m])");
}
