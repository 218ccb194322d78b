//! Engine tests with a simulated Docker that carries out commands; table tests for the
//! transitions and property tests for the invariants of STYLE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::{Container, ContainerDependency, DependencyCondition, PortMapping, Task};

fn cfg(memory_mib: u64) -> EngineConfig {
    let mut cfg = test_config(memory_mib, (40000, 40100));
    cfg.capacity.reserved_tcp = [22].into();
    cfg
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox".into(),
        memory: Some(64),
        ..Default::default()
    }
}

fn depends(mut c: Container, on: &str, condition: DependencyCondition) -> Container {
    c.depends_on
        .get_or_insert_with(Vec::new)
        .push(ContainerDependency {
            container_name: on.into(),
            condition,
        });
    c
}

fn nonessential(mut c: Container) -> Container {
    c.essential = Some(false);
    c
}

fn task(arn: &str, containers: Vec<Container>) -> Task {
    Task {
        arn: arn.into(),
        family: "fam".into(),
        version: "1".into(),
        containers,
        ..Default::default()
    }
}

/// A simulated Docker: carries out commands at once and feeds the results back.
struct Sim {
    engine: Engine,
    now: Millis,
    log: Vec<Command>,
    ids: u32,
    /// Exit code a container gets when stopped by `Stop` (or dies), by container name.
    exit_codes: BTreeMap<String, i64>,
    /// Containers whose start leaves them running (others exit 0 at once when `die_at_start`).
    fail_pull: BTreeSet<String>,
}

impl Sim {
    fn new(memory: u64) -> Self {
        Sim {
            engine: Engine::new(cfg(memory), 42),
            now: 1_000_000,
            log: Vec::new(),
            ids: 0,
            exit_codes: BTreeMap::new(),
            fail_pull: BTreeSet::new(),
        }
    }

    fn input(&mut self, input: Input) {
        let cmds = self.engine.handle(self.now, input);
        self.run(cmds);
    }

    fn run(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            self.log.push(cmd.clone());
            let (arn, name, outcome) = match cmd {
                Command::Pull {
                    task_arn,
                    container,
                    ..
                } => {
                    let outcome = if self.fail_pull.contains(&container) {
                        Outcome::PullFailed {
                            reason: "CannotPullContainerError: not found".into(),
                        }
                    } else {
                        Outcome::Pulled {
                            image_digest: Some("sha256:abc".into()),
                        }
                    };
                    (task_arn, container, outcome)
                }
                Command::Create {
                    task_arn,
                    container,
                    ..
                } => {
                    self.ids += 1;
                    let id = format!("id-{container}-{}", self.ids);
                    (task_arn, container, Outcome::Created { docker_id: id })
                }
                Command::Start {
                    task_arn,
                    container,
                    ..
                } => (task_arn, container, Outcome::Started),
                Command::Stop {
                    task_arn,
                    container,
                    ..
                } => {
                    let code = self.exit_codes.get(&container).copied().unwrap_or(143);
                    (
                        task_arn,
                        container,
                        Outcome::Stopped {
                            exit_code: Some(code),
                        },
                    )
                }
                Command::Remove {
                    task_arn,
                    container,
                    ..
                } => (task_arn, container, Outcome::Removed),
                _ => continue,
            };
            self.input(Input::Result {
                task_arn: arn,
                container: name,
                outcome,
            });
        }
    }

    fn docker_id(&self, arn: &str, name: &str) -> String {
        let t = self.engine.task(arn).unwrap();
        t.containers[t.container_by_name(name).unwrap()]
            .docker_id
            .clone()
            .unwrap()
    }

    fn die(&mut self, arn: &str, name: &str, code: i64) {
        let id = self.docker_id(arn, name);
        self.input(Input::Docker {
            docker_id: id,
            event: DockerEvent::Died {
                exit_code: Some(code),
            },
        });
    }

    fn healthy(&mut self, arn: &str, name: &str) {
        let id = self.docker_id(arn, name);
        self.input(Input::Docker {
            docker_id: id,
            event: DockerEvent::Health(crate::model::Health::Healthy),
        });
    }

    fn known(&self, arn: &str, name: &str) -> Status {
        let t = self.engine.task(arn).unwrap();
        t.containers[t.container_by_name(name).unwrap()].known
    }

    fn task_known(&self, arn: &str) -> Status {
        self.engine.task(arn).unwrap().known
    }

    /// Position of the first command of `kind` for container `name` in the log.
    fn first(&self, kind: &str, name: &str) -> Option<usize> {
        self.log.iter().position(|c| match (kind, c) {
            ("pull", Command::Pull { container, .. })
            | ("create", Command::Create { container, .. })
            | ("start", Command::Start { container, .. })
            | ("stop", Command::Stop { container, .. }) => container == name,
            _ => false,
        })
    }

    fn task_reports(&self, arn: &str) -> Vec<(Status, Option<String>)> {
        self.log
            .iter()
            .filter_map(|c| match c {
                Command::Report(Change::Task(t)) if t.task_arn == arn => {
                    Some((t.status, t.reason.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_one_container_task_is_pulled_created_started_and_reported_running() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task("t1", vec![container("app")]))));
    assert_eq!(sim.known("t1", "app"), Status::Running);
    assert_eq!(sim.task_known("t1"), Status::Running);
    assert!(sim.first("pull", "app") < sim.first("create", "app"));
    assert!(sim.first("create", "app") < sim.first("start", "app"));
    assert_eq!(sim.task_reports("t1"), vec![(Status::Running, None)]);
}

#[test]
fn an_essential_exit_stops_the_task_with_the_official_reason() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![container("app"), nonessential(container("side"))],
    ))));
    sim.die("t1", "app", 3);
    assert_eq!(
        sim.known("t1", "side"),
        Status::Stopped,
        "the rest of the task is stopped"
    );
    assert_eq!(sim.task_known("t1"), Status::Stopped);
    let reports = sim.task_reports("t1");
    assert_eq!(
        reports.last().unwrap(),
        &(
            Status::Stopped,
            Some("Essential container in task exited".into())
        )
    );
    let exit = sim.engine.task("t1").unwrap().containers[0].exit_code;
    assert_eq!(exit, Some(3));
}

