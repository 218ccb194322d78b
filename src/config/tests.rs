//! Table tests of every variable: its default, a valid non-default value, a bad value; plus the
//! layering rules, the ecs.config quirks, the JSON file and all-errors-at-once reporting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

/// (variable, default as rendered, a valid non-default value, how it renders, a bad value).
/// Defaults are the official agent's as an operator of an ECS-optimized AMI gets them.
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "ECS_CLUSTER",
        "default",
        "prod-web_1",
        "prod-web_1",
        "my cluster",
    ),
    (
        "AWS_DEFAULT_REGION",
        "(unset)",
        "eu-west-1",
        "eu-west-1",
        "EU West",
    ),
    (
        "ECS_BACKEND_HOST",
        "(unset)",
        "https://ecs.local:8443",
        "https://ecs.local:8443",
        "two words",
    ),
    ("ECS_EXTERNAL", "false", "true", "true", "maybe"),
    (
        "ECS_INSTANCE_ATTRIBUTES",
        "{}",
        r#"{"team":"web"}"#,
        r#"{"team":"web"}"#,
        r#"{"team":1}"#,
    ),
    (
        "ECS_CONTAINER_INSTANCE_TAGS",
        "{}",
        r#"{"env":"prod"}"#,
        r#"{"env":"prod"}"#,
        "env=prod",
    ),
    (
        "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM",
        "none",
        "ec2_instance",
        "ec2_instance",
        "ec2",
    ),
    ("ECS_WARM_POOLS_CHECK", "false", "true", "true", "yes"),
    (
        "ECS_ENABLE_SPOT_INSTANCE_DRAINING",
        "false",
        "1",
        "true",
        "on",
    ),
    (
        "ECS_INSTANCE_IP_COMPATIBILITY",
        "(unset)",
        "ipv6",
        "ipv6",
        "dual",
    ),
    (
        "ECS_DETAILED_OS_FAMILY",
        "(unset)",
        "debian_12",
        "debian_12",
        "debian 12",
    ),
    (
        "ECS_RESERVED_PORTS",
        "[22,2375,2376,51678,51679]",
        "[22,80]",
        "[22,80]",
        "22,80",
    ),
    ("ECS_RESERVED_PORTS_UDP", "[]", "[53]", "[53]", "[-1]"),
    ("ECS_RESERVED_MEMORY", "0", "256", "256", "256MiB"),
    (
        "ECS_DYNAMIC_HOST_PORT_RANGE",
        "(unset)",
        "40000-50000",
        "40000-50000",
        "50000-40000",
    ),
    (
        "ECS_ENABLE_TASK_CPU_MEM_LIMIT",
        "true",
        "false",
        "false",
        "nope",
    ),
    (
        "ECS_CGROUP_PATH",
        "/sys/fs/cgroup",
        "/cgroup",
        "/cgroup",
        "cgroup",
    ),
    ("ECS_CGROUP_CPU_PERIOD", "100ms", "50ms", "50ms", "50"),
    ("ECS_TASK_PIDS_LIMIT", "(unset)", "1024", "1024", "lots"),
    (
        "ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2",
        "false",
        "true",
        "true",
        "2",
    ),
    ("ECS_ENABLE_GPU_SUPPORT", "false", "true", "true", "gpu"),
    (
        "ECS_NVIDIA_RUNTIME",
        "nvidia",
        "nvidia-container",
        "nvidia-container",
        "nvidia runtime",
    ),
    ("ECS_ENABLE_INF_SUPPORT", "false", "T", "true", "yes"),
    ("ECS_CONTAINER_STOP_TIMEOUT", "30s", "2m", "2m0s", "abc"),
    (
        "ECS_CONTAINER_START_TIMEOUT",
        "3m0s",
        "5m",
        "5m0s",
        "5 minutes",
    ),
    ("ECS_CONTAINER_CREATE_TIMEOUT", "4m0s", "10m", "10m0s", "10"),
    ("ECS_MANIFEST_PULL_TIMEOUT", "1m0s", "90s", "1m30s", "-5s"),
    ("ECS_IMAGE_PULL_TIMEOUT", "2h0m0s", "1h30m", "1h30m0s", "1d"),
    (
        "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
        "1m0s",
        "3m",
        "3m0s",
        "3M",
    ),
    (
        "ECS_IMAGE_PULL_BEHAVIOR",
        "default",
        "prefer-cached",
        "prefer-cached",
        "sometimes",
    ),
    (
        "ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT",
        "false",
        "true",
        "true",
        "y",
    ),
    (
        "ECS_DISABLE_IMAGE_CLEANUP",
        "false",
        "true",
        "true",
        "disabled",
    ),
    (
        "ECS_IMAGE_CLEANUP_INTERVAL",
        "30m0s",
        "1h",
        "1h0m0s",
        "hourly",
    ),
    (
        "ECS_IMAGE_MINIMUM_CLEANUP_AGE",
        "1h0m0s",
        "30m",
        "30m0s",
        "30",
    ),
    (
        "NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE",
        "1h0m0s",
        "2h",
        "2h0m0s",
        "2 h",
    ),
    ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "5", "10", "10", "ten"),
    (
        "NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE",
        "5",
        "0",
        "0",
        "-1",
    ),
    (
        "ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP",
        "false",
        "true",
        "true",
        "always",
    ),
    (
        "ECS_EXCLUDE_UNTRACKED_IMAGE",
        "[]",
        "a:1, b:2",
        r#"["a:1","b:2"]"#,
        "",
    ),
    ("ECS_IMAGE_CLEANUP_DISK_THRESHOLD", "90", "0", "0", "101"),
    (
        "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
        "3h0m0s",
        "10m",
        "10m0s",
        "3 hours",
    ),
    (
        "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER",
        "0s",
        "5m",
        "5m0s",
        "5",
    ),
    (
        "ECS_REMOVE_UNKNOWN_CONTAINERS",
        "false",
        "true",
        "true",
        "sometimes",
    ),
    (
        "ECS_ENGINE_AUTH_TYPE",
        "(unset)",
        "dockercfg",
        "dockercfg",
        "basic",
    ),
    (
        "ECS_ENGINE_AUTH_DATA",
        "(unset)",
        r#"{"r":{"auth":"x"}}"#,
        "<redacted>",
        "user:pass",
    ),
    ("ECS_ENABLE_TASK_IAM_ROLE", "true", "false", "false", "off"),
    (
        "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST",
        "true",
        "false",
        "false",
        "off",
    ),
    ("ECS_DISABLE_PRIVILEGED", "false", "true", "true", "yes"),
    ("ECS_SELINUX_CAPABLE", "false", "true", "true", "enforcing"),
    ("ECS_APPARMOR_CAPABLE", "false", "true", "true", "yes"),
    (
        "ECS_AVAILABLE_LOGGING_DRIVERS",
        r#"["json-file","syslog","awslogs","fluentd","none"]"#,
        r#"["json-file","awslogs"]"#,
        r#"["json-file","awslogs"]"#,
        r#"["json-file","logstash"]"#,
    ),
    (
        "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE",
        "true",
        "false",
        "false",
        "no",
    ),
    (
        "ECS_AWSLOGS_DOCKER_DRIVER",
        "false",
        "true",
        "true",
        "docker",
    ),
    ("ECS_AWSLOGS_DRAIN_TIMEOUT", "10m0s", "30s", "30s", "soon"),
    (
        "ECS_EFS_MOUNT_TARGETS",
        "{}",
        r#"{"fs-0123abcd":"10.0.1.5"}"#,
        r#"{"fs-0123abcd":"10.0.1.5"}"#,
        "fs-0123abcd=10.0.1.5",
    ),
    ("ECS_EFS_MOUNT_TIMEOUT", "1m0s", "30s", "30s", "soon"),
    (
        "ECS_DISABLE_DOCKER_HEALTH_CHECK",
        "false",
        "true",
        "true",
        "yes",
    ),
    (
        "ECS_ENABLE_CONTAINER_METADATA",
        "false",
        "true",
        "true",
        "yes",
    ),
    (
        "ECS_HOST_DATA_DIR",
        "/var/lib/ecs",
        "/srv/ecs",
        "/srv/ecs",
        "srv/ecs",
    ),
    (
        "ECS_SHARED_VOLUME_MATCH_FULL_CONFIG",
        "false",
        "true",
        "true",
        "full",
    ),
    (
        "ECS_VOLUME_PLUGIN_CAPABILITIES",
        r#"["efsAuth"]"#,
        "[]",
        "[]",
        "efsAuth",
    ),
    (
        "ECS_ENABLE_FIRELENS_ASYNC",
        "true",
        "false",
        "false",
        "sync",
    ),
    (
        "ECS_FSX_WINDOWS_FILE_SERVER_SUPPORTED",
        "false",
        "true",
        "true",
        "yes",
    ),
    ("ECS_GMSA_SUPPORTED", "false", "true", "true", "yes"),
    (
        "ECS_DOMAIN_JOINED_LINUX_INSTANCE",
        "false",
        "true",
        "true",
        "joined",
    ),
    (
        "CREDENTIALS_FETCHER_HOST",
        "(unset)",
        "unix:///var/credentials-fetcher/socket/credentials_fetcher.sock",
        "unix:///var/credentials-fetcher/socket/credentials_fetcher.sock",
        "a socket",
    ),
    (
        "CREDENTIALS_FETCHER_HOST_DIR",
        "(unset)",
        "/var/credentials-fetcher",
        "/var/credentials-fetcher",
        "relative/dir",
    ),
    (
        "CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA",
        "(unset)",
        "gmsa-secret",
        "gmsa-secret",
        "two words",
    ),
    ("ECS_EBSTA_SUPPORTED", "true", "false", "false", "maybe"),
    (
        "ECS_PAUSE_LABELS",
        "{}",
        r#"{"a":"b"}"#,
        r#"{"a":"b"}"#,
        "[1]",
    ),
    ("ECS_ENABLE_TASK_ENI", "true", "false", "false", "eni"),
    (
        "ECS_ENABLE_HIGH_DENSITY_ENI",
        "true",
        "false",
        "false",
        "dense",
    ),
    (
        "ECS_CNI_PLUGINS_PATH",
        "/amazon-ecs-cni-plugins",
        "/opt/cni",
        "/opt/cni",
        "opt/cni",
    ),
    ("ECS_AWSVPC_BLOCK_IMDS", "false", "true", "true", "block"),
    (
        "ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES",
        "[]",
        r#"["10.0.0.0/8"]"#,
        r#"["10.0.0.0/8"]"#,
        r#"["10.0.0.0"]"#,
    ),
    (
        "ECS_EXCLUDE_IPV6_PORTBINDING",
        "true",
        "false",
        "false",
        "v6",
    ),
    (
        "ECS_CNI_LOGLEVEL",
        "(unset)",
        "debug",
        "debug",
        "very verbose",
    ),
    (
        "ECS_CNI_LOG_FILE",
        "(unset)",
        "/log/cni.log",
        "/log/cni.log",
        "cni.log",
    ),
    ("ECS_DISABLE_METRICS", "false", "true", "true", "metrics"),
    ("ECS_POLL_METRICS", "false", "true", "true", "poll"),
    (
        "ECS_POLLING_METRICS_WAIT_DURATION",
        "10s",
        "15s",
        "15s",
        "15",
    ),
    (
        "ECS_TASK_METADATA_RPS_LIMIT",
        "40,60",
        "100,150",
        "100,150",
        "100",
    ),
    (
        "ECS_DISABLE_TASK_METADATA_AZ",
        "false",
        "true",
        "true",
        "az",
    ),
    (
        "ECS_ENABLE_PROMETHEUS_METRICS",
        "false",
        "true",
        "true",
        "prom",
    ),
    ("ECS_ENABLE_RUNTIME_STATS", "false", "true", "true", "stats"),
    (
        "ECS_DATADIR",
        "/var/lib/ecs/data",
        "/data/",
        "/data/",
        "data",
    ),
    ("ECS_CHECKPOINT", "true", "false", "false", "sometimes"),
    ("ECS_UPDATES_ENABLED", "true", "false", "false", "never"),
    (
        "ECS_UPDATE_DOWNLOAD_DIR",
        "/var/cache/ecs",
        "/tmp/ecs",
        "/tmp/ecs",
        "tmp",
    ),
    (
        "ECS_AGENT_CONFIG_FILE_PATH",
        "/etc/ecs/ecs.config.json",
        "/nonexistent/ecs.json",
        "/nonexistent/ecs.json",
        "ecs.json",
    ),
    (
        "ECS_LOGFILE",
        "/var/log/ecs/ecs-agent.log",
        "/tmp/agent.log",
        "/tmp/agent.log",
        "agent.log",
    ),
    ("ECS_LOGLEVEL", "info", "debug", "debug", "verbose"),
    (
        "ECS_LOGLEVEL_ON_INSTANCE",
        "(unset)",
        "warn",
        "warn",
        "warning",
    ),
    (
        "ECS_LOG_DRIVER",
        "(unset)",
        "journald",
        "journald",
        "json file",
    ),
    (
        "ECS_LOG_OPTS",
        "{}",
        r#"{"max-size":"10m"}"#,
        r#"{"max-size":"10m"}"#,
        "max-size=10m",
    ),
    ("ECS_LOG_ROLLOVER_TYPE", "size", "date", "hourly", "daily"),
    ("ECS_LOG_OUTPUT_FORMAT", "logfmt", "json", "json", "text"),
    ("ECS_LOG_MAX_FILE_SIZE_MB", "5", "0.5", "0.5", "0"),
    ("ECS_LOG_MAX_ROLL_COUNT", "24", "3", "3", "-3"),
    (
        "ECS_AUDIT_LOGFILE",
        "/var/log/ecs/audit.log",
        "/tmp/audit.log",
        "/tmp/audit.log",
        "audit.log",
    ),
    (
        "ECS_AUDIT_LOGFILE_DISABLED",
        "false",
        "true",
        "true",
        "disabled",
    ),
    (
        "ECS_AGENT_HEALTHCHECK_HOST",
        "localhost",
        "127.0.0.1",
        "127.0.0.1",
        "local host",
    ),
    (
        "ECS_ALTERNATE_CREDENTIAL_PROFILE",
        "default",
        "ecs",
        "ecs",
        "my profile",
    ),
    (
        "DOCKER_HOST",
        "unix:///var/run/docker.sock",
        "unix:///run/docker.sock",
        "unix:///run/docker.sock",
        "/var/run/docker.sock",
    ),
    (
        "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
        "false",
        "true",
        "true",
        "skip",
    ),
    (
        "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
        "false",
        "true",
        "true",
        "allow",
    ),
    (
        "ECS_OFFHOST_INTROSPECTION_INTERFACE_NAME",
        "(unset)",
        "eth0",
        "eth0",
        "eth 0",
    ),
    (
        "ECS_AGENT_LABELS",
        "{}",
        r#"{"k":"v"}"#,
        r#"{"k":"v"}"#,
        "k=v",
    ),
    (
        "ECS_AGENT_APPARMOR_PROFILE",
        "ecs-agent-default",
        "unconfined",
        "unconfined",
        "two words",
    ),
    (
        "ECS_AGENT_PID_NAMESPACE_HOST",
        "false",
        "true",
        "true",
        "host",
    ),
    (
        "ECS_AGENT_RUN_PRIVILEGED",
        "false",
        "true",
        "true",
        "privileged",
    ),
    (
        "ECS_INIT_DOCKER_LOG_FILE_SIZE",
        "16m",
        "32m",
        "32m",
        "16 MB",
    ),
    ("ECS_INIT_DOCKER_LOG_FILE_NUM", "4", "8", "8", "eight"),
];

