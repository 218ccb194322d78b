//! Durable agent state under `ECS_DATADIR` (when `ECS_CHECKPOINT`): one JSON document holding
//! the registration (cluster, container instance ARN, EC2 instance ID, availability zone) and
//! every task the engine knows, with its containers' known, desired, in-flight and
//! accepted-by-ECS statuses, Docker IDs, name suffixes and host port bindings — all a restarted
//! agent needs to carry on without creating a container twice or losing a state change.
//! `docs/state.md` says why it is one JSON file and not an embedded database.
//!
//! Writes are crash-safe (`file`): a temporary file in the same directory, fsync, the current
//! copy kept as the previous one, rename, fsync of the directory; never truncated in place.
//! The document carries a schema version; older versions are migrated step by step
//! (`migrate`). Files are mode 0600 and hold no secret: role credentials are scrubbed before
//! anything is written.

pub mod file;
mod migrate;

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::TaskState;
use crate::images::cleanup::ImageRecords;
pub use file::{load, replace_file, write, write_file, Loaded};

/// Schema version of the state document.
pub const VERSION: u32 = 2;
/// The state document's file name in the data directory.
pub const FILE: &str = "ecs-agent-data.json";

/// What the agent remembers about its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub cluster: String,
    pub container_instance_arn: String,
    /// Empty in external mode.
    pub ec2_instance_id: String,
    pub availability_zone: Option<String>,
}

/// The whole saved state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u32,
    pub metadata: Metadata,
    #[serde(default)]
    pub tasks: Vec<TaskState>,
    /// Images the agent pulled for tasks, for image cleanup.
    #[serde(default)]
    pub images: ImageRecords,
    /// Highest ACS sequence number seen (task manifests older than it are stale).
    #[serde(default)]
    pub acs_seq_num: Option<i64>,
}

/// Errors reading or writing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The saved state was written by a newer agent with a schema this one does not know (a
    /// downgrade). Terminal: starting fresh would register a new instance and orphan the
    /// running tasks, so the files are left as they are.
    #[error(
        "{path} has state schema version {found}, newer than the {known} this agent reads: \
         run the newer agent again, or move the data directory aside to register a new instance"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        known: u32,
    },
}

impl StateError {
    /// Whether a restart cannot cure it (the agent exits with the terminal code).
    pub fn is_terminal(&self) -> bool {
        match self {
            StateError::Io { .. } => false,
            StateError::NewerSchema { .. } => true,
        }
    }
}

/// Renders the state to save, or `None` when it is what was last written.
#[derive(Debug)]
pub struct Writer {
    pub dir: PathBuf,
    metadata: Metadata,
    /// The ACS session's highest sequence number (-1: none yet), saved with the rest.
    pub seq: std::sync::Arc<std::sync::atomic::AtomicI64>,
    last: Vec<u8>,
}

impl Writer {
    pub fn new(dir: PathBuf, metadata: Metadata) -> Self {
        Writer {
            dir,
            metadata,
            seq: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            last: Vec::new(),
        }
    }

    /// The document for these tasks (credentials scrubbed), unless unchanged since the last
    /// [`Writer::written`].
    pub fn render(&self, mut tasks: Vec<TaskState>, images: ImageRecords) -> Option<Vec<u8>> {
        scrub(&mut tasks);
        let seq = self.seq.load(std::sync::atomic::Ordering::SeqCst);
        let doc = SavedState {
            version: VERSION,
            metadata: self.metadata.clone(),
            tasks,
            images,
            acs_seq_num: (seq >= 0).then_some(seq),
        };
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        (bytes != self.last).then_some(bytes)
    }

    /// Records that `bytes` reached the disk.
    pub fn written(&mut self, bytes: Vec<u8>) {
        self.last = bytes;
    }
}

/// Blanks the secret parts of every role credential (the IDs stay: they name what ACS will
/// send again).
pub fn scrub(tasks: &mut [TaskState]) {
    for t in tasks {
        let creds = [
            t.task.role_credentials.as_mut(),
            t.task.execution_role_credentials.as_mut(),
        ];
        for c in creds.into_iter().flatten() {
            c.access_key_id.clear();
            c.secret_access_key.clear();
            c.session_token.clear();
        }
    }
}

/// What the saved metadata means for this start.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Register as the saved container instance; the saved tasks carry on.
    Reregister(String),
    /// Register as a new instance with no tasks (no state, or another EC2 instance's state).
    Fresh,
}

/// Decides from the saved metadata: another EC2 instance's state is ignored (a new
/// registration), another cluster's is a terminal error, otherwise re-register with the ARN.
pub fn resume(
    saved: Option<&Metadata>,
    cluster: &str,
    instance_id: &str,
) -> Result<Resume, String> {
    let Some(m) = saved else {
        return Ok(Resume::Fresh);
    };
    if m.ec2_instance_id != instance_id {
        return Ok(Resume::Fresh);
    }
    if m.cluster != cluster {
        return Err(format!(
            "the saved state belongs to cluster {:?}, but ECS_CLUSTER is {cluster:?}: remove the data directory to move this instance",
            m.cluster
        ));
    }
    Ok(Resume::Reregister(m.container_instance_arn.clone()))
}

#[cfg(test)]
mod tests;
