//! Tests of the incident engine: episodes, redeliveries, recovery,
//! cooldowns, suppression, the rate limit and the capacity bound.

use super::*;
use vigil_schemas::{AlarmState, Contribution, ScoredAt, Severity};

pub(super) const QUIET: u64 = 5_000;
pub(super) const RESULT_TIMEOUT: u64 = 60_000;

pub(super) fn engine(max_open: usize) -> Engine {
    Engine::new(EngineConfig {
        quiet: Duration::from_millis(QUIET),
        max_open,
        rate_per_sec: 100.0,
        burst: 100.0,
        result_timeout: Duration::from_millis(RESULT_TIMEOUT),
    })
}

pub(super) fn rules(text: &str) -> Rules {
    Rules::parse(text).expect("valid rules")
}

const ON_OPEN: &str = r#"
[[rule]]
name = "cool"
[[rule.command]]
name = "throttle"
params = { level = 2 }
[[rule.webhook]]
name = "hook"
url = "http://127.0.0.1:9/"
"#;

/// A verdict of `device` at `seq` (event time `seq * 1000`), in the alarm
/// opened at `opened` when given.
pub(super) fn v(device: &str, seq: u64, alarm: Option<(u64, AlarmState)>) -> Verdict {
    let anomaly = matches!(alarm, Some((_, AlarmState::Opened | AlarmState::Ongoing)));
    Verdict {
        schema: 1,
        device_id: device.into(),
        seq,
        event_ts: seq * 1000,
        ingest_ts: None,
        scored_ts: seq * 1000,
        model: "default".into(),
        model_version: Some(1),
        score: if anomaly { 0.9 } else { 0.1 },
        threshold: 0.5,
        anomaly,
        alarm: alarm.map(|(opened, state)| Alarm {
            id: Alarm::id_for(device, opened),
            opened_seq: opened,
            opened_ts: opened * 1000,
            state,
        }),
        contributions: vec![Contribution {
            metric: "temperature_c".into(),
            share: 0.9,
        }],
        scored_at: ScoredAt::Cloud,
        unscored: None,
    }
}

/// One episode: alarm opened at `from`, ongoing to `to`, closed at `to + 1`.
pub(super) fn episode(device: &str, from: u64, to: u64) -> Vec<Verdict> {
    let mut out = vec![v(device, from, Some((from, AlarmState::Opened)))];
    out.extend((from + 1..=to).map(|s| v(device, s, Some((from, AlarmState::Ongoing)))));
    out.push(v(device, to + 1, Some((from, AlarmState::Closed))));
    out
}

pub(super) fn feed(e: &mut Engine, r: &Rules, verdicts: &[Verdict], now: u64) -> Vec<Step> {
    verdicts.iter().flat_map(|x| e.verdict(x, r, now)).collect()
}

