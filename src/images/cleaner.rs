//! Image cleanup against Docker: lists images and containers, applies the [`cleanup`] policy and
//! removes what it selects, every cleanup interval and early when the Docker data disk fills up.
//!
//! Owns the Docker calls and the disk check (`statvfs` of Docker's `DockerRootDir`). Never fails
//! the agent: a failed Docker call is logged and counted in the [`CycleReport`], and the next
//! cycle tries again. Deletions are never forced, so Docker itself refuses to remove an image a
//! container started using since the listing.
//!
//! Known limits: the disk check assumes the agent sees Docker's root directory at the path Docker
//! reports (true on a host; not inside a container without that mount); pulls do not wait for a
//! running cycle (see `cleanup` for what that means).
//!
//! [`cleanup`]: super::cleanup

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, ImageSummary};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;

use super::cleanup::{
    self, CleanupPolicy, CycleInput, DockerContainer, DockerImage, ImageRecords, Removal,
};
use crate::runtime::docker::docker_message;
use crate::runtime::names::LABEL_TASK_ARN;

/// How often the disk is checked between cycles.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why a cleanup step failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("listing images: {}", docker_message(.0))]
    ListImages(#[source] DockerError),
    #[error("listing containers: {}", docker_message(.0))]
    ListContainers(#[source] DockerError),
    #[error("docker info: {}", docker_message(.0))]
    Info(#[source] DockerError),
    #[error("docker info reports no DockerRootDir")]
    NoRootDir,
    #[error("statvfs {path}: {source}")]
    Statvfs {
        path: String,
        #[source]
        source: nix::Error,
    },
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// The cycle ran under disk pressure.
    pub pressure: bool,
    /// Image names untagged and images deleted, as passed to Docker.
    pub removed_images: Vec<String>,
    /// Stopped non-ECS containers removed.
    pub removed_containers: Vec<String>,
    /// Records dropped: of removed images, and of images Docker no longer has.
    pub forgotten: Vec<String>,
    /// Docker calls that failed (each is logged).
    pub errors: usize,
}

/// Runs image cleanup cycles against one Docker daemon.
pub struct ImageCleaner {
    docker: Docker,
    policy: CleanupPolicy,
    records: Arc<Mutex<ImageRecords>>,
    /// A failed disk check was logged as a warning; later ones go to debug.
    disk_check_warned: AtomicBool,
}

impl ImageCleaner {
    /// `records` is shared with whoever records pulls and uses (the runtime driver).
    pub fn new(docker: Docker, policy: CleanupPolicy, records: Arc<Mutex<ImageRecords>>) -> Self {
        ImageCleaner {
            docker,
            policy,
            records,
            disk_check_warned: AtomicBool::new(false),
        }
    }

    /// One cleanup cycle at `now_ms` (unix ms): stopped non-ECS containers (with untracked
    /// cleanup), then images. Errors are logged and counted, never returned.
    pub async fn run_cycle(&self, now_ms: u64, pressure: bool) -> CycleReport {
        let mut report = CycleReport {
            pressure,
            ..CycleReport::default()
        };
        // Taken before the listings, so every record here predates them.
        let records = self.lock_records().clone();
        let containers = match self.containers().await {
            Ok(c) => c,
            Err(e) => return report.failed(&e),
        };
        let removed = self.remove_containers(&containers, &mut report).await;
        let in_use: BTreeSet<String> = containers
            .iter()
            .filter(|c| !removed.contains(&c.id))
            .map(|c| c.image_id.clone())
            .collect();
        let images = match self.images().await {
            Ok(i) => i,
            Err(e) => return report.failed(&e),
        };
        let input = CycleInput {
            images: &images,
            in_use: &in_use,
            records: &records,
            now_ms,
            pressure,
        };
        let selection = cleanup::select(&input, &self.policy);
        self.forget_stale(&selection.stale, &records, &mut report);
        for removal in &selection.removals {
            self.remove_image(removal, &mut report).await;
        }
        report.log();
        report
    }

    /// Whether the Docker data disk is at or over the threshold; false when the check is off
    /// or cannot be made (logged).
    pub async fn disk_pressure(&self) -> bool {
        let threshold = self.policy.disk_threshold_percent;
        if threshold == 0 {
            return false;
        }
        match self.disk_used_percent().await {
            Ok(used) => {
                tracing::debug!(used_percent = used, threshold, "docker data disk checked");
                used >= threshold
            }
            Err(e) => {
                if self.disk_check_warned.swap(true, Ordering::Relaxed) {
                    tracing::debug!(error = %e, "docker data disk check failed");
                } else {
                    tracing::warn!(error = %e, "docker data disk check failed; early cleanup is off until it works");
                }
                false
            }
        }
    }

    /// Runs forever: a cycle every `interval`, and a disk check every [`DISK_CHECK_INTERVAL`]
    /// that runs a cycle at once when the disk is over the threshold.
    pub async fn run(self, interval: Duration) {
        use tokio::time::{interval_at, Instant, MissedTickBehavior};
        let start = Instant::now();
        let mut scheduled = interval_at(start + interval, interval);
        let mut disk = interval_at(start + DISK_CHECK_INTERVAL, DISK_CHECK_INTERVAL);
        scheduled.set_missed_tick_behavior(MissedTickBehavior::Delay);
        disk.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut under_pressure = false;
        loop {
            let due = tokio::select! {
                _ = scheduled.tick() => true,
                _ = disk.tick() => false,
            };
            let pressure = self.disk_pressure().await;
            log_pressure_change(under_pressure, pressure, self.policy.disk_threshold_percent);
            under_pressure = pressure;
            if due || pressure {
                self.run_cycle(unix_ms(), pressure).await;
            }
        }
    }

    fn lock_records(&self) -> MutexGuard<'_, ImageRecords> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn containers(&self) -> Result<Vec<DockerContainer>, CleanupError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let list = self.docker.list_containers(Some(options)).await;
        let list = list.map_err(CleanupError::ListContainers)?;
        Ok(list.into_iter().map(container_of).collect())
    }

    async fn images(&self) -> Result<Vec<DockerImage>, CleanupError> {
        let options = ListImagesOptionsBuilder::default().all(false).build();
        let list = self.docker.list_images(Some(options)).await;
        Ok(list
            .map_err(CleanupError::ListImages)?
            .into_iter()
            .map(image_of)
            .collect())
    }

    /// Removes the stopped non-ECS containers the policy selects; returns the IDs now gone.
    async fn remove_containers(
        &self,
        containers: &[DockerContainer],
        report: &mut CycleReport,
    ) -> BTreeSet<String> {
        let mut gone = BTreeSet::new();
        for id in cleanup::select_containers(containers, &self.policy) {
            let options = RemoveContainerOptionsBuilder::default().v(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => {
                    tracing::info!(container = %id, "removed stopped non-ECS container");
                    report.removed_containers.push(id.clone());
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(container = %id, error = %docker_message(&e), "container removal failed");
                    report.errors += 1;
                    continue;
                }
            }
            gone.insert(id);
        }
        gone
    }

    async fn remove_image(&self, removal: &Removal, report: &mut CycleReport) {
        let options = RemoveImageOptionsBuilder::default().build();
        let target = removal.target.as_str();
        match self.docker.remove_image(target, Some(options), None).await {
            Ok(_) => {
                tracing::info!(image = target, image_id = %removal.image_id, "removed image");
                report.removed_images.push(target.to_owned());
            }
            Err(e) if is_not_found(&e) => {
                tracing::debug!(image = target, "image already gone");
            }
            Err(e) => {
                tracing::warn!(image = target, error = %docker_message(&e), "image removal failed");
                report.errors += 1;
                return;
            }
        }
        let mut records = self.lock_records();
        for reference in &removal.records {
            records.forget(reference);
            report.forgotten.push(reference.clone());
        }
    }

    /// Forgets records whose image Docker no longer has, unless a pull or use updated them
    /// since the snapshot.
    fn forget_stale(&self, stale: &[String], snapshot: &ImageRecords, report: &mut CycleReport) {
        let mut records = self.lock_records();
        for reference in stale {
            if records.get(reference) == snapshot.get(reference) {
                tracing::debug!(image = %reference, "forgetting an image docker no longer has");
                records.forget(reference);
                report.forgotten.push(reference.clone());
            }
        }
    }

    async fn disk_used_percent(&self) -> Result<u8, CleanupError> {
        let info = self.docker.info().await.map_err(CleanupError::Info)?;
        let root = info.docker_root_dir.ok_or(CleanupError::NoRootDir)?;
        let path = root.clone();
        let stat = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(path.as_str()))
            .await
            .unwrap_or(Err(nix::Error::EINTR))
            .map_err(|source| CleanupError::Statvfs { path: root, source })?;
        Ok(used_percent(
            stat.blocks(),
            stat.blocks_free(),
            stat.blocks_available(),
        ))
    }
}

