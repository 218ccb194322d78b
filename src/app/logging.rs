//! The agent's own logs: `tracing` to stderr (journald keeps it) and, when `ECS_LOGFILE` is set,
//! to that file with rollover. Level from `ECS_LOGLEVEL` (file: `ECS_LOGLEVEL_ON_INSTANCE`),
//! format from `ECS_LOG_OUTPUT_FORMAT`: `logfmt` (`level=info time=… msg="…" key=value`, as the
//! official agent writes) or one JSON object a line.

use std::fmt;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use super::logfile::{LogFile, Rollover};
use crate::config::{Config, LogFormat, LogLevel, LogRollover};

/// Dependencies that are too chatty at debug level; they stay at info.
const QUIET_AT_DEBUG: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
    "aws_smithy_runtime",
    "aws_config",
    "tungstenite",
    "tokio_tungstenite",
    "bollard",
];

/// The `tracing` filter directive for a level: a default level, then `target=level` for the
/// dependencies in [`QUIET_AT_DEBUG`].
pub fn filter_directive(level: LogLevel) -> String {
    let base = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Crit => "error",
        LogLevel::None => "off",
    };
    let mut directive = base.to_owned();
    if level == LogLevel::Debug {
        for dep in QUIET_AT_DEBUG {
            directive.push_str(&format!(",{dep}=info"));
        }
    }
    directive
}

/// The filter for a level. `Targets` matches targets by prefix as `EnvFilter` does, without the
/// regex engine that `EnvFilter` brings along for span-field directives we never write (a test
/// checks that both let the same events through at every level).
fn filter_for(level: LogLevel) -> Targets {
    filter_directive(level)
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn layer_for<W>(format: LogFormat, writer: W, level: LogLevel, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter_for(level);
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Logfmt => tracing_subscriber::fmt::layer()
            .event_format(Logfmt)
            .fmt_fields(LogfmtFields)
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    }
}

/// Installs the global subscriber. A log file that cannot be opened is reported on stderr and
/// skipped: the agent runs without it rather than not at all.
pub fn init(config: &Config) {
    let mut layers: Vec<BoxedLayer> = vec![layer_for(
        config.log_output_format,
        std::io::stderr,
        config.log_level,
        false,
    )];
    let mut file_error = None;
    if !config.log_file.is_empty() {
        let rollover = match config.log_rollover_type {
            LogRollover::Size => Rollover::Size((config.log_max_file_size_mb * 1_000_000.0) as u64),
            LogRollover::Hourly => Rollover::Hourly,
            LogRollover::None => Rollover::Never,
        };
        let level = config.log_level_on_instance.unwrap_or(config.log_level);
        match LogFile::open(
            Path::new(&config.log_file),
            rollover,
            config.log_max_roll_count,
        ) {
            Ok(file) => layers.push(layer_for(config.log_output_format, file, level, false)),
            Err(e) => file_error = Some(e),
        }
    }
    let subscriber = tracing_subscriber::registry().with(layers);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    if let Some(e) = file_error {
        tracing::warn!(path = %config.log_file, error = %e, "cannot open log file; logging to stderr only");
    }
}

/// logfmt events: `level=info time=2026-11-26T14:00:00.123Z msg="registered" cluster=default`.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "level={level} time=")?;
        SystemTime.format_time(&mut writer)?;
        let mut visitor = LogfmtVisitor::default();
        event.record(&mut visitor);
        write!(writer, " msg={}", quote(&visitor.message))?;
        write!(writer, "{}", visitor.fields)?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, " {}", fields.fields)?;
                    }
                }
            }
        }
        writeln!(writer, " module={}", event.metadata().target())
    }
}

/// Span fields in logfmt form (`key=value key=value`).
struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = LogfmtVisitor::default();
        fields.record(&mut visitor);
        write!(writer, "{}", visitor.fields.trim_start())
    }
}