pub(super) fn states(steps: &[Step]) -> Vec<(IncidentState, String)> {
    steps
        .iter()
        .map(|s| (s.event.state, s.event.reason.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn an_episode_opens_one_incident_that_resolves_after_the_quiet_period() {
    let r = rules(ON_OPEN);
    let mut e = engine(10);
    let mut steps = feed(&mut e, &r, &episode("d", 10, 20), 1);
    // The same records again (both topics, redelivery): nothing new.
    steps.extend(feed(&mut e, &r, &episode("d", 10, 20), 2));
    assert_eq!(
        states(&steps),
        vec![
            (IncidentState::Opened, "alarm_opened".into()),
            (IncidentState::Updated, "alarm_closed".into()),
        ]
    );
    let opened = &steps[0];
    assert_eq!(opened.event.incident_id, "d:10");
    assert_eq!(opened.jobs.len(), 2, "both actions of the rule");
    assert_eq!(opened.jobs[0].action_id, "d:10/cool/0");
    assert_eq!(opened.jobs[0].incident, opened.event);
    assert!(opened
        .event
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Pending));
    // Calm records inside the quiet period: nothing; after it: resolved.
    assert!(e.verdict(&v("d", 23, None), &r, 3).is_empty());
    let resolved = e.verdict(&v("d", 21 + QUIET / 1000, None), &r, 4);
    assert_eq!(
        states(&resolved),
        vec![(IncidentState::Resolved, "quiet".into())]
    );
    let event = &resolved[0].event;
    assert_eq!(
        (event.anomalies, event.first_seq, event.last_seq),
        (11, 10, 20)
    );
    assert_eq!(event.revision, 2);
    assert!(event.ts > steps[1].event.ts);
    assert_eq!(event.top_metrics[0].metric, "temperature_c");
    assert_eq!(e.open_count(), 0);
    // The same alarm redelivered after resolution opens nothing.
    assert!(feed(&mut e, &r, &episode("d", 10, 20), 5).is_empty());
    // A later alarm is a new incident.
    let again = feed(&mut e, &r, &episode("d", 40, 41), 6);
    assert_eq!(again[0].event.incident_id, "d:40");
    assert_eq!(again[0].event.state, IncidentState::Opened);
}

#[test]
fn an_alarm_within_the_quiet_period_joins_the_incident() {
    let r = rules("");
    let mut e = engine(10);
    let mut steps = feed(&mut e, &r, &episode("d", 10, 12), 1);
    steps.extend(feed(&mut e, &r, &episode("d", 15, 16), 2));
    assert_eq!(
        states(&steps),
        vec![
            (IncidentState::Opened, "alarm_opened".into()),
            (IncidentState::Updated, "alarm_closed".into()),
            (IncidentState::Updated, "alarm_reopened".into()),
            (IncidentState::Updated, "alarm_closed".into()),
        ]
    );
    let last = &steps[3].event;
    assert_eq!(last.alarms, vec!["d@10".to_owned(), "d@15".to_owned()]);
    assert_eq!(last.incident_id, "d:10");
    // The silent device resolves on the wall clock.
    let due = e.next_expiry().expect("a deadline");
    assert!(e.expire(&r, due - 1).is_empty());
    assert_eq!(
        states(&e.expire(&r, due)),
        vec![(IncidentState::Resolved, "quiet".into())]
    );
}

#[test]
fn a_restart_rebuilt_from_the_events_repeats_nothing() {
    let r = rules(ON_OPEN);
    let mut first = engine(10);
    let episode = episode("d", 10, 20);
    let events: Vec<Incident> = feed(&mut first, &r, &episode[..5], 1)
        .into_iter()
        .map(|s| s.event)
        .collect();
    assert_eq!(events.len(), 1);
    let mut second = engine(10);
    for event in events {
        second.recover(event);
    }
    let recovered = second.finish_recovery(2);
    // The two actions were pending: interrupted, not sent again.
    assert_eq!(
        states(&recovered),
        vec![(IncidentState::Updated, "recovered".into())]
    );
    assert!(recovered[0]
        .event
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Interrupted));
    // Replaying the whole episode: the close, and no second opening or firing.
    let steps = feed(&mut second, &r, &episode, 3);
    assert_eq!(
        states(&steps),
        vec![(IncidentState::Updated, "alarm_closed".into())]
    );
    assert!(steps[0].jobs.is_empty());
    assert_eq!(steps[0].event.revision, 2);
}

#[test]
fn outcomes_are_recorded_and_cooldowns_and_suppressions_hold() {
    let r = rules(
        r#"
[[suppress]]
devices = "muted-*"
reason = "maintenance"
[[rule]]
name = "cool"
cooldown = "1h"
[[rule.command]]
name = "throttle"
[[rule.webhook]]
name = "hook"
url = "http://127.0.0.1:9/"
"#,
    );
    let mut e = engine(10);
    let opened = feed(&mut e, &r, &episode("d", 10, 11), 1_000);
    let job = &opened[0].jobs[1];
    let outcome = e
        .outcome(
            Outcome {
                device_id: "d".into(),
                incident_id: job.incident.incident_id.clone(),
                action_id: job.action_id.clone(),
                status: ActionStatus::Delivered,
                attempts: 4,
                detail: None,
            },
            2_000,
        )
        .expect("recorded");
    assert_eq!(outcome.event.reason.as_deref(), Some("action"));
    assert_eq!(outcome.event.actions[1].status, ActionStatus::Delivered);
    assert_eq!(outcome.event.actions[1].attempts, 4);
    // A second episode within the cooldown: recorded, not sent.
    let resolved = e.verdict(&v("d", 30, None), &r, 3_000);
    assert_eq!(resolved[0].event.state, IncidentState::Resolved);
    let again = feed(&mut e, &r, &episode("d", 40, 41), 4_000);
    assert!(again[0].jobs.is_empty());
    assert!(again[0]
        .event
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Cooldown));
    // A muted device: recorded as suppressed.
    let muted = feed(&mut e, &r, &episode("muted-1", 10, 11), 5_000);
    assert!(muted[0].jobs.is_empty());
    assert_eq!(muted[0].event.actions[0].status, ActionStatus::Suppressed);
    assert_eq!(
        muted[0].event.actions[0].detail.as_deref(),
        Some("maintenance")
    );
}

