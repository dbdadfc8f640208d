//! Each service's typed arguments as the demo runs it: the role's own
//! defaults (what `vigil <role>` starts with when given no flags), with the
//! demo's brokers, keys, addresses and a few demo-sized settings set field
//! by field. No command line is formatted or parsed for a service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, FromArgMatches};
use vigil_service::broker_auth::Credentials;
use vigil_service::config::{HttpArgs, KafkaArgs, MqttArgs};

use crate::config::DemoArgs;
use crate::services::CONSUMER_PREFETCH_KIB;

/// The model the demo trains, scores and pushes.
pub const MODEL: &str = "default";

/// The value a required flag gets in [`defaults`] until the caller sets it.
const REQUIRED_PLACEHOLDER: &str = "unset";

/// A role's arguments with every field at the default its flags declare
/// (environment variables apply, as for `vigil <role>`). A field the role
/// requires gets a placeholder (`unset`; clap refuses an empty path), which
/// the caller sets.
pub fn defaults<T: Args + FromArgMatches>(role: &'static str) -> anyhow::Result<T> {
    let command = T::augment_args(clap::Command::new(role)).mut_args(|arg| {
        if arg.is_required_set() {
            arg.required(false).default_value(REQUIRED_PLACEHOLDER)
        } else {
            arg
        }
    });
    let matches = command
        .try_get_matches_from([role])
        .with_context(|| format!("{role} defaults"))?;
    T::from_arg_matches(&matches).with_context(|| format!("{role} defaults"))
}

/// What the demo's services share: the brokers, the keys, the audit store.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Kafka as every service of the demo reaches it.
    pub kafka: KafkaArgs,
    /// MQTT as every service of the demo reaches it (each sets its own
    /// client id).
    pub mqtt: MqttArgs,
    signing_key: PathBuf,
    verify_key: PathBuf,
    /// The audit store's URI (written by `audit`, read by the dashboard).
    audit_store: String,
    /// The broker users, once enrolled ([`Wiring::with_users`]).
    users: Option<crate::brokers::MqttUsers>,
    /// The API tokens file every service's HTTP API checks.
    api_tokens: PathBuf,
    /// The key `vigil actions` signs commands with
    /// ([`Wiring::with_command_signing_key`]).
    command_signing_key: Option<PathBuf>,
}

impl Wiring {
    /// The wiring for brokers at `kafka_brokers` and `mqtt_url`, with the
    /// audit store in `dir`.
    pub fn new(
        kafka_brokers: &str,
        mqtt_url: &str,
        dir: &Path,
        signing_key: &Path,
        verify_key: &Path,
    ) -> anyhow::Result<Self> {
        let kafka = KafkaArgs {
            kafka_brokers: kafka_brokers.to_owned(),
            // The demo's topics are created up front with their retention
            // (see `lib.rs`); partitions as in production.
            kafka_partitions: 6,
            // librdkafka prefetches up to 64 MiB per consumer by default;
            // the demo runs five consumers in one process, which lag on a
            // busy laptop: keep each one's prefetch small.
            kafka_options: vec![(
                "queued.max.messages.kbytes".to_owned(),
                CONSUMER_PREFETCH_KIB.to_string(),
            )],
            ..defaults("kafka")?
        };
        let mqtt = MqttArgs {
            mqtt_url: mqtt_url.to_owned(),
            ..defaults("mqtt")?
        };
        Ok(Self {
            kafka,
            mqtt,
            signing_key: signing_key.to_owned(),
            verify_key: verify_key.to_owned(),
            audit_store: audit_store_uri(&dir.join("audit.db")),
            api_tokens: dir.join(API_TOKENS_FILE),
            users: None,
            command_signing_key: None,
        })
    }

    /// The same wiring, each MQTT service connecting as its broker user.
    pub fn with_users(mut self, users: &crate::brokers::MqttUsers) -> Self {
        self.users = Some(users.clone());
        self
    }

    /// The same wiring, `vigil actions` signing commands with `key`.
    pub fn with_command_signing_key(mut self, key: &Path) -> Self {
        self.command_signing_key = Some(key.to_owned());
        self
    }

    /// A service's HTTP server on `http_addr`, its API behind the demo's
    /// token.
    pub fn http(&self, http_addr: SocketAddr) -> HttpArgs {
        HttpArgs {
            api_tokens_file: Some(self.api_tokens.clone()),
            ..HttpArgs::at(http_addr)
        }
    }

    /// MQTT as `user` connects.
    pub fn mqtt_with(&self, user: &Credentials) -> MqttArgs {
        MqttArgs {
            mqtt_username: Some(user.username.clone()),
            mqtt_password: Some(user.password.clone()),
            ..self.mqtt.clone()
        }
    }

    /// MQTT as the service `client_id` connects, as the broker user
    /// `pick` chooses (when users are enrolled).
    fn mqtt_as(
        &self,
        client_id: &str,
        pick: fn(&crate::brokers::MqttUsers) -> &Credentials,
    ) -> MqttArgs {
        let base = match &self.users {
            Some(users) => self.mqtt_with(pick(users)),
            None => self.mqtt.clone(),
        };
        MqttArgs {
            mqtt_client_id: Some(client_id.to_owned()),
            ..base
        }
    }

    /// `vigil audit`: the sink into the demo's SQLite store, verifying
    /// releases with the demo's key.
    pub fn audit(&self, http_addr: SocketAddr) -> anyhow::Result<vigil_audit::AuditArgs> {
        Ok(vigil_audit::AuditArgs {
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            store: self.audit_store.clone(),
            verify_key: Some(self.verify_key.clone()),
            ..defaults("vigil audit")?
        })
    }

