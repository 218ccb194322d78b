//! ACS (Agent Communication Service) wire codec: the messages of `acs-api-2.json` and the
//! `{"type":…,"message":…}` envelope they travel in, as text websocket frames.
//!
//! Pure: no I/O, no session logic (which messages to ack, timers). [`decode`] never panics; an
//! unknown type is [`Inbound::Unknown`], not an error, as the official agent logs and drops
//! those. [`encode`] writes what the Go agent writes (members in alphabetical order, absent
//! optional members omitted, HTML characters escaped). `encode_inbound` and `decode_outbound`
//! exist for the test control plane and round-trip tests.
//!
//! Limits: ENIs in the attach messages are kept as raw JSON; a decode error names the
//! top-level member at fault, not the full path inside it.

pub(crate) mod envelope;
mod messages;
mod payload;

#[cfg(test)]
pub(crate) mod tests;

use serde_json::{Map, Value};

pub use envelope::DecodeError;
use envelope::{Frame, Incoming};
pub use messages::*;
pub use payload::{PayloadMessage, PayloadTask, RejectedTask};

/// The exception shapes ACS may send, in the envelope or bare (`{"<Name>":"<text>"}`).
pub const EXCEPTIONS: [&str; 6] = [
    "ServerException",
    "BadRequestException",
    "InvalidClusterException",
    "InvalidInstanceException",
    "AccessDeniedException",
    "InactiveInstanceException",
];

/// A message from ACS to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Heartbeat(HeartbeatMessage),
    Payload(PayloadMessage),
    IamRoleCredentials(IamRoleCredentialsMessage),
    TaskManifest(TaskManifestMessage),
    TaskStopVerificationAck(TaskStopVerificationAck),
    /// Checked against [`AttachTaskNetworkInterfacesMessage`], kept as received.
    AttachTaskNetworkInterfaces(Value),
    /// Checked against [`AttachInstanceNetworkInterfacesMessage`], kept as received.
    AttachInstanceNetworkInterfaces(Value),
    /// Checked against [`ConfirmAttachmentMessage`], kept as received.
    ConfirmAttachment(Value),
    /// Checked against [`StageUpdateMessage`], kept as received.
    StageUpdate(Value),
    /// Checked against [`PerformUpdateMessage`], kept as received.
    PerformUpdate(Value),
    Close(CloseMessage),
    Error(ErrorMessage),
    /// One of [`EXCEPTIONS`] (`kind`) with its text.
    Exception {
        kind: String,
        message: String,
    },
    /// A type this codec does not know; the official agent logs and drops these.
    Unknown {
        kind: String,
    },
}

/// A message from the agent to ACS.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Ack(AckRequest),
    HeartbeatAck(HeartbeatAckRequest),
    IamRoleCredentialsAck(IamRoleCredentialsAckRequest),
    TaskStopVerification(TaskStopVerificationMessage),
    Nack(NackRequest),
}

/// Decodes one text frame from ACS.
pub fn decode(frame: &str) -> Result<Inbound, DecodeError> {
    let (kind, message) = match envelope::parse_incoming(frame, &EXCEPTIONS)? {
        Incoming::Typed(kind, message) => (kind, message),
        Incoming::Exception(kind, message) => return Ok(Inbound::Exception { kind, message }),
    };
    use envelope::typed;
    let k = kind.as_str();
    Ok(match k {
        "HeartbeatMessage" => Inbound::Heartbeat(typed(k, &message)?),
        "PayloadMessage" => Inbound::Payload(typed(k, &message)?),
        "IAMRoleCredentialsMessage" => Inbound::IamRoleCredentials(typed(k, &message)?),
        "TaskManifestMessage" => Inbound::TaskManifest(typed(k, &message)?),
        "TaskStopVerificationAck" => Inbound::TaskStopVerificationAck(typed(k, &message)?),
        "AttachTaskNetworkInterfacesMessage" => {
            typed::<AttachTaskNetworkInterfacesMessage>(k, &message)?;
            Inbound::AttachTaskNetworkInterfaces(message)
        }
        "AttachInstanceNetworkInterfacesMessage" => {
            typed::<AttachInstanceNetworkInterfacesMessage>(k, &message)?;
            Inbound::AttachInstanceNetworkInterfaces(message)
        }
        "ConfirmAttachmentMessage" => {
            typed::<ConfirmAttachmentMessage>(k, &message)?;
            Inbound::ConfirmAttachment(message)
        }
        "StageUpdateMessage" => {
            typed::<StageUpdateMessage>(k, &message)?;
            Inbound::StageUpdate(message)
        }
        "PerformUpdateMessage" => {
            typed::<PerformUpdateMessage>(k, &message)?;
            Inbound::PerformUpdate(message)
        }
        "CloseMessage" => Inbound::Close(typed(k, &message)?),
        "ErrorMessage" => Inbound::Error(typed(k, &message)?),
        _ if EXCEPTIONS.contains(&k) => {
            let exception: ExceptionMessage = typed(k, &message)?;
            Inbound::Exception {
                message: exception.message.unwrap_or_default(),
                kind,
            }
        }
        _ => Inbound::Unknown { kind },
    })
}

