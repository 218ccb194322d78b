//! TCS (Telemetry Communication Service) wire codec: the messages of `tcs-api-2.json` in the
//! same `{"type":…,"message":…}` envelope as ACS, and the pure batching of one collection cycle
//! into publish requests.
//!
//! Pure: no I/O, no timers. Each outbound frame must additionally be signed before it is
//! written (`control::sigv4::signed_tcs_frame`); [`encode`] gives the JSON that goes after the
//! signature block. [`decode`] never panics; unknown types are [`Inbound::Unknown`].

mod batch;
mod messages;

#[cfg(test)]
mod tests;

use serde_json::Map;

use crate::control::acs::envelope::{self, Frame, Incoming};
pub use crate::control::acs::DecodeError;
pub use batch::{
    health_requests, metrics_requests, HealthCycle, MetricsCycle, MAX_REQUEST_BYTES,
    MAX_TASKS_PER_REQUEST,
};
pub use messages::*;

/// The exception shapes TCS may send.
pub const EXCEPTIONS: [&str; 4] = [
    "BadRequestException",
    "ResourceValidationException",
    "InvalidParameterException",
    "ServerException",
];

/// A message from TCS to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Heartbeat(HeartbeatMessage),
    AckPublishMetric(AckPublishMetric),
    AckPublishHealth(AckPublishHealth),
    AckPublishInstanceStatus(AckPublishInstanceStatus),
    StopTelemetrySession(StopTelemetrySessionMessage),
    /// One of [`EXCEPTIONS`] (`kind`) with its text.
    Exception {
        kind: String,
        message: String,
    },
    Unknown {
        kind: String,
    },
}

/// A message from the agent to TCS.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    PublishMetrics(PublishMetricsRequest),
    PublishHealth(PublishHealthRequest),
    PublishInstanceStatus(PublishInstanceStatusRequest),
}

/// Decodes one text frame from TCS.
pub fn decode(frame: &str) -> Result<Inbound, DecodeError> {
    let (kind, message) = match envelope::parse_incoming(frame, &EXCEPTIONS)? {
        Incoming::Typed(kind, message) => (kind, message),
        Incoming::Exception(kind, message) => return Ok(Inbound::Exception { kind, message }),
    };
    use envelope::typed;
    let k = kind.as_str();
    Ok(match k {
        "HeartbeatMessage" => Inbound::Heartbeat(typed(k, &message)?),
        "AckPublishMetric" => Inbound::AckPublishMetric(typed(k, &message)?),
        "AckPublishHealth" => Inbound::AckPublishHealth(typed(k, &message)?),
        "AckPublishInstanceStatus" => Inbound::AckPublishInstanceStatus(typed(k, &message)?),
        "StopTelemetrySessionMessage" => Inbound::StopTelemetrySession(typed(k, &message)?),
        _ if EXCEPTIONS.contains(&k) => {
            let exception: TextMessage = typed(k, &message)?;
            Inbound::Exception {
                message: exception.message.unwrap_or_default(),
                kind,
            }
        }
        _ => Inbound::Unknown { kind },
    })
}

/// The JSON envelope of one frame for TCS (to be signed), e.g.
/// `{"type":"PublishMetricsRequest","message":{"metadata":{…},"timestamp":1795695065.26}}`.
pub fn encode(msg: &Outbound) -> String {
    match msg {
        Outbound::PublishMetrics(m) => envelope::encode("PublishMetricsRequest", m),
        Outbound::PublishHealth(m) => envelope::encode("PublishHealthRequest", m),
        Outbound::PublishInstanceStatus(m) => envelope::encode("PublishInstanceStatusRequest", m),
    }
}

/// Encodes a message as TCS would send it (for the test control plane).
pub fn encode_inbound(msg: &Inbound) -> String {
    match msg {
        Inbound::Heartbeat(m) => envelope::encode("HeartbeatMessage", m),
        Inbound::AckPublishMetric(m) => envelope::encode("AckPublishMetric", m),
        Inbound::AckPublishHealth(m) => envelope::encode("AckPublishHealth", m),
        Inbound::AckPublishInstanceStatus(m) => envelope::encode("AckPublishInstanceStatus", m),
        Inbound::StopTelemetrySession(m) => envelope::encode("StopTelemetrySessionMessage", m),
        Inbound::Exception { kind, message } => envelope::encode(
            kind,
            &TextMessage {
                message: Some(message.clone()),
            },
        ),
        Inbound::Unknown { kind } => envelope::encode(kind, &Map::new()),
    }
}

/// Decodes the JSON part of a frame the agent sent (for the test control plane; strip the
/// signature block first).
pub fn decode_outbound(body: &str) -> Result<Outbound, DecodeError> {
    let Frame::Typed { kind, message } = envelope::parse(body)? else {
        return Err(DecodeError::MissingType);
    };
    use envelope::typed;
    let k = kind.as_str();
    Ok(match k {
        "PublishMetricsRequest" => Outbound::PublishMetrics(typed(k, &message)?),
        "PublishHealthRequest" => Outbound::PublishHealth(typed(k, &message)?),
        "PublishInstanceStatusRequest" => Outbound::PublishInstanceStatus(typed(k, &message)?),
        _ => return Err(DecodeError::UnexpectedType { kind }),
    })
}