/// Variables whose valid test value needs a companion to be accepted.
fn companions(var: &str) -> &'static [(&'static str, &'static str)] {
    match var {
        "ECS_ENGINE_AUTH_DATA" => &[("ECS_ENGINE_AUTH_TYPE", "docker")],
        "ECS_POLLING_METRICS_WAIT_DURATION" => &[("ECS_POLL_METRICS", "true")],
        "ECS_EXTERNAL" => &[("AWS_DEFAULT_REGION", "us-east-1")],
        _ => &[],
    }
}

fn env_sources(pairs: &[(&str, &str)]) -> Sources {
    Sources {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Sources::default()
    }
}

fn rendered(loaded: &Loaded, var: &str) -> String {
    loaded
        .config
        .rendered()
        .into_iter()
        .find(|(v, _)| v.env == var)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{var} is not rendered"))
}

#[test]
fn the_table_covers_every_variable_once() {
    let known: Vec<&str> = VARIABLES.iter().map(|v| v.env).collect();
    let tested: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    for var in &known {
        assert_eq!(
            tested.iter().filter(|t| *t == var).count(),
            1,
            "{var} needs exactly one case"
        );
    }
    assert_eq!(known.len(), tested.len());
}

#[test]
fn every_variable_defaults_as_the_official_agent() {
    let loaded = load(&Sources::default()).expect("defaults load");
    for (var, default, ..) in CASES {
        assert_eq!(rendered(&loaded, var), *default, "default of {var}");
        assert_eq!(loaded.origins[var], Origin::Default, "origin of {var}");
    }
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn every_variable_takes_a_valid_non_default_value() {
    for (var, default, valid, shown, _) in CASES {
        let mut pairs = vec![(*var, *valid)];
        pairs.extend_from_slice(companions(var));
        let loaded =
            load(&env_sources(&pairs)).unwrap_or_else(|e| panic!("{var}={valid:?} refused: {e}"));
        assert_eq!(rendered(&loaded, var), *shown, "{var}={valid:?}");
        assert_ne!(
            shown, default,
            "{var}: the valid case must differ from the default"
        );
        assert_eq!(loaded.origins[var], Origin::Environment);
    }
}

#[test]
fn every_variable_refuses_a_bad_value_naming_it() {
    for (var, _, _, _, bad) in CASES {
        if bad.is_empty() {
            continue; // Comma lists take any text.
        }
        let err = load(&env_sources(&[(var, bad)])).expect_err(&format!("{var}={bad:?} accepted"));
        assert_eq!(err.0.len(), 1, "{var}: {err}");
        let e = &err.0[0];
        assert_eq!(e.variable, *var);
        assert_eq!(e.origin, Origin::Environment);
        assert!(!e.allowed.is_empty());
        let text = e.to_string();
        assert!(text.starts_with(var), "{text}");
        if *var == "ECS_ENGINE_AUTH_DATA" {
            assert!(!text.contains(bad), "secret leaked: {text}");
        } else {
            assert!(
                text.contains(&format!("{bad:?}")),
                "value missing in: {text}"
            );
        }
    }
}

#[test]
fn all_bad_values_are_reported_in_one_run() {
    let pairs: Vec<(&str, &str)> = CASES
        .iter()
        .filter(|c| !c.4.is_empty())
        .map(|c| (c.0, c.4))
        .collect();
    let err = load(&env_sources(&pairs)).expect_err("bad values accepted");
    let named: Vec<&str> = err.0.iter().map(|e| e.variable.as_str()).collect();
    for (var, _) in &pairs {
        assert!(named.contains(var), "{var} not reported; got {named:?}");
    }
    assert_eq!(err.to_string().lines().count(), err.0.len() + 1);
}

#[test]
fn below_minimum_values_are_adjusted_as_the_official_agent_does() {
    let loaded = load(&env_sources(&[
        ("ECS_CONTAINER_STOP_TIMEOUT", "500ms"),
        ("ECS_CONTAINER_START_TIMEOUT", "10s"),
        ("ECS_IMAGE_CLEANUP_INTERVAL", "5m"),
        ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "0s"),
        ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "0"),
        ("ECS_CGROUP_CPU_PERIOD", "5ms"),
        ("ECS_TASK_PIDS_LIMIT", "0"),
        ("ECS_POLL_METRICS", "true"),
        ("ECS_POLLING_METRICS_WAIT_DURATION", "1m"),
    ]))
    .expect("adjustable values load");
    let c = &loaded.config;
    assert_eq!(
        rendered(&loaded, "ECS_CONTAINER_STOP_TIMEOUT"),
        "1s",
        "raised to the minimum"
    );
    assert_eq!(rendered(&loaded, "ECS_CONTAINER_START_TIMEOUT"), "45s");
    assert_eq!(
        rendered(&loaded, "ECS_IMAGE_CLEANUP_INTERVAL"),
        "30m0s",
        "replaced by the default"
    );
    assert_eq!(
        rendered(&loaded, "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION"),
        "3h0m0s"
    );
    assert_eq!(c.num_images_delete_per_cycle, 5);
    assert_eq!(rendered(&loaded, "ECS_CGROUP_CPU_PERIOD"), "100ms");
    assert_eq!(c.task_pids_limit, None);
    assert_eq!(
        rendered(&loaded, "ECS_POLLING_METRICS_WAIT_DURATION"),
        "20s",
        "clamped"
    );
    let warned: Vec<&str> = loaded
        .warnings
        .iter()
        .filter_map(|w| w.variable.as_deref())
        .collect();
    assert_eq!(warned.len(), 8, "{warned:?}");
}

