//! `runtime::create::create_body` against the real dockerd: each test builds a create request
//! from a task model, creates the container under its `docker_container_name`, and checks what
//! `docker inspect` shows; three of them start the container and check its behaviour (printed
//! environment, read-only root filesystem, a published port served on the host).
//!
//! Needs `scripts/test-env up`. Only the local `ecs-agent-test/busybox` image is used; nothing is
//! pulled; every address touched is loopback. Containers are named `ecs-createtest-<pid>-…` and
//! force-removed when their guard drops (also on a failed assertion); leftovers of earlier,
//! killed runs are swept once per run.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::models::{ContainerInspectResponse, DeviceMapping, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use ecs_agent::model::task::{Device, KernelCapabilities, LinuxParameters};
use ecs_agent::model::{
    Container, DockerConfig, MountPoint, PortMapping, Protocol, Task, VolumeFrom,
};
use ecs_agent::runtime::create::{create_body, CreateContext, ResolvedPort, VolumeSource};
use ecs_agent::runtime::names::{self, docker_container_name, name_suffix};
use futures_util::TryStreamExt;
use serde_json::json;
use support::{env, http};

const FAMILY: &str = "createtest";
const CLUSTER: &str = "createtest-cluster";
const CREDS_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
const MIB: i64 = 1024 * 1024;

// ------------------------------------------------------------------ setup

/// Owns what a [`CreateContext`] borrows.
#[derive(Default)]
struct Setup {
    ports: Vec<ResolvedPort>,
    peers: BTreeMap<String, String>,
    volumes: BTreeMap<String, VolumeSource>,
    extra_env: BTreeMap<String, String>,
}

impl Setup {
    fn ctx(&self) -> CreateContext<'_> {
        CreateContext {
            cluster: CLUSTER,
            host_ports: &self.ports,
            peer_names: &self.peers,
            volumes: &self.volumes,
            cgroup_parent: None,
            disable_privileged: false,
            extra_env: &self.extra_env,
            log_config_override: None,
        }
    }
}

/// The task revision is this test process's id, so names tell runs apart.
fn revision() -> String {
    std::process::id().to_string()
}

fn task(network_mode: Option<&str>) -> Task {
    Task {
        arn: format!(
            "arn:aws:ecs:us-west-2:123456789012:task/{CLUSTER}/{}",
            revision()
        ),
        family: FAMILY.into(),
        version: revision(),
        network_mode: network_mode.map(String::from),
        ..Default::default()
    }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: env::image(),
        ..Default::default()
    }
}

fn docker_config(
    config: Option<serde_json::Value>,
    host: Option<serde_json::Value>,
) -> DockerConfig {
    DockerConfig {
        config: config.map(|c| c.to_string()),
        host_config: host.map(|h| h.to_string()),
        version: None,
    }
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// 20 hex characters no other container of this run uses.
fn suffix() -> String {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    name_suffix(bytes)
}

// --------------------------------------------------------------- cleanup

/// Runs `work` with a fresh client on its own thread and runtime, so it can be called from
/// `Drop` (and from inside a test's runtime) without touching the test's runtime.
fn on_own_runtime<F, Fut>(work: F)
where
    F: FnOnce(Docker) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        if let Ok(docker) = Docker::connect_with_unix_defaults() {
            runtime.block_on(work(docker));
        }
    });
    let _ = thread.join();
}

/// A container (and the named volumes it made) removed, with force, when this drops.
struct Created {
    name: String,
    volumes: Vec<String>,
}

impl Drop for Created {
    fn drop(&mut self) {
        let name = self.name.clone();
        let volumes = std::mem::take(&mut self.volumes);
        on_own_runtime(move |docker| async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&name, Some(options)).await;
            for volume in volumes {
                let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                let _ = docker.remove_volume(&volume, Some(options)).await;
            }
        });
    }
}