impl CycleReport {
    fn failed(mut self, e: &CleanupError) -> Self {
        tracing::warn!(error = %e, "image cleanup cycle skipped");
        self.errors += 1;
        self
    }

    fn log(&self) {
        let did_something = !self.removed_images.is_empty()
            || !self.removed_containers.is_empty()
            || self.errors > 0;
        let (images, containers) = (self.removed_images.len(), self.removed_containers.len());
        let (forgotten, errors, pressure) = (self.forgotten.len(), self.errors, self.pressure);
        if did_something {
            tracing::info!(
                images,
                containers,
                forgotten,
                errors,
                pressure,
                "image cleanup cycle done"
            );
        } else {
            tracing::debug!(
                forgotten,
                pressure,
                "image cleanup cycle found nothing to remove"
            );
        }
    }
}

fn log_pressure_change(before: bool, now: bool, threshold: u8) {
    match (before, now) {
        (false, true) => tracing::warn!(
            threshold_percent = threshold,
            "docker data disk over the threshold; cleaning up images early"
        ),
        (true, false) => tracing::info!(
            threshold_percent = threshold,
            "docker data disk back under the threshold"
        ),
        _ => {}
    }
}

fn container_of(c: ContainerSummary) -> DockerContainer {
    let stopped = matches!(
        c.state,
        Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD)
    );
    DockerContainer {
        id: c.id.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        stopped,
        ecs_task: c.labels.is_some_and(|l| l.contains_key(LABEL_TASK_ARN)),
        created: c.created.unwrap_or_default(),
    }
}

