//! The `dockerConfig.hostConfig` keys: memory reservation and swap, logging, ulimits, DNS and
//! extra hosts, read-only root, security options, sysctls and tmpfs mounts.
//!
//! `linuxParameters.sharedMemorySize` and `initProcessEnabled` are not written here: they stay in
//! the ACS `linuxParameters`. `logConfiguration.secretOptions` become container secrets with
//! target `LOG_DRIVER` (see `secrets`), not log options.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::docker::{json_map, put, Memory};
use super::fields::Obj;

const MIB: i64 = 1024 * 1024;

const LOG_DRIVERS: &[&str] = &[
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "awsfirelens",
];

const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

pub(super) fn host_config(c: &Obj<'_>, memory: Memory) -> Map<String, Value> {
    let mut host = Map::new();
    put(
        &mut host,
        "MemoryReservation",
        memory.reservation.map(|m| m * MIB),
    );
    put(
        &mut host,
        "LogConfig",
        c.object("logConfiguration").and_then(|l| log_config(&l)),
    );
    put(
        &mut host,
        "Ulimits",
        c.objects("ulimits").map(|u| ulimits(&u)),
    );
    put(&mut host, "Dns", c.strings("dnsServers"));
    put(&mut host, "DnsSearch", c.strings("dnsSearchDomains"));
    put(
        &mut host,
        "ExtraHosts",
        c.objects("extraHosts").map(|h| extra_hosts(&h)),
    );
    put(
        &mut host,
        "ReadonlyRootfs",
        c.bool("readonlyRootFilesystem"),
    );
    put(&mut host, "SecurityOpt", c.strings("dockerSecurityOptions"));
    put(
        &mut host,
        "Sysctls",
        c.objects("systemControls").map(|s| sysctls(&s)),
    );
    if let Some(linux) = c.peek_object("linuxParameters") {
        put(
            &mut host,
            "Tmpfs",
            linux.objects("tmpfs").map(|t| tmpfs(&t)),
        );
        swap(&linux, memory, &mut host);
    }
    host
}

fn log_config(l: &Obj<'_>) -> Option<Value> {
    let options = l.string_map("options").unwrap_or_default();
    let driver = l.required_str("logDriver")?;
    if !LOG_DRIVERS.contains(&driver) {
        let allowed = LOG_DRIVERS.join(", ");
        l.error("logDriver", format!("{driver:?} is not one of {allowed}"));
        return None;
    }
    Some(json!({ "Type": driver, "Config": json_map(options) }))
}

fn ulimits(items: &[Obj<'_>]) -> Value {
    items.iter().filter_map(ulimit).collect()
}

fn ulimit(u: &Obj<'_>) -> Option<Value> {
    let name = u.required_str("name").filter(|n| {
        let known = ULIMIT_NAMES.contains(n);
        if !known {
            let allowed = ULIMIT_NAMES.join(", ");
            u.error("name", format!("{n:?} is not a ulimit name ({allowed})"));
        }
        known
    });
    let soft = u.required_int("softLimit");
    let hard = u.required_int("hardLimit");
    let (name, soft, hard) = (name?, soft?, hard?);
    if soft > hard {
        u.error("softLimit", format!("{soft} is above the hardLimit {hard}"));
        return None;
    }
    Some(json!({ "Name": name, "Soft": soft, "Hard": hard }))
}

/// Docker's `hostname:ip` form.
fn extra_hosts(items: &[Obj<'_>]) -> Value {
    let entries = items.iter().filter_map(|h| {
        let hostname = h.required_str("hostname");
        let ip = h.required_str("ipAddress");
        Some(format!("{}:{}", hostname?, ip?))
    });
    entries.collect()
}

/// `namespace` → `value`.
fn sysctls(items: &[Obj<'_>]) -> Value {
    let mut map = BTreeMap::new();
    for s in items {
        let namespace = s.required_str("namespace");
        if s.get("value").is_none() {
            s.error("value", "is required");
        }
        if let (Some(ns), Some(value)) = (namespace, s.str("value")) {
            map.insert(ns.to_owned(), value.to_owned());
        }
    }
    json_map(map)
}

/// `containerPath` → `size=<MiB>m[,mountOptions...]`.
fn tmpfs(items: &[Obj<'_>]) -> Value {
    let mut map = BTreeMap::new();
    for t in items {
        let path = t.required_str("containerPath");
        let size = t.required_int("size");
        if let Some(n) = size.filter(|n| *n <= 0) {
            t.error("size", format!("{n} must be more than 0 (MiB)"));
        }
        let options = t.strings("mountOptions").unwrap_or_default();
        if let (Some(path), Some(size)) = (path, size.filter(|n| *n > 0)) {
            let mut spec = format!("size={size}m");
            options.iter().for_each(|o| spec.push_str(&format!(",{o}")));
            map.insert(path.to_owned(), spec);
        }
    }
    json_map(map)
}

/// `maxSwap` (MiB of swap on top of the hard limit) → `MemorySwap` bytes, and `swappiness`
/// (0–100, default 60) → `MemorySwappiness`; without `maxSwap` ECS ignores `swappiness`.
fn swap(linux: &Obj<'_>, memory: Memory, host: &mut Map<String, Value>) {
    let swappiness = linux.int("swappiness");
    if let Some(s) = swappiness.filter(|s| !(0..=100).contains(s)) {
        linux.error("swappiness", format!("{s} is outside 0-100"));
    }
    let Some(max_swap) = linux.int("maxSwap") else {
        return;
    };
    if max_swap < 0 {
        linux.error("maxSwap", format!("{max_swap} must not be negative"));
        return;
    }
    let Some(limit) = memory.limit else {
        linux.error(
            "maxSwap",
            "needs the container's memory (hard limit) to be set",
        );
        return;
    };
    host.insert("MemorySwap".into(), json!((limit + max_swap) * MIB));
    let swappiness = swappiness.filter(|s| (0..=100).contains(s)).unwrap_or(60);
    host.insert("MemorySwappiness".into(), json!(swappiness));
}
