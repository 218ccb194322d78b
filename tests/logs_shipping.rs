//! CloudWatch Logs shipping end to end: the agent binary runs awslogs tasks from the
//! control-plane simulator on the real dockerd and ships their logs to moto's CloudWatch Logs
//! (`awslogs-endpoint` on 127.0.0.1). Every line of a container arrives once and in order, also
//! across a SIGKILL of the agent and an outage of the endpoint; multiline and datetime
//! grouping; ECS stream naming and group creation; an oversize line split, not dropped; an
//! unreachable endpoint never slows the container.
//!
//! The agent only ever talks to 127.0.0.1: IMDS is the stub, ECS the simulator, CloudWatch moto
//! (directly or through a proxy this test switches off and on).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::agent::{payload, Agent};
use support::cwl_sink::{CwlSink, Refusal};
use support::ecs_sim::{EcsSim, WsKind};
use support::imds::{ImdsConfig, ImdsStub};

const WAIT: Duration = Duration::from_secs(90);

/// The simulator, the IMDS stub and a data directory kept across agent restarts.
struct Stand {
    sim: EcsSim,
    imds: ImdsStub,
    dir: tempfile::TempDir,
    cluster: String,
    group: String,
}

impl Stand {
    async fn new(prefix: &str) -> Stand {
        let cluster = support::env::unique_name(prefix);
        let sim = EcsSim::for_cluster(&cluster).await;
        Stand {
            sim,
            imds: ImdsStub::start(ImdsConfig::default()).await,
            dir: tempfile::tempdir().unwrap(),
            group: format!("/ecs/{cluster}"),
            cluster,
        }
    }

    async fn agent(&self, env: &[(&str, &str)]) -> Agent {
        let before = self.sim.acs_connections();
        let mut agent = Agent::start_in(&self.sim, &self.imds, env, self.dir.path());
        agent.remove_containers = true;
        assert!(
            self.sim.wait_connected(WsKind::Acs, before + 1, WAIT).await,
            "log:\n{}",
            agent.log()
        );
        agent
    }

    /// A one-container task running `script` with awslogs `options` (group, region, endpoint
    /// and create-group filled in unless given).
    fn task(&self, n: u32, script: &str, options: Value) -> Value {
        let mut opts = json!({
            "awslogs-group": self.group, "awslogs-region": "us-west-2",
            "awslogs-endpoint": support::env::moto_url(), "awslogs-create-group": "true",
        });
        for (k, v) in options.as_object().unwrap() {
            opts[k] = v.clone();
        }
        let host_config = json!({"LogConfig": {"Type": "awslogs", "Config": opts}}).to_string();
        json!({
            "arn": format!("arn:aws:ecs:us-west-2:123456789012:task/{}/logs{n}", self.cluster),
            "family": "logs", "version": "1", "desiredStatus": "RUNNING", "launchType": "EC2",
            "networkMode": "bridge",
            "containers": [{"name": "app", "image": support::env::image(), "essential": true,
                "cpu": 10, "memory": 32, "command": ["sh", "-c", script],
                "dockerConfig": {"hostConfig": host_config}}]
        })
    }

    /// Waits for the task's `status` report; the Docker ID of its first container.
    async fn report_id(&self, task: &Value, status: &'static str, agent: &Agent) -> String {
        let arn = task["arn"].clone();
        let report = self
            .sim
            .wait_task_state_change(move |b| b["task"] == arn && b["status"] == status, WAIT)
            .await
            .unwrap_or_else(|| panic!("no {status} report; log:\n{}", agent.log()));
        report.body["containers"][0]["runtimeId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits for the task's RUNNING report; the container's Docker ID.
    async fn running_id(&self, task: &Value, agent: &Agent) -> String {
        self.report_id(task, "RUNNING", agent).await
    }

    fn run(&self, id: &str, task: &Value) {
        self.sim
            .acs_send(payload(&self.sim, id, 1, vec![task.clone()]))
            .unwrap();
    }
}

async fn logs_client() -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&support::aws::moto_config().await)
}

/// Every message in a stream, oldest first (empty while the stream does not exist).
async fn messages(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .limit(10_000)
            .send()
            .await;
        let Ok(page) = page else { return out };
        let events = page.events();
        if events.is_empty() {
            return out;
        }
        out.extend(events.iter().filter_map(|e| e.message().map(str::to_owned)));
        let next = page.next_forward_token().map(str::to_owned);
        if next == token {
            return out;
        }
        token = next;
    }
}

