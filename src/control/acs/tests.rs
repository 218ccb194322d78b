use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::model::RoleCredentials;

const ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:container-instance/test/0123456789abcdef0123456789abcdef";

fn ids(n: usize) -> Vec<TaskIdentifier> {
    (0..n)
        .map(|i| TaskIdentifier {
            desired_status: Some("RUNNING".into()),
            task_arn: Some(format!("arn:aws:ecs:us-east-1:123456789012:task/test/{i}")),
            task_cluster_arn: Some("arn:aws:ecs:us-east-1:123456789012:cluster/test".into()),
        })
        .collect()
}

fn credentials() -> RoleCredentials {
    RoleCredentials {
        credentials_id: "cred-1".into(),
        role_arn: "arn:aws:iam::123456789012:role/app".into(),
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "SECRET-ACCESS-KEY".into(),
        session_token: "SESSION-TOKEN".into(),
        expiration: "2026-11-26T18:00:00Z".into(),
        credential_scope: None,
    }
}

fn every_inbound() -> Vec<Inbound> {
    let payload = PayloadMessage {
        cluster_arn: Some("arn:aws:ecs:us-east-1:123456789012:cluster/test".into()),
        container_instance_arn: Some(ARN.into()),
        generated_at: Some(1795695300),
        message_id: Some("payload-1".into()),
        seq_num: Some(1),
        tasks: vec![PayloadTask::from_value(
            json!({"arn": "arn:aws:ecs:us-east-1:123456789012:task/test/1", "family": "f",
                   "version": "1", "containers": [{"name": "c", "image": "busybox"}]}),
        )],
        timeline: Some(7),
    };
    vec![
        Inbound::Heartbeat(HeartbeatMessage {
            healthy: Some(true),
            message_id: Some("acs-hb-1".into()),
        }),
        Inbound::Payload(payload),
        Inbound::IamRoleCredentials(IamRoleCredentialsMessage {
            message_id: Some("m".into()),
            role_credentials: Some(credentials()),
            role_type: Some(ROLE_TYPE_APPLICATION.into()),
            task_arn: Some("t".into()),
            task_cluster_arn: Some("c".into()),
        }),
        Inbound::TaskManifest(TaskManifestMessage {
            cluster_arn: Some("c".into()),
            container_instance_arn: Some(ARN.into()),
            generated_at: Some(1),
            message_id: Some("manifest-1".into()),
            tasks: ids(2),
            timeline: Some(5),
        }),
        Inbound::TaskStopVerificationAck(TaskStopVerificationAck {
            generated_at: Some(2),
            message_id: Some("manifest-1".into()),
            stop_tasks: ids(1),
        }),
        Inbound::AttachTaskNetworkInterfaces(json!({"messageId": "eni-1", "taskArn": "t",
            "waitTimeoutMs": 5000, "elasticNetworkInterfaces": [{"macAddress": "0a:00"}]})),
        Inbound::AttachInstanceNetworkInterfaces(json!({"messageId": "eni-2",
            "elasticNetworkInterfaces": [{"ec2Id": "eni-0"}]})),
        Inbound::ConfirmAttachment(json!({"messageId": "att-1", "attachment": {
            "attachmentArn": "a", "attachmentType": "amazonebs",
            "attachmentProperties": [{"name": "volumeId", "value": "vol-1"}]}})),
        Inbound::StageUpdate(json!({"messageId": "u-1",
            "updateInfo": {"location": "https://x/agent.tar", "signature": "abc"}})),
        Inbound::PerformUpdate(json!({"messageId": "u-2", "updateInfo": {"location": "l"}})),
        Inbound::Close(CloseMessage {
            message: Some("bye".into()),
        }),
        Inbound::Error(ErrorMessage {
            message: Some("oops".into()),
        }),
        Inbound::Exception {
            kind: "InactiveInstanceException".into(),
            message: "instance deregistered".into(),
        },
        Inbound::Unknown {
            kind: "FutureMessage".into(),
        },
    ]
}

