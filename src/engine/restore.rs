//! Restarting from saved state: the tasks as they were saved go back into a new engine, their
//! reservations (host ports included) are held again, changes ECS never accepted are due again,
//! and every command that was under way when the agent stopped is issued again. Each of those
//! commands is safe to repeat: a pull, a start or a stop of a container in that state already,
//! a removal of a removed container, and a create that finds its container by name (the caller
//! must make it so).

use super::resources;
use super::state::TaskState;
use super::{Command, Engine, EngineConfig};
use crate::model::Status;

impl Engine {
    /// The tasks to save, in arrival order.
    pub fn saved_tasks(&self) -> Vec<TaskState> {
        self.order
            .iter()
            .filter_map(|arn| self.tasks.get(arn))
            .cloned()
            .collect()
    }

    /// An engine holding `tasks` as they were saved, and the commands that were under way.
    /// Call `handle(now, Input::Tick)` afterwards to re-emit unsent changes and go on.
    pub fn restore(cfg: EngineConfig, seed: u64, tasks: Vec<TaskState>) -> (Engine, Vec<Command>) {
        let mut engine = Engine::new(cfg, seed);
        let mut redo = Vec::new();
        for mut t in tasks {
            let arn = t.task.arn.clone();
            if engine.tasks.contains_key(&arn) {
                continue;
            }
            t.reported = t.sent;
            for c in &mut t.containers {
                c.reported = c.sent;
            }
            if t.reserved && t.known < Status::Stopped {
                engine.hold_again(&t);
            }
            redo.extend(in_flight_commands(&mut t, &engine.cfg));
            engine.order.push(arn.clone());
            engine.tasks.insert(arn, t);
        }
        (engine, redo)
    }

    fn hold_again(&mut self, t: &TaskState) {
        let demand = resources::demand(&t.task).unwrap_or_default();
        let ports = t
            .containers
            .iter()
            .flat_map(|c| &c.bindings)
            .flat_map(|b| (b.host.0..=b.host.1).map(move |p| (b.protocol, p)))
            .collect();
        self.resources
            .adopt(&t.task.arn, demand.cpu, demand.memory_mib, ports);
    }

    pub(super) fn record_sent(
        &mut self,
        arn: &str,
        status: Option<Status>,
        containers: &[(String, Status)],
    ) {
        let Some(t) = self.tasks.get_mut(arn) else {
            return;
        };
        if let Some(s) = status {
            t.sent = t.sent.max(s);
        }
        for (name, s) in containers {
            if let Some(i) = t.container_by_name(name) {
                let c = &mut t.containers[i];
                c.sent = c.sent.max(*s);
            }
        }
    }
}

