//! Command results on incidents: what devices report for the commands
//! rules sent them (`vigil.command-results`, bridged from
//! `vigil/devices/{id}/command-results` by `vigil push`), joined to the
//! command's action record by `command_id`, and the commands whose result
//! is overdue marked `timed_out`.
//!
//! Both are idempotent, like the rest of the engine: a result already on
//! its record (a redelivery, the same record read again after a restart)
//! changes nothing and emits nothing; a command that already got its
//! result or its time-out is not timed out again. A result that arrives
//! after the time-out is still recorded (the event says it came late).

use vigil_schemas::{ActionKind, ActionResult, ActionStatus, CommandResult};

use super::{Engine, Step};

/// Why a result was not joined to an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unjoined {
    /// No `command_id`: not a command of this role.
    NoCommandId,
    /// The incident is not held any more (or never was).
    UnknownIncident(String),
    /// The incident holds no command with that id.
    UnknownCommand(String),
    /// The result's device is not the incident's.
    OtherDevice(String),
}

impl Unjoined {
    /// The metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Unjoined::NoCommandId => "no_command_id",
            Unjoined::UnknownIncident(_) => "unknown_incident",
            Unjoined::UnknownCommand(_) => "unknown_command",
            Unjoined::OtherDevice(_) => "other_device",
        }
    }
}

/// The incident a command id belongs to: action ids are
/// `{incident_id}/{rule}/{index}` and incident ids hold no `/`.
fn incident_of(command_id: &str) -> &str {
    command_id.split('/').next().unwrap_or(command_id)
}

impl Engine {
    /// Joins a device's result to its command's action record: the status
    /// becomes `succeeded`, `failed` or `refused` and the record carries
    /// the result (exit status, duration). `Ok(None)`: already recorded.
    pub fn command_result(
        &mut self,
        r: &CommandResult,
        now: u64,
    ) -> Result<Option<Step>, Unjoined> {
        let command_id = r.command_id.as_deref().ok_or(Unjoined::NoCommandId)?;
        let incident_id = incident_of(command_id).to_owned();
        if let Some(named) = &r.incident_id {
            if *named != incident_id {
                return Err(Unjoined::UnknownIncident(named.clone()));
            }
        }
        // Incident ids are `{device_id}:{seq}`: a device can only answer
        // for its own incidents.
        let owner = incident_id
            .rsplit_once(':')
            .map_or(incident_id.as_str(), |(d, _)| d);
        if owner != r.device_id {
            return Err(Unjoined::OtherDevice(incident_id));
        }
        let result = ActionResult::from(r);
        let mut known = false;
        let amended = self.amend(&r.device_id, &incident_id, now, |incident| {
            let Some(record) = incident.actions.iter_mut().find(|a| a.id == command_id) else {
                return false;
            };
            known = true;
            if record.result.as_ref() == Some(&result) {
                return false;
            }
            let late = record.status == ActionStatus::TimedOut;
            record.status = ActionStatus::of_result(r.status);
            record.ts = now;
            record.detail = late.then(|| "the result arrived after its timeout".to_owned());
            record.result = Some(result);
            true
        });
        match amended {
            None => Err(Unjoined::UnknownIncident(incident_id)),
            Some(_) if !known => Err(Unjoined::UnknownCommand(command_id.to_owned())),
            Some(step) => Ok(step),
        }
    }

    /// Marks `timed_out` every command whose result was due by `now` and
    /// did not come; one event per incident.
    pub(super) fn time_out(&mut self, now: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some((due, _, _)) = self.due.first() {
            if *due > now {
                break;
            }
            let Some((_, device, incident_id)) = self.due.pop_first() else {
                break;
            };
            let mut timed_out = 0;
            let amended = self.amend(&device, &incident_id, now, |incident| {
                for a in incident
                    .actions
                    .iter_mut()
                    .filter(|a| a.awaits_result() && a.result_due.is_some_and(|t| t <= now))
                {
                    a.status = ActionStatus::TimedOut;
                    a.ts = now;
                    a.detail = Some("the device reported no result in time".to_owned());
                    timed_out += 1;
                }
                timed_out > 0
            });
            if let Some(mut step) = amended.flatten() {
                step.skipped = vec![(ActionKind::Command, ActionStatus::TimedOut); timed_out];
                steps.push(step);
            }
        }
        steps
    }
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
