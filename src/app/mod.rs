//! Process wiring: the command line, reading the configuration sources, logging, exit codes.
//!
//! This is the only place (with `main.rs`) that reads the environment and the config files for
//! the pure `config` loader, and the only place that turns errors into exit codes.

mod daemon;
pub mod exit;
pub mod host;
pub mod host_setup;
pub mod local_run;
mod logfile;
mod memory;
mod resume;
pub(crate) use logfile::civil_from_days;
pub mod logging;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Loaded, Sources};
pub use exit::Exit;

/// Version and git commit, as `ecs-agent --version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("ECS_AGENT_GIT_HASH"),
    ")"
);

/// The `ecs-agent` command line.
#[derive(Debug, Parser)]
#[command(name = "ecs-agent", version = VERSION, about = "Amazon ECS container agent (Rust)")]
pub struct Cli {
    /// An ecs.config file (KEY=VALUE lines, read as ecs-init reads them); repeat for several,
    /// lowest priority first. The process environment overrides them all.
    #[arg(long = "ecs-config", value_name = "PATH", global = true,
          default_values = [config::INSTANCE_ECS_CONFIG_PATH, config::ECS_CONFIG_PATH])]
    pub ecs_config: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Route 169.254.170.2:80 to the credentials endpoint and protect localhost (what ecs-init
    /// does before the agent starts); idempotent.
    HostSetup,
    /// Remove what host-setup added; idempotent.
    HostCleanup,
    /// Run ECS task definitions on the local Docker, without AWS.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalAction {
    /// Run a task definition (register-task-definition JSON or describe-task-definition output)
    /// until its essential containers exit or Ctrl-C; exits with the essential container's code.
    Run {
        /// The task definition file.
        task_definition: PathBuf,
        /// Keep the containers after the task stops (they are removed by default).
        #[arg(long)]
        keep: bool,
        /// Cluster name for the containers' com.amazonaws.ecs.cluster label.
        #[arg(long, default_value = "local")]
        cluster: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration and where each value came from, or every error.
    Check,
    /// Print the reference table of every variable (Markdown).
    Reference,
}

/// A configuration source that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct SourceError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Reads a file that may be absent: `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, SourceError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SourceError {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads every configuration source: the environment, the `ecs.config` files, the JSON file.
pub fn read_sources(
    env: BTreeMap<String, String>,
    ecs_config_paths: &[PathBuf],
) -> Result<Sources, SourceError> {
    let mut ecs_config_files = Vec::new();
    for path in ecs_config_paths {
        if let Some(text) = read_optional(path)? {
            ecs_config_files.push((path.clone(), text));
        }
    }
    let layers = config::Layers::new(&env, &ecs_config_files);
    let json_path = config::json_config_path(&layers);
    let json_file = read_optional(&json_path)?.map(|text| (json_path, text));
    Ok(Sources {
        env,
        ecs_config_files,
        json_file,
    })
}

/// Reads and loads the configuration; prints what is wrong and gives the exit code otherwise.
fn load_config(cli: &Cli) -> Result<Loaded, Exit> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let sources = read_sources(env, &cli.ecs_config).map_err(|e| {
        eprintln!("ecs-agent: {e}");
        Exit::Terminal
    })?;
    config::load(&sources).map_err(|errors| {
        eprint!("ecs-agent: {errors}");
        Exit::Terminal
    })
}

/// Runs the command line; returns how the process should exit.
pub fn main(cli: Cli) -> Exit {
    match cli.command {
        Some(Command::Config {
            action: ConfigAction::Reference,
        }) => {
            print!("{}", config::reference_markdown());
            Exit::Success
        }
        Some(Command::Config {
            action: ConfigAction::Check,
        }) => match load_config(&cli) {
            Ok(loaded) => {
                print!("{}", config::render_check(&loaded));
                Exit::Success
            }
            Err(exit) => exit,
        },
        Some(Command::HostSetup) | Some(Command::HostCleanup) => match load_config(&cli) {
            Ok(loaded) => {
                let result = if matches!(cli.command, Some(Command::HostSetup)) {
                    host_setup::setup(&loaded.config)
                } else {
                    host_setup::cleanup(&loaded.config)
                };
                match result {
                    Ok(()) => Exit::Success,
                    Err(e) => {
                        eprintln!("ecs-agent: {e}");
                        Exit::Failure
                    }
                }
            }
            Err(exit) => exit,
        },
        Some(Command::Run) | None => match load_config(&cli) {
            Ok(loaded) => run(&loaded),
            Err(exit) => exit,
        },
        Some(Command::Local {
            action:
                LocalAction::Run {
                    ref task_definition,
                    keep,
                    ref cluster,
                },
        }) => match load_config(&cli) {
            Ok(mut loaded) => {
                quiet_logging_for_local_run(&mut loaded);
                logging::init(&loaded.config);
                let args = local_run::LocalRunArgs {
                    task_definition: task_definition.clone(),
                    keep,
                    cluster: cluster.clone(),
                };
                match async_runtime() {
                    Ok(rt) => rt.block_on(local_run::run(&loaded.config, &args)),
                    Err(e) => {
                        eprintln!("ecs-agent: cannot start the async runtime: {e}");
                        Exit::Failure
                    }
                }
            }
            Err(exit) => exit,
        },
    }
}

/// `local run` is an interactive command: unless the operator set them, the agent's own log
/// goes to stderr only, at warn level, so that the progress view stays readable.
fn quiet_logging_for_local_run(loaded: &mut Loaded) {
    let set = |var: &str| {
        !matches!(
            loaded.origins.get(var),
            None | Some(config::Origin::Default)
        )
    };
    if !set("ECS_LOGFILE") {
        loaded.config.log_file.clear();
    }
    if !set("ECS_LOGLEVEL") {
        loaded.config.log_level = config::LogLevel::Warn;
    }
}

fn async_runtime() -> io::Result<tokio::runtime::Runtime> {
    memory::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn run(loaded: &Loaded) -> Exit {
    logging::init(&loaded.config);
    for w in &loaded.warnings {
        tracing::warn!(
            variable = w.variable.as_deref().unwrap_or(""),
            "{}",
            w.message
        );
    }
    tracing::info!(version = VERSION, cluster = %loaded.config.cluster, "ecs-agent starting");
    match async_runtime() {
        Ok(rt) => rt.block_on(daemon::run(&loaded.config)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            Exit::Failure
        }
    }
}
