//! The engine and runtime driving the real dockerd: dependency order from Docker's own
//! timestamps, health checks, essential and non-essential exits, ports over HTTP, stop timeouts,
//! pull failures, volumes and fair resource admission.
//!
//! Each test labels its containers with its own cluster name and removes them at the end.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::Docker;
use ecs_agent::config::ImagePullBehavior;
use ecs_agent::engine::{Change, Engine, EngineConfig, HostCapacity, Input, TaskState};
use ecs_agent::images::EcrAuth;
use ecs_agent::model::{task_from_definition, LocalRunOptions, Status, Task};
use ecs_agent::runtime::cgroup::CgroupSettings;
use ecs_agent::runtime::{
    DockerRuntime, DockerSettings, Driver, DriverHandle, DriverSettings, Snapshot,
};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    cluster: String,
    docker: Docker,
    handle: DriverHandle,
    changes: mpsc::UnboundedReceiver<Change>,
    snapshots: watch::Receiver<Snapshot>,
    reported: Vec<Change>,
}

impl Harness {
    async fn new(prefix: &str, memory_mib: u64, pull_behavior: ImagePullBehavior) -> Self {
        Self::build(
            prefix,
            memory_mib,
            pull_behavior,
            None,
            Duration::from_secs(3600),
            None,
        )
        .await
    }

    async fn build(
        prefix: &str,
        memory_mib: u64,
        pull_behavior: ImagePullBehavior,
        cgroups: Option<CgroupSettings>,
        cleanup_wait: Duration,
        aws: Option<aws_config::SdkConfig>,
    ) -> Self {
        Self::build_saving(
            prefix,
            memory_mib,
            pull_behavior,
            cgroups,
            cleanup_wait,
            aws,
            None,
        )
        .await
    }

    /// As [`Harness::build`], saving the engine's state in `state_dir` when given.
    /// A harness with 4096 MiB, no task cgroups, an hour's cleanup wait and these AWS clients.
    async fn with_aws(
        prefix: &str,
        pull_behavior: ImagePullBehavior,
        aws: aws_config::SdkConfig,
    ) -> Self {
        Self::build(
            prefix,
            4096,
            pull_behavior,
            None,
            Duration::from_secs(3600),
            Some(aws),
        )
        .await
    }

    async fn build_saving(
        prefix: &str,
        memory_mib: u64,
        pull_behavior: ImagePullBehavior,
        cgroups: Option<CgroupSettings>,
        cleanup_wait: Duration,
        aws: Option<aws_config::SdkConfig>,
        state_dir: Option<&std::path::Path>,
    ) -> Self {
        let docker = support::env::docker().await;
        let cluster = support::env::unique_name(prefix);
        let cfg = EngineConfig {
            stop_timeout: Duration::from_secs(10),
            pull_upfront: false,
            cleanup_wait,
            cleanup_jitter: Duration::ZERO,
            stop_retry: Duration::from_secs(1),
            capacity: HostCapacity {
                cpu: 4096,
                memory_mib,
                reserved_tcp: [22].into(),
                reserved_udp: BTreeSet::new(),
                dynamic_ports: (41000, 41999),
                port_in_use: None,
            },
        };
        let settings = DockerSettings {
            pull_behavior,
            pull_timeout: Duration::from_secs(60),
            create_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(60),
            max_concurrent_pulls: 2,
        };
        let runtime = DockerRuntime::new(docker.clone(), settings);
        let driver_settings = DriverSettings {
            cluster: cluster.clone(),
            disable_privileged: false,
            remove_unknown: false,
        };
        let (driver, handle, changes, snapshots) =
            Driver::new(Engine::new(cfg, 1234), runtime, driver_settings);
        let driver = match cgroups {
            Some(cg) => driver.with_task_cgroups(cg),
            None => driver,
        };
        let driver = match aws {
            Some(sdk) => driver
                .with_registry_auth(
                    std::sync::Arc::new(EcrAuth::new(sdk.clone())),
                    ecs_agent::credentials::Store::default(),
                )
                .with_secrets(sdk),
            None => driver,
        };
        let driver = match state_dir {
            Some(dir) => driver.with_state(ecs_agent::state::Writer::new(
                dir.to_owned(),
                ecs_agent::state::Metadata {
                    cluster: cluster.clone(),
                    container_instance_arn:
                        "arn:aws:ecs:us-west-2:123456789012:container-instance/test".into(),
                    ec2_instance_id: String::new(),
                    availability_zone: None,
                },
            )),
            None => driver,
        };
        tokio::spawn(driver.run());
        Harness {
            cluster,
            docker,
            handle,
            changes,
            snapshots,
            reported: Vec::new(),
        }
    }

    fn task(&self, json: &str) -> Task {
        let opts = LocalRunOptions {
            cluster: self.cluster.clone(),
            task_id: support::env::unique_name("task"),
            region: "us-west-2".into(),
            account_id: "123456789012".into(),
        };
        task_from_definition(json, &opts)
            .unwrap_or_else(|e| panic!("bad test task definition: {e}"))
    }

    fn run(&self, task: &Task) {
        assert!(self.handle.send(Input::AddTask(Box::new(task.clone()))));
    }

    fn stop(&self, task: &Task) {
        assert!(self.handle.send(Input::Desired {
            task_arn: task.arn.clone(),
            status: Status::Stopped
        }));
    }