    /// `vigil score` for the demo's model.
    pub fn score(&self, http_addr: SocketAddr) -> anyhow::Result<vigil_score::ScoreArgs> {
        Ok(vigil_score::ScoreArgs {
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            model: MODEL.to_owned(),
            verify_key: self.verify_key.clone(),
            ..defaults("vigil score")?
        })
    }

    /// `vigil ingest`.
    pub fn ingest(&self, http_addr: SocketAddr) -> anyhow::Result<vigil_ingest::IngestArgs> {
        Ok(vigil_ingest::IngestArgs {
            mqtt: self.mqtt_as("vigil-demo-ingest", |u| &u.ingest),
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            ..defaults("vigil ingest")?
        })
    }

    /// `vigil train`, periodic, sized for the demo's fleet.
    pub fn train(
        &self,
        demo: &DemoArgs,
        http_addr: SocketAddr,
    ) -> anyhow::Result<vigil_train::TrainArgs> {
        Ok(vigil_train::TrainArgs {
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            model: MODEL.to_owned(),
            signing_key: self.signing_key.clone(),
            interval: demo.retrain_every,
            window: demo.train_window,
            // Enough for the demo's fleet after a minute; the production
            // defaults assume hours of data.
            min_records: Some(1000),
            min_device_records: Some(50),
            max_records: 300_000,
            progress: Some(false),
            force: demo.no_train_gate,
            ..defaults("vigil train")?
        })
    }

    /// `vigil push` for the demo's model.
    pub fn push(&self, http_addr: SocketAddr) -> anyhow::Result<vigil_push::PushArgs> {
        Ok(vigil_push::PushArgs {
            mqtt: self.mqtt_as("vigil-demo-push", |u| &u.push),
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            models: vec![MODEL.to_owned()],
            verify_key: self.verify_key.clone(),
            ..defaults("vigil push")?
        })
    }

    /// `vigil actions` with the rules at `rules` (the demo's default,
    /// `demo/actions-rules.toml`, with its webhook receiver's address).
    pub fn actions(
        &self,
        http_addr: SocketAddr,
        rules: &Path,
    ) -> anyhow::Result<vigil_actions::ActionsArgs> {
        Ok(vigil_actions::ActionsArgs {
            mqtt: self.mqtt_as("vigil-demo-actions", |u| &u.actions),
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            rules: Some(rules.to_owned()),
            command_signing_key: self.command_signing_key.clone(),
            ..defaults("vigil actions")?
        })
    }

    /// `vigil api` (the dashboard), topping device pages up from the
    /// demo's audit store.
    pub fn dashboard(&self, http_addr: SocketAddr) -> anyhow::Result<vigil_api::ApiArgs> {
        Ok(vigil_api::ApiArgs {
            kafka: self.kafka.clone(),
            http: self.http(http_addr),
            audit_store: Some(self.audit_store.clone()),
            ..defaults("vigil api")?
        })
    }
}

/// The demo's audit store, with memory bounds that do not grow with the
/// file: a 16 MiB writer cache (the service's default is 64) and no memory
/// map (the default maps 256 MiB per connection, and every mapped page a
/// query touches counts as the demo's resident memory).
/// The demo's API tokens file, in its data directory.
pub const API_TOKENS_FILE: &str = "api-tokens";

/// Writes `dir`'s API tokens file: `token` with both scopes.
pub fn write_api_tokens(dir: &Path, token: &str) -> anyhow::Result<()> {
    vigil_service::http_auth::Tokens::parse(&format!("read,score {token}"))
        .map_err(|e| anyhow::anyhow!("--api-token: {e}"))?;
    vigil_service::broker_auth::write_atomic(
        &dir.join(API_TOKENS_FILE),
        format!("# the demo's API token\nread,score {token}\n").as_bytes(),
        0o600,
    )?;
    Ok(())
}

fn audit_store_uri(path: &Path) -> String {
    format!("sqlite://{}?cache_mib=16&mmap_mib=0", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring() -> Wiring {
        Wiring::new(
            "127.0.0.1:19092",
            "mqtt://127.0.0.1:11883",
            Path::new("/tmp/demo"),
            Path::new("/tmp/demo/keys/signing.key"),
            Path::new("/tmp/demo/keys/verify.pub"),
        )
        .expect("wiring")
    }

    #[test]
    fn services_get_the_demo_settings_and_their_own_defaults() {
        let w = wiring();
        let addr: SocketAddr = "127.0.0.1:18080".parse().expect("addr");
        let score = w.score(addr).expect("score args");
        score.validate().expect("valid score args");
        assert_eq!(score.kafka.kafka_brokers, "127.0.0.1:19092");
        assert_eq!(score.verify_key, Path::new("/tmp/demo/keys/verify.pub"));
        assert_eq!(score.http.http_addr, addr);
        assert_eq!(score.group, "vigil-score");
        let ingest = w.ingest(addr).expect("ingest args");
        assert_eq!(ingest.mqtt.mqtt_url, "mqtt://127.0.0.1:11883");
        assert_eq!(
            ingest.mqtt.mqtt_client_id.as_deref(),
            Some("vigil-demo-ingest")
        );
        let audit = w.audit(addr).expect("audit args");
        assert!(audit.store.starts_with("sqlite:///tmp/demo/audit.db?"));
        let push = w.push(addr).expect("push args");
        assert_eq!(push.models, vec![MODEL.to_owned()]);
        let api = w.dashboard(addr).expect("api args");
        assert_eq!(api.audit_store.as_deref(), Some(audit.store.as_str()));
    }
}
