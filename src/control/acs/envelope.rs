//! The websocket envelope ACS and TCS share: every frame is `{"type":"<Shape>","message":{…}}`,
//! and an exception may also arrive bare, as `{"<Exception>":"<text>"}`.
//!
//! Decoding never panics and tells which message field did not fit; encoding writes what Go's
//! `encoding/json` writes (compact, HTML characters escaped), so frames match the official
//! agent's byte for byte when the field order does. Used by `acs` and `tcs`; no I/O.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Why a frame could not be decoded. An unknown `type` is not an error (see `Inbound::Unknown`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is not JSON at all (or is truncated).
    #[error("frame is not valid JSON: {detail}")]
    Json { detail: String },
    /// The frame is JSON but has no string `type` and is not a bare exception.
    #[error("frame has no string \"type\"")]
    MissingType,
    /// A known type without a `message` member.
    #[error("{kind}: frame has no \"message\"")]
    MissingMessage { kind: String },
    /// A known type whose message does not fit its shape; `field` is the top-level member at
    /// fault (`message` when the message itself is not an object).
    #[error("{kind}.{field}: {detail}")]
    Field {
        kind: String,
        field: String,
        detail: String,
    },
    /// A type this direction of the protocol does not carry (only from `decode_outbound`).
    #[error("unexpected message type {kind}")]
    UnexpectedType { kind: String },
}

/// A frame split into its type and message, not yet typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// `{"type":…,"message":…}`; a `null` message reads as `{}` (as in Go).
    Typed { kind: String, message: Value },
    /// `{"<Name>":"<text>"}` without a `type` member: the unframed error form.
    Bare { kind: String, text: String },
}

/// Splits a frame into type and message.
pub(crate) fn parse(frame: &str) -> Result<Frame, DecodeError> {
    let value: Value = serde_json::from_str(frame).map_err(|e| DecodeError::Json {
        detail: e.to_string(),
    })?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::MissingType);
    };
    if let Some(Value::String(kind)) = object.remove("type") {
        return match object.remove("message") {
            None => Err(DecodeError::MissingMessage { kind }),
            Some(Value::Null) => Ok(Frame::Typed {
                kind,
                message: Value::Object(Map::new()),
            }),
            Some(message) => Ok(Frame::Typed { kind, message }),
        };
    }
    bare(&object).ok_or(DecodeError::MissingType)
}

/// A frame as a decoder takes it: a typed message, or a bare exception of a known kind.
pub(crate) enum Incoming {
    Typed(String, Value),
    Exception(String, String),
}

/// Splits an incoming frame; the bare form is accepted only for the `exceptions` named.
pub(crate) fn parse_incoming(frame: &str, exceptions: &[&str]) -> Result<Incoming, DecodeError> {
    match parse(frame)? {
        Frame::Typed { kind, message } => Ok(Incoming::Typed(kind, message)),
        Frame::Bare { kind, text } if exceptions.contains(&kind.as_str()) => {
            Ok(Incoming::Exception(kind, text))
        }
        Frame::Bare { .. } => Err(DecodeError::MissingType),
    }
}

/// The bare `{"<Name>":"<text>"}` form: exactly one member, a string.
fn bare(object: &Map<String, Value>) -> Option<Frame> {
    let mut members = object.iter();
    match (members.next(), members.next()) {
        (Some((kind, Value::String(text))), None) => Some(Frame::Bare {
            kind: kind.clone(),
            text: text.clone(),
        }),
        _ => None,
    }
}

/// Decodes a message into its shape, naming the member at fault on failure.
pub(crate) fn typed<T: DeserializeOwned>(kind: &str, message: &Value) -> Result<T, DecodeError> {
    T::deserialize(message).map_err(|e| DecodeError::Field {
        kind: kind.to_owned(),
        field: culprit::<T>(message),
        detail: e.to_string(),
    })
}

/// The first top-level member that fails on its own (every member of these shapes is optional,
/// so a one-member object decodes unless that member is wrong), or `message`.
pub(crate) fn culprit<T: DeserializeOwned>(message: &Value) -> String {
    let Value::Object(map) = message else {
        return "message".to_owned();
    };
    map.iter()
        .find(|(key, value)| {
            let one = Map::from_iter([((*key).clone(), (*value).clone())]);
            T::deserialize(&Value::Object(one)).is_err()
        })
        .map_or_else(|| "message".to_owned(), |(key, _)| key.clone())
}

/// The text of an exception message `{"message":"…"}` (empty when absent or not a string).
pub(crate) fn exception_text(message: &Value) -> String {
    message
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads `null` as the default (empty list), as Go does for slices.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Writes `{"type":kind,"message":message}` as Go's `json.Marshal` does.
pub(crate) fn encode<T: Serialize + ?Sized>(kind: &str, message: &T) -> String {
    #[derive(Serialize)]
    struct Envelope<'a, T: ?Sized> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a T,
    }
    // Serialising these shapes cannot fail: all map keys are strings and no Serialize impl
    // returns an error (non-finite floats become `null`).
    let json = serde_json::to_string(&Envelope { kind, message })
        .expect("ACS/TCS message shapes always serialise");
    go_html_escape(json)
}

/// Go's encoder escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. In compact JSON these
/// characters can only occur inside strings, so replacing them everywhere is exact.
fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Serialises an `f64` as Go's `encoding/json` does for values an agent sends: integral values
/// without a fraction (`5`, not `5.0`), others in shortest round-trip form.
pub(crate) fn go_f64<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    // Exact integers up to 2^53 print the same digits either way; beyond that keep the float.
    if value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

/// [`go_f64`] for optional members (only called when `Some`, with `skip_serializing_if`).
pub(crate) fn go_f64_opt<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => go_f64(v, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_characters_like_go() {
        let frame = encode(
            "NackRequest",
            &serde_json::json!({"reason": "a<b>&c\u{2028}"}),
        );
        assert_eq!(
            frame,
            r#"{"type":"NackRequest","message":{"reason":"a\u003cb\u003e\u0026c\u2028"}}"#
        );
    }

    #[test]
    fn null_message_reads_as_empty_object() {
        let frame = parse(r#"{"type":"X","message":null}"#).unwrap();
        assert_eq!(
            frame,
            Frame::Typed {
                kind: "X".into(),
                message: serde_json::json!({})
            }
        );
    }

    #[test]
    fn bare_form_needs_exactly_one_string_member() {
        assert!(matches!(parse(r#"{"A":"b"}"#), Ok(Frame::Bare { .. })));
        assert_eq!(parse(r#"{"A":"b","C":"d"}"#), Err(DecodeError::MissingType));
        assert_eq!(parse(r#"{"A":1}"#), Err(DecodeError::MissingType));
        assert_eq!(parse(r#"[1]"#), Err(DecodeError::MissingType));
        assert_eq!(parse(r#"{"type":5}"#), Err(DecodeError::MissingType));
    }

    #[test]
    fn floats_print_like_go() {
        #[derive(Serialize)]
        struct F(#[serde(serialize_with = "go_f64")] f64);
        let text = |v| serde_json::to_string(&F(v)).unwrap();
        assert_eq!(text(5.0), "5");
        assert_eq!(text(1795695065.26), "1795695065.26");
        assert_eq!(text(0.5), "0.5");
        assert_eq!(text(-3.0), "-3");
    }
}