#[test]
fn cross_field_rules_are_errors() {
    let err = load(&env_sources(&[("ECS_EXTERNAL", "true")])).unwrap_err();
    assert_eq!(err.0[0].variable, "AWS_DEFAULT_REGION");
    let err = load(&env_sources(&[("ECS_ENGINE_AUTH_DATA", "{}")])).unwrap_err();
    assert_eq!(err.0[0].variable, "ECS_ENGINE_AUTH_TYPE");
    let ok = load(&env_sources(&[
        ("ECS_EXTERNAL", "true"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]));
    assert!(ok.is_ok());
}

fn ecs_config(text: &str) -> (PathBuf, String) {
    (PathBuf::from("/etc/ecs/ecs.config"), text.to_owned())
}

#[test]
fn environment_overrides_ecs_config_which_overrides_json_file() {
    let mut sources = env_sources(&[("ECS_CLUSTER", "from-env")]);
    sources.ecs_config_files = vec![
        (
            PathBuf::from("/var/lib/ecs/ecs.config"),
            "ECS_LOGLEVEL=warn\nECS_RESERVED_MEMORY=64\n".into(),
        ),
        ecs_config("ECS_CLUSTER=from-file\nECS_LOGLEVEL=debug\n"),
    ];
    sources.json_file = Some((
        PathBuf::from("/etc/ecs/ecs.config.json"),
        r#"{"Cluster":"from-json","ReservedMemory":128,"DockerStopTimeout":45000000000,"imagePullBehavior":"once"}"#.into(),
    ));
    let loaded = load(&sources).unwrap();
    let c = &loaded.config;
    assert_eq!(c.cluster, "from-env");
    assert_eq!(
        c.log_level,
        LogLevel::Debug,
        "the later ecs.config file wins"
    );
    assert_eq!(c.reserved_memory, 64, "ecs.config beats the JSON file");
    assert_eq!(
        rendered(&loaded, "ECS_CONTAINER_STOP_TIMEOUT"),
        "45s",
        "JSON nanoseconds"
    );
    assert_eq!(
        c.image_pull_behavior,
        ImagePullBehavior::Once,
        "JSON keys match without case"
    );
    assert_eq!(loaded.origins["ECS_CLUSTER"], Origin::Environment);
    assert_eq!(
        loaded.origins["ECS_LOGLEVEL"],
        Origin::EcsConfig {
            path: "/etc/ecs/ecs.config".into(),
            line: 2
        }
    );
    assert!(matches!(
        loaded.origins["ECS_CONTAINER_STOP_TIMEOUT"],
        Origin::JsonFile { .. }
    ));
}

#[test]
fn ecs_config_quirks_are_reproduced() {
    let mut sources = Sources {
        ecs_config_files: vec![ecs_config(
            "# ECS_LOGLEVEL=debug\nECS_RESERVED_MEMORY = 64\nECS_DATADIR=\"/srv/ecs\"\nECS_CLUSTER=web # prod\n",
        )],
        ..Sources::default()
    };
    // Quotes stay part of the value, which then is not an absolute path; the trailing
    // "comment" stays part of the cluster name, which then is not a valid name.
    let err = load(&sources).unwrap_err();
    let named: Vec<&str> = err.0.iter().map(|e| e.variable.as_str()).collect();
    assert_eq!(named, ["ECS_CLUSTER", "ECS_DATADIR"]);
    assert!(
        err.0[1].to_string().contains(r#""\"/srv/ecs\"""#),
        "{}",
        err.0[1]
    );

    sources.ecs_config_files = vec![ecs_config(
        "# ECS_LOGLEVEL=debug\nECS_RESERVED_MEMORY = 64\n",
    )];
    let loaded = load(&sources).unwrap();
    assert_eq!(
        loaded.config.log_level,
        LogLevel::Info,
        "no comment handling, but not ECS_LOGLEVEL"
    );
    assert_eq!(
        loaded.config.reserved_memory, 0,
        "a spaced name is another variable"
    );
    let messages: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        messages.iter().any(|m| m.contains("no comments")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("white space around the name")),
        "{messages:?}"
    );
}

#[test]
fn empty_values_mean_unset_except_the_log_file() {
    let loaded = load(&env_sources(&[("ECS_CLUSTER", ""), ("ECS_LOGFILE", "")])).unwrap();
    assert_eq!(loaded.config.cluster, "default");
    assert_eq!(
        loaded.config.log_file, "",
        "empty ECS_LOGFILE turns the file off"
    );
}

#[test]
fn unknown_ecs_variables_and_json_keys_warn() {
    let mut sources = env_sources(&[("ECS_CLUSTR", "typo"), ("HOME", "/root")]);
    sources.json_file = Some((PathBuf::from("/j.json"), r#"{"Clustr":"x"}"#.into()));
    let loaded = load(&sources).unwrap();
    let messages: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("Clustr"));
    assert!(messages[1].starts_with("ECS_CLUSTR"));
}

#[test]
fn malformed_json_file_is_an_error_naming_the_file() {
    let sources = Sources {
        json_file: Some((
            PathBuf::from("/etc/ecs/ecs.config.json"),
            "{\"Cluster\": ".into(),
        )),
        ..Sources::default()
    };
    let err = load(&sources).unwrap_err();
    assert_eq!(err.0[0].variable, "ECS_AGENT_CONFIG_FILE_PATH");
    assert!(err.to_string().contains("/etc/ecs/ecs.config.json"));
}

#[test]
fn json_cluster_arn_alias_is_accepted() {
    let mut sources = Sources::default();
    let arn = "arn:aws:ecs:us-west-2:123456789012:cluster/web";
    sources.json_file = Some((
        PathBuf::from("/j.json"),
        format!(r#"{{"ClusterArn":"{arn}"}}"#),
    ));
    assert_eq!(load(&sources).unwrap().config.cluster, arn);
}

#[test]
fn json_config_path_comes_from_the_text_layers() {
    let env: BTreeMap<String, String> = [(
        "ECS_AGENT_CONFIG_FILE_PATH".to_owned(),
        "/x.json".to_owned(),
    )]
    .into();
    assert_eq!(
        json_config_path(&Layers::new(&env, &[])),
        PathBuf::from("/x.json")
    );
    let files = [ecs_config("ECS_AGENT_CONFIG_FILE_PATH=/y.json\n")];
    assert_eq!(
        json_config_path(&Layers::new(&BTreeMap::new(), &files)),
        PathBuf::from("/y.json")
    );
    assert_eq!(
        json_config_path(&Layers::new(&BTreeMap::new(), &[])),
        PathBuf::from("/etc/ecs/ecs.config.json")
    );
}

#[test]
fn config_check_redacts_secrets_and_names_origins() {
    let secret = r#"{"registry.example.com":{"username":"u","password":"hunter2"}}"#;
    let loaded = load(&env_sources(&[
        ("ECS_ENGINE_AUTH_TYPE", "docker"),
        ("ECS_ENGINE_AUTH_DATA", secret),
    ]))
    .unwrap();
    let text = render_check(&loaded);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("ECS_ENGINE_AUTH_DATA"));
    assert!(text.contains("<redacted>"));
    assert!(format!("{:?}", loaded.config).contains("<redacted>"));
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    let line = text
        .lines()
        .find(|l| l.starts_with("ECS_ENGINE_AUTH_TYPE"))
        .unwrap();
    assert!(
        line.contains("= docker") && line.contains("# environment"),
        "{line}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn loading_arbitrary_ecs_config_text_never_panics(text in "\\PC{0,300}") {
            let sources = Sources {
                ecs_config_files: vec![ecs_config(&text)],
                ..Sources::default()
            };
            let _ = load(&sources);
        }

        #[test]
        fn any_variable_with_any_value_loads_or_names_it(
            idx in 0..CASES.len(), value in "\\PC{0,24}"
        ) {
            let var = CASES[idx].0;
            match load(&env_sources(&[(var, &value)])) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.0.iter().all(|x| !x.variable.is_empty())),
            }
        }
    }
}
