//! The dependency graph of a task's containers: `dependsOn` conditions plus the implicit edges
//! of `links` (the linked container must be running) and `volumesFrom` (the source must exist).
//! Cycles are rejected when the task is added. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::{Container, DependencyCondition, Health, Status};

/// What a container waits for on another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// `volumesFrom`: the source container exists.
    Create,
    /// `links` or `dependsOn START`: the dependency has started.
    Start,
    Complete,
    Success,
    Healthy,
}

impl Condition {
    fn word(&self) -> &'static str {
        match self {
            Condition::Create => "CREATE",
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }
}

impl From<DependencyCondition> for Condition {
    fn from(c: DependencyCondition) -> Self {
        match c {
            DependencyCondition::Start => Condition::Start,
            DependencyCondition::Complete => Condition::Complete,
            DependencyCondition::Success => Condition::Success,
            DependencyCondition::Healthy => Condition::Healthy,
        }
    }
}

/// One edge: this container waits for `on` to meet `condition`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dependency {
    pub on: usize,
    pub condition: Condition,
}

/// What the graph needs to know about a dependency's progress.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub known: Status,
    pub desired: Status,
    pub exit_code: Option<i64>,
    pub health: Health,
    /// Milliseconds since the dependency started, if it has.
    pub running_for: Option<u64>,
    pub start_timeout: Option<Duration>,
    pub ever_started: bool,
    pub ever_created: bool,
}

/// Whether a dependency lets the dependent move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Met,
    Waiting,
    /// It never can be: the dependent must not start. The text says why.
    Never(String),
}

/// A task's edges, by container index. Built once; a cycle or an unknown name is an error.
pub fn build(containers: &[Container]) -> Result<Vec<Vec<Dependency>>, String> {
    let index: BTreeMap<&str, usize> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let lookup = |name: &str, of: &str| {
        index
            .get(name)
            .copied()
            .ok_or_else(|| format!("container {of} depends on unknown container {name}"))
    };
    let mut graph = Vec::with_capacity(containers.len());
    for c in containers {
        let mut edges = Vec::new();
        for d in c.depends_on.iter().flatten() {
            edges.push(Dependency {
                on: lookup(&d.container_name, &c.name)?,
                condition: d.condition.into(),
            });
        }
        for link in c.links.iter().flatten() {
            let name = link.split(':').next().unwrap_or(link);
            edges.push(Dependency {
                on: lookup(name, &c.name)?,
                condition: Condition::Start,
            });
        }
        for v in c.volumes_from.iter().flatten() {
            edges.push(Dependency {
                on: lookup(&v.source_container, &c.name)?,
                condition: Condition::Create,
            });
        }
        graph.push(edges);
    }
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<&str> = cycle.iter().map(|&i| containers[i].name.as_str()).collect();
        return Err(format!(
            "circular container dependency: {}",
            names.join(" -> ")
        ));
    }
    Ok(graph)
}

