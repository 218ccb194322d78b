//! `ecs-agent run` end to end: the project's control-plane simulator, the IMDSv2 stub, the real
//! dockerd and the agent binary. Registration as the capture shows it, the ACS URL, heartbeats,
//! a task run and stopped with its reports, credentials acked, the task-manifest orphan stop, a
//! dropped connection, malformed frames and a control-plane outage; a private image pulled from
//! the loopback registry with an ECR token fetched (from moto) with the execution role the
//! payload delivered, and a wrong token stopping the task with the registry's reason.
//!
//! The agent only ever talks to 127.0.0.1: IMDS is the stub, ECS is the simulator.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::agent::{payload, Agent};
use support::ecs_sim::{EcsSim, SimConfig, WsKind};
use support::imds::{ImdsConfig, ImdsStub};

const WAIT: Duration = Duration::from_secs(40);

async fn setup() -> (EcsSim, ImdsStub, Agent) {
    setup_with(&[]).await
}

async fn setup_with(extra_env: &[(&str, &str)]) -> (EcsSim, ImdsStub, Agent) {
    let cluster = support::env::unique_name("cptest");
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![cluster],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let agent = Agent::start_with(&sim, &imds, extra_env);
    assert!(
        sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "the agent did not connect to ACS; its log:\n{}",
        agent.log()
    );
    (sim, imds, agent)
}

fn task_json(agent: &Agent, family: &str, desired: &str) -> Value {
    let id = support::env::unique_name("task").replace(|c: char| !c.is_ascii_alphanumeric(), "");
    json!({
        "arn": format!("arn:aws:ecs:us-west-2:123456789012:task/{}/{id}", agent.cluster),
        "family": family, "version": "1", "desiredStatus": desired, "launchType": "EC2", "networkMode": "bridge",
        "containers": [{
            "name": "app", "image": support::env::image(), "essential": true, "cpu": 10, "memory": 32,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"],
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "environment": {"FOO": "bar"}, "overrides": "{}"
        }]
    })
}

fn with_desired(mut task: Value, desired: &str) -> Value {
    task["desiredStatus"] = json!(desired);
    task
}

/// The first frame of this type the agent sent to ACS, which the simulator found valid.
async fn acs_frame(sim: &EcsSim, agent: &Agent, kind: &str) -> support::ecs_sim::AgentFrame {
    let frame = sim
        .wait_acs_frame(|f| f.msg_type.as_deref() == Some(kind), WAIT)
        .await
        .unwrap_or_else(|| panic!("no {kind}; log:\n{}", agent.log()));
    assert!(frame.valid, "{kind}: {:?}", frame.error);
    frame
}

async fn wait_report(sim: &EcsSim, task_arn: &str, status: &str) -> Value {
    let arn = task_arn.to_owned();
    let status_s = status.to_owned();
    let found = sim
        .wait_task_state_change(
            move |b| b["task"] == json!(arn) && b["status"] == json!(status_s),
            WAIT,
        )
        .await;
    found
        .unwrap_or_else(|| {
            panic!(
                "no {status} report for {task_arn}; reports: {:#?}",
                sim.task_state_changes()
            )
        })
        .body
}

