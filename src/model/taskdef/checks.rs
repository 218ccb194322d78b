//! Rules that span containers: unique names, references to containers and volumes, dependency
//! conditions, dependency cycles, an essential container, memory against the task, and what
//! the network mode allows.
//!
//! References are read from the raw JSON (silently: per-field readers already reported type
//! errors) so each error names the exact array index the user wrote.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::container::Converted;
use super::fields::{Errors, Obj};

/// What the checks need from the task level.
pub(super) struct TaskFacts<'a> {
    pub path: &'a str,
    pub volume_names: BTreeSet<&'a str>,
    /// Task memory, MiB.
    pub memory: Option<i64>,
    pub network_mode: &'a str,
}

pub(super) fn check_containers(
    containers: &[Converted<'_>],
    task: &TaskFacts<'_>,
    errors: &Errors,
) {
    let index = unique_names(containers);
    if !containers.is_empty() && !containers.iter().any(|c| c.container.is_essential()) {
        let field = super::fields::join(task.path, "containerDefinitions");
        errors.push(field, "at least one container must be essential");
    }
    let mut graph = vec![Vec::new(); containers.len()];
    for (i, c) in containers.iter().enumerate() {
        check_memory(c, task.memory);
        check_volumes(c, &task.volume_names);
        graph[i] = references(c, containers, &index);
        check_network_mode(c, task.network_mode);
    }
    report_cycles(&graph, containers, errors);
}

/// Name → index of its first container; later duplicates are reported.
fn unique_names<'c>(containers: &'c [Converted<'_>]) -> BTreeMap<&'c str, usize> {
    let mut index = BTreeMap::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c.container.name.as_str();
        if name.is_empty() {
            continue;
        }
        match index.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(_) => c
                .def
                .error("name", format!("duplicate container name {name:?}")),
        }
    }
    index
}

/// A container needs `memory` or `memoryReservation` unless the task has `memory`, and its
/// `memory` may not exceed the task's.
fn check_memory(c: &Converted<'_>, task_memory: Option<i64>) {
    let given = c.def.get("memory").is_some() || c.def.get("memoryReservation").is_some();
    if !given && task_memory.is_none() {
        let msg = "set memory or memoryReservation (or memory at the task level)";
        c.def.error("memory", msg);
    }
    if let (Some(limit), Some(task)) = (c.container.memory, task_memory) {
        if limit > task {
            let msg = format!("{limit} MiB is above the task's memory of {task} MiB");
            c.def.error("memory", msg);
        }
    }
}

fn check_volumes(c: &Converted<'_>, volumes: &BTreeSet<&str>) {
    for (_, field, name) in strings_at(&c.def, "mountPoints", Some("sourceVolume")) {
        if !name.is_empty() && !volumes.contains(name) {
            c.def
                .errors()
                .push(field, format!("no task volume is named {name:?}"));
        }
    }
}

/// One edge of the start-order graph: to container `to`, written at `field`.
#[derive(Clone)]
struct Edge {
    to: usize,
    field: String,
}

