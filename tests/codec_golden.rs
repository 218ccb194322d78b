//! Golden tests for the ACS/TCS codecs and the websocket signing: the official agent's test
//! fixtures (`tests/fixtures/acs`, `tests/fixtures/tcs`) and its captured traffic
//! (`wire-captures.md` §6 upgrade, §8 websocket frames, §9 a task payload and its ack).
//!
//! Expected signatures were computed independently of aws-sigv4 with python3's hmac/hashlib:
//!
//! ```text
//! def sign(secret, path, query, payload=b'', token=None):   # date 20261126, us-east-1, ecs
//!     cq = '&'.join(f"{quote(k,safe='-_.~')}={quote(v,safe='-_.~')}"
//!                   for k, v in sorted(parse_qsl(query, keep_blank_values=True)))
//!     hdrs = [('host','127.0.0.1:17080'), ('x-amz-date','20261126T121105Z')]
//!            + ([('x-amz-security-token', token)] if token else [])
//!     creq = '\n'.join(['GET', path, cq, ''.join(f'{k}:{v}\n' for k, v in hdrs),
//!                       ';'.join(k for k, _ in hdrs), sha256(payload).hexdigest()])
//!     sts = '\n'.join(['AWS4-HMAC-SHA256', '20261126T121105Z',
//!                      '20261126/us-east-1/ecs/aws4_request', sha256(creq).hexdigest()])
//!     key = HMAC chain of 'AWS4'+secret over '20261126', 'us-east-1', 'ecs', 'aws4_request'
//!     return hmac(key, sts, sha256).hexdigest()
//! ```
//!
//! The same function reproduces the official agent's captured ACS upgrade signature
//! (`5ad12f25…`, credentials `test`/`test`), which is also checked below.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use ecs_agent::control::acs;
use ecs_agent::control::sigv4::{self, AcsParams, TcsParams};
use ecs_agent::control::tcs;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const INSTANCE: &str =
    "arn:aws:ecs:us-east-1:123456789012:container-instance/test/0123456789abcdef0123456789abcdef";
const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";
const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The capture's `X-Amz-Date`, 2026-11-26T12:11:05Z.
fn capture_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_695_065)
}

fn acs_params() -> AcsParams {
    AcsParams {
        cluster: "test".into(),
        container_instance_arn: INSTANCE.into(),
        agent_hash: "a8b3e7d3".into(),
        agent_version: "1.105.1".into(),
        docker_version: Some("20.10.24+dfsg1".into()),
        send_credentials: true,
    }
}

fn tcs_params() -> TcsParams {
    TcsParams {
        cluster: "test".into(),
        container_instance_arn: INSTANCE.into(),
        agent_hash: "a8b3e7d3".into(),
        agent_version: "1.105.1".into(),
        docker_version: Some("20.10.24+dfsg1".into()),
    }
}

#[test]
fn acs_heartbeat_fixture_decodes_and_is_acked() {
    let frame = include_str!("fixtures/acs/HeartbeatMessage.json").trim_end();
    let acs::Inbound::Heartbeat(hb) = acs::decode(frame).unwrap() else {
        panic!("not a heartbeat")
    };
    assert_eq!(
        (hb.healthy, hb.message_id.as_deref()),
        (Some(true), Some("123"))
    );
}

#[test]
fn acs_payload_fixture_decodes_into_its_task() {
    let frame = include_str!("fixtures/acs/PayloadMessage.json");
    let acs::Inbound::Payload(payload) = acs::decode(frame).unwrap() else {
        panic!("not a payload")
    };
    assert_eq!(payload.message_id.as_deref(), Some("messageId"));
    assert_eq!(payload.tasks.len(), 1);
    let task = payload.tasks[0].decoded.as_ref().unwrap();
    assert_eq!((task.arn.as_str(), task.family.as_str()), ("arn1", "test"));
    assert_eq!(task.version, "v1");
    assert_eq!(task.desired_status.as_deref(), Some("RUNNING"));
    let c = &task.containers[0];
    assert_eq!((c.name.as_str(), c.image.as_str()), ("c1", "redis"));
    assert_eq!(
        c.command.as_deref(),
        Some(&["arg1".to_owned(), "arg2".to_owned()][..])
    );
    assert_eq!(c.entry_point.as_deref(), Some(&["bash".to_owned()][..]));
    assert_eq!((c.cpu, c.memory), (Some(10), Some(20)));
    assert_eq!(c.links.as_deref(), Some(&["db".to_owned()][..]));
    let port = &c.port_mappings.as_ref().unwrap()[0];
    assert_eq!((port.container_port, port.host_port), (Some(22), Some(22)));
    assert_eq!(c.environment.as_ref().unwrap()["key"], "val");
    assert!(c.is_essential());
}

