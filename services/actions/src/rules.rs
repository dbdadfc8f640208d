//! The rules file (TOML): which incidents get which actions, and which are
//! suppressed. Read and validated at start-up (an error names the line)
//! and read again on SIGHUP (a bad file is refused and the rules in force
//! stay).
//!
//! ```toml
//! [[suppress]]                      # maintenance window or muted device
//! devices = "pump-00*"              # device id glob (* and ?)
//! from = "2026-12-05T01:00:00Z"     # optional, RFC 3339
//! until = "2026-12-05T03:00:00Z"    # optional
//! reason = "maintenance"
//!
//! [[rule]]
//! name = "throttle-hot-pumps"       # unique
//! when = "open"                     # open (default): while the incident is open;
//!                                   # resolve: when it resolves
//! devices = "pump-*"                # device id glob; any when absent
//! model = "default"                 # model name glob; any when absent
//! metrics = ["temperature_c"]       # any of them among the top metrics
//! min_severity = "medium"           # low | medium | high | critical
//! min_duration = "30s"              # event time since the incident opened
//! scored_at = "edge"                # edge | cloud; either when absent
//! cooldown = "10m"                  # per device: no second firing within
//!
//! [[rule.command]]                  # to vigil/devices/{id}/commands, QoS 1
//! name = "throttle"
//! params = { level = 2 }
//! result_timeout = "2m"             # the device's result is due within
//!                                   # (default --result-timeout)
//!
//! [[rule.webhook]]                  # HTTP POST, JSON body
//! name = "pager"
//! url = "http://alerts.example:9093/api/v2/alerts"
//! format = "alertmanager"           # json (default) | alertmanager
//! timeout = "5s"
//! retries = 5                       # attempts after the first
//! backoff = "500ms"                 # first pause, doubled each retry (max 30s)
//! headers = { Authorization = "Bearer …" }
//! ```
//!
//! A rule fires at most once per incident: when its conditions first hold
//! while the incident is open (`when = "open"`), or at resolution
//! (`when = "resolve"`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use vigil_schemas::{Incident, ScoredAt, Severity};

/// Why the rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("reading rules file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or breaks a rule; the message names the
    /// line.
    #[error("rules file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// While the incident is open, when the conditions first hold.
    #[default]
    Open,
    /// When the incident resolves.
    Resolve,
}

/// Body of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"rule", "action_id", "incident": {…}}`.
    #[default]
    Json,
    /// A list of one Alertmanager alert (`POST /api/v2/alerts`).
    Alertmanager,
}

/// A command to the device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    /// Command name (the edge agent's `VIGIL_COMMAND`).
    pub name: String,
    /// Parameters, passed as given.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// How long the device has to report its result before the command is
    /// recorded `timed_out`; `--result-timeout` when absent.
    #[serde(default, deserialize_with = "duration_opt")]
    pub result_timeout: Option<Duration>,
}

/// A webhook delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    /// Name (in the incident's action records and the DLQ).
    pub name: String,
    /// `http://` URL to POST to.
    #[serde(deserialize_with = "url")]
    pub url: String,
    /// Body format.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Time limit of one attempt.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Attempts after the first.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Pause before the first retry; doubled each time, at most 30 s.
    #[serde(default = "default_backoff", deserialize_with = "duration")]
    pub backoff: Duration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(default)]
    when: When,
    #[serde(default, deserialize_with = "glob_opt")]
    devices: Option<Glob>,
    #[serde(default, deserialize_with = "glob_opt")]
    model: Option<Glob>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    min_severity: Option<Severity>,
    #[serde(default, deserialize_with = "duration_opt")]
    min_duration: Option<Duration>,
    #[serde(default)]
    scored_at: Option<ScoredAt>,
    #[serde(default, deserialize_with = "duration_opt")]
    cooldown: Option<Duration>,
    #[serde(default)]
    command: Vec<CommandAction>,
    #[serde(default)]
    webhook: Vec<WebhookAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppress {
    #[serde(deserialize_with = "glob")]
    devices: Glob,
    #[serde(default, deserialize_with = "time_opt")]
    from: Option<u64>,
    #[serde(default, deserialize_with = "time_opt")]
    until: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    suppress: Vec<Spanned<RawSuppress>>,
}

