//! The ACS side of the simulator: the upgrade's query rules, what it pushes to
//! the agent, and the checks on every frame the agent sends back.
//!
//! An agent frame is valid when it is a text frame holding exactly
//! `{"type","message"}`, `type` is one of the agent→server shapes of
//! `acs-api-2.json`, `message` fits that shape, carries the members the
//! official agent always sends (the model itself requires none), and answers
//! a message the simulator really sent (same `messageId`; an `AckRequest`
//! echoes that message's `clusterArn`/`containerInstanceArn`; a credentials
//! ack names a `credentialsId` the message carried).

use std::time::SystemTime;

use serde_json::{json, Value};

use super::model::{models, ExtraRequired};
use super::state::{AgentFrame, Outbound, Recorded, Session, Shared, State, WsKind};
use super::ws::{check_agent_version, params, Refusal};

/// Agent → server message types.
pub const AGENT_TYPES: &[&str] = &[
    "AckRequest",
    "HeartbeatAckRequest",
    "IAMRoleCredentialsAckRequest",
    "TaskStopVerificationMessage",
    "NackRequest",
];

const WIRE_REQUIRED: &ExtraRequired = &[
    ("AckRequest", &["cluster", "containerInstance", "messageId"]),
    ("HeartbeatAckRequest", &["messageId"]),
    (
        "IAMRoleCredentialsAckRequest",
        &["messageId", "credentialsId", "expiration"],
    ),
    (
        "TaskStopVerificationMessage",
        &["messageId", "stopCandidates"],
    ),
    (
        "TaskIdentifier",
        &["taskArn", "taskClusterArn", "desiredStatus"],
    ),
    (
        "NackRequest",
        &["cluster", "containerInstance", "messageId"],
    ),
];

const REQUIRED_QUERY: &[&str] = &[
    "agentHash",
    "agentVersion",
    "clusterArn",
    "containerInstanceArn",
    "protocolVersion",
    "sendCredentials",
    "seqNum",
];

/// Checks the upgrade query; returns the session's (cluster reference, instance ARN).
pub(super) fn check_query(
    s: &State,
    query: &[(String, String)],
) -> Result<(String, String), Refusal> {
    let p = params(query, REQUIRED_QUERY, &["dockerVersion"])?;
    let bad = |m: String| Err(Refusal::new(400, "BadRequestException", m));
    check_agent_version(&p)?;
    if p["seqNum"] != "1" {
        return bad(format!("seqNum must be 1, not {:?}", p["seqNum"]));
    }
    if p["protocolVersion"] != "2" {
        return bad(format!(
            "protocolVersion must be 2, not {:?}",
            p["protocolVersion"]
        ));
    }
    if !matches!(p["sendCredentials"], "true" | "false") {
        return bad(format!(
            "sendCredentials must be true or false, not {:?}",
            p["sendCredentials"]
        ));
    }
    if let Some(v) = p.get("dockerVersion") {
        if v.strip_prefix("DockerVersion: ").is_none_or(str::is_empty) {
            return bad(format!(
                "dockerVersion must read 'DockerVersion: <version>', not {v:?}"
            ));
        }
    }
    let arn = p["containerInstanceArn"];
    let Some(instance) = s.instances.iter().find(|i| i.arn == arn) else {
        return Err(Refusal::new(
            400,
            "InvalidInstanceException",
            format!("Invalid container instance {arn}"),
        ));
    };
    let cluster = p["clusterArn"];
    if cluster != instance.cluster && !cluster.ends_with(&format!(":cluster/{}", instance.cluster))
    {
        return Err(Refusal::new(
            400,
            "InvalidClusterException",
            "Invalid cluster",
        ));
    }
    if instance.status == "INACTIVE" {
        return Err(Refusal::new(
            400,
            "InactiveInstanceException",
            "Container instance is inactive",
        ));
    }
    Ok((cluster.to_string(), arn.to_string()))
}

/// Pushes `frame` to the open ACS session and records it; learns the tasks of a PayloadMessage.
pub(super) fn send(shared: &Shared, frame: Value) -> Result<(), String> {
    shared.update(|s| {
        let (_, tx) = s
            .open
            .get(&WsKind::Acs)
            .ok_or("no ACS connection is open")?;
        tx.send(Outbound::Text(frame.to_string()))
            .map_err(|_| "the ACS connection has closed".to_string())?;
        if frame["type"] == "PayloadMessage" {
            for task in frame["message"]["tasks"].as_array().into_iter().flatten() {
                let names = task["containers"].as_array().into_iter().flatten();
                let names = names
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect();
                if let Some(arn) = task["arn"].as_str() {
                    s.tasks.insert(arn.to_string(), names);
                }
            }
        }
        s.acs_sent.push(Recorded {
            at: SystemTime::now(),
            body: frame,
        });
        Ok(())
    })
}

