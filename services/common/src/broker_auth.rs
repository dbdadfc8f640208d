//! Who may do what on the MQTT broker: the configuration of Mosquitto's
//! dynamic-security plugin (`dynamic-security.json`: one client per device,
//! plus the service users, and a role for each kind of user).
//!
//! A device's MQTT user name is its device id, so the broker itself refuses
//! a device that publishes as another one: its role `vigil-device:<id>` may
//! publish only on `vigil/devices/<id>/{telemetry,verdicts,status,
//! command-results}` and subscribe only to `vigil/devices/<id>/commands`
//! and the retained releases under `vigil/models/#`. Service users get what their role needs
//! and nothing more (only ingest subscribes to telemetry, so only it can
//! join the telemetry share group; push subscribes to the agents' statuses
//! verdicts and command results and is the only one to write
//! `vigil/models/#`; only actions writes commands). A gateway user publishes
//! telemetry for many devices at once (the load generator and the demo's
//! simulated fleet, or a protocol gateway in front of devices that cannot
//! hold credentials). An admin user may use the plugin's control topic
//! (`mosquitto_ctrl dynsec …`) to change clients on a running broker.
//!
//! Why the plugin and not `password_file` + `acl_file`: Mosquitto's ACL
//! file never refuses a subscription (it filters on delivery), so a device
//! could join `$share/vigil-ingest/…` and have the broker hand it — and
//! drop — its share of every device's telemetry. Measured with Mosquitto
//! 2.0.11 (`services/vigil/tests/broker_auth.rs` was first written against
//! an ACL file: ingest received 5 of 10 messages). The plugin checks
//! subscriptions, with subscription access denied by default.
//!
//! Passwords are stored as Mosquitto does (PBKDF2-HMAC-SHA512, a random
//! 12-byte salt, base64). The plugin reads the file at start-up; a
//! running broker takes changes through its control topic (or a restart).

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Value};
use vigil_schemas::rules::check_device_id;
use vigil_schemas::MqttTopics as Topics;

/// PBKDF2 rounds of a new password hash (Mosquitto's own default is 101;
/// the passwords Vigil issues are random, 128 bits, so the count matters
/// little and a broker checks a connect quickly).
pub const HASH_ITERATIONS: u32 = 1_000;

/// Prefix of a device's role name (`vigil-device:<id>`).
pub const DEVICE_ROLE: &str = "vigil-device";