/// A rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// When it fires.
    pub when: When,
    devices: Option<Glob>,
    model: Option<Glob>,
    metrics: Vec<String>,
    min_severity: Option<Severity>,
    min_duration: Option<Duration>,
    scored_at: Option<ScoredAt>,
    /// No second firing on the same device within this long.
    pub cooldown: Duration,
    /// Commands to send.
    pub commands: Vec<CommandAction>,
    /// Webhooks to call.
    pub webhooks: Vec<WebhookAction>,
}

impl Rule {
    /// Whether the rule's conditions hold for `incident`.
    pub fn matches(&self, incident: &Incident) -> bool {
        if self
            .devices
            .as_ref()
            .is_some_and(|g| !g.matches(&incident.device_id))
        {
            return false;
        }
        if let Some(g) = &self.model {
            if !incident.models.iter().any(|m| g.matches(&m.model)) && !g.matches(&incident.model) {
                return false;
            }
        }
        if !self.metrics.is_empty()
            && !incident
                .top_metrics
                .iter()
                .any(|c| self.metrics.contains(&c.metric))
        {
            return false;
        }
        if self.min_severity.is_some_and(|s| incident.severity < s) {
            return false;
        }
        if self
            .min_duration
            .is_some_and(|d| u128::from(incident.duration_ms()) < d.as_millis())
        {
            return false;
        }
        if let Some(at) = self.scored_at {
            if !incident.scored_at.contains(&at) {
                return false;
            }
        }
        true
    }
}

/// A suppression, validated.
#[derive(Debug, Clone)]
pub struct Suppress {
    devices: Glob,
    from: Option<u64>,
    until: Option<u64>,
    reason: String,
}

/// The rules in force.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Rules in file order.
    pub rules: Vec<Rule>,
    suppress: Vec<Suppress>,
}

impl Rules {
    /// Reads and validates the rules file at `path`.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| RulesError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates rules from TOML text; the error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| describe(text, &e))?;
        let line = |offset: usize| text[..offset.min(text.len())].lines().count().max(1);
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(raw.rule.len());
        for r in raw.rule {
            let at = line(r.name.span().start);
            let name = r.name.into_inner();
            if name.trim().is_empty() {
                return Err(format!("line {at}: a rule needs a non-empty name"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("line {at}: a second rule named {name:?}"));
            }
            if r.command.is_empty() && r.webhook.is_empty() {
                return Err(format!(
                    "line {at}: rule {name:?} has no [[rule.command]] or [[rule.webhook]]"
                ));
            }
            if let Some(c) = r.command.iter().find(|c| c.name.trim().is_empty()) {
                return Err(format!(
                    "line {at}: rule {name:?} has a command without a name ({c:?})"
                ));
            }
            if let Some(w) = r.webhook.iter().find(|w| w.name.trim().is_empty()) {
                return Err(format!(
                    "line {at}: rule {name:?} has a webhook without a name (url {})",
                    w.url
                ));
            }
            rules.push(Rule {
                name,
                when: r.when,
                devices: r.devices,
                model: r.model,
                metrics: r.metrics,
                min_severity: r.min_severity,
                min_duration: r.min_duration,
                scored_at: r.scored_at,
                cooldown: r.cooldown.unwrap_or_default(),
                commands: r.command,
                webhooks: r.webhook,
            });
        }
        let mut suppress = Vec::with_capacity(raw.suppress.len());
        for s in raw.suppress {
            let at = line(s.span().start);
            let s = s.into_inner();
            if let (Some(from), Some(until)) = (s.from, s.until) {
                if until <= from {
                    return Err(format!(
                        "line {at}: a suppression's `until` must be after its `from`"
                    ));
                }
            }
            suppress.push(Suppress {
                devices: s.devices,
                from: s.from,
                until: s.until,
                reason: s.reason.unwrap_or_else(|| "suppressed".into()),
            });
        }
        Ok(Rules { rules, suppress })
    }

