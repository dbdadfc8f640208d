//! The README's demo, scripted: `vigil-demo --duration 120s` runs the
//! whole stack (tansu, Mosquitto, ingest, score, train, audit, model push,
//! the simulated fleet with edge agents) and exits 0 with a summary in
//! which every record got a verdict, detection was measured against the
//! injected anomalies, and at least two model versions were rolled out to
//! the scorer and the edge devices. While it runs, the dashboard's API is
//! polled as the browser polls it: it must list the fleet, anomalies in the
//! live feed, incidents, and v1 and then v2 running on devices. The edge agents
//! answer the rules' commands: no result comes back refused or failed.
//!
//! The warm-up and retraining interval are shortened so that v1 and v2
//! both happen within the two minutes.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

#[test]
fn two_minute_demo_loses_nothing_measures_detection_and_rolls_out_two_models() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary_path = dir.path().join("summary.json");
    // A free port for the dashboard address (the other services pick their own).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil-demo"))
        .args([
            "--duration",
            "120s",
            "--warmup",
            "35s",
            "--retrain-every",
            "50s",
            // A simulated day within the warm-up; v1 is fitted on less
            // of it (each device's feature warm-up and the holdout are
            // left out), which costs precision (docs/demo.md).
            "--day-secs",
            "30",
            "--status-every",
            "10s",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--api-token",
            TOKEN,
            "--summary",
        ])
        .arg(&summary_path)
        .env("VIGIL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil-demo starts");
    // While it runs, the dashboard serves what it sees.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || watch_dashboard(port, &done))
    };
    let output = child.wait_with_output().expect("vigil-demo runs");
    done.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("dashboard watcher");
    // The dashboard's API needs the run's token; the login link the demo
    // prints sets it (a cookie) and opens the page.
    let (without, login) = seen.auth.clone().expect("the dashboard answered");
    assert!(without.contains(" 401 "), "without a token: {without}");
    assert!(login.contains(" 303 "), "the login link: {login}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "vigil-demo failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("records"), "no status lines:\n{stdout}");
    assert!(
        stdout.contains(&format!(
            "dashboard: http://127.0.0.1:{port}/login?token={TOKEN}"
        )),
        "no login link:\n{stdout}"
    );
    assert!(
        seen.devices > 0 && seen.anomalies > 0,
        "the dashboard at 127.0.0.1:{port} never listed devices and anomalies: {seen:?}\nstdout:\n{stdout}"
    );
    // v1 ran on devices, then v2 (the rollout the page shows).
    for version in [1, 2] {
        assert!(
            seen.running.get(&version).is_some_and(|n| *n > 0),
            "the dashboard never showed v{version} running on a device: {seen:?}\nstdout:\n{stdout}"
        );
    }
    assert!(
        seen.first_running[&1] <= seen.first_running[&2],
        "v2 rolled out before v1: {seen:?}"
    );

    let summary: Value =
        serde_json::from_slice(&std::fs::read(&summary_path).expect("summary written"))
            .expect("summary is JSON");
    let n = |path: &str| {
        summary
            .pointer(path)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{path} missing in {summary:#}"))
    };
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        chars[chars.len().saturating_sub(4000)..].iter().collect()
    };
    let context = format!("summary:\n{summary:#}\nstdout:\n{stdout}\nstderr (end):\n{tail}");

    // Every record sent got a verdict.
    let records = n("/records");
    assert!(records > 10_000, "too few records: {records}\n{context}");
    assert_eq!(n("/loss"), 0, "{context}");
    assert_eq!(n("/verdicts"), records, "{context}");
    assert_eq!(summary["stopped_by"], "duration", "{context}");

    // Detection measured against the injected anomalies.
    assert!(n("/detection/injected") > 0, "{context}");
    for field in ["precision", "recall"] {
        let v = summary["detection"][field].as_f64();
        assert!(
            v.is_some_and(|v| (0.0..=1.0).contains(&v)),
            "detection {field} not measured\n{context}"
        );
    }
    assert!(summary["latency_ms"]["p50"].as_f64().is_some(), "{context}");
    assert!(summary["latency_ms"]["p99"].as_f64().is_some(), "{context}");

    // v1 then v2 rolled out: pushed to the devices, live in the scorer,
    // and reported by the edge agents.
    let pushed: Vec<u64> = summary["models"]["pushed"]
        .as_array()
        .expect("pushed list")
        .iter()
        .filter_map(|p| p["version"].as_u64())
        .collect();
    assert!(
        pushed.len() >= 2,
        "fewer than two versions pushed: {pushed:?}\n{context}"
    );
    assert!(pushed.windows(2).all(|w| w[0] < w[1]), "{pushed:?}");
    // The scorer and every edge device left v1 behind (a release pushed in
    // the last seconds may not have reached them yet, hence not "newest").
    assert!(n("/models/scorer_version") >= 2, "{context}");
    let edge_devices = n("/devices/edge");
    let by_version = summary["models"]["edge_devices_by_version"]
        .as_object()
        .expect("edge versions");
    let past_v1: u64 = by_version
        .iter()
        .filter(|(v, _)| {
            v.trim_start_matches('v')
                .parse::<u64>()
                .is_ok_and(|v| v >= 2)
        })
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert_eq!(
        past_v1, edge_devices,
        "edge devices not on v2 or later\n{context}"
    );
    assert!(n("/edge/verdicts") > 0, "{context}");
    // Every edge verdict published reached the audit store, and the
    // dashboard's Fleet header counted the edge agents as edge.
    assert!(n("/edge_audit/published") > 0, "{context}");
    assert_eq!(
        n("/edge_audit/audited"),
        n("/edge_audit/published"),
        "{context}"
    );
    assert_eq!(
        seen.edge_counted, edge_devices,
        "the Fleet header's edge count: {seen:?}\n{context}"
    );
    // The anomaly handler grouped the anomalies into far fewer incidents.
    let opened = n("/incidents/opened");
    assert!(opened > 0, "no incident opened\n{context}");
    assert!(
        opened < n("/incidents/anomalous_verdicts"),
        "incidents should be far fewer than anomalous verdicts\n{context}"
    );
    // The dashboard showed them (from the audit store).
    assert!(
        seen.incidents > 0,
        "the dashboard never listed an incident: {seen:?}\n{context}"
    );
    assert!(
        n("/incidents/webhook_deliveries/requests") >= n("/incidents/webhook_deliveries/distinct"),
        "{context}"
    );
    // The edge agents answer commands with the demo's handler: every
    // result that came back is `ok`, none refused for want of a handler
    // or failed.
    let results = &summary["incidents"]["results"];
    assert!(results.is_object(), "{context}");
    // A command sent in the run's last second may have no result yet;
    // of two or more, one at least came back.
    let sent = summary
        .pointer("/incidents/actions/command~1sent")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if sent >= 2 {
        assert!(results["ok"].as_u64() >= Some(1), "{context}");
    }
    for outcome in ["refused", "failed"] {
        assert_eq!(
            results[outcome].as_u64().unwrap_or(0),
            0,
            "command results {outcome}\n{context}"
        );
    }
}