#[test]
fn a_non_essential_exit_does_not_stop_the_task() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![container("app"), nonessential(container("side"))],
    ))));
    sim.die("t1", "side", 1);
    assert_eq!(sim.known("t1", "side"), Status::Stopped);
    assert_eq!(sim.known("t1", "app"), Status::Running);
    assert_eq!(sim.task_known("t1"), Status::Running);
}

#[test]
fn success_dependency_waits_for_a_zero_exit() {
    let mut sim = Sim::new(1024);
    let init = nonessential(container("init"));
    let app = depends(container("app"), "init", DependencyCondition::Success);
    sim.input(Input::AddTask(Box::new(task("t1", vec![init, app]))));
    assert_eq!(sim.known("t1", "init"), Status::Running);
    assert_eq!(
        sim.first("pull", "app"),
        None,
        "app waits before even pulling"
    );
    sim.die("t1", "init", 0);
    assert_eq!(sim.known("t1", "app"), Status::Running);
    assert!(sim.first("start", "app") > sim.first("start", "init"));
    assert_eq!(sim.task_known("t1"), Status::Running);
}

#[test]
fn a_failed_success_dependency_stops_the_task_with_a_dependency_reason() {
    let mut sim = Sim::new(1024);
    let init = nonessential(container("init"));
    let app = depends(container("app"), "init", DependencyCondition::Success);
    sim.input(Input::AddTask(Box::new(task("t1", vec![init, app]))));
    sim.die("t1", "init", 2);
    assert_eq!(sim.first("start", "app"), None);
    assert_eq!(sim.task_known("t1"), Status::Stopped);
    let (_, reason) = sim.task_reports("t1").pop().unwrap();
    assert!(reason.unwrap().contains("did not exit successfully"));
}

#[test]
fn healthy_dependency_waits_for_docker_health() {
    let mut sim = Sim::new(1024);
    let db = container("db");
    let web = depends(container("web"), "db", DependencyCondition::Healthy);
    sim.input(Input::AddTask(Box::new(task("t1", vec![db, web]))));
    assert_eq!(sim.known("t1", "web"), Status::None);
    sim.healthy("t1", "db");
    assert_eq!(sim.known("t1", "web"), Status::Running);
}