/// The next `HeartbeatMessage`, recorded as sent.
pub(super) fn heartbeat(shared: &Shared) -> String {
    shared.update(|s| {
        s.heartbeats_sent += 1;
        let frame = json!({
            "type": "HeartbeatMessage",
            "message": {"healthy": true, "messageId": format!("acs-hb-{}", s.heartbeats_sent)},
        });
        s.acs_sent.push(Recorded {
            at: SystemTime::now(),
            body: frame.clone(),
        });
        frame.to_string()
    })
}

/// Validates and records one text frame from the agent.
pub(super) fn on_frame(shared: &Shared, session: &Session, text: &str) {
    let json: Option<Value> = serde_json::from_str(text).ok();
    let msg_type = json
        .as_ref()
        .and_then(|j| j["type"].as_str())
        .map(String::from);
    shared.update(|s| {
        let error = validate(s, json.as_ref()).err();
        s.acs_frames.push(AgentFrame {
            at: SystemTime::now(),
            connection: session.id,
            raw: text.to_string(),
            headers: vec![],
            json,
            msg_type,
            valid: error.is_none(),
            error,
        });
    });
}

fn validate(s: &State, json: Option<&Value>) -> Result<(), String> {
    let json = json.ok_or("the frame is not JSON")?;
    let (kind, message) = envelope(json)?;
    if !AGENT_TYPES.contains(&kind) {
        return Err(format!(
            "{kind:?} is not an agent-to-server ACS message ({AGENT_TYPES:?})"
        ));
    }
    models()
        .acs
        .validate(kind, message, "message", WIRE_REQUIRED)?;
    answers_a_sent_message(s, kind, message)
}

/// `{"type": <string>, "message": <object>}` and nothing else.
pub(super) fn envelope(json: &Value) -> Result<(&str, &Value), String> {
    let obj = json
        .as_object()
        .ok_or("the envelope is not a JSON object")?;
    if let Some(extra) = obj.keys().find(|k| *k != "type" && *k != "message") {
        return Err(format!("unexpected envelope member {extra:?}"));
    }
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("the envelope has no string \"type\"")?;
    let message = obj
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("the envelope has no object \"message\"")?;
    Ok((kind, message))
}

fn answers_a_sent_message(s: &State, kind: &str, message: &Value) -> Result<(), String> {
    let id = message["messageId"].as_str().unwrap_or_default();
    let sent = s
        .acs_sent
        .iter()
        .rev()
        .map(|r| &r.body)
        .find(|b| b["message"]["messageId"] == id)
        .ok_or_else(|| format!("messageId {id:?} names no message the server sent"))?;
    let sent_type = sent["type"].as_str().unwrap_or_default();
    let answers: &[&str] = match kind {
        "HeartbeatAckRequest" => &["HeartbeatMessage"],
        "IAMRoleCredentialsAckRequest" => &["PayloadMessage", "IAMRoleCredentialsMessage"],
        "TaskStopVerificationMessage" => &["TaskManifestMessage"],
        "NackRequest" => &["StageUpdateMessage", "PerformUpdateMessage"],
        _ => &[
            "PayloadMessage",
            "AttachTaskNetworkInterfacesMessage",
            "AttachInstanceNetworkInterfacesMessage",
            "ConfirmAttachmentMessage",
            "TaskManifestMessage",
            "StageUpdateMessage",
            "PerformUpdateMessage",
        ],
    };
    if !answers.contains(&sent_type) {
        return Err(format!(
            "{kind} does not answer a {sent_type} (messageId {id:?})"
        ));
    }
    match kind {
        "AckRequest" | "NackRequest" => echoes_addressing(&sent["message"], message),
        "IAMRoleCredentialsAckRequest" => {
            let credentials_id = &message["credentialsId"];
            if mentions(&sent["message"], "credentialsId", credentials_id) {
                Ok(())
            } else {
                Err(format!(
                    "credentialsId {credentials_id} was not in message {id:?}"
                ))
            }
        }
        _ => Ok(()),
    }
}

fn echoes_addressing(sent: &Value, reply: &Value) -> Result<(), String> {
    for (sent_key, reply_key) in [
        ("clusterArn", "cluster"),
        ("containerInstanceArn", "containerInstance"),
    ] {
        if let Some(expected) = sent.get(sent_key) {
            if reply[reply_key] != *expected {
                return Err(format!(
                    "message.{reply_key} is {}, but the acknowledged message had {sent_key} {expected}",
                    reply[reply_key]
                ));
            }
        }
    }
    Ok(())
}

/// Whether `key: value` occurs anywhere inside `v`.
fn mentions(v: &Value, key: &str, value: &Value) -> bool {
    match v {
        Value::Object(map) => map
            .iter()
            .any(|(k, inner)| (k == key && inner == value) || mentions(inner, key, value)),
        Value::Array(items) => items.iter().any(|inner| mentions(inner, key, value)),
        _ => false,
    }
}