#[test]
fn acs_minimal_payload_fixture_decodes() {
    let frame = include_str!("fixtures/acs/PayloadMessage-minimal.json");
    let acs::Inbound::Payload(payload) = acs::decode(frame).unwrap() else {
        panic!("not a payload")
    };
    assert!(payload.all_tasks_decoded());
    assert_eq!(payload.tasks[0].arn(), Some("arn"));
}

#[test]
fn acs_bare_invalid_cluster_error_decodes() {
    // `acs_client_test.go` line 334 (shared/spec/fixtures, InvalidClusterException-bare-error).
    let body = r#"{"InvalidClusterException":"Invalid cluster"}"#;
    let expected = (
        "InvalidClusterException".to_owned(),
        "Invalid cluster".to_owned(),
    );
    assert_eq!(acs::decode_handshake_error(body), Some(expected.clone()));
    assert_eq!(
        acs::decode(body),
        Ok(acs::Inbound::Exception {
            kind: expected.0,
            message: expected.1
        })
    );
}

#[test]
fn tcs_ack_fixtures_decode() {
    let acks = [
        include_str!("fixtures/tcs/tcs_client_test.go-L378-AckPublishMetric.json"),
        include_str!("fixtures/tcs/tcs_client_test.go-L697-AckPublishHealth.json"),
        include_str!("fixtures/tcs/tcs_client_test.go-L949-AckPublishInstanceStatus.json"),
    ];
    let decoded: Vec<_> = acks.iter().map(|a| tcs::decode(a).unwrap()).collect();
    assert!(matches!(decoded[0], tcs::Inbound::AckPublishMetric(_)));
    assert!(matches!(decoded[1], tcs::Inbound::AckPublishHealth(_)));
    assert!(matches!(
        decoded[2],
        tcs::Inbound::AckPublishInstanceStatus(_)
    ));
    for (ack, msg) in acks.iter().zip(&decoded) {
        assert_eq!(tcs::encode_inbound(msg), ack.trim_end());
    }
}

#[test]
fn captured_acs_heartbeat_gets_the_captured_ack() {
    // wire-captures §8.
    let server = r#"{"type":"HeartbeatMessage","message":{"healthy":true,"messageId":"acs-hb-1"}}"#;
    let acs::Inbound::Heartbeat(hb) = acs::decode(server).unwrap() else {
        panic!("not a heartbeat")
    };
    let ack = acs::HeartbeatAckRequest::new(hb.message_id.as_deref().unwrap());
    assert_eq!(
        acs::encode(&acs::Outbound::HeartbeatAck(ack)),
        r#"{"type":"HeartbeatAckRequest","message":{"messageId":"acs-hb-1"}}"#
    );
}

