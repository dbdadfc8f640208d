//! The broker's certificate mode against a real Mosquitto: a TLS listener
//! with `require_certificate` and `use_identity_as_username` (as in
//! `deploy/mosquitto-certs.conf`), the CA, the broker's certificate and
//! the clients' certificates all made by `vigil devices`. A device's
//! certificate publishes its own telemetry, which the ingest user (itself
//! logged in with a certificate) receives; a client without a certificate
//! and one whose certificate another CA signed are refused; a device's
//! certificate cannot publish as another device (the ingest user observes
//! that nothing arrives) nor join the telemetry share group.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use vigil_service::config::MqttArgs;
use vigil_service::device_ca::DeviceCa;
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(10);

/// Runs `vigil ARGS`, failing with its stderr.
fn vigil(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .context("running vigil")?;
    if !out.status.success() {
        bail!("vigil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The MQTT options every Vigil client reads, for `mqtts://` to `port`
/// with the CA `ca` and, when given, a client certificate and key.
fn args(port: u16, client_id: &str, ca: &Path, cert: Option<(&Path, &Path)>) -> MqttArgs {
    MqttArgs {
        mqtt_url: format!("mqtts://127.0.0.1:{port}"),
        mqtt_client_id: Some(client_id.to_owned()),
        mqtt_username: None,
        mqtt_password: None,
        mqtt_credentials_file: None,
        mqtt_ca_file: Some(ca.to_owned()),
        mqtt_cert: cert.map(|(c, _)| c.to_owned()),
        mqtt_key: cert.map(|(_, k)| k.to_owned()),
        mqtt_allow_shared_key_file: false,
        mqtt_keep_alive_secs: 30,
        mqtt_topic_prefix: "vigil/".into(),
    }
}

struct Client {
    client: AsyncClient,
    events: EventLoop,
}

/// Connects as the services do; the broker's (or the TLS handshake's)
/// refusal is an error.
async fn connect(args: &MqttArgs) -> Result<Client> {
    let options = vigil_service::mqtt::options(args, "test")?;
    let (client, mut events) = AsyncClient::new(options, 64);
    loop {
        match tokio::time::timeout(WAIT, events.poll()).await {
            Err(_) => bail!("no CONNACK within {WAIT:?}"),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(Client { client, events }),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{e}"),
        }
    }
}

/// Publishes one message at QoS 1 from a connection of its own and waits
/// for the broker's answer (a PUBACK, or the connection dropped after a
/// refusal); what got through is checked by the receiver.
async fn publish_once(args: &MqttArgs, topic: &str, payload: &str) -> Result<()> {
    let mut c = connect(args).await?;
    c.client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await?;
    loop {
        match tokio::time::timeout(WAIT, c.events.poll()).await {
            Err(_) => bail!("no answer to the publish on {topic}"),
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
        }
    }
}

impl Client {
    async fn subscribe(&mut self, filter: &str) -> Result<()> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        loop {
            match tokio::time::timeout(WAIT, self.events.poll()).await {
                Err(_) => bail!("no SUBACK for {filter}"),
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    if ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        return Ok(());
                    }
                    bail!("subscription to {filter} refused: {:?}", ack.return_codes);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("subscribing to {filter}: {e}"),
            }
        }
    }

    /// Payloads received until (and including) `last`.
    async fn receive_until(&mut self, last: &str) -> Result<Vec<String>> {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.events.poll()).await {
                Err(_) => bail!("{last:?} not received; got {got:?}"),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    let done = payload == last;
                    got.push(payload);
                    if done {
                        return Ok(got);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("receiving: {e}"),
            }
        }
    }
}

/// The files of one test: the CA, the broker's folder and certificate.
struct Setup {
    ca: PathBuf,
    broker: PathBuf,
    certs: PathBuf,
}

fn set_up(root: &Path) -> Result<Setup> {
    let setup = Setup {
        ca: root.join("ca"),
        broker: root.join("broker"),
        certs: root.join("certs"),
    };
    vigil(&["devices", "ca", "init", "--dir", s(&setup.ca)])?;
    vigil(&[
        "devices",
        "ca",
        "server-cert",
        "--dir",
        s(&setup.ca),
        "--host",
        "127.0.0.1",
        "--out",
        s(&setup.certs),
    ])?;
    // Mosquitto 2.0 reads its key after dropping root for its own user:
    // hand the key to that user, as a deployment does (a test not run as
    // root runs the broker as itself, and the chown fails harmlessly).
    let _ = std::process::Command::new("chown")
        .arg("mosquitto")
        .arg(setup.certs.join("server.key"))
        .stderr(std::process::Stdio::null())
        .status();
    vigil(&["devices", "init", "--broker-dir", s(&setup.broker)])?;
    vigil(&[
        "devices",
        "ca",
        "client-cert",
        "vigil-ingest",
        "--dir",
        s(&setup.ca),
        "--out",
        s(&setup.certs),
    ])?;
    for device in ["pump-1", "pump-2"] {
        vigil(&[
            "devices",
            "add",
            device,
            "--cert",
            "--ca-dir",
            s(&setup.ca),
            "--broker-dir",
            s(&setup.broker),
            "--out",
            s(&setup.certs),
        ])?;
    }
    Ok(setup)
}