#[test]
fn stopping_a_task_stops_dependents_before_their_dependency() {
    let mut sim = Sim::new(1024);
    let db = container("db");
    let web = depends(container("web"), "db", DependencyCondition::Start);
    let proxy = depends(container("proxy"), "web", DependencyCondition::Start);
    sim.input(Input::AddTask(Box::new(task("t1", vec![db, web, proxy]))));
    sim.input(Input::Desired {
        task_arn: "t1".into(),
        status: Status::Stopped,
    });
    let (p, w, d) = (
        sim.first("stop", "proxy"),
        sim.first("stop", "web"),
        sim.first("stop", "db"),
    );
    assert!(
        p.is_some() && p < w && w < d,
        "stop order proxy {p:?} web {w:?} db {d:?}"
    );
    assert_eq!(sim.task_known("t1"), Status::Stopped);
}

#[test]
fn stop_uses_the_container_stop_timeout_or_the_default() {
    let mut sim = Sim::new(1024);
    let mut quick = container("quick");
    quick.stop_timeout = Some(2);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![quick, container("slow")],
    ))));
    sim.input(Input::Desired {
        task_arn: "t1".into(),
        status: Status::Stopped,
    });
    let timeouts: BTreeMap<String, Duration> = sim
        .log
        .iter()
        .filter_map(|c| match c {
            Command::Stop {
                container, timeout, ..
            } => Some((container.clone(), *timeout)),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts["quick"], Duration::from_secs(2));
    assert_eq!(timeouts["slow"], Duration::from_secs(30));
}

#[test]
fn a_dependency_cycle_stops_the_task_before_anything_runs() {
    let mut sim = Sim::new(1024);
    let a = depends(container("a"), "b", DependencyCondition::Start);
    let b = depends(container("b"), "a", DependencyCondition::Start);
    sim.input(Input::AddTask(Box::new(task("t1", vec![a, b]))));
    assert!(sim.log.iter().all(|c| !matches!(c, Command::Pull { .. })));
    let (status, reason) = sim.task_reports("t1").pop().unwrap();
    assert_eq!(status, Status::Stopped);
    assert!(reason.unwrap().starts_with("TaskDependencyError:"));
}

#[test]
fn a_pull_failure_gives_the_task_its_reason() {
    let mut sim = Sim::new(1024);
    sim.fail_pull.insert("app".into());
    sim.input(Input::AddTask(Box::new(task("t1", vec![container("app")]))));
    assert_eq!(sim.task_known("t1"), Status::Stopped);
    let (_, reason) = sim.task_reports("t1").pop().unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("CannotPullContainerError: not found")
    );
    assert_eq!(sim.first("create", "app"), None);
}

#[test]
fn a_big_task_waiting_for_memory_does_not_block_a_small_one() {
    let mut sim = Sim::new(1000);
    let mut big_c = container("big");
    big_c.memory = Some(600);
    let mut first_c = container("first");
    first_c.memory = Some(500);
    sim.input(Input::AddTask(Box::new(task("first", vec![first_c]))));
    sim.input(Input::AddTask(Box::new(task("big", vec![big_c]))));
    sim.input(Input::AddTask(Box::new(task(
        "small",
        vec![container("small")],
    ))));
    assert_eq!(sim.task_known("big"), Status::None, "big waits for memory");
    assert!(sim.engine.task("big").unwrap().waiting_for.is_some());
    assert_eq!(
        sim.task_known("small"),
        Status::Running,
        "small is not held back"
    );
    sim.die("first", "first", 0);
    assert_eq!(
        sim.task_known("big"),
        Status::Running,
        "big runs once memory is freed"
    );
}

#[test]
fn a_task_larger_than_the_host_is_stopped_with_a_resource_reason() {
    let mut sim = Sim::new(100);
    let mut c = container("huge");
    c.memory = Some(1000);
    sim.input(Input::AddTask(Box::new(task("t1", vec![c]))));
    let (status, reason) = sim.task_reports("t1").pop().unwrap();
    assert_eq!(status, Status::Stopped);
    assert!(reason.unwrap().starts_with("RESOURCE:MEMORY"));
}

#[test]
fn dynamic_host_ports_are_assigned_before_create_and_reported() {
    let mut sim = Sim::new(1024);
    let mut web = container("web");
    web.port_mappings = Some(vec![PortMapping {
        container_port: Some(80),
        ..Default::default()
    }]);
    sim.input(Input::AddTask(Box::new(task("t1", vec![web]))));
    let created = sim.log.iter().find_map(|c| match c {
        Command::Create { bindings, .. } => Some(bindings.clone()),
        _ => None,
    });
    let bindings = created.unwrap();
    assert_eq!(bindings.len(), 1);
    assert!((40000..=40100).contains(&bindings[0].host.0));
    let reported = sim.log.iter().find_map(|c| match c {
        Command::Report(Change::Container(cc)) => Some(cc.bindings.clone()),
        _ => None,
    });
    assert_eq!(reported.unwrap(), bindings);
}

