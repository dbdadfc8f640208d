//! Secrets given through the environment are never echoed: `vigil <role>
//! --help` shows the options that carry them (Kafka's `sasl.password`
//! through `VIGIL_KAFKA_OPTIONS`, the MQTT password and the password in an
//! MQTT URL, the audit store's URI and Scylla password) without their
//! values, and a role's start-up log does not contain them either.

mod common;

use std::process::{Command, Stdio};

use common::VigilProcess;

/// Marker every secret value below carries; it must appear nowhere.
const SECRET: &str = "s3cr3t-never-printed";

/// Environment variables that may hold a secret, each with one.
fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "VIGIL_KAFKA_OPTIONS",
            format!(
                "security.protocol=SASL_PLAINTEXT;sasl.mechanisms=SCRAM-SHA-512;\
                 sasl.username=vigil;sasl.password={SECRET}-kafka"
            ),
        ),
        ("VIGIL_MQTT_PASSWORD", format!("{SECRET}-mqtt")),
        (
            "VIGIL_MQTT_URL",
            format!("mqtt://vigil:{SECRET}-url@127.0.0.1:1"),
        ),
        ("VIGIL_AUDIT_SCYLLA_PASSWORD", format!("{SECRET}-scylla")),
        (
            "VIGIL_AUDIT_STORE",
            format!("scylla://vigil:{SECRET}-store@127.0.0.1:1/vigil"),
        ),
    ]
}

#[test]
fn help_shows_no_secret_from_the_environment() -> anyhow::Result<()> {
    // Each role with the options it takes that can carry a secret.
    let roles: [(&str, &[&str]); 8] = [
        (
            "ingest",
            &["--kafka-option", "--mqtt-password", "--mqtt-url"],
        ),
        ("score", &["--kafka-option"]),
        ("train", &["--kafka-option"]),
        ("audit", &["--kafka-option", "--store", "--scylla-password"]),
        ("push", &["--kafka-option", "--mqtt-password", "--mqtt-url"]),
        ("api", &["--kafka-option", "--audit-store"]),
        ("actions", &["--kafka-option", "--mqtt-password"]),
        ("models", &[]),
    ];
    for (role, options) in roles {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([role, "--help"])
            .envs(secret_env())
            .stdin(Stdio::null())
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "vigil {role} --help: {text}");
        for option in options {
            assert!(
                text.contains(option),
                "vigil {role} --help lists {option}: {text}"
            );
        }
        assert!(
            !text.contains(SECRET),
            "vigil {role} --help printed a secret: {text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_start_up_log_shows_no_secret() -> anyhow::Result<()> {
    // The child inherits the test's environment; nextest runs each test in
    // a process of its own, so this touches no other test.
    for (name, value) in secret_env() {
        // The store of this test is a SQLite file (below), not Scylla.
        if name != "VIGIL_AUDIT_STORE" {
            std::env::set_var(name, value);
        }
    }
    std::env::set_var("VIGIL_AUDIT_SCYLLA_USERNAME", "vigil");
    std::env::set_var("VIGIL_LOG", "debug");
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", common::path(&dir.path().join("audit.db")));
    // The dashboard (Kafka options, audit store) and the audit API: both
    // log their configuration-derived lines at start-up.
    let kafka = format!("127.0.0.1:{}", vigil_testkit::free_port()?);
    let dashboard =
        VigilProcess::start(&["api", "--kafka-brokers", &kafka, "--audit-store", &store]).await?;
    let audit = VigilProcess::start(&["audit", "--api-only", "--store", &store]).await?;
    for process in [&dashboard, &audit] {
        let log = process.log_text();
        assert!(log.contains("serving /healthz"), "{log}");
        assert!(!log.contains(SECRET), "a secret in the log: {log}");
    }
    Ok(())
}
