//! Where each container's shipping stands, saved after every batch CloudWatch accepted: one
//! small file per container under `ECS_DATADIR/logs/` (mode 0600), holding the destination and
//! the position of the last line shipped. Writes are atomic but not fsynced
//! (`state::replace_file`): they survive an agent crash, while a power cut may bring back an
//! older position (lines shipped again, none lost) — the exception `docs/state.md` lists. A
//! restarted agent resumes from it: no gap, and no duplicate after an agent crash.
//!
//! A position is where the line ends in Docker's json-file log (the file's inode and the byte
//! offset just past the line) when the agent reads the file, which is exact whatever order the
//! timestamps come in; plus, for reading through the Docker API, the line's Docker timestamp
//! (nanoseconds) and its index among the lines that carry exactly that timestamp.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cloudwatch::Destination;
use crate::state;

/// A line's place in a container's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Docker's timestamp of the line, Unix nanoseconds.
    pub nanos: i64,
    /// Index among the lines with this same timestamp.
    pub seq: u32,
    /// Where the line ends in the json-file log, when it was read from the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileOffset>,
}

impl Position {
    /// The timestamp and index, without the file offset.
    pub fn key(&self) -> (i64, u32) {
        (self.nanos, self.seq)
    }
}

/// A place in one of Docker's json-file log files (the current one or a rotated one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileOffset {
    /// The file's inode (rotation renames files; the inode follows them).
    pub ino: u64,
    /// Bytes from the start of the file.
    pub offset: u64,
}

/// One container's shipping record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub docker_id: String,
    pub destination: Destination,
    /// The pattern that starts an event (multiline or datetime format), as a regex.
    pub start_pattern: Option<String>,
    /// The last line shipped; `None` before the first batch.
    pub shipped: Option<Position>,
}

/// The records on disk (or nowhere, without checkpointing).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: Option<PathBuf>,
}

impl Checkpoints {
    /// Records under `data_dir/logs`, or none when `data_dir` is `None` (`ECS_CHECKPOINT=false`).
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        Checkpoints {
            dir: data_dir.map(|d| d.join("logs")),
        }
    }

    fn name(docker_id: &str) -> String {
        let clean: String = docker_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("{clean}.json")
    }

    /// Saves a record; a failure is logged (shipping goes on; a restart may then repeat lines).
    /// The write is atomic but not synced to disk: an agent crash keeps it, a power cut may
    /// bring back an older position (lines are then sent again, never lost).
    pub fn save(&self, record: &Record) {
        let Some(dir) = &self.dir else { return };
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        if let Err(e) = state::replace_file(dir, &Self::name(&record.docker_id), &bytes) {
            tracing::error!(error = %e, "cannot save a log checkpoint");
        }
    }

    /// Every saved record (unreadable files are skipped with a warning).
    pub fn load_all(&self) -> Vec<Record> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let text = fs::read(&p).ok()?;
                serde_json::from_slice(&text)
                    .map_err(|e| tracing::warn!(path = %p.display(), error = %e, "unreadable log checkpoint ignored"))
                    .ok()
            })
            .collect()
    }

    /// The saved record of one container.
    pub fn load(&self, docker_id: &str) -> Option<Record> {
        let dir = self.dir.as_ref()?;
        let bytes = fs::read(dir.join(Self::name(docker_id))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets a container (it was removed).
    pub fn remove(&self, docker_id: &str) {
        if let Some(dir) = &self.dir {
            let _ = fs::remove_file(dir.join(Self::name(docker_id)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, shipped: Option<Position>) -> Record {
        Record {
            docker_id: id.into(),
            destination: Destination {
                region: "us-west-2".into(),
                endpoint: None,
                group: "/ecs/app".into(),
                stream: "web/app/task".into(),
                create_group: false,
                execution_credentials_id: None,
            },
            start_pattern: None,
            shipped,
        }
    }

    #[test]
    fn records_are_saved_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::new(Some(dir.path().to_owned()));
        c.save(&record("abc", None));
        let at = Position {
            nanos: 5,
            seq: 1,
            file: Some(FileOffset { ino: 7, offset: 90 }),
        };
        c.save(&record("abc", Some(at)));
        c.save(&record("def", None));
        let mut all = c.load_all();
        all.sort_by(|a, b| a.docker_id.cmp(&b.docker_id));
        assert_eq!(all, [record("abc", Some(at)), record("def", None)]);
        c.remove("abc");
        assert_eq!(c.load_all(), [record("def", None)]);
    }

    #[test]
    fn without_checkpointing_nothing_is_written() {
        let c = Checkpoints::new(None);
        c.save(&record("abc", None));
        assert!(c.load_all().is_empty());
    }

    #[test]
    fn positions_order_by_time_then_index() {
        let at = |nanos, seq| Position {
            nanos,
            seq,
            file: None,
        };
        let a = at(10, 3);
        assert!(at(10, 4).key() > a.key());
        assert!(at(11, 0).key() > a.key());
        assert!(at(9, 9).key() < a.key());
    }
}
