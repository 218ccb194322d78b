//! Task cgroups (`ECS_ENABLE_TASK_CPU_MEM_LIMIT`): every container of a task is created under
//! the cgroup parent `/ecs/<task-id>`, which carries the task-level limits, as the official agent
//! does: CPU quota = task vCPU × period when the task has a CPU size (else CPU shares = the sum
//! of the containers' shares), memory limit = task memory, pids limit = `ECS_TASK_PIDS_LIMIT`.
//!
//! Writes the cgroup files under `ECS_CGROUP_PATH` itself (v1: one directory per controller;
//! v2: one directory with `cpu.max`, `cpu.weight`, `memory.max`, `pids.max`). Known limit: on
//! cgroup v2 with Docker's systemd cgroup driver the official agent uses a systemd slice; this
//! agent supports the cgroupfs driver only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::Task;

const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// What the task cgroup limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupSpec {
    /// (quota, period) in microseconds, when the task has a CPU size.
    pub cpu_quota: Option<(i64, u64)>,
    /// CPU shares, when it does not.
    pub cpu_shares: Option<u64>,
    pub memory_bytes: Option<i64>,
    pub pids: Option<u32>,
}

/// Settings of task cgroups.
#[derive(Debug, Clone)]
pub struct CgroupSettings {
    /// `ECS_CGROUP_PATH`, the cgroup file system's mount point.
    pub root: PathBuf,
    /// `ECS_CGROUP_CPU_PERIOD`.
    pub cpu_period: Duration,
    /// `ECS_TASK_PIDS_LIMIT`.
    pub pids_limit: Option<u32>,
}

/// The Docker `CgroupParent` of a task's containers.
pub fn parent(task: &Task) -> String {
    format!("/ecs/{}", task.id())
}

/// The limits of a task, or why they cannot be set.
pub fn spec(task: &Task, s: &CgroupSettings) -> Result<CgroupSpec, String> {
    let period = s.cpu_period.as_micros() as u64;
    let mut spec = CgroupSpec {
        pids: s.pids_limit,
        ..Default::default()
    };
    match task.cpu.filter(|&c| c > 0.0) {
        Some(vcpu) => spec.cpu_quota = Some(((vcpu * period as f64) as i64, period)),
        None => {
            let shares: u64 = task
                .containers
                .iter()
                .map(|c| (c.cpu.unwrap_or(0).max(0) as u64).max(MIN_SHARES))
                .sum();
            spec.cpu_shares = Some(shares.clamp(MIN_SHARES, MAX_SHARES));
        }
    }
    if let Some(mib) = task.memory.filter(|&m| m > 0) {
        if let Some(c) = task.containers.iter().find(|c| c.memory.unwrap_or(0) > mib) {
            return Err(format!(
                "container {} memory limit ({} MiB) is greater than the task memory limit ({mib} MiB)",
                c.name,
                c.memory.unwrap_or(0)
            ));
        }
        spec.memory_bytes = Some(mib * 1024 * 1024);
    }
    Ok(spec)
}

