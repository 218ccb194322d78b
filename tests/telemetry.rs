//! The TCS session against the project's control-plane simulator, with real Docker metrics: an
//! idle publish at once on connect, task metrics polled from a running container, container
//! health, the instance status from a Docker ping, and a reconnect after the connection drops.
//! The simulator checks the SigV4 signature of every frame and validates it against
//! `tcs-api-2.json`, so every frame must come out `valid`.
//!
//! Each test labels its containers with its own cluster name and removes them at the end.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_ecs::types::{Attribute, Resource};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bollard::Docker;
use ecs_agent::config::ImagePullBehavior;
use ecs_agent::control::telemetry::{run_tcs, TelemetryContext};
use ecs_agent::engine::{Engine, EngineConfig, HostCapacity, Input};
use ecs_agent::model::{task_from_definition, LocalRunOptions, Status, Task};
use ecs_agent::runtime::{
    DockerRuntime, DockerSettings, Driver, DriverHandle, DriverSettings, Snapshot,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use support::ecs_sim::{AgentFrame, EcsSim, SimConfig, WsKind};
use support::imds::{identity_document, ImdsConfig};

const WAIT: Duration = Duration::from_secs(30);
const PUBLISH: Duration = Duration::from_secs(1);

// ---- the simulated control plane

async fn sdk_config(sim: &EcsSim) -> SdkConfig {
    let c = sim.config();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .credentials_provider(Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "sim",
        ))
        .region(Region::new(c.region.clone()))
        .endpoint_url(sim.endpoint())
        .load()
        .await
}

/// Registers an instance in `cluster` and returns its ARN.
async fn register(client: &aws_sdk_ecs::Client, cluster: &str) -> String {
    let resource = |name: &str, n: i32| {
        Resource::builder()
            .name(name)
            .r#type("INTEGER")
            .integer_value(n)
            .build()
    };
    let out = client
        .register_container_instance()
        .cluster(cluster)
        .instance_identity_document(identity_document(&ImdsConfig::default()))
        .instance_identity_document_signature("ZmFrZS1zaWduYXR1cmU=")
        .total_resources(resource("CPU", 2048))
        .total_resources(resource("MEMORY", 3768))
        .attributes(
            Attribute::builder()
                .name("ecs.os-type")
                .value("linux")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("RegisterContainerInstance against the simulator");
    out.container_instance()
        .and_then(|i| i.container_instance_arn())
        .expect("instance ARN")
        .to_string()
}

/// A simulator knowing `cluster`, an instance registered in it, and a TCS session for it.
struct Session {
    sim: EcsSim,
    tcs: JoinHandle<()>,
}

impl Session {
    async fn start(
        cluster: &str,
        docker: &Docker,
        snapshots: watch::Receiver<Snapshot>,
    ) -> Session {
        let sim = EcsSim::start(SimConfig {
            cluster_names: vec![cluster.to_owned()],
            ..SimConfig::default()
        })
        .await;
        let sdk = sdk_config(&sim).await;
        let client = aws_sdk_ecs::Client::new(&sdk);
        let instance_arn = register(&client, cluster).await;
        let docker_version = docker.version().await.ok().and_then(|v| v.version);
        let ctx = TelemetryContext {
            client,
            sdk,
            cluster: cluster.to_owned(),
            instance_arn,
            docker_version,
            agent_version: "1.105.1".into(),
            agent_hash: "0123abcd".into(),
            docker: docker.clone(),
            snapshots,
            disable_metrics: false,
            publish_interval: PUBLISH,
        };
        let tcs = tokio::spawn(run_tcs(ctx));
        Session { sim, tcs }
    }

    async fn frame(&self, what: &str, pred: impl Fn(&AgentFrame) -> bool) -> AgentFrame {
        match self.sim.wait_tcs_frame(pred, WAIT).await {
            Some(f) => f,
            None => panic!(
                "no TCS frame: {what}; frames: {:#?}",
                summary(&self.sim.tcs_frames())
            ),
        }
    }

    fn assert_all_valid(&self) {
        let frames = self.sim.tcs_frames();
        let invalid: Vec<_> = frames.iter().filter(|f| !f.valid).collect();
        assert!(invalid.is_empty(), "invalid TCS frames: {invalid:#?}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tcs.abort();
    }
}

fn summary(frames: &[AgentFrame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            format!(
                "#{} {:?} valid={} {:?} {}",
                f.connection,
                f.msg_type,
                f.valid,
                f.error,
                f.message()
            )
        })
        .collect()
}

fn is(f: &AgentFrame, kind: &str) -> bool {
    f.msg_type.as_deref() == Some(kind)
}

fn header<'a>(f: &'a AgentFrame, name: &str) -> Option<&'a str> {
    f.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ---- a real engine and driver

