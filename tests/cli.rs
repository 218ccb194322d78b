//! The `ecs-agent` binary as an operator uses it: `--version`, `config check`, `config
//! reference`, exit codes, and the agent's own log output.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn agent(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let ecs_config = dir.join("ecs.config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecs-agent"));
    // `run` must never reach a real IMDS or Docker from these tests: IMDS points at a closed
    // loopback port and Docker at a socket that does not exist, so `run` stops at once.
    cmd.env_clear()
        .env("ECS_AGENT_CONFIG_FILE_PATH", dir.join("ecs.config.json"))
        .env("ECS_LOGFILE", "")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.join("no-docker.sock").display()),
        )
        .arg("--ecs-config")
        .arg(&ecs_config)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("ecs-agent runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_version_and_git_hash() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = text(&out.stdout);
    let line = line.trim();
    let rest = line
        .strip_prefix(concat!("ecs-agent ", env!("CARGO_PKG_VERSION"), " (git "))
        .unwrap_or_else(|| panic!("unexpected version line {line:?}"));
    let hash = rest.strip_suffix(')').expect("closing parenthesis");
    assert!(
        hash == "unknown" || (hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "{hash:?}"
    );
}

#[test]
fn config_check_shows_effective_values_with_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("ecs.config"),
        "ECS_CLUSTER=web\nECS_RESERVED_MEMORY=128\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("ecs.config.json"),
        r#"{"ImagePullBehavior":"once"}"#,
    )
    .unwrap();
    let out = agent(
        dir.path(),
        &[("ECS_RESERVED_MEMORY", "256")],
        &["config", "check"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = |var: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(var))
            .unwrap_or_else(|| panic!("{var} missing from:\n{stdout}"))
            .to_owned()
    };
    assert!(line("ECS_CLUSTER").contains("= web"));
    assert!(line("ECS_CLUSTER").contains("ecs.config:1"));
    assert!(line("ECS_RESERVED_MEMORY").contains("= 256"));
    assert!(line("ECS_RESERVED_MEMORY").contains("# environment"));
    assert!(line("ECS_IMAGE_PULL_BEHAVIOR").contains("= once"));
    assert!(line("ECS_IMAGE_PULL_BEHAVIOR").contains("ecs.config.json key ImagePullBehavior"));
    assert!(line("ECS_CONTAINER_STOP_TIMEOUT").contains("= 30s    # default"));
}

#[test]
fn bad_configuration_exits_5_listing_every_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ecs.config"), "ECS_RESERVED_PORTS=22,80\n").unwrap();
    let env = [
        ("ECS_CONTAINER_STOP_TIMEOUT", "soon"),
        ("ECS_ENGINE_AUTH_TYPE", "docker"),
        ("ECS_ENGINE_AUTH_DATA", "password=hunter2"),
    ];
    for args in [&["config", "check"][..], &["run"][..], &[][..]] {
        let out = agent(dir.path(), &env, args);
        assert_eq!(out.status.code(), Some(5), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("3 invalid configuration value(s)"),
            "{stderr}"
        );
        assert!(
            stderr.contains(r#"ECS_RESERVED_PORTS="22,80" (from "#),
            "{stderr}"
        );
        assert!(stderr.contains(r#"ECS_CONTAINER_STOP_TIMEOUT="soon" (from environment)"#));
        assert!(stderr.contains("ECS_ENGINE_AUTH_DATA=<redacted>"));
        assert!(!stderr.contains("hunter2"), "secret leaked: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unreadable_config_file_is_a_terminal_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("ecs.config")).unwrap();
    let out = agent(dir.path(), &[], &["config", "check"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("ecs.config"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent(dir.path(), &[], &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_logs_to_stderr_and_the_log_file_at_their_own_levels() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log/ecs-agent.log");
    let out = agent(
        dir.path(),
        &[
            ("ECS_LOGFILE", log.to_str().unwrap()),
            ("ECS_LOGLEVEL", "error"),
            ("ECS_LOGLEVEL_ON_INSTANCE", "info"),
            ("ECS_LOG_OUTPUT_FORMAT", "json"),
            ("ECS_CLUSTR", "typo"),
        ],
        &["run"],
    );
    // No Docker here: run says so and exits 1, a failure systemd may retry.
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("ecs-agent starting"),
        "info hidden at error level: {stderr}"
    );
    assert!(stderr.contains("docker is not available"), "{stderr}");
    let file = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let starting = lines
        .iter()
        .find(|v| v["message"] == "ecs-agent starting")
        .unwrap_or_else(|| panic!("no start line in {file}"));
    assert_eq!(starting["level"], "INFO");
    assert_eq!(starting["cluster"], "default");
    assert!(lines
        .iter()
        .any(|v| v["level"] == "WARN" && v["variable"] == "ECS_CLUSTR"));
}

#[test]
fn run_writes_logfmt_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent(dir.path(), &[("ECS_CLUSTER", "web")], &["run"]);
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("msg=\"ecs-agent starting\""))
        .unwrap_or_else(|| panic!("no logfmt start line in {stderr}"));
    assert!(line.starts_with("level=info time="), "{line}");
    assert!(line.contains(" cluster=web"), "{line}");
}

#[test]
fn readme_holds_the_current_configuration_reference() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-agent"))
        .args(["config", "reference"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert!(table.lines().count() > 100, "one row per variable");
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's configuration table is stale: paste `ecs-agent config reference` into it"
    );
}
