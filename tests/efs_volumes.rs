//! EFS volumes on the host, end to end with the agent binary, the control-plane simulator and
//! the real dockerd. This machine's kernel has no NFS client, so the mount itself is proven in
//! `tests/efs_real_mount.rs` (a qemu guest); here a bind-mounted host directory stands in for
//! the NFS mount where the agent mounts it, and the test checks what surrounds the mount:
//! which containers get the volume and how (read-only honoured), that a failed mount stops the
//! task before any container exists, and that cleanup unmounts it once.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::agent::{payload, Agent};
use support::ecs_sim::{EcsSim, WsKind};
use support::imds::{ImdsConfig, ImdsStub};

const WAIT: Duration = Duration::from_secs(60);
/// One agent at a time: the credentials endpoint port is fixed.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const FS: &str = "fs-0123abcd";

struct Stand {
    sim: EcsSim,
    imds: ImdsStub,
    dir: tempfile::TempDir,
    agent: Agent,
    cluster: String,
    env: Vec<(String, String)>,
}

impl Stand {
    async fn start(prefix: &str, env: &[(&str, &str)]) -> Stand {
        let cluster = support::env::unique_name(prefix);
        let sim = EcsSim::for_cluster(&cluster).await;
        let imds = ImdsStub::start(ImdsConfig::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1s")];
        all.extend_from_slice(env);
        let agent = Agent::start_in(&sim, &imds, &all, dir.path());
        assert!(
            sim.wait_connected(WsKind::Acs, 1, WAIT).await,
            "the agent did not connect; log:\n{}",
            agent.log()
        );
        let env = all
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stand {
            sim,
            imds,
            dir,
            agent,
            cluster,
            env,
        }
    }

    /// SIGKILLs the agent, runs `while_down`, and starts it again on the same data directory.
    async fn kill_and_restart(&mut self, while_down: impl std::future::Future<Output = ()>) {
        self.agent.remove_containers = false;
        self.agent.child.kill().unwrap();
        self.agent.child.wait().unwrap();
        while_down.await;
        let before = self.sim.acs_connections();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.agent = Agent::start_in(&self.sim, &self.imds, &env, self.dir.path());
        assert!(
            self.sim.wait_connected(WsKind::Acs, before + 1, WAIT).await,
            "the agent did not reconnect; log:\n{}",
            self.agent.log()
        );
    }

    fn arn(&self, n: &str) -> String {
        format!(
            "arn:aws:ecs:us-west-2:123456789012:task/{}/{n}",
            self.cluster
        )
    }

    /// Where the agent mounts volume `name` of task `id`.
    fn efs_target(&self, id: &str, name: &str) -> PathBuf {
        self.dir.path().join("data").join("efs").join(id).join(name)
    }

    fn send(&self, id: &str, tasks: Vec<Value>) {
        self.sim
            .acs_send(payload(&self.sim, id, 1, tasks))
            .expect("ACS connected");
    }

    async fn report(&self, arn: &str, status: &str) -> Value {
        let (a, s) = (json!(arn), json!(status));
        self.sim
            .wait_task_state_change(move |b| b["task"] == a && b["status"] == s, WAIT)
            .await
            .unwrap_or_else(|| panic!("no {status} report for {arn}; log:\n{}", self.agent.log()))
            .body
    }
}

fn container(name: &str, command: &str, mounts: Value) -> Value {
    json!({"name": name, "image": support::env::image(), "essential": true, "cpu": 10,
        "memory": 16, "command": ["sh", "-c", command], "mountPoints": mounts})
}

fn efs_task(arn: &str, volumes: Value, containers: Vec<Value>) -> Value {
    json!({"arn": arn, "family": "efs", "version": "1", "desiredStatus": "RUNNING",
        "launchType": "EC2", "networkMode": "bridge", "volumes": volumes,
        "containers": containers})
}

/// The task's containers as Docker shows them: name → inspect.
async fn task_containers(arn: &str) -> HashMap<String, bollard::models::ContainerInspectResponse> {
    let docker = support::env::docker().await;
    let label = format!("com.amazonaws.ecs.task-arn={arn}");
    let mut out = HashMap::new();
    for c in support::env::containers_labelled(&docker, &label)
        .await
        .unwrap()
    {
        let name = c
            .labels
            .unwrap_or_default()
            .get("com.amazonaws.ecs.container-name")
            .cloned()
            .unwrap_or_default();
        // Listed, then removed by the agent's cleanup before the inspect: gone.
        match docker
            .inspect_container(c.id.as_deref().unwrap(), None)
            .await
        {
            Ok(inspect) => {
                out.insert(name, inspect);
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => panic!("inspect {name}: {e}"),
        }
    }
    out
}

/// Detaches a mount the test made if the test fails before the agent unmounts it.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mount_point(&self.0) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn is_mount_point(path: &Path) -> bool {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool, agent: &Agent) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}; log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_efs_volume_is_bound_into_the_containers_that_name_it_and_unmounted_at_cleanup() {
    let _serial = SERIAL.lock().await;
    let stand = Stand::start("efs-bind", &[]).await;
    let id = "efs-bind-1";
    let arn = stand.arn(id);
    // The stand-in for the file system: a host directory bind-mounted where the agent mounts
    // the volume, before the task arrives (the agent adopts a mount it finds in place).
    let server = tempfile::tempdir().unwrap();
    std::fs::write(server.path().join("seed.txt"), "from the file system\n").unwrap();
    let target = stand.efs_target(id, "shared");
    std::fs::create_dir_all(&target).unwrap();
    nix::mount::mount(
        Some(server.path()),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount (the tests run as root)");
    let _undo = Unmount(target.clone());

    let volumes = json!([
        {"name": "shared", "type": "efs", "efsVolumeConfiguration": {"fileSystemId": FS, "rootDirectory": "/"}},
        {"name": "scratch", "host": {}}
    ]);
    let hold = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let writer = container(
        "writer",
        &format!("cat /efs/seed.txt > /efs/copied.txt; {hold}"),
        json!([{"sourceVolume": "shared", "containerPath": "/efs"}]),
    );
    let reader = container(
        "reader",
        &format!("touch /efs/from-reader 2>/dev/null && echo writable > /tmp/ro || echo read-only > /tmp/ro; {hold}"),
        json!([{"sourceVolume": "shared", "containerPath": "/efs", "readOnly": true}]),
    );
    let other = container(
        "other",
        hold,
        json!([{"sourceVolume": "scratch", "containerPath": "/scratch"}]),
    );
    let task = efs_task(&arn, volumes, vec![writer, reader, other]);
    stand.send("efs-bind-payload", vec![task.clone()]);
    stand.report(&arn, "RUNNING").await;

    let containers = task_containers(&arn).await;
    assert_eq!(containers.len(), 3, "{:?}", containers.keys());
    let efs_mount = |name: &str| {
        containers[name]
            .mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.destination.as_deref() == Some("/efs"))
    };
    let w = efs_mount("writer").expect("writer has /efs");
    assert_eq!(w.source.as_deref(), Some(target.to_str().unwrap()));
    assert_eq!(w.rw, Some(true));
    let r = efs_mount("reader").expect("reader has /efs");
    assert_eq!(r.source.as_deref(), Some(target.to_str().unwrap()));
    assert_eq!(r.rw, Some(false), "readOnly honoured");
    assert!(
        efs_mount("other").is_none(),
        "a container that does not name the volume"
    );

    // Files go through: written by a container, seen on the "file system"; the read-only one
    // could not write.
    wait_for(
        "copied.txt never reached the file system",
        || {
            std::fs::read_to_string(server.path().join("copied.txt"))
                .is_ok_and(|s| s == "from the file system\n")
        },
        &stand.agent,
    )
    .await;
    assert!(!server.path().join("from-reader").exists());

    // Stop: after the containers are removed (cleanup wait 1 s) the mount goes, once.
    let mut stop_task = task;
    stop_task["desiredStatus"] = json!("STOPPED");
    stand.send("efs-bind-stop", vec![stop_task]);
    stand.report(&arn, "STOPPED").await;
    let docker_arn = arn.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = task_containers(&docker_arn).await.len();
        let mounted = is_mount_point(&target);
        if left == 0 && !mounted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} containers left, mounted={mounted}; log:\n{}",
            stand.agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!target.exists(), "the mount directory is removed");
    assert!(
        server.path().join("copied.txt").exists(),
        "the file system keeps its files"
    );
    let log = stand.agent.log();
    assert_eq!(log.matches("efs volume unmounted").count(), 1, "{log}");
    assert!(log.contains("efs volume already mounted, adopted"), "{log}");
}

