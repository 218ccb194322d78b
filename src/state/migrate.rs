//! Schema migrations: one function per version step, applied in order until the document is
//! at [`VERSION`](super::VERSION). Each step has a fixture of the older version under
//! `tests/fixtures/state/`.

use serde_json::{json, Value};

use super::{SavedState, VERSION};

/// The registration file of schema version 1, before tasks were saved.
pub const V1_FILE: &str = "ecs-agent-metadata.json";

/// Why a document could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a state document of any version: truncated, damaged, missing fields.
    Corrupt(String),
    /// A schema version above [`VERSION`]: written by a newer agent (a downgrade). The document
    /// is probably fine; this agent cannot read it and must not replace it.
    Newer(u64),
}

/// Parses a state document of any known version into the current one.
pub fn parse(bytes: &[u8]) -> Result<SavedState, ParseError> {
    let corrupt = |e: serde_json::Error| ParseError::Corrupt(e.to_string());
    let mut doc: Value = serde_json::from_slice(bytes).map_err(corrupt)?;
    loop {
        let version = doc
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| ParseError::Corrupt("no schema version".into()))?;
        doc = match version {
            1 => v1_to_v2(doc),
            v if v == u64::from(VERSION) => break,
            v if v > u64::from(VERSION) => return Err(ParseError::Newer(v)),
            v => return Err(ParseError::Corrupt(format!("unknown schema version {v}"))),
        };
    }
    serde_json::from_value(doc).map_err(corrupt)
}

/// Version 1 held only the registration, flat; version 2 nests it and adds the tasks.
fn v1_to_v2(v1: Value) -> Value {
    json!({
        "version": 2,
        "metadata": {
            "cluster": v1["cluster"],
            "container_instance_arn": v1["container_instance_arn"],
            "ec2_instance_id": v1["ec2_instance_id"],
            "availability_zone": v1["availability_zone"],
        },
        "tasks": [],
        "images": {},
        "acs_seq_num": null,
    })
}