    /// Waits until the task's state satisfies `done`, collecting reported changes meanwhile.
    async fn wait_for(
        &mut self,
        task: &Task,
        what: &str,
        done: impl Fn(&TaskState) -> bool,
    ) -> TaskState {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(c) = self.changes.try_recv() {
                self.reported.push(c);
            }
            let snapshot = self.snapshots.borrow_and_update().clone();
            if let Some(t) = snapshot.iter().find(|t| t.arn() == task.arn) {
                if done(t) {
                    return t.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; state: {snapshot:#?}"
            );
            let _ =
                tokio::time::timeout(Duration::from_millis(200), self.snapshots.changed()).await;
        }
    }

    async fn stopped(&mut self, task: &Task) -> TaskState {
        self.wait_for(task, "task STOPPED", |t| t.known == Status::Stopped)
            .await
    }

    async fn inspect(
        &self,
        t: &TaskState,
        name: &str,
    ) -> bollard::models::ContainerInspectResponse {
        let c = &t.containers[t.container_by_name(name).unwrap()];
        let id = c
            .docker_id
            .as_deref()
            .unwrap_or_else(|| panic!("{name} has no container"));
        self.docker.inspect_container(id, None).await.unwrap()
    }

    /// Removes every container this test's tasks made.
    async fn cleanup(&self) {
        support::env::remove_cluster_containers(&self.docker, &self.cluster).await;
        self.handle.shutdown();
    }
}

fn image() -> String {
    support::env::image()
}

fn timestamp(s: &Option<String>) -> String {
    s.clone().expect("docker timestamp")
}

#[tokio::test]
async fn success_dependency_starts_after_docker_saw_the_dependency_finish() {
    let mut h = Harness::new(
        "ecs-enginetest-order",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"order","containerDefinitions":[
        {{"name":"init","image":"{i}","essential":false,"memory":32,"command":["sh","-c","sleep 1; echo done"]}},
        {{"name":"app","image":"{i}","memory":32,"command":["sh","-c","exit 0"],
          "dependsOn":[{{"containerName":"init","condition":"SUCCESS"}}]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    let init = h.inspect(&t, "init").await.state.unwrap();
    let app = h.inspect(&t, "app").await.state.unwrap();
    // RFC 3339 timestamps in UTC with the same precision compare as text.
    assert!(
        timestamp(&app.started_at) > timestamp(&init.finished_at),
        "app started {:?} before init finished {:?}",
        app.started_at,
        init.finished_at
    );
    assert_eq!(init.exit_code, Some(0));
    h.cleanup().await;
}

#[tokio::test]
async fn healthy_dependency_waits_for_a_real_health_check() {
    let mut h = Harness::new(
        "ecs-enginetest-health",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"health","containerDefinitions":[
        {{"name":"db","image":"{i}","memory":32,"command":["sh","-c","sleep 2; touch /tmp/ready; sleep 300"],
          "healthCheck":{{"command":["CMD-SHELL","test -f /tmp/ready"],"interval":5,"timeout":2,"retries":3}},
          "stopTimeout":1}},
        {{"name":"web","image":"{i}","memory":32,"command":["sleep","300"],"stopTimeout":1,
          "dependsOn":[{{"containerName":"db","condition":"HEALTHY"}}]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h
        .wait_for(&task, "task RUNNING", |t| t.known == Status::Running)
        .await;
    let db = h.inspect(&t, "db").await;
    let web = h.inspect(&t, "web").await;
    let health = db
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map(|s| s.to_string());
    assert_eq!(health.as_deref(), Some("healthy"));
    let db_started = timestamp(&db.state.unwrap().started_at);
    let web_started = timestamp(&web.state.unwrap().started_at);
    // db only becomes healthy after its 2 s sleep.
    assert!(
        web_started > db_started,
        "web {web_started} db {db_started}"
    );
    let gap = seconds_between(&db_started, &web_started);
    assert!(
        gap >= 2.0,
        "web started {gap}s after db, before db could be healthy"
    );
    h.stop(&task);
    h.stopped(&task).await;
    h.cleanup().await;
}

/// Seconds between two RFC 3339 UTC timestamps of the same day.
fn seconds_between(a: &str, b: &str) -> f64 {
    let secs = |t: &str| {
        let time = t.split('T').nth(1).unwrap().trim_end_matches('Z');
        let mut parts = time.split(':');
        let h: f64 = parts.next().unwrap().parse().unwrap();
        let m: f64 = parts.next().unwrap().parse().unwrap();
        let s: f64 = parts.next().unwrap().parse().unwrap();
        h * 3600.0 + m * 60.0 + s
    };
    secs(b) - secs(a)
}

#[tokio::test]
async fn an_essential_exit_stops_the_task_and_its_other_containers() {
    let mut h = Harness::new(
        "ecs-enginetest-essential",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"essential","containerDefinitions":[
        {{"name":"app","image":"{i}","memory":32,"command":["sh","-c","sleep 1; exit 3"]}},
        {{"name":"side","image":"{i}","essential":false,"memory":32,"command":["sleep","300"],"stopTimeout":2}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    assert_eq!(
        t.reason.as_deref(),
        Some("Essential container in task exited")
    );
    let app = &t.containers[t.container_by_name("app").unwrap()];
    assert_eq!(app.exit_code, Some(3));
    let side = h.inspect(&t, "side").await.state.unwrap();
    assert_eq!(side.running, Some(false));
    let task_changes: Vec<Status> = h
        .reported
        .iter()
        .filter_map(|c| match c {
            Change::Task(tc) if tc.task_arn == task.arn => Some(tc.status),
            _ => None,
        })
        .collect();
    assert_eq!(task_changes, vec![Status::Running, Status::Stopped]);
    h.cleanup().await;
}

#[tokio::test]
async fn a_non_essential_exit_leaves_the_task_running() {
    let mut h = Harness::new(
        "ecs-enginetest-nonessential",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"nonessential","containerDefinitions":[
        {{"name":"app","image":"{i}","memory":32,"command":["sleep","300"],"stopTimeout":1}},
        {{"name":"side","image":"{i}","essential":false,"memory":32,"command":["sh","-c","exit 4"]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h
        .wait_for(&task, "side stopped", |t| {
            t.containers[1].known == Status::Stopped
        })
        .await;
    assert_eq!(t.containers[1].exit_code, Some(4));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = h.wait_for(&task, "still running", |_| true).await;
    assert_eq!(t.known, Status::Running);
    assert_eq!(t.containers[0].known, Status::Running);
    h.stop(&task);
    h.stopped(&task).await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_dynamic_host_port_is_reachable_over_http() {
    let mut h = Harness::new("ecs-enginetest-port", 4096, ImagePullBehavior::PreferCached).await;
    let task = h.task(&format!(
        r#"{{"family":"web","containerDefinitions":[
        {{"name":"web","image":"{i}","memory":32,"stopTimeout":1,
          "command":["sh","-c","mkdir -p /www && echo hello-from-task > /www/index.html && exec httpd -f -p 8080 -h /www"],
          "portMappings":[{{"containerPort":8080}}]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h
        .wait_for(&task, "task RUNNING", |t| t.known == Status::Running)
        .await;
    let binding = t.containers[0].bindings[0];
    assert!((41000..=41999).contains(&binding.host.0));
    let body = http_get(binding.host.0).await;
    assert!(body.contains("hello-from-task"), "{body}");
    let reported = h.reported.iter().find_map(|c| match c {
        Change::Container(cc) if cc.status == Status::Running => Some(cc.bindings.clone()),
        _ => None,
    });
    assert_eq!(reported, Some(vec![binding]), "the bound port is reported");
    h.stop(&task);
    h.stopped(&task).await;
    h.cleanup().await;
}

async fn http_get(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await;
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            if out.contains("200") {
                return out;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

#[tokio::test]
async fn stop_timeouts_send_sigterm_then_sigkill() {
    let mut h = Harness::new("ecs-enginetest-stop", 4096, ImagePullBehavior::PreferCached).await;
    let task = h.task(&format!(
        r#"{{"family":"stop","containerDefinitions":[
        {{"name":"polite","image":"{i}","memory":32,"stopTimeout":20,
          "command":["sh","-c","trap 'exit 0' TERM; while true; do sleep 0.1; done"]}},
        {{"name":"stubborn","image":"{i}","memory":32,"stopTimeout":2,
          "command":["sh","-c","trap '' TERM; while true; do sleep 0.1; done"]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    h.wait_for(&task, "task RUNNING", |t| t.known == Status::Running)
        .await;
    let began = Instant::now();
    h.stop(&task);
    let t = h.stopped(&task).await;
    let took = began.elapsed();
    let polite = &t.containers[0];
    let stubborn = &t.containers[1];
    assert_eq!(polite.exit_code, Some(0), "SIGTERM handled");
    assert_eq!(
        stubborn.exit_code,
        Some(137),
        "SIGKILL after the stop timeout"
    );
    assert!(
        took >= Duration::from_secs(2),
        "stubborn got its 2 s: {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "polite did not wait its 20 s: {took:?}"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_missing_image_stops_the_task_with_cannot_pull_container_error() {
    let mut h = Harness::new("ecs-enginetest-pull", 4096, ImagePullBehavior::Default).await;
    let image = format!("{}/ecs-agent-test-missing:nope", support::env::registry());
    let task = h.task(&format!(
        r#"{{"family":"pull","containerDefinitions":[{{"name":"app","image":"{image}","memory":32}}]}}"#
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    let reason = t.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    assert!(t.containers[0].docker_id.is_none(), "nothing created");
    h.cleanup().await;
}

#[tokio::test]
async fn task_volumes_are_shared_and_volumes_from_works() {
    let mut h = Harness::new(
        "ecs-enginetest-volumes",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host.txt"), "from-host").unwrap();
    let task = h.task(&format!(
        r#"{{"family":"volumes",
        "volumes":[{{"name":"scratch"}},{{"name":"hostdir","host":{{"sourcePath":"{p}"}}}}],
        "containerDefinitions":[
        {{"name":"writer","image":"{i}","essential":false,"memory":32,
          "command":["sh","-c","echo shared > /scratch/x && cat /host/host.txt > /scratch/y"],
          "mountPoints":[{{"sourceVolume":"scratch","containerPath":"/scratch"}},
                         {{"sourceVolume":"hostdir","containerPath":"/host","readOnly":true}}]}},
        {{"name":"reader","image":"{i}","memory":32,
          "command":["sh","-c","test \"$(cat /scratch/x)\" = shared && test \"$(cat /scratch/y)\" = from-host"],
          "volumesFrom":[{{"sourceContainer":"writer"}}],
          "dependsOn":[{{"containerName":"writer","condition":"SUCCESS"}}]}}]}}"#,
        p = dir.path().display(),
        i = image()
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    assert_eq!(t.containers[0].exit_code, Some(0), "writer");
    assert_eq!(
        t.containers[1].exit_code,
        Some(0),
        "reader saw what writer wrote"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_task_waiting_for_memory_does_not_block_a_smaller_one() {
    let mut h = Harness::new("ecs-enginetest-fair", 300, ImagePullBehavior::PreferCached).await;
    let sleeper = |name: &str, mib: u32| {
        format!(
            r#"{{"family":"{name}","containerDefinitions":[{{"name":"c","image":"{i}","memory":{mib},"stopTimeout":1,"command":["sleep","300"]}}]}}"#,
            i = image()
        )
    };
    let first = h.task(&sleeper("first", 200));
    let big = h.task(&sleeper("big", 200));
    let small = h.task(&sleeper("small", 50));
    h.run(&first);
    h.wait_for(&first, "first RUNNING", |t| t.known == Status::Running)
        .await;
    h.run(&big);
    h.run(&small);
    h.wait_for(&small, "small RUNNING while big waits", |t| {
        t.known == Status::Running
    })
    .await;
    let big_state = h
        .wait_for(&big, "big waiting", |t| t.waiting_for.is_some())
        .await;
    assert_eq!(big_state.known, Status::None);
    h.stop(&first);
    h.stopped(&first).await;
    h.wait_for(&big, "big RUNNING after first stopped", |t| {
        t.known == Status::Running
    })
    .await;
    h.stop(&big);
    h.stop(&small);
    h.stopped(&big).await;
    h.stopped(&small).await;
    h.cleanup().await;
}

#[tokio::test]
async fn the_restart_policy_restarts_a_container_in_place_on_docker() {
    let mut h = Harness::new(
        "ecs-enginetest-restart",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut task = h.task(&format!(
        r#"{{"family":"restart","volumes":[{{"name":"runs","host":{{"sourcePath":"{p}"}}}}],
        "containerDefinitions":[{{"name":"app","image":"{i}","memory":32,"stopTimeout":1,
          "command":["sh","-c","echo run >> /runs/log; sleep 1.2; exit 1"],
          "mountPoints":[{{"sourceVolume":"runs","containerPath":"/runs"}}],
          "restartPolicy":{{"enabled":true,"restartAttemptPeriod":60}}}}]}}"#,
        p = dir.path().display(),
        i = image()
    ));
    // ECS does not accept periods under 60 s; ACS delivers what it is given, so shorten it here.
    task.containers[0]
        .restart_policy
        .as_mut()
        .unwrap()
        .restart_attempt_period = Some(1);
    h.run(&task);
    let t = h
        .wait_for(&task, "two restarts", |t| {
            t.containers[0].restart_count >= 2
        })
        .await;
    assert_eq!(t.known, Status::Running, "restarts keep the task running");
    let id_before = t.containers[0].docker_id.clone();
    let runs = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        runs.lines().count() >= 2,
        "the same container ran again: {runs:?}"
    );
    h.stop(&task);
    let t = h.stopped(&task).await;
    assert_eq!(
        t.containers[0].docker_id, id_before,
        "restarted in place, not recreated"
    );
    h.cleanup().await;
}

#[tokio::test]
async fn task_level_cpu_and_memory_limits_are_set_on_a_task_cgroup() {
    let root = std::path::PathBuf::from("/sys/fs/cgroup");
    assert!(
        root.join("memory").is_dir(),
        "these tests expect cgroup v1 (the test dockerd's)"
    );
    let cg = CgroupSettings {
        root: root.clone(),
        cpu_period: Duration::from_millis(100),
        pids_limit: Some(100),
    };
    let mut h = Harness::build(
        "ecs-enginetest-cgroup",
        4096,
        ImagePullBehavior::PreferCached,
        Some(cg),
        Duration::from_secs(3600),
        None,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"cgroup","cpu":"256","memory":"128","containerDefinitions":[
        {{"name":"app","image":"{i}","memory":64,"stopTimeout":1,"command":["sleep","300"]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h
        .wait_for(&task, "task RUNNING", |t| t.known == Status::Running)
        .await;
    let inspect = h.inspect(&t, "app").await;
    let parent = format!("/ecs/{}", task.id());
    assert_eq!(
        inspect.host_config.unwrap().cgroup_parent.as_deref(),
        Some(parent.as_str())
    );
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        read(&format!("memory{parent}/memory.limit_in_bytes")),
        (128u64 << 20).to_string()
    );
    assert_eq!(read(&format!("cpu{parent}/cpu.cfs_quota_us")), "25000");
    assert_eq!(read(&format!("cpu{parent}/cpu.cfs_period_us")), "100000");
    assert_eq!(read(&format!("pids{parent}/pids.max")), "100");
    let id = inspect.id.unwrap();
    assert!(
        root.join(format!("memory{parent}/{id}")).is_dir(),
        "the container's cgroup is inside the task's"
    );
    h.stop(&task);
    h.stopped(&task).await;
    h.cleanup().await;
    let _ = ecs_agent::runtime::cgroup::remove(&root, &parent);
}

/// The registry image is cached locally (test-env pushed it) but pulls without credentials fail:
/// what each ECS_IMAGE_PULL_BEHAVIOR makes of that.
#[tokio::test]
async fn pull_behaviours_decide_what_a_failed_pull_of_a_cached_image_means() {
    let image = format!("{}/busybox:latest", support::env::registry());
    let docker = support::env::docker().await;
    assert!(
        docker.inspect_image(&image).await.is_ok(),
        "{image} should be cached by scripts/test-env"
    );
    let cases = [
        (ImagePullBehavior::Always, false),
        (ImagePullBehavior::Default, true),
        (ImagePullBehavior::PreferCached, true),
        (ImagePullBehavior::Once, true),
    ];
    for (behavior, runs) in cases {
        let mut h = Harness::new("ecs-enginetest-pullbehaviour", 4096, behavior).await;
        let task = h.task(&format!(
            r#"{{"family":"pullb","containerDefinitions":[{{"name":"app","image":"{image}","memory":32,"command":["true"]}}]}}"#
        ));
        h.run(&task);
        let t = h.stopped(&task).await;
        let app = &t.containers[0];
        if runs {
            assert_eq!(
                app.exit_code,
                Some(0),
                "{behavior:?}: the cached image is used"
            );
        } else {
            let reason = t.reason.clone().unwrap_or_default();
            assert!(
                reason.starts_with("CannotPullContainerError: "),
                "{behavior:?}: {reason}"
            );
            assert!(app.docker_id.is_none());
        }
        h.cleanup().await;
    }
}

#[tokio::test]
async fn docker_volumes_honour_scope_autoprovision_driver_options_and_labels() {
    let mut h = Harness::new(
        "ecs-enginetest-dockervol",
        4096,
        ImagePullBehavior::PreferCached,
    )
    .await;
    let shared = support::env::unique_name("ecs-enginetest-sharedvol");
    let task = h.task(&format!(
        r#"{{"family":"dockervol","volumes":[
          {{"name":"{shared}","dockerVolumeConfiguration":{{"scope":"shared","autoprovision":true,"driver":"local",
             "driverOpts":{{"type":"tmpfs","device":"tmpfs","o":"size=1m"}},"labels":{{"team":"web"}}}}}},
          {{"name":"scratch","dockerVolumeConfiguration":{{"scope":"task","driver":"local"}}}}],
        "containerDefinitions":[{{"name":"app","image":"{i}","memory":32,
          "command":["sh","-c","echo hi > /shared/x && echo hi > /scratch/y && cat /shared/x /scratch/y"],
          "mountPoints":[{{"sourceVolume":"{shared}","containerPath":"/shared"}},{{"sourceVolume":"scratch","containerPath":"/scratch"}}]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    assert_eq!(t.containers[0].exit_code, Some(0));
    let v = h
        .docker
        .inspect_volume(&shared)
        .await
        .expect("shared volume autoprovisioned under its own name");
    assert_eq!(v.labels.get("team").map(String::as_str), Some("web"));
    assert_eq!(v.options.get("type").map(String::as_str), Some("tmpfs"));
    let mounts = h.inspect(&t, "app").await.mounts.unwrap_or_default();
    let scratch = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/scratch"))
        .unwrap();
    let scratch_name = scratch.name.clone().unwrap();
    assert!(
        scratch_name.contains(task.id()),
        "task-scoped volume named after the task: {scratch_name}"
    );
    h.cleanup().await;
    let _ = h
        .docker
        .remove_volume(
            &shared,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
    let _ = h
        .docker
        .remove_volume(
            &scratch_name,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
}

#[tokio::test]
async fn cleanup_removes_the_containers_and_task_scoped_volumes() {
    let mut h = Harness::build(
        "ecs-enginetest-cleanup",
        4096,
        ImagePullBehavior::PreferCached,
        None,
        Duration::from_secs(1),
        None,
    )
    .await;
    let task = h.task(&format!(
        r#"{{"family":"cleanup","volumes":[{{"name":"scratch"}}],"containerDefinitions":[
        {{"name":"a","image":"{i}","memory":32,"command":["true"],"mountPoints":[{{"sourceVolume":"scratch","containerPath":"/s"}}]}},
        {{"name":"b","image":"{i}","essential":false,"memory":32,"command":["true"]}}]}}"#,
        i = image()
    ));
    h.run(&task);
    let t = h.stopped(&task).await;
    let ids: Vec<String> = t
        .containers
        .iter()
        .filter_map(|c| c.docker_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    let volume = h.inspect(&t, "a").await.mounts.unwrap()[0]
        .name
        .clone()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let containers_gone = futures_util::future::join_all(
            ids.iter().map(|id| h.docker.inspect_container(id, None)),
        )
        .await
        .iter()
        .all(|r| r.is_err());
        let volume_gone = h.docker.inspect_volume(&volume).await.is_err();
        if containers_gone && volume_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containers gone: {containers_gone}, volume {volume} gone: {volume_gone}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.cleanup().await;
}

/// `registryAuthentication` type ecr: the token from (moto's) ECR GetAuthorizationToken is the
/// loopback registry's password, so a pull that needs it succeeds; a token for another registry
/// ID is refused and the task stops with CannotPullContainerError.
#[tokio::test]
async fn ecr_authentication_pulls_with_the_token_from_get_authorization_token() {
    let sdk = support::aws::moto_config().await;
    let mut h = Harness::with_aws("ecs-enginetest-ecr", ImagePullBehavior::Always, sdk).await;
    let image = format!("{}/busybox:latest", support::env::registry());
    let task_for = |registry_id: &str| {
        let mut t = h.task(&format!(
            r#"{{"family":"ecr","containerDefinitions":[{{"name":"app","image":"{image}","memory":32,"command":["true"]}}]}}"#
        ));
        t.containers[0].registry_authentication = Some(serde_json::json!({
            "type": "ecr",
            "ecrAuthData": {"registryId": registry_id, "region": "us-west-2", "endpointOverride": support::env::moto_url()}
        }));
        t
    };
    let good = task_for("123456789012");
    let bad = task_for("999999999999");
    h.run(&good);
    let t = h.stopped(&good).await;
    assert_eq!(
        t.containers[0].exit_code,
        Some(0),
        "pulled with the ECR token: {:?}",
        t.reason
    );
    h.run(&bad);
    let t = h.stopped(&bad).await;
    let reason = t.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    h.cleanup().await;
}

/// Secrets from SSM (SecureString) and Secrets Manager (a JSON key) reach the container's
/// environment, fetched with the execution role (moto's); a missing one stops the task with
/// ResourceInitializationError before anything is created, and no value is in the reason.
#[tokio::test]
async fn secrets_from_ssm_and_secrets_manager_reach_the_environment() {
    let sdk = support::aws::moto_config().await;
    let unique = support::env::unique_name("ecs-secret");
    let param = format!("/ecs-agent-test/{unique}");
    put_secure_string(&sdk, &param, "ssm-s3cret").await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&unique)
        .secret_string(r#"{"password":"asm-s3cret","user":"app"}"#)
        .send()
        .await
        .unwrap();
    let secret_arn = secret.arn().unwrap().to_owned();
    let mut h = Harness::with_aws(
        "ecs-enginetest-secrets",
        ImagePullBehavior::PreferCached,
        sdk,
    )
    .await;
    let task_with = |ssm_name: &str| {
        let mut t = h.task(&format!(
            r#"{{"family":"secrets","containerDefinitions":[{{"name":"app","image":"{i}","memory":32,
              "command":["sh","-c","test \"$DB_PASS\" = ssm-s3cret && test \"$API_PASS\" = asm-s3cret"],
              "secrets":[{{"name":"DB_PASS","valueFrom":"{ssm_name}"}},{{"name":"API_PASS","valueFrom":"{secret_arn}:password::"}}]}}]}}"#,
            i = image()
        ));
        t.execution_role_credentials = Some(execution_role("exec-1"));
        t
    };
    let good = task_with(&param);
    let bad = task_with("/ecs-agent-test/does-not-exist");
    h.run(&good);
    let t = h.stopped(&good).await;
    assert_eq!(
        t.containers[0].exit_code,
        Some(0),
        "both secrets in the environment: {:?}",
        t.reason
    );
    let env = h.inspect(&t, "app").await.config.unwrap().env.unwrap();
    assert!(env.contains(&"DB_PASS=ssm-s3cret".to_owned()));
    h.run(&bad);
    let t = h.stopped(&bad).await;
    let reason = t.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("ResourceInitializationError: unable to pull secrets"),
        "{reason}"
    );
    assert!(!reason.contains("s3cret"), "no secret value in the reason");
    assert!(t.containers[0].docker_id.is_none(), "nothing created");
    h.cleanup().await;
}

/// `registryAuthentication` type asm: the registry's username and password come from a
/// Secrets Manager secret read with the execution role.
#[tokio::test]
async fn asm_registry_credentials_authenticate_the_pull() {
    let sdk = support::aws::moto_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(support::env::unique_name("ecs-registry-creds"))
        .secret_string(format!(
            r#"{{"username":"{}","password":"{}"}}"#,
            support::env::registry_user(),
            support::env::registry_password()
        ))
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_owned();
    let mut h = Harness::with_aws("ecs-enginetest-asm", ImagePullBehavior::Always, sdk).await;
    let image = format!("{}/busybox:latest", support::env::registry());
    let mut task = h.task(&format!(
        r#"{{"family":"asm","containerDefinitions":[{{"name":"app","image":"{image}","memory":32,"command":["true"]}}]}}"#
    ));
    task.containers[0].registry_authentication = Some(
        serde_json::json!({"type": "asm", "asmAuthData": {"credentialsParameter": arn, "region": "us-west-2"}}),
    );
    task.execution_role_credentials = Some(execution_role("exec-asm"));
    h.run(&task);
    let t = h.stopped(&task).await;
    assert_eq!(
        t.containers[0].exit_code,
        Some(0),
        "pulled with the ASM credentials: {:?}",
        t.reason
    );
    h.cleanup().await;
}

/// `logConfiguration.secretOptions` (secrets with target LOG_DRIVER) become log driver options.
#[tokio::test]
async fn log_driver_secrets_become_log_options() {
    let sdk = support::aws::moto_config().await;
    let param = format!("/ecs-agent-test/{}", support::env::unique_name("logopt"));
    put_secure_string(&sdk, &param, "10m").await;
    let mut h = Harness::with_aws(
        "ecs-enginetest-logsecret",
        ImagePullBehavior::PreferCached,
        sdk,
    )
    .await;
    let mut task = h.task(&format!(
        r#"{{"family":"logsecret","containerDefinitions":[{{"name":"app","image":"{i}","memory":32,"command":["true"],
          "logConfiguration":{{"logDriver":"json-file","options":{{"max-file":"3"}},
            "secretOptions":[{{"name":"max-size","valueFrom":"{param}"}}]}}}}]}}"#,
        i = image()
    ));
    task.execution_role_credentials = Some(execution_role("exec-log"));
    h.run(&task);
    let t = h.stopped(&task).await;
    assert_eq!(t.containers[0].exit_code, Some(0), "{:?}", t.reason);
    let log = h
        .inspect(&t, "app")
        .await
        .host_config
        .unwrap()
        .log_config
        .unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let config = log.config.unwrap();
    assert_eq!(
        config.get("max-size").map(String::as_str),
        Some("10m"),
        "{config:?}"
    );
    assert_eq!(config.get("max-file").map(String::as_str), Some("3"));
    h.cleanup().await;
}

/// A task's containers, each with its secrets, as a task definition: `(name, command, secrets
/// JSON, dependsOn JSON)`.
fn secrets_task(h: &Harness, containers: &[(&str, &str, String, &str)]) -> Task {
    let defs: Vec<String> = containers
        .iter()
        .map(|(name, command, secrets, depends)| {
            format!(
                r#"{{"name":"{name}","image":"{i}","memory":32,"command":["sh","-c",{command:?}],
                  "secrets":{secrets},"dependsOn":{depends}}}"#,
                i = image()
            )
        })
        .collect();
    let mut t = h.task(&format!(
        r#"{{"family":"secrets","containerDefinitions":[{}]}}"#,
        defs.join(",")
    ));
    t.execution_role_credentials = Some(execution_role("exec-secrets"));
    t
}

/// A Secrets Manager secret in moto with this JSON text; its ARN.
async fn create_secret(sdk: &aws_config::SdkConfig, name: &str, text: &str) -> String {
    let secret = aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await
        .unwrap();
    secret.arn().unwrap().to_owned()
}

/// A task whose second container's secret is missing stops before either container exists,
/// though the first container's secret resolves and the second waits for the first to start.
#[tokio::test]
async fn a_later_containers_missing_secret_stops_the_task_before_any_container_is_created() {
    let sdk = support::aws::moto_config().await;
    let unique = support::env::unique_name("ecs-secret-order");
    let good = format!("/ecs-agent-test/{unique}/good");
    let missing = format!("/ecs-agent-test/{unique}/missing");
    put_secure_string(&sdk, &good, "first-s3cret").await;
    let mut h = Harness::with_aws(
        "ecs-enginetest-secretorder",
        ImagePullBehavior::PreferCached,
        sdk,
    )
    .await;
    let task = secrets_task(
        &h,
        &[
            (
                "first",
                "sleep 30",
                format!(r#"[{{"name":"A","valueFrom":"{good}"}}]"#),
                "[]",
            ),
            (
                "second",
                "true",
                format!(r#"[{{"name":"B","valueFrom":"{missing}"}}]"#),
                r#"[{"containerName":"first","condition":"START"}]"#,
            ),
        ],
    );
    h.run(&task);
    let t = h.stopped(&task).await;
    let reason = t.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("ResourceInitializationError: ") && reason.contains(&missing),
        "{reason}"
    );
    assert!(!reason.contains("s3cret"), "{reason}");
    for c in &t.containers {
        assert!(c.docker_id.is_none(), "{} was created: {t:#?}", c.name);
    }
    let label = format!("com.amazonaws.ecs.cluster={}", h.cluster);
    let made = support::env::containers_labelled(&h.docker, &label)
        .await
        .unwrap();
    assert!(
        made.is_empty(),
        "docker holds no container of the task: {made:?}"
    );
    h.cleanup().await;
}

/// Twelve SSM parameters (two GetParameters batches) and Secrets Manager keys reach the
/// environment of two containers; the container checks every value itself.
#[tokio::test]
async fn twelve_ssm_parameters_and_asm_keys_reach_the_containers() {
    let sdk = support::aws::moto_config().await;
    let unique = support::env::unique_name("ecs-secret-many");
    let mut secrets = Vec::new();
    let mut checks = Vec::new();
    for i in 0..12 {
        let name = format!("/ecs-agent-test/{unique}/p{i}");
        put_secure_string(&sdk, &name, &format!("value-{i}")).await;
        secrets.push(format!(r#"{{"name":"P{i}","valueFrom":"{name}"}}"#));
        checks.push(format!(r#"test "$P{i}" = value-{i}"#));
    }
    let arn = create_secret(&sdk, &unique, r#"{"user":"app","password":"pw"}"#).await;
    secrets.push(format!(r#"{{"name":"USER","valueFrom":"{arn}:user::"}}"#));
    secrets.push(format!(r#"{{"name":"WHOLE","valueFrom":"{arn}"}}"#));
    checks.push(r#"test "$USER" = app"#.into());
    checks.push(r#"test "$WHOLE" = '{"user":"app","password":"pw"}'"#.into());
    let mut h = Harness::with_aws(
        "ecs-enginetest-secretmany",
        ImagePullBehavior::PreferCached,
        sdk,
    )
    .await;
    let task = secrets_task(
        &h,
        &[
            (
                "all",
                &checks.join(" && "),
                format!("[{}]", secrets.join(",")),
                "[]",
            ),
            (
                "other",
                r#"test "$PASS" = pw"#,
                format!(r#"[{{"name":"PASS","valueFrom":"{arn}:password::"}}]"#),
                "[]",
            ),
        ],
    );
    h.run(&task);
    let t = h.stopped(&task).await;
    for c in &t.containers {
        assert_eq!(c.exit_code, Some(0), "{}: {:?}", c.name, t.reason);
    }
    h.cleanup().await;
}

/// Everything the agent logs in this test binary (the agent's debug level), for greps.
fn captured_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let directive =
            ecs_agent::app::logging::filter_directive(ecs_agent::config::LogLevel::Debug);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directive))
            .with_writer(move || LogSink(buffer))
            .try_init();
        buffer
    })
}

struct LogSink(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each way a secret can fail stops its task with ResourceInitializationError naming the
/// secret's valueFrom; no secret value (the task's other secrets resolve) reaches the reason,
/// the agent's log or the saved state.
#[tokio::test]
async fn each_secret_failure_names_the_secret_and_leaks_no_value() {
    let log = captured_log();
    let sdk = support::aws::moto_config().await;
    let unique = support::env::unique_name("ecs-secret-fail");
    let good = format!("/ecs-agent-test/{unique}/good");
    let ssm_value = format!("ssm-val-{unique}");
    let asm_value = format!("asm-val-{unique}");
    put_secure_string(&sdk, &good, &ssm_value).await;
    let arn = create_secret(&sdk, &unique, &format!(r#"{{"password":"{asm_value}"}}"#)).await;
    let state = tempfile::tempdir().unwrap();
    let mut h = Harness::build_saving(
        "ecs-enginetest-secretfail",
        4096,
        ImagePullBehavior::PreferCached,
        None,
        Duration::from_secs(3600),
        Some(sdk),
        Some(state.path()),
    )
    .await;
    let missing_ssm = format!("/ecs-agent-test/{unique}/missing");
    let missing_asm =
        format!("arn:aws:secretsmanager:us-west-2:123456789012:secret:{unique}-gone-AbCdEf");
    let malformed = format!("{arn}:password");
    let no_key = format!("{arn}:no-such-key::");
    let elsewhere = [
        format!("/ecs-agent-test/{unique}/far-1"),
        format!("/ecs-agent-test/{unique}/far-2"),
    ];
    // (the failing secrets' JSON, what the reason must name)
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!(r#"{{"name":"X","valueFrom":"{missing_ssm}"}}"#),
            vec![missing_ssm.clone()],
        ),
        (
            format!(r#"{{"name":"X","valueFrom":"{missing_asm}","provider":"asm"}}"#),
            vec![missing_asm.clone()],
        ),
        (
            format!(r#"{{"name":"X","valueFrom":"{malformed}","provider":"asm"}}"#),
            vec![malformed.clone()],
        ),
        (
            format!(r#"{{"name":"X","valueFrom":"{no_key}","provider":"asm"}}"#),
            vec![no_key.clone()],
        ),
        // moto answers 500 for a region it does not know: an SSM service error for the batch.
        (
            elsewhere
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(r#"{{"name":"F{i}","valueFrom":"{p}","region":"zz-nowhere-9"}}"#)
                })
                .collect::<Vec<_>>()
                .join(","),
            elsewhere.to_vec(),
        ),
    ];
    for (failing, named) in &cases {
        let secrets = format!(
            r#"[{{"name":"DB","valueFrom":"{good}"}},{{"name":"API","valueFrom":"{arn}:password::"}},{failing}]"#
        );
        let task = secrets_task(&h, &[("app", "true", secrets, "[]")]);
        h.run(&task);
        let t = h.stopped(&task).await;
        let reason = t.reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("ResourceInitializationError: "),
            "{named:?}: {reason}"
        );
        for n in named {
            assert!(reason.contains(n.as_str()), "names {n}: {reason}");
        }
        assert!(
            t.containers[0].docker_id.is_none(),
            "{named:?}: nothing created"
        );
        for value in [&ssm_value, &asm_value] {
            assert!(!reason.contains(value.as_str()), "{reason}");
        }
    }
    h.handle.flush().await;
    let saved = std::fs::read_to_string(state.path().join(ecs_agent::state::FILE)).unwrap();
    assert!(saved.contains(&missing_ssm), "the state holds the tasks");
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!logged.is_empty(), "the agent's log was captured");
    for value in [&ssm_value, &asm_value] {
        assert!(
            !saved.contains(value.as_str()),
            "a secret value in the state"
        );
        assert!(
            !logged.contains(value.as_str()),
            "a secret value in the log"
        );
    }
    h.cleanup().await;
}

/// Execution role credentials for a task (moto checks none of them).
fn execution_role(id: &str) -> ecs_agent::model::RoleCredentials {
    ecs_agent::model::RoleCredentials {
        credentials_id: id.into(),
        role_arn: "arn:aws:iam::123456789012:role/exec".into(),
        access_key_id: "AKIDEXEC".into(),
        secret_access_key: "dummy".into(),
        session_token: "token".into(),
        expiration: "2026-11-26T20:00:00Z".into(),
        credential_scope: None,
    }
}

/// Stores an SSM SecureString parameter in moto.
async fn put_secure_string(sdk: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}
