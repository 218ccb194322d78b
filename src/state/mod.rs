//! Durable agent state under `ECS_DATADIR` (when `ECS_CHECKPOINT`). Today: the instance metadata
//! that registration needs across restarts (cluster, container instance ARN, EC2 instance ID,
//! availability zone), so a restarted agent re-registers as the same container instance.
//!
//! Writes are crash-safe: a temporary file in the same directory, fsync, rename, fsync of the
//! directory; never truncated in place. The file carries a schema version and mode 0600, and
//! holds no secret. Known limit: tasks and containers are not saved yet.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Schema version of the metadata file.
pub const VERSION: u32 = 1;
const FILE: &str = "ecs-agent-metadata.json";

/// What the agent remembers about its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub version: u32,
    pub cluster: String,
    pub container_instance_arn: String,
    /// Empty in external mode.
    pub ec2_instance_id: String,
    pub availability_zone: Option<String>,
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
    #[error("{path}: not a metadata file of schema version {VERSION} ({reason}); ignored")]
    Unreadable { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the saved metadata; `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Metadata>, StateError> {
    let path = dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let m: Metadata = serde_json::from_str(&text).map_err(|e| StateError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if m.version != VERSION {
        return Err(StateError::Unreadable {
            path,
            reason: format!("version {}", m.version),
        });
    }
    Ok(Some(m))
}

/// Saves the metadata atomically (temp file, fsync, rename, directory fsync), mode 0600.
pub fn save(dir: &Path, m: &Metadata) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let body = serde_json::to_vec_pretty(m).unwrap_or_default();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(&body)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// What the saved metadata means for this start.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Register as the saved container instance.
    Reregister(String),
    /// Register as a new instance (no state, or another EC2 instance's state).
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn meta() -> Metadata {
        Metadata {
            version: VERSION,
            cluster: "prod".into(),
            container_instance_arn: "arn:aws:ecs:us-west-2:1:container-instance/prod/abc".into(),
            ec2_instance_id: "i-1".into(),
            availability_zone: Some("us-west-2a".into()),
        }
    }

    #[test]
    fn saves_atomically_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        save(dir.path(), &meta()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(meta()));
        let mode = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join(format!(".{FILE}.tmp")).exists());
    }

    #[test]
    fn a_corrupt_file_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "{\"version\": 1, \"clus").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(StateError::Unreadable { .. })
        ));
        fs::write(
            dir.path().join(FILE),
            serde_json::to_string(&Metadata {
                version: 99,
                ..meta()
            })
            .unwrap(),
        )
        .unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(StateError::Unreadable { .. })
        ));
    }

    #[test]
    fn resume_follows_the_official_rules() {
        let m = meta();
        assert_eq!(resume(None, "prod", "i-1"), Ok(Resume::Fresh));
        assert_eq!(
            resume(Some(&m), "prod", "i-1"),
            Ok(Resume::Reregister(m.container_instance_arn.clone()))
        );
        assert_eq!(
            resume(Some(&m), "prod", "i-2"),
            Ok(Resume::Fresh),
            "another instance's state"
        );
        assert!(resume(Some(&m), "other", "i-1")
            .unwrap_err()
            .contains("cluster"));
    }
}
