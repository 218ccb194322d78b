//! The Config and HostConfig the agent builds from the task model, before the `dockerConfig`
//! overlay: image, command, environment, ports, resources, links, binds, volumes-from, network
//! mode and the Linux parameters.
//!
//! Values follow the official agent: CPU shares 0/absent → 2 and capped at 262144, memory in MiB
//! with a 4 MiB floor, links `name[:alias]`, binds `<source>:<containerPath>[:ro]`.

use std::collections::BTreeMap;

use bollard::models::{ContainerCreateBody, DeviceMapping, HostConfig};
use serde::Deserialize;

use super::{ports, CreateContext, CreateError, VolumeSource};
use crate::model::task::Device;
use crate::model::{Container, Task};

const MIB: i64 = 1024 * 1024;
/// Linux refuses 1 share; Docker turns 0 into 1024. The official agent sends 2 instead.
const MIN_CPU_SHARES: i64 = 2;
/// The kernel's maximum `cpu.shares`.
const MAX_CPU_SHARES: i64 = 262_144;
/// Docker's minimum memory limit on Linux.
const MIN_MEMORY_BYTES: i64 = 4 * MIB;
/// Device cgroup permissions when a device names none.
const DEFAULT_DEVICE_PERMISSIONS: &str = "rwm";

/// The create request before the `dockerConfig` overlay and the agent's final overrides.
pub(super) fn build(
    task: &Task,
    container: &Container,
    ctx: &CreateContext,
) -> Result<ContainerCreateBody, CreateError> {
    let mappings = container.port_mappings.as_ref().map_or(0, Vec::len);
    if mappings != ctx.host_ports.len() {
        return Err(CreateError::PortsNotResolved {
            container: container.name.clone(),
            mappings,
            resolved: ctx.host_ports.len(),
        });
    }
    let (exposed_ports, port_bindings) = ports::port_config(&container.name, ctx.host_ports)?;
    let host_config = HostConfig {
        cpu_shares: Some(cpu_shares(container.cpu)),
        memory: memory_bytes(container.memory),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        links: non_empty(links(container, ctx)?),
        volumes_from: non_empty(volumes_from(container, ctx)?),
        binds: non_empty(binds(container, ctx)?),
        network_mode: Some(network_mode(task)?.to_string()),
        privileged: container.privileged.filter(|&p| p),
        ..linux_parameters(container)?
    };
    let env = environment(container.environment.as_ref());
    Ok(ContainerCreateBody {
        image: Some(container.image.clone()),
        cmd: command(container)?,
        entrypoint: container.entry_point.clone(),
        env: non_empty(with_extra_env(env, ctx.extra_env)),
        exposed_ports: non_empty(exposed_ports),
        host_config: Some(host_config),
        ..Default::default()
    })
}

/// Docker `NetworkMode` for the task's network mode (`bridge` when absent).
pub(super) fn network_mode(task: &Task) -> Result<&'static str, CreateError> {
    match task.network_mode.as_deref().map(str::trim) {
        None | Some("") | Some("bridge") => Ok("bridge"),
        Some("host") => Ok("host"),
        Some("none") => Ok("none"),
        Some(other) => Err(CreateError::UnsupportedNetworkMode {
            mode: other.to_string(),
        }),
    }
}

/// Docker `PidMode`/`IpcMode` for the task's `pidMode`/`ipcMode`; `None` keeps Docker's default.
/// `task` needs a namespace pause container, which this agent does not run yet.
pub(super) fn namespace_mode(
    field: &'static str,
    mode: Option<&str>,
) -> Result<Option<&'static str>, CreateError> {
    match mode.map(str::trim) {
        None | Some("") => Ok(None),
        Some("host") => Ok(Some("host")),
        Some("none") if field == "ipcMode" => Ok(Some("none")),
        Some(other) => Err(CreateError::UnsupportedNamespaceMode {
            field,
            mode: other.to_string(),
        }),
    }
}

/// `env` without the keys `extra` sets, then `extra` in key order.
pub(super) fn with_extra_env(env: Vec<String>, extra: &BTreeMap<String, String>) -> Vec<String> {
    let key = |entry: &String| {
        entry
            .split_once('=')
            .map_or(entry.clone(), |(k, _)| k.into())
    };
    env.into_iter()
        .filter(|entry| !extra.contains_key(&key(entry)))
        .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
        .collect()
}

pub(super) fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn cpu_shares(cpu: Option<i64>) -> i64 {
    cpu.unwrap_or(0).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

fn memory_bytes(memory_mib: Option<i64>) -> Option<i64> {
    memory_mib
        .filter(|&m| m > 0)
        .map(|m| m.saturating_mul(MIB).max(MIN_MEMORY_BYTES))
}

fn environment(environment: Option<&BTreeMap<String, String>>) -> Vec<String> {
    environment
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The `overrides` string ACS sends with a container.
#[derive(Debug, Default, Deserialize)]
struct ContainerOverrides {
    command: Option<Vec<String>>,
}

/// The command: the `overrides` command when there is one, else the container's.
fn command(container: &Container) -> Result<Option<Vec<String>>, CreateError> {
    let overrides = match container.overrides.as_deref() {
        Some(text) if !text.trim().is_empty() => {
            serde_json::from_str::<Option<ContainerOverrides>>(text)
                .map_err(|source| CreateError::InvalidOverrides {
                    container: container.name.clone(),
                    source,
                })?
                .unwrap_or_default()
        }
        _ => ContainerOverrides::default(),
    };
    Ok(overrides.command.or_else(|| container.command.clone()))
}

fn peer<'c>(
    container: &Container,
    ctx: &'c CreateContext,
    field: &'static str,
    name: &str,
) -> Result<&'c str, CreateError> {
    ctx.peer_names
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| CreateError::UnknownPeer {
            container: container.name.clone(),
            field,
            peer: name.to_string(),
        })
}

