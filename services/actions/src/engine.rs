//! The incident engine: verdicts in, incident events and the actions they
//! decide out. Pure state, no I/O; the service loop ([`crate::service`])
//! writes each [`Step`]'s event to `vigil.incidents` and only then hands
//! its jobs to the dispatcher.
//!
//! - **One incident per episode.** An incident opens on a device's first
//!   alarm (id `{device_id}:{opened_seq}` from the alarm
//!   `{device_id}@{opened_seq}`), takes in the alarm's verdicts, notes
//!   when the alarm closes, takes in another alarm that opens within the
//!   quiet period, and resolves after the quiet period (event time of the
//!   device's calm verdicts, or wall-clock time when the device goes
//!   silent).
//! - **Idempotent.** Verdicts at or below the seq an incident already
//!   holds change nothing (redeliveries, the same record from both
//!   topics); the alarms of a resolved incident never open a new one.
//!   State is rebuilt from `vigil.incidents` ([`Engine::recover`]), whose
//!   newest event per incident is its state, so a restart neither emits a
//!   transition again nor fires a rule twice.
//! - **Rules fire once per incident**, while it is open or at resolution;
//!   their actions are recorded (pending, or suppressed / cooldown /
//!   rate limited) in the event that decides them.
//! - **Bounded.** At most `max_open` open incidents (the least recently
//!   active one is resolved with reason `capacity` to make room) and as
//!   many resolved ones remembered for deduplication; cooldowns are
//!   forgotten once older than the longest cooldown.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use vigil_schemas::{
    ActionKind, ActionRecord, ActionStatus, Alarm, Incident, IncidentState, Verdict,
};

use crate::rules::{CommandAction, Rules, WebhookAction, When};
use crate::summary::{absorb, MetricShares};

/// Most alarm ids an incident lists.
const MAX_ALARMS: usize = 16;
/// Most actions an incident records.
const MAX_ACTIONS: usize = 64;

/// The engine's limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long after its last alarm closed an incident resolves.
    pub quiet: Duration,
    /// Most open incidents held.
    pub max_open: usize,
    /// Actions per second allowed across all devices (token bucket).
    pub rate_per_sec: f64,
    /// Burst of the token bucket.
    pub burst: f64,
    /// How long a device has to report a command's result (unless the
    /// command sets its own `result_timeout`).
    pub result_timeout: Duration,
}

/// What an action does, as the dispatcher needs it.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// A command to the device.
    Command(CommandAction),
    /// A webhook delivery.
    Webhook(WebhookAction),
}

/// An action to carry out, decided by a rule and recorded as pending.
#[derive(Debug, Clone)]
pub struct Job {
    /// The action record's id.
    pub action_id: String,
    /// The rule that fired.
    pub rule: String,
    /// The incident as recorded in the event that decided the action.
    pub incident: Incident,
    /// What to do.
    pub kind: JobKind,
}

/// An event to write, then the jobs it decided.
#[derive(Debug, Clone)]
pub struct Step {
    /// The incident event.
    pub event: Incident,
    /// Actions to carry out once the event is written.
    pub jobs: Vec<Job>,
    /// Actions the event records as not sent (suppressed, cooldown, rate
    /// limited), for the metrics.
    pub skipped: Vec<(ActionKind, ActionStatus)>,
}

/// The result of an action, from the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The device (finds the incident).
    pub device_id: String,
    /// The incident.
    pub incident_id: String,
    /// The action record.
    pub action_id: String,
    /// Its final status.
    pub status: ActionStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Why, for anything but success.
    pub detail: Option<String>,
}

#[derive(Debug)]
struct Open {
    incident: Incident,
    /// The alarm currently open, if any.
    alarm: Option<String>,
    shares: MetricShares,
    touched: u64,
}