#[derive(Default)]
struct LogfmtVisitor {
    message: String,
    fields: String,
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .push_str(&format!(" {}={}", field.name(), quote(value)));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Quotes a logfmt value when it needs it (spaces, quotes, `=`, control characters or empty).
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_when_needed() {
        assert_eq!(quote("default"), "default");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote("line\nbreak"), "\"line\\nbreak\"");
    }

    #[test]
    fn debug_level_keeps_dependencies_at_info() {
        let d = filter_directive(LogLevel::Debug);
        assert!(d.starts_with("debug,"));
        assert!(d.contains("hyper=info"));
        assert_eq!(filter_directive(LogLevel::None), "off");
        assert_eq!(filter_directive(LogLevel::Crit), "error");
    }

    const ALL_LEVELS: [LogLevel; 6] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Crit,
        LogLevel::None,
    ];

    #[test]
    fn every_level_parses_into_its_filter() {
        use tracing::Level;
        for level in ALL_LEVELS {
            let directive = filter_directive(level);
            assert!(directive.parse::<Targets>().is_ok(), "{directive}");
        }
        let debug = filter_for(LogLevel::Debug);
        assert!(debug.would_enable("ecs_agent::engine", &Level::DEBUG));
        assert!(!debug.would_enable("hyper_util::client", &Level::DEBUG));
        assert!(debug.would_enable("hyper::proto", &Level::INFO));
        let info = filter_for(LogLevel::Info);
        assert!(info.would_enable("ecs_agent", &Level::INFO));
        assert!(!info.would_enable("ecs_agent", &Level::DEBUG));
        let warn = filter_for(LogLevel::Warn);
        assert!(!warn.would_enable("ecs_agent", &Level::INFO));
        assert!(filter_for(LogLevel::Crit).would_enable("ecs_agent", &Level::ERROR));
        assert!(!filter_for(LogLevel::Crit).would_enable("ecs_agent", &Level::WARN));
        assert!(!filter_for(LogLevel::None).would_enable("ecs_agent", &Level::ERROR));
    }

    /// Records the target and level of every event that reaches it.
    struct Record(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Record {
        fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let meta = event.metadata();
            let line = format!("{} {}", meta.target(), meta.level());
            self.0.lock().unwrap().push(line);
        }
    }

    /// Which of one event per level, for the agent and each quieted dependency (and a target
    /// that only shares a prefix with one), get through `filter`.
    fn passed<F>(filter: F) -> Vec<String>
    where
        F: tracing_subscriber::layer::Filter<Registry> + Send + Sync + 'static,
    {
        macro_rules! at_every_level {
            ($($target:literal),*) => {$(
                tracing::error!(target: $target, "e");
                tracing::warn!(target: $target, "w");
                tracing::info!(target: $target, "i");
                tracing::debug!(target: $target, "d");
                tracing::trace!(target: $target, "t");
            )*};
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let subscriber =
            tracing_subscriber::registry().with(Record(seen.clone()).with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            at_every_level!(
                "ecs_agent::engine",
                "aws_sdk_ecs::client",
                "hyper::proto::h1",
                "hyperlocal",
                "hyper_util::client::legacy",
                "h2::codec",
                "rustls::conn",
                "tower::buffer",
                "aws_smithy_runtime::client::orchestrator",
                "aws_config::imds",
                "tungstenite::protocol",
                "tokio_tungstenite",
                "bollard::docker"
            );
        });
        let passed = seen.lock().unwrap().clone();
        passed
    }

    #[test]
    fn every_level_filters_as_env_filter_did() {
        for level in ALL_LEVELS {
            let directive = filter_directive(level);
            let env_filter = tracing_subscriber::EnvFilter::new(&directive);
            assert_eq!(passed(filter_for(level)), passed(env_filter), "{directive}");
        }
        let debug = passed(filter_for(LogLevel::Debug));
        assert!(debug.contains(&"ecs_agent::engine DEBUG".to_owned()));
        assert!(!debug.contains(&"hyper_util::client::legacy DEBUG".to_owned()));
        assert!(debug.contains(&"hyper_util::client::legacy INFO".to_owned()));
    }
}
