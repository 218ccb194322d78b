//! The EFS mounts of tasks: each EFS volume of a task mounted once, under
//! `<data dir>/efs/<task id>/<volume>`, and bind-mounted into the containers from there; unmounted
//! when the task is cleaned up (after its containers are removed). After an agent restart the
//! mounts of tasks the state still holds are adopted as they are; the others are unmounted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::efs::{self, EfsContext, MountPlan};
use super::mount::{self, MountError};
use crate::model::{Task, Volume};

/// What the host offers for EFS and how long a mount may take.
#[derive(Debug, Clone)]
pub struct EfsSettings {
    /// `<data dir>/efs`.
    pub root: PathBuf,
    pub region: String,
    pub availability_zone: Option<String>,
    pub mount_targets: BTreeMap<String, String>,
    /// The `mount` program that runs amazon-efs-utils' `mount.efs`, when efs-utils is installed.
    pub efs_utils_mount: Option<PathBuf>,
    pub timeout: Duration,
}

/// Where amazon-efs-utils' mount helper may be installed.
const MOUNT_EFS_PATHS: &[&str] = &[
    "/sbin/mount.efs",
    "/usr/sbin/mount.efs",
    "/bin/mount.efs",
    "/usr/bin/mount.efs",
];

/// `mount` (which runs `mount.efs` for `-t efs`), when amazon-efs-utils is installed.
pub fn detect_efs_utils() -> Option<PathBuf> {
    MOUNT_EFS_PATHS.iter().find(|p| Path::new(p).exists())?;
    [
        "/usr/bin/mount",
        "/bin/mount",
        "/usr/sbin/mount",
        "/sbin/mount",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

type VolumeResult = Result<PathBuf, String>;
/// One task's volumes: mounted (the path) or failed (the task's stop reason).
type TaskVolumes = Arc<tokio::sync::Mutex<BTreeMap<String, VolumeResult>>>;

/// The mounts of every task, one lock per task so containers of a task wait for its mounts
/// while other tasks go on.
pub struct EfsMounts {
    settings: EfsSettings,
    tasks: Mutex<BTreeMap<String, TaskVolumes>>,
}

impl EfsMounts {
    /// Mounts under `settings.root`, made canonical (the mount table lists real paths: a
    /// symlinked data directory would otherwise never match it).
    pub fn new(mut settings: EfsSettings) -> Self {
        if std::fs::create_dir_all(&settings.root).is_ok() {
            if let Ok(real) = settings.root.canonicalize() {
                settings.root = real;
            }
        }
        EfsMounts {
            settings,
            tasks: Mutex::new(BTreeMap::new()),
        }
    }

    /// Where a task's volume is mounted.
    pub fn target(&self, task_id: &str, volume: &str) -> PathBuf {
        self.settings.root.join(clean(task_id)).join(clean(volume))
    }

    fn task_lock(&self, task_id: &str) -> TaskVolumes {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.entry(task_id.to_owned()).or_default().clone()
    }

    /// Mounts the task's EFS volume (once; later calls get the same path, or the same failure)
    /// and returns the host path to bind into containers. The error is the task's stop reason.
    pub async fn prepare(&self, task: &Task, volume: &Volume) -> Result<PathBuf, String> {
        let lock = self.task_lock(task.id());
        let mut done = lock.lock().await;
        if let Some(result) = done.get(&volume.name) {
            return result.clone();
        }
        let result = self.mount_volume(task, volume).await;
        done.insert(volume.name.clone(), result.clone());
        result
    }

    async fn mount_volume(&self, task: &Task, volume: &Volume) -> VolumeResult {
        let raw = volume
            .efs_volume_configuration
            .clone()
            .unwrap_or(serde_json::Value::Null);
        let role_uri = task.role_credentials_uri();
        let s = &self.settings;
        let ctx = EfsContext {
            region: &s.region,
            availability_zone: s.availability_zone.as_deref(),
            mount_targets: &s.mount_targets,
            efs_utils: s.efs_utils_mount.is_some(),
            task_role_uri: role_uri.as_deref(),
        };
        // The id as sent, bounded and without control characters (it may be what is wrong).
        let fs_of = |raw: &serde_json::Value| {
            raw.get("fileSystemId")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        };
        let plan = efs::plan(&raw, &ctx).map_err(|e| {
            format!(
                "ResourceInitializationError: EFS volume {:?} ({}): {e}",
                volume.name,
                fs_of(&raw)
            )
        })?;
        if !valid_volume_name(&volume.name) {
            return Err(format!(
                "ResourceInitializationError: EFS volume {:?}: the name may hold only letters, digits, '-' and '_'",
                volume.name
            ));
        }
        let target = self.target(task.id(), &volume.name);
        // Checked before touching the directory: a stat of a dead server's mount never returns.
        // Off the async threads, as every file-system call here.
        let t = target.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            if mount::is_mounted(&mount::mountinfo(), &t) {
                return Ok(true);
            }
            std::fs::create_dir_all(&t).map(|()| false)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match prepared {
            Ok(true) => {
                tracing::info!(task = %task.arn, volume = %volume.name, "efs volume already mounted, adopted");
                return Ok(target);
            }
            Ok(false) => {}
            Err(e) => {
                return Err(format!(
                    "ResourceInitializationError: EFS volume {:?}: cannot create {}: {e}",
                    volume.name,
                    target.display()
                ))
            }
        }
        let started = std::time::Instant::now();
        match self.mount_plan(&plan, &target).await {
            Ok(()) => {
                tracing::info!(task = %task.arn, volume = %volume.name,
                    file_system = plan.file_system_id(), ms = started.elapsed().as_millis() as u64,
                    "efs volume mounted");
                Ok(target)
            }
            Err(e) => {
                let t = target.clone();
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir(t)).await;
                let hint = match e {
                    MountError::Syscall(nix::errno::Errno::ENOENT) => {
                        " (the rootDirectory does not exist on the file system)"
                    }
                    MountError::Syscall(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => {
                        " (the server refused access)"
                    }
                    _ => "",
                };
                let reason = match &plan {
                    MountPlan::Nfs { host, export, .. } => format!(
                        "ResourceInitializationError: failed to mount EFS volume {:?} ({} from {host}:{export}): {e}{hint}",
                        volume.name,
                        plan.file_system_id()
                    ),
                    MountPlan::EfsUtils { device, .. } => format!(
                        "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: volume {:?} ({device}): {e}",
                        volume.name
                    ),
                };
                tracing::warn!(task = %task.arn, volume = %volume.name, %reason, "efs mount failed");
                Err(reason)
            }
        }
    }

    /// Mounts per the plan within one deadline, the name lookup included.
    async fn mount_plan(&self, plan: &MountPlan, target: &Path) -> Result<(), MountError> {
        let timeout = self.settings.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        match plan {
            MountPlan::Nfs {
                host,
                export,
                options,
                ..
            } => {
                let addr = mount::resolve(host, timeout).await?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Err(MountError::TimedOut(timeout));
                }
                mount::mount_nfs_within(addr, export, target, options, left)
                    .await
                    .map_err(|e| match e {
                        MountError::TimedOut(_) => MountError::TimedOut(timeout),
                        e => e,
                    })
            }
            MountPlan::EfsUtils { .. } => {
                let program =
                    self.settings
                        .efs_utils_mount
                        .as_deref()
                        .ok_or_else(|| MountError::Spawn {
                            program: "mount.efs".into(),
                            source: std::io::ErrorKind::NotFound.into(),
                        })?;
                let args = plan
                    .mount_args(&target.to_string_lossy())
                    .unwrap_or_default();
                let result = mount::run_helper(program, &args, timeout).await;
                if result.is_err() {
                    // A helper killed at the deadline may still have mounted.
                    let t = target.to_owned();
                    let _ = tokio::task::spawn_blocking(move || mount::unmount(&t)).await;
                }
                result
            }
        }
    }

    /// Unmounts every EFS volume of a cleaned-up task and removes its directories. Only what the
    /// mount table shows is unmounted, so nothing is unmounted twice.
    pub fn release(&self, task_id: &str) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task_id);
        let dir = self.settings.root.join(clean(task_id));
        if !dir.exists() {
            return;
        }
        for target in mount::mounts_under(&mount::mountinfo(), &dir) {
            match mount::unmount(&target) {
                Ok(true) => {
                    tracing::info!(task = task_id, path = %target.display(), "efs volume unmounted")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(task = task_id, path = %target.display(), error = %e, "efs unmount failed")
                }
            }
        }
        // Only empty directories go: a mount that would not go away keeps its files.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// After a restart: mounts of tasks in `known` (task ids) are kept and will be adopted by
    /// [`EfsMounts::prepare`]; every other task directory is released. Returns (kept, released).
    pub fn adopt(&self, known: &BTreeSet<String>) -> (usize, usize) {
        let Ok(entries) = std::fs::read_dir(&self.settings.root) else {
            return (0, 0);
        };
        let known: BTreeSet<String> = known.iter().map(|id| clean(id)).collect();
        let (mut kept, mut released) = (0, 0);
        let table = mount::mountinfo();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let mounted = mount::mounts_under(&table, &e.path()).len();
            if known.contains(&name) {
                kept += mounted;
            } else {
                released += mounted;
                self.release(&name);
            }
        }
        (kept, released)
    }
}