/// Removes `ecs-createtest-*` containers more than ten minutes old (a killed earlier run).
fn sweep_leftovers() {
    on_own_runtime(|docker| async move {
        let label = format!("{}={FAMILY}", names::LABEL_TASK_DEFINITION_FAMILY);
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let Ok(found) = docker.list_containers(Some(options)).await else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let prefix = format!("/{}{FAMILY}-", names::CONTAINER_NAME_PREFIX);
        for summary in found {
            let named = summary
                .names
                .iter()
                .flatten()
                .any(|n| n.starts_with(&prefix));
            if named && summary.created.is_some_and(|c| c < now - 600) {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                let id = summary.id.unwrap_or_default();
                let _ = docker.remove_container(&id, Some(options)).await;
            }
        }
    });
}

async fn docker() -> Docker {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_leftovers);
    env::docker().await
}

// ---------------------------------------------------------------- driving

/// Builds the body for `container` of `task`, creates it under its ECS Docker name and inspects it.
async fn create(
    docker: &Docker,
    setup: &Setup,
    task: &Task,
    container: &Container,
) -> (Created, ContainerInspectResponse) {
    let body = create_body(task, container, &setup.ctx())
        .unwrap_or_else(|e| panic!("create_body for {}: {e}", container.name));
    let name = docker_container_name(&task.family, &task.version, &container.name, &suffix());
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("dockerd refused {name}: {e}"));
    let volumes = setup
        .volumes
        .values()
        .filter_map(|v| match v {
            VolumeSource::DockerVolume(volume) => Some(volume.clone()),
            VolumeSource::HostPath(_) => None,
        })
        .collect();
    let created = Created { name, volumes };
    let inspect = docker
        .inspect_container(&created.name, None)
        .await
        .unwrap_or_else(|e| panic!("inspect {}: {e}", created.name));
    (created, inspect)
}

fn host_config(inspect: &ContainerInspectResponse) -> &HostConfig {
    inspect
        .host_config
        .as_ref()
        .expect("inspect has HostConfig")
}

/// Starts `name`, waits for it to exit and returns (exit code, stdout).
async fn run_to_exit(docker: &Docker, name: &str) -> (i64, String) {
    docker
        .start_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let wait = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let code = match docker
        .wait_container(name, Some(wait))
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(responses) => responses.last().map_or(0, |r| r.status_code),
        // bollard reports a non-zero exit as an error carrying the code.
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
        Err(e) => panic!("wait {name}: {e}"),
    };
    let logs = LogsOptionsBuilder::default().stdout(true).build();
    let chunks: Vec<LogOutput> = docker
        .logs(name, Some(logs))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("logs of {name}: {e}"));
    let stdout = chunks
        .into_iter()
        .filter(|c| matches!(c, LogOutput::StdOut { .. }))
        .map(|c| String::from_utf8_lossy(&c.into_bytes()).into_owned())
        .collect();
    (code, stdout)
}

fn sh(script: &str) -> Container {
    Container {
        entry_point: strings(&["sh", "-c"]),
        command: strings(&[script]),
        ..container("app")
    }
}

// ------------------------------------------------------- fields in inspect

#[tokio::test]
async fn config_fields_reach_docker() {
    let docker = docker().await;
    let setup = Setup {
        extra_env: BTreeMap::from([(CREDS_URI.into(), "/v2/credentials/abc".into())]),
        ..Setup::default()
    };
    let config = json!({
        "Labels": {"team": "blue", "com.amazonaws.ecs.cluster": "spoofed"},
        "User": "nobody",
        "WorkingDir": "/tmp",
        "Hostname": "createtest-host",
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000i64, "Retries": 3},
    });
    let c = Container {
        entry_point: strings(&["sh"]),
        command: strings(&["-c", "echo hi"]),
        environment: Some(BTreeMap::from([
            ("B_VAR".into(), "2".into()),
            ("A_VAR".into(), "1".into()),
        ])),
        docker_config: Some(docker_config(Some(config), None)),
        ..container("web.app")
    };
    let task = task(Some("none"));
    let (created, inspect) = create(&docker, &setup, &task, &c).await;

    assert!(created
        .name
        .starts_with(&format!("ecs-{FAMILY}-{}-webapp-", revision())));
    let config = inspect.config.clone().expect("inspect has Config");
    assert_eq!(config.entrypoint, strings(&["sh"]));
    assert_eq!(config.cmd, strings(&["-c", "echo hi"]));
    let env = config.env.unwrap_or_default();
    let at = |entry: &str| env.iter().position(|e| e == entry);
    assert!(
        at("A_VAR=1") < at("B_VAR=2") && at("A_VAR=1").is_some(),
        "{env:?}"
    );
    assert!(
        at(&format!("{CREDS_URI}=/v2/credentials/abc")).is_some(),
        "{env:?}"
    );
    let labels = config.labels.unwrap_or_default();
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels[names::LABEL_CLUSTER], CLUSTER);
    assert_eq!(labels[names::LABEL_TASK_ARN], task.arn);
    assert_eq!(labels[names::LABEL_CONTAINER_NAME], "web.app");
    assert_eq!(labels[names::LABEL_TASK_DEFINITION_FAMILY], FAMILY);
    assert_eq!(labels[names::LABEL_TASK_DEFINITION_VERSION], revision());
    assert_eq!(config.user.as_deref(), Some("nobody"));
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.hostname.as_deref(), Some("createtest-host"));
    let health = config.healthcheck.expect("Healthcheck");
    assert_eq!(health.test, strings(&["CMD-SHELL", "true"]));
    assert_eq!(
        (health.interval, health.retries),
        (Some(2_000_000_000), Some(3))
    );
}

