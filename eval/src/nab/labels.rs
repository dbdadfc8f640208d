//! The ground truth and the rules: anomaly windows per file
//! (`labels/combined_windows.json`) and the scoring profiles
//! (`config/profiles.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{read_to_string, NabError, Timestamp};

/// One labelled anomaly window, both edges inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Anomaly windows of every corpus file, keyed by the file's path relative
/// to the data directory (`realKnownCause/nyc_taxi.csv`). Files without
/// anomalies are present with no windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    pub files: BTreeMap<String, Vec<Window>>,
}

impl Labels {
    /// Reads a `combined_windows.json`.
    pub fn load(path: &Path) -> Result<Self, NabError> {
        let text = read_to_string(path)?;
        Self::from_json(&text).map_err(|e| e.at(path))
    }

    /// Parses the JSON of a windows file: `{"cat/file.csv": [[start, end], …]}`.
    /// Windows must be ordered and must not overlap.
    pub fn from_json(text: &str) -> Result<Self, NabError> {
        let raw: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(text).map_err(|cause| NabError::Json { path: None, cause })?;
        let mut files = BTreeMap::new();
        for (file, windows) in raw {
            let mut parsed: Vec<Window> = Vec::with_capacity(windows.len());
            for (start, end) in windows {
                let window = Window {
                    start: Timestamp::parse(&start)?,
                    end: Timestamp::parse(&end)?,
                };
                let why = if window.end < window.start {
                    Some("ends before it starts")
                } else if parsed.last().is_some_and(|p| p.end >= window.start) {
                    Some("overlaps or precedes the window before it")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(NabError::BadWindow {
                        file,
                        start,
                        end,
                        why,
                    });
                }
                parsed.push(window);
            }
            files.insert(file, parsed);
        }
        Ok(Self { files })
    }

    /// Number of windows over all files: what a perfect detector finds.
    pub fn window_count(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }
}

/// Weights of one scoring profile (NAB's cost matrix).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct CostMatrix {
    /// Reward for a window caught at its left edge.
    #[serde(rename = "tpWeight")]
    pub tp: f64,
    /// Cost of a detection far from any window.
    #[serde(rename = "fpWeight")]
    pub fp: f64,
    /// Cost of a window with no detection.
    #[serde(rename = "fnWeight")]
    pub fn_: f64,
}

/// A named scoring profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub costs: CostMatrix,
}

/// NAB's three profiles in its usual order; other names follow.
const PROFILE_ORDER: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

impl Profile {
    /// Reads a `profiles.json`.
    pub fn load_all(path: &Path) -> Result<Vec<Profile>, NabError> {
        let text = read_to_string(path)?;
        Self::from_json(&text).map_err(|e| e.at(path))
    }

    /// Parses `{"name": {"CostMatrix": {"tpWeight": …, "fpWeight": …,
    /// "fnWeight": …}}}`.
    pub fn from_json(text: &str) -> Result<Vec<Profile>, NabError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "CostMatrix")]
            costs: CostMatrix,
        }
        let raw: BTreeMap<String, Entry> =
            serde_json::from_str(text).map_err(|cause| NabError::Json { path: None, cause })?;
        let mut profiles: Vec<Profile> = raw
            .into_iter()
            .map(|(name, e)| Profile {
                name,
                costs: e.costs,
            })
            .collect();
        if profiles.is_empty() {
            return Err(NabError::Profiles {
                path: None,
                why: "no profiles defined".to_owned(),
            });
        }
        for p in &profiles {
            let c = p.costs;
            if ![c.tp, c.fp, c.fn_]
                .iter()
                .all(|w| w.is_finite() && *w >= 0.0)
                || c.tp == 0.0
            {
                return Err(NabError::Profiles {
                    path: None,
                    why: format!(
                        "profile {:?} needs finite non-negative weights and a positive tpWeight",
                        p.name
                    ),
                });
            }
        }
        profiles.sort_by_key(|p| {
            PROFILE_ORDER
                .iter()
                .position(|n| *n == p.name)
                .unwrap_or(PROFILE_ORDER.len())
        });
        Ok(profiles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_overlaps_are_refused() {
        let labels = Labels::from_json(
            r#"{"a/x.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]],
                "a/empty.csv": []}"#,
        )
        .expect("valid");
        assert_eq!(labels.window_count(), 1);
        assert!(labels.files["a/empty.csv"].is_empty());
        let err = Labels::from_json(
            r#"{"a/x.csv": [["2014-04-10 00:00:00", "2014-04-12 00:00:00"],
                            ["2014-04-11 00:00:00", "2014-04-13 00:00:00"]]}"#,
        )
        .expect_err("overlap");
        assert!(err.to_string().contains("a/x.csv"), "{err}");
        assert!(err.to_string().contains("overlaps"), "{err}");
    }

    #[test]
    fn profiles_come_in_nab_order() {
        let p = Profile::from_json(
            r#"{"reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1, "fnWeight": 2, "fpWeight": 0.11, "tnWeight": 1}},
                "standard": {"CostMatrix": {"tpWeight": 1, "fnWeight": 1, "fpWeight": 0.11, "tnWeight": 1}}}"#,
        )
        .expect("valid");
        assert_eq!(p[0].name, "standard");
        assert_eq!(p[1].costs.fn_, 2.0);
        let err = Profile::from_json(
            r#"{"x": {"CostMatrix": {"tpWeight": 0, "fnWeight": 1, "fpWeight": 1}}}"#,
        )
        .expect_err("zero tp weight");
        assert!(err.to_string().contains("\"x\""), "{err}");
    }
}