/// ECS's volume name characters.
fn valid_volume_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A path component from a task id or volume name.
fn clean(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if c.is_empty() || c.chars().all(|c| c == '.') {
        "_".into()
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(root: &Path, efs_utils: Option<PathBuf>) -> EfsSettings {
        EfsSettings {
            root: root.to_owned(),
            region: "us-west-2".into(),
            availability_zone: None,
            mount_targets: BTreeMap::new(),
            efs_utils_mount: efs_utils,
            timeout: Duration::from_secs(5),
        }
    }

    fn task(volumes: Vec<Volume>) -> Task {
        Task {
            arn: "arn:aws:ecs:us-west-2:1:task/c/t1".into(),
            family: "f".into(),
            version: "1".into(),
            volumes,
            ..Default::default()
        }
    }

    fn efs_volume(name: &str, cfg: serde_json::Value) -> Volume {
        Volume {
            name: name.into(),
            kind: Some("efs".into()),
            efs_volume_configuration: Some(cfg),
            ..Default::default()
        }
    }

    #[test]
    fn targets_stay_inside_the_root_made_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap().join("efs");
        // Through a symlink, as a data directory may be: the mount table shows the real path.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        let m = EfsMounts::new(settings(&dir.path().join("link").join("efs"), None));
        assert_eq!(m.target("t1", "data"), real.join("t1/data"));
        assert_eq!(m.target("..", "../x"), real.join("_/.._x"));
        assert_eq!(m.target("t1", "a/b"), real.join("t1/a_b"));
    }

    #[tokio::test]
    async fn volume_names_outside_the_ecs_characters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = EfsMounts::new(settings(dir.path(), None));
        let v = efs_volume("a/b", json!({"fileSystemId": "fs-0123abcd"}));
        let reason = m.prepare(&task(vec![v.clone()]), &v).await.unwrap_err();
        assert!(
            reason.contains("\"a/b\": the name may hold only"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_refused_volume_fails_once_and_the_same_way_for_every_container() {
        let dir = tempfile::tempdir().unwrap();
        let m = EfsMounts::new(settings(dir.path(), None));
        let v = efs_volume(
            "secure",
            json!({"fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED"}),
        );
        let t = task(vec![v.clone()]);
        let first = m.prepare(&t, &v).await.unwrap_err();
        assert!(
            first.starts_with("ResourceInitializationError: EFS volume \"secure\" (fs-0123abcd)"),
            "{first}"
        );
        assert!(first.contains("amazon-efs-utils"), "{first}");
        assert_eq!(m.prepare(&t, &v).await.unwrap_err(), first);
        assert!(!dir.path().join("t1").join("secure").exists());
    }

    #[tokio::test]
    async fn the_efs_utils_path_runs_mount_with_the_built_arguments() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in `mount` that records its arguments (efs-utils is not installed here).
        let record = dir.path().join("args");
        let fake = dir.path().join("mount");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$@\" > {}\n", record.display()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let root = dir.path().join("efs");
        let m = EfsMounts::new(settings(&root, Some(fake)));
        let v = efs_volume(
            "data",
            json!({"fileSystemId": "fs-0123abcd", "rootDirectory": "/app",
                "transitEncryption": "ENABLED", "transitEncryptionPort": 20050,
                "authorizationConfig": {"iam": "ENABLED"}}),
        );
        let mut t = task(vec![v.clone()]);
        t.role_credentials = Some(crate::model::RoleCredentials {
            credentials_id: "cred-7".into(),
            ..Default::default()
        });
        let path = m.prepare(&t, &v).await.unwrap();
        assert_eq!(path, root.join("t1").join("data"));
        let args = std::fs::read_to_string(&record).unwrap();
        assert_eq!(
            args.trim(),
            format!(
                "-t efs -o tls,tlsport=20050,iam,awscredsuri=/v2/credentials/cred-7 fs-0123abcd:/app {}",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn a_failing_helper_stops_the_task_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("mount");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"b'mount.nfs4: access denied by server'\" >&2\nexit 32\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let m = EfsMounts::new(settings(&dir.path().join("efs"), Some(fake)));
        let v = efs_volume(
            "data",
            json!({"fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED"}),
        );
        let reason = m.prepare(&task(vec![v.clone()]), &v).await.unwrap_err();
        assert!(
            reason.starts_with("ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: volume \"data\" (fs-0123abcd:/)"),
            "{reason}"
        );
        assert!(reason.contains("access denied by server"), "{reason}");
    }

    #[test]
    fn adopt_keeps_known_tasks_and_releases_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let m = EfsMounts::new(settings(dir.path(), None));
        std::fs::create_dir_all(dir.path().join("known/data")).unwrap();
        std::fs::create_dir_all(dir.path().join("gone/data")).unwrap();
        let known: BTreeSet<String> = ["known".to_owned()].into();
        // Nothing is mounted on this kernel; the directories of the gone task are removed.
        assert_eq!(m.adopt(&known), (0, 0));
        assert!(dir.path().join("known/data").exists());
        assert!(!dir.path().join("gone").exists());
    }
}