fn is_v2(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// Creates the task cgroup with its limits (idempotent).
pub fn create(root: &Path, parent: &str, spec: &CgroupSpec) -> io::Result<()> {
    let rel = parent.trim_start_matches('/');
    if is_v2(root) {
        return create_v2(root, rel, spec);
    }
    let dir = |controller: &str| root.join(controller).join(rel);
    let cpu = dir("cpu");
    fs::create_dir_all(&cpu)?;
    if let Some((quota, period)) = spec.cpu_quota {
        fs::write(cpu.join("cpu.cfs_period_us"), period.to_string())?;
        fs::write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
    }
    if let Some(shares) = spec.cpu_shares {
        fs::write(cpu.join("cpu.shares"), shares.to_string())?;
    }
    let memory = dir("memory");
    fs::create_dir_all(&memory)?;
    if let Some(bytes) = spec.memory_bytes {
        fs::write(memory.join("memory.limit_in_bytes"), bytes.to_string())?;
    }
    if let Some(pids) = spec.pids {
        let p = dir("pids");
        fs::create_dir_all(&p)?;
        fs::write(p.join("pids.max"), pids.to_string())?;
    }
    Ok(())
}

fn create_v2(root: &Path, rel: &str, spec: &CgroupSpec) -> io::Result<()> {
    let dir = root.join(rel);
    fs::create_dir_all(&dir)?;
    // Delegate the controllers down to the task cgroup.
    let mut at = root.to_path_buf();
    for part in Path::new(rel)
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
    {
        let _ = fs::write(at.join("cgroup.subtree_control"), "+cpu +memory +pids");
        at = at.join(part);
    }
    let _ = fs::write(at.join("cgroup.subtree_control"), "+cpu +memory +pids");
    if let Some((quota, period)) = spec.cpu_quota {
        fs::write(dir.join("cpu.max"), format!("{quota} {period}"))?;
    }
    if let Some(shares) = spec.cpu_shares {
        // The kernel's shares → weight conversion (1..10000).
        let weight = 1 + ((shares.saturating_sub(2)) * 9999) / 262_142;
        fs::write(dir.join("cpu.weight"), weight.to_string())?;
    }
    if let Some(bytes) = spec.memory_bytes {
        fs::write(dir.join("memory.max"), bytes.to_string())?;
    }
    if let Some(pids) = spec.pids {
        fs::write(dir.join("pids.max"), pids.to_string())?;
    }
    Ok(())
}

/// Removes the task cgroup (its containers must be gone). Missing directories are fine.
pub fn remove(root: &Path, parent: &str) -> io::Result<()> {
    let rel = parent.trim_start_matches('/');
    let dirs: Vec<PathBuf> = if is_v2(root) {
        vec![root.join(rel)]
    } else {
        ["cpu", "memory", "pids"]
            .iter()
            .map(|c| root.join(c).join(rel))
            .collect()
    };
    for d in dirs {
        match fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Container;

    fn settings() -> CgroupSettings {
        CgroupSettings {
            root: PathBuf::from("/nonexistent"),
            cpu_period: Duration::from_millis(100),
            pids_limit: None,
        }
    }

    fn task(cpu: Option<f64>, memory: Option<i64>, container_cpu: &[i64]) -> Task {
        Task {
            arn: "arn:aws:ecs:us-west-2:1:task/c/abc123".into(),
            cpu,
            memory,
            containers: container_cpu
                .iter()
                .map(|&c| Container {
                    name: format!("c{c}"),
                    cpu: Some(c),
                    memory: Some(64),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn task_cpu_becomes_a_quota_of_the_period_and_memory_a_limit() {
        let s = spec(&task(Some(0.25), Some(512), &[0]), &settings()).unwrap();
        assert_eq!(s.cpu_quota, Some((25_000, 100_000)));
        assert_eq!(s.cpu_shares, None);
        assert_eq!(s.memory_bytes, Some(512 * 1024 * 1024));
        assert_eq!(parent(&task(None, None, &[])), "/ecs/abc123");
    }

    #[test]
    fn without_task_cpu_the_shares_are_the_containers_sum() {
        let s = spec(&task(None, None, &[0, 100, 300]), &settings()).unwrap();
        assert_eq!(s.cpu_shares, Some(2 + 100 + 300));
        assert_eq!(s.memory_bytes, None);
    }

    #[test]
    fn a_container_above_the_task_memory_is_refused() {
        let mut t = task(None, Some(32), &[0]);
        t.containers[0].memory = Some(64);
        assert!(spec(&t, &settings())
            .unwrap_err()
            .contains("greater than the task memory"));
    }

    #[test]
    fn v1_files_are_written_per_controller_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let s = CgroupSpec {
            cpu_quota: Some((50_000, 100_000)),
            cpu_shares: None,
            memory_bytes: Some(1 << 20),
            pids: Some(64),
        };
        create(root.path(), "/ecs/t1", &s).unwrap();
        let read = |p: &str| fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("cpu/ecs/t1/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/ecs/t1/cpu.cfs_period_us"), "100000");
        assert_eq!(read("memory/ecs/t1/memory.limit_in_bytes"), "1048576");
        assert_eq!(read("pids/ecs/t1/pids.max"), "64");
        // Files inside make rmdir fail on a plain directory; on cgroupfs they are virtual.
        for f in [
            "cpu/ecs/t1/cpu.cfs_quota_us",
            "cpu/ecs/t1/cpu.cfs_period_us",
            "memory/ecs/t1/memory.limit_in_bytes",
            "pids/ecs/t1/pids.max",
        ] {
            fs::remove_file(root.path().join(f)).unwrap();
        }
        remove(root.path(), "/ecs/t1").unwrap();
        assert!(!root.path().join("cpu/ecs/t1").exists());
        remove(root.path(), "/ecs/t1").unwrap();
    }

    #[test]
    fn v2_files_are_written_in_one_directory() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let s = CgroupSpec {
            cpu_quota: None,
            cpu_shares: Some(1024),
            memory_bytes: Some(2048),
            pids: None,
        };
        create(root.path(), "/ecs/t2", &s).unwrap();
        let read = |p: &str| fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("ecs/t2/memory.max"), "2048");
        assert_eq!(read("ecs/t2/cpu.weight"), "39");
        assert_eq!(read("ecs/cgroup.subtree_control"), "+cpu +memory +pids");
    }
}
