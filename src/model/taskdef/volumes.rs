//! Task volumes: `host` (with or without `sourcePath`), `dockerVolumeConfiguration`, and EFS
//! (passed through as JSON for the `volumes` room to mount).

use std::collections::BTreeSet;

use super::check_name;
use super::fields::Obj;
use crate::model::task::{DockerVolumeConfiguration, HostVolume, Volume};

/// The task's volumes; names are checked for format and uniqueness.
pub(super) fn volumes(def: &Obj<'_>) -> Vec<Volume> {
    let Some(items) = def.objects("volumes") else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for item in &items {
        let volume = volume(item);
        if !volume.name.is_empty() && !seen.insert(volume.name.clone()) {
            item.error("name", format!("duplicate volume name {:?}", volume.name));
        }
        out.push(volume);
    }
    out
}

fn volume(item: &Obj<'_>) -> Volume {
    let name = item.required_str("name").unwrap_or_default().to_owned();
    if !name.is_empty() {
        check_name(item, "name", &name);
    }
    let host = item.object("host");
    let docker = item.object("dockerVolumeConfiguration");
    let efs = item.object("efsVolumeConfiguration");
    let kind = volume_kind(item, [host.is_some(), docker.is_some(), efs.is_some()]);
    Volume {
        name,
        kind: Some(kind.to_owned()),
        host: (kind == "host").then(|| host_volume(host.as_ref())),
        docker_volume_configuration: docker.as_ref().map(docker_volume),
        efs_volume_configuration: efs.as_ref().and_then(efs_volume),
        ..Volume::default()
    }
}

/// `host` unless a Docker or EFS configuration is given; at most one of the three may be.
fn volume_kind(item: &Obj<'_>, [host, docker, efs]: [bool; 3]) -> &'static str {
    if [host, docker, efs].iter().filter(|set| **set).count() > 1 {
        let msg = "set only one of host, dockerVolumeConfiguration and efsVolumeConfiguration";
        item.errors().push(item.path.clone(), msg);
    }
    if item
        .get("fsxWindowsFileServerVolumeConfiguration")
        .is_some()
    {
        let msg = "FSx for Windows File Server volumes need a Windows container instance";
        item.error("fsxWindowsFileServerVolumeConfiguration", msg);
    }
    match (docker, efs) {
        (true, _) => "docker",
        (false, true) => "efs",
        (false, false) => "host",
    }
}

fn host_volume(host: Option<&Obj<'_>>) -> HostVolume {
    let source_path = host
        .and_then(|h| h.str("sourcePath"))
        .filter(|p| !p.is_empty());
    if let (Some(h), Some(path)) = (host, source_path) {
        if !path.starts_with('/') {
            h.error("sourcePath", format!("{path:?} is not an absolute path"));
        }
    }
    HostVolume {
        source_path: source_path.map(str::to_owned),
    }
}

fn docker_volume(cfg: &Obj<'_>) -> DockerVolumeConfiguration {
    let scope = cfg.str("scope");
    if let Some(s) = scope.filter(|s| !matches!(*s, "task" | "shared")) {
        cfg.error("scope", format!("{s:?} is not one of task, shared"));
    }
    let autoprovision = cfg.bool("autoprovision");
    if autoprovision == Some(true) && scope != Some("shared") {
        cfg.error("autoprovision", "autoprovision needs scope \"shared\"");
    }
    DockerVolumeConfiguration {
        scope: scope.map(str::to_owned),
        autoprovision,
        driver: cfg.str("driver").map(str::to_owned),
        driver_opts: cfg.string_map("driverOpts"),
        labels: cfg.string_map("labels"),
    }
}

fn efs_volume(cfg: &Obj<'_>) -> Option<serde_json::Value> {
    cfg.required_str("fileSystemId")?;
    cfg.str("rootDirectory");
    Some(cfg.to_value())
}
