//! The systemd unit and the installer agree with the binary: exit codes, paths, layout.

use std::fs;
use std::path::Path;
use std::process::Command;

use ecs_agent::app::Exit;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= missing from the unit"))
        .to_owned()
}

#[test]
fn systemd_unit_does_not_restart_on_terminal_exit() {
    let unit = fs::read_to_string(repo("systemd/ecs-agent.service")).unwrap();
    let prevent = unit_value(&unit, "RestartPreventExitStatus");
    assert_eq!(prevent, Exit::Terminal.code().to_string());
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(unit_value(&unit, "ExecStart"), "/usr/bin/ecs-agent run");
    assert_eq!(
        unit_value(&unit, "ExecStartPre"),
        "/usr/bin/ecs-agent host-setup"
    );
    assert_eq!(
        unit_value(&unit, "ExecStopPost"),
        "-/usr/bin/ecs-agent host-cleanup"
    );
    assert_eq!(
        unit_value(&unit, "KillMode"),
        "process",
        "stopping the agent must not kill tasks"
    );
    assert!(
        !unit.lines().any(|l| l.starts_with("EnvironmentFile=")),
        "the agent parses ecs.config itself, with ecs-init's rules"
    );
}

#[test]
fn installer_lays_out_binary_unit_and_config_without_overwriting() {
    let root = tempfile::tempdir().unwrap();
    let run = || {
        Command::new("bash")
            .arg(repo("packaging/install.sh"))
            .arg(env!("CARGO_BIN_EXE_ecs-agent"))
            .env("DESTDIR", root.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = root.path();
    assert!(r.join("usr/bin/ecs-agent").is_file());
    assert!(r.join("etc/systemd/system/ecs-agent.service").is_file());
    assert!(r.join("var/lib/ecs/data").is_dir());
    assert!(r.join("var/log/ecs").is_dir());
    let config = r.join("etc/ecs/ecs.config");
    assert!(fs::read_to_string(&config)
        .unwrap()
        .contains("ECS_CLUSTER=default"));

    fs::write(&config, "ECS_CLUSTER=mine\n").unwrap();
    assert!(run().status.success());
    assert_eq!(fs::read_to_string(&config).unwrap(), "ECS_CLUSTER=mine\n");

    // The example config is valid for the installed binary.
    let check = Command::new(r.join("usr/bin/ecs-agent"))
        .env_clear()
        .env(
            "ECS_AGENT_CONFIG_FILE_PATH",
            r.join("etc/ecs/ecs.config.json"),
        )
        .args([
            "--ecs-config",
            repo("packaging/ecs.config.example").to_str().unwrap(),
        ])
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