/// Incidents per device and the actions' limits.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    open: HashMap<String, Open>,
    /// The latest resolved incident per device.
    done: HashMap<String, (Incident, u64)>,
    /// Resolved incidents with actions still pending or commands awaiting
    /// their result, by incident id.
    settling: HashMap<String, Incident>,
    /// Commands awaiting their result: (due, device, incident id), checked
    /// lazily (an entry whose command got its result is skipped).
    due: BTreeSet<(u64, String, String)>,
    /// When each (device, rule) last sent something, wall ms.
    fired: HashMap<(String, String), u64>,
    tokens: f64,
    refilled_at: u64,
    clock: u64,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Self {
        let tokens = config.burst;
        Engine {
            config,
            open: HashMap::new(),
            done: HashMap::new(),
            settling: HashMap::new(),
            due: BTreeSet::new(),
            fired: HashMap::new(),
            tokens,
            refilled_at: 0,
            clock: 0,
        }
    }

    /// Open incidents held.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Takes in an event read back from `vigil.incidents` at start-up (in
    /// log order).
    pub fn recover(&mut self, event: Incident) {
        let device = event.device_id.clone();
        for a in &event.actions {
            if a.status.went_out() {
                let key = (device.clone(), a.rule.clone());
                let at = self.fired.entry(key).or_insert(0);
                *at = (*at).max(a.ts);
            }
        }
        self.track_due(&event);
        let stamp = self.tick_clock();
        if event.state == IncidentState::Resolved {
            if unsettled(&event) {
                self.settling
                    .insert(event.incident_id.clone(), event.clone());
            } else {
                self.settling.remove(&event.incident_id);
            }
            if self
                .open
                .get(&device)
                .is_some_and(|o| o.incident.first_seq <= event.first_seq)
            {
                self.open.remove(&device);
            }
            let newer = self.done.get(&device).is_none_or(|(d, _)| {
                (d.first_seq, d.revision) <= (event.first_seq, event.revision)
            });
            if newer {
                self.done.insert(device, (event, stamp));
            }
            return;
        }
        if self
            .done
            .get(&device)
            .is_some_and(|(d, _)| d.first_seq >= event.first_seq)
        {
            return;
        }
        if let Some(o) = self.open.get(&device) {
            if (o.incident.first_seq, o.incident.revision) > (event.first_seq, event.revision) {
                return;
            }
        }
        let alarm = match event.closed_seq {
            Some(_) => None,
            None => event.alarms.last().cloned(),
        };
        self.open.insert(
            device,
            Open {
                shares: MetricShares::from_incident(&event),
                incident: event,
                alarm,
                touched: stamp,
            },
        );
    }

    /// Ends recovery: actions recorded as pending whose outcome was never
    /// recorded are marked `interrupted` (not sent again), each in an
    /// event with reason `recovered`.
    pub fn finish_recovery(&mut self, now: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        let interrupt = |incident: &mut Incident| {
            let mut any = false;
            for a in incident
                .actions
                .iter_mut()
                .filter(|a| a.status == ActionStatus::Pending)
            {
                a.status = ActionStatus::Interrupted;
                a.ts = now;
                a.detail = Some("the role stopped before its outcome was recorded".into());
                any = true;
            }
            any
        };
        for o in self.open.values_mut() {
            if interrupt(&mut o.incident) {
                steps.push(step(emit(&mut o.incident, "recovered", now), Vec::new()));
            }
        }
        for (id, mut d) in std::mem::take(&mut self.settling) {
            if interrupt(&mut d) {
                let event = emit(&mut d, "recovered", now);
                self.sync_done(&event);
                steps.push(step(event, Vec::new()));
            }
            if unsettled(&d) {
                self.settling.insert(id, d);
            }
        }
        while self.open.len() > self.config.max_open {
            steps.extend(self.evict(now));
        }
        steps
    }

    /// Takes in one verdict (from `vigil.anomalies` or `vigil.verdicts`).
    pub fn verdict(&mut self, v: &Verdict, rules: &Rules, now: u64) -> Vec<Step> {
        let device = v.device_id.as_str();
        let anomalous = v.anomaly;
        let mut steps = Vec::new();
        if let Some(o) = self.open.get(device) {
            if v.seq <= o.incident.seen_seq() {
                return steps;
            }
            if !anomalous {
                return self.calm(device, v, rules, now);
            }
            let alarm_id = v
                .alarm
                .as_ref()
                .map(|a| a.id.clone())
                .or_else(|| o.alarm.clone())
                .unwrap_or_else(|| Alarm::id_for(device, v.seq));
            let same = o.alarm.as_deref() == Some(alarm_id.as_str());
            if !same {
                // A new alarm: the previous one ended (closed, or dropped
                // by the scorer without a closing verdict).
                let started = v.alarm.as_ref().map_or(v.event_ts, |a| a.opened_ts);
                let ended = o.incident.closed_ts.unwrap_or(o.incident.last_ts);
                let reason = if o.alarm.is_some() {
                    "superseded"
                } else {
                    "quiet"
                };
                if started.saturating_sub(ended) as u128 >= self.config.quiet.as_millis() {
                    steps.extend(self.resolve(device, reason, rules, now));
                    steps.extend(self.open_new(v, rules, now));
                    return steps;
                }
            }
            let stamp = self.tick_clock();
            let Some(o) = self.open.get_mut(device) else {
                return steps;
            };
            o.touched = stamp;
            let mut reason = None;
            if !same {
                o.alarm = Some(alarm_id.clone());
                push_alarm(&mut o.incident, alarm_id);
                o.incident.closed_seq = None;
                o.incident.closed_ts = None;
                o.incident.resolve_after = None;
                reason = Some("alarm_reopened");
            }
            if absorb(&mut o.incident, &mut o.shares, v) && reason.is_none() {
                reason = Some("severity");
            }
            steps.extend(self.fire(device, When::Open, reason, rules, now));
            return steps;
        }
        if !anomalous {
            return steps;
        }
        if let Some((d, _)) = self.done.get(device) {
            let old_alarm = v.alarm.as_ref().is_some_and(|a| d.alarms.contains(&a.id));
            if v.seq <= d.seen_seq() || old_alarm {
                return steps;
            }
        }
        self.open_new(v, rules, now)
    }

    /// A calm verdict for a device with an open incident.
    fn calm(&mut self, device: &str, v: &Verdict, rules: &Rules, now: u64) -> Vec<Step> {
        let quiet = self.config.quiet;
        let Some(o) = self.open.get_mut(device) else {
            return Vec::new();
        };
        if o.alarm.is_some() {
            o.alarm = None;
            o.incident.closed_seq = Some(v.seq);
            o.incident.closed_ts = Some(v.event_ts);
            if quiet.is_zero() {
                return self.resolve(device, "quiet", rules, now);
            }
            o.incident.resolve_after = Some(now.saturating_add(millis(quiet)));
            return self.fire(device, When::Open, Some("alarm_closed"), rules, now);
        }
        let closed = o.incident.closed_ts.unwrap_or(o.incident.last_ts);
        if v.event_ts >= closed.saturating_add(millis(quiet)) {
            return self.resolve(device, "quiet", rules, now);
        }
        Vec::new()
    }

    fn open_new(&mut self, v: &Verdict, rules: &Rules, now: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        while self.open.len() >= self.config.max_open.max(1) {
            let evicted = self.evict(now);
            if evicted.is_empty() {
                break;
            }
            steps.extend(evicted);
        }
        let device = v.device_id.clone();
        let (first_seq, opened_ts, alarm) = match &v.alarm {
            Some(a) => (a.opened_seq, a.opened_ts, a.id.clone()),
            None => (v.seq, v.event_ts, Alarm::id_for(&device, v.seq)),
        };
        let mut incident = Incident {
            schema: 1,
            incident_id: Incident::id_for(&device, first_seq),
            device_id: device.clone(),
            state: IncidentState::Opened,
            opened_ts,
            first_seq,
            last_seq: first_seq,
            last_ts: opened_ts,
            ..Incident::default()
        };
        push_alarm(&mut incident, alarm.clone());
        let mut shares = MetricShares::default();
        absorb(&mut incident, &mut shares, v);
        let touched = self.tick_clock();
        self.open.insert(
            device.clone(),
            Open {
                incident,
                alarm: Some(alarm),
                shares,
                touched,
            },
        );
        steps.extend(self.fire(&device, When::Open, Some("alarm_opened"), rules, now));
        steps
    }

    /// Resolves the least recently active open incident to make room.
    fn evict(&mut self, now: u64) -> Vec<Step> {
        let Some(device) = self
            .open
            .iter()
            .min_by_key(|(_, o)| o.touched)
            .map(|(d, _)| d.clone())
        else {
            return Vec::new();
        };
        // No resolve-rules on eviction: it is not an end of the episode.
        self.resolve(&device, "capacity", &Rules::default(), now)
    }

    fn resolve(&mut self, device: &str, reason: &str, rules: &Rules, now: u64) -> Vec<Step> {
        let Some(mut o) = self.open.remove(device) else {
            return Vec::new();
        };
        o.incident.state = IncidentState::Resolved;
        o.incident.resolve_after = None;
        let (jobs, skipped) = self.decide(&mut o.incident, When::Resolve, rules, now);
        let event = emit(&mut o.incident, reason, now);
        let stamp = self.tick_clock();
        if unsettled(&o.incident) {
            if self.settling.len() >= self.config.max_open.max(1) {
                tracing::warn!("too many resolved incidents wait for action outcomes; the oldest outcomes will not be recorded");
                if let Some(k) = self.settling.keys().next().cloned() {
                    self.settling.remove(&k);
                }
            }
            self.settling
                .insert(o.incident.incident_id.clone(), o.incident.clone());
        }
        self.done.insert(device.to_owned(), (o.incident, stamp));
        self.bound_done();
        vec![Step {
            skipped,
            ..step(event, jobs)
        }]
    }

    fn bound_done(&mut self) {
        let cap = self.config.max_open.max(1);
        if self.done.len() <= cap {
            return;
        }
        let mut stamps: Vec<u64> = self.done.values().map(|(_, s)| *s).collect();
        stamps.sort_unstable();
        // Forget the oldest tenth at once, so this runs rarely.
        let cut = stamps[(self.done.len() - cap + cap / 10).min(stamps.len() - 1)];
        self.done.retain(|_, (_, s)| *s > cut);
    }

    /// Evaluates `when` rules on the open incident of `device` and emits
    /// an event when something changed (`reason`) or a rule fired.
    fn fire(
        &mut self,
        device: &str,
        when: When,
        reason: Option<&str>,
        rules: &Rules,
        now: u64,
    ) -> Vec<Step> {
        let Some(mut o) = self.open.remove(device) else {
            return Vec::new();
        };
        let (jobs, skipped) = self.decide(&mut o.incident, when, rules, now);
        let out = match (reason, jobs.is_empty() && skipped.is_empty()) {
            (None, true) => Vec::new(),
            (reason, _) => {
                let event = emit(&mut o.incident, reason.unwrap_or("action"), now);
                vec![Step {
                    skipped,
                    ..step(event, jobs)
                }]
            }
        };
        self.open.insert(device.to_owned(), o);
        out
    }

    /// Fires the rules of kind `when` that hold for `incident` and have not
    /// fired on it yet: records their actions in it and returns the jobs
    /// to carry out.
    fn decide(
        &mut self,
        incident: &mut Incident,
        when: When,
        rules: &Rules,
        now: u64,
    ) -> (Vec<Job>, Vec<(ActionKind, ActionStatus)>) {
        let mut jobs = Vec::new();
        let mut skipped = Vec::new();
        let suppressed = rules
            .suppressed(&incident.device_id, now)
            .map(str::to_owned);
        for rule in rules.rules.iter().filter(|r| r.when == when) {
            if incident.actions.iter().any(|a| a.rule == rule.name) || !rule.matches(incident) {
                continue;
            }
            let key = (incident.device_id.clone(), rule.name.clone());
            let cooling = self
                .fired
                .get(&key)
                .is_some_and(|at| now.saturating_sub(*at) < millis(rule.cooldown));
            let kinds = rule
                .commands
                .iter()
                .map(|c| {
                    (
                        ActionKind::Command,
                        c.name.clone(),
                        JobKind::Command(c.clone()),
                    )
                })
                .chain(rule.webhooks.iter().map(|w| {
                    (
                        ActionKind::Webhook,
                        w.name.clone(),
                        JobKind::Webhook(w.clone()),
                    )
                }));
            let mut sent_any = false;
            for (index, (kind, target, job)) in kinds.enumerate() {
                let id = format!("{}/{}/{index}", incident.incident_id, rule.name);
                let (status, detail) = if let Some(why) = &suppressed {
                    (ActionStatus::Suppressed, Some(why.clone()))
                } else if cooling {
                    (
                        ActionStatus::Cooldown,
                        Some(format!(
                            "rule {} acted on this device within its cooldown",
                            rule.name
                        )),
                    )
                } else if !self.take_token(now) {
                    (
                        ActionStatus::RateLimited,
                        Some("global action rate limit reached".into()),
                    )
                } else {
                    (ActionStatus::Pending, None)
                };
                if incident.actions.len() >= MAX_ACTIONS {
                    tracing::warn!(incident = %incident.incident_id, "incident holds the most actions recorded; rule skipped");
                    break;
                }
                let result_due = match &job {
                    JobKind::Command(c) if status == ActionStatus::Pending => {
                        let wait = c.result_timeout.unwrap_or(self.config.result_timeout);
                        let due = now.saturating_add(millis(wait));
                        self.due.insert((
                            due,
                            incident.device_id.clone(),
                            incident.incident_id.clone(),
                        ));
                        Some(due)
                    }
                    _ => None,
                };
                incident.actions.push(ActionRecord {
                    id: id.clone(),
                    rule: rule.name.clone(),
                    kind,
                    target: target.clone(),
                    status,
                    attempts: 0,
                    ts: now,
                    detail,
                    result_due,
                    result: None,
                });
                if status != ActionStatus::Pending {
                    skipped.push((kind, status));
                } else {
                    sent_any = true;
                    incident.action = Some(target);
                    jobs.push((id, rule.name.clone(), job));
                }
            }
            if sent_any {
                self.fired.insert(key, now);
            }
        }
        self.bound_fired(rules, now);
        let jobs = jobs
            .into_iter()
            .map(|(action_id, rule, kind)| Job {
                action_id,
                rule,
                // Set to the deciding event by `step`.
                incident: Incident::default(),
                kind,
            })
            .collect();
        (jobs, skipped)
    }

    fn bound_fired(&mut self, rules: &Rules, now: u64) {
        if self.fired.len() > self.config.max_open.max(1) * 4 {
            let keep = millis(rules.longest_cooldown());
            self.fired.retain(|_, at| now.saturating_sub(*at) < keep);
        }
    }

    fn take_token(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.refilled_at) as f64 / 1000.0;
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.config.rate_per_sec).min(self.config.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Records an action's outcome (from the dispatcher); the event that
    /// says so. A command whose device already reported its result keeps
    /// that result's status.
    pub fn outcome(&mut self, o: Outcome, now: u64) -> Option<Step> {
        let (device, incident_id) = (o.device_id.clone(), o.incident_id.clone());
        let found = self.amend(&device, &incident_id, now, |incident| {
            let Some(record) = incident.actions.iter_mut().find(|a| a.id == o.action_id) else {
                return false;
            };
            record.attempts = o.attempts;
            if record.result.is_some() || record.status == ActionStatus::TimedOut {
                return false;
            }
            record.status = o.status;
            record.detail = o.detail;
            record.ts = now;
            true
        });
        if found.is_none() {
            tracing::warn!(incident = %o.incident_id, action = %o.action_id,
                "outcome of an action whose incident is no longer held; not recorded");
        }
        found.flatten()
    }

    /// Applies `change` to the incident `incident_id` of `device` wherever
    /// it is held (open, resolved with actions outstanding, or the
    /// device's latest resolved one) and emits an `action` event when it
    /// says something changed. `None`: the incident is not held.
    fn amend(
        &mut self,
        device: &str,
        incident_id: &str,
        now: u64,
        change: impl FnOnce(&mut Incident) -> bool,
    ) -> Option<Option<Step>> {
        if let Some(open) = self
            .open
            .get_mut(device)
            .filter(|open| open.incident.incident_id == incident_id)
        {
            let changed = change(&mut open.incident);
            return Some(
                changed.then(|| step(emit(&mut open.incident, "action", now), Vec::new())),
            );
        }
        if let Some(mut incident) = self.settling.remove(incident_id) {
            let event = change(&mut incident).then(|| emit(&mut incident, "action", now));
            if unsettled(&incident) {
                self.settling.insert(incident.incident_id.clone(), incident);
            }
            if let Some(e) = &event {
                self.sync_done(e);
            }
            return Some(event.map(|e| step(e, Vec::new())));
        }
        let (done, _) = self
            .done
            .get_mut(device)
            .filter(|(d, _)| d.incident_id == incident_id)?;
        let changed = change(done);
        Some(changed.then(|| step(emit(done, "action", now), Vec::new())))
    }

    /// Notes the commands of `incident` that await a result.
    fn track_due(&mut self, incident: &Incident) {
        for a in incident.actions.iter().filter(|a| a.awaits_result()) {
            if let Some(due) = a.result_due {
                self.due.insert((
                    due,
                    incident.device_id.clone(),
                    incident.incident_id.clone(),
                ));
            }
        }
    }

    /// Keeps the device's latest resolved incident equal to `event` when
    /// it is that incident.
    fn sync_done(&mut self, event: &Incident) {
        if let Some((d, _)) = self.done.get_mut(&event.device_id) {
            if d.incident_id == event.incident_id {
                *d = event.clone();
            }
        }
    }

    /// Resolves incidents whose quiet period has passed on the wall clock
    /// (devices that went silent after their alarm closed), and marks
    /// commands whose result is overdue `timed_out`.
    pub fn expire(&mut self, rules: &Rules, now: u64) -> Vec<Step> {
        let mut steps = self.time_out(now);
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| {
                o.alarm.is_none() && o.incident.resolve_after.is_some_and(|t| t <= now)
            })
            .map(|(d, _)| d.clone())
            .collect();
        steps.extend(
            due.iter()
                .flat_map(|d| self.resolve(d, "quiet", rules, now)),
        );
        steps
    }

    /// The earliest wall-clock time [`Engine::expire`] has work, if any.
    pub fn next_expiry(&self) -> Option<u64> {
        let results = self.due.first().map(|(t, _, _)| *t);
        self.open
            .values()
            .filter(|o| o.alarm.is_none())
            .filter_map(|o| o.incident.resolve_after)
            .chain(results)
            .min()
    }
}