    /// The reason a suppression gives for `device_id` at `now_ms`, if one
    /// matches.
    pub fn suppressed(&self, device_id: &str, now_ms: u64) -> Option<&str> {
        self.suppress
            .iter()
            .find(|s| {
                s.devices.matches(device_id)
                    && s.from.is_none_or(|f| now_ms >= f)
                    && s.until.is_none_or(|u| now_ms < u)
            })
            .map(|s| s.reason.as_str())
    }

    /// The longest cooldown of any rule (how long firings are remembered).
    pub fn longest_cooldown(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.cooldown)
            .max()
            .unwrap_or_default()
    }
}

/// A toml error as "line N, column M: what".
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// A device id or model name pattern: `*` matches any run of characters,
/// `?` one character, everything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    /// The pattern `pattern`.
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.chars().collect())
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let pattern = &self.0;
        // Classic linear-time wildcard matching with one backtrack point.
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(c) if *c == '?' || *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

fn glob_value(s: String) -> Result<Glob, String> {
    if s.is_empty() {
        return Err("an empty pattern matches nothing; leave it out to match any".into());
    }
    Ok(Glob::new(&s))
}

fn glob<'de, D: Deserializer<'de>>(d: D) -> Result<Glob, D::Error> {
    glob_value(String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn glob_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Glob>, D::Error> {
    glob(d).map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    vigil_service::duration::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn time_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s = String::deserialize(d)?;
    let t = humantime::parse_rfc3339_weak(&s)
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time ({e})")))?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| serde::de::Error::custom("a time before 1970"))?
        .as_millis();
    u64::try_from(ms)
        .map(Some)
        .map_err(|_| serde::de::Error::custom("a time too far in the future"))
}

fn url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let parsed = reqwest::Url::parse(&s)
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a URL ({e})")))?;
    if parsed.scheme() != "http" {
        return Err(serde::de::Error::custom(format!(
            "{s:?}: webhooks are sent over http:// (this build has no TLS client; put a TLS-terminating proxy in front of an https endpoint)"
        )));
    }
    Ok(s)
}

/// Milliseconds since the Unix epoch of `t`.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use vigil_schemas::{Contribution, ModelRef};

    use super::*;

    const GOOD: &str = r#"
[[suppress]]
devices = "lab-*"
reason = "lab devices are muted"

[[suppress]]
devices = "pump-7"
from = "2026-01-01T00:00:00Z"
until = "2026-01-01T02:00:00Z"

[[rule]]
name = "throttle"
devices = "pump-*"
model = "def*"
metrics = ["temperature_c"]
min_severity = "medium"
min_duration = "30s"
scored_at = "edge"
cooldown = "10m"

[[rule.command]]
name = "throttle"
params = { level = 2, mode = "eco" }
result_timeout = "90s"

[[rule.webhook]]
name = "pager"
url = "http://127.0.0.1:9/hook"
format = "alertmanager"
retries = 3
backoff = "10ms"
"#;

    fn incident() -> Incident {
        Incident {
            device_id: "pump-3".into(),
            model: "default".into(),
            models: vec![ModelRef {
                model: "default".into(),
                version: Some(1),
            }],
            top_metrics: vec![Contribution {
                metric: "temperature_c".into(),
                share: 0.8,
            }],
            severity: Severity::High,
            opened_ts: 1_000,
            last_ts: 61_000,
            scored_at: vec![ScoredAt::Edge],
            ..Incident::default()
        }
    }

    #[test]
    fn a_full_file_parses_and_matches() {
        let rules = Rules::parse(GOOD).expect("valid");
        let rule = &rules.rules[0];
        assert_eq!(rule.cooldown, Duration::from_secs(600));
        assert_eq!(
            rule.commands[0].result_timeout,
            Some(Duration::from_secs(90))
        );
        assert_eq!(rule.webhooks[0].format, WebhookFormat::Alertmanager);
        assert_eq!(rule.webhooks[0].timeout, Duration::from_secs(5));
        assert!(rule.matches(&incident()));
        for change in [
            |i: &mut Incident| i.device_id = "fan-3".into(),
            |i: &mut Incident| i.severity = Severity::Low,
            |i: &mut Incident| i.last_ts = 2_000,
            |i: &mut Incident| i.scored_at = vec![ScoredAt::Cloud],
            |i: &mut Incident| i.top_metrics.clear(),
            |i: &mut Incident| {
                i.model = "other".into();
                i.models.clear();
            },
        ] {
            let mut i = incident();
            change(&mut i);
            assert!(!rule.matches(&i), "{i:?}");
        }
        assert_eq!(rules.suppressed("lab-1", 0), Some("lab devices are muted"));
        let in_window = 1_767_225_600_000 + 60_000;
        assert_eq!(rules.suppressed("pump-7", in_window), Some("suppressed"));
        assert_eq!(rules.suppressed("pump-7", in_window + 3 * 3_600_000), None);
        assert_eq!(rules.suppressed("pump-8", in_window), None);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[[rule]]\nname = \"a\"\nmin_severity = \"huge\"\n[[rule.command]]\nname = \"x\"\n", "line 3"),
            ("[[rule]]\nname = \"a\"\ncooldown = \"soon\"\n[[rule.command]]\nname = \"x\"\n", "line 3"),
            ("[[rule]]\nname = \"a\"\n\n[[rule.webhook]]\nname = \"w\"\nurl = \"https://x/\"\n", "line 6"),
            ("[[rule]]\nname = \"a\"\ncolour = 1\n", "line 3"),
            ("\n\n[[rule]]\nname = \"a\"\n", "line 4"),
            ("[[rule]]\nname = \"a\"\n[[rule.command]]\nname = \"x\"\n[[rule]]\nname = \"a\"\n[[rule.command]]\nname = \"y\"\n", "line 6"),
            ("[[suppress]]\ndevices = \"d\"\nfrom = \"2026-01-02T00:00:00Z\"\nuntil = \"2026-01-01T00:00:00Z\"\n", "line 1"),
            ("[[rule]\nname = 1\n", "line 1"),
        ];
        for (text, line) in cases {
            let e = Rules::parse(text).expect_err(text);
            assert!(e.contains(line), "{text:?}: {e}");
        }
    }

    #[test]
    fn globs_match_like_shells() {
        for (p, t, m) in [
            ("pump-*", "pump-1", true),
            ("pump-*", "pump-", true),
            ("pump-*", "pum", false),
            ("*-7", "pump-7", true),
            ("p?mp*7", "pump-17", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*", "", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(Glob::new(p).matches(t), m, "{p} {t}");
        }
    }
}

#[cfg(test)]
mod deploy_tests {
    use super::Rules;

    #[test]
    fn the_shipped_rules_files_are_valid() {
        let compose = include_str!("../../../deploy/actions-rules.toml");
        assert_eq!(
            Rules::parse(compose)
                .expect("deploy/actions-rules.toml")
                .rules
                .len(),
            1
        );
        // The ConfigMap's rules.toml: the block under `rules.toml: |`.
        let manifest = include_str!("../../../deploy/k8s/base/actions.yaml");
        let block: String = manifest
            .lines()
            .skip_while(|l| !l.contains("rules.toml: |"))
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| format!("{}\n", l.get(4..).unwrap_or_default()))
            .collect();
        let rules = Rules::parse(&block).expect("deploy/k8s/actions.yaml rules");
        assert_eq!(rules.rules.len(), 2);
    }
}
