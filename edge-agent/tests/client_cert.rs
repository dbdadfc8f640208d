//! `vigil-edge` with a client certificate, against a real Mosquitto whose
//! TLS listener requires one (`require_certificate`,
//! `use_identity_as_username`): the agent, given `mqtt_cert`/`mqtt_key` in
//! its TOML file, connects over `mqtts://` and its telemetry arrives; an
//! agent whose key file others may read refuses to start and says why.

mod common;

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use vigil_testkit::Mosquitto;

const DEVICE: &str = "edge-cert";
const WAIT: Duration = Duration::from_secs(60);

/// Writes `name.crt` and `name.key` (mode 0600) into `dir`.
fn write_pair(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write cert");
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A CA, the broker's certificate for 127.0.0.1 and the device's (CN =
/// its id), as `vigil devices ca` makes them.
fn make_certs(dir: &Path) {
    let mut ca = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "test CA");
    ca.distinguished_name = name;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    write_pair(dir, "ca", &ca_cert, &ca_key);
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("key");
    let server_cert = server.signed_by(&server_key, &issuer).expect("server");
    write_pair(dir, "server", &server_cert, &server_key);

    let mut device = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, DEVICE);
    device.distinguished_name = name;
    device.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device_key = KeyPair::generate().expect("key");
    let device_cert = device.signed_by(&device_key, &issuer).expect("device");
    write_pair(dir, DEVICE, &device_cert, &device_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_logs_in_with_its_certificate() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir()?;
    // The broker drops root for its own user, which reads these files.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let certs = tmp.path();
    make_certs(certs);
    let _ = std::process::Command::new("chown")
        .arg("mosquitto")
        .arg(certs.join("server.key"))
        .stderr(std::process::Stdio::null())
        .status();
    // The test's broker: a plain listener for the test's own subscriber,
    // and the TLS listener that requires a certificate for the agent.
    let tls_port = vigil_testkit::free_port()?;
    let broker = Mosquitto::start_with_auth(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {dir}/ca.crt\n\
         certfile {dir}/server.crt\nkeyfile {dir}/server.key\nrequire_certificate true\n\
         use_identity_as_username true\n",
        dir = certs.display()
    ))?;
    let mut sub = common::Subscriber::start(
        broker.port(),
        "cert-test-sub",
        &format!("vigil/devices/{DEVICE}/telemetry"),
        true,
    )
    .await?;

    let keys = common::keys();
    let config = tmp.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "mqtt_ca_file = \"{dir}/ca.crt\"\nmqtt_cert = \"{dir}/{DEVICE}.crt\"\n\
             mqtt_key = \"{dir}/{DEVICE}.key\"\n",
            dir = certs.display()
        ),
    )?;
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let mut args = common::base_args(DEVICE, &url, &keys.verify_path);
    args.extend(common::args(&[
        "--source",
        "stdin",
        "--interval-ms",
        "0",
        "--config",
        config.to_str().unwrap_or_default(),
    ]));
    let state = tempfile::tempdir()?;
    let mut agent = common::Agent::start(state.path(), &args, true)?;
    let samples = common::faulty_fleet(1, 5, 3);
    agent.feed(&common::json_lines(&samples))?;
    sub.until(WAIT, |m| m.len() >= 5).await?;
    assert_eq!(sub.on("/telemetry").len(), 5);
    drop(agent);

    // A key file others may read: the agent refuses to start.
    let key = certs.join(format!("{DEVICE}.key"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let state = tempfile::tempdir()?;
    let exposed = common::Agent::start(state.path(), &args, true)?;
    let line = exposed.wait_for(&["VIGIL_MQTT_KEY", "chmod 600"], WAIT)?;
    assert!(line.contains(&key.display().to_string()), "{line}");
    drop(broker);
    Ok(())
}