#[tokio::test]
async fn resources_reach_docker() {
    let docker = docker().await;
    let c = Container {
        cpu: Some(512),
        memory: Some(64),
        linux_parameters: Some(LinuxParameters {
            shared_memory_size: Some(32),
            ..Default::default()
        }),
        docker_config: Some(docker_config(
            None,
            Some(json!({"MemoryReservation": 32 * MIB})),
        )),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &Setup::default(), &task(None), &c).await;
    let host = host_config(&inspect);
    assert_eq!(host.cpu_shares, Some(512));
    assert_eq!(host.memory, Some(64 * MIB));
    assert_eq!(host.memory_reservation, Some(32 * MIB));
    assert_eq!(host.shm_size, Some(32 * MIB));
}

#[tokio::test]
async fn zero_cpu_becomes_two_shares_in_docker() {
    let docker = docker().await;
    let c = Container {
        cpu: Some(0),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &Setup::default(), &task(None), &c).await;
    assert_eq!(host_config(&inspect).cpu_shares, Some(2));
    assert_eq!(host_config(&inspect).memory, Some(0));
}

#[tokio::test]
async fn port_bindings_reach_docker() {
    let docker = docker().await;
    let setup = Setup {
        ports: vec![
            ResolvedPort {
                container_port: Some(80),
                container_port_range: None,
                host_port: Some(18080),
                host_port_range: None,
                protocol: Protocol::Tcp,
            },
            ResolvedPort {
                container_port: Some(53),
                container_port_range: None,
                host_port: Some(15353),
                host_port_range: None,
                protocol: Protocol::Udp,
            },
            ResolvedPort {
                container_port: None,
                container_port_range: Some((7000, 7001)),
                host_port: None,
                host_port_range: Some((17000, 17001)),
                protocol: Protocol::Tcp,
            },
        ],
        ..Setup::default()
    };
    let c = Container {
        port_mappings: Some(vec![PortMapping::default(); 3]),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &setup, &task(Some("bridge")), &c).await;
    let mut exposed = inspect
        .config
        .clone()
        .unwrap()
        .exposed_ports
        .unwrap_or_default();
    exposed.sort();
    assert_eq!(exposed, ["53/udp", "7000/tcp", "7001/tcp", "80/tcp"]);
    let bindings = host_config(&inspect)
        .port_bindings
        .clone()
        .unwrap_or_default();
    let host_port = |key: &str| -> Vec<String> {
        bindings[key]
            .iter()
            .flatten()
            .filter_map(|b: &PortBinding| b.host_port.clone())
            .collect()
    };
    assert_eq!(host_port("80/tcp"), ["18080"]);
    assert_eq!(host_port("53/udp"), ["15353"]);
    assert_eq!(host_port("7000/tcp"), ["17000"]);
    assert_eq!(host_port("7001/tcp"), ["17001"]);
}