struct Host {
    cluster: String,
    docker: Docker,
    handle: DriverHandle,
    snapshots: watch::Receiver<Snapshot>,
}

impl Host {
    async fn start(prefix: &str) -> Host {
        let docker = support::env::docker().await;
        let cluster = support::env::unique_name(prefix);
        let cfg = EngineConfig {
            stop_timeout: Duration::from_secs(10),
            pull_upfront: false,
            cleanup_wait: Duration::from_secs(3600),
            cleanup_jitter: Duration::ZERO,
            stop_retry: Duration::from_secs(1),
            capacity: HostCapacity {
                cpu: 4096,
                memory_mib: 4096,
                reserved_tcp: [22].into(),
                reserved_udp: BTreeSet::new(),
                dynamic_ports: (41000, 41999),
                port_in_use: None,
            },
        };
        let settings = DockerSettings {
            pull_behavior: ImagePullBehavior::PreferCached,
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
        let (driver, handle, _changes, snapshots) =
            Driver::new(Engine::new(cfg, 1234), runtime, driver_settings);
        tokio::spawn(driver.run());
        Host {
            cluster,
            docker,
            handle,
            snapshots,
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

    async fn run_until_running(&mut self, task: &Task) {
        assert!(self.handle.send(Input::AddTask(Box::new(task.clone()))));
        let running = {
            let wait = self.snapshots.wait_for(|s| {
                s.iter()
                    .any(|t| t.arn() == task.arn && t.known == Status::Running)
            });
            matches!(tokio::time::timeout(WAIT, wait).await, Ok(Ok(_)))
        };
        assert!(running, "task not RUNNING: {:#?}", self.snapshots.borrow());
    }

    /// Removes every container this test's tasks made.
    async fn cleanup(&self) {
        support::env::remove_cluster_containers(&self.docker, &self.cluster).await;
        self.handle.shutdown();
    }
}

fn task_metric<'a>(f: &'a AgentFrame, task_arn: &str) -> Option<&'a Value> {
    f.message()["taskMetrics"]
        .as_array()?
        .iter()
        .find(|t| t["taskArn"] == task_arn)
}

fn container_health<'a>(f: &'a AgentFrame, task_arn: &str, name: &str) -> Option<&'a Value> {
    let task = f.message()["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["taskArn"] == task_arn)?;
    task["containers"]
        .as_array()?
        .iter()
        .find(|c| c["containerName"] == name)
}

// ---- tests