/// A cycle, as the list of container indexes along it (first repeated at the end), if any.
fn find_cycle(graph: &[Vec<Dependency>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        n: usize,
        g: &[Vec<Dependency>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[n] = Mark::Active;
        path.push(n);
        for e in &g[n] {
            match marks[e.on] {
                Mark::Active => {
                    let start = path.iter().position(|&p| p == e.on).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(e.on);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(e.on, g, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; graph.len()];
    (0..graph.len()).find_map(|n| {
        if marks[n] == Mark::New {
            visit(n, graph, &mut marks, &mut Vec::new())
        } else {
            None
        }
    })
}

/// Whether `condition` on a dependency with progress `p` (named `name`) is met.
pub fn resolve(condition: Condition, p: &Progress, name: &str) -> Resolution {
    let never = |why: &str| {
        Resolution::Never(format!(
            "dependency {name} {why} (condition {})",
            condition.word()
        ))
    };
    let stopped = p.known == Status::Stopped;
    let met = match condition {
        Condition::Create => p.ever_created,
        Condition::Start => p.ever_started,
        Condition::Complete => stopped && p.ever_started,
        Condition::Success => stopped && p.exit_code == Some(0),
        Condition::Healthy => p.health == Health::Healthy,
    };
    if met {
        return Resolution::Met;
    }
    if stopped || (p.desired == Status::Stopped && !p.ever_started) {
        return match condition {
            Condition::Success if p.ever_started => never("did not exit successfully"),
            Condition::Healthy if p.ever_started => never("stopped before it was healthy"),
            _ => never("will never start"),
        };
    }
    let timed_out = matches!(
        condition,
        Condition::Complete | Condition::Success | Condition::Healthy
    ) && matches!((p.running_for, p.start_timeout), (Some(ran), Some(t)) if u128::from(ran) >= t.as_millis());
    if timed_out {
        return never("timed out");
    }
    Resolution::Waiting
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerDependency, VolumeFrom};

    fn container(name: &str, deps: &[(&str, DependencyCondition)]) -> Container {
        Container {
            name: name.into(),
            depends_on: Some(
                deps.iter()
                    .map(|(n, c)| ContainerDependency {
                        container_name: (*n).into(),
                        condition: *c,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn progress(known: Status) -> Progress {
        Progress {
            known,
            desired: Status::Running,
            exit_code: None,
            health: Health::Unknown,
            running_for: None,
            start_timeout: None,
            ever_started: known >= Status::Running,
            ever_created: known >= Status::Created,
        }
    }

    #[test]
    fn cycles_are_rejected_naming_the_containers() {
        let cs = vec![
            container("a", &[("b", DependencyCondition::Start)]),
            container("b", &[("c", DependencyCondition::Start)]),
            container("c", &[("a", DependencyCondition::Healthy)]),
        ];
        let err = build(&cs).unwrap_err();
        assert!(err.contains("a -> b -> c -> a"), "{err}");
    }

    #[test]
    fn links_and_volumes_from_make_edges() {
        let mut web = container("web", &[]);
        web.links = Some(vec!["db:database".into()]);
        web.volumes_from = Some(vec![VolumeFrom {
            source_container: "data".into(),
            read_only: None,
        }]);
        let cs = vec![web, container("db", &[]), container("data", &[])];
        let g = build(&cs).unwrap();
        assert_eq!(
            g[0],
            vec![
                Dependency {
                    on: 1,
                    condition: Condition::Start
                },
                Dependency {
                    on: 2,
                    condition: Condition::Create
                },
            ]
        );
    }

    #[test]
    fn unknown_dependency_is_an_error() {
        let cs = vec![container("a", &[("ghost", DependencyCondition::Start)])];
        assert!(build(&cs).unwrap_err().contains("unknown container ghost"));
    }

    #[test]
    fn success_needs_exit_zero_and_fails_fast_otherwise() {
        let mut p = progress(Status::Stopped);
        p.ever_started = true;
        p.exit_code = Some(0);
        assert_eq!(resolve(Condition::Success, &p, "init"), Resolution::Met);
        p.exit_code = Some(3);
        assert!(
            matches!(resolve(Condition::Success, &p, "init"), Resolution::Never(m) if m.contains("did not exit successfully"))
        );
        assert_eq!(resolve(Condition::Complete, &p, "init"), Resolution::Met);
    }

    #[test]
    fn healthy_waits_then_times_out_after_start_timeout() {
        let mut p = progress(Status::Running);
        p.start_timeout = Some(Duration::from_secs(10));
        p.running_for = Some(5_000);
        assert_eq!(resolve(Condition::Healthy, &p, "db"), Resolution::Waiting);
        p.running_for = Some(10_000);
        assert!(
            matches!(resolve(Condition::Healthy, &p, "db"), Resolution::Never(m) if m.contains("timed out"))
        );
        p.health = Health::Healthy;
        assert_eq!(resolve(Condition::Healthy, &p, "db"), Resolution::Met);
    }

    #[test]
    fn a_dependency_that_will_never_start_fails_the_dependent() {
        let mut p = progress(Status::None);
        p.desired = Status::Stopped;
        assert!(
            matches!(resolve(Condition::Start, &p, "db"), Resolution::Never(m) if m.contains("will never start"))
        );
        assert_eq!(
            resolve(Condition::Start, &progress(Status::Created), "db"),
            Resolution::Waiting
        );
        assert_eq!(
            resolve(Condition::Start, &progress(Status::Running), "db"),
            Resolution::Met
        );
    }
}