fn every_outbound() -> Vec<Outbound> {
    vec![
        Outbound::Ack(AckRequest::new("test", ARN, "payload-1")),
        Outbound::HeartbeatAck(HeartbeatAckRequest::new("acs-hb-1")),
        Outbound::IamRoleCredentialsAck(IamRoleCredentialsAckRequest::new(
            "payload-1",
            "cred-1",
            "2026-11-26T18:00:00Z",
        )),
        Outbound::TaskStopVerification(TaskStopVerificationMessage {
            message_id: Some("manifest-1".into()),
            stop_candidates: ids(3),
        }),
        Outbound::Nack(NackRequest {
            cluster: Some("test".into()),
            container_instance: Some(ARN.into()),
            message_id: Some("u-1".into()),
            reason: Some("signature mismatch".into()),
        }),
    ]
}

#[test]
fn every_inbound_message_round_trips() {
    for msg in every_inbound() {
        let frame = encode_inbound(&msg);
        assert_eq!(decode(&frame).as_ref(), Ok(&msg), "{frame}");
    }
}

#[test]
fn every_outbound_message_round_trips() {
    for msg in every_outbound() {
        let frame = encode(&msg);
        assert_eq!(decode_outbound(&frame).as_ref(), Ok(&msg), "{frame}");
    }
}

#[test]
fn acks_are_written_as_the_go_agent_writes_them() {
    let frame = encode(&Outbound::HeartbeatAck(HeartbeatAckRequest::new(
        "acs-hb-1",
    )));
    assert_eq!(
        frame,
        r#"{"type":"HeartbeatAckRequest","message":{"messageId":"acs-hb-1"}}"#
    );
    let frame = encode(&Outbound::IamRoleCredentialsAck(
        IamRoleCredentialsAckRequest::new("p", "c", "e"),
    ));
    assert_eq!(
        frame,
        r#"{"type":"IAMRoleCredentialsAckRequest","message":{"credentialsId":"c","expiration":"e","messageId":"p"}}"#
    );
    let frame = encode(&Outbound::TaskStopVerification(
        TaskStopVerificationMessage {
            message_id: Some("m".into()),
            stop_candidates: vec![TaskIdentifier {
                desired_status: Some("STOPPED".into()),
                task_arn: Some("t".into()),
                task_cluster_arn: Some("c".into()),
            }],
        },
    ));
    assert_eq!(
        frame,
        r#"{"type":"TaskStopVerificationMessage","message":{"messageId":"m","stopCandidates":[{"desiredStatus":"STOPPED","taskArn":"t","taskClusterArn":"c"}]}}"#
    );
}

#[test]
fn absent_optional_members_are_omitted() {
    let ack = AckRequest {
        message_id: Some("x".into()),
        ..Default::default()
    };
    assert_eq!(
        encode(&Outbound::Ack(ack)),
        r#"{"type":"AckRequest","message":{"messageId":"x"}}"#
    );
    assert_eq!(
        encode(&Outbound::Nack(NackRequest::default())),
        r#"{"type":"NackRequest","message":{}}"#
    );
}