/// Waits until the stream holds `count` messages (or more), and returns them.
async fn wait_messages(group: &str, stream: &str, count: usize, agent: &Agent) -> Vec<String> {
    let client = logs_client().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let got = messages(&client, group, stream).await;
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} messages in {group}/{stream}; log:\n{}",
            got.len(),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn numbered(n: usize) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn every_line_arrives_once_in_order_across_a_sigkill_of_the_agent() {
    let stand = Stand::new("logs-kill").await;
    // The agent dies right after the third batch is acknowledged and checkpointed.
    let mut agent = stand
        .agent(&[("ECS_AGENT_FAILPOINT", "log-shipped:3")])
        .await;
    let task = stand.task(
        1,
        "seq 1 100000; sleep 3600",
        json!({"awslogs-stream-prefix": "web"}),
    );
    stand.run("logs-kill-1", &task);
    let status = tokio::task::spawn_blocking(move || {
        let status = agent.child.wait().unwrap();
        agent.remove_containers = false;
        (agent, status)
    });
    let (agent, status) = tokio::time::timeout(WAIT, status).await.unwrap().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed at its failpoint; log:\n{}",
        agent.log()
    );
    drop(agent);
    let agent = stand.agent(&[]).await;
    let stream = "web/app/logs1";
    wait_messages(&stand.group, stream, 100_000, &agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = messages(&logs_client().await, &stand.group, stream).await;
    let want = numbered(100_000);
    let first_difference = got.iter().zip(&want).position(|(a, b)| a != b);
    let around =
        first_difference.map(|i| got[i.saturating_sub(2)..(i + 3).min(got.len())].to_vec());
    assert!(
        got == want,
        "{} lines, first difference at {first_difference:?}: {around:?}",
        got.len()
    );
}

/// A loopback TCP proxy to moto that can be switched off (connections refused) and on.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(false));
        let target = support::env::moto_url()
            .trim_start_matches("http://")
            .to_owned();
        let flag = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { port, up }
    }
}

#[tokio::test]
async fn an_outage_of_cloudwatch_delays_lines_but_loses_none() {
    let stand = Stand::new("logs-outage").await;
    let proxy = Proxy::start().await;
    let agent = stand.agent(&[]).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let task = stand.task(
        2,
        "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo $i; sleep 0.01; done; sleep 3600",
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": endpoint}),
    );
    stand.run("logs-outage-1", &task);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stream = "web/app/logs2";
    assert!(
        messages(&logs_client().await, &stand.group, stream)
            .await
            .is_empty(),
        "nothing gets through while the endpoint is down"
    );
    proxy.up.store(true, Ordering::SeqCst);
    let got = wait_messages(&stand.group, stream, 300, &agent).await;
    assert_eq!(got, numbered(300));
}

#[tokio::test]
async fn an_unreachable_endpoint_never_slows_the_container() {
    let stand = Stand::new("logs-unreachable").await;
    let agent = stand.agent(&[]).await;
    let task = stand.task(
        3,
        "seq 1 200000",
        json!({"awslogs-endpoint": "http://127.0.0.1:1"}),
    );
    stand.run("logs-unreachable-1", &task);
    let arn = task["arn"].clone();
    let stopped = stand
        .sim
        .wait_task_state_change(move |b| b["task"] == arn && b["status"] == "STOPPED", WAIT)
        .await;
    assert!(
        stopped.is_some(),
        "the container wrote its 200000 lines and exited although no line can be shipped; log:\n{}",
        agent.log()
    );
    let body = stopped.unwrap().body;
    assert_eq!(body["containers"][0]["exitCode"], 0, "{body}");
}

#[tokio::test]
async fn lines_are_grouped_by_datetime_and_multiline_patterns() {
    let stand = Stand::new("logs-multiline").await;
    let agent = stand.agent(&[]).await;
    let script = "printf '2024-01-02 03:04:05 first\\n  at one\\n  at two\\n2024-01-02 03:04:06 second\\n'; sleep 3600";
    let dated = stand.task(
        4,
        script,
        json!({"awslogs-stream-prefix": "dt", "awslogs-datetime-format": "%Y-%m-%d %H:%M:%S"}),
    );
    let script = "printf 'START a\\nmore\\nSTART b\\n'; sleep 3600";
    let multi = stand.task(
        5,
        script,
        json!({"awslogs-stream-prefix": "ml", "awslogs-multiline-pattern": "^START"}),
    );
    stand.run("logs-multiline-1", &dated);
    stand.run("logs-multiline-2", &multi);
    let got = wait_messages(&stand.group, "dt/app/logs4", 2, &agent).await;
    assert_eq!(
        got,
        [
            "2024-01-02 03:04:05 first\n  at one\n  at two",
            "2024-01-02 03:04:06 second"
        ]
    );
    let got = wait_messages(&stand.group, "ml/app/logs5", 2, &agent).await;
    assert_eq!(got, ["START a\nmore", "START b"]);
}

