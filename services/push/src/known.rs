//! Which model releases were really published: the versions of each
//! model that the model log holds and that verified, as read by the
//! mirror's feed (`vigil_releases::feed`, the shared accept rule), and the
//! versions it holds that were refused, with the reason.
//!
//! The verdict bridge asks it whether an edge verdict names a release the
//! cloud published; the mirror keeps it up to date. It is a `watch`
//! channel so that a bridge waiting for a release it has not read yet (a
//! verdict from a release another push replica mirrored a moment before
//! this one read it) wakes when the feed brings it.
//!
//! Bounded: accepted versions are one per release (the log is compacted,
//! one release is a few KiB); refused versions keep at most
//! [`MAX_REFUSED`] per model, the newest.
//!
//! Compaction: `vigil.models` keeps the newest release per model once it
//! is compacted, so a push started after an older release was compacted
//! away does not know it, and verdicts naming it are refused as unknown.
//! Kafka never compacts a topic's active segment (by default a week of
//! releases); see docs/ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::sync::watch;

/// Most refused versions remembered per model.
pub const MAX_REFUSED: usize = 256;

/// What the model log says about one (model, version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Published and verified.
    Published,
    /// Published, and refused for this reason (signature, checksum, …).
    Refused(&'static str),
    /// Not in the log, which was read to its end. `newest` is the newest
    /// verified version known.
    Unknown {
        /// Newest published version, if any.
        newest: Option<u64>,
    },
    /// A model this push does not follow.
    UnknownModel,
    /// The model's log has not been read to its end yet.
    NotRead,
}

/// One model's published and refused versions.
#[derive(Debug, Clone, Default)]
struct ModelLog {
    accepted: BTreeSet<u64>,
    refused: BTreeMap<u64, &'static str>,
    caught_up: bool,
}

/// The releases of every followed model.
#[derive(Debug, Clone, Default)]
pub struct Known {
    models: HashMap<String, ModelLog>,
}

impl Known {
    /// Following `models`, nothing read yet.
    pub fn new(models: &[String]) -> Self {
        Known {
            models: models
                .iter()
                .map(|m| (m.clone(), ModelLog::default()))
                .collect(),
        }
    }

    /// What the log says about `model` `version`.
    pub fn lookup(&self, model: &str, version: u64) -> Lookup {
        let Some(log) = self.models.get(model) else {
            return Lookup::UnknownModel;
        };
        if log.accepted.contains(&version) {
            return Lookup::Published;
        }
        if let Some(reason) = log.refused.get(&version) {
            return Lookup::Refused(reason);
        }
        if !log.caught_up {
            return Lookup::NotRead;
        }
        Lookup::Unknown {
            newest: log.accepted.last().copied(),
        }
    }

    /// Whether push follows `model`.
    pub fn follows(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// Whether every followed model's log was read to its end.
    pub fn caught_up(&self) -> bool {
        self.models.values().all(|m| m.caught_up)
    }

    pub(crate) fn accept(&mut self, model: &str, version: u64) {
        if let Some(log) = self.models.get_mut(model) {
            log.refused.remove(&version);
            log.accepted.insert(version);
        }
    }

    pub(crate) fn refuse(&mut self, model: &str, version: u64, reason: &'static str) {
        let Some(log) = self.models.get_mut(model) else {
            return;
        };
        // A genuine release seen again later (an older copy, a re-publish)
        // stays published.
        if log.accepted.contains(&version) {
            return;
        }
        log.refused.insert(version, reason);
        while log.refused.len() > MAX_REFUSED {
            log.refused.pop_first();
        }
    }

    pub(crate) fn read_to_end(&mut self, model: &str) {
        if let Some(log) = self.models.get_mut(model) {
            log.caught_up = true;
        }
    }
}

/// The shared, watchable [`Known`].
#[derive(Debug, Clone)]
pub struct KnownReleases {
    tx: watch::Sender<Known>,
}

impl KnownReleases {
    /// Following `models`, nothing read yet.
    pub fn new(models: &[String]) -> Self {
        KnownReleases {
            tx: watch::Sender::new(Known::new(models)),
        }
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Known> {
        self.tx.subscribe()
    }

    /// What the log says about `model` `version` now.
    pub fn lookup(&self, model: &str, version: u64) -> Lookup {
        self.tx.borrow().lookup(model, version)
    }

    /// `model` `version` was published and verified.
    pub fn accept(&self, model: &str, version: u64) {
        self.tx.send_modify(|k| k.accept(model, version));
    }

    /// `model` `version` was published and refused for `reason`.
    pub fn refuse(&self, model: &str, version: u64, reason: &'static str) {
        self.tx.send_modify(|k| k.refuse(model, version, reason));
    }

    /// `model`'s log was read to the end it had at start-up.
    pub fn read_to_end(&self, model: &str) {
        self.tx.send_modify(|k| k.read_to_end(model));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_published_refused_unknown_and_unread_apart() {
        let known = KnownReleases::new(&["default".to_owned()]);
        assert_eq!(known.lookup("default", 1), Lookup::NotRead);
        known.accept("default", 1);
        known.refuse("default", 2, "bad_signature");
        known.accept("default", 3);
        // A copy of v1 refused later (older than live) stays published.
        known.refuse("default", 1, "older_version");
        assert_eq!(known.lookup("default", 4), Lookup::NotRead);
        known.read_to_end("default");
        assert_eq!(known.lookup("default", 1), Lookup::Published);
        assert_eq!(known.lookup("default", 2), Lookup::Refused("bad_signature"));
        assert_eq!(known.lookup("default", 3), Lookup::Published);
        assert_eq!(
            known.lookup("default", 4),
            Lookup::Unknown { newest: Some(3) }
        );
        assert_eq!(known.lookup("other", 1), Lookup::UnknownModel);
    }

    #[test]
    fn refused_versions_are_bounded() {
        let known = KnownReleases::new(&["m".to_owned()]);
        for v in 0..(MAX_REFUSED as u64 + 10) {
            known.refuse("m", v, "bad_checksum");
        }
        known.read_to_end("m");
        assert_eq!(known.lookup("m", 0), Lookup::Unknown { newest: None });
        assert_eq!(
            known.lookup("m", MAX_REFUSED as u64 + 9),
            Lookup::Refused("bad_checksum")
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_when_the_release_arrives() {
        let known = KnownReleases::new(&["m".to_owned()]);
        known.read_to_end("m");
        let mut rx = known.subscribe();
        let writer = known.clone();
        tokio::spawn(async move { writer.accept("m", 5) });
        let seen = rx
            .wait_for(|k| k.lookup("m", 5) == Lookup::Published)
            .await
            .is_ok();
        assert!(seen);
    }
}