/// Checks `links`, `volumesFrom` and `dependsOn` targets; returns the edges that exist.
fn references(
    c: &Converted<'_>,
    all: &[Converted<'_>],
    index: &BTreeMap<&str, usize>,
) -> Vec<Edge> {
    let errors = c.def.errors();
    let mut edges = Vec::new();
    let mut target = |field: String, name: &str| match index.get(name) {
        Some(&to) => {
            edges.push(Edge { to, field });
            Some(to)
        }
        None => {
            errors.push(field, format!("no container is named {name:?}"));
            None
        }
    };
    for (_, field, link) in strings_at(&c.def, "links", None) {
        target(field, link.split(':').next().unwrap_or(link));
    }
    for (_, field, name) in strings_at(&c.def, "volumesFrom", Some("sourceContainer")) {
        target(field, name);
    }
    for (k, field, name) in strings_at(&c.def, "dependsOn", Some("containerName")) {
        if let Some(to) = target(field, name) {
            check_condition(c, k, &all[to]);
        }
    }
    edges
}

/// HEALTHY needs a health check on the dependency; COMPLETE/SUCCESS a non-essential one.
fn check_condition(c: &Converted<'_>, k: usize, dep: &Converted<'_>) {
    let entry = c.def.get("dependsOn").and_then(|list| list.get(k));
    let condition = entry.and_then(|d| d.get("condition")?.as_str());
    let field = format!("{}[{k}].condition", c.def.at("dependsOn"));
    let dep_name = &dep.container.name;
    match condition {
        Some("HEALTHY") if !dep.has_health_check => c.def.errors().push(
            field,
            format!("HEALTHY needs a healthCheck on container {dep_name:?}"),
        ),
        Some(cond @ ("COMPLETE" | "SUCCESS")) if dep.container.is_essential() => {
            c.def.errors().push(
                field,
                format!("{cond} cannot be used on the essential container {dep_name:?}"),
            )
        }
        _ => {}
    }
}

/// Links need bridge networking; in host mode a host port must equal its container port.
fn check_network_mode(c: &Converted<'_>, network_mode: &str) {
    if network_mode != "bridge" && c.def.get("links").is_some() {
        let msg = format!("links need network mode bridge, not {network_mode}");
        c.def.error("links", msg);
    }
    if network_mode != "host" {
        return;
    }
    let mappings = c.def.get("portMappings").and_then(Value::as_array);
    for (k, m) in mappings.into_iter().flatten().enumerate() {
        let port = |key: &str| m.get(key).and_then(Value::as_i64);
        if let (Some(host), Some(container)) = (port("hostPort"), port("containerPort")) {
            if host != 0 && host != container {
                let field = format!("{}[{k}].hostPort", c.def.at("portMappings"));
                let msg =
                    format!("in host network mode hostPort must equal containerPort ({container})");
                c.def.errors().push(field, msg);
            }
        }
    }
}

/// `(k, path, text)` for each string at `list[k].key`, or at `list[k]` when `key` is `None`.
fn strings_at<'a>(def: &Obj<'a>, list: &str, key: Option<&str>) -> Vec<(usize, String, &'a str)> {
    let Some(items) = def.get(list).and_then(Value::as_array) else {
        return Vec::new();
    };
    let base = def.at(list);
    let found = items.iter().enumerate().filter_map(|(k, item)| match key {
        Some(key) => Some((k, format!("{base}[{k}].{key}"), item.get(key)?.as_str()?)),
        None => Some((k, format!("{base}[{k}]"), item.as_str()?)),
    });
    found.collect()
}

fn report_cycles(graph: &[Vec<Edge>], containers: &[Converted<'_>], errors: &Errors) {
    let mut search = CycleSearch {
        graph,
        state: vec![Mark::New; graph.len()],
        path: Vec::new(),
        found: Vec::new(),
    };
    for start in 0..graph.len() {
        if search.state[start] == Mark::New {
            search.visit(start);
        }
    }
    let mut seen = BTreeSet::new();
    for (field, cycle) in search.found {
        if seen.insert(cycle.iter().copied().collect::<BTreeSet<_>>()) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| containers[i].container.name.as_str())
                .collect();
            let msg = format!(
                "dependency cycle (dependsOn, links, volumesFrom): {}",
                names.join(" -> ")
            );
            errors.push(field, msg);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    OnPath,
    Done,
}

/// Depth-first search that records each back edge as a cycle: (field of the edge, containers).
struct CycleSearch<'g> {
    graph: &'g [Vec<Edge>],
    state: Vec<Mark>,
    path: Vec<usize>,
    found: Vec<(String, Vec<usize>)>,
}

impl CycleSearch<'_> {
    /// Iterative, so a long chain of containers cannot exhaust the stack.
    fn visit(&mut self, start: usize) {
        let mut stack = vec![(start, 0)];
        self.state[start] = Mark::OnPath;
        self.path.push(start);
        while let Some((node, next)) = stack.last_mut() {
            let Some(edge) = self.graph[*node].get(*next) else {
                self.state[*node] = Mark::Done;
                self.path.pop();
                stack.pop();
                continue;
            };
            *next += 1;
            match self.state[edge.to] {
                Mark::New => {
                    self.state[edge.to] = Mark::OnPath;
                    self.path.push(edge.to);
                    stack.push((edge.to, 0));
                }
                Mark::OnPath => self.record(edge),
                Mark::Done => {}
            }
        }
    }

    fn record(&mut self, edge: &Edge) {
        let start = self.path.iter().rposition(|&n| n == edge.to).unwrap_or(0);
        let mut cycle = self.path[start..].to_vec();
        cycle.push(edge.to);
        self.found.push((edge.field.clone(), cycle));
    }
}
