//! Container fields the ACS model has no place for, written as the Docker Engine API JSON strings
//! of `dockerConfig.config` (ContainerConfig keys) and `dockerConfig.hostConfig` (HostConfig
//! keys), as the ECS control plane sends them (behaviour notes §4.2–4.3).
//!
//! Units follow Docker, not ECS: `MemoryReservation`/`MemorySwap` in bytes, health check
//! durations in nanoseconds. A string is emitted only when it has at least one key.

use serde_json::{json, Map, Value};

use super::fields::Obj;
use super::host_config::host_config;
use crate::model::task::DockerConfig;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// What the Docker-schema part of a container came to.
pub(super) struct DockerParts {
    pub docker_config: Option<DockerConfig>,
    /// `healthCheck` was given (even if some of it was wrong).
    pub has_health_check: bool,
}

/// The container's memory settings, needed for byte-valued HostConfig keys.
#[derive(Clone, Copy)]
pub(super) struct Memory {
    /// Hard limit, MiB.
    pub limit: Option<i64>,
    /// Soft limit, MiB.
    pub reservation: Option<i64>,
}

pub(super) fn docker_parts(c: &Obj<'_>, memory: Memory) -> DockerParts {
    let config = container_config(c);
    let host = host_config(c, memory);
    let docker_config = (!config.is_empty() || !host.is_empty()).then(|| DockerConfig {
        config: encode(config),
        host_config: encode(host),
        version: None,
    });
    DockerParts {
        docker_config,
        has_health_check: c.get("healthCheck").is_some(),
    }
}

fn encode(map: Map<String, Value>) -> Option<String> {
    (!map.is_empty()).then(|| Value::Object(map).to_string())
}

/// Sets `key` when the task definition gave a value.
pub(super) fn put<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

fn container_config(c: &Obj<'_>) -> Map<String, Value> {
    let mut config = Map::new();
    put(&mut config, "User", c.str("user"));
    put(&mut config, "WorkingDir", c.str("workingDirectory"));
    put(&mut config, "Hostname", c.str("hostname"));
    put(
        &mut config,
        "Labels",
        c.string_map("dockerLabels").map(json_map),
    );
    put(
        &mut config,
        "Healthcheck",
        c.object("healthCheck").and_then(|h| health_check(&h)),
    );
    put(&mut config, "Tty", c.bool("pseudoTerminal"));
    put(&mut config, "OpenStdin", c.bool("interactive"));
    put(&mut config, "NetworkDisabled", c.bool("disableNetworking"));
    config
}

pub(super) fn json_map(map: std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// Docker's `Healthcheck`: the ECS command as given, durations in nanoseconds, ECS defaults.
fn health_check(h: &Obj<'_>) -> Option<Value> {
    let test = health_command(h);
    let interval = bounded(h, "interval", 30, 5, 300);
    let timeout = bounded(h, "timeout", 5, 2, 60);
    let retries = bounded(h, "retries", 3, 1, 10);
    let start_period = bounded(h, "startPeriod", 0, 0, 300);
    Some(json!({
        "Test": test?,
        "Interval": interval? * NANOS_PER_SECOND,
        "Timeout": timeout? * NANOS_PER_SECOND,
        "Retries": retries?,
        "StartPeriod": start_period? * NANOS_PER_SECOND,
    }))
}

fn health_command(h: &Obj<'_>) -> Option<Vec<String>> {
    if h.get("command").is_none() {
        h.error("command", "is required");
        return None;
    }
    let test = h.strings("command")?;
    match test.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL") if test.len() > 1 => Some(test),
        Some("NONE") if test.len() == 1 => Some(test),
        _ => {
            h.error(
                "command",
                "must be [\"CMD\", exe, args...], [\"CMD-SHELL\", \"shell command\"] or [\"NONE\"]",
            );
            None
        }
    }
}

/// An integer setting with its ECS default and allowed range; `None` when wrong (reported).
fn bounded(h: &Obj<'_>, key: &str, default: i64, min: i64, max: i64) -> Option<i64> {
    if h.get(key).is_none() {
        return Some(default);
    }
    let n = h.int(key)?;
    if n < min || n > max {
        h.error(key, format!("{n} is outside {min}-{max}"));
        return None;
    }
    Some(n)
}