/// Why a credential could not be issued or the broker file read.
#[derive(Debug, thiserror::Error)]
pub enum BrokerAuthError {
    #[error("{0}")]
    InvalidDevice(#[from] vigil_schemas::rules::ValidationError),
    #[error("{0:?} is the name of a Vigil service user; a device cannot use it")]
    ReservedName(String),
    #[error("{path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The broker users of Vigil's own services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUsers {
    /// `vigil ingest`: subscribes to telemetry (share group).
    pub ingest: String,
    /// `vigil push`: writes retained releases, reads device statuses, edge
    /// verdicts and command results.
    pub push: String,
    /// `vigil actions`: writes commands.
    pub actions: String,
    /// Publishes telemetry for many devices (load generator, simulated
    /// fleets, protocol gateways).
    pub gateway: String,
    /// May change clients on a running broker (the plugin's control topic).
    pub admin: String,
    /// Reads device statuses, edge verdicts and releases, publishes
    /// nothing (dashboards, the demo's edge view, monitoring).
    pub observer: String,
}

impl Default for ServiceUsers {
    fn default() -> Self {
        Self {
            ingest: "vigil-ingest".into(),
            push: "vigil-push".into(),
            actions: "vigil-actions".into(),
            gateway: "vigil-gateway".into(),
            admin: "vigil-admin".into(),
            observer: "vigil-observer".into(),
        }
    }
}

impl ServiceUsers {
    /// Every service user name.
    pub fn names(&self) -> [&str; 6] {
        [
            &self.ingest,
            &self.push,
            &self.actions,
            &self.gateway,
            &self.admin,
            &self.observer,
        ]
    }
}

fn acl(kind: &str, topic: String) -> Value {
    json!({ "acltype": kind, "topic": topic, "priority": 0, "allow": true })
}

/// A device's own role, `vigil-device:<id>`: publish on its own
/// telemetry, verdicts, status and command results; subscribe to its own
/// commands and the retained releases. (The plugin of Mosquitto 2.0 does
/// not substitute `%u` in ACL topics — measured: a `%u` ACL refused the
/// device's own telemetry — so each device has a role with its own
/// topics.)
pub fn device_role(topics: &Topics, device_id: &str) -> (String, Vec<Value>) {
    let p = topics.prefix();
    let mut acls: Vec<Value> = ["telemetry", "verdicts", "status", "command-results"]
        .iter()
        .map(|c| acl("publishClientSend", format!("{p}devices/{device_id}/{c}")))
        .collect();
    acls.push(acl(
        "subscribePattern",
        format!("{p}devices/{device_id}/commands"),
    ));
    acls.push(acl("subscribePattern", format!("{p}models/#")));
    (format!("{DEVICE_ROLE}:{device_id}"), acls)
}

/// The service roles, by name: what each service user may publish and
/// subscribe to under `topics`' prefix. A role is named after its user.
pub fn roles(topics: &Topics, users: &ServiceUsers) -> Vec<(String, Vec<Value>)> {
    let p = topics.prefix();
    let send = |t: String| acl("publishClientSend", t);
    let sub = |t: String| acl("subscribePattern", t);
    // A service subscribes through a share group (any group name) or, for
    // a single replica, directly.
    let both = |channel: &str| {
        vec![
            sub(format!("$share/+/{p}devices/+/{channel}")),
            sub(format!("{p}devices/+/{channel}")),
        ]
    };
    let mut ingest = both("telemetry");
    // `vigil ingest --adopt-session` publishes a marker to itself here.
    ingest.push(send(format!("{p}ingest/adopt/+")));
    ingest.push(sub(format!("{p}ingest/adopt/+")));
    // Push bridges the edge agents' statuses and verdicts.
    let mut push = both("status");
    push.extend(both("verdicts"));
    push.extend(both("command-results"));
    push.push(send(format!("{p}models/#")));
    push.push(sub(format!("{p}models/#")));
    // Actions reads the results from Kafka (push bridges them).
    let actions = vec![send(format!("{p}devices/+/commands"))];
    let gateway = vec![send(format!("{p}devices/+/telemetry"))];
    let observer = vec![
        sub(format!("{p}devices/+/status")),
        sub(format!("{p}devices/+/verdicts")),
        sub(format!("{p}models/#")),
    ];
    let control = "$CONTROL/dynamic-security/#".to_owned();
    let admin = vec![
        send(control.clone()),
        acl("publishClientReceive", control.clone()),
        sub(control),
    ];
    vec![
        (users.ingest.clone(), ingest),
        (users.push.clone(), push),
        (users.actions.clone(), actions),
        (users.gateway.clone(), gateway),
        (users.admin.clone(), admin),
        (users.observer.clone(), observer),
    ]
}

/// A new random password: 22 characters of URL-safe base64 (128 bits).
pub fn new_password() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// PBKDF2-HMAC-SHA512 of `password`, as Mosquitto hashes passwords.
pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// The plugin's configuration file: clients with their hashed passwords
/// and roles, the roles' ACLs, and default access (subscriptions and
/// publishes denied unless a role allows them).
#[derive(Debug, Clone, PartialEq)]
pub struct DynsecFile {
    /// Username → the client object.
    clients: std::collections::BTreeMap<String, Value>,
    /// The service roles (rewritten on every save).
    roles: Vec<(String, Vec<Value>)>,
    /// Device roles read from the file or added, by name.
    device_roles: std::collections::BTreeMap<String, Value>,
}

impl DynsecFile {
    /// A file with `roles` and no clients.
    pub fn new(roles: Vec<(String, Vec<Value>)>) -> Self {
        Self {
            clients: Default::default(),
            roles,
            device_roles: Default::default(),
        }
    }

    /// Reads `path` (its clients; the roles are Vigil's, rewritten on
    /// save); a missing file has no clients.
    pub fn load(path: &Path, roles: Vec<(String, Vec<Value>)>) -> Result<Self, BrokerAuthError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(roles)),
            Err(source) => {
                return Err(BrokerAuthError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let bad = |reason: String| BrokerAuthError::BadFile {
            path: path.display().to_string(),
            reason,
        };
        let doc: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut clients = std::collections::BTreeMap::new();
        for c in doc["clients"].as_array().into_iter().flatten() {
            let Some(name) = c["username"].as_str() else {
                return Err(bad("a client without a username".into()));
            };
            clients.insert(name.to_owned(), c.clone());
        }
        let prefix = format!("{DEVICE_ROLE}:");
        let device_roles = doc["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let name = r["rolename"].as_str()?;
                name.starts_with(&prefix)
                    .then(|| (name.to_owned(), r.clone()))
            })
            .collect();
        Ok(Self {
            clients,
            roles,
            device_roles,
        })
    }