#[test]
fn stopped_tasks_are_cleaned_up_after_the_wait() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task("t1", vec![container("app")]))));
    sim.die("t1", "app", 0);
    assert!(sim
        .log
        .iter()
        .any(|c| matches!(c, Command::WakeAt(at) if *at == sim.now + 60_000)));
    assert!(!sim.log.iter().any(|c| matches!(c, Command::Remove { .. })));
    sim.now += 60_000;
    sim.input(Input::Tick);
    assert!(sim.log.iter().any(|c| matches!(c, Command::Remove { .. })));
    assert!(sim
        .log
        .iter()
        .any(|c| matches!(c, Command::TaskRemoved { task_arn, .. } if task_arn == "t1")));
    assert!(sim.engine.task("t1").is_none());
}

#[test]
fn a_task_stopped_before_it_started_never_creates_containers() {
    let mut sim = Sim::new(1024);
    let mut t = task("t1", vec![container("app")]);
    t.desired_status = Some("STOPPED".into());
    sim.input(Input::AddTask(Box::new(t)));
    assert_eq!(sim.first("pull", "app"), None);
    assert_eq!(sim.task_known("t1"), Status::Stopped);
}

#[test]
fn container_names_get_distinct_twenty_hex_suffixes() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![container("a"), container("b")],
    ))));
    let t = sim.engine.task("t1").unwrap();
    let (a, b) = (&t.containers[0].name_suffix, &t.containers[1].name_suffix);
    assert_eq!(a.len(), 20);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

fn with_restart(mut c: Container, period: i64, ignored: Vec<i64>) -> Container {
    c.restart_policy = Some(crate::model::task::RestartPolicy {
        enabled: Some(true),
        ignored_exit_codes: Some(ignored),
        restart_attempt_period: Some(period),
    });
    c
}

#[test]
fn the_restart_policy_restarts_an_exited_container_in_place() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![with_restart(container("app"), 60, vec![0])],
    ))));
    let starts = |sim: &Sim| {
        sim.log
            .iter()
            .filter(|c| matches!(c, Command::Start { .. }))
            .count()
    };
    assert_eq!(starts(&sim), 1);
    sim.now += 61_000;
    sim.die("t1", "app", 1);
    assert_eq!(starts(&sim), 2, "restarted");
    assert_eq!(sim.known("t1", "app"), Status::Running);
    assert_eq!(
        sim.task_known("t1"),
        Status::Running,
        "the task keeps running"
    );
    assert_eq!(
        sim.engine.task("t1").unwrap().containers[0].restart_count,
        1
    );
    // An exit before the attempt period has passed since the restart stops it for good.
    sim.now += 10_000;
    sim.die("t1", "app", 1);
    assert_eq!(starts(&sim), 2);
    assert_eq!(sim.task_known("t1"), Status::Stopped);
}

#[test]
fn the_restart_policy_ignores_its_ignored_exit_codes() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task(
        "t1",
        vec![with_restart(container("app"), 0, vec![0])],
    ))));
    sim.die("t1", "app", 0);
    assert_eq!(sim.task_known("t1"), Status::Stopped);
    assert_eq!(
        sim.engine.task("t1").unwrap().containers[0].restart_count,
        0
    );
}

#[test]
fn a_container_without_restart_policy_is_not_restarted() {
    let mut sim = Sim::new(1024);
    sim.input(Input::AddTask(Box::new(task("t1", vec![container("app")]))));
    sim.now += 1_000_000;
    sim.die("t1", "app", 1);
    assert_eq!(sim.task_known("t1"), Status::Stopped);
}

// ---- Property tests: random interleavings of Docker outcomes and events ----

#[derive(Debug, Clone)]
enum Act {
    /// Carry out the oldest pending command, successfully or not.
    Complete {
        ok: bool,
    },
    Die {
        container: usize,
        code: i64,
    },
    Healthy {
        container: usize,
    },
    StopTask,
    Tick {
        ms: u64,
    },
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => any::<bool>().prop_map(|b| Act::Complete { ok: b }),
        1 => (0..4usize, 0..3i64).prop_map(|(container, code)| Act::Die { container, code }),
        1 => (0..4usize).prop_map(|container| Act::Healthy { container }),
        1 => Just(Act::StopTask),
        1 => (0..120_000u64).prop_map(|ms| Act::Tick { ms }),
    ]
}

