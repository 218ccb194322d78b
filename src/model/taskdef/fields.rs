//! Typed reads from a task definition's JSON that never stop at the first mistake.
//!
//! An [`Obj`] is one JSON object plus the path that leads to it; each read checks the JSON type,
//! records a [`TaskDefError`] naming the exact path when it is wrong, and returns `None` so the
//! caller carries on. `null` counts as absent, as it does for the ECS API.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::TaskDefError;

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub(super) struct Errors(RefCell<Vec<TaskDefError>>);

impl Errors {
    pub fn push(&self, field: impl Into<String>, message: impl Into<String>) {
        self.0.borrow_mut().push(TaskDefError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The problems in the order found, each reported once.
    pub fn into_vec(self) -> Vec<TaskDefError> {
        let mut out: Vec<TaskDefError> = Vec::new();
        for e in self.0.into_inner() {
            if !out.contains(&e) {
                out.push(e);
            }
        }
        out
    }
}

/// `base.key`, or `key` at the top.
pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// What a JSON value is, for messages: "a string", "a number", ...
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON object of the task definition and where it sits.
#[derive(Clone)]
pub(super) struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: String,
    errors: &'a Errors,
}

impl<'a> Obj<'a> {
    pub fn new(map: &'a Map<String, Value>, path: String, errors: &'a Errors) -> Self {
        Obj { map, path, errors }
    }

    /// The whole object, copied (for fields passed through untouched).
    pub fn to_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    /// Path of one of this object's keys.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Records a problem with one of this object's keys.
    pub fn error(&self, key: &str, message: impl Into<String>) {
        self.errors.push(self.at(key), message);
    }

    pub fn errors(&self) -> &'a Errors {
        self.errors
    }

    /// The value under `key`; `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn typed<T>(&self, key: &str, want: &str, f: impl Fn(&'a Value) -> Option<T>) -> Option<T> {
        let value = self.get(key)?;
        let got = f(value);
        if got.is_none() {
            self.error(key, format!("expected {want}, found {}", kind(value)));
        }
        got
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.typed(key, "a string", Value::as_str)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// A whole number that fits the ECS API's 32-bit `Integer`.
    pub fn int(&self, key: &str) -> Option<i64> {
        let value = self.get(key)?;
        let got = integer(value);
        if let Err(message) = &got {
            self.error(key, message.clone());
        }
        got.ok()
    }

    /// A string that must be present and not empty.
    pub fn required_str(&self, key: &str) -> Option<&'a str> {
        match self.str(key) {
            Some("") => self.error(key, "must not be empty"),
            None if self.get(key).is_none() => self.error(key, "is required"),
            other => return other,
        }
        None
    }

    /// An integer that must be present.
    pub fn required_int(&self, key: &str) -> Option<i64> {
        if self.get(key).is_none() {
            self.error(key, "is required");
        }
        self.int(key)
    }

    pub fn object(&self, key: &str) -> Option<Obj<'a>> {
        let map = self.typed(key, "an object", Value::as_object)?;
        Some(Obj::new(map, self.at(key), self.errors))
    }

    /// Like [`Obj::object`], but silent when the value is not an object (another reader of the
    /// same key reports it).
    pub fn peek_object(&self, key: &str) -> Option<Obj<'a>> {
        let map = self.get(key)?.as_object()?;
        Some(Obj::new(map, self.at(key), self.errors))
    }

    pub fn array(&self, key: &str) -> Option<&'a Vec<Value>> {
        self.typed(key, "an array", Value::as_array)
    }

    /// The objects of an array; elements that are not objects are reported and skipped.
    pub fn objects(&self, key: &str) -> Option<Vec<Obj<'a>>> {
        let items = self.array(key)?;
        let path = self.at(key);
        let objs = items.iter().enumerate().filter_map(|(i, item)| {
            let at = format!("{path}[{i}]");
            match item.as_object() {
                Some(map) => Some(Obj::new(map, at, self.errors)),
                None => {
                    let found = kind(item);
                    self.errors
                        .push(at, format!("expected an object, found {found}"));
                    None
                }
            }
        });
        Some(objs.collect())
    }

    /// An array of strings; a non-string element is reported and the whole list dropped.
    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        let items = self.array(key)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_owned()),
                None => {
                    let at = format!("{}[{i}]", self.at(key));
                    self.errors
                        .push(at, format!("expected a string, found {}", kind(item)));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// An object of string values (`dockerLabels`, `options`, `driverOpts`...).
    pub fn string_map(&self, key: &str) -> Option<BTreeMap<String, String>> {
        let map = self.typed(key, "an object", Value::as_object)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in map {
            match v.as_str() {
                Some(s) => {
                    out.insert(k.clone(), s.to_owned());
                }
                None => {
                    let at = join(&self.at(key), k);
                    self.errors
                        .push(at, format!("expected a string, found {}", kind(v)));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// A JSON number that is a whole 32-bit integer, as the ECS API's `Integer`.
pub(super) fn integer(value: &Value) -> Result<i64, String> {
    let Some(number) = value.as_number() else {
        return Err(format!("expected an integer, found {}", kind(value)));
    };
    match number.as_i64() {
        Some(n) if i32::try_from(n).is_ok() => Ok(n),
        Some(_) => Err(format!("{number} is out of range for a 32-bit integer")),
        None if number.is_u64() => Err(format!("{number} is out of range for a 32-bit integer")),
        None => Err(format!("expected an integer, found {number}")),
    }
}
