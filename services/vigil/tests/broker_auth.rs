//! The broker configuration `vigil devices` writes (Mosquitto's
//! dynamic-security plugin), loaded by a real Mosquitto:
//! anonymous clients and wrong passwords are refused; a device's
//! credentials publish its own telemetry and nothing else — not as another
//! device, not into the telemetry share group, not on `vigil/models/#`,
//! not another device's commands. Each "refused" is observed: what the
//! broker let through is read by the service user that would receive it.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use vigil_service::broker_auth::{BrokerDir, Credentials, ServiceUsers};
use vigil_testkit::Mosquitto;

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    client: AsyncClient,
    events: EventLoop,
    /// Messages that arrived while waiting for something else.
    inbox: Vec<String>,
}

fn options(port: u16, client_id: &str, who: Option<&Credentials>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some(c) = who {
        o.set_credentials(c.username.clone(), c.password.clone());
    }
    o
}

/// Connects; the broker's refusal is an error.
async fn connect(port: u16, client_id: &str, who: Option<&Credentials>) -> Result<Client> {
    let (client, mut events) = AsyncClient::new(options(port, client_id, who), 64);
    loop {
        match tokio::time::timeout(WAIT, events.poll()).await {
            Err(_) => bail!("{client_id}: no CONNACK within {WAIT:?}"),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                return Ok(Client {
                    client,
                    events,
                    inbox: Vec::new(),
                })
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{client_id}: {e}"),
        }
    }
}

/// The broker's CONNACK code for these credentials.
async fn refusal(
    port: u16,
    client_id: &str,
    who: Option<&Credentials>,
) -> Option<ConnectReturnCode> {
    let (_client, mut events) = AsyncClient::new(options(port, client_id, who), 8);
    loop {
        match tokio::time::timeout(WAIT, events.poll()).await {
            Err(_) => return None,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return None,
            Ok(Ok(_)) => {}
            Ok(Err(ConnectionError::ConnectionRefused(code))) => return Some(code),
            Ok(Err(_)) => return None,
        }
    }
}

/// Publishes one message at QoS 1 from a connection of its own and says
/// whether the broker accepted it. rumqttc drops the connection when a
/// PUBACK refuses, sometimes before handing the PUBACK over: a connection
/// lost after the publish went out counts as refused. (The proof that
/// nothing got through is what the receivers read afterwards.)
async fn accepted(
    port: u16,
    client_id: &str,
    who: &Credentials,
    topic: &str,
    payload: &str,
) -> Result<bool> {
    let mut c = connect(port, client_id, Some(who)).await?;
    c.client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await?;
    let mut sent = false;
    loop {
        match tokio::time::timeout(WAIT, c.events.poll()).await {
            Err(_) => bail!("no PUBACK for {topic}"),
            Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => return Ok(granted(ack.reason)),
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_)))) => sent = true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) if sent => return Ok(false),
            Ok(Err(e)) => bail!("publishing to {topic}: {e}"),
        }
    }
}

/// A PUBACK that took the message (with or without subscribers).
fn granted(reason: PubAckReason) -> bool {
    matches!(
        reason,
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
    )
}

