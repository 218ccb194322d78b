//! One container definition → one ACS `Container`: the fields the ACS model has a place for,
//! with per-field checks. Cross-container rules (references, cycles, memory against the task)
//! live in `checks`; Docker-schema fields in `docker`/`host_config`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::docker::{docker_parts, Memory};
use super::fields::Obj;
use super::ports::port_mappings;
use super::secrets::{registry_auth, secrets};
use super::{check_name, MIN_MEMORY_MIB};
use crate::model::task::{
    Container, ContainerDependency, DependencyCondition, Device, KernelCapabilities,
    LinuxParameters, MountPoint, RestartPolicy, VolumeFrom,
};

/// A converted container plus what the cross-container checks need beyond the ACS model.
pub(super) struct Converted<'a> {
    pub def: Obj<'a>,
    pub container: Container,
    pub has_health_check: bool,
}

pub(super) fn container<'a>(def: Obj<'a>, region: &str) -> Converted<'a> {
    let name = name(&def);
    let image = def.required_str("image").unwrap_or_default().to_owned();
    let memory = memory(&def);
    let mut container = Container {
        name,
        image,
        command: def.strings("command"),
        entry_point: def.strings("entryPoint"),
        cpu: non_negative(&def, "cpu"),
        memory: memory.limit,
        environment: environment(&def),
        environment_files: environment_files(&def),
        essential: def.bool("essential"),
        port_mappings: port_mappings(&def),
        links: def.strings("links"),
        mount_points: mount_points(&def),
        volumes_from: volumes_from(&def),
        linux_parameters: def.object("linuxParameters").map(|l| linux_parameters(&l)),
        privileged: def.bool("privileged"),
        depends_on: depends_on(&def),
        start_timeout: non_negative(&def, "startTimeout"),
        stop_timeout: non_negative(&def, "stopTimeout"),
        registry_authentication: registry_auth(&def, region),
        secrets: secrets(&def, region),
        restart_policy: def.object("restartPolicy").map(|r| restart_policy(&r)),
        firelens_configuration: def.object("firelensConfiguration").map(|f| f.to_value()),
        credential_specs: def.strings("credentialSpecs"),
        ..Container::default()
    };
    let docker = docker_parts(&def, memory);
    container.docker_config = docker.docker_config;
    container.health_check_type = docker.has_health_check.then(|| "docker".to_owned());
    def.array("resourceRequirements");
    Converted {
        def,
        container,
        has_health_check: docker.has_health_check,
    }
}

fn name(def: &Obj<'_>) -> String {
    let name = def.required_str("name").unwrap_or_default();
    if !name.is_empty() {
        check_name(def, "name", name);
    }
    name.to_owned()
}

fn non_negative(def: &Obj<'_>, key: &str) -> Option<i64> {
    let n = def.int(key)?;
    if n < 0 {
        def.error(key, format!("{n} must not be negative"));
        return None;
    }
    Some(n)
}

/// `memory` and `memoryReservation` (MiB), each at least 6, reservation not above the limit.
fn memory(def: &Obj<'_>) -> Memory {
    let limit = mebibytes(def, "memory");
    let reservation = mebibytes(def, "memoryReservation");
    if let (Some(l), Some(r)) = (limit, reservation) {
        if r > l {
            let msg = format!("{r} MiB is above the container's memory limit of {l} MiB");
            def.error("memoryReservation", msg);
        }
    }
    Memory { limit, reservation }
}

fn mebibytes(def: &Obj<'_>, key: &str) -> Option<i64> {
    let n = def.int(key)?;
    if n < MIN_MEMORY_MIB {
        def.error(
            key,
            format!("{n} MiB is below the minimum of {MIN_MEMORY_MIB} MiB"),
        );
        return None;
    }
    Some(n)
}

/// `[{name, value}]` → map; a name given twice is an error.
fn environment(def: &Obj<'_>) -> Option<BTreeMap<String, String>> {
    let items = def.objects("environment")?;
    let mut env = BTreeMap::new();
    for item in &items {
        let Some(name) = item.required_str("name") else {
            continue;
        };
        let value = item.str("value").unwrap_or_default();
        if env.insert(name.to_owned(), value.to_owned()).is_some() {
            item.error("name", format!("duplicate environment variable {name:?}"));
        }
    }
    Some(env)
}