/// Whether a resolved incident still expects news of its actions: one
/// pending, or a command awaiting the device's result.
fn unsettled(incident: &Incident) -> bool {
    incident
        .actions
        .iter()
        .any(|a| a.status == ActionStatus::Pending || a.awaits_result())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn push_alarm(incident: &mut Incident, id: String) {
    if !incident.alarms.contains(&id) {
        if incident.alarms.len() >= MAX_ALARMS {
            incident.alarms.remove(0);
        }
        incident.alarms.push(id);
    }
}

/// The next event of `incident`: its revision (0 for the opening one), a
/// timestamp after the previous event's, and `reason`.
fn emit(incident: &mut Incident, reason: &str, now: u64) -> Incident {
    if incident.ts != 0 {
        incident.revision += 1;
        if incident.state == IncidentState::Opened {
            incident.state = IncidentState::Updated;
        }
    }
    incident.ts = now.max(incident.ts + 1);
    if incident.state == IncidentState::Resolved && incident.resolved_ts.is_none() {
        incident.resolved_ts = Some(incident.ts);
    }
    incident.reason = Some(reason.to_owned());
    incident.clone()
}

fn step(event: Incident, mut jobs: Vec<Job>) -> Step {
    for job in &mut jobs {
        job.incident = event.clone();
    }
    Step {
        event,
        jobs,
        skipped: Vec::new(),
    }
}

#[path = "results.rs"]
mod results;
pub use results::Unjoined;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
