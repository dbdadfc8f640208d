//! The chaos suite's results: the Markdown table, the one-line summary,
//! and the marked section of RELIABILITY.md it replaces.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::cases::Outcome;
use crate::Profile;

const BEGIN: &str = "<!-- chaos:begin (written by scripts/chaos.sh; edits are replaced) -->";
const END: &str = "<!-- chaos:end -->";

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// One table row.
pub fn row(o: &Outcome, profile: &Profile) -> String {
    format!(
        "| {} | {} | {} | {} | {} | **{}** | {} | {} / {} | {} | {} | {} |",
        o.case.name(),
        o.case.describe(profile),
        o.published,
        o.accepted,
        o.audited,
        o.loss,
        o.duplicates,
        o.unrouted,
        o.unacked,
        secs(o.recovery),
        secs(o.complete),
        o.note,
    )
}

/// The whole table with the command and the profile.
pub fn render(outcomes: &[Outcome], profile: &Profile, elapsed: Duration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Profile `{}`: {} devices at {} msg/s for {} s per case, the fault {} s in; \
         whole run {:.0} s on this machine.\n\n",
        profile.name,
        profile.devices,
        profile.rate,
        profile.duration.as_secs(),
        profile.fault_at.as_secs(),
        elapsed.as_secs_f64(),
    ));
    out.push_str(
        "| case | fault | published | accepted by Mosquitto | audited | loss | duplicates \
         | Mosquitto dropped (RC 16) / never acked | ready again | audit complete | notes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for o in outcomes {
        out.push_str(&row(o, profile));
        out.push('\n');
    }
    out
}

/// The last line: `chaos: N cases, loss 0, duplicates D`, or the failing
/// cases.
pub fn summary(outcomes: &[Outcome]) -> String {
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    let failing: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            if o.loss > 0 {
                format!("{} (loss {})", o.case.name(), o.loss)
            } else if !o.note.starts_with("error") {
                format!(
                    "{} (duplicates {} with no fault)",
                    o.case.name(),
                    o.duplicates
                )
            } else {
                format!("{} (error)", o.case.name())
            }
        })
        .collect();
    let dropped: u64 = outcomes.iter().map(|o| o.unrouted).sum();
    let broker = if dropped > 0 {
        format!(" ({dropped} dropped by Mosquitto before Vigil, RC 16)")
    } else {
        String::new()
    };
    if failing.is_empty() {
        format!(
            "chaos: {} cases, loss 0, duplicates {duplicates}{broker}",
            outcomes.len()
        )
    } else {
        let loss: u64 = outcomes.iter().map(|o| o.loss).sum();
        format!(
            "chaos: {} cases, loss {loss}, duplicates {duplicates}{broker}; FAILED: {}",
            outcomes.len(),
            failing.join(", ")
        )
    }
}

/// Replaces the text between the markers in `file` with `table` (the
/// markers are appended at the end when missing).
pub fn write_section(file: &Path, table: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let section = format!("{BEGIN}\n{table}{END}");
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!("{}{section}{}", &text[..begin], &text[end + END.len()..])
        }
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(file, updated).with_context(|| format!("writing {}", file.display()))
}
