use std::collections::BTreeMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use serde_json::json;

use super::*;
use crate::model::task::{Device, KernelCapabilities, LinuxParameters};
use crate::model::{DockerConfig, MountPoint, PortMapping, Protocol, VolumeFrom};

const CREDS_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";

/// Owns what a [`CreateContext`] borrows.
struct Fixture {
    ports: Vec<ResolvedPort>,
    peers: BTreeMap<String, String>,
    volumes: BTreeMap<String, VolumeSource>,
    extra_env: BTreeMap<String, String>,
    cgroup_parent: Option<String>,
    disable_privileged: bool,
    log_config_override: Option<HostConfigLogConfig>,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            ports: Vec::new(),
            peers: BTreeMap::from([
                ("db".to_string(), "ecs-web-3-db-aaaa".to_string()),
                ("data".to_string(), "ecs-web-3-data-bbbb".to_string()),
            ]),
            volumes: BTreeMap::from([
                (
                    "logs".to_string(),
                    VolumeSource::HostPath("/var/log/app".into()),
                ),
                (
                    "cache".to_string(),
                    VolumeSource::DockerVolume("ecs-web-3-cache".into()),
                ),
            ]),
            extra_env: BTreeMap::new(),
            cgroup_parent: None,
            disable_privileged: false,
            log_config_override: None,
        }
    }
}

impl Fixture {
    fn ctx(&self) -> CreateContext<'_> {
        CreateContext {
            cluster: "prod",
            host_ports: &self.ports,
            peer_names: &self.peers,
            volumes: &self.volumes,
            cgroup_parent: self.cgroup_parent.as_deref(),
            disable_privileged: self.disable_privileged,
            extra_env: &self.extra_env,
            log_config_override: self.log_config_override.clone(),
        }
    }

    fn build(
        &self,
        task: &Task,
        container: &Container,
    ) -> Result<ContainerCreateBody, CreateError> {
        create_body(task, container, &self.ctx())
    }
}

fn task() -> Task {
    Task {
        arn: "arn:aws:ecs:us-west-2:123456789012:task/prod/0123abcd".into(),
        family: "web".into(),
        version: "3".into(),
        ..Default::default()
    }
}

fn container() -> Container {
    Container {
        name: "app".into(),
        image: "busybox:latest".into(),
        ..Default::default()
    }
}

fn with_docker_config(config: Option<&str>, host_config: Option<&str>) -> Container {
    Container {
        docker_config: Some(DockerConfig {
            config: config.map(String::from),
            host_config: host_config.map(String::from),
            version: None,
        }),
        ..container()
    }
}

fn build(container: &Container) -> ContainerCreateBody {
    Fixture::default().build(&task(), container).unwrap()
}