fn condition() -> impl Strategy<Value = DependencyCondition> {
    prop_oneof![
        Just(DependencyCondition::Start),
        Just(DependencyCondition::Complete),
        Just(DependencyCondition::Success),
        Just(DependencyCondition::Healthy),
    ]
}

/// A task of up to 4 containers where each may depend on an earlier one (so no cycles).
fn random_task() -> impl Strategy<Value = Task> {
    proptest::collection::vec(
        (
            any::<bool>(),
            proptest::option::of((0..4usize, condition())),
        ),
        1..5,
    )
    .prop_map(|specs| {
        let containers = specs
            .iter()
            .enumerate()
            .map(|(i, (essential, dep))| {
                let mut c = container(&format!("c{i}"));
                c.essential = Some(*essential || i == 0);
                c.start_timeout = Some(30);
                if let Some((on, cond)) = dep {
                    if *on < i {
                        c = depends(c, &format!("c{on}"), *cond);
                    }
                }
                c
            })
            .collect();
        task("t", containers)
    })
}

fn outcome_for(cmd: &Command, ok: bool, ids: &mut u32) -> Option<(String, String, Outcome)> {
    Some(match cmd {
        Command::Pull {
            task_arn,
            container,
            ..
        } => (
            task_arn.clone(),
            container.clone(),
            if ok {
                Outcome::Pulled { image_digest: None }
            } else {
                Outcome::PullFailed {
                    reason: "CannotPullContainerError: x".into(),
                }
            },
        ),
        Command::Create {
            task_arn,
            container,
            ..
        } => {
            *ids += 1;
            (
                task_arn.clone(),
                container.clone(),
                if ok {
                    Outcome::Created {
                        docker_id: format!("d{ids}"),
                    }
                } else {
                    Outcome::CreateFailed {
                        reason: "CannotCreateContainerError: x".into(),
                    }
                },
            )
        }
        Command::Start {
            task_arn,
            container,
            ..
        } => (
            task_arn.clone(),
            container.clone(),
            if ok {
                Outcome::Started
            } else {
                Outcome::StartFailed {
                    reason: "CannotStartContainerError: x".into(),
                }
            },
        ),
        Command::Stop {
            task_arn,
            container,
            ..
        } => (
            task_arn.clone(),
            container.clone(),
            if ok {
                Outcome::Stopped {
                    exit_code: Some(137),
                }
            } else {
                Outcome::StopFailed {
                    reason: "timeout".into(),
                }
            },
        ),
        Command::Remove {
            task_arn,
            container,
            ..
        } => (task_arn.clone(), container.clone(), Outcome::Removed),
        _ => return None,
    })
}