#[tokio::test]
async fn an_oversize_line_is_split_and_a_stream_without_prefix_is_named_by_the_container_id() {
    let stand = Stand::new("logs-oversize").await;
    let agent = stand.agent(&[]).await;
    // 300,000 characters on one line: more than one CloudWatch event can hold.
    let task = stand.task(
        6,
        "head -c 300000 /dev/zero | tr '\\0' x; echo; echo after; sleep 3600",
        json!({}),
    );
    stand.run("logs-oversize-1", &task);
    let id = stand.running_id(&task, &agent).await;
    let got = wait_messages(&stand.group, &id, 3, &agent).await;
    assert_eq!(got.len(), 3, "two pieces and the next line");
    assert!(got[0].len() <= 262_118 && got[1].len() <= 262_118);
    assert_eq!(format!("{}{}", got[0], got[1]), "x".repeat(300_000));
    assert_eq!(got[2], "after");
}

#[tokio::test]
async fn cleanup_waits_until_a_stopped_containers_logs_are_shipped() {
    let stand = Stand::new("logs-drain").await;
    let proxy = Proxy::start().await;
    let agent = stand
        .agent(&[("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1s")])
        .await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let task = stand.task(
        7,
        "seq 1 1000",
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": endpoint}),
    );
    stand.run("logs-drain-1", &task);
    let id = stand.report_id(&task, "STOPPED", &agent).await;
    let docker = support::env::docker().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        docker.inspect_container(&id, None).await.is_ok(),
        "the cleanup wait is over, but the container stays while its logs are not shipped"
    );
    proxy.up.store(true, Ordering::SeqCst);
    wait_removed(&[id], "never removed", &agent).await;
    let got = messages(&logs_client().await, &stand.group, "web/app/logs7").await;
    assert_eq!(
        got,
        numbered(1000),
        "everything was shipped before the removal, once; log:\n{}",
        agent.log()
    );
}

#[tokio::test]
async fn stdout_and_stderr_written_together_arrive_once_each_and_unmixed() {
    let stand = Stand::new("logs-streams").await;
    let agent = stand.agent(&[]).await;
    // Both streams in a tight loop (Docker stamps them in separate goroutines, so the file is
    // not in timestamp order), then a 40,000-character stdout line (Docker splits it into
    // 16 KB pieces) while stderr keeps writing.
    let script = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo o$i; echo e$i >&2; done; \
        (j=0; while [ $j -lt 2000 ]; do j=$((j+1)); echo f$j >&2; done) & \
        head -c 40000 /dev/zero | tr '\\0' x; echo; wait; sleep 3600";
    let task = stand.task(8, script, json!({"awslogs-stream-prefix": "web"}));
    stand.run("logs-streams-1", &task);
    let stream = "web/app/logs8";
    wait_messages(&stand.group, stream, 42_001, &agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = messages(&logs_client().await, &stand.group, stream).await;
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for m in &got {
        *seen.entry(m.as_str()).or_default() += 1;
    }
    let expected: Vec<String> = (1..=20_000)
        .flat_map(|i| [format!("o{i}"), format!("e{i}")])
        .chain((1..=2000).map(|j| format!("f{j}")))
        .collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|m| seen.get(m.as_str()) != Some(&1))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "not exactly once: {wrong:?} ({} messages)",
        got.len()
    );
    let long = "x".repeat(40_000);
    assert_eq!(
        seen.get(long.as_str()),
        Some(&1),
        "the long line, whole and unmixed"
    );
    assert_eq!(got.len(), 42_001, "nothing else");
}

