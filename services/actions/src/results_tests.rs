//! Tests of command results on incidents: joined by `command_id`, once;
//! refused from another device; overdue commands timed out; and the same
//! after a restart rebuilt from the events.

use vigil_schemas::{
    ActionStatus, CommandOutcome, CommandResult, Incident, IncidentState, Verdict,
};

use super::super::tests::{engine, episode, feed, rules, states, v, QUIET, RESULT_TIMEOUT};
use super::super::{Outcome, Step};
use super::Unjoined;

const COMMAND: &str = r#"
[[rule]]
name = "cool"
[[rule.command]]
name = "throttle"
[[rule.command]]
name = "slow"
result_timeout = "5s"
"#;

fn result(device: &str, command_id: &str, status: CommandOutcome) -> CommandResult {
    CommandResult {
        schema: 1,
        device_id: device.into(),
        command: "throttle".into(),
        command_id: Some(command_id.into()),
        incident_id: command_id.split('/').next().map(str::to_owned),
        status,
        exit_status: Some(if status == CommandOutcome::Ok { 0 } else { 3 }),
        duration_ms: 12,
        ts: 7,
        detail: None,
    }
}

fn sent(job_action: &str, incident: &str) -> Outcome {
    Outcome {
        device_id: "d".into(),
        incident_id: incident.into(),
        action_id: job_action.into(),
        status: ActionStatus::Sent,
        attempts: 1,
        detail: None,
    }
}

fn status_of(event: &Incident, id: &str) -> ActionStatus {
    event
        .actions
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.status)
        .unwrap_or(ActionStatus::Pending)
}

#[test]
fn a_result_joins_its_command_once_and_only_from_its_device() {
    let r = rules(COMMAND);
    let mut e = engine(10);
    let opened = feed(&mut e, &r, &episode("d", 10, 11)[..1], 1_000);
    let first = &opened[0].event.actions[0];
    assert_eq!(first.result_due, Some(1_000 + RESULT_TIMEOUT));
    assert_eq!(opened[0].event.actions[1].result_due, Some(6_000));
    let ids: Vec<String> = opened[0].jobs.iter().map(|j| j.action_id.clone()).collect();
    assert_eq!(ids, ["d:10/cool/0", "d:10/cool/1"]);
    assert!(e.outcome(sent(&ids[0], "d:10"), 1_100).is_some());

    let ok = result("d", &ids[0], CommandOutcome::Ok);
    let joined = e
        .command_result(&ok, 1_200)
        .expect("joined")
        .expect("an event");
    let record = &joined.event.actions[0];
    assert_eq!(record.status, ActionStatus::Succeeded);
    let got = record.result.as_ref().expect("result recorded");
    assert_eq!((got.exit_status, got.duration_ms), (Some(0), 12));
    assert_eq!(joined.event.reason.as_deref(), Some("action"));
    assert_eq!(joined.event.revision, 2);
    // The same result again (redelivery, re-read): nothing.
    assert!(e.command_result(&ok, 1_300).expect("known").is_none());
    // The broker's acknowledgement arriving after the result changes nothing.
    assert!(e.outcome(sent(&ids[0], "d:10"), 1_400).is_none());

    let refused = result("d", &ids[1], CommandOutcome::Refused);
    let joined = e
        .command_result(&refused, 1_500)
        .expect("joined")
        .expect("event");
    assert_eq!(status_of(&joined.event, &ids[1]), ActionStatus::Refused);

    // Another device cannot answer for this incident; unknown ids are said.
    assert_eq!(
        e.command_result(&result("x", &ids[0], CommandOutcome::Failed), 1_600)
            .err(),
        Some(Unjoined::OtherDevice("d:10".into()))
    );
    assert_eq!(
        e.command_result(&result("d", "d:10/other/0", CommandOutcome::Ok), 1_600)
            .err(),
        Some(Unjoined::UnknownCommand("d:10/other/0".into()))
    );
    assert_eq!(
        e.command_result(&result("d", "d:99/cool/0", CommandOutcome::Ok), 1_600)
            .err(),
        Some(Unjoined::UnknownIncident("d:99".into()))
    );
    let mut bare = result("d", &ids[0], CommandOutcome::Ok);
    bare.command_id = None;
    assert_eq!(
        e.command_result(&bare, 1_600).err(),
        Some(Unjoined::NoCommandId)
    );
}