/// The commands a saved task had under way; an in-flight mark that no command can redo is
/// dropped, so the engine decides again.
fn in_flight_commands(t: &mut TaskState, cfg: &EngineConfig) -> Vec<Command> {
    let arn = &t.task.arn;
    let mut out = Vec::new();
    for c in &mut t.containers {
        let (task_arn, container) = (arn.clone(), c.name.clone());
        let cmd = match (c.in_flight, &c.docker_id) {
            (Some(Status::Pulled), _) => Command::Pull {
                task_arn,
                container,
                image: c.image.clone(),
            },
            (Some(Status::Created), _) => Command::Create {
                task_arn,
                container,
                name_suffix: c.name_suffix.clone(),
                bindings: c.bindings.clone(),
            },
            (Some(Status::Running), Some(id)) => Command::Start {
                task_arn,
                container,
                docker_id: id.clone(),
            },
            // A stopped container under way to removal (task cleanup).
            (Some(Status::Stopped), Some(id)) if c.known == Status::Stopped => Command::Remove {
                task_arn,
                container,
                docker_id: id.clone(),
            },
            (Some(Status::Stopped), Some(id)) => Command::Stop {
                task_arn,
                container,
                docker_id: id.clone(),
                timeout: c.stop_timeout.unwrap_or(cfg.stop_timeout),
            },
            _ => {
                c.in_flight = None;
                continue;
            }
        };
        out.push(cmd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Change, Input, Outcome};
    use crate::model::{Container, PortMapping, Task};

    fn cfg(ports: (u16, u16)) -> EngineConfig {
        crate::engine::test_config(4096, ports)
    }

    fn task(arn: &str, names: &[&str]) -> Task {
        Task {
            arn: arn.into(),
            family: "fam".into(),
            version: "1".into(),
            containers: names
                .iter()
                .map(|n| Container {
                    name: (*n).into(),
                    image: "busybox".into(),
                    memory: Some(64),
                    port_mappings: Some(vec![PortMapping {
                        container_port: Some(80),
                        ..Default::default()
                    }]),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn result(arn: &str, name: &str, outcome: Outcome) -> Input {
        Input::Result {
            task_arn: arn.into(),
            container: name.into(),
            outcome,
        }
    }

    /// Saves and restores through JSON, as the state file does.
    fn round_trip(e: &Engine, cfg: EngineConfig) -> (Engine, Vec<Command>) {
        let text = serde_json::to_string(&e.saved_tasks()).unwrap();
        Engine::restore(cfg, 7, serde_json::from_str(&text).unwrap())
    }

    /// Runs one task to RUNNING: pull, create, start of every container.
    fn run_task(e: &mut Engine, arn: &str, names: &[&str]) {
        e.handle(1, Input::AddTask(Box::new(task(arn, names))));
        for (i, n) in names.iter().enumerate() {
            e.handle(2, result(arn, n, Outcome::Pulled { image_digest: None }));
            let docker_id = format!("{arn}-{i}");
            e.handle(3, result(arn, n, Outcome::Created { docker_id }));
            e.handle(4, result(arn, n, Outcome::Started));
        }
        assert_eq!(e.task(arn).unwrap().known, Status::Running);
    }

    fn task_reports(cmds: &[Command]) -> Vec<(String, Status)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Report(Change::Task(t)) => Some((t.task_arn.clone(), t.status)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn commands_under_way_are_issued_again_with_the_same_container_name() {
        let mut e = Engine::new(cfg((40000, 40100)), 1);
        e.handle(1, Input::AddTask(Box::new(task("t1", &["a", "b"]))));
        e.handle(2, result("t1", "a", Outcome::Pulled { image_digest: None }));
        let suffix = e.task("t1").unwrap().containers[0].name_suffix.clone();
        let (restored, redo) = round_trip(&e, cfg((40000, 40100)));
        assert!(redo.iter().any(|c| matches!(c,
            Command::Create { container, name_suffix, .. } if container == "a" && *name_suffix == suffix)));
        assert!(redo
            .iter()
            .any(|c| matches!(c, Command::Pull { container, .. } if container == "b")));
        assert_eq!(redo.len(), 2);
        assert_eq!(
            restored.task("t1").unwrap().containers[0].in_flight,
            Some(Status::Created)
        );
    }

    #[test]
    fn only_changes_ecs_did_not_accept_are_reported_again() {
        let mut e = Engine::new(cfg((40000, 40100)), 1);
        run_task(&mut e, "t1", &["a"]);
        run_task(&mut e, "t2", &["a"]);
        e.handle(
            5,
            Input::Sent {
                task_arn: "t1".into(),
                status: Some(Status::Running),
                containers: vec![("a".into(), Status::Running)],
            },
        );
        let (mut restored, redo) = round_trip(&e, cfg((40000, 40100)));
        assert!(redo.is_empty(), "nothing was under way: {redo:?}");
        let cmds = restored.handle(6, Input::Tick);
        assert_eq!(task_reports(&cmds), [("t2".to_owned(), Status::Running)]);
        let container_reports = cmds
            .iter()
            .filter(|c| matches!(c, Command::Report(Change::Container(c)) if c.task_arn == "t2"))
            .count();
        assert_eq!(container_reports, 1);
        assert!(task_reports(&restored.handle(7, Input::Tick)).is_empty());
    }

    #[test]
    fn a_restored_task_keeps_its_host_ports() {
        let mut e = Engine::new(cfg((40000, 40000)), 1);
        run_task(&mut e, "t1", &["a"]);
        let port = e.task("t1").unwrap().containers[0].bindings[0].host.0;
        assert_eq!(port, 40000);
        let (mut restored, _) = round_trip(&e, cfg((40000, 40000)));
        restored.handle(5, Input::AddTask(Box::new(task("t2", &["a"]))));
        let t2 = restored.task("t2").unwrap();
        assert!(!t2.reserved, "the only dynamic port is still held by t1");
        assert!(t2.waiting_for.is_some());
        // Once t1 stops, its port is free again.
        restored.handle(
            6,
            Input::Desired {
                task_arn: "t1".into(),
                status: Status::Stopped,
            },
        );
        restored.handle(
            7,
            result("t1", "a", Outcome::Stopped { exit_code: Some(0) }),
        );
        assert!(restored.task("t2").unwrap().reserved);
    }

    #[test]
    fn a_removal_under_way_is_redone_as_a_removal() {
        let mut e = Engine::new(cfg((40000, 40100)), 1);
        run_task(&mut e, "t1", &["a"]);
        e.handle(
            5,
            Input::Desired {
                task_arn: "t1".into(),
                status: Status::Stopped,
            },
        );
        e.handle(
            6,
            result("t1", "a", Outcome::Stopped { exit_code: Some(0) }),
        );
        let cmds = e.handle(1_000_000, Input::Tick);
        assert!(cmds.iter().any(|c| matches!(c, Command::Remove { .. })));
        let (_, redo) = round_trip(&e, cfg((40000, 40100)));
        assert!(
            matches!(redo.as_slice(), [Command::Remove { docker_id, .. }] if docker_id == "t1-0"),
            "{redo:?}"
        );
    }

    #[test]
    fn an_in_flight_mark_without_a_container_is_dropped() {
        let mut e = Engine::new(cfg((40000, 40100)), 1);
        run_task(&mut e, "t1", &["a"]);
        let mut tasks = e.saved_tasks();
        tasks[0].containers[0].in_flight = Some(Status::Running);
        tasks[0].containers[0].docker_id = None;
        let (restored, redo) = Engine::restore(cfg((40000, 40100)), 1, tasks);
        assert!(redo.is_empty());
        assert_eq!(restored.task("t1").unwrap().containers[0].in_flight, None);
    }
}