/// Bind-mounts a new host directory at `target` (the stand-in for an NFS mount).
fn bind_stand_in(target: &Path) -> (tempfile::TempDir, Unmount) {
    let server = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(target).unwrap();
    nix::mount::mount(
        Some(server.path()),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount (the tests run as root)");
    (server, Unmount(target.to_owned()))
}

#[tokio::test]
async fn a_restart_adopts_the_mounts_of_running_tasks_and_cleans_up_the_others() {
    let _serial = SERIAL.lock().await;
    let mut stand = Stand::start("efs-restart", &[]).await;
    let hold = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let volumes =
        json!([{"name": "data", "type": "efs", "efsVolumeConfiguration": {"fileSystemId": FS}}]);
    let mut tasks = Vec::new();
    let mut guards = Vec::new();
    for id in ["efs-keeps", "efs-dies"] {
        let (server, guard) = bind_stand_in(&stand.efs_target(id, "data"));
        guards.push((server, guard));
        let app = container(
            "app",
            hold,
            json!([{"sourceVolume": "data", "containerPath": "/data"}]),
        );
        tasks.push(efs_task(&stand.arn(id), volumes.clone(), vec![app]));
    }
    stand.send("efs-restart-payload", tasks.clone());
    for t in &tasks {
        stand.report(t["arn"].as_str().unwrap(), "RUNNING").await;
    }
    let keeps = stand.efs_target("efs-keeps", "data");
    let dies = stand.efs_target("efs-dies", "data");
    // A mount of a task the state does not know (left by a crash after its cleanup).
    let ghost = stand.efs_target("efs-ghost", "data");
    let (_ghost_server, _ghost_guard) = bind_stand_in(&ghost);
    let dies_arn = stand.arn("efs-dies");
    stand
        .kill_and_restart(async {
            // The essential container of one task exits while the agent is down.
            let docker = support::env::docker().await;
            let c = &task_containers(&dies_arn).await["app"];
            docker
                .kill_container(
                    c.id.as_deref().unwrap(),
                    None::<bollard::query_parameters::KillContainerOptions>,
                )
                .await
                .unwrap();
        })
        .await;
    stand.report(&dies_arn, "STOPPED").await;
    let agent = &stand.agent;
    wait_for(
        "the dead task's mount and the unknown mount are not released",
        || !is_mount_point(&dies) && !is_mount_point(&ghost),
        agent,
    )
    .await;
    assert!(is_mount_point(&keeps), "the running task keeps its mount");
    assert!(!ghost.exists() && !dies.exists());
    let keeps_arn = stand.arn("efs-keeps");
    let containers = task_containers(&keeps_arn).await;
    assert_eq!(containers.len(), 1, "no second container");
    assert_eq!(
        containers["app"].state.as_ref().and_then(|s| s.running),
        Some(true)
    );
    // Both tasks are in the state at the restart (one dies later, in the engine); the
    // unknown one is released at once.
    let log = agent.log();
    assert!(
        log.contains("efs mounts found at start")
            && log.contains("kept=2")
            && log.contains("released=1"),
        "{log}"
    );
    // The adopted mount goes at the task's cleanup, once.
    let mut stop = tasks[0].clone();
    stop["desiredStatus"] = json!("STOPPED");
    stand.send("efs-restart-stop", vec![stop]);
    stand.report(&keeps_arn, "STOPPED").await;
    wait_for(
        "the adopted mount is not released",
        || !is_mount_point(&keeps) && !keeps.exists(),
        &stand.agent,
    )
    .await;
    let log = stand.agent.log();
    assert_eq!(
        log.matches("efs volume unmounted").count(),
        3,
        "ghost at start, the dead task and the stopped one, each once:\n{log}"
    );
}

#[tokio::test]
async fn a_failed_efs_mount_stops_the_task_before_any_container_exists() {
    let _serial = SERIAL.lock().await;
    // The mount target is the loopback address; this kernel cannot mount NFS at all, which is
    // a mount failure like any other (a refused connection, a denied export).
    let stand = Stand::start(
        "efs-fail",
        &[("ECS_EFS_MOUNT_TARGETS", r#"{"fs-0123abcd": "127.0.0.1"}"#)],
    )
    .await;
    let hold = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let cases = [
        (
            "efs-fail-nfs",
            json!({"fileSystemId": FS, "rootDirectory": "/data"}),
            vec![
                "ResourceInitializationError: failed to mount EFS volume \"data\" (fs-0123abcd from 127.0.0.1:/data)",
            ],
        ),
        (
            "efs-fail-tls",
            json!({"fileSystemId": FS, "transitEncryption": "ENABLED"}),
            vec![
                "ResourceInitializationError: EFS volume \"data\" (fs-0123abcd)",
                "amazon-efs-utils",
            ],
        ),
        (
            "efs-fail-id",
            json!({"fileSystemId": "vol-12345678"}),
            vec!["ResourceInitializationError: EFS volume \"data\" (vol-12345678)", "fileSystemId"],
        ),
    ];
    let mut arns = Vec::new();
    for (id, cfg, _) in &cases {
        let arn = stand.arn(id);
        // A non-essential sidecar without the volume is not started either: every container
        // of the task is created after the task's volumes are ready.
        let side = json!({"name": "side", "image": support::env::image(), "essential": false,
            "cpu": 10, "memory": 16, "command": ["sh", "-c", hold]});
        let app = container(
            "app",
            hold,
            json!([{"sourceVolume": "data", "containerPath": "/data"}]),
        );
        let volumes = json!([{"name": "data", "type": "efs", "efsVolumeConfiguration": cfg}]);
        stand.send(
            &format!("{id}-payload"),
            vec![efs_task(&arn, volumes, vec![app, side])],
        );
        arns.push(arn);
    }
    for ((_, _, wanted), arn) in cases.iter().zip(&arns) {
        let stopped = stand.report(arn, "STOPPED").await;
        let reasons: Vec<String> = stopped["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["reason"].as_str().map(str::to_owned))
            .chain(stopped["reason"].as_str().map(str::to_owned))
            .collect();
        for w in wanted {
            assert!(
                reasons.iter().any(|r| r.contains(w)),
                "{arn}: no reason with {w:?} in {reasons:?}"
            );
        }
        let running = stand
            .sim
            .task_state_changes()
            .iter()
            .any(|r| r.body["task"] == json!(arn) && r.body["status"] == json!("RUNNING"));
        assert!(!running, "{arn} was reported RUNNING");
        let made = task_containers(arn).await;
        assert!(
            made.is_empty(),
            "{arn}: containers were created: {:?}",
            made.keys()
        );
    }
    let regs = stand.sim.registrations();
    let attrs = regs[0].body["attributes"].to_string();
    assert!(attrs.contains("\"ecs.capability.efs\""), "{attrs}");
    assert!(
        !attrs.contains("ecs.capability.efsAuth"),
        "efs-utils is not installed here: {attrs}"
    );
}