/// Ctrl-C stops publishing but still waits for the verdicts in flight, so
/// the summary's loss is real loss: a run stopped by SIGINT mid-stream
/// exits 0 with a verdict for every record it sent.
#[test]
fn ctrl_c_waits_for_the_verdicts_in_flight() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let summary_path = dir.path().join("summary.json");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil-demo"))
        .args([
            "--devices",
            "40",
            // No model: this is about the stop, not detection.
            "--warmup",
            "1h",
            "--status-every",
            "1s",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--summary",
        ])
        .arg(&summary_path)
        .env("VIGIL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil-demo starts");
    // Read the status lines until records flow, then keep reading (so the
    // pipe never fills) until the process closes it.
    let (flowing_tx, flowing) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let records = line
                .split(" | ")
                .find_map(|part| part.strip_prefix("records "))
                .and_then(|n| n.trim().parse::<u64>().ok());
            if records.is_some_and(|n| n >= 1_000) {
                let _ = flowing_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = flowing.recv_timeout(Duration::from_secs(120));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .expect("SIGINT sent");
    let output = child.wait_with_output().expect("vigil-demo runs");
    let stdout = reader.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(started.is_ok(), "records never reached 1,000\n{context}");
    assert!(output.status.success(), "exit {}\n{context}", output.status);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&summary_path).expect("summary written"))
            .expect("summary is JSON");
    let context = format!("summary:\n{summary:#}\n{context}");
    assert_eq!(summary["stopped_by"], "signal", "{context}");
    let records = summary["records"].as_u64().expect("records");
    assert!(records > 0, "{context}");
    assert_eq!(summary["loss"], 0, "{context}");
    assert_eq!(summary["verdicts"].as_u64(), Some(records), "{context}");
}