/// The access lines of `deploy/mosquitto-certs.conf` as shipped, with
/// this test's files in place of its paths (the test's broker has its own
/// listener and persistence settings).
fn broker_conf(setup: &Setup) -> Result<String> {
    let plugin = vigil_service::broker_auth::find_dynsec_plugin()
        .context("Mosquitto's dynamic-security plugin is not installed")?;
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mosquitto-certs.conf"),
    )?;
    let kept = [
        "listener",
        "persistence",
        "autosave",
        "max_queued",
        "sys_interval",
    ];
    let mut conf = String::new();
    for line in shipped.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || kept.iter().any(|k| line.starts_with(k)) {
            continue;
        }
        let line = line
            .replace(
                "/mosquitto/certs/ca.crt",
                &setup.ca.join("ca.crt").display().to_string(),
            )
            .replace("/mosquitto/certs/", &format!("{}/", setup.certs.display()))
            .replace(
                "/mosquitto/broker/",
                &format!("{}/", setup.broker.display()),
            )
            .replace(
                "/usr/lib/mosquitto_dynamic_security.so",
                &plugin.display().to_string(),
            );
        conf.push_str(&line);
        conf.push('\n');
    }
    for needed in ["require_certificate true", "use_identity_as_username true"] {
        assert!(conf.contains(needed), "{needed} missing from {conf}");
    }
    Ok(conf)
}

#[tokio::test]
async fn devices_log_in_with_their_certificates_and_only_as_themselves() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    // The broker drops root for its own user, which must reach the files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let setup = set_up(tmp.path())?;
    let broker = Mosquitto::start_with_auth(&broker_conf(&setup)?)?;
    let port = broker.port();
    let ca = setup.ca.join("ca.crt");
    let pair = |name: &str| {
        (
            setup.certs.join(format!("{name}.crt")),
            setup.certs.join(format!("{name}.key")),
        )
    };
    let (ingest_cert, ingest_key) = pair("vigil-ingest");
    let (pump_cert, pump_key) = pair("pump-1");
    let pump = args(port, "pump-1", &ca, Some((&pump_cert, &pump_key)));

    let mut ingest = connect(&args(
        port,
        "vigil-ingest-0",
        &ca,
        Some((&ingest_cert, &ingest_key)),
    ))
    .await
    .context("the ingest user's certificate")?;
    ingest
        .subscribe("$share/vigil-ingest/vigil/devices/+/telemetry")
        .await?;

    // A device's certificate publishes its own telemetry.
    publish_once(&pump, "vigil/devices/pump-1/telemetry", "own-1").await?;
    assert_eq!(ingest.receive_until("own-1").await?, ["own-1"]);

    // Not as another device: nothing arrives before the next own message.
    publish_once(&pump, "vigil/devices/pump-2/telemetry", "spoofed").await?;
    publish_once(&pump, "vigil/devices/pump-1/telemetry", "own-2").await?;
    let got = ingest.receive_until("own-2").await?;
    assert_eq!(got, ["own-2"], "a device published as another one");

    // Nor join the telemetry share group (the broker refuses the SUBACK).
    let mut device = connect(&pump).await?;
    let joined = device
        .subscribe("$share/vigil-ingest/vigil/devices/+/telemetry")
        .await;
    assert!(joined.is_err(), "a device joined ingest's share group");
    drop(device);

    // No certificate: the TLS handshake (or the broker) refuses.
    let no_cert = args(port, "no-cert", &ca, None);
    vigil_service::mqtt::options(&no_cert, "test").context("valid options")?;
    let anonymous = connect(&no_cert).await;
    assert!(anonymous.is_err(), "a client without a certificate got in");

    // A certificate for the same name from another CA: refused.
    let other = tmp.path().join("other-ca");
    let other_ca = DeviceCa::new(&other);
    other_ca.create()?;
    let forged = other_ca.issue_client("pump-1", 30, &other)?;
    let impostor = args(
        port,
        "pump-1-forged",
        &ca,
        Some((&forged.cert, &forged.key)),
    );
    // The files are fine: what refuses is the broker.
    vigil_service::mqtt::options(&impostor, "test").context("valid options")?;
    let impostor = connect(&impostor).await;
    assert!(
        impostor.is_err(),
        "a certificate of another CA was accepted"
    );

    // The impostor's attempts delivered nothing either.
    publish_once(&pump, "vigil/devices/pump-1/telemetry", "own-3").await?;
    assert_eq!(ingest.receive_until("own-3").await?, ["own-3"]);
    drop(broker);
    Ok(())
}

#[test]
fn the_cli_refuses_what_it_cannot_issue() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let ca = tmp.path().join("ca");
    vigil(&["devices", "ca", "init", "--dir", s(&ca)])?;
    let again = vigil(&["devices", "ca", "init", "--dir", s(&ca)]).expect_err("overwrote a CA");
    assert!(again.to_string().contains("never overwritten"), "{again}");
    let broker = tmp.path().join("broker");
    let reserved = vigil(&[
        "devices",
        "add",
        "vigil-push",
        "--cert",
        "--ca-dir",
        s(&ca),
        "--broker-dir",
        s(&broker),
    ])
    .expect_err("a service user's name issued to a device");
    assert!(reserved.to_string().contains("service user"), "{reserved}");
    assert!(
        !broker.join("credentials/vigil-push.crt").exists(),
        "a certificate was issued before the name was checked"
    );
    Ok(())
}
