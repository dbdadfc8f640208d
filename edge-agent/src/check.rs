//! `vigil-edge --check`: a self-test for installers and technicians. It
//! checks, without changing anything that matters, that the agent could
//! run as configured: the options, the verify key, the state directory,
//! the model (persisted or initial), the queue files, the sample source and
//! the action command; it also says whether the broker answers right now
//! (informational: the agent buffers until it does). One line per check;
//! exit status 0 when nothing failed.

use std::net::ToSocketAddrs as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{MqttUrl, RunArgs, SourceKind};
use crate::models::load_release;
use crate::sources::{CsvSource, HostSensors, SimSource};

/// Runs the checks, prints the report on stdout, returns the exit status.
pub fn run(args: &RunArgs) -> ExitCode {
    let mut failed = 0;
    let mut line = |ok: Option<bool>, what: &str, detail: String| {
        let tag = match ok {
            Some(true) => "ok  ",
            Some(false) => {
                failed += 1;
                "FAIL"
            }
            None => "info",
        };
        println!("{tag} {what:<12} {detail}");
    };

    match args.validate() {
        Ok(()) => line(Some(true), "config", format!("device {}", args.device_id())),
        Err(e) => line(Some(false), "config", e.to_string()),
    }

    let key = match args.verify_key.as_deref().map(vigil_model::load_key_ring) {
        Some(Ok(key)) => {
            line(Some(true), "verify key", key.summary());
            Some(key)
        }
        Some(Err(e)) => {
            line(Some(false), "verify key", e.to_string());
            None
        }
        None => {
            line(
                Some(false),
                "verify key",
                "--verify-key / VIGIL_VERIFY_KEY is not set".into(),
            );
            None
        }
    };

    match args
        .command_verify_key
        .as_deref()
        .map(vigil_model::load_verify_key)
    {
        Some(Ok(key)) => line(
            Some(true),
            "command key",
            format!("key id {}", vigil_model::key_id(&key)),
        ),
        Some(Err(e)) => line(Some(false), "command key", e.to_string()),
        // Not a failure: an agent without cloud commands is usable.
        None => line(
            None,
            "command key",
            "--command-verify-key / VIGIL_EDGE_COMMAND_VERIFY_KEY is not set: cloud commands are refused".into(),
        ),
    }

    match probe_dir(&args.state_dir) {
        Ok(()) => line(
            Some(true),
            "state dir",
            format!("{} is writable", args.state_dir.display()),
        ),
        Err(e) => line(
            Some(false),
            "state dir",
            format!("{}: {e}", args.state_dir.display()),
        ),
    }

    if let Some(key) = &key {
        let persisted = args
            .state_dir
            .join("models")
            .join(format!("{}.json", args.model));
        let mut best = None;
        for (what, path) in [
            ("persisted", Some(persisted)),
            ("initial", args.initial_model.clone()),
        ] {
            let Some(path) = path else { continue };
            if what == "persisted" && !path.exists() {
                continue;
            }
            match load_release(&path, key) {
                Ok(m) if m.name() == args.model => {
                    line(
                        Some(true),
                        "model",
                        format!(
                            "{what} {} v{} verifies ({})",
                            m.name(),
                            m.version(),
                            path.display()
                        ),
                    );
                    best = best.max(Some(m.version()));
                }
                Ok(m) => line(
                    Some(false),
                    "model",
                    format!(
                        "{what} release {} is for model {:?}, not {:?}",
                        path.display(),
                        m.name(),
                        args.model
                    ),
                ),
                Err(e) => line(
                    Some(false),
                    "model",
                    format!("{what} release {}: {e}", path.display()),
                ),
            }
        }
        if best.is_none() {
            line(
                None,
                "model",
                format!(
                    "no release yet: samples are unscored until vigil/models/{} delivers one",
                    args.model
                ),
            );
        }
    }

    let queue_dir = args.state_dir.join("queue");
    let (files, bytes) = queue_files(&queue_dir);
    line(
        None,
        "queue",
        format!(
            "{files} segment files, {bytes} bytes in {} (limit {})",
            queue_dir.display(),
            args.queue_max_bytes
        ),
    );

    match args.source {
        SourceKind::Host => {
            let mut host = HostSensors::new();
            let first = host.read();
            std::thread::sleep(Duration::from_millis(200));
            match first.and_then(|_| host.read()) {
                Ok(s) => line(
                    Some(true),
                    "source",
                    format!(
                        "host sensors: {}",
                        s.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
                Err(e) => line(Some(false), "source", e.to_string()),
            }
        }
        SourceKind::Sim => match SimSource::new(args) {
            Ok(_) => line(
                Some(true),
                "source",
                format!("simulated device, seed {}", args.sim_seed),
            ),
            Err(e) => line(Some(false), "source", e.to_string()),
        },
        SourceKind::Csv => match args.csv_file.as_deref().map(CsvSource::open) {
            Some(Ok(_)) => line(Some(true), "source", "csv header is usable".into()),
            Some(Err(e)) => line(Some(false), "source", e.to_string()),
            None => line(Some(false), "source", "--csv-file is not set".into()),
        },
        SourceKind::Stdin => line(None, "source", "stdin (not read by --check)".into()),
    }

    for (what, command) in [
        ("action", &args.action_command),
        ("commands", &args.command_handler),
    ] {
        if command.is_some() {
            let sh = Path::new("/bin/sh").exists();
            line(
                Some(sh),
                what,
                if sh {
                    "runs with /bin/sh -c".into()
                } else {
                    "/bin/sh is missing".into()
                },
            );
        }
    }

    match MqttUrl::parse(&args.mqtt.mqtt_url) {
        Ok(url) => {
            let reachable = (url.host.as_str(), url.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)).ok())
                .is_some();
            let detail = if reachable {
                format!("{}:{} accepts connections", url.host, url.port)
            } else {
                format!(
                    "{}:{} does not answer now (the agent buffers until it does)",
                    url.host, url.port
                )
            };
            line(None, "broker", detail);
        }
        Err(e) => line(Some(false), "broker", e),
    }

    if failed == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{failed} check(s) failed");
        ExitCode::FAILURE
    }
}

fn probe_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".vigil-edge-check");
    crate::fsutil::write_atomic(&probe, b"ok")?;
    std::fs::remove_file(probe)
}

fn queue_files(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .fold((0, 0), |(n, b), e| {
                    (n + 1, b + e.metadata().map_or(0, |m| m.len()))
                })
        })
        .unwrap_or((0, 0))
}
