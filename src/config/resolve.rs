//! Resolution of each variable through the layers, highest priority first: process environment,
//! `ecs.config` files, JSON file, default. Collects every error and warning. Pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::ecs_config::{parse_ecs_config, suspicious};
use super::parse::{ParseResult, Raw};
use super::{ConfigError, ConfigErrors, Loaded, Origin, Sources, Variable, Warning, VARIABLES};

/// Default JSON config path when `ECS_AGENT_CONFIG_FILE_PATH` is not set (what ecs-init sets).
pub const DEFAULT_JSON_CONFIG_PATH: &str = "/etc/ecs/ecs.config.json";

/// Variables for which an explicitly empty value means "none" rather than "unset".
const EMPTY_IS_A_VALUE: &[&str] = &["ECS_LOGFILE"];

/// The text layers (environment and `ecs.config` files) merged, with where each value came from.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    values: BTreeMap<String, (String, Origin)>,
}

impl Layers {
    /// Merges the `ecs.config` files (lowest priority first) under the process environment.
    pub fn new(env: &BTreeMap<String, String>, ecs_config_files: &[(PathBuf, String)]) -> Self {
        let mut values = BTreeMap::new();
        for (path, text) in ecs_config_files {
            for line in parse_ecs_config(text) {
                let origin = Origin::EcsConfig {
                    path: path.clone(),
                    line: line.line,
                };
                values.insert(line.key, (line.value, origin));
            }
        }
        for (key, value) in env {
            values.insert(key.clone(), (value.clone(), Origin::Environment));
        }
        Layers { values }
    }

    /// The value of a variable, treating an empty value as unset unless it is meaningful.
    pub fn get(&self, name: &str) -> Option<(&str, &Origin)> {
        let (value, origin) = self.values.get(name)?;
        if value.is_empty() && !EMPTY_IS_A_VALUE.contains(&name) {
            return None;
        }
        Some((value.as_str(), origin))
    }
}

/// Where the JSON config file is: `ECS_AGENT_CONFIG_FILE_PATH` from the text layers, or the default.
pub fn json_config_path(layers: &Layers) -> PathBuf {
    layers
        .get("ECS_AGENT_CONFIG_FILE_PATH")
        .map(|(v, _)| PathBuf::from(v.trim()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_JSON_CONFIG_PATH))
}

/// Walks the layers for each variable; built by `vars.rs`'s generated `Config::resolve`.
pub struct Resolver<'a> {
    layers: Layers,
    json: BTreeMap<String, (String, &'a Value)>,
    json_path: PathBuf,
    pub(super) origins: BTreeMap<&'static str, Origin>,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<Warning>,
}

impl<'a> Resolver<'a> {
    /// Resolves one variable: the first layer that has it, parsed; the default otherwise.
    /// A value that does not parse is recorded as an error and the default is used meanwhile.
    pub fn value<T>(
        &mut self,
        var: &Variable,
        parse: fn(Raw) -> ParseResult<T>,
        default: impl FnOnce() -> T,
    ) -> T {
        let found = if let Some((text, origin)) = self.layers.get(var.env) {
            Some((Raw::Text(text), origin.clone()))
        } else {
            self.json_value(var)
        };
        let Some((raw, origin)) = found else {
            self.origins.insert(var.env, Origin::Default);
            return default();
        };
        match parse(raw) {
            Ok(v) => {
                self.origins.insert(var.env, origin);
                v
            }
            Err(allowed) => {
                self.errors.push(ConfigError {
                    variable: var.env.to_owned(),
                    value: (!var.secret).then(|| raw.text().into_owned()),
                    origin,
                    allowed,
                });
                self.origins.insert(var.env, Origin::Default);
                default()
            }
        }
    }

    fn json_value(&self, var: &Variable) -> Option<(Raw<'a>, Origin)> {
        let key = var.json_key?;
        let (name, value) = self.json.get(&key.to_ascii_lowercase()).or_else(|| {
            // The official agent accepts the deprecated ClusterArn for Cluster.
            (key == "Cluster")
                .then(|| self.json.get("clusterarn"))
                .flatten()
        })?;
        if value.is_null() || value.as_str() == Some("") {
            return None;
        }
        let origin = Origin::JsonFile {
            path: self.json_path.clone(),
            key: name.clone(),
        };
        Some((Raw::Json(value), origin))
    }

