//! Task volumes on Docker: what each `host` or `docker` volume of a task resolves to (a host
//! path or a Docker volume, task-scoped or shared), creating the Docker volumes a task needs
//! and naming the task-scoped ones for removal with the task. EFS volumes are mounted by
//! [`EfsMounts`] and bound into containers as host paths.

use super::create::VolumeSource;
use super::docker::DockerRuntime;
use crate::model::{Task, Volume};
use crate::volumes::efs_mounts::EfsMounts;

/// The Docker volumes a task made for itself (not shared ones), to remove with the task.
pub(super) fn task_scoped_volumes(task: &Task) -> Vec<String> {
    task.volumes
        .iter()
        .filter(|v| !is_shared(v) && !is_efs(v))
        .filter_map(|v| match volume_source(task, v) {
            Ok((VolumeSource::DockerVolume(name), Some(_))) => Some(name),
            _ => None,
        })
        .collect()
}

/// An EFS volume: mounted by the agent, not a Docker volume.
fn is_efs(v: &Volume) -> bool {
    v.kind.as_deref() == Some("efs") || v.efs_volume_configuration.is_some()
}

fn is_shared(v: &Volume) -> bool {
    v.docker_volume_configuration
        .as_ref()
        .and_then(|d| d.scope.as_deref())
        == Some("shared")
}

/// Docker name of a task-scoped volume.
fn task_volume_name(task: &Task, volume: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .collect::<String>()
    };
    format!(
        "ecs-{}-{}-{}-{}",
        clean(&task.family),
        clean(&task.version),
        clean(volume),
        clean(task.id())
    )
}

/// What a task volume resolves to, and the create request when it is a Docker volume to make.
fn volume_source(
    task: &Task,
    v: &Volume,
) -> Result<(VolumeSource, Option<bollard::models::VolumeCreateRequest>), String> {
    let kind = v
        .kind
        .as_deref()
        .unwrap_or(if v.docker_volume_configuration.is_some() {
            "docker"
        } else {
            "host"
        });
    match kind {
        "host" => match v
            .host
            .as_ref()
            .and_then(|h| h.source_path.as_deref())
            .filter(|p| !p.is_empty())
        {
            Some(path) => Ok((VolumeSource::HostPath(path.to_owned()), None)),
            None => {
                let name = task_volume_name(task, &v.name);
                let request = bollard::models::VolumeCreateRequest {
                    name: Some(name.clone()),
                    driver: Some("local".into()),
                    ..Default::default()
                };
                Ok((VolumeSource::DockerVolume(name), Some(request)))
            }
        },
        "docker" => {
            let d = v.docker_volume_configuration.clone().unwrap_or_default();
            let shared = d.scope.as_deref() == Some("shared");
            let name = if shared {
                v.name.clone()
            } else {
                task_volume_name(task, &v.name)
            };
            let request = bollard::models::VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some(d.driver.unwrap_or_else(|| "local".into())),
                driver_opts: d.driver_opts.map(|m| m.into_iter().collect()),
                labels: d.labels.map(|m| m.into_iter().collect()),
                ..Default::default()
            };
            let make = !shared || d.autoprovision.unwrap_or(false);
            Ok((VolumeSource::DockerVolume(name), make.then_some(request)))
        }
        other => Err(format!(
            "ResourceInitializationError: volume {} of type {other} is not supported yet",
            v.name
        )),
    }
}

pub(super) async fn prepare_volume(
    docker: &DockerRuntime,
    efs: Option<&EfsMounts>,
    task: &Task,
    v: &Volume,
) -> Result<VolumeSource, String> {
    if is_efs(v) {
        let Some(efs) = efs else {
            return Err(format!(
                "ResourceInitializationError: EFS volume {:?}: EFS volumes are not enabled in this agent mode",
                v.name
            ));
        };
        let path = efs.prepare(task, v).await?;
        return Ok(VolumeSource::HostPath(path.to_string_lossy().into_owned()));
    }
    let (source, request) = volume_source(task, v)?;
    match (request, &source) {
        (Some(request), _) => docker.ensure_volume(request).await.map_err(|e| {
            format!(
                "ResourceInitializationError: failed to create volume {}: {e}",
                v.name
            )
        })?,
        // A shared volume without autoprovision must already exist.
        (None, VolumeSource::DockerVolume(name))
            if docker.docker.inspect_volume(name).await.is_err() =>
        {
            return Err(format!(
                "ResourceInitializationError: shared volume {name} does not exist and autoprovision is off"
            ));
        }
        _ => {}
    }
    Ok(source)
}