fn environment_files(def: &Obj<'_>) -> Option<Vec<Value>> {
    let items = def.objects("environmentFiles")?;
    for item in &items {
        item.required_str("value");
        if let Some(t) = item.required_str("type").filter(|t| *t != "s3") {
            item.error("type", format!("{t:?} is not one of s3"));
        }
    }
    Some(items.iter().map(Obj::to_value).collect())
}

fn mount_points(def: &Obj<'_>) -> Option<Vec<MountPoint>> {
    let items = def.objects("mountPoints")?;
    let mounts = items.iter().map(|m| MountPoint {
        source_volume: m
            .required_str("sourceVolume")
            .unwrap_or_default()
            .to_owned(),
        container_path: m
            .required_str("containerPath")
            .unwrap_or_default()
            .to_owned(),
        read_only: m.bool("readOnly"),
    });
    Some(mounts.collect())
}

fn volumes_from(def: &Obj<'_>) -> Option<Vec<VolumeFrom>> {
    let items = def.objects("volumesFrom")?;
    let froms = items.iter().map(|v| VolumeFrom {
        source_container: v
            .required_str("sourceContainer")
            .unwrap_or_default()
            .to_owned(),
        read_only: v.bool("readOnly"),
    });
    Some(froms.collect())
}

/// Entries with a missing name or an unknown condition are reported and left out.
fn depends_on(def: &Obj<'_>) -> Option<Vec<ContainerDependency>> {
    let items = def.objects("dependsOn")?;
    Some(items.iter().filter_map(dependency).collect())
}

fn dependency(d: &Obj<'_>) -> Option<ContainerDependency> {
    let name = d.required_str("containerName");
    let condition = match d.required_str("condition")? {
        "START" => DependencyCondition::Start,
        "COMPLETE" => DependencyCondition::Complete,
        "SUCCESS" => DependencyCondition::Success,
        "HEALTHY" => DependencyCondition::Healthy,
        other => {
            let msg = format!("{other:?} is not one of START, COMPLETE, SUCCESS, HEALTHY");
            d.error("condition", msg);
            return None;
        }
    };
    Some(ContainerDependency {
        container_name: name?.to_owned(),
        condition,
    })
}

/// The parts ACS carries in `linuxParameters`; tmpfs and swap go to `hostConfig`.
fn linux_parameters(l: &Obj<'_>) -> LinuxParameters {
    LinuxParameters {
        capabilities: l.object("capabilities").map(|c| KernelCapabilities {
            add: c.strings("add"),
            drop: c.strings("drop"),
        }),
        devices: l.objects("devices").map(|d| d.iter().map(device).collect()),
        init_process_enabled: l.bool("initProcessEnabled"),
        shared_memory_size: l.int("sharedMemorySize").filter(|n| {
            if *n <= 0 {
                l.error("sharedMemorySize", format!("{n} must be more than 0 (MiB)"));
            }
            *n > 0
        }),
    }
}

fn device(d: &Obj<'_>) -> Device {
    let permissions = d.strings("permissions");
    for p in permissions.iter().flatten() {
        if !matches!(p.as_str(), "read" | "write" | "mknod") {
            d.error(
                "permissions",
                format!("{p:?} is not one of read, write, mknod"),
            );
        }
    }
    Device {
        host_path: d.required_str("hostPath").unwrap_or_default().to_owned(),
        container_path: d.str("containerPath").map(str::to_owned),
        permissions,
    }
}

fn restart_policy(r: &Obj<'_>) -> RestartPolicy {
    let codes = r.array("ignoredExitCodes").map(|codes| {
        let at = r.at("ignoredExitCodes");
        let ints = codes.iter().enumerate().map(|(i, code)| {
            super::fields::integer(code)
                .map_err(|msg| r.errors().push(format!("{at}[{i}]"), msg))
                .ok()
        });
        ints.flatten().collect()
    });
    let period = r.int("restartAttemptPeriod");
    if let Some(p) = period.filter(|p| !(60..=1800).contains(p)) {
        r.error(
            "restartAttemptPeriod",
            format!("{p} is outside 60-1800 seconds"),
        );
    }
    RestartPolicy {
        enabled: r.bool("enabled").or_else(|| required_missing(r, "enabled")),
        ignored_exit_codes: codes,
        restart_attempt_period: period,
    }
}

fn required_missing<T>(r: &Obj<'_>, key: &str) -> Option<T> {
    if r.get(key).is_none() {
        r.error(key, "is required");
    }
    None
}