    /// Records that a value was moved to a bound, as the official agent does, with a warning.
    pub fn adjusted(&mut self, env: &str, message: String) {
        self.warnings.push(Warning {
            variable: Some(env.to_owned()),
            message,
        });
    }

    /// Records a value that parsed but is still not allowed (a cross-field or range rule).
    pub fn refuse(&mut self, env: &'static str, value: String, allowed: &str) {
        let origin = self.origins.get(env).cloned().unwrap_or(Origin::Default);
        self.errors.push(ConfigError {
            variable: env.to_owned(),
            value: Some(value),
            origin,
            allowed: allowed.to_owned(),
        });
    }

    /// Whether the variable was set by the operator (any layer but the default).
    pub fn is_set(&self, env: &str) -> bool {
        self.origins
            .get(env)
            .is_some_and(|o| !matches!(o, Origin::Default))
    }
}

pub(super) fn load(sources: &Sources) -> Result<Loaded, ConfigErrors> {
    let layers = Layers::new(&sources.env, &sources.ecs_config_files);
    let mut warnings = ecs_config_warnings(sources);
    let mut errors = Vec::new();
    let json_doc = match &sources.json_file {
        Some((path, text)) if !text.trim().is_empty() => {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Some((path.clone(), map)),
                Ok(_) | Err(_) => {
                    errors.push(ConfigError {
                        variable: "ECS_AGENT_CONFIG_FILE_PATH".to_owned(),
                        value: Some(path.display().to_string()),
                        origin: Origin::JsonFile {
                            path: path.clone(),
                            key: "(whole file)".to_owned(),
                        },
                        allowed: "a file holding one JSON object of settings".to_owned(),
                    });
                    None
                }
            }
        }
        _ => None,
    };
    let json_path = json_doc
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_default();
    let mut json = BTreeMap::new();
    if let Some((_, map)) = &json_doc {
        for (key, value) in map {
            json.insert(key.to_ascii_lowercase(), (key.clone(), value));
        }
        warnings.extend(unknown_json_keys(map.keys()));
    }
    warnings.extend(unknown_env_keys(&layers));
    let mut resolver = Resolver {
        layers,
        json,
        json_path,
        origins: BTreeMap::new(),
        errors,
        warnings,
    };
    let config = super::vars::Config::resolve(&mut resolver);
    if resolver.errors.is_empty() {
        Ok(Loaded {
            config,
            origins: resolver.origins,
            warnings: resolver.warnings,
        })
    } else {
        Err(ConfigErrors(resolver.errors))
    }
}

fn ecs_config_warnings(sources: &Sources) -> Vec<Warning> {
    let mut out = Vec::new();
    for (path, text) in &sources.ecs_config_files {
        for line in parse_ecs_config(text) {
            if let Some(why) = suspicious(&line) {
                out.push(Warning {
                    variable: Some(line.key.trim().to_owned()),
                    message: format!("{}:{}: {why}", path.display(), line.line),
                });
            }
        }
    }
    out
}

fn is_known_env(name: &str) -> bool {
    VARIABLES.iter().any(|v| v.env == name)
}

fn unknown_env_keys(layers: &Layers) -> Vec<Warning> {
    layers
        .values
        .iter()
        .filter(|(k, _)| k.starts_with("ECS_") && !is_known_env(k))
        .map(|(k, (_, origin))| Warning {
            variable: Some(k.clone()),
            message: format!("unknown ECS_ variable (from {origin}); ignored"),
        })
        .collect()
}

fn unknown_json_keys<'k>(keys: impl Iterator<Item = &'k String>) -> Vec<Warning> {
    keys.filter(|k| {
        let lower = k.to_ascii_lowercase();
        lower != "clusterarn"
            && !VARIABLES
                .iter()
                .filter_map(|v| v.json_key)
                .any(|j| j.eq_ignore_ascii_case(&lower))
    })
    .map(|k| Warning {
        variable: None,
        message: format!("unknown key {k:?} in the JSON config file; ignored"),
    })
    .collect()
}