    /// Sets `user`'s password (a new salt each time) with role `role`.
    pub fn set(&mut self, user: &str, password: &str, role: &str) {
        let salt: [u8; 12] = rand::thread_rng().gen();
        let hash = hash_password(password, &salt, HASH_ITERATIONS);
        self.clients.insert(
            user.to_owned(),
            json!({
                "username": user,
                "password": B64.encode(hash),
                "salt": B64.encode(salt),
                "iterations": HASH_ITERATIONS,
                "roles": [{ "rolename": role }],
            }),
        );
    }

    /// Sets `user` as a client without a password, with role `role`: it
    /// cannot log in with a password, only with a client certificate whose
    /// common name is `user` on a listener with `use_identity_as_username`.
    pub fn set_cert_client(&mut self, user: &str, role: &str) {
        self.clients.insert(
            user.to_owned(),
            json!({ "username": user, "roles": [{ "rolename": role }] }),
        );
    }

    /// Adds (or replaces) a role of the device kind ([`device_role`]).
    pub fn set_device_role(&mut self, (name, acls): (String, Vec<Value>)) {
        self.device_roles
            .insert(name.clone(), json!({ "rolename": name, "acls": acls }));
    }

    /// Removes `user` and its device role; whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        self.device_roles.remove(&format!("{DEVICE_ROLE}:{user}"));
        self.clients.remove(user).is_some()
    }

    /// Whether `user` is a client.
    pub fn contains(&self, user: &str) -> bool {
        self.clients.contains_key(user)
    }

    /// Client user names, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(c) = self.clients.get(user) else {
            return false;
        };
        let (Some(hash), Some(salt), Some(iterations)) = (
            c["password"].as_str(),
            c["salt"].as_str().and_then(|s| B64.decode(s).ok()),
            c["iterations"].as_u64().and_then(|i| u32::try_from(i).ok()),
        ) else {
            return false;
        };
        B64.encode(hash_password(password, &salt, iterations)) == hash
    }

    /// The file's JSON.
    pub fn render(&self) -> String {
        let roles: Vec<Value> = self
            .roles
            .iter()
            .map(|(name, acls)| json!({ "rolename": name, "acls": acls }))
            .chain(self.device_roles.values().cloned())
            .collect();
        let doc = json!({
            "defaultACLAccess": {
                "publishClientSend": false,
                "publishClientReceive": true,
                "subscribe": false,
                "unsubscribe": true,
            },
            "clients": self.clients.values().collect::<Vec<_>>(),
            "groups": [],
            "roles": roles,
        });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the file atomically, mode 0644: a broker started as root
    /// reads it after switching to its own user. It holds only salted
    /// hashes of random 128-bit passwords; tighten it to 0640 with the
    /// broker's group where one exists.
    pub fn save(&self, path: &Path) -> Result<(), BrokerAuthError> {
        write_atomic(path, self.render().as_bytes(), 0o644)
    }
}

/// A user's broker credentials, as written to `credentials/<user>.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// `VIGIL_MQTT_USERNAME=…` and `VIGIL_MQTT_PASSWORD=…` lines, the form
    /// every Vigil program and `vigil-edge` read from their environment.
    pub fn env_file(&self) -> String {
        format!(
            "VIGIL_MQTT_USERNAME={}\nVIGIL_MQTT_PASSWORD={}\n",
            self.username, self.password
        )
    }
}

/// A broker's auth files in one folder: `dynamic-security.json` (the
/// plugin's `plugin_opt_config_file`) and `credentials/<user>.env` (mode
/// 0600) for each user issued here, to hand to the service or device.
#[derive(Debug, Clone)]
pub struct BrokerDir {
    dir: std::path::PathBuf,
}

impl BrokerDir {
    /// The folder `dir` (its files are written by [`BrokerDir::prepare`]).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `dynamic-security.json`.
    pub fn config_file(&self) -> std::path::PathBuf {
        self.dir.join("dynamic-security.json")
    }

    /// The Mosquitto configuration lines that load this folder's file with
    /// the plugin at `plugin` (see [`find_dynsec_plugin`]).
    pub fn mosquitto_conf(&self, plugin: &Path) -> String {
        format!(
            "allow_anonymous false\nplugin {}\nplugin_opt_config_file {}\n",
            plugin.display(),
            self.config_file().display()
        )
    }