/// Checks, when a Start is issued, that every dependency condition of the container holds.
fn assert_start_allowed(engine: &Engine, cmd: &Command, now: Millis) {
    if let Command::Start {
        task_arn,
        container,
        ..
    } = cmd
    {
        let t = engine.task(task_arn).unwrap();
        let i = t.container_by_name(container).unwrap();
        for d in &t.containers[i].deps {
            let dep = &t.containers[d.on];
            let r = deps::resolve(d.condition, &dep.progress(now), &dep.name);
            assert_eq!(
                r,
                deps::Resolution::Met,
                "{container} started before {} met {:?}",
                dep.name,
                d.condition
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn statuses_never_go_backwards_and_starts_respect_dependencies(t in random_task(), acts in proptest::collection::vec(act(), 0..60)) {
        let mut engine = Engine::new(cfg(4096), 7);
        let mut now: Millis = 1_000;
        let mut pending: Vec<Command> = engine.handle(now, Input::AddTask(Box::new(t)));
        let mut ids = 0u32;
        let mut last: BTreeMap<String, Status> = BTreeMap::new();
        for a in acts {
            let cmds = match a {
                Act::Complete { ok } => {
                    let Some(pos) = pending.iter().position(|c| outcome_for(c, true, &mut 0).is_some()) else { continue };
                    let cmd = pending.remove(pos);
                    let (task_arn, container, outcome) = outcome_for(&cmd, ok, &mut ids).unwrap();
                    engine.handle(now, Input::Result { task_arn, container, outcome })
                }
                Act::Die { container, code } => {
                    let id = engine.task("t").and_then(|t| t.containers.get(container)).and_then(|c| c.docker_id.clone());
                    match id {
                        Some(docker_id) => engine.handle(now, Input::Docker { docker_id, event: DockerEvent::Died { exit_code: Some(code) } }),
                        None => continue,
                    }
                }
                Act::Healthy { container } => {
                    let id = engine.task("t").and_then(|t| t.containers.get(container)).and_then(|c| c.docker_id.clone());
                    match id {
                        Some(docker_id) => engine.handle(now, Input::Docker { docker_id, event: DockerEvent::Health(crate::model::Health::Healthy) }),
                        None => continue,
                    }
                }
                Act::StopTask => engine.handle(now, Input::Desired { task_arn: "t".into(), status: Status::Stopped }),
                Act::Tick { ms } => { now += ms; engine.handle(now, Input::Tick) }
            };
            for c in &cmds {
                assert_start_allowed(&engine, c, now);
            }
            pending.extend(cmds);
            if let Some(t) = engine.task("t") {
                for c in &t.containers {
                    let prev = last.insert(c.name.clone(), c.known).unwrap_or(Status::None);
                    prop_assert!(c.known >= prev, "{} went from {prev} to {}", c.name, c.known);
                }
                let prev = last.insert("task".into(), t.known).unwrap_or(Status::None);
                prop_assert!(t.known >= prev);
            }
        }
    }

    #[test]
    fn desired_stopped_eventually_stops_every_container(t in random_task(), acts in proptest::collection::vec(act(), 0..30)) {
        let mut engine = Engine::new(cfg(4096), 9);
        let mut now: Millis = 1_000;
        let mut pending: Vec<Command> = engine.handle(now, Input::AddTask(Box::new(t)));
        let mut ids = 0u32;
        // Some random history first...
        for a in acts {
            if let Act::Complete { ok } = a {
                if let Some(pos) = pending.iter().position(|c| outcome_for(c, true, &mut 0).is_some()) {
                    let cmd = pending.remove(pos);
                    let (task_arn, container, outcome) = outcome_for(&cmd, ok, &mut ids).unwrap();
                    pending.extend(engine.handle(now, Input::Result { task_arn, container, outcome }));
                }
            }
        }
        // ...then the task is told to stop and Docker cooperates.
        // Failed stops are retried after a wait, so time passes between rounds.
        pending.extend(engine.handle(now, Input::Desired { task_arn: "t".into(), status: Status::Stopped }));
        for _round in 0..3 {
            for _ in 0..200 {
                let Some(pos) = pending.iter().position(|c| outcome_for(c, true, &mut 0).is_some()) else { break };
                let cmd = pending.remove(pos);
                let (task_arn, container, outcome) = outcome_for(&cmd, true, &mut ids).unwrap();
                pending.extend(engine.handle(now, Input::Result { task_arn, container, outcome }));
            }
            now += 10_000;
            pending.extend(engine.handle(now, Input::Tick));
        }
        if let Some(t) = engine.task("t") {
            for c in &t.containers {
                prop_assert_eq!(c.known, Status::Stopped, "{} still {}", c.name, c.known);
            }
            prop_assert_eq!(t.known, Status::Stopped);
        }
    }
}

#[test]
fn a_task_waiting_for_a_port_held_outside_the_agent_starts_once_it_is_free() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let held = Arc::new(AtomicBool::new(true));
    let probe = held.clone();
    let mut cfg = test_config(1024, (40000, 40000));
    cfg.capacity.port_in_use = Some(Arc::new(move |_, _| probe.load(Ordering::SeqCst)));
    let mut sim = Sim::new(1024);
    sim.engine = Engine::new(cfg, 42);
    let mut web = container("web");
    web.port_mappings = Some(vec![PortMapping {
        container_port: Some(80),
        ..Default::default()
    }]);
    sim.input(Input::AddTask(Box::new(task("t1", vec![web]))));
    assert!(sim.engine.task("t1").unwrap().waiting_for.is_some());
    let wake = sim.log.iter().rev().find_map(|c| match c {
        Command::WakeAt(at) => Some(*at),
        _ => None,
    });
    assert_eq!(wake, Some(sim.now + 1_000), "a recheck is scheduled");
    sim.now += 1_000;
    sim.input(Input::Tick);
    assert_eq!(sim.task_known("t1"), Status::None, "still held");
    held.store(false, Ordering::SeqCst);
    sim.now += 1_000;
    sim.input(Input::Tick);
    assert_eq!(sim.task_known("t1"), Status::Running);
}