#[tokio::test]
async fn binds_reach_docker() {
    let docker = docker().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let host_path = dir.path().to_string_lossy().into_owned();
    let volume = format!("ecs-{FAMILY}-{}-vol-{}", revision(), suffix());
    let setup = Setup {
        volumes: BTreeMap::from([
            ("logs".into(), VolumeSource::HostPath(host_path.clone())),
            ("cache".into(), VolumeSource::DockerVolume(volume.clone())),
        ]),
        ..Setup::default()
    };
    let mount = |source: &str, path: &str, read_only| MountPoint {
        source_volume: source.into(),
        container_path: path.into(),
        read_only: Some(read_only),
    };
    let c = Container {
        mount_points: Some(vec![
            mount("logs", "/logs", true),
            mount("cache", "/cache", false),
        ]),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &setup, &task(None), &c).await;
    assert_eq!(
        host_config(&inspect).binds,
        Some(vec![
            format!("{host_path}:/logs:ro"),
            format!("{volume}:/cache")
        ])
    );
    let mounts = inspect.mounts.clone().unwrap_or_default();
    let by_destination = |d: &str| mounts.iter().find(|m| m.destination.as_deref() == Some(d));
    let logs = by_destination("/logs").expect("/logs mounted");
    assert_eq!(
        (logs.source.as_deref(), logs.rw),
        (Some(host_path.as_str()), Some(false))
    );
    let cache = by_destination("/cache").expect("/cache mounted");
    assert_eq!(
        (cache.name.as_deref(), cache.rw),
        (Some(volume.as_str()), Some(true))
    );
}

#[tokio::test]
async fn links_and_volumes_from_reach_docker() {
    let docker = docker().await;
    let task = task(Some("bridge"));
    let (db, _) = create(&docker, &Setup::default(), &task, &container("db")).await;
    let setup = Setup {
        peers: BTreeMap::from([("db".into(), db.name.clone())]),
        ..Setup::default()
    };
    let c = Container {
        links: strings(&["db:database"]),
        volumes_from: Some(vec![VolumeFrom {
            source_container: "db".into(),
            read_only: Some(true),
        }]),
        ..container("app")
    };
    let (app, inspect) = create(&docker, &setup, &task, &c).await;
    let host = host_config(&inspect);
    // Docker stores a link as `/<target>:/<container>/<alias>`.
    assert_eq!(
        host.links,
        Some(vec![format!("/{}:/{}/database", db.name, app.name)])
    );
    assert_eq!(host.volumes_from, Some(vec![format!("{}:ro", db.name)]));
}

#[tokio::test]
async fn linux_parameters_reach_docker() {
    let docker = docker().await;
    let c = Container {
        linux_parameters: Some(LinuxParameters {
            capabilities: Some(KernelCapabilities {
                add: strings(&["NET_ADMIN"]),
                drop: strings(&["MKNOD"]),
            }),
            devices: Some(vec![Device {
                host_path: "/dev/null".into(),
                container_path: Some("/dev/ecsnull".into()),
                permissions: Some(vec!["read".into(), "write".into()]),
            }]),
            init_process_enabled: Some(true),
            shared_memory_size: None,
        }),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &Setup::default(), &task(None), &c).await;
    let host = host_config(&inspect);
    assert_eq!(host.cap_add, strings(&["NET_ADMIN"]));
    assert_eq!(host.cap_drop, strings(&["MKNOD"]));
    assert_eq!(host.init, Some(true));
    assert_eq!(
        host.devices,
        Some(vec![DeviceMapping {
            path_on_host: Some("/dev/null".into()),
            path_in_container: Some("/dev/ecsnull".into()),
            cgroup_permissions: Some("rw".into()),
        }])
    );
}

#[tokio::test]
async fn privileged_reaches_docker() {
    let docker = docker().await;
    let c = Container {
        privileged: Some(true),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &Setup::default(), &task(None), &c).await;
    assert_eq!(host_config(&inspect).privileged, Some(true));
}