impl Client {
    /// Subscribes; whether the broker granted it.
    async fn subscribe(&mut self, filter: &str) -> Result<bool> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        loop {
            match tokio::time::timeout(WAIT, self.events.poll()).await {
                Err(_) => bail!("no SUBACK for {filter}"),
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    return Ok(ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_))))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("subscribing to {filter}: {e}"),
            }
        }
    }

    /// Publishes at QoS 1; the broker's PUBACK reason.
    async fn publish(&mut self, topic: &str, payload: &str) -> Result<PubAckReason> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await?;
        loop {
            match tokio::time::timeout(WAIT, self.events.poll()).await {
                Err(_) => bail!("no PUBACK for {topic}"),
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => return Ok(ack.reason),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => self
                    .inbox
                    .push(String::from_utf8_lossy(&p.payload).into_owned()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("publishing to {topic}: {e}"),
            }
        }
    }

    /// Payloads received until (and including) `last`.
    async fn receive_until(&mut self, last: &str) -> Result<Vec<String>> {
        let mut got = std::mem::take(&mut self.inbox);
        if got.iter().any(|p| p == last) {
            return Ok(got);
        }
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

#[tokio::test]
async fn devices_can_only_be_themselves() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = BrokerDir::new(tmp.path().join("broker"));
    let users = ServiceUsers::default();
    let topics = vigil_schemas::MqttTopics::default();
    dir.prepare(&topics, &users)?;
    let pump = dir.add_device("pump-1", &topics, &users)?;
    let valve = dir.add_device("valve-2", &topics, &users)?;
    #[cfg(unix)]
    {
        // The broker, started as root, reads the files as its own user.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let plugin = vigil_service::broker_auth::find_dynsec_plugin()
        .context("Mosquitto's dynamic-security plugin is not installed")?;
    let broker = Mosquitto::start_with_auth(&dir.mosquitto_conf(&plugin))?;
    let port = broker.port();
    let ingest_user = dir.credentials(&users.ingest)?;
    let push_user = dir.credentials(&users.push)?;
    let actions_user = dir.credentials(&users.actions)?;

    // Anonymous and wrong passwords are refused.
    assert!(
        refusal(port, "anon", None).await.is_some(),
        "anonymous client accepted"
    );
    let wrong = Credentials {
        username: "pump-1".into(),
        password: "guess".into(),
    };
    assert!(
        refusal(port, "wrong", Some(&wrong)).await.is_some(),
        "wrong password accepted"
    );

    // Ingest's share group gets every telemetry message.
    let mut ingest = connect(port, "vigil-ingest-0", Some(&ingest_user)).await?;
    assert!(
        ingest
            .subscribe("$share/vigil-ingest/vigil/devices/+/telemetry")
            .await?
    );
    // A device that tries to join the share group is refused (and so
    // takes no share: ingest below receives all ten messages).
    let mut rogue = connect(port, "rogue-valve", Some(&valve)).await?;
    let joined = rogue
        .subscribe("$share/vigil-ingest/vigil/devices/+/telemetry")
        .await?;
    assert!(!joined, "a device joined the telemetry share group");
    assert!(
        !rogue.subscribe("vigil/devices/+/telemetry").await?,
        "a device subscribed to every device's telemetry"
    );
    // As another device: refused (PUBACK "not authorized") and not
    // delivered; then its own, ten times.
    let spoof = accepted(
        port,
        "pump-1-spoof",
        &pump,
        "vigil/devices/valve-2/telemetry",
        "spoofed",
    )
    .await?;
    assert!(!spoof, "published as another device");
    let mut device = connect(port, "pump-1", Some(&pump)).await?;
    for k in 0..10 {
        let reason = device
            .publish("vigil/devices/pump-1/telemetry", &format!("own-{k}"))
            .await?;
        assert_eq!(reason, PubAckReason::Success);
    }
    let got = ingest.receive_until("own-9").await?;
    assert_eq!(
        got,
        (0..10).map(|k| format!("own-{k}")).collect::<Vec<_>>(),
        "share group joined by a device: {joined}"
    );

    // `vigil ingest --adopt-session` sends itself a marker under
    // vigil/ingest/adopt/; only ingest may.
    let marker = "vigil/ingest/adopt/token-1";
    assert!(
        ingest.subscribe(marker).await?,
        "ingest cannot listen for its marker"
    );
    assert!(
        accepted(port, "vigil-ingest-adopt", &ingest_user, marker, "m").await?,
        "ingest cannot publish its marker"
    );
    assert!(
        !rogue.subscribe("vigil/ingest/adopt/+").await?,
        "a device listens to ingest's markers"
    );

    // Releases: push reads vigil/models/#; a device cannot write there.
    let mut push = connect(port, "vigil-push-0", Some(&push_user)).await?;
    assert!(push.subscribe("vigil/models/#").await?);
    let forged = accepted(port, "pump-1-forge", &pump, "vigil/models/fleet", "forged").await?;
    assert!(!forged, "a device wrote a release");
    assert_eq!(
        push.publish("vigil/models/fleet", "genuine").await?,
        PubAckReason::Success
    );
    assert_eq!(push.receive_until("genuine").await?, vec!["genuine"]);

    // Commands: a device reads its own, not another's; only actions
    // writes them.
    let denied = device.subscribe("vigil/devices/valve-2/commands").await?;
    assert!(!denied, "a device subscribed to another device's commands");
    assert!(device.subscribe("vigil/devices/pump-1/commands").await?);
    assert!(
        !accepted(
            port,
            "valve-2-cmd",
            &valve,
            "vigil/devices/pump-1/commands",
            "from-a-device"
        )
        .await?,
        "a device sent another a command"
    );
    let mut actions = connect(port, "vigil-actions-0", Some(&actions_user)).await?;
    assert!(granted(
        actions
            .publish("vigil/devices/valve-2/commands", "for-valve")
            .await?
    ));
    assert_eq!(
        actions
            .publish("vigil/devices/pump-1/commands", "for-pump")
            .await?,
        PubAckReason::Success
    );
    assert_eq!(device.receive_until("for-pump").await?, vec!["for-pump"]);
    drop(broker);
    Ok(())
}

#[test]
fn the_cli_issues_credentials() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let dir = tmp.path().join("b");
    let run = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(vigil)
            .args(args)
            .arg("--broker-dir")
            .arg(&dir)
            .output()
            .context("running vigil devices")?;
        if !out.status.success() {
            bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(&["devices", "init"])?;
    run(&["devices", "add", "pump-1"])?;
    let listed = run(&["devices", "list"])?;
    assert!(listed.lines().any(|l| l == "pump-1"), "{listed}");
    let refused = run(&["devices", "add", "vigil-ingest"])
        .expect_err("a service user name was issued to a device");
    assert!(refused.to_string().contains("service user"), "{refused}");
    run(&["devices", "remove", "pump-1"])?;
    assert!(!run(&["devices", "list"])?.lines().any(|l| l == "pump-1"));
    Ok(())
}

#[test]
fn secrets_in_the_environment_stay_out_of_help() -> Result<()> {
    let vigil = env!("CARGO_BIN_EXE_vigil");
    for role in ["ingest", "score", "audit", "api", "push", "train"] {
        let out = std::process::Command::new(vigil)
            .args([role, "--help"])
            .env("VIGIL_KAFKA_OPTIONS", "sasl.password=hunter2")
            .env("VIGIL_MQTT_URL", "mqtt://dev:hunter2@127.0.0.1:1883")
            .env("VIGIL_MQTT_PASSWORD", "hunter2")
            .env(
                "VIGIL_AUDIT_STORE",
                "scylla://u:hunter2@127.0.0.1:9042/vigil",
            )
            .output()
            .context("vigil --help")?;
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{role}: {help}");
        assert!(help.contains("VIGIL_KAFKA_OPTIONS"), "{role}: {help}");
        assert!(
            !help.contains("hunter2"),
            "{role} --help shows a secret:\n{help}"
        );
    }
    Ok(())
}