    fn load(&self, topics: &Topics, users: &ServiceUsers) -> Result<DynsecFile, BrokerAuthError> {
        DynsecFile::load(&self.config_file(), roles(topics, users))
    }

    /// `credentials/`: where issued credentials (and, by default,
    /// certificates) are written.
    pub fn credentials_dir(&self) -> std::path::PathBuf {
        self.dir.join("credentials")
    }

    /// `credentials/<user>.env`.
    pub fn credentials_file(&self, user: &str) -> std::path::PathBuf {
        self.dir.join("credentials").join(format!("{user}.env"))
    }

    /// Writes the roles and issues credentials to every service user that
    /// has none yet (existing users keep theirs, so it can run again).
    /// Returns the service users' credentials issued now.
    pub fn prepare(
        &self,
        topics: &Topics,
        users: &ServiceUsers,
    ) -> Result<Vec<Credentials>, BrokerAuthError> {
        let io = |source| BrokerAuthError::Io {
            path: self.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(self.dir.join("credentials")).map_err(io)?;
        let mut file = self.load(topics, users)?;
        let mut issued = Vec::new();
        for user in users.names() {
            if !file.contains(user) {
                // A service user's role bears its name.
                issued.push(self.issue(&mut file, user, user)?);
            }
        }
        file.save(&self.config_file())?;
        Ok(issued)
    }

    /// Issues (or replaces) a device's credentials.
    pub fn add_device(
        &self,
        device_id: &str,
        topics: &Topics,
        users: &ServiceUsers,
    ) -> Result<Credentials, BrokerAuthError> {
        check_device_user(device_id, users)?;
        let mut file = self.load(topics, users)?;
        let role = device_role(topics, device_id);
        let role_name = role.0.clone();
        file.set_device_role(role);
        let issued = self.issue(&mut file, device_id, &role_name)?;
        file.save(&self.config_file())?;
        Ok(issued)
    }

    /// Enrols a device for certificate mode: its role, and a client
    /// without a password (replacing a password it had). The certificate
    /// itself comes from [`crate::device_ca::DeviceCa::issue_client`].
    pub fn add_cert_device(
        &self,
        device_id: &str,
        topics: &Topics,
        users: &ServiceUsers,
    ) -> Result<(), BrokerAuthError> {
        check_device_user(device_id, users)?;
        let mut file = self.load(topics, users)?;
        let role = device_role(topics, device_id);
        file.set_cert_client(device_id, &role.0);
        file.set_device_role(role);
        let _ = std::fs::remove_file(self.credentials_file(device_id));
        file.save(&self.config_file())
    }

    /// Revokes a user's credentials; whether it had any.
    pub fn remove(
        &self,
        user: &str,
        topics: &Topics,
        users: &ServiceUsers,
    ) -> Result<bool, BrokerAuthError> {
        let mut file = self.load(topics, users)?;
        let had = file.remove(user);
        file.save(&self.config_file())?;
        for path in [
            self.credentials_file(user),
            self.dir.join("credentials").join(format!("{user}.crt")),
            self.dir.join("credentials").join(format!("{user}.key")),
        ] {
            let _ = std::fs::remove_file(path);
        }
        Ok(had)
    }

    /// Users with credentials.
    pub fn users(&self) -> Result<Vec<String>, BrokerAuthError> {
        let file = DynsecFile::load(&self.config_file(), Vec::new())?;
        Ok(file.users().map(str::to_owned).collect())
    }

    /// The file as it is on disk.
    pub fn file(
        &self,
        topics: &Topics,
        users: &ServiceUsers,
    ) -> Result<DynsecFile, BrokerAuthError> {
        self.load(topics, users)
    }

    /// A user's credentials as issued here.
    pub fn credentials(&self, user: &str) -> Result<Credentials, BrokerAuthError> {
        let path = self.credentials_file(user);
        let text = std::fs::read_to_string(&path).map_err(|source| BrokerAuthError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
        };
        match (value("VIGIL_MQTT_USERNAME="), value("VIGIL_MQTT_PASSWORD=")) {
            (Some(username), Some(password)) => Ok(Credentials { username, password }),
            _ => Err(BrokerAuthError::BadFile {
                path: path.display().to_string(),
                reason: "no VIGIL_MQTT_USERNAME and VIGIL_MQTT_PASSWORD lines".into(),
            }),
        }
    }

    fn issue(
        &self,
        file: &mut DynsecFile,
        user: &str,
        role: &str,
    ) -> Result<Credentials, BrokerAuthError> {
        let credentials = Credentials {
            username: user.to_owned(),
            password: new_password(),
        };
        file.set(user, &credentials.password, role);
        write_atomic(
            &self.credentials_file(user),
            credentials.env_file().as_bytes(),
            0o600,
        )?;
        Ok(credentials)
    }
}

/// Where Mosquitto packages keep the plugin: Debian's (by architecture)
/// and the eclipse-mosquitto image's.
pub const DYNSEC_PLUGIN_PATHS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
];