/// `<peer docker name>:<alias>` for each `name[:alias]` link (alias defaults to the name).
fn links(container: &Container, ctx: &CreateContext) -> Result<Vec<String>, CreateError> {
    let links = container.links.iter().flatten();
    links
        .map(|link| {
            let mut parts = link.split(':');
            let name = parts.next().unwrap_or_default();
            let alias = parts.next().unwrap_or(name);
            if parts.next().is_some() {
                return Err(CreateError::InvalidLink {
                    container: container.name.clone(),
                    link: link.clone(),
                });
            }
            Ok(format!("{}:{alias}", peer(container, ctx, "links", name)?))
        })
        .collect()
}

/// `<peer docker name>[:ro]` for each `volumesFrom` entry.
fn volumes_from(container: &Container, ctx: &CreateContext) -> Result<Vec<String>, CreateError> {
    let volumes_from = container.volumes_from.iter().flatten();
    volumes_from
        .map(|from| {
            let name = peer(container, ctx, "volumesFrom", &from.source_container)?;
            let ro = if from.read_only == Some(true) {
                ":ro"
            } else {
                ""
            };
            Ok(format!("{name}{ro}"))
        })
        .collect()
}

/// `<host path or volume name>:<containerPath>[:ro]` for each mount point.
fn binds(container: &Container, ctx: &CreateContext) -> Result<Vec<String>, CreateError> {
    let mount_points = container.mount_points.iter().flatten();
    mount_points
        .map(|mount| {
            let volume = || mount.source_volume.clone();
            let source = match ctx.volumes.get(&mount.source_volume) {
                Some(VolumeSource::HostPath(path)) => path,
                Some(VolumeSource::DockerVolume(name)) => name,
                None => {
                    return Err(CreateError::UnknownVolume {
                        container: container.name.clone(),
                        volume: volume(),
                    })
                }
            };
            if source.is_empty() || mount.container_path.is_empty() {
                return Err(CreateError::EmptyMountPath {
                    container: container.name.clone(),
                    volume: volume(),
                });
            }
            let ro = if mount.read_only == Some(true) {
                ":ro"
            } else {
                ""
            };
            Ok(format!("{source}:{}{ro}", mount.container_path))
        })
        .collect()
}

/// Capabilities, devices, init and shared memory from `linuxParameters`.
fn linux_parameters(container: &Container) -> Result<HostConfig, CreateError> {
    let Some(params) = &container.linux_parameters else {
        return Ok(HostConfig::default());
    };
    let capabilities = params.capabilities.as_ref();
    let devices = params.devices.iter().flatten();
    let devices = devices
        .map(|device| device_mapping(container, device))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostConfig {
        cap_add: capabilities.and_then(|c| c.add.clone()).and_then(non_empty),
        cap_drop: capabilities
            .and_then(|c| c.drop.clone())
            .and_then(non_empty),
        devices: non_empty(devices),
        init: params.init_process_enabled.filter(|&init| init),
        shm_size: params
            .shared_memory_size
            .filter(|&mib| mib > 0)
            .map(|mib| mib.saturating_mul(MIB)),
        ..Default::default()
    })
}

fn device_mapping(container: &Container, device: &Device) -> Result<DeviceMapping, CreateError> {
    let in_container = device
        .container_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| device.host_path.clone());
    Ok(DeviceMapping {
        path_on_host: Some(device.host_path.clone()),
        path_in_container: Some(in_container),
        cgroup_permissions: Some(device_permissions(container, device)?),
    })
}

/// `read`/`write`/`mknod` as Docker's `rwm` letters (all three when none are named).
fn device_permissions(container: &Container, device: &Device) -> Result<String, CreateError> {
    let named = device.permissions.as_deref().unwrap_or_default();
    if named.is_empty() {
        return Ok(DEFAULT_DEVICE_PERMISSIONS.to_string());
    }
    let mut letters = [false; 3];
    for permission in named {
        let slot = match permission.to_ascii_lowercase().as_str() {
            "read" => 0,
            "write" => 1,
            "mknod" => 2,
            _ => {
                return Err(CreateError::InvalidDevicePermission {
                    container: container.name.clone(),
                    device: device.host_path.clone(),
                    permission: permission.clone(),
                })
            }
        };
        letters[slot] = true;
    }
    Ok(DEFAULT_DEVICE_PERMISSIONS
        .chars()
        .zip(letters)
        .filter_map(|(letter, on)| on.then_some(letter))
        .collect())
}
