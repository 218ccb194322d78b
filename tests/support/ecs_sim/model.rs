//! Validators driven by the service models in `tests/fixtures/spec/`.
//!
//! `Smithy` checks an ECS JSON 1.1 request body against an operation's input
//! structure in `ecs-api-smithy.json`: member names, JSON types, required
//! members, enum values, `length` and `range`. `Api2` checks an ACS/TCS
//! `message` against a shape of `acs-api-2.json`/`tcs-api-2.json`, where the
//! model's `required` lists are nearly empty, so callers add the members the
//! official agent always sends.
//!
//! Both are stricter than AWS in one way on purpose: a member the model does not
//! know is an error (AWS ignores it), so a misspelt field cannot go unnoticed.
//! `smithy.api#pattern` is not checked (no regex crate).

use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The three models, parsed once per test binary.
pub struct Models {
    pub ecs: Smithy,
    pub acs: Api2,
    pub tcs: Api2,
}

pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec");
        Models {
            ecs: Smithy {
                shapes: load(&dir.join("ecs-api-smithy.json")),
            },
            acs: Api2 {
                shapes: load(&dir.join("acs-api-2.json")),
            },
            tcs: Api2 {
                shapes: load(&dir.join("tcs-api-2.json")),
            },
        }
    })
}

fn load(path: &Path) -> Map<String, Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read model {}: {e}", path.display()));
    let mut doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parse model {}: {e}", path.display()));
    match doc.get_mut("shapes").map(Value::take) {
        Some(Value::Object(shapes)) => shapes,
        _ => panic!("model {} has no shapes", path.display()),
    }
}

/// A request that does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Wrong JSON type or unknown member: AWS answers `SerializationException`.
    Type(String),
    /// Missing required member, bad enum value, length or range.
    Constraint(String),
}

impl Violation {
    pub fn code(&self) -> &'static str {
        match self {
            Violation::Type(_) => "SerializationException",
            Violation::Constraint(_) => "InvalidParameterException",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Violation::Type(m) | Violation::Constraint(m) => m,
        }
    }
}

const NAMESPACE: &str = "com.amazonaws.ecs#";

pub struct Smithy {
    shapes: Map<String, Value>,
}

impl Smithy {
    /// The input structure of `operation` (e.g. `RegisterContainerInstance`), if it exists.
    pub fn input_of(&self, operation: &str) -> Option<String> {
        let op = self.shapes.get(&format!("{NAMESPACE}{operation}"))?;
        (op["type"] == "operation").then(|| op["input"]["target"].as_str().map(String::from))?
    }

    pub fn validate_input(&self, operation: &str, body: &Value) -> Result<(), Violation> {
        let input = self
            .input_of(operation)
            .ok_or_else(|| Violation::Type(format!("no operation {operation}")))?;
        self.check(&input, &Map::new(), body, "")
    }