#[tokio::test]
async fn host_config_overlay_fields_reach_docker() {
    let docker = docker().await;
    let host = json!({
        "Memory": 48 * MIB,
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "Dns": ["127.0.0.1"],
        "ExtraHosts": ["db.local:127.0.0.2"],
        "ReadonlyRootfs": true,
    });
    let c = Container {
        memory: Some(128),
        docker_config: Some(docker_config(None, Some(host))),
        ..container("app")
    };
    let (_created, inspect) = create(&docker, &Setup::default(), &task(None), &c).await;
    let host = host_config(&inspect);
    assert_eq!(
        host.memory,
        Some(48 * MIB),
        "the hostConfig key wins over memory"
    );
    let ulimits = host.ulimits.clone().unwrap_or_default();
    assert_eq!(ulimits.len(), 1);
    assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
    assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
    assert_eq!(host.dns, strings(&["127.0.0.1"]));
    assert_eq!(host.extra_hosts, strings(&["db.local:127.0.0.2"]));
    assert_eq!(host.readonly_rootfs, Some(true));
}

#[tokio::test]
async fn network_modes_reach_docker() {
    let docker = docker().await;
    for (mode, expected) in [
        (None, "bridge"),
        (Some("host"), "host"),
        (Some("none"), "none"),
    ] {
        let (_created, inspect) =
            create(&docker, &Setup::default(), &task(mode), &container("app")).await;
        assert_eq!(
            host_config(&inspect).network_mode.as_deref(),
            Some(expected),
            "{mode:?}"
        );
    }
}

// ---------------------------------------------------------------- behaviour

#[tokio::test]
async fn started_container_prints_its_environment_with_the_agent_env_kept() {
    let docker = docker().await;
    let setup = Setup {
        extra_env: BTreeMap::from([(CREDS_URI.into(), "/v2/credentials/abc".into())]),
        ..Setup::default()
    };
    // The dockerConfig Env replaces the task environment but cannot drop the agent's variable.
    let config = json!({"Env": ["GREETING=from-docker-config", format!("{CREDS_URI}=/spoofed")]});
    let c = Container {
        environment: Some(BTreeMap::from([("GREETING".into(), "from-task".into())])),
        docker_config: Some(docker_config(Some(config), None)),
        ..sh(&format!("echo \"$GREETING ${CREDS_URI}\""))
    };
    let (created, _) = create(&docker, &setup, &task(Some("none")), &c).await;
    let (code, stdout) = run_to_exit(&docker, &created.name).await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "from-docker-config /v2/credentials/abc\n");
}

#[tokio::test]
async fn read_only_root_filesystem_rejects_a_write() {
    let docker = docker().await;
    let probe = "if touch /probe 2>/dev/null; then echo writable; else echo read-only; fi";
    let read_only = Container {
        docker_config: Some(docker_config(None, Some(json!({"ReadonlyRootfs": true})))),
        ..sh(probe)
    };
    for (c, expected) in [(read_only, "read-only\n"), (sh(probe), "writable\n")] {
        let (created, _) = create(&docker, &Setup::default(), &task(Some("none")), &c).await;
        let (code, stdout) = run_to_exit(&docker, &created.name).await;
        assert_eq!((code, stdout.as_str()), (0, expected));
    }
}

/// A TCP port nothing listens on right now (bound to 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn published_port_serves_http_on_the_host() {
    let docker = docker().await;
    let port = free_port();
    let setup = Setup {
        ports: vec![ResolvedPort {
            container_port: Some(80),
            container_port_range: None,
            host_port: Some(port),
            host_port_range: None,
            protocol: Protocol::Tcp,
        }],
        ..Setup::default()
    };
    let c = Container {
        port_mappings: Some(vec![PortMapping {
            container_port: Some(80),
            host_port: Some(port),
            ..Default::default()
        }]),
        ..sh("mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 80 -h /www")
    };
    let (created, _) = create(&docker, &setup, &task(Some("bridge")), &c).await;
    docker
        .start_container(&created.name, None)
        .await
        .unwrap_or_else(|e| panic!("start {}: {e}", created.name));
    let endpoint = format!("127.0.0.1:{port}");
    let mut last = String::new();
    for _ in 0..50 {
        match http::request("GET", &endpoint, "/index.html", &[], "").await {
            Ok(response) if response.status == 200 => {
                assert_eq!(response.body, "hello-from-httpd\n");
                return;
            }
            Ok(response) => last = format!("status {}", response.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("httpd never answered on {endpoint}: {last}");
}