/// Waits until Docker has none of the containers `ids` any more (the agent's cleanup removed
/// them); `what` says what failed otherwise.
async fn wait_removed(ids: &[String], what: &str, agent: &Agent) {
    let docker = support::env::docker().await;
    let deadline = Instant::now() + WAIT;
    for id in ids {
        while docker.inspect_container(id, None).await.is_ok() {
            assert!(Instant::now() < deadline, "{what}; log:\n{}", agent.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Waits until `sink`'s stream holds `count` distinct numbered lines.
async fn wait_sink(sink: &CwlSink, stream: &str, count: usize, agent: &Agent) {
    let deadline = Instant::now() + WAIT;
    while sink.stream(stream).numbers.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines at the sink in {stream}; log:\n{}",
            sink.stream(stream).numbers.len(),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lines written the moment a container starts are shipped once: the agent begins following at
/// the create, when Docker has no log file yet, and must not read the start through Docker's
/// log API and then, at the drain before removal, the whole file again (it did, for about 4
/// containers in 10).
#[tokio::test]
async fn lines_written_as_a_container_starts_are_shipped_once() {
    const CONTAINERS: usize = 16;
    let stand = Stand::new("logs-atstart").await;
    let sink = CwlSink::start().await;
    let agent = stand
        .agent(&[("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1s")])
        .await;
    let mut task = stand.task(
        15,
        "seq 1 500",
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": sink.url}),
    );
    // Short-lived containers; the essential one outlives the others, then the task stops and
    // is cleaned up (each container drained, then removed).
    let first = task["containers"][0].clone();
    task["containers"] = (0..CONTAINERS)
        .map(|i| {
            let mut c = first.clone();
            c["name"] = json!(format!("app{i}"));
            c["essential"] = json!(i == 0);
            if i == 0 {
                c["command"] = json!(["sh", "-c", "seq 1 500; sleep 3"]);
            }
            c
        })
        .collect();
    stand.run("logs-atstart-1", &task);
    stand.report_id(&task, "STOPPED", &agent).await;
    let label = format!(
        "com.amazonaws.ecs.task-arn={}",
        task["arn"].as_str().unwrap()
    );
    let ids: Vec<String> = support::env::containers_labelled(&support::env::docker().await, &label)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    wait_removed(&ids, "never cleaned up", &agent).await;
    for i in 0..CONTAINERS {
        let got = sink.stream(&format!("web/app{i}/logs15"));
        assert_eq!(
            (got.events, got.repeats, got.numbers.len()),
            (500, 0, 500),
            "app{i}: each line once; log:\n{}",
            agent.log()
        );
    }
}

#[tokio::test]
async fn cleanup_removes_the_container_at_the_drain_deadline_when_cloudwatch_is_unreachable() {
    let stand = Stand::new("logs-deadline").await;
    let agent = stand
        .agent(&[
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1s"),
            ("ECS_AWSLOGS_DRAIN_TIMEOUT", "3s"),
        ])
        .await;
    let task = stand.task(
        10,
        "seq 1 1000",
        json!({"awslogs-endpoint": "http://127.0.0.1:1"}),
    );
    stand.run("logs-deadline-1", &task);
    let id = stand.report_id(&task, "STOPPED", &agent).await;
    wait_removed(
        &[id],
        "never removed although its logs cannot be shipped",
        &agent,
    )
    .await;
    let log = agent.log();
    let error = log
        .lines()
        .find(|l| l.contains("not shipped by the drain deadline"))
        .unwrap_or_else(|| panic!("no error about the lost lines; log:\n{log}"));
    assert!(error.contains("level=error"), "{error}");
    assert!(
        error.contains("lines=1000"),
        "all 1000 lines counted: {error}"
    );
}

#[tokio::test]
async fn throttling_and_unavailable_replies_are_retried_and_lose_nothing() {
    let stand = Stand::new("logs-throttle").await;
    let sink = CwlSink::start().await;
    let agent = stand.agent(&[]).await;
    let refusals = [
        Refusal::Throttling,
        Refusal::Unavailable,
        Refusal::Throttling,
        Refusal::Throttling,
        Refusal::Unavailable,
        Refusal::Unavailable,
        Refusal::Throttling,
        Refusal::Unavailable,
    ];
    sink.refuse_next(&refusals);
    let task = stand.task(
        9,
        "seq 1 3000; sleep 3600",
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": sink.url}),
    );
    stand.run("logs-throttle-1", &task);
    wait_sink(&sink, "web/app/logs9", 3000, &agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = sink.stream("web/app/logs9");
    assert_eq!(sink.refusals_left(), 0, "every refusal was met");
    assert_eq!(
        (got.events, got.repeats),
        (3000, 0),
        "each line once, after retries"
    );
    assert!(got.numbers.iter().all(|n| (1..=3000).contains(n)));
}

#[tokio::test]
async fn without_create_group_a_missing_group_is_not_created_and_the_error_says_so() {
    let stand = Stand::new("logs-nogroup").await;
    let agent = stand.agent(&[]).await;
    let task = stand.task(
        13,
        "echo hello; sleep 3600",
        json!({"awslogs-create-group": "false"}),
    );
    stand.run("logs-nogroup-1", &task);
    let deadline = Instant::now() + WAIT;
    let error = loop {
        let log = agent.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("CloudWatch refused a log batch"))
        {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no error; log:\n{log}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(error.contains("level=error"), "{error}");
    assert!(
        error.contains(&format!(
            "log group {} does not exist and awslogs-create-group is not true",
            stand.group
        )),
        "{error}"
    );
    let groups = logs_client()
        .await
        .describe_log_groups()
        .log_group_name_prefix(&stand.group)
        .send()
        .await
        .unwrap();
    assert!(groups.log_groups().is_empty(), "the group was not created");
}

#[tokio::test]
async fn the_docker_driver_setting_leaves_awslogs_to_docker() {
    let stand = Stand::new("logs-dockerdrv").await;
    let sink = CwlSink::start().await;
    let agent = stand.agent(&[("ECS_AWSLOGS_DOCKER_DRIVER", "true")]).await;
    // Docker's own driver (in dockerd, with the test environment's dummy credentials) talks
    // only to the sink on 127.0.0.1.
    let task = stand.task(
        14,
        "echo 1; echo 2; sleep 3600",
        json!({"awslogs-stream": "docker-driver", "awslogs-endpoint": sink.url}),
    );
    stand.run("logs-dockerdrv-1", &task);
    let id = stand.running_id(&task, &agent).await;
    let inspect = support::env::docker()
        .await
        .inspect_container(&id, None)
        .await
        .unwrap();
    let log_config = inspect.host_config.unwrap().log_config.unwrap();
    assert_eq!(log_config.typ.as_deref(), Some("awslogs"));
    let config = log_config.config.unwrap();
    assert_eq!(config.get("awslogs-endpoint"), Some(&sink.url));
    assert!(!config.contains_key("awslogs-credentials-endpoint"));
    wait_sink(&sink, "docker-driver", 2, &agent).await;
}

#[tokio::test]
async fn each_container_signs_with_the_execution_role_or_its_credentials_endpoint() {
    let stand = Stand::new("logs-creds").await;
    let sink = CwlSink::start().await;
    let agent = stand.agent(&[]).await;
    let creds = |id: &str, key: &str| {
        json!({"credentialsId": id, "roleArn": "arn:aws:iam::123456789012:role/logs",
            "accessKeyId": key, "secretAccessKey": "SECRET", "sessionToken": "TOKEN",
            "expiration": "2099-01-01T00:00:00Z"})
    };
    let (id_a, id_b) = (
        format!("{}-exec-a", stand.cluster),
        format!("{}-exec-b", stand.cluster),
    );
    let script = "seq 1 10; sleep 3600";
    let mut by_role = stand.task(
        11,
        script,
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": sink.url}),
    );
    by_role["executionRoleCredentials"] = creds(&id_a, "AKIDEXECUTIONROLE");
    by_role["containers"][0]["logsAuthStrategy"] = json!("ExecutionRole");
    let mut by_endpoint = stand.task(
        12,
        script,
        json!({"awslogs-stream-prefix": "web", "awslogs-endpoint": sink.url,
            "awslogs-credentials-endpoint": format!("/v2/credentials/{id_b}")}),
    );
    by_endpoint["executionRoleCredentials"] = creds(&id_b, "AKIDCREDSENDPOINT");
    stand.run("logs-creds-1", &by_role);
    stand.run("logs-creds-2", &by_endpoint);
    wait_sink(&sink, "web/app/logs11", 10, &agent).await;
    wait_sink(&sink, "web/app/logs12", 10, &agent).await;
    let keys = |stream: &str| {
        sink.stream(stream)
            .access_keys
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("web/app/logs11"), ["AKIDEXECUTIONROLE"]);
    assert_eq!(keys("web/app/logs12"), ["AKIDCREDSENDPOINT"]);
    assert!(!agent.log().contains("SECRET"), "credentials never logged");
}