/// The dynamic-security plugin of the installed Mosquitto:
/// `VIGIL_MOSQUITTO_DYNSEC` if set, else the first of
/// [`DYNSEC_PLUGIN_PATHS`] that exists.
pub fn find_dynsec_plugin() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VIGIL_MOSQUITTO_DYNSEC") {
        return Some(p.into());
    }
    DYNSEC_PLUGIN_PATHS
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// Checks that `device_id` can be a broker user: a valid device id and not
/// a service user's name.
pub fn check_device_user(device_id: &str, users: &ServiceUsers) -> Result<(), BrokerAuthError> {
    check_device_id(device_id)?;
    if users.names().contains(&device_id) {
        return Err(BrokerAuthError::ReservedName(device_id.to_owned()));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// created with `mode` (unix) so a secret is never readable by others,
/// not even for a moment, and synced before it replaces `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BrokerAuthError> {
    use std::io::Write as _;
    let io = |source| BrokerAuthError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io)?;
    #[cfg(unix)]
    {
        // The process umask may have taken bits away: set them exactly.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_mosquitto() {
        // `mosquitto_ctrl dynsec init` (Mosquitto 2.0.11), password "adminpw".
        let salt = B64.decode("RZiiLXruZoTOlJoM").unwrap();
        assert_eq!(
            B64.encode(hash_password("adminpw", &salt, 101)),
            "DtZ96zS3fqf7BTFd8LHz8QWq1FIHFIeb2/4cIV1lZNT25cBN+r1rNnCpv2W7QL1QR3iAvwO7gLhD2GGOJfhlSQ=="
        );
    }

    #[test]
    fn a_broker_dir_issues_service_and_device_credentials_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = BrokerDir::new(tmp.path().join("broker"));
        let users = ServiceUsers::default();
        let topics = Topics::default();
        let first = dir.prepare(&topics, &users).unwrap();
        assert_eq!(first.len(), 6);
        // Again: nobody's password changes.
        assert!(dir.prepare(&topics, &users).unwrap().is_empty());
        let pump = dir.add_device("pump-7", &topics, &users).unwrap();
        assert_eq!(dir.credentials("pump-7").unwrap(), pump);
        let file = dir.file(&topics, &users).unwrap();
        assert!(file.verify("pump-7", &pump.password));
        assert!(!file.verify("pump-7", "guess"));
        let ingest = dir.credentials("vigil-ingest").unwrap();
        assert!(file.verify("vigil-ingest", &ingest.password));
        assert!(dir
            .file(&topics, &users)
            .unwrap()
            .render()
            .contains("vigil-device:pump-7"));
        assert!(dir.remove("pump-7", &topics, &users).unwrap());
        assert_eq!(dir.users().unwrap().len(), 6);
        assert!(!dir
            .file(&topics, &users)
            .unwrap()
            .render()
            .contains("vigil-device:pump-7"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.credentials_file("vigil-push"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn names_are_checked() {
        let users = ServiceUsers::default();
        assert!(matches!(
            check_device_user("vigil-push", &users),
            Err(BrokerAuthError::ReservedName(_))
        ));
        assert!(check_device_user("dev/+", &users).is_err());
        assert!(check_device_user("pump-7", &users).is_ok());
    }

    #[test]
    fn devices_may_only_touch_their_own_topics() {
        let (name, device) = device_role(&Topics::default(), "pump-7");
        assert_eq!(name, "vigil-device:pump-7");
        for a in device {
            let topic = a["topic"].as_str().unwrap();
            assert!(
                topic.starts_with("vigil/devices/pump-7/") || topic == "vigil/models/#",
                "{topic}"
            );
            if a["acltype"] == "publishClientSend" {
                assert!(topic.starts_with("vigil/devices/pump-7/"), "{topic}");
            }
        }
    }
}