#[tokio::test]
async fn publishes_idle_at_once_then_polled_task_metrics_health_and_instance_status() {
    let mut engine = Host::start("ecs-tcstest-metrics").await;
    let session = Session::start(&engine.cluster, &engine.docker, engine.snapshots.clone()).await;

    // (1) Before any task: the very first frame is an idle, final PublishMetricsRequest.
    let first = session.frame("the first publish", |_| true).await;
    assert!(
        is(&first, "PublishMetricsRequest"),
        "first frame: {first:#?}"
    );
    assert!(first.valid, "first frame refused: {:?}", first.error);
    let metadata = &first.message()["metadata"];
    assert_eq!(
        (metadata["idle"].as_bool(), metadata["fin"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(metadata["cluster"], engine.cluster.as_str());
    let auth = header(&first, "Authorization").expect("signed frame");
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential="), "{auth}");
    assert!(auth.contains("/ecs/aws4_request"), "{auth}");

    // (2) With a task running: its container's polled CPU and memory.
    let task = engine.task(&format!(
        r#"{{"family":"tcs","containerDefinitions":[
        {{"name":"app","image":"{i}","memory":32,"command":["sleep","300"],"stopTimeout":1}},
        {{"name":"checked","image":"{i}","memory":32,"command":["sleep","300"],"stopTimeout":1,
          "healthCheck":{{"command":["CMD-SHELL","true"],"interval":5,"timeout":2,"retries":3}}}}]}}"#,
        i = support::env::image()
    ));
    engine.run_until_running(&task).await;
    let metrics = session
        .frame("task metrics with a CPU stats set", |f| {
            task_metric(f, &task.arn).is_some_and(|t| {
                t["containerMetrics"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["containerName"] == "app"
                            && c["cpuStatsSet"]["sampleCount"].as_i64() >= Some(1)
                    })
                })
            })
        })
        .await;
    assert!(metrics.valid, "task metrics refused: {:?}", metrics.error);
    let metadata = &metrics.message()["metadata"];
    assert_eq!(
        (metadata["idle"].as_bool(), metadata["fin"].as_bool()),
        (Some(false), Some(true))
    );
    let t = task_metric(&metrics, &task.arn).unwrap();
    assert_eq!(t["taskDefinitionFamily"], "tcs");
    let app = t["containerMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["containerName"] == "app")
        .unwrap();
    assert!(
        app["memoryStatsSet"]["sampleCount"].as_i64() >= Some(1),
        "{app}"
    );
    let cpu_max = app["cpuStatsSet"]["max"].as_f64().unwrap();
    assert!(
        (0.0..=100.0).contains(&cpu_max),
        "sleep uses next to no CPU: {app}"
    );

    // Container health for the container with a health check only.
    let health = session
        .frame("HEALTHY in a PublishHealthRequest", |f| {
            is(f, "PublishHealthRequest")
                && container_health(f, &task.arn, "checked")
                    .is_some_and(|c| c["healthStatus"] == "HEALTHY")
        })
        .await;
    assert!(health.valid, "health refused: {:?}", health.error);
    assert!(
        container_health(&health, &task.arn, "app").is_none(),
        "app has no health check"
    );
    assert!(container_health(&health, &task.arn, "checked").unwrap()["statusSince"].is_number());

    // (3) The instance status: ContainerRuntime OK from a Docker ping.
    let status = session
        .frame("ContainerRuntime OK", |f| {
            is(f, "PublishInstanceStatusRequest")
                && f.message()["statuses"][0]["type"] == "ContainerRuntime"
                && f.message()["statuses"][0]["status"] == "OK"
        })
        .await;
    assert!(status.valid, "instance status refused: {:?}", status.error);

    session.assert_all_valid();
    engine.cleanup().await;
}

#[tokio::test]
async fn reconnects_after_the_connection_drops_and_publishes_again() {
    let docker = support::env::docker().await;
    let cluster = support::env::unique_name("ecs-tcstest-reconnect");
    let (_tx, snapshots) = watch::channel::<Snapshot>(Arc::new(Vec::new()));
    let session = Session::start(&cluster, &docker, snapshots).await;
    session
        .sim
        .set_heartbeat(WsKind::Tcs, Some(Duration::from_millis(300)));

    session
        .frame("a publish on the first connection", |f| f.connection == 1)
        .await;
    let status = session
        .frame("the instance status on the first connection", |f| {
            f.connection == 1 && is(f, "PublishInstanceStatusRequest")
        })
        .await;
    assert!(status.valid, "{:?}", status.error);

    session.sim.tcs_disconnect();
    assert!(
        session.sim.wait_connected(WsKind::Tcs, 2, WAIT).await,
        "no second TCS connection; upgrades: {:#?}",
        session.sim.upgrades()
    );
    let again = session
        .frame("an idle publish on the second connection", |f| {
            f.connection == 2
                && is(f, "PublishMetricsRequest")
                && f.message()["metadata"]["idle"] == true
        })
        .await;
    assert!(again.valid, "{:?}", again.error);
    session
        .frame("publishing goes on", |f| {
            f.connection == 2 && is(f, "PublishInstanceStatusRequest")
        })
        .await;

    let upgrades = session.sim.upgrades();
    assert!(upgrades.iter().all(|u| u.accepted), "{upgrades:#?}");
    let query = &upgrades[0].query;
    let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "agentHash",
            "agentVersion",
            "cluster",
            "containerInstance",
            "dockerVersion"
        ]
    );
    session.assert_all_valid();
}
