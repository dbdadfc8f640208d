//! Training from a file without a cluster: `vigil train --csv FILE --out
//! RELEASE`. The data come from the CSV file, the version from
//! `--version` (default 1), there is no live model to compare with, and
//! the signed release is written to a file instead of `vigil.models`, so
//! no broker is contacted. The gate still checks the candidate's holdout
//! false-alarm rate (unless `--force`).

use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use vigil_model::SigningKey;
use vigil_schemas::{Message as _, ReleaseHeader};

use crate::{build_release, load_data, progress_bar, Candidate, Loaded, TrainArgs};

/// Trains once from `args.csv` and writes the signed release to `out`
/// (see the module docs). Fails, writing nothing, when the data are too
/// few or the gate refuses.
pub async fn train_to_file(args: &TrainArgs, key: &SigningKey, out: &Path) -> anyhow::Result<()> {
    if args.csv.is_none() {
        bail!("--out needs --csv: writing a release to a file trains from a file");
    }
    let bar = progress_bar(args);
    let Loaded {
        records,
        source,
        episodes,
    } = load_data(args, bar.as_ref()).await?;
    let candidate = Candidate {
        records,
        source,
        episodes,
        version: args.release_version.unwrap_or(1),
    };
    let release = match build_release(args, key, candidate, None, bar).await? {
        Ok(release) => release,
        Err(why) => bail!("no release written: {why}"),
    };
    let bytes = release.encode()?;
    write_atomically(out, &bytes)?;
    let validation = serde_json::from_str::<ReleaseHeader>(release.payload.get())
        .map(|h| {
            if h.validation.holdout_records == 0 {
                "not validated (no holdout)".to_owned()
            } else {
                format!(
                    "holdout false-alarm rate {:.5} over {} records",
                    h.validation.false_alarm_rate, h.validation.holdout_records
                )
            }
        })
        .unwrap_or_default();
    eprintln!(
        "wrote {} v{} ({} bytes, {validation}) to {}",
        release.model,
        release.version,
        bytes.len(),
        out.display()
    );
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, syncs and renames it,
/// so a reader never sees half a release.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("release")
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}