#[test]
fn the_rate_limit_and_the_capacity_bound_hold() {
    let r = rules(ON_OPEN);
    let mut e = Engine::new(EngineConfig {
        quiet: Duration::from_millis(QUIET),
        max_open: 3,
        rate_per_sec: 0.0,
        burst: 2.0,
        result_timeout: Duration::from_millis(RESULT_TIMEOUT),
    });
    let mut steps = Vec::new();
    for d in 0..5 {
        steps.extend(e.verdict(
            &v(&format!("d{d}"), 10, Some((10, AlarmState::Opened))),
            &r,
            1,
        ));
    }
    let sent: usize = steps.iter().map(|s| s.jobs.len()).sum();
    assert_eq!(sent, 2, "the burst of two, then rate limited");
    let limited = steps
        .iter()
        .filter(|s| s.event.state == IncidentState::Opened)
        .flat_map(|s| &s.event.actions)
        .filter(|a| a.status == ActionStatus::RateLimited)
        .count();
    assert_eq!(limited, 8);
    assert_eq!(e.open_count(), 3);
    let evicted: Vec<_> = steps
        .iter()
        .filter(|s| s.event.state == IncidentState::Resolved)
        .map(|s| (s.event.device_id.clone(), s.event.reason.clone()))
        .collect();
    assert_eq!(
        evicted,
        vec![
            ("d0".to_owned(), Some("capacity".to_owned())),
            ("d1".to_owned(), Some("capacity".to_owned()))
        ]
    );
    // The evicted incident's alarm does not open a second incident.
    assert!(e
        .verdict(&v("d0", 11, Some((10, AlarmState::Ongoing))), &r, 2)
        .is_empty());
}

#[test]
fn rules_on_severity_and_resolution_fire_once() {
    let r = rules(
        r#"
[[rule]]
name = "long"
min_duration = "3s"
[[rule.command]]
name = "reboot"
[[rule]]
name = "done"
when = "resolve"
[[rule.webhook]]
name = "closed"
url = "http://127.0.0.1:9/"
"#,
    );
    let mut e = engine(10);
    let steps = feed(&mut e, &r, &episode("d", 10, 16), 1);
    let fired: Vec<_> = steps
        .iter()
        .filter(|s| !s.jobs.is_empty())
        .map(|s| (s.event.last_seq, s.jobs[0].rule.clone()))
        .collect();
    assert_eq!(
        fired,
        vec![(13, "long".to_owned())],
        "once, when 3 s were reached"
    );
    assert!(steps.iter().all(|s| s.event.severity == Severity::High));
    let resolved = e.verdict(&v("d", 40, None), &r, 2);
    assert_eq!(resolved[0].jobs.len(), 1);
    assert_eq!(resolved[0].jobs[0].rule, "done");
}

#[test]
fn outcomes_of_an_incident_resolved_before_them_are_recorded() {
    let r = rules(ON_OPEN);
    let mut e = engine(10);
    let mut steps = feed(&mut e, &r, &episode("d", 10, 11), 1);
    steps.extend(e.verdict(&v("d", 30, None), &r, 2));
    steps.extend(feed(&mut e, &r, &episode("d", 40, 41), 3));
    let first = &steps[0].jobs[0];
    assert_eq!(first.incident.incident_id, "d:10");
    let recorded = e
        .outcome(
            Outcome {
                device_id: "d".into(),
                incident_id: "d:10".into(),
                action_id: first.action_id.clone(),
                status: ActionStatus::Sent,
                attempts: 1,
                detail: None,
            },
            4,
        )
        .expect("the resolved incident still takes its outcomes");
    assert_eq!(recorded.event.state, IncidentState::Resolved);
    assert_eq!(recorded.event.reason.as_deref(), Some("action"));
    assert_eq!(recorded.event.actions[0].status, ActionStatus::Sent);
    // The resolution time is the resolving event's, kept by the later one.
    let resolving = steps
        .iter()
        .map(|s| &s.event)
        .find(|i| i.incident_id == "d:10" && i.state == IncidentState::Resolved)
        .expect("d:10 resolved");
    assert_eq!(resolving.resolved_ts, Some(resolving.ts));
    assert!(recorded.event.ts > resolving.ts);
    assert_eq!(recorded.event.resolved_ts, Some(resolving.ts));
    assert!(steps[0].event.resolved_ts.is_none(), "not while open");
}

#[test]
fn actions_not_sent_are_reported_for_the_metrics() {
    let r = rules(
        "[[suppress]]\ndevices = \"m*\"\n[[rule]]\nname = \"r\"\n[[rule.command]]\nname = \"c\"\n",
    );
    let mut e = engine(10);
    let steps = feed(&mut e, &r, &episode("m1", 10, 11), 1);
    assert_eq!(
        steps[0].skipped,
        vec![(ActionKind::Command, ActionStatus::Suppressed)]
    );
    assert!(steps[0].jobs.is_empty());
}