#[test]
fn overdue_commands_time_out_once_and_late_results_are_still_recorded() {
    let r = rules(COMMAND);
    let mut e = engine(10);
    let opened = feed(&mut e, &r, &episode("d", 10, 11)[..1], 1_000);
    let ids: Vec<String> = opened[0].jobs.iter().map(|j| j.action_id.clone()).collect();
    for id in &ids {
        assert!(e.outcome(sent(id, "d:10"), 1_100).is_some());
    }
    assert_eq!(e.next_expiry(), Some(6_000));
    assert!(e.expire(&r, 5_999).is_empty(), "not due yet");
    let steps = e.expire(&r, 6_000);
    assert_eq!(steps.len(), 1);
    assert_eq!(status_of(&steps[0].event, &ids[1]), ActionStatus::TimedOut);
    assert_eq!(status_of(&steps[0].event, &ids[0]), ActionStatus::Sent);
    assert_eq!(steps[0].skipped.len(), 1, "counted once");
    assert!(e.expire(&r, 7_000).is_empty(), "not timed out twice");

    let late = e
        .command_result(&result("d", &ids[1], CommandOutcome::Failed), 8_000)
        .expect("joined")
        .expect("event");
    let record = &late.event.actions[1];
    assert_eq!(record.status, ActionStatus::Failed);
    assert!(record
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("after")));
    // The other command times out at the global timeout.
    let steps = e.expire(&r, 1_000 + RESULT_TIMEOUT);
    assert_eq!(status_of(&steps[0].event, &ids[0]), ActionStatus::TimedOut);
    assert_eq!(e.next_expiry(), None);
}

/// Feeds `verdicts`, then records the broker's acknowledgement of every
/// command job, returning every event.
fn run(
    e: &mut super::super::Engine,
    r: &crate::rules::Rules,
    verdicts: &[Verdict],
    now: u64,
) -> Vec<Incident> {
    let steps: Vec<Step> = feed(e, r, verdicts, now);
    let mut events: Vec<Incident> = steps.iter().map(|s| s.event.clone()).collect();
    for job in steps.iter().flat_map(|s| &s.jobs) {
        let o = sent(&job.action_id, &job.incident.incident_id);
        events.extend(e.outcome(o, now + 1).map(|s| s.event));
    }
    events
}

#[test]
fn after_a_restart_results_join_resolved_incidents_and_time_outs_still_fire() {
    let r = rules(COMMAND);
    let mut first = engine(10);
    let mut events = run(&mut first, &r, &episode("d", 10, 11), 1_000);
    // The incident resolves while both commands await their results.
    let resolved = first.verdict(&v("d", 12 + QUIET / 1000, None), &r, 2_000);
    assert_eq!(
        states(&resolved),
        vec![(IncidentState::Resolved, "quiet".into())]
    );
    events.extend(resolved.into_iter().map(|s| s.event));

    let mut second = engine(10);
    for event in events {
        second.recover(event);
    }
    assert!(
        second.finish_recovery(3_000).is_empty(),
        "sent commands are not interrupted: their results may still come"
    );
    let ok = result("d", "d:10/cool/0", CommandOutcome::Ok);
    let joined = second
        .command_result(&ok, 3_100)
        .expect("joined")
        .expect("event");
    assert_eq!(joined.event.state, IncidentState::Resolved);
    assert_eq!(
        status_of(&joined.event, "d:10/cool/0"),
        ActionStatus::Succeeded
    );
    let timed_out = second.expire(&r, 6_000);
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0].event.revision, joined.event.revision + 1);
    assert_eq!(
        status_of(&timed_out[0].event, "d:10/cool/1"),
        ActionStatus::TimedOut
    );
    // Re-reading the result topic after the restart: nothing new.
    assert!(second.command_result(&ok, 6_100).expect("known").is_none());
}