fn host(body: &ContainerCreateBody) -> &HostConfig {
    body.host_config.as_ref().unwrap()
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

fn binding(port: &str) -> PortBinding {
    PortBinding {
        host_ip: Some(String::new()),
        host_port: Some(port.into()),
    }
}

fn single(container_port: u16, host_port: Option<u16>, protocol: Protocol) -> ResolvedPort {
    ResolvedPort {
        container_port: Some(container_port),
        container_port_range: None,
        host_port,
        host_port_range: None,
        protocol,
    }
}

fn range(container: (u16, u16), host: Option<(u16, u16)>) -> ResolvedPort {
    ResolvedPort {
        container_port: None,
        container_port_range: Some(container),
        host_port: None,
        host_port_range: host,
        protocol: Protocol::Tcp,
    }
}

fn with_mappings(count: usize) -> Container {
    Container {
        port_mappings: Some(vec![PortMapping::default(); count]),
        ..container()
    }
}

// ------------------------------------------------------------- config

#[test]
fn image_command_and_entrypoint_come_from_the_container() {
    let body = build(&Container {
        command: strings(&["-c", "echo hi"]),
        entry_point: strings(&["sh"]),
        ..container()
    });
    assert_eq!(body.image.as_deref(), Some("busybox:latest"));
    assert_eq!(body.cmd, strings(&["-c", "echo hi"]));
    assert_eq!(body.entrypoint, strings(&["sh"]));
}

#[test]
fn absent_command_and_entrypoint_keep_the_image_defaults() {
    let body = build(&container());
    assert_eq!((body.cmd, body.entrypoint), (None, None));
}

#[test]
fn override_command_wins_over_the_task_command() {
    let body = build(&Container {
        command: strings(&["original"]),
        overrides: Some(r#"{"command":["overridden","arg"]}"#.into()),
        ..container()
    });
    assert_eq!(body.cmd, strings(&["overridden", "arg"]));
}

#[test]
fn overrides_without_a_command_keep_the_task_command() {
    for overrides in ["{}", r#"{"command":null}"#, "null", "  "] {
        let body = build(&Container {
            command: strings(&["original"]),
            overrides: Some(overrides.into()),
            ..container()
        });
        assert_eq!(body.cmd, strings(&["original"]), "{overrides}");
    }
}

#[test]
fn invalid_overrides_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &Container {
                overrides: Some(r#"{"command":"not-a-list"}"#.into()),
                ..container()
            },
        )
        .unwrap_err();
    assert!(matches!(err, CreateError::InvalidOverrides { .. }), "{err}");
}

#[test]
fn environment_is_sorted_then_extra_env() {
    let fixture = Fixture {
        extra_env: BTreeMap::from([(CREDS_URI.to_string(), "/v2/credentials/x".to_string())]),
        ..Fixture::default()
    };
    let body = fixture
        .build(
            &task(),
            &Container {
                environment: Some(BTreeMap::from([
                    ("ZED".to_string(), "z".to_string()),
                    ("ALPHA".to_string(), "a=b".to_string()),
                ])),
                ..container()
            },
        )
        .unwrap();
    assert_eq!(
        body.env,
        strings(&[
            "ALPHA=a=b",
            "ZED=z",
            &format!("{CREDS_URI}=/v2/credentials/x")
        ])
    );
}

#[test]
fn extra_env_wins_over_a_task_variable_of_the_same_name() {
    let fixture = Fixture {
        extra_env: BTreeMap::from([(CREDS_URI.to_string(), "/agent".to_string())]),
        ..Fixture::default()
    };
    let body = fixture
        .build(
            &task(),
            &Container {
                environment: Some(BTreeMap::from([(
                    CREDS_URI.to_string(),
                    "/spoof".to_string(),
                )])),
                ..container()
            },
        )
        .unwrap();
    assert_eq!(body.env, strings(&[&format!("{CREDS_URI}=/agent")]));
}

#[test]
fn no_environment_sends_no_env() {
    assert_eq!(build(&container()).env, None);
}

// -------------------------------------------------------------- ports

#[test]
fn fixed_and_dynamic_ports_are_exposed_and_bound() {
    let fixture = Fixture {
        ports: vec![
            single(80, Some(8080), Protocol::Tcp),
            single(53, Some(5353), Protocol::Udp),
            single(9000, None, Protocol::Tcp),
        ],
        ..Fixture::default()
    };
    let body = fixture.build(&task(), &with_mappings(3)).unwrap();
    assert_eq!(
        body.exposed_ports,
        strings(&["80/tcp", "53/udp", "9000/tcp"])
    );
    let bindings = host(&body).port_bindings.clone().unwrap();
    assert_eq!(bindings.len(), 3);
    assert_eq!(bindings["80/tcp"], Some(vec![binding("8080")]));
    assert_eq!(bindings["53/udp"], Some(vec![binding("5353")]));
    assert_eq!(bindings["9000/tcp"], Some(vec![binding("")]));
}

#[test]
fn one_container_port_can_bind_two_host_ports() {
    let fixture = Fixture {
        ports: vec![
            single(80, Some(8080), Protocol::Tcp),
            single(80, Some(8081), Protocol::Tcp),
        ],
        ..Fixture::default()
    };
    let body = fixture.build(&task(), &with_mappings(2)).unwrap();
    assert_eq!(body.exposed_ports, strings(&["80/tcp"]));
    assert_eq!(
        host(&body).port_bindings.as_ref().unwrap()["80/tcp"],
        Some(vec![binding("8080"), binding("8081")])
    );
}

#[test]
fn a_port_range_binds_one_to_one_onto_the_host_range() {
    let fixture = Fixture {
        ports: vec![range((7000, 7002), Some((41000, 41002)))],
        ..Fixture::default()
    };
    let body = fixture.build(&task(), &with_mappings(1)).unwrap();
    assert_eq!(
        body.exposed_ports,
        strings(&["7000/tcp", "7001/tcp", "7002/tcp"])
    );
    let bindings = host(&body).port_bindings.clone().unwrap();
    assert_eq!(bindings["7000/tcp"], Some(vec![binding("41000")]));
    assert_eq!(bindings["7002/tcp"], Some(vec![binding("41002")]));
}

#[test]
fn a_host_range_of_another_length_is_an_error() {
    let fixture = Fixture {
        ports: vec![range((7000, 7002), Some((41000, 41005)))],
        ..Fixture::default()
    };
    let err = fixture.build(&task(), &with_mappings(1)).unwrap_err();
    assert!(
        matches!(err, CreateError::InvalidPortMapping { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_mapping_with_both_or_neither_container_port_is_an_error() {
    let both = ResolvedPort {
        container_port_range: Some((1, 2)),
        ..single(80, None, Protocol::Tcp)
    };
    let neither = ResolvedPort {
        container_port: None,
        ..single(80, None, Protocol::Tcp)
    };
    for port in [both, neither] {
        let fixture = Fixture {
            ports: vec![port],
            ..Fixture::default()
        };
        let err = fixture.build(&task(), &with_mappings(1)).unwrap_err();
        assert!(
            matches!(err, CreateError::InvalidPortMapping { .. }),
            "{err}"
        );
    }
}

#[test]
fn unresolved_port_mappings_are_an_error() {
    let err = Fixture::default()
        .build(&task(), &with_mappings(2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CreateError::PortsNotResolved {
                mappings: 2,
                resolved: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn requested_port_reads_the_task_mapping() {
    let fixed = PortMapping {
        container_port: Some(80),
        host_port: Some(8080),
        protocol: Some(Protocol::Udp),
        ..Default::default()
    };
    assert_eq!(
        ResolvedPort::requested("app", 0, &fixed).unwrap(),
        single(80, Some(8080), Protocol::Udp)
    );
    let dynamic = PortMapping {
        container_port: Some(80),
        host_port: Some(0),
        ..Default::default()
    };
    assert_eq!(
        ResolvedPort::requested("app", 0, &dynamic).unwrap(),
        single(80, None, Protocol::Tcp)
    );
    let ranged = PortMapping {
        container_port_range: Some("7000-7010".into()),
        ..Default::default()
    };
    assert_eq!(
        ResolvedPort::requested("app", 0, &ranged).unwrap(),
        range((7000, 7010), None)
    );
}

#[test]
fn malformed_port_ranges_are_refused() {
    assert_eq!(parse_port_range("10-20"), Some((10, 20)));
    assert_eq!(parse_port_range("5-5"), Some((5, 5)));
    for bad in ["20-10", "0-5", "10", "a-b", "1-70000", ""] {
        assert_eq!(parse_port_range(bad), None, "{bad}");
    }
    let mapping = PortMapping {
        container_port_range: Some("9-1".into()),
        ..Default::default()
    };
    let err = ResolvedPort::requested("app", 4, &mapping).unwrap_err();
    assert!(
        matches!(err, CreateError::InvalidPortMapping { index: 4, .. }),
        "{err}"
    );
}

// ---------------------------------------------------------- resources

#[test]
fn cpu_shares_are_raised_to_two_and_capped() {
    for (cpu, shares) in [
        (None, 2),
        (Some(0), 2),
        (Some(1), 2),
        (Some(-5), 2),
        (Some(512), 512),
        (Some(262_144), 262_144),
        (Some(300_000), 262_144),
    ] {
        let body = build(&Container { cpu, ..container() });
        assert_eq!(host(&body).cpu_shares, Some(shares), "{cpu:?}");
    }
}

#[test]
fn memory_is_mebibytes_with_a_four_mebibyte_floor() {
    for (memory, bytes) in [
        (None, None),
        (Some(0), None),
        (Some(2), Some(4 * 1024 * 1024)),
        (Some(256), Some(256 * 1024 * 1024)),
    ] {
        let body = build(&Container {
            memory,
            ..container()
        });
        assert_eq!(host(&body).memory, bytes, "{memory:?}");
    }
}

// ---------------------------------------------- links, volumes, binds

#[test]
fn links_use_the_peer_docker_name_and_the_alias() {
    let body = build(&Container {
        links: strings(&["db:database", "data"]),
        ..container()
    });
    assert_eq!(
        host(&body).links,
        strings(&["ecs-web-3-db-aaaa:database", "ecs-web-3-data-bbbb:data"])
    );
}

#[test]
fn a_link_to_an_unknown_container_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &Container {
                links: strings(&["ghost:g"]),
                ..container()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, CreateError::UnknownPeer { field: "links", peer, .. } if peer == "ghost"),
        "{err}"
    );
}

#[test]
fn a_link_with_two_colons_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &Container {
                links: strings(&["db:a:b"]),
                ..container()
            },
        )
        .unwrap_err();
    assert!(matches!(err, CreateError::InvalidLink { .. }), "{err}");
}

#[test]
fn volumes_from_use_the_peer_docker_name_and_ro() {
    let body = build(&Container {
        volumes_from: Some(vec![
            VolumeFrom {
                source_container: "data".into(),
                read_only: Some(true),
            },
            VolumeFrom {
                source_container: "db".into(),
                read_only: Some(false),
            },
        ]),
        ..container()
    });
    assert_eq!(
        host(&body).volumes_from,
        strings(&["ecs-web-3-data-bbbb:ro", "ecs-web-3-db-aaaa"])
    );
}

#[test]
fn volumes_from_an_unknown_container_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &Container {
                volumes_from: Some(vec![VolumeFrom {
                    source_container: "ghost".into(),
                    read_only: None,
                }]),
                ..container()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            CreateError::UnknownPeer {
                field: "volumesFrom",
                ..
            }
        ),
        "{err}"
    );
}

fn mount(volume: &str, path: &str, read_only: Option<bool>) -> MountPoint {
    MountPoint {
        source_volume: volume.into(),
        container_path: path.into(),
        read_only,
    }
}

#[test]
fn mount_points_become_binds_of_host_paths_and_docker_volumes() {
    let body = build(&Container {
        mount_points: Some(vec![
            mount("logs", "/logs", Some(true)),
            mount("cache", "/cache", None),
        ]),
        ..container()
    });
    assert_eq!(
        host(&body).binds,
        strings(&["/var/log/app:/logs:ro", "ecs-web-3-cache:/cache"])
    );
}

#[test]
fn a_mount_of_an_unknown_volume_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &Container {
                mount_points: Some(vec![mount("nope", "/x", None)]),
                ..container()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, CreateError::UnknownVolume { volume, .. } if volume == "nope"),
        "{err}"
    );
}

#[test]
fn a_mount_with_an_empty_path_is_an_error() {
    let mut fixture = Fixture::default();
    fixture
        .volumes
        .insert("empty".into(), VolumeSource::HostPath(String::new()));
    for mount_point in [mount("logs", "", None), mount("empty", "/x", None)] {
        let err = fixture
            .build(
                &task(),
                &Container {
                    mount_points: Some(vec![mount_point]),
                    ..container()
                },
            )
            .unwrap_err();
        assert!(matches!(err, CreateError::EmptyMountPath { .. }), "{err}");
    }
}

// ------------------------------------------------------- network mode

fn with_network(mode: Option<&str>) -> Task {
    Task {
        network_mode: mode.map(String::from),
        ..task()
    }
}

#[test]
fn network_mode_follows_the_task_with_bridge_by_default() {
    for (mode, docker) in [
        (None, "bridge"),
        (Some(""), "bridge"),
        (Some("bridge"), "bridge"),
        (Some("host"), "host"),
        (Some("none"), "none"),
    ] {
        let body = Fixture::default()
            .build(&with_network(mode), &container())
            .unwrap();
        assert_eq!(
            host(&body).network_mode.as_deref(),
            Some(docker),
            "{mode:?}"
        );
    }
}

#[test]
fn awsvpc_and_unknown_network_modes_are_refused() {
    for mode in ["awsvpc", "nat"] {
        let err = Fixture::default()
            .build(&with_network(Some(mode)), &container())
            .unwrap_err();
        assert!(
            matches!(&err, CreateError::UnsupportedNetworkMode { mode: m } if m == mode),
            "{err}"
        );
    }
}

#[test]
fn a_stated_task_network_mode_wins_over_the_host_config() {
    let c = with_docker_config(None, Some(r#"{"NetworkMode":"host"}"#));
    let body = Fixture::default()
        .build(&with_network(Some("bridge")), &c)
        .unwrap();
    assert_eq!(host(&body).network_mode.as_deref(), Some("bridge"));
}

#[test]
fn without_a_task_network_mode_the_host_config_one_is_kept() {
    let c = with_docker_config(None, Some(r#"{"NetworkMode":"host"}"#));
    let body = Fixture::default().build(&with_network(None), &c).unwrap();
    assert_eq!(host(&body).network_mode.as_deref(), Some("host"));
}

// ------------------------------------------------- privileged, linux

#[test]
fn privileged_is_set_when_asked_and_allowed() {
    let body = build(&Container {
        privileged: Some(true),
        ..container()
    });
    assert_eq!(host(&body).privileged, Some(true));
    assert_eq!(host(&build(&container())).privileged, None);
}

#[test]
fn privileged_is_refused_when_disabled() {
    let fixture = Fixture {
        disable_privileged: true,
        ..Fixture::default()
    };
    let asked = Container {
        privileged: Some(true),
        ..container()
    };
    let via_host_config = with_docker_config(None, Some(r#"{"Privileged":true}"#));
    for c in [asked, via_host_config] {
        let err = fixture.build(&task(), &c).unwrap_err();
        assert!(
            matches!(err, CreateError::PrivilegedDisabled { .. }),
            "{err}"
        );
    }
    assert!(fixture.build(&task(), &container()).is_ok());
}

fn with_linux(params: LinuxParameters) -> Container {
    Container {
        linux_parameters: Some(params),
        ..container()
    }
}

#[test]
fn capabilities_init_and_shared_memory_come_from_linux_parameters() {
    let body = build(&with_linux(LinuxParameters {
        capabilities: Some(KernelCapabilities {
            add: strings(&["NET_ADMIN"]),
            drop: strings(&["MKNOD", "CHOWN"]),
        }),
        init_process_enabled: Some(true),
        shared_memory_size: Some(64),
        devices: None,
    }));
    let host = host(&body);
    assert_eq!(host.cap_add, strings(&["NET_ADMIN"]));
    assert_eq!(host.cap_drop, strings(&["MKNOD", "CHOWN"]));
    assert_eq!(host.init, Some(true));
    assert_eq!(host.shm_size, Some(64 * 1024 * 1024));
}

#[test]
fn devices_default_to_the_host_path_and_all_permissions() {
    let body = build(&with_linux(LinuxParameters {
        devices: Some(vec![
            Device {
                host_path: "/dev/fuse".into(),
                container_path: None,
                permissions: None,
            },
            Device {
                host_path: "/dev/null".into(),
                container_path: Some("/dev/mynull".into()),
                permissions: Some(vec!["mknod".into(), "read".into()]),
            },
        ]),
        ..Default::default()
    }));
    let devices = host(&body).devices.clone().unwrap();
    let shown: Vec<_> = devices
        .iter()
        .map(|d| {
            (
                d.path_on_host.as_deref().unwrap(),
                d.path_in_container.as_deref().unwrap(),
                d.cgroup_permissions.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("/dev/fuse", "/dev/fuse", "rwm"),
            ("/dev/null", "/dev/mynull", "rm")
        ]
    );
}

#[test]
fn an_unknown_device_permission_is_an_error() {
    let err = Fixture::default()
        .build(
            &task(),
            &with_linux(LinuxParameters {
                devices: Some(vec![Device {
                    host_path: "/dev/null".into(),
                    container_path: None,
                    permissions: Some(vec!["execute".into()]),
                }]),
                ..Default::default()
            }),
        )
        .unwrap_err();
    assert!(
        matches!(err, CreateError::InvalidDevicePermission { .. }),
        "{err}"
    );
}

#[test]
fn no_linux_parameters_leave_docker_defaults() {
    let body = build(&container());
    let host = host(&body);
    assert_eq!(
        (
            &host.cap_add,
            &host.cap_drop,
            &host.devices,
            host.init,
            host.shm_size
        ),
        (&None, &None, &None, None, None)
    );
}

// ----------------------------------------------------- pid, ipc, cgroup

#[test]
fn host_pid_and_ipc_modes_are_applied() {
    let t = Task {
        pid_mode: Some("host".into()),
        ipc_mode: Some("host".into()),
        ..task()
    };
    let c = with_docker_config(None, Some(r#"{"PidMode":"","IpcMode":"private"}"#));
    let body = Fixture::default().build(&t, &c).unwrap();
    assert_eq!(host(&body).pid_mode.as_deref(), Some("host"));
    assert_eq!(host(&body).ipc_mode.as_deref(), Some("host"));
}

#[test]
fn ipc_mode_none_is_applied() {
    let t = Task {
        ipc_mode: Some("none".into()),
        ..task()
    };
    let body = Fixture::default().build(&t, &container()).unwrap();
    assert_eq!(host(&body).ipc_mode.as_deref(), Some("none"));
}

#[test]
fn task_namespaces_are_not_supported_yet() {
    let pid = Task {
        pid_mode: Some("task".into()),
        ..task()
    };
    let ipc = Task {
        ipc_mode: Some("task".into()),
        ..task()
    };
    for (t, field) in [(pid, "pidMode"), (ipc, "ipcMode")] {
        let err = Fixture::default().build(&t, &container()).unwrap_err();
        assert!(
            matches!(&err, CreateError::UnsupportedNamespaceMode { field: f, .. } if *f == field),
            "{err}"
        );
        assert!(err.to_string().contains("not supported yet"), "{err}");
    }
}

#[test]
fn the_task_cgroup_parent_wins_over_the_host_config() {
    let fixture = Fixture {
        cgroup_parent: Some("/ecs/0123abcd".into()),
        ..Fixture::default()
    };
    let c = with_docker_config(None, Some(r#"{"CgroupParent":"/elsewhere"}"#));
    let body = fixture.build(&task(), &c).unwrap();
    assert_eq!(host(&body).cgroup_parent.as_deref(), Some("/ecs/0123abcd"));
    let body = Fixture::default().build(&task(), &c).unwrap();
    assert_eq!(host(&body).cgroup_parent.as_deref(), Some("/elsewhere"));
}

// ------------------------------------------------------------ labels

#[test]
fn ecs_labels_are_set() {
    let labels = build(&container()).labels.unwrap();
    assert_eq!(labels.len(), 5);
    assert_eq!(labels[names::LABEL_TASK_ARN], task().arn);
    assert_eq!(labels[names::LABEL_CONTAINER_NAME], "app");
    assert_eq!(labels[names::LABEL_TASK_DEFINITION_FAMILY], "web");
    assert_eq!(labels[names::LABEL_TASK_DEFINITION_VERSION], "3");
    assert_eq!(labels[names::LABEL_CLUSTER], "prod");
}

#[test]
fn task_labels_cannot_spoof_the_ecs_labels() {
    let config = json!({"Labels": {
        "team": "blue",
        "com.amazonaws.ecs.task-arn": "spoofed",
        "com.amazonaws.ecs.cluster": "spoofed",
        "com.amazonaws.ecs.container-name": "spoofed",
    }})
    .to_string();
    let labels = build(&with_docker_config(Some(&config), None))
        .labels
        .unwrap();
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels[names::LABEL_TASK_ARN], task().arn);
    assert_eq!(labels[names::LABEL_CLUSTER], "prod");
    assert_eq!(labels[names::LABEL_CONTAINER_NAME], "app");
}

// ----------------------------------------------------------- overlay

#[test]
fn docker_config_keys_override_what_the_agent_built() {
    let c = Container {
        command: strings(&["agent-cmd"]),
        memory: Some(128),
        ..with_docker_config(
            Some(r#"{"Cmd":["from-config"],"User":"1000:1000","WorkingDir":"/srv"}"#),
            Some(r#"{"Memory":67108864,"MemoryReservation":33554432,"CpuShares":100}"#),
        )
    };
    let body = build(&c);
    assert_eq!(body.cmd, strings(&["from-config"]));
    assert_eq!(body.user.as_deref(), Some("1000:1000"));
    assert_eq!(body.working_dir.as_deref(), Some("/srv"));
    assert_eq!(body.image.as_deref(), Some("busybox:latest"));
    let host = host(&body);
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.memory_reservation, Some(32 * 1024 * 1024));
    assert_eq!(host.cpu_shares, Some(100));
}

#[test]
fn docker_config_adds_fields_the_agent_does_not_build() {
    let config = json!({
        "Hostname": "box",
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64},
    });
    let host_config = json!({
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "Dns": ["127.0.0.1"],
        "ExtraHosts": ["db.local:127.0.0.2"],
        "ReadonlyRootfs": true,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
    });
    let body = build(&with_docker_config(
        Some(&config.to_string()),
        Some(&host_config.to_string()),
    ));
    assert_eq!(body.hostname.as_deref(), Some("box"));
    let health = body.healthcheck.clone().unwrap();
    assert_eq!(health.test, strings(&["CMD-SHELL", "true"]));
    assert_eq!(health.interval, Some(1_000_000_000));
    let host = host(&body);
    let ulimit = &host.ulimits.as_ref().unwrap()[0];
    assert_eq!((ulimit.soft, ulimit.hard), (Some(1024), Some(2048)));
    assert_eq!(host.dns, strings(&["127.0.0.1"]));
    assert_eq!(host.extra_hosts, strings(&["db.local:127.0.0.2"]));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(
        host.log_config.as_ref().unwrap().typ.as_deref(),
        Some("json-file")
    );
}

#[test]
fn extra_env_survives_an_env_overlay() {
    let fixture = Fixture {
        extra_env: BTreeMap::from([(CREDS_URI.to_string(), "/agent".to_string())]),
        ..Fixture::default()
    };
    let c = Container {
        environment: Some(BTreeMap::from([("TASK".to_string(), "1".to_string())])),
        ..with_docker_config(
            Some(&json!({"Env": ["FROM_CONFIG=1", format!("{CREDS_URI}=/spoof")]}).to_string()),
            None,
        )
    };
    let body = fixture.build(&task(), &c).unwrap();
    assert_eq!(
        body.env,
        strings(&["FROM_CONFIG=1", &format!("{CREDS_URI}=/agent")])
    );
}

#[test]
fn port_bindings_in_host_config_merge_with_the_agent_ones() {
    let fixture = Fixture {
        ports: vec![single(80, Some(8080), Protocol::Tcp)],
        ..Fixture::default()
    };
    let c = Container {
        port_mappings: Some(vec![PortMapping::default()]),
        ..with_docker_config(
            None,
            Some(r#"{"PortBindings":{"443/tcp":[{"HostPort":"8443"}]}}"#),
        )
    };
    let body = fixture.build(&task(), &c).unwrap();
    let bindings = host(&body).port_bindings.clone().unwrap();
    assert_eq!(bindings["80/tcp"], Some(vec![binding("8080")]));
    assert_eq!(
        bindings["443/tcp"],
        Some(vec![PortBinding {
            host_ip: None,
            host_port: Some("8443".into())
        }])
    );
}

#[test]
fn a_host_config_key_in_the_config_string_is_ignored() {
    let c = Container {
        memory: Some(128),
        ..with_docker_config(Some(r#"{"HostConfig":{"Memory":1},"User":"nobody"}"#), None)
    };
    let body = build(&c);
    assert_eq!(body.user.as_deref(), Some("nobody"));
    assert_eq!(host(&body).memory, Some(128 * 1024 * 1024));
}

#[test]
fn null_in_docker_config_clears_the_field() {
    let c = Container {
        command: strings(&["agent-cmd"]),
        ..with_docker_config(Some(r#"{"Cmd":null}"#), None)
    };
    assert_eq!(build(&c).cmd, None);
}

#[test]
fn blank_or_null_docker_config_strings_change_nothing() {
    let plain = build(&container());
    for text in ["", "  ", "null", "{}"] {
        let body = build(&with_docker_config(Some(text), Some(text)));
        assert_eq!(body, plain, "{text:?}");
    }
}

#[test]
fn invalid_docker_config_json_names_the_field() {
    for (config, host_config, field) in [
        (Some("{not json"), None, "dockerConfig.config"),
        (Some("[1,2]"), None, "dockerConfig.config"),
        (Some(r#"{"Cmd":"not-a-list"}"#), None, "dockerConfig.config"),
        (None, Some("{"), "dockerConfig.hostConfig"),
        (
            None,
            Some(r#"{"Memory":"lots"}"#),
            "dockerConfig.hostConfig",
        ),
    ] {
        let c = with_docker_config(config, host_config);
        let err = Fixture::default().build(&task(), &c).unwrap_err();
        assert!(
            matches!(&err, CreateError::InvalidDockerConfig { field: f, .. } if *f == field),
            "{config:?} {host_config:?}: {err}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn the_log_config_override_wins_over_the_host_config() {
    let fixture = Fixture {
        log_config_override: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Fixture::default()
    };
    let c = with_docker_config(None, Some(r#"{"LogConfig":{"Type":"json-file"}}"#));
    let body = fixture.build(&task(), &c).unwrap();
    assert_eq!(
        host(&body).log_config.as_ref().unwrap().typ.as_deref(),
        Some("none")
    );
}

#[test]
fn merge_recurses_into_objects_and_replaces_the_rest() {
    let mut base = json!({"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 1, "d": true})
        .as_object()
        .cloned()
        .unwrap();
    let overlay = json!({"a": {"y": 3, "z": 4}, "b": [9], "c": null, "e": "new"});
    overlay::merge(&mut base, overlay.as_object().cloned().unwrap());
    assert_eq!(
        serde_json::Value::Object(base),
        json!({"a": {"x": 1, "y": 3, "z": 4}, "b": [9], "d": true, "e": "new"})
    );
}

// ------------------------------------------------------ health, errors

#[test]
fn docker_health_check_type_needs_a_healthcheck() {
    let without = Container {
        health_check_type: Some("DOCKER".into()),
        ..container()
    };
    let err = Fixture::default().build(&task(), &without).unwrap_err();
    assert!(
        matches!(err, CreateError::MissingHealthcheck { .. }),
        "{err}"
    );
    let with = Container {
        health_check_type: Some("DOCKER".into()),
        ..with_docker_config(Some(r#"{"Healthcheck":{"Test":["CMD","true"]}}"#), None)
    };
    assert!(Fixture::default().build(&task(), &with).is_ok());
}

#[test]
fn every_error_carries_the_official_reason_prefix() {
    let disabled = Fixture {
        disable_privileged: true,
        ..Fixture::default()
    };
    let errors = [
        disabled
            .build(
                &task(),
                &Container {
                    privileged: Some(true),
                    ..container()
                },
            )
            .unwrap_err(),
        Fixture::default()
            .build(&task(), &with_docker_config(Some("{"), None))
            .unwrap_err(),
        Fixture::default()
            .build(
                &task(),
                &Container {
                    mount_points: Some(vec![mount("nope", "/x", None)]),
                    ..container()
                },
            )
            .unwrap_err(),
        Fixture::default()
            .build(&with_network(Some("awsvpc")), &container())
            .unwrap_err(),
        Fixture::default()
            .build(&task(), &with_mappings(1))
            .unwrap_err(),
    ];
    for err in errors {
        let text = err.to_string();
        assert!(text.starts_with("CannotCreateContainerError: "), "{text}");
    }
}

#[test]
fn errors_name_the_container() {
    let err = Fixture::default()
        .build(&task(), &with_docker_config(None, Some("nope")))
        .unwrap_err();
    assert!(err.to_string().contains("container app"), "{err}");
}