#[tokio::test]
async fn registration_matches_the_captured_request() {
    let (sim, imds, agent) = setup().await;
    let reg = &sim.registrations()[0].body;
    assert_eq!(reg["cluster"], json!(agent.cluster));
    let doc = reg["instanceIdentityDocument"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(doc).unwrap();
    assert_eq!(
        parsed["instanceId"],
        json!(imds.config().instance_id),
        "the raw document is passed through"
    );
    assert_eq!(
        reg["instanceIdentityDocumentSignature"],
        json!(imds.config().signature)
    );
    let token = reg["clientToken"].as_str().expect("clientToken");
    assert!(uuid::Uuid::parse_str(token).is_ok(), "{token}");
    let resources = reg["totalResources"].as_array().unwrap();
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CPU", "MEMORY", "PORTS", "PORTS_UDP"]);
    assert_eq!(resources[0]["type"], "INTEGER");
    let cores = std::thread::available_parallelism().unwrap().get() as i64;
    assert_eq!(resources[0]["integerValue"], json!(cores * 1024));
    assert_eq!(
        resources[2]["stringSetValue"],
        json!(["22", "2375", "2376", "51678", "51679"])
    );
    let attrs: Vec<(&str, Option<&str>)> = reg["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["value"].as_str()))
        .collect();
    for expected in [
        ("ecs.os-type", Some("linux")),
        ("ecs.os-family", Some("LINUX")),
        ("ecs.capability.container-ordering", None),
        ("com.amazonaws.ecs.capability.docker-remote-api.1.32", None),
        (
            "com.amazonaws.ecs.capability.logging-driver.json-file",
            None,
        ),
    ] {
        assert!(
            attrs.contains(&expected),
            "{expected:?} missing from {attrs:?}"
        );
    }
    assert!(
        reg.get("containerInstanceArn").is_none(),
        "first registration carries no ARN"
    );
    assert!(
        reg.get("versionInfo").is_none(),
        "the official agent sends no versionInfo"
    );
    assert!(imds.count("/latest/api/token") >= 1, "IMDSv2 token used");
}

#[tokio::test]
async fn the_acs_url_carries_the_official_parameters() {
    let (sim, _imds, _agent) = setup().await;
    let upgrade = sim
        .upgrades()
        .into_iter()
        .find(|u| u.kind == WsKind::Acs && u.accepted)
        .unwrap();
    let q: std::collections::BTreeMap<String, String> = upgrade.query.iter().cloned().collect();
    assert_eq!(q["clusterArn"], sim.config().cluster_names[0]);
    assert_eq!(
        q["containerInstanceArn"],
        sim.container_instance_arn().unwrap()
    );
    assert_eq!(q["seqNum"], "1");
    assert_eq!(q["protocolVersion"], "2");
    assert_eq!(q["sendCredentials"], "true", "first connection after start");
    assert_eq!(q["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert!(
        q["dockerVersion"].starts_with("DockerVersion: "),
        "{:?}",
        q["dockerVersion"]
    );
    let keys: Vec<&String> = upgrade.query.iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "query keys come out sorted, as Go's url.Values"
    );
}

#[tokio::test]
async fn heartbeats_are_acked_and_malformed_frames_do_not_end_the_session() {
    let (sim, _imds, agent) = setup().await;
    for garbage in [
        json!("not an envelope"),
        json!({"type": "PayloadMessage", "message": {"tasks": 7}}),
        json!({"type": "NoSuchMessage", "message": {}}),
    ] {
        let _ = sim.acs_send(garbage);
    }
    sim.acs_send(
        json!({"type": "HeartbeatMessage", "message": {"healthy": true, "messageId": "hb-1"}}),
    )
    .unwrap();
    let ack = acs_frame(&sim, &agent, "HeartbeatAckRequest").await;
    assert_eq!(
        ack.raw,
        r#"{"type":"HeartbeatAckRequest","message":{"messageId":"hb-1"}}"#
    );
    assert_eq!(
        sim.acs_connections(),
        1,
        "the garbage did not cost the connection"
    );
}

#[tokio::test]
async fn a_payload_runs_the_task_and_reports_running_then_stopped() {
    let (sim, _imds, agent) = setup().await;
    let task = task_json(&agent, "cprun", "RUNNING");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "payload-1", 1, vec![task.clone()]))
        .unwrap();
    let ack = sim
        .wait_acs_frame(
            |f| f.msg_type.as_deref() == Some("AckRequest") && f.message_id() == Some("payload-1"),
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no ack; log:\n{}", agent.log()));
    assert!(ack.valid, "{:?}", ack.error);
    let running = wait_report(&sim, &arn, "RUNNING").await;
    let c = &running["containers"][0];
    assert_eq!(c["containerName"], "app");
    assert_eq!(c["status"], "RUNNING");
    let runtime_id = c["runtimeId"].as_str().unwrap().to_owned();
    let binding = &c["networkBindings"][0];
    assert_eq!(binding["containerPort"], 8080);
    assert!(binding["hostPort"].as_i64().unwrap() > 0);
    let docker = support::env::docker().await;
    let inspect = docker.inspect_container(&runtime_id, None).await.unwrap();
    assert_eq!(inspect.state.unwrap().running, Some(true));
    sim.acs_send(payload(
        &sim,
        "payload-2",
        2,
        vec![with_desired(task, "STOPPED")],
    ))
    .unwrap();
    let stopped = wait_report(&sim, &arn, "STOPPED").await;
    assert_eq!(stopped["containers"][0]["exitCode"], 0, "{stopped}");
    assert!(stopped.get("executionStoppedAt").is_some());
    let order: Vec<String> = sim
        .task_state_changes()
        .iter()
        .filter(|r| r.body["task"] == json!(arn))
        .map(|r| r.body["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["RUNNING", "STOPPED"], "each state once, in order");
}

#[tokio::test]
async fn role_credentials_are_acked() {
    let (sim, _imds, agent) = setup().await;
    let task = task_json(&agent, "cpcreds", "RUNNING");
    sim.acs_send(json!({"type": "IAMRoleCredentialsMessage", "message": {
        "messageId": "creds-1", "taskArn": task["arn"], "roleType": "TaskApplication",
        "roleCredentials": {"credentialsId": "cid-1", "roleArn": "arn:aws:iam::123456789012:role/app",
            "accessKeyId": "ASIATEST", "secretAccessKey": "SECRET", "sessionToken": "TOKEN", "expiration": "2026-11-26T20:00:00Z"}
    }}))
    .unwrap();
    let ack = acs_frame(&sim, &agent, "IAMRoleCredentialsAckRequest").await;
    assert_eq!(ack.message()["credentialsId"], "cid-1");
    assert_eq!(ack.message()["expiration"], "2026-11-26T20:00:00Z");
    assert!(!agent.log().contains("SECRET"), "credentials never logged");
}

#[tokio::test]
async fn a_task_missing_from_the_manifest_is_verified_then_stopped() {
    let (sim, _imds, agent) = setup().await;
    let task = task_json(&agent, "cporphan", "RUNNING");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-1", 1, vec![task])).unwrap();
    wait_report(&sim, &arn, "RUNNING").await;
    sim.acs_send(json!({"type": "TaskManifestMessage", "message": {
        "clusterArn": format!("arn:aws:ecs:us-west-2:123456789012:cluster/{}", agent.cluster),
        "containerInstanceArn": sim.container_instance_arn().unwrap(),
        "messageId": "manifest-1", "generatedAt": 1795695400, "timeline": 5, "tasks": []
    }}))
    .unwrap();
    let verification = acs_frame(&sim, &agent, "TaskStopVerificationMessage").await;
    assert_eq!(verification.message()["messageId"], "manifest-1");
    assert_eq!(
        verification.message()["stopCandidates"][0]["taskArn"],
        json!(arn)
    );
    sim.acs_send(json!({"type": "TaskStopVerificationAck", "message": {
        "messageId": "manifest-1", "generatedAt": 1795695401, "stopTasks": [{"taskArn": arn, "desiredStatus": "STOPPED"}]
    }}))
    .unwrap();
    wait_report(&sim, &arn, "STOPPED").await;
}

#[tokio::test]
async fn a_dropped_connection_is_restored_without_losing_a_report() {
    let (sim, _imds, agent) = setup().await;
    let task = task_json(&agent, "cpdrop", "RUNNING");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-1", 1, vec![task.clone()]))
        .unwrap();
    wait_report(&sim, &arn, "RUNNING").await;
    sim.acs_disconnect();
    assert!(
        sim.wait_connected(WsKind::Acs, 2, WAIT).await,
        "no reconnect; log:\n{}",
        agent.log()
    );
    let second = sim
        .upgrades()
        .into_iter()
        .filter(|u| u.kind == WsKind::Acs && u.accepted)
        .nth(1)
        .unwrap();
    assert_eq!(
        second.send_credentials,
        Some(false),
        "only the first connection asks for credentials"
    );
    sim.acs_send(payload(&sim, "p-2", 2, vec![with_desired(task, "STOPPED")]))
        .unwrap();
    wait_report(&sim, &arn, "STOPPED").await;
}

/// The whole control plane (API and ACS) is down for over a minute while a task starts and
/// stops: every report arrives afterwards, once, in order, and ACS is reconnected.
#[tokio::test]
async fn reports_made_during_a_long_outage_are_delivered_in_order_afterwards() {
    let (sim, _imds, agent) = setup().await;
    let task = task_json(&agent, "cpoutage", "RUNNING");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.set_api_outage(true);
    let began = SystemTime::now();
    sim.acs_send(payload(&sim, "p-1", 1, vec![task.clone()]))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.acs_send(payload(&sim, "p-2", 2, vec![with_desired(task, "STOPPED")]))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    sim.acs_disconnect();
    tokio::time::sleep(Duration::from_secs(62)).await;
    let refused = sim
        .api_calls()
        .iter()
        .filter(|c| c.operation == "SubmitTaskStateChange" && c.status == 503)
        .count();
    assert!(
        refused >= 2,
        "the agent kept trying during the outage ({refused} tries)"
    );
    assert!(sim
        .task_state_changes()
        .iter()
        .all(|r| r.body["task"] != json!(arn)));
    sim.set_api_outage(false);
    wait_report(&sim, &arn, "STOPPED").await;
    let order: Vec<String> = sim
        .task_state_changes()
        .iter()
        .filter(|r| r.body["task"] == json!(arn))
        .map(|r| r.body["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        ["RUNNING", "STOPPED"],
        "nothing lost, nothing twice, in order"
    );
    assert!(
        sim.wait_connected(WsKind::Acs, 2, WAIT).await,
        "ACS reconnected after the outage"
    );
    assert!(began.elapsed().unwrap() >= Duration::from_secs(60));
}

#[tokio::test]
async fn a_spot_interruption_notice_drains_the_instance() {
    let (sim, imds, agent) = setup_with(&[("ECS_ENABLE_SPOT_INSTANCE_DRAINING", "true")]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !sim.api_calls()
            .iter()
            .any(|c| c.operation == "UpdateContainerInstancesState"),
        "no notice, no draining"
    );
    imds.set_spot_action(Some(
        r#"{"action": "terminate", "time": "2026-11-26T16:00:00Z"}"#,
    ));
    let call = sim
        .wait_api_call(|c| c.operation == "UpdateContainerInstancesState", WAIT)
        .await
        .unwrap_or_else(|| panic!("no draining; log:\n{}", agent.log()));
    assert_eq!(call.status, 200, "{:?}", call.error_message);
    assert_eq!(call.body["status"], "DRAINING");
    assert_eq!(
        call.body["containerInstances"][0],
        json!(sim.container_instance_arn().unwrap())
    );
}

#[tokio::test]
async fn a_task_role_reaches_the_containers_as_the_credentials_uri() {
    let (sim, _imds, agent) = setup().await;
    let mut task = task_json(&agent, "cprole", "RUNNING");
    task["roleCredentials"] = json!({"credentialsId": "cid-role-1", "roleArn": "arn:aws:iam::123456789012:role/app",
        "accessKeyId": "ASIATEST", "secretAccessKey": "SECRET", "sessionToken": "TOKEN", "expiration": "2026-11-26T20:00:00Z"});
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-role", 1, vec![task]))
        .unwrap();
    let ack = sim
        .wait_acs_frame(
            |f| f.msg_type.as_deref() == Some("IAMRoleCredentialsAckRequest"),
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no credentials ack; log:\n{}", agent.log()));
    assert_eq!(
        ack.message()["messageId"],
        "p-role",
        "acked with the payload's message id"
    );
    let running = wait_report(&sim, &arn, "RUNNING").await;
    let id = running["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = support::env::docker()
        .await
        .inspect_container(&id, None)
        .await
        .unwrap()
        .config
        .unwrap()
        .env
        .unwrap();
    assert!(
        env.contains(
            &"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/cid-role-1".to_owned()
        ),
        "{env:?}"
    );
    assert!(env.contains(&"FOO=bar".to_owned()));
}

#[tokio::test]
async fn telemetry_connects_and_publishes_signed_frames() {
    let (sim, _imds, agent) = setup().await;
    assert!(
        sim.wait_connected(WsKind::Tcs, 1, WAIT).await,
        "no TCS connection; log:\n{}",
        agent.log()
    );
    let upgrade = sim
        .upgrades()
        .into_iter()
        .find(|u| u.kind == WsKind::Tcs && u.accepted)
        .unwrap();
    let q: std::collections::BTreeMap<String, String> = upgrade.query.iter().cloned().collect();
    assert_eq!(q["cluster"], agent.cluster);
    assert!(
        !q["dockerVersion"].starts_with("DockerVersion"),
        "TCS gets the bare version"
    );
    let frame = sim
        .wait_tcs_frame(
            |f| f.msg_type.as_deref() == Some("PublishMetricsRequest"),
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no metrics frame; log:\n{}", agent.log()));
    assert!(frame.valid, "{:?}", frame.error);
    assert_eq!(frame.message()["metadata"]["idle"], true);
    assert_eq!(frame.message()["metadata"]["fin"], true);
}

#[tokio::test]
async fn sigterm_stops_the_agent_cleanly_and_leaves_the_tasks_running() {
    let (sim, _imds, mut agent) = setup().await;
    let task = task_json(&agent, "cpsigterm", "RUNNING");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-1", 1, vec![task])).unwrap();
    let running = wait_report(&sim, &arn, "RUNNING").await;
    let id = running["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = nix::unistd::Pid::from_raw(agent.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = agent.child.wait();
        (agent, status)
    })
    .await
    .unwrap();
    let (agent, status) = status;
    assert_eq!(status.unwrap().code(), Some(0), "log:\n{}", agent.log());
    let state = support::env::docker()
        .await
        .inspect_container(&id, None)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!(
        state.running,
        Some(true),
        "the task container outlives the agent"
    );
    assert!(
        !sim.api_calls()
            .iter()
            .any(|c| c.operation == "DeregisterContainerInstance"),
        "no deregistration"
    );
}

/// A deregistered instance: ACS refuses with InactiveInstanceException and the agent waits an hour
/// before trying again, instead of hammering the service.
#[tokio::test]
async fn an_inactive_instance_is_retried_hourly_not_hammered() {
    let (sim, _imds, agent) = setup().await;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let c = sim.config();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .credentials_provider(aws_credential_types::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            None,
            None,
            "test",
        ))
        .region(aws_config::Region::new(c.region.clone()))
        .endpoint_url(sim.endpoint())
        .load()
        .await;
    aws_sdk_ecs::Client::new(&sdk)
        .deregister_container_instance()
        .cluster(&agent.cluster)
        .container_instance(sim.container_instance_arn().unwrap())
        .force(true)
        .send()
        .await
        .expect("deregistered");
    sim.acs_disconnect();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused: Vec<_> = sim
        .upgrades()
        .into_iter()
        .filter(|u| u.kind == WsKind::Acs && !u.accepted)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one try, then an hour's wait: {refused:#?}\nlog:\n{}",
        agent.log()
    );
    assert!(refused[0]
        .refusal
        .as_deref()
        .unwrap_or("")
        .contains("InactiveInstanceException"));
}

#[tokio::test]
async fn the_default_cluster_is_created_when_it_is_missing() {
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let agent = Agent::start_with(&sim, &imds, &[]);
    assert!(
        sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "log:\n{}",
        agent.log()
    );
    let ops: Vec<String> = sim
        .api_calls()
        .iter()
        .map(|c| format!("{} {}", c.operation, c.status))
        .collect();
    let created = ops
        .iter()
        .position(|o| o == "CreateCluster 200")
        .expect("CreateCluster");
    let registered = ops
        .iter()
        .position(|o| o == "RegisterContainerInstance 200")
        .unwrap();
    assert!(
        ops[..created]
            .iter()
            .any(|o| o.starts_with("RegisterContainerInstance 4")),
        "{ops:?}"
    );
    assert!(created < registered, "{ops:?}");
}

#[tokio::test]
async fn external_mode_reads_no_instance_metadata() {
    let (sim, imds, _agent) = setup_with(&[("ECS_EXTERNAL", "true")]).await;
    assert!(
        imds.requests().is_empty(),
        "no IMDS request at all: {:?}",
        imds.requests()
    );
    let reg = &sim.registrations()[0].body;
    assert_eq!(reg["instanceIdentityDocument"], "");
    let names: Vec<&str> = reg["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ecs.capability.external"), "{names:?}");
    assert!(names.contains(&"ecs.cpu-architecture"), "{names:?}");
}

#[tokio::test]
async fn a_restarted_agent_registers_again_as_the_same_instance() {
    let cluster = support::env::unique_name("cprestart");
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![cluster],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let attrs = [("ECS_INSTANCE_ATTRIBUTES", r#"{"team":"web"}"#)];
    let first = Agent::start_in(&sim, &imds, &attrs, dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "log:\n{}",
        first.log()
    );
    let arn = sim.container_instance_arn().unwrap();
    drop(first); // SIGTERM
    let second = Agent::start_in(&sim, &imds, &attrs, dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 2, WAIT).await,
        "log:\n{}",
        second.log()
    );
    let regs = sim.registrations();
    assert_eq!(regs.len(), 2);
    assert!(regs[0].body.get("containerInstanceArn").is_none());
    assert_eq!(
        regs[1].body["containerInstanceArn"],
        json!(arn),
        "restored from the saved state"
    );
    assert_eq!(
        sim.container_instance_arn().unwrap(),
        arn,
        "the same container instance"
    );
    let has_custom = |b: &Value| {
        b["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "team")
    };
    assert!(
        has_custom(&regs[0].body) && !has_custom(&regs[1].body),
        "custom attributes only on the first registration"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("data/ecs-agent-data.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn saved_state_of_another_cluster_stops_the_agent_with_exit_5() {
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec!["moved".into()],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = json!({"version": 1, "cluster": "elsewhere", "container_instance_arn": "arn:aws:ecs:us-west-2:123456789012:container-instance/elsewhere/abc",
        "ec2_instance_id": imds.config().instance_id, "availability_zone": null});
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/ecs-agent-metadata.json"),
        saved.to_string(),
    )
    .unwrap();
    let agent = Agent::start_in(&sim, &imds, &[], dir.path());
    // Wait off the runtime: the IMDS stub and the simulator run on it.
    let (agent, status) = tokio::task::spawn_blocking(move || {
        let mut agent = agent;
        let status = agent.child.wait().unwrap();
        (agent, status)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(5), "log:\n{}", agent.log());
    assert!(agent.log().contains("elsewhere"), "{}", agent.log());
    assert!(sim.registrations().is_empty());
}

/// The agent binary in `dir`'s data directory until it exits on its own; its exit status.
async fn run_to_exit(agent: Agent) -> (Agent, std::process::ExitStatus) {
    // Wait off the runtime: the IMDS stub and the simulator run on it.
    tokio::task::spawn_blocking(move || {
        let mut agent = agent;
        let status = agent.child.wait().unwrap();
        (agent, status)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn saved_state_of_a_newer_schema_stops_the_agent_with_exit_5_and_is_kept() {
    let cluster = support::env::unique_name("cpnewer");
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![cluster.clone()],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = json!({"version": 99, "metadata": {"cluster": cluster,
        "container_instance_arn": "arn:aws:ecs:us-west-2:123456789012:container-instance/x/abc",
        "ec2_instance_id": imds.config().instance_id}, "tasks": [], "from_the_future": true});
    let path = dir.path().join("data/ecs-agent-data.json");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(&path, saved.to_string()).unwrap();
    let (agent, status) = run_to_exit(Agent::start_in(&sim, &imds, &[], dir.path())).await;
    assert_eq!(status.code(), Some(5), "log:\n{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("version 99") && log.contains("the 2 this agent reads"),
        "names both versions:\n{log}"
    );
    assert!(sim.registrations().is_empty(), "no new instance registered");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        saved.to_string(),
        "the file is kept as it was"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ecs-agent-data.json"], "nothing set aside");
}

#[tokio::test]
async fn saved_state_of_another_ec2_instance_means_a_new_registration_without_its_tasks() {
    let cluster = support::env::unique_name("cpmoved");
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![cluster.clone()],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = Agent::start_in(&sim, &imds, &[], dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "log:\n{}",
        first.log()
    );
    let old_arn = sim.container_instance_arn().unwrap();
    let task = task_json(&first, "cpmoved", "RUNNING");
    let task_arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-1", 1, vec![task])).unwrap();
    wait_report(&sim, &task_arn, "RUNNING").await;
    first.remove_containers = false;
    drop(first); // SIGTERM: the task keeps running
    let reports_before = sim.task_state_changes().len();

    // The data directory now sits on another EC2 instance (a volume moved, an AMI baked with it).
    let other = ImdsStub::start(ImdsConfig {
        instance_id: "i-0fedcba9876543210".into(),
        ..ImdsConfig::default()
    })
    .await;
    let second = Agent::start_in(&sim, &other, &[], dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 2, WAIT).await,
        "log:\n{}",
        second.log()
    );
    let regs = sim.registrations();
    assert_eq!(regs.len(), 2);
    assert!(
        regs[1].body.get("containerInstanceArn").is_none(),
        "a fresh registration: {}",
        regs[1].body
    );
    assert_ne!(sim.container_instance_arn().unwrap(), old_arn);
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("data/ecs-agent-data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["metadata"]["ec2_instance_id"], "i-0fedcba9876543210");
    assert_eq!(state["tasks"], json!([]), "the saved tasks are dropped");
    // The old task's container is one this state does not know.
    let mut logged = false;
    for _ in 0..100 {
        logged = second.log().contains("unknown to the agent state");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "log:\n{}", second.log());
    assert_eq!(
        sim.task_state_changes().len(),
        reports_before,
        "nothing reported for the other instance's task"
    );
    drop(second);
    support::agent::remove_containers(&cluster).await;
}

#[tokio::test]
async fn a_restart_keeps_the_acs_sequence_number_and_drops_an_older_manifest() {
    let cluster = support::env::unique_name("cpseq");
    let sim = EcsSim::start(SimConfig {
        cluster_names: vec![cluster.clone()],
        ..SimConfig::default()
    })
    .await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = |id: &str, timeline: i64| {
        json!({"type": "TaskManifestMessage", "message": {
            "clusterArn": format!("arn:aws:ecs:us-west-2:123456789012:cluster/{cluster}"),
            "containerInstanceArn": sim.container_instance_arn().unwrap(),
            "messageId": id, "generatedAt": 1795695400, "timeline": timeline, "tasks": []
        }})
    };
    let acked = |id: &str| {
        sim.acs_frames()
            .iter()
            .any(|f| f.msg_type.as_deref() == Some("AckRequest") && f.message_id() == Some(id))
    };
    let first = Agent::start_in(&sim, &imds, &[], dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "log:\n{}",
        first.log()
    );
    sim.acs_send(manifest("manifest-5", 5)).unwrap();
    sim.wait_acs_frame(
        |f| f.msg_type.as_deref() == Some("AckRequest") && f.message_id() == Some("manifest-5"),
        WAIT,
    )
    .await
    .unwrap_or_else(|| panic!("manifest-5 not acked; log:\n{}", first.log()));
    drop(first);

    let second = Agent::start_in(&sim, &imds, &[], dir.path());
    assert!(
        sim.wait_connected(WsKind::Acs, 2, WAIT).await,
        "log:\n{}",
        second.log()
    );
    // Handled in order on one connection: once the newer one is acked, the older one was seen.
    sim.acs_send(manifest("manifest-3", 3)).unwrap();
    sim.acs_send(manifest("manifest-6", 6)).unwrap();
    sim.wait_acs_frame(
        |f| f.msg_type.as_deref() == Some("AckRequest") && f.message_id() == Some("manifest-6"),
        WAIT,
    )
    .await
    .unwrap_or_else(|| panic!("manifest-6 not acked; log:\n{}", second.log()));
    assert!(
        !acked("manifest-3"),
        "an older timeline than before the restart is stale; log:\n{}",
        second.log()
    );
    assert!(second.log().contains("stale task manifest dropped"));
}

/// A loopback proxy to moto that keeps the head of every request it forwards, to see which
/// credentials signed them.
struct RecordingProxy {
    endpoint: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    async fn start() -> RecordingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = support::env::moto_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstream, kept) = (upstream.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    if server.write_all(&head).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        RecordingProxy { endpoint, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// A task whose image is on the loopback registry, pulled with `registryAuthentication` type
/// ecr for `registry_id` through `endpoint`, with the execution role it carries.
fn ecr_task(agent: &Agent, registry_id: &str, endpoint: &str, exec_key: &str) -> Value {
    let mut task = task_json(agent, "cpecr", "RUNNING");
    let app = &mut task["containers"][0];
    app["image"] = json!(format!("{}/busybox:latest", support::env::registry()));
    app["portMappings"] = json!([]);
    app["registryAuthentication"] = json!({"type": "ecr", "ecrAuthData": {
        "registryId": registry_id, "region": "us-west-2", "endpointOverride": endpoint,
        "useExecutionRole": true}});
    task["executionRoleCredentials"] = json!({"credentialsId": support::env::unique_name("exec"),
        "roleArn": "arn:aws:iam::123456789012:role/exec", "accessKeyId": exec_key,
        "secretAccessKey": "EXECSECRET", "sessionToken": "EXECTOKEN",
        "expiration": "2030-01-01T00:00:00Z"});
    task
}

/// The image is pulled on every start (`always`), so the registry sees the ECR token each time.
const ALWAYS_PULL: &[(&str, &str)] = &[("ECS_IMAGE_PULL_BEHAVIOR", "always")];

#[tokio::test]
async fn a_private_image_is_pulled_with_an_ecr_token_fetched_with_the_execution_role() {
    let (sim, _imds, agent) = setup_with(ALWAYS_PULL).await;
    let ecr = RecordingProxy::start().await;
    // moto's token for registry 123456789012 is the loopback registry's password.
    let task = ecr_task(&agent, "123456789012", &ecr.endpoint, "ASIAEXECROLEGOOD");
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-ecr", 1, vec![task])).unwrap();
    let running = wait_report(&sim, &arn, "RUNNING").await;
    assert!(
        running["containers"][0]["runtimeId"].is_string(),
        "{running:#}"
    );
    let heads = ecr.heads();
    let token_call = heads
        .iter()
        .find(|h| h.contains("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"))
        .unwrap_or_else(|| panic!("no GetAuthorizationToken through the override: {heads:#?}"));
    assert!(
        token_call.contains("Credential=ASIAEXECROLEGOOD/"),
        "signed with the execution role from the payload: {token_call}"
    );
    assert!(
        token_call.contains("x-amz-security-token: EXECTOKEN")
            || token_call.contains("X-Amz-Security-Token: EXECTOKEN"),
        "with its session token: {token_call}"
    );
    let log = agent.log();
    assert!(
        !log.contains("123456789012-auth-token") && !log.contains("EXECSECRET"),
        "no token or secret in the agent's log"
    );
}

#[tokio::test]
async fn a_wrong_ecr_token_stops_the_task_with_the_registrys_reason() {
    let (sim, _imds, agent) = setup_with(ALWAYS_PULL).await;
    // moto's token for another registry ID is not the loopback registry's password.
    let task = ecr_task(
        &agent,
        "999999999999",
        &support::env::moto_url(),
        "ASIAEXECROLEBAD",
    );
    let arn = task["arn"].as_str().unwrap().to_owned();
    sim.acs_send(payload(&sim, "p-ecr-bad", 1, vec![task]))
        .unwrap();
    let stopped = wait_report(&sim, &arn, "STOPPED").await;
    let reason = stopped["containers"][0]["reason"]
        .as_str()
        .or(stopped["reason"].as_str())
        .unwrap_or_else(|| panic!("no reason: {stopped:#}"))
        .to_owned();
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    assert!(
        reason.contains("unauthorized: authentication required"),
        "the registry's own reason: {reason}"
    );
    assert!(
        !reason.contains("999999999999-auth-token"),
        "the token is not in the reason: {reason}"
    );
}