/// wire-captures §9's payload, with its elided values filled in: `<arn>` is the instance ARN,
/// the task and container ARNs (shortened with `…` there) are spelled out.
fn captured_payload() -> String {
    let task = "arn:aws:ecs:us-east-1:123456789012:task/test/11111111111111111111111111111111";
    let container = "arn:aws:ecs:us-east-1:123456789012:container/test/11111111111111111111111111111111/22222222-2222-2222-2222-222222222222";
    format!(
        r#"{{"type":"PayloadMessage","message":{{"clusterArn":"{CLUSTER_ARN}","containerInstanceArn":"{INSTANCE}","messageId":"payload-1","seqNum":1,"generatedAt":1795695300,"tasks":[{{"arn":"{task}","family":"bbsleep","version":"1","desiredStatus":"RUNNING","launchType":"EC2","networkMode":"bridge","taskDefinitionAccountId":"123456789012","containers":[{{"name":"sleeper","containerArn":"{container}","image":"local/busybox:latest","command":["sleep","600"],"cpu":10,"memory":32,"essential":true,"environment":{{"FOO":"bar"}},"portMappings":[],"mountPoints":[],"volumesFrom":[],"links":[],"overrides":"{{}}"}}]}}]}}}}"#
    )
}

#[test]
fn captured_payload_decodes_into_one_task_and_gets_the_captured_ack() {
    let acs::Inbound::Payload(payload) = acs::decode(&captured_payload()).unwrap() else {
        panic!("not a payload")
    };
    assert_eq!(payload.seq_num, Some(1));
    assert_eq!(payload.generated_at, Some(1_795_695_300));
    assert_eq!(payload.tasks.len(), 1);
    let task = payload.tasks[0].decoded.as_ref().unwrap();
    assert_eq!(
        (task.family.as_str(), task.version.as_str()),
        ("bbsleep", "1")
    );
    assert_eq!(task.network_mode.as_deref(), Some("bridge"));
    assert_eq!(task.launch_type.as_deref(), Some("EC2"));
    assert_eq!(task.containers.len(), 1);
    let c = &task.containers[0];
    assert_eq!(
        (c.name.as_str(), c.image.as_str()),
        ("sleeper", "local/busybox:latest")
    );
    assert_eq!(
        c.command.as_deref(),
        Some(&["sleep".to_owned(), "600".to_owned()][..])
    );
    assert_eq!((c.cpu, c.memory), (Some(10), Some(32)));
    assert_eq!(c.environment.as_ref().unwrap()["FOO"], "bar");
    assert_eq!(c.overrides.as_deref(), Some("{}"));

    let ack = acs::AckRequest::new(
        payload.cluster_arn.as_deref().unwrap(),
        payload.container_instance_arn.as_deref().unwrap(),
        payload.message_id.as_deref().unwrap(),
    );
    assert_eq!(
        acs::encode(&acs::Outbound::Ack(ack)),
        format!(
            r#"{{"type":"AckRequest","message":{{"cluster":"{CLUSTER_ARN}","containerInstance":"{INSTANCE}","messageId":"payload-1"}}}}"#
        )
    );
}

#[test]
fn acs_upgrade_is_signed_exactly_as_the_official_agent_signed_it() {
    // wire-captures §6: the agent ran with AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test.
    let url = sigv4::acs_url("http://127.0.0.1:17080/acs/", &acs_params());
    let mut req = url.into_client_request().unwrap();
    let creds = Credentials::new("test", "test", None, None, "golden");
    sigv4::sign_upgrade(&mut req, &creds, "us-east-1", capture_time()).unwrap();
    assert_eq!(
        req.uri().path_and_query().unwrap().as_str(),
        "/acs/ws?agentHash=a8b3e7d3&agentVersion=1.105.1&clusterArn=test&containerInstanceArn=arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acontainer-instance%2Ftest%2F0123456789abcdef0123456789abcdef&dockerVersion=DockerVersion%3A+20.10.24%2Bdfsg1&protocolVersion=2&sendCredentials=true&seqNum=1"
    );
    assert_eq!(req.headers()["host"], "127.0.0.1:17080");
    assert_eq!(
        req.headers()["authorization"],
        "AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/ecs/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5ad12f2558f9f9a6efc321b36f10c9bca879eb6896071fe1a9e83d530fa974f6"
    );
    assert_eq!(req.headers()["x-amz-date"], "20261126T121105Z");
    assert!(req.headers().get("x-amz-content-sha256").is_none());
}

