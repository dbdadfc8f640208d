//! `docker-compose.yml` run without a container engine: every Vigil
//! service of the file started as a native process with its own command
//! and environment, in the file's start order (each waits for the
//! services it depends on to pass their own health check, run as the
//! file writes it: `vigil probe …/readyz`), against local stand-ins for
//! the infrastructure (Mosquitto for `mosquitto`, tansu for `kafka`, the
//! embedded SQLite store for `scylla`, `vigil models keygen`, `vigil
//! tokens new` and `vigil devices init` for `keys`; Mosquitto with the
//! dynamic-security plugin and the users `keys` makes, so every MQTT client
//! connects with its own credentials).
//! Then the load generator runs with its compose command for 20 s, CI's
//! quick profile (`VIGIL_SMOKE_SECS=60` for the full minute): every record
//! it sent has a verdict,
//! nothing is lost, and no service died. This catches wrong flags,
//! variables, health checks and start order without Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use serde::Deserialize as _;
use serde_yaml_ng::Value;
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, RunArgs};
use vigil_testkit::clients::{eventually, scrape};
use vigil_testkit::{Mosquitto, Tansu};

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml");
    let mut value = Value::deserialize(serde_yaml_ng::Deserializer::from_str(&text))
        .expect("docker-compose.yml is YAML");
    value.apply_merge().expect("merge keys");
    value
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    (k.as_str().unwrap_or_default().to_owned(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One compose service running as a native `vigil` process; killed when
/// dropped.
struct Native {
    name: String,
    bin: PathBuf,
    child: Child,
    http: String,
    log: PathBuf,
    health: Vec<String>,
}

impl Native {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the service's own health check once: `Ok` when it passes,
    /// what it printed otherwise.
    fn check_health(&self) -> Result<(), String> {
        let Some((_, args)) = self.health.split_first() else {
            return Ok(());
        };
        let out = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `RunArgs` of `vigil-loadgen` from the compose command, its
/// environment turned into the flags that read it, and overrides.
#[derive(Parser)]
struct LoadgenCli {
    #[command(flatten)]
    run: RunArgs,
}

fn loadgen_args(command: &[String], env: &BTreeMap<String, String>, report: &Path) -> RunArgs {
    assert_eq!(
        command.first().map(String::as_str),
        Some("run"),
        "loadgen command"
    );
    let secs = std::env::var("VIGIL_SMOKE_SECS").unwrap_or_else(|_| "20".into());
    let mut argv = vec!["vigil-loadgen".to_owned()];
    let mut rest = command[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            // A minute instead of a day; the report in the test's folder.
            "--duration" => {
                rest.next();
                argv.extend(["--duration".into(), secs.clone()]);
            }
            "--report" => {
                rest.next();
                argv.extend(["--report".into(), report.display().to_string()]);
            }
            _ => argv.push(arg.clone()),
        }
    }
    let cmd = LoadgenCli::command();
    for a in cmd.get_arguments() {
        let (Some(var), Some(long)) = (a.get_env(), a.get_long()) else {
            continue;
        };
        if let Some(value) = env.get(&*var.to_string_lossy()) {
            argv.push(format!("--{long}={value}"));
        }
    }
    argv.extend(["--progress".into(), "none".into()]);
    LoadgenCli::parse_from(argv).run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_services_run_natively_in_order_and_lose_nothing() -> anyhow::Result<()> {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services").clone();
    let kafka = Tansu::start()?;
    let dir = tempfile::tempdir()?;
    // The binary under test, copied once: every service and health check
    // runs this same build even if the target directory changes meanwhile.
    let bin = dir.path().join("vigil");
    std::fs::copy(env!("CARGO_BIN_EXE_vigil"), &bin)?;

    // `keys`: the compose command makes the pair with `vigil models keygen`.
    let keys_cmd = strings(&compose["services"]["keys"]["command"]).join(" ");
    assert!(
        keys_cmd.contains("vigil models keygen --out"),
        "keys: {keys_cmd}"
    );
    let keys = dir.path().join("keys");
    let out = Command::new(&bin)
        .args(["models", "keygen", "--out"])
        .arg(&keys)
        .output()?;
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // … the command key pair with `vigil commands keygen` (the signing key
    // in its own volume, mounted only into actions at /command-keys) …
    assert!(
        keys_cmd.contains("vigil commands keygen --out"),
        "keys: {keys_cmd}"
    );
    let command_keys = dir.path().join("command-keys");
    let out = Command::new(&bin)
        .args(["commands", "keygen", "--out"])
        .arg(&command_keys)
        .output()?;
    assert!(
        out.status.success(),
        "commands keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // … and the API tokens with `vigil tokens new`.
    assert!(
        keys_cmd.contains("vigil tokens new --out /tokens/"),
        "keys: {keys_cmd}"
    );
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let out = Command::new(&bin)
        .args(["tokens", "new", "--out"])
        .arg(tokens.join("api-tokens"))
        .output()?;
    assert!(
        out.status.success(),
        "tokens: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // … and the broker's users with `vigil devices init`; Mosquitto loads
    // them with the dynamic-security plugin, as `deploy/mosquitto.conf`
    // says, and refuses anonymous clients.
    assert!(
        keys_cmd.contains("vigil devices init --broker-dir /broker"),
        "keys: {keys_cmd}"
    );
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mosquitto.conf"),
    )?;
    assert!(
        conf.contains("allow_anonymous false")
            && conf.contains("plugin_opt_config_file /mosquitto/broker/dynamic-security.json"),
        "deploy/mosquitto.conf: {conf}"
    );
    let broker = dir.path().join("broker");
    let out = Command::new(&bin)
        .args(["devices", "init", "--broker-dir"])
        .arg(&broker)
        .output()?;
    assert!(
        out.status.success(),
        "devices init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        // The broker, started as root, reads the file as its own user.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let plugin = vigil_service::broker_auth::find_dynsec_plugin()
        .ok_or_else(|| anyhow::anyhow!("Mosquitto's dynamic-security plugin is not installed"))?;
    let mqtt = Mosquitto::start_with_auth(
        &vigil_service::broker_auth::BrokerDir::new(&broker).mosquitto_conf(&plugin),
    )?;

    // What stands in for the non-Vigil services the Vigil ones depend on.
    let stand_ins: BTreeSet<&str> = ["kafka", "mosquitto", "scylla", "keys"].into();
    let is_vigil = |s: &Value| s["image"].as_str().is_some_and(|i| i.starts_with("vigil:"));
    let mut pending: Vec<String> = services
        .iter()
        .filter(|(n, s)| is_vigil(s) && n.as_str() != Some("keys"))
        .filter_map(|(n, _)| n.as_str().map(str::to_owned))
        .collect();
    let mut running: BTreeMap<String, Native> = BTreeMap::new();
    let mut order = Vec::new();
    let mut loadgen = None;

    while !pending.is_empty() {
        // The services whose dependencies are all up (and healthy where
        // the file asks for it).
        let ready: Vec<String> = pending
            .iter()
            .filter(|name| {
                compose["services"][name.as_str()]["depends_on"]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .all(|(dep, _)| {
                        let dep = dep.as_str().unwrap_or_default();
                        stand_ins.contains(dep) || running.contains_key(dep)
                    })
            })
            .cloned()
            .collect();
        assert!(
            !ready.is_empty(),
            "a dependency cycle or an unknown dependency among {pending:?}"
        );
        for name in ready {
            pending.retain(|p| p != &name);
            let service = &compose["services"][name.as_str()];
            for (dep, cond) in service["depends_on"].as_mapping().into_iter().flatten() {
                let dep = dep.as_str().unwrap_or_default();
                if let Some(native) = running.get(dep) {
                    if cond["condition"] == "service_healthy" {
                        eventually(
                            &format!("{dep} healthy (for {name})"),
                            Duration::from_secs(60),
                            || async { native.check_health().is_ok() },
                        )
                        .await
                        .map_err(|e| {
                            let last = native.check_health().err().unwrap_or_default();
                            anyhow::anyhow!(
                                "{e}; its health check {:?} says: {last}\n{}",
                                native.health,
                                native.log_text()
                            )
                        })?;
                    }
                }
            }
            let mut env = env_of(service);
            // Bind mounts of the repository's files (`./deploy/x:/etc/y:ro`)
            // become the files themselves.
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let binds: Vec<(String, PathBuf)> = service["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .filter_map(|v| {
                    let mut parts = v.split(':');
                    let host = parts.next()?.strip_prefix("./")?;
                    let inside = parts.next()?;
                    Some((inside.to_owned(), repo.join(host)))
                })
                .collect();
            for value in env.values_mut() {
                if value.starts_with("/keys/") {
                    *value = value.replacen("/keys", &keys.display().to_string(), 1);
                }
                if value.starts_with("/command-keys/") {
                    *value =
                        value.replacen("/command-keys", &command_keys.display().to_string(), 1);
                }
                if value.starts_with("/tokens/") {
                    *value = value.replacen("/tokens", &tokens.display().to_string(), 1);
                }
                if value.starts_with("/broker/") {
                    *value = value.replacen("/broker", &broker.display().to_string(), 1);
                }
                if let Some((_, host)) = binds.iter().find(|(inside, _)| value == inside) {
                    *value = host.display().to_string();
                }
            }
            env.insert("VIGIL_KAFKA_BROKERS".into(), kafka.brokers());
            env.insert("VIGIL_MQTT_URL".into(), mqtt.url());
            if env
                .get("VIGIL_AUDIT_STORE")
                .is_some_and(|s| s.starts_with("scylla://"))
            {
                let db = dir.path().join(format!("{name}.db"));
                env.insert(
                    "VIGIL_AUDIT_STORE".into(),
                    format!("sqlite://{}", db.display()),
                );
            }
            let command = strings(&service["command"]);
            if !service["entrypoint"].is_null() {
                loadgen = Some((name.clone(), command, env));
                order.push(name);
                continue;
            }
            let port = vigil_testkit::free_port()?;
            let http = format!("127.0.0.1:{port}");
            let container_port = env
                .get("VIGIL_HTTP_ADDR")
                .and_then(|a| a.rsplit(':').next().map(str::to_owned))
                .expect("VIGIL_HTTP_ADDR");
            env.insert("VIGIL_HTTP_ADDR".into(), http.clone());
            let health: Vec<String> = strings(&service["healthcheck"]["test"])
                .into_iter()
                .map(|a| a.replace(&format!("127.0.0.1:{container_port}"), &http))
                .skip(1)
                .collect();
            let log = dir.path().join(format!("{name}.log"));
            let file = std::fs::File::create(&log)?;
            let mut cmd = Command::new(&bin);
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VIGIL_")) {
                cmd.env_remove(k);
            }
            let child = cmd
                .args(&command)
                .envs(&env)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()?;
            running.insert(
                name.clone(),
                Native {
                    name: name.clone(),
                    bin: bin.clone(),
                    child,
                    http,
                    log,
                    health,
                },
            );
            order.push(name);
        }
    }
    println!("start order: {order:?}");
    assert!(running.len() >= 6, "vigil services started: {order:?}");

    let (name, command, env) = loadgen.expect("a load generator service");
    let report_path = dir.path().join("report.json");
    let args = loadgen_args(&command, &env, &report_path).validate()?;
    let report = run(args, CancellationToken::new()).await.map_err(|e| {
        let logs: Vec<String> = running
            .values()
            .map(|n| format!("--- {}\n{}", n.name, n.log_text()))
            .collect();
        anyhow::anyhow!("{name}: {e}\n{}", logs.join("\n"))
    })?;
    println!("{}", report.summary());

    for native in running.values_mut() {
        assert!(
            native.child.try_wait()?.is_none(),
            "{} died:\n{}",
            native.name,
            native.log_text()
        );
    }
    assert!(report.sent > 1_000, "sent {}", report.sent);
    assert_eq!(report.acked, report.sent, "{}", report.summary());
    assert_eq!(
        report.lost,
        Some(0),
        "lost: {:?}\n{}",
        report.lost_examples,
        report.summary()
    );
    assert_eq!(report.verdicted, Some(report.sent));
    // Every verdict reached the audit store too.
    let audit = running.get("audit").expect("audit");
    let metric = "vigil_audit_rows_written_total{kind=\"verdict\"}";
    let sent = report.sent as f64;
    eventually(
        "audit stored every verdict",
        Duration::from_secs(30),
        || async {
            scrape(&audit.http, metric)
                .await
                .ok()
                .flatten()
                .is_some_and(|rows| rows >= sent)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", audit.log_text()))?;
    Ok(())
}
