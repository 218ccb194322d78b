//! Agent configuration, compatible with the official agent's `ECS_*` variables.
//!
//! Owns [`Config`] (one typed field per variable, see `vars.rs`) and its loader, a pure function
//! of the sources: the process environment, the `ecs.config` files (parsed the way ecs-init
//! parses them) and the JSON config file. Precedence, highest first: process environment,
//! `ecs.config` files (later file wins), the JSON file (`ECS_AGENT_CONFIG_FILE_PATH`), built-in
//! defaults. Every bad value is collected, so one run reports all of them.
//!
//! Must not do I/O: the caller reads the files and the environment (see `app`).
//! Known limits: EC2 user-data configuration (`ECSAgentConfiguration`) is not read yet.

mod ecs_config;
pub mod parse;
mod report;
mod resolve;
#[cfg(test)]
mod tests;
mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use ecs_config::{parse_ecs_config, EcsConfigLine};
pub use report::{reference_markdown, render_check};
pub use resolve::{json_config_path, Layers};
pub use vars::{
    Config, EngineAuthType, ImagePullBehavior, IpCompatibility, LogFormat, LogLevel, LogRollover,
    PropagateTagsFrom, VARIABLES,
};

/// Default location of the `ecs.config` file the official packages read.
pub const ECS_CONFIG_PATH: &str = "/etc/ecs/ecs.config";
/// Lower-priority instance config file ecs-init also reads (written by AMI tooling).
pub const INSTANCE_ECS_CONFIG_PATH: &str = "/var/lib/ecs/ecs.config";

/// What the loader reads: already-read file contents and environment, so that it stays pure.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The process environment.
    pub env: BTreeMap<String, String>,
    /// `ecs.config` files, lowest priority first, with their text.
    pub ecs_config_files: Vec<(PathBuf, String)>,
    /// The JSON configuration file and its text, if it exists.
    pub json_file: Option<(PathBuf, String)>,
}

/// Where a variable's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built-in default.
    Default,
    /// The process environment.
    Environment,
    /// A line of an `ecs.config` file.
    EcsConfig { path: PathBuf, line: usize },
    /// A key of the JSON configuration file.
    JsonFile { path: PathBuf, key: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Environment => f.write_str("environment"),
            Origin::EcsConfig { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::JsonFile { path, key } => write!(f, "{} key {key}", path.display()),
        }
    }
}

/// How far this agent acts on a variable today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Parsed, validated and acted on.
    Active,
    /// Parsed and validated; the feature that uses it is not built yet.
    Pending,
    /// Host setup that ecs-init did; parsed and validated, not yet acted on.
    HostSetup,
    /// Accepted for compatibility and ignored: it has no meaning on Linux or for this agent.
    Ignored,
}

impl Status {
    /// Short text used in `config check` and the README reference.
    pub fn describe(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "accepted, not yet acted on",
            Status::HostSetup => "host setup (ecs-init); accepted, not yet acted on",
            Status::Ignored => "accepted, ignored (not applicable)",
        }
    }
}

/// One known variable: its names, status and documentation.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// Environment / `ecs.config` name.
    pub env: &'static str,
    /// Key in the JSON config file (the official agent's Go field name), if it has one.
    pub json_key: Option<&'static str>,
    pub status: Status,
    /// Whether the value is a secret: never printed, never in error text.
    pub secret: bool,
    pub doc: &'static str,
}

/// A bad value: which variable, what was given (unless secret), where, and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub variable: String,
    /// The value as given; `None` when the variable is secret.
    pub value: Option<String>,
    pub origin: Origin,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v:?}", self.variable)?,
            None => write!(f, "{}=<redacted>", self.variable)?,
        }
        write!(f, " (from {}): expected {}", self.origin, self.allowed)
    }
}

/// Every bad value found in one load.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} invalid configuration value(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Something the operator should know that does not stop the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub variable: Option<String>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variable {
            Some(v) => write!(f, "{v}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A successfully loaded configuration with its provenance.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Origin of every variable, by environment name.
    pub origins: BTreeMap<&'static str, Origin>,
    /// Values that were adjusted to a bound, unknown keys, ignored lines.
    pub warnings: Vec<Warning>,
}

/// Loads the configuration from its sources: all errors at once, or the config and warnings.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigErrors> {
    resolve::load(sources)
}

/// A secret string (registry credentials): shown nowhere, not even in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