fn image_of(i: ImageSummary) -> DockerImage {
    DockerImage {
        id: i.id,
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size: u64::try_from(i.size).unwrap_or(0),
        created: i.created,
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Percent of a file system in use, as `df` counts it: blocks reserved for root are neither
/// used nor available; rounded up.
fn used_percent(blocks: u64, free: u64, available: u64) -> u8 {
    let used = blocks.saturating_sub(free);
    let usable = used + available;
    if usable == 0 {
        return 0;
    }
    let percent = (u128::from(used) * 100).div_ceil(u128::from(usable));
    u8::try_from(percent.min(100)).unwrap_or(100)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn disk_use_is_counted_as_df_does() {
        // (blocks, free, available, percent): root's reserve is neither used nor available.
        let cases = [
            (100, 100, 100, 0),
            (100, 10, 10, 90),
            (100, 15, 10, 90),
            (1000, 101, 95, 91),
            (100, 0, 0, 100),
            (0, 0, 0, 0),
            (u64::MAX, 1, 1, 100),
        ];
        for (blocks, free, available, want) in cases {
            assert_eq!(
                used_percent(blocks, free, available),
                want,
                "{blocks} {free} {available}"
            );
        }
    }

    #[test]
    fn only_exited_or_dead_containers_count_as_stopped() {
        let summary = |state| ContainerSummary {
            id: Some("c".into()),
            image_id: Some("sha256:i".into()),
            state: Some(state),
            labels: Some(HashMap::from([(
                LABEL_TASK_ARN.to_owned(),
                "arn".to_owned(),
            )])),
            created: Some(7),
            ..ContainerSummary::default()
        };
        use ContainerSummaryStateEnum as S;
        for (state, stopped) in [
            (S::EXITED, true),
            (S::DEAD, true),
            (S::CREATED, false),
            (S::RUNNING, false),
            (S::PAUSED, false),
            (S::RESTARTING, false),
            (S::REMOVING, false),
        ] {
            let c = container_of(summary(state));
            assert_eq!(c.stopped, stopped, "{state}");
            assert!(c.ecs_task);
            assert_eq!((c.image_id.as_str(), c.created), ("sha256:i", 7));
        }
        let bare = container_of(ContainerSummary::default());
        assert!(!bare.ecs_task && !bare.stopped);
    }
}