/// Encodes one frame for ACS, e.g.
/// `{"type":"HeartbeatAckRequest","message":{"messageId":"acs-hb-1"}}`.
pub fn encode(msg: &Outbound) -> String {
    match msg {
        Outbound::Ack(m) => envelope::encode("AckRequest", m),
        Outbound::HeartbeatAck(m) => envelope::encode("HeartbeatAckRequest", m),
        Outbound::IamRoleCredentialsAck(m) => envelope::encode("IAMRoleCredentialsAckRequest", m),
        Outbound::TaskStopVerification(m) => envelope::encode("TaskStopVerificationMessage", m),
        Outbound::Nack(m) => envelope::encode("NackRequest", m),
    }
}

/// Encodes a message as ACS would send it (for the test control plane).
pub fn encode_inbound(msg: &Inbound) -> String {
    match msg {
        Inbound::Heartbeat(m) => envelope::encode("HeartbeatMessage", m),
        Inbound::Payload(m) => envelope::encode("PayloadMessage", m),
        Inbound::IamRoleCredentials(m) => envelope::encode("IAMRoleCredentialsMessage", m),
        Inbound::TaskManifest(m) => envelope::encode("TaskManifestMessage", m),
        Inbound::TaskStopVerificationAck(m) => envelope::encode("TaskStopVerificationAck", m),
        Inbound::AttachTaskNetworkInterfaces(v) => {
            envelope::encode("AttachTaskNetworkInterfacesMessage", v)
        }
        Inbound::AttachInstanceNetworkInterfaces(v) => {
            envelope::encode("AttachInstanceNetworkInterfacesMessage", v)
        }
        Inbound::ConfirmAttachment(v) => envelope::encode("ConfirmAttachmentMessage", v),
        Inbound::StageUpdate(v) => envelope::encode("StageUpdateMessage", v),
        Inbound::PerformUpdate(v) => envelope::encode("PerformUpdateMessage", v),
        Inbound::Close(m) => envelope::encode("CloseMessage", m),
        Inbound::Error(m) => envelope::encode("ErrorMessage", m),
        Inbound::Exception { kind, message } => envelope::encode(
            kind,
            &ExceptionMessage {
                message: Some(message.clone()),
            },
        ),
        Inbound::Unknown { kind } => envelope::encode(kind, &Map::new()),
    }
}

/// Decodes a frame the agent sent (for the test control plane).
pub fn decode_outbound(frame: &str) -> Result<Outbound, DecodeError> {
    let Frame::Typed { kind, message } = envelope::parse(frame)? else {
        return Err(DecodeError::MissingType);
    };
    use envelope::typed;
    let k = kind.as_str();
    Ok(match k {
        "AckRequest" => Outbound::Ack(typed(k, &message)?),
        "HeartbeatAckRequest" => Outbound::HeartbeatAck(typed(k, &message)?),
        "IAMRoleCredentialsAckRequest" => Outbound::IamRoleCredentialsAck(typed(k, &message)?),
        "TaskStopVerificationMessage" => Outbound::TaskStopVerification(typed(k, &message)?),
        "NackRequest" => Outbound::Nack(typed(k, &message)?),
        _ => return Err(DecodeError::UnexpectedType { kind }),
    })
}

/// The exception in the body of a refused websocket upgrade, as `(name, text)`: either the bare
/// form `{"InvalidClusterException":"Invalid cluster"}` or an envelope
/// `{"type":"InvalidClusterException","message":{"message":"Invalid cluster"}}`.
pub fn decode_handshake_error(body: &str) -> Option<(String, String)> {
    match envelope::parse(body).ok()? {
        Frame::Bare { kind, text } => Some((kind, text)),
        Frame::Typed { kind, message } => Some((kind, envelope::exception_text(&message))),
    }
}