#[test]
fn unknown_types_are_not_errors() {
    let decoded = decode(r#"{"type":"SomethingNew","message":{"x":[1,2]}}"#);
    assert_eq!(
        decoded,
        Ok(Inbound::Unknown {
            kind: "SomethingNew".into()
        })
    );
}

#[test]
fn malformed_frames_are_errors() {
    assert!(matches!(
        decode(r#"{"type":"HeartbeatMessage","message":{"hea"#),
        Err(DecodeError::Json { .. })
    ));
    assert!(matches!(decode(""), Err(DecodeError::Json { .. })));
    assert_eq!(
        decode(r#"{"message":{"messageId":"1"}}"#),
        Err(DecodeError::MissingType)
    );
    assert_eq!(decode("[]"), Err(DecodeError::MissingType));
    assert_eq!(decode("42"), Err(DecodeError::MissingType));
    assert_eq!(
        decode(r#"{"type":"HeartbeatMessage"}"#),
        Err(DecodeError::MissingMessage {
            kind: "HeartbeatMessage".into()
        })
    );
}

#[test]
fn a_wrongly_typed_member_is_named() {
    let err = decode(r#"{"type":"HeartbeatMessage","message":{"healthy":"yes","messageId":"1"}}"#)
        .unwrap_err();
    let DecodeError::Field { kind, field, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (kind.as_str(), field.as_str()),
        ("HeartbeatMessage", "healthy")
    );
    assert!(
        err.to_string().starts_with("HeartbeatMessage.healthy: "),
        "{err}"
    );

    let err = decode(r#"{"type":"PayloadMessage","message":{"seqNum":"one"}}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("PayloadMessage.seqNum: "),
        "{err}"
    );
    let err = decode(r#"{"type":"PayloadMessage","message":{"tasks":{"arn":"a"}}}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("PayloadMessage.tasks: "),
        "{err}"
    );
    let err =
        decode(r#"{"type":"ConfirmAttachmentMessage","message":{"attachment":3}}"#).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("ConfirmAttachmentMessage.attachment: "));
    let err = decode(r#"{"type":"CloseMessage","message":"bye"}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("CloseMessage.message: "),
        "{err}"
    );
}

#[test]
fn one_malformed_task_does_not_spoil_the_payload() {
    let frame = json!({"type": "PayloadMessage", "message": {"messageId": "p", "tasks": [
        {"arn": "good", "family": "f", "containers": [{"name": "c", "image": "i"}]},
        {"arn": "bad", "family": "f", "containers": "not-a-list"},
        17
    ]}})
    .to_string();
    let Ok(Inbound::Payload(payload)) = decode(&frame) else {
        panic!()
    };
    assert_eq!(payload.tasks.len(), 3);
    assert!(!payload.all_tasks_decoded());
    assert_eq!(payload.tasks[0].decoded.as_ref().unwrap().arn, "good");
    let rejected: Vec<_> = payload.rejected_tasks().collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].arn.as_deref(), Some("bad"));
    assert!(
        rejected[0].reason.starts_with("containers: "),
        "{}",
        rejected[0].reason
    );
    assert_eq!(rejected[1].arn, None);
    assert_eq!(payload.tasks[1].arn(), Some("bad"));
    // The raw JSON is kept, so the message re-encodes as received.
    assert_eq!(payload.tasks[1].raw["containers"], "not-a-list");
}

#[test]
fn a_payload_whose_tasks_all_decode_can_be_acked() {
    let text = include_str!("../../../tests/fixtures/acs/PayloadMessage.json");
    let Ok(Inbound::Payload(payload)) = decode(text) else {
        panic!()
    };
    assert!(payload.all_tasks_decoded());
    assert_eq!(payload.rejected_tasks().count(), 0);
}

#[test]
fn exceptions_decode_in_both_forms() {
    let expected = Ok(Inbound::Exception {
        kind: "InvalidClusterException".into(),
        message: "Invalid cluster".into(),
    });
    assert_eq!(
        decode(r#"{"InvalidClusterException":"Invalid cluster"}"#),
        expected
    );
    assert_eq!(
        decode(r#"{"type":"InvalidClusterException","message":{"message":"Invalid cluster"}}"#),
        expected
    );
    assert_eq!(
        decode(r#"{"NotAnException":"x"}"#),
        Err(DecodeError::MissingType)
    );
}

#[test]
fn handshake_errors_decode_in_both_forms() {
    let expected = Some(("InvalidClusterException".into(), "Invalid cluster".into()));
    assert_eq!(
        decode_handshake_error(r#"{"InvalidClusterException":"Invalid cluster"}"#),
        expected
    );
    assert_eq!(
        decode_handshake_error(
            r#"{"type":"InvalidClusterException","message":{"message":"Invalid cluster"}}"#
        ),
        expected
    );
    assert_eq!(decode_handshake_error("Forbidden"), None);
    assert_eq!(decode_handshake_error(r#"{"a":"b","c":"d"}"#), None);
}

#[test]
fn credentials_never_show_in_debug() {
    let msg = Inbound::IamRoleCredentials(IamRoleCredentialsMessage {
        role_credentials: Some(credentials()),
        ..Default::default()
    });
    let frame = encode_inbound(&msg);
    assert!(frame.contains("SECRET-ACCESS-KEY"));
    let shown = format!("{:?}", decode(&frame).unwrap());
    assert!(!shown.contains("SECRET-ACCESS-KEY") && !shown.contains("SESSION-TOKEN"));

    let task = json!({"arn": "t", "roleCredentials": serde_json::to_value(credentials()).unwrap(),
        "containers": [{"name": "c", "image": "i", "environment": {"DB_PASSWORD": "hunter2"}}]});
    let broken = json!({"arn": "u", "roleCredentials": serde_json::to_value(credentials()).unwrap(),
        "containers": 5});
    let frame = json!({"type": "PayloadMessage", "message": {"tasks": [task, broken]}});
    let shown = format!("{:?}", decode(&frame.to_string()).unwrap());
    for secret in ["SECRET-ACCESS-KEY", "SESSION-TOKEN", "hunter2"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn html_characters_are_escaped_like_go() {
    let nack = NackRequest {
        reason: Some("size <0> & more".into()),
        ..Default::default()
    };
    assert_eq!(
        encode(&Outbound::Nack(nack)),
        r#"{"type":"NackRequest","message":{"reason":"size \u003c0\u003e \u0026 more"}}"#
    );
}

#[test]
fn outbound_decoder_rejects_server_messages() {
    assert_eq!(
        decode_outbound(r#"{"type":"HeartbeatMessage","message":{}}"#),
        Err(DecodeError::UnexpectedType {
            kind: "HeartbeatMessage".into()
        })
    );
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_text(frame in ".*") {
        let _ = decode(&frame);
        let _ = decode_outbound(&frame);
        let _ = decode_handshake_error(&frame);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_envelopes(
        kind in prop::sample::select(vec![
            "HeartbeatMessage", "PayloadMessage", "IAMRoleCredentialsMessage",
            "TaskManifestMessage", "TaskStopVerificationAck", "AttachTaskNetworkInterfacesMessage",
            "AttachInstanceNetworkInterfacesMessage", "ConfirmAttachmentMessage",
            "StageUpdateMessage", "PerformUpdateMessage", "CloseMessage", "ErrorMessage",
            "ServerException", "InvalidClusterException", "AckRequest", "Whatever",
        ]),
        message in arbitrary_json(),
    ) {
        let frame = json!({"type": kind, "message": message}).to_string();
        let _ = decode(&frame);
        let _ = decode_outbound(&frame);
        if let Ok(Inbound::Payload(payload)) = decode(&frame) {
            let _ = format!("{payload:?}");
        }
    }

    #[test]
    fn payloads_with_arbitrary_tasks_decode_per_task(tasks in prop::collection::vec(arbitrary_json(), 0..4)) {
        let frame = json!({"type": "PayloadMessage", "message": {"tasks": tasks}}).to_string();
        let Ok(Inbound::Payload(payload)) = decode(&frame) else {
            return Err(TestCaseError::fail("payload with a task list must decode"));
        };
        prop_assert_eq!(payload.tasks.len(), tasks.len());
    }
}

/// JSON values biased towards the members the ACS shapes have.
pub(crate) fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop::sample::select(vec![
        "messageId",
        "healthy",
        "tasks",
        "arn",
        "containers",
        "name",
        "image",
        "seqNum",
        "roleCredentials",
        "expiration",
        "attachment",
        "updateInfo",
        "message",
        "stopTasks",
        "elasticNetworkInterfaces",
        "timeline",
        "environment",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..5).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

#[test]
fn null_lists_read_as_empty_like_go() {
    let Ok(Inbound::TaskManifest(manifest)) =
        decode(r#"{"type":"TaskManifestMessage","message":{"tasks":null,"timeline":3}}"#)
    else {
        panic!()
    };
    assert!(manifest.tasks.is_empty());
    let Ok(Inbound::Payload(payload)) =
        decode(r#"{"type":"PayloadMessage","message":{"tasks":null}}"#)
    else {
        panic!()
    };
    assert!(payload.tasks.is_empty());
}