#[test]
fn acs_upgrade_signature_matches_an_independent_computation() {
    let url = sigv4::acs_url("http://127.0.0.1:17080/acs/", &acs_params());
    let cases = [
        (
            None,
            "SignedHeaders=host;x-amz-date, \
             Signature=e25c539f5b17b28922ef3f6ba7df14767e799ca5c79f80b66787931cece1aace",
        ),
        (
            Some("session-token".to_owned()),
            "SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=e80564c271fed9a5fc7fc703c8a489a08037c040ce62654d5cf363474b2bb4f0",
        ),
    ];
    for (token, expected) in cases {
        let mut req = url.clone().into_client_request().unwrap();
        let creds = Credentials::new("AKIDEXAMPLE", EXAMPLE_SECRET, token, None, "golden");
        sigv4::sign_upgrade(&mut req, &creds, "us-east-1", capture_time()).unwrap();
        assert_eq!(
            req.headers()["authorization"].to_str().unwrap(),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/ecs/aws4_request, {expected}")
        );
    }
}

#[test]
fn tcs_idle_metrics_frame_is_signed_with_its_body() {
    // wire-captures §8: the idle PublishMetricsRequest sent on connect, signed as a GET of the
    // TCS URL with the JSON envelope as payload.
    let url = sigv4::tcs_url("http://127.0.0.1:17080/tcs/", &tcs_params());
    let requests = tcs::metrics_requests(tcs::MetricsCycle {
        cluster: "test".into(),
        container_instance: INSTANCE.into(),
        message_id: "00000000-0000-0000-0000-000000000001".into(),
        timestamp: tcs::Timestamp::from_system_time(capture_time() + Duration::from_millis(260)),
        instance_metrics: None,
        task_metrics: Vec::new(),
    });
    assert_eq!(requests.len(), 1);
    let body = tcs::encode(&tcs::Outbound::PublishMetrics(requests[0].clone()));
    assert_eq!(
        body,
        format!(
            r#"{{"type":"PublishMetricsRequest","message":{{"metadata":{{"cluster":"test","containerInstance":"{INSTANCE}","fin":true,"idle":true,"messageId":"00000000-0000-0000-0000-000000000001"}},"timestamp":1795695065.26}}}}"#
        )
    );
    let creds = Credentials::new("test", "test", None, None, "golden");
    let frame = sigv4::signed_tcs_frame(&url, &body, &creds, "us-east-1", capture_time()).unwrap();
    assert_eq!(
        frame,
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/ecs/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=00ac8eab08424226da2e0286c146b90a20ec08adf485086e7ea158d10f7bc64c\r\n\
             Host: 127.0.0.1:17080\r\n\
             X-Amz-Date: 20261126T121105Z\r\n\
             \r\n{body}"
        )
    );
    assert_eq!(
        tcs::decode_outbound(frame.split_once("\r\n\r\n").unwrap().1),
        Ok(tcs::Outbound::PublishMetrics(requests[0].clone()))
    );
}

#[test]
fn tcs_frame_with_temporary_credentials_signs_the_token() {
    let url = sigv4::tcs_url("http://127.0.0.1:17080/tcs/", &tcs_params());
    let body = format!(
        r#"{{"type":"PublishMetricsRequest","message":{{"metadata":{{"cluster":"test","containerInstance":"{INSTANCE}","fin":true,"idle":true,"messageId":"00000000-0000-0000-0000-000000000001"}},"timestamp":1795695065.26}}}}"#
    );
    let creds = Credentials::new(
        "AKIDEXAMPLE",
        EXAMPLE_SECRET,
        Some("session-token".into()),
        None,
        "golden",
    );
    let frame = sigv4::signed_tcs_frame(&url, &body, &creds, "us-east-1", capture_time()).unwrap();
    assert_eq!(
        frame,
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/ecs/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=35c4473d2a396c1af893558d70118ce79f0e2218ad19b425db5f2bfe1fe66922\r\n\
             Host: 127.0.0.1:17080\r\n\
             X-Amz-Date: 20261126T121105Z\r\n\
             X-Amz-Security-Token: session-token\r\n\
             \r\n{body}"
        )
    );
}