/// What the dashboard showed during the run.
#[derive(Debug, Default)]
struct Seen {
    /// Most devices `/api/overview` listed.
    devices: usize,
    /// Most devices the Fleet header (`/api/overview` counts) said were
    /// scored at the edge.
    edge_counted: u64,
    /// Most entries the anomaly feed (`/api/anomalies`) held.
    anomalies: usize,
    /// Per model version, the most devices (cloud + edge) `/api/models`
    /// said run it.
    running: BTreeMap<u64, u64>,
    /// Per model version, the poll at which devices first ran it.
    first_running: BTreeMap<u64, usize>,
    /// Most incidents the Incidents page's API (`/api/incidents`) listed.
    incidents: usize,
    /// Status lines of `/api/overview` without the token and of the login
    /// link, once the dashboard answered.
    auth: Option<(String, String)>,
}

/// Polls the dashboard's API (plain HTTP/1.0 on loopback) every second
/// until `done`.
fn watch_dashboard(port: u16, done: &AtomicBool) -> Seen {
    let mut seen = Seen::default();
    let mut poll = 0;
    while !done.load(Ordering::Relaxed) {
        poll += 1;
        if seen.auth.is_none() && get(port, "/api/overview").is_some() {
            seen.auth = Some((
                status_line(port, "/api/overview", None),
                status_line(port, &format!("/login?token={TOKEN}"), None),
            ));
        }
        if let Some(overview) = get(port, "/api/overview") {
            if let Some(list) = overview["devices"].as_array() {
                seen.devices = seen.devices.max(list.len());
            }
            let edge = overview["counts"]["edge"].as_u64().unwrap_or(0);
            seen.edge_counted = seen.edge_counted.max(edge);
        }
        if let Some(listed) =
            get(port, "/api/incidents?limit=50").and_then(|v| v["items"].as_array().map(Vec::len))
        {
            seen.incidents = seen.incidents.max(listed);
        }
        if let Some(list) = get(port, "/api/anomalies").and_then(|v| v.as_array().cloned()) {
            seen.anomalies = seen.anomalies.max(list.len());
        }
        for row in get(port, "/api/models")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
        {
            let Some(version) = row["version"].as_u64() else {
                continue;
            };
            let rollout = &row["rollout"];
            let devices = rollout["cloud_devices"].as_u64().unwrap_or(0)
                + rollout["edge_devices"].as_u64().unwrap_or(0);
            if devices > 0 {
                seen.first_running.entry(version).or_insert(poll);
            }
            let max = seen.running.entry(version).or_insert(0);
            *max = (*max).max(devices);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    seen
}

/// The first line of the answer to `GET path`, with `token` if given.
fn status_line(port: u16, path: &str, token: Option<&str>) -> String {
    let answer = || -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").as_bytes())
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.lines().next().map(str::to_owned)
    };
    answer().unwrap_or_default()
}

/// The API token the two-minute run is given (`--api-token`).
const TOKEN: &str = "demo-test-token-0123456789";

fn get(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}
