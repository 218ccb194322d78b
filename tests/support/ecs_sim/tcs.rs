//! The TCS side of the simulator: the upgrade's query rules and the checks on
//! the agent's per-frame signed publishes.
//!
//! Each agent frame must be an HTTP header block (`Authorization`, `Host`,
//! `X-Amz-Date`, and `X-Amz-Security-Token` with temporary credentials), a
//! blank line, then the JSON envelope. The block is a SigV4 signature of a
//! `GET` of the TCS URL the session was opened with (same path and query) whose
//! body is the JSON, body hash included (behaviour doc §3, wire-captures §8.6).
//! The envelope must be a publish shape of `tcs-api-2.json` addressed to the
//! session's cluster and instance. Valid publishes get the matching ack
//! (`{"type":"AckPublishMetric","message":{}}`, as in the upstream fixtures);
//! invalid ones get no answer and are recorded with the reason.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::acs::envelope;
use super::model::{models, ExtraRequired};
use super::sigv4::{self, Received};
use super::state::{AgentFrame, Session, Shared, State};
use super::ws::{check_agent_version, params, Refusal};

/// Agent → TCS message types and the ack each one gets.
pub const PUBLISH_TYPES: &[(&str, &str)] = &[
    ("PublishMetricsRequest", "AckPublishMetric"),
    ("PublishHealthRequest", "AckPublishHealth"),
    ("PublishInstanceStatusRequest", "AckPublishInstanceStatus"),
];

const MAX_FRAME: usize = 1024 * 1024;

const WIRE_REQUIRED: &ExtraRequired = &[
    ("PublishMetricsRequest", &["metadata", "timestamp"]),
    (
        "MetricsMetadata",
        &["cluster", "containerInstance", "messageId", "idle", "fin"],
    ),
    ("PublishHealthRequest", &["metadata", "timestamp"]),
    (
        "HealthMetadata",
        &["cluster", "containerInstance", "messageId", "fin"],
    ),
    (
        "PublishInstanceStatusRequest",
        &["metadata", "statuses", "timestamp"],
    ),
    (
        "InstanceStatusMetadata",
        &["cluster", "containerInstance", "requestId"],
    ),
    (
        "InstanceStatus",
        &["type", "status", "lastUpdated", "lastStatusChange"],
    ),
];

/// Checks the upgrade query; returns the session's (cluster, instance ARN).
pub(super) fn check_query(
    s: &State,
    query: &[(String, String)],
) -> Result<(String, String), Refusal> {
    let p = params(
        query,
        &["agentHash", "agentVersion", "cluster", "containerInstance"],
        &["dockerVersion"],
    )?;
    let bad = |m: String| Err(Refusal::new(400, "BadRequestException", m));
    check_agent_version(&p)?;
    if p.get("dockerVersion")
        .is_some_and(|v| v.starts_with("DockerVersion"))
    {
        return bad("TCS takes the bare docker version, without 'DockerVersion: '".into());
    }
    let arn = p["containerInstance"];
    let Some(instance) = s.instances.iter().find(|i| i.arn == arn) else {
        return bad(format!("unknown container instance {arn}"));
    };
    let cluster = p["cluster"];
    if cluster != instance.cluster && !cluster.ends_with(&format!(":cluster/{}", instance.cluster))
    {
        return bad(format!(
            "container instance {arn} is not in cluster {cluster}"
        ));
    }
    Ok((cluster.to_string(), arn.to_string()))
}

/// The TCS heartbeat (no messageId; the agent does not answer it).
pub(super) fn heartbeat() -> String {
    json!({"type": "HeartbeatMessage", "message": {"healthy": true}}).to_string()
}

/// Validates and records one frame; returns the ack to send, if it is valid.
pub(super) fn on_frame(shared: &Shared, session: &Session, text: &str) -> Option<String> {
    let (headers, body) = split_frame(text);
    let json: Option<Value> = body.and_then(|b| serde_json::from_str(b).ok());
    let msg_type = json
        .as_ref()
        .and_then(|j| j["type"].as_str())
        .map(String::from);
    let outcome = validate(shared, session, text, &headers, body, json.as_ref());
    shared.update(|s| {
        s.tcs_frames.push(AgentFrame {
            at: SystemTime::now(),
            connection: session.id,
            raw: text.to_string(),
            headers,
            json: json.clone(),
            msg_type,
            valid: outcome.is_ok(),
            error: outcome.as_ref().err().cloned(),
        })
    });
    let ack = outcome.ok()?;
    Some(json!({"type": ack, "message": {}}).to_string())
}

/// The header block (if any) and the JSON after the blank line.
fn split_frame(text: &str) -> (Vec<(String, String)>, Option<&str>) {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (vec![], None);
    };
    let headers = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (headers, Some(body))
}

fn validate(
    shared: &Shared,
    session: &Session,
    text: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    json: Option<&Value>,
) -> Result<&'static str, String> {
    if text.len() > MAX_FRAME {
        return Err(format!(
            "frame of {} bytes is over the 1 MiB limit",
            text.len()
        ));
    }
    let body = body.ok_or("unsigned frame: no header block and blank line before the JSON")?;
    check_signature(shared, session, headers, body)?;
    let json = json.ok_or("the payload after the header block is not JSON")?;
    let (kind, message) = envelope(json)?;
    let ack = PUBLISH_TYPES
        .iter()
        .find(|(publish, _)| *publish == kind)
        .map(|(_, ack)| *ack)
        .ok_or_else(|| format!("{kind:?} is not an agent-to-server TCS message"))?;
    models()
        .tcs
        .validate(kind, message, "message", WIRE_REQUIRED)?;
    let metadata = &message["metadata"];
    if metadata["cluster"] != session.cluster.as_str() {
        return Err(format!(
            "metadata.cluster {} is not the session's {:?}",
            metadata["cluster"], session.cluster
        ));
    }
    if metadata["containerInstance"] != session.instance_arn.as_str() {
        return Err(format!(
            "metadata.containerInstance {} is not the session's {:?}",
            metadata["containerInstance"], session.instance_arn
        ));
    }
    Ok(ack)
}

fn check_signature(
    shared: &Shared,
    session: &Session,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), String> {
    let host = shared.endpoint.trim_start_matches("http://");
    match sigv4::header(headers, "host") {
        Some(h) if h == host => {}
        other => return Err(format!("frame Host header {other:?} is not {host:?}")),
    }
    let received = Received {
        method: "GET",
        path: &session.path,
        query: &session.raw_query,
        headers,
        body: body.as_bytes(),
    };
    sigv4::verify(&received, &shared.config.identity(), SystemTime::now())
        .map_err(|e| format!("frame signature refused: {}: {}", e.code(), e.message()))
}