    fn check(
        &self,
        target: &str,
        member_traits: &Map<String, Value>,
        v: &Value,
        path: &str,
    ) -> Result<(), Violation> {
        if v.is_null() {
            return Ok(());
        }
        let (kind, shape) = self.resolve(target);
        let empty = Map::new();
        let shape_traits = shape
            .and_then(|s| s["traits"].as_object())
            .unwrap_or(&empty);
        let constraint = |name: &str| member_traits.get(name).or_else(|| shape_traits.get(name));
        let at = if path.is_empty() { "the request" } else { path };
        let type_error =
            |what: &str| Violation::Type(format!("Expected {what} at '{at}', found {v}"));
        match kind {
            "structure" | "union" => {
                let obj = v.as_object().ok_or_else(|| type_error("an object"))?;
                self.check_structure(shape.unwrap_or(&Value::Null), obj, path)
            }
            "list" | "set" => {
                let items = v.as_array().ok_or_else(|| type_error("a list"))?;
                check_length(constraint("smithy.api#length"), items.len(), path)?;
                let member = shape.map(|s| &s["member"]).unwrap_or(&Value::Null);
                let traits = member["traits"].as_object().unwrap_or(&empty);
                let item_target = member["target"].as_str().unwrap_or("smithy.api#Document");
                for (i, item) in items.iter().enumerate() {
                    self.check(item_target, traits, item, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            "map" => {
                let obj = v.as_object().ok_or_else(|| type_error("a map"))?;
                check_length(constraint("smithy.api#length"), obj.len(), path)?;
                let value_target = shape
                    .and_then(|s| s["value"]["target"].as_str())
                    .unwrap_or("smithy.api#Document");
                for (k, item) in obj {
                    self.check(value_target, &empty, item, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            "string" | "blob" => {
                let s = v.as_str().ok_or_else(|| type_error("a string"))?;
                check_length(constraint("smithy.api#length"), s.chars().count(), path)
            }
            "enum" => {
                let s = v.as_str().ok_or_else(|| type_error("a string"))?;
                check_enum(shape.unwrap_or(&Value::Null), s, path)
            }
            "boolean" => v
                .as_bool()
                .map(|_| ())
                .ok_or_else(|| type_error("a boolean")),
            "integer" | "intEnum" | "short" | "byte" => {
                let n = v.as_i64().filter(|n| i32::try_from(*n).is_ok());
                let n = n.ok_or_else(|| type_error("a 32-bit integer"))?;
                check_range(constraint("smithy.api#range"), n as f64, path)
            }
            "long" => {
                let n = v.as_i64().ok_or_else(|| type_error("a 64-bit integer"))?;
                check_range(constraint("smithy.api#range"), n as f64, path)
            }
            "double" | "float" | "bigDecimal" | "bigInteger" => {
                let n = v.as_f64().ok_or_else(|| type_error("a number"))?;
                check_range(constraint("smithy.api#range"), n, path)
            }
            "timestamp" => v
                .as_f64()
                .map(|_| ())
                .ok_or_else(|| type_error("epoch seconds")),
            _ => Ok(()),
        }
    }

    fn check_structure(
        &self,
        shape: &Value,
        obj: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Violation> {
        let empty = Map::new();
        let members = shape["members"].as_object().unwrap_or(&empty);
        for (name, value) in obj {
            let member = members.get(name).ok_or_else(|| {
                Violation::Type(format!(
                    "Unknown member '{}' (not in the model)",
                    join(path, name)
                ))
            })?;
            let traits = member["traits"].as_object().unwrap_or(&empty);
            let target = member["target"].as_str().unwrap_or("smithy.api#Document");
            self.check(target, traits, value, &join(path, name))?;
        }
        for (name, member) in members {
            let required = member["traits"].get("smithy.api#required").is_some();
            if required && obj.get(name).is_none_or(Value::is_null) {
                return Err(Violation::Constraint(format!(
                    "Value null at '{}' failed to satisfy constraint: Member must not be null",
                    join(path, name)
                )));
            }
        }
        Ok(())
    }

    /// The shape kind of `target`, with the shape itself unless it is a prelude type.
    fn resolve(&self, target: &str) -> (&str, Option<&Value>) {
        if let Some(shape) = self.shapes.get(target) {
            return (shape["type"].as_str().unwrap_or("document"), Some(shape));
        }
        let kind = match target.trim_start_matches("smithy.api#") {
            "String" => "string",
            "Boolean" | "PrimitiveBoolean" => "boolean",
            "Integer" | "PrimitiveInteger" | "Short" | "Byte" => "integer",
            "Long" | "PrimitiveLong" => "long",
            "Double" | "Float" | "PrimitiveDouble" | "PrimitiveFloat" => "double",
            "Timestamp" => "timestamp",
            "Blob" => "blob",
            _ => "document",
        };
        (kind, None)
    }
}

fn check_enum(shape: &Value, s: &str, path: &str) -> Result<(), Violation> {
    let empty = Map::new();
    let values: Vec<&str> = shape["members"]
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .map(|(name, m)| m["traits"]["smithy.api#enumValue"].as_str().unwrap_or(name))
        .collect();
    if values.contains(&s) {
        return Ok(());
    }
    Err(Violation::Constraint(format!(
        "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        values.join(", ")
    )))
}

fn check_length(length: Option<&Value>, n: usize, path: &str) -> Result<(), Violation> {
    let Some(length) = length else { return Ok(()) };
    if let Some(min) = length["min"].as_u64().filter(|min| (n as u64) < *min) {
        return Err(Violation::Constraint(format!(
            "Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"
        )));
    }
    if let Some(max) = length["max"].as_u64().filter(|max| n as u64 > *max) {
        return Err(Violation::Constraint(format!(
            "Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        )));
    }
    Ok(())
}

fn check_range(range: Option<&Value>, n: f64, path: &str) -> Result<(), Violation> {
    let Some(range) = range else { return Ok(()) };
    let below = range["min"].as_f64().is_some_and(|min| n < min);
    let above = range["max"].as_f64().is_some_and(|max| n > max);
    if below || above {
        return Err(Violation::Constraint(format!(
            "Value '{n}' at '{path}' failed to satisfy constraint: Member must be within {range}"
        )));
    }
    Ok(())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// An AWS "api-2" JSON model (ACS, TCS).
pub struct Api2 {
    shapes: Map<String, Value>,
}

/// Members the official agent always sends although the model does not require them.
pub type ExtraRequired = [(&'static str, &'static [&'static str])];

impl Api2 {
    pub fn has_shape(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// Checks `v` against shape `name`; the error names the offending member.
    pub fn validate(
        &self,
        name: &str,
        v: &Value,
        path: &str,
        extra: &ExtraRequired,
    ) -> Result<(), String> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| format!("shape {name} is not in the model"))?;
        if v.is_null() {
            return Ok(());
        }
        let type_error = |what: &str| format!("{path}: expected {what} ({name}), found {v}");
        let kind = shape["type"].as_str().unwrap_or("");
        match kind {
            "structure" => {
                let obj = v.as_object().ok_or_else(|| type_error("an object"))?;
                self.validate_structure(name, shape, obj, path, extra)
            }
            "list" => {
                let items = v.as_array().ok_or_else(|| type_error("a list"))?;
                check_bounds(shape, items.len() as f64, path, "length")?;
                let member = shape["member"]["shape"].as_str().unwrap_or("");
                for (i, item) in items.iter().enumerate() {
                    self.validate(member, item, &format!("{path}[{i}]"), extra)?;
                }
                Ok(())
            }
            "map" => {
                let obj = v.as_object().ok_or_else(|| type_error("a map"))?;
                let value = shape["value"]["shape"].as_str().unwrap_or("");
                for (k, item) in obj {
                    self.validate(value, item, &format!("{path}.{k}"), extra)?;
                }
                Ok(())
            }
            "string" | "blob" => {
                let s = v.as_str().ok_or_else(|| type_error("a string"))?;
                check_bounds(shape, s.chars().count() as f64, path, "length")?;
                match shape["enum"].as_array() {
                    Some(values) if !values.iter().any(|e| e == s) => {
                        Err(format!("{path}: {s:?} is not one of {}", shape["enum"]))
                    }
                    _ => Ok(()),
                }
            }
            "boolean" => v
                .as_bool()
                .map(|_| ())
                .ok_or_else(|| type_error("a boolean")),
            "integer" | "long" => {
                let n = v.as_i64().ok_or_else(|| type_error("an integer"))?;
                check_bounds(shape, n as f64, path, "value")
            }
            "double" | "float" | "timestamp" => {
                let n = v.as_f64().ok_or_else(|| type_error("a number"))?;
                check_bounds(shape, n, path, "value")
            }
            other => Err(format!("{path}: unsupported shape type {other:?} ({name})")),
        }
    }

    fn validate_structure(
        &self,
        name: &str,
        shape: &Value,
        obj: &Map<String, Value>,
        path: &str,
        extra: &ExtraRequired,
    ) -> Result<(), String> {
        let empty = Map::new();
        let members = shape["members"].as_object().unwrap_or(&empty);
        for (key, value) in obj {
            let member = members
                .get(key)
                .ok_or_else(|| format!("{}: unknown member of {name}", join(path, key)))?;
            let target = member["shape"].as_str().unwrap_or("");
            self.validate(target, value, &join(path, key), extra)?;
        }
        let model_required = shape["required"].as_array().into_iter().flatten();
        let model_required = model_required.filter_map(Value::as_str);
        let extra_required = extra
            .iter()
            .filter(|(s, _)| *s == name)
            .flat_map(|(_, m)| m.iter().copied());
        for key in model_required.chain(extra_required) {
            if obj.get(key).is_none_or(Value::is_null) {
                return Err(format!(
                    "{}: required member of {name} is missing",
                    join(path, key)
                ));
            }
        }
        Ok(())
    }
}

fn check_bounds(shape: &Value, n: f64, path: &str, what: &str) -> Result<(), String> {
    if let Some(min) = shape["min"].as_f64().filter(|min| n < *min) {
        return Err(format!("{path}: {what} {n} is below the minimum {min}"));
    }
    if let Some(max) = shape["max"].as_f64().filter(|max| n > *max) {
        return Err(format!("{path}: {what} {n} is above the maximum {max}"));
    }
    Ok(())
}
