use serde_json::{json, Value};

use super::*;
use crate::model::{DependencyCondition, Protocol};

const MIB: i64 = 1024 * 1024;
const SECOND_NS: i64 = 1_000_000_000;

fn opts() -> LocalRunOptions {
    LocalRunOptions {
        cluster: "local".into(),
        task_id: "0123abcd".into(),
        region: "eu-west-1".into(),
        account_id: "123456789012".into(),
    }
}

fn convert(def: &Value) -> Result<Task, TaskDefErrors> {
    task_from_definition(&def.to_string(), &opts())
}

fn ok(def: &Value) -> Task {
    convert(def).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(def: &Value) -> Vec<TaskDefError> {
    match convert(def) {
        Ok(task) => panic!("expected errors, got {task:?}"),
        Err(e) => e.0,
    }
}

/// Asserts one error names `field` and says something containing `text`.
fn assert_error(def: &Value, field: &str, text: &str) {
    let errs = errors(def);
    assert!(
        errs.iter()
            .any(|e| e.field == field && e.message.contains(text)),
        "no error at {field} containing {text:?} in:\n{}",
        TaskDefErrors(errs.clone())
    );
}

fn minimal() -> Value {
    json!({
        "family": "app",
        "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 128}]
    })
}

/// `minimal()` with `extra` merged into its container.
fn with_container(extra: Value) -> Value {
    let mut def = minimal();
    let c = def["containerDefinitions"][0].as_object_mut().unwrap();
    c.extend(extra.as_object().unwrap().clone());
    def
}

/// `minimal()` with `extra` merged into the task definition.
fn with_task(extra: Value) -> Value {
    let mut def = minimal();
    let t = def.as_object_mut().unwrap();
    t.extend(extra.as_object().unwrap().clone());
    def
}

fn two_containers(first: Value, second: Value) -> Value {
    let mut a = json!({"name": "a", "image": "busybox", "memory": 64});
    let mut b = json!({"name": "b", "image": "busybox", "memory": 64});
    a.as_object_mut()
        .unwrap()
        .extend(first.as_object().unwrap().clone());
    b.as_object_mut()
        .unwrap()
        .extend(second.as_object().unwrap().clone());
    json!({"family": "app", "containerDefinitions": [a, b]})
}

fn config(task: &Task) -> Value {
    let dc = task.containers[0]
        .docker_config
        .as_ref()
        .expect("dockerConfig");
    serde_json::from_str(dc.config.as_deref().expect("config")).unwrap()
}

fn host_config(task: &Task) -> Value {
    let dc = task.containers[0]
        .docker_config
        .as_ref()
        .expect("dockerConfig");
    serde_json::from_str(dc.host_config.as_deref().expect("hostConfig")).unwrap()
}

// ---- task level ----

#[test]
fn task_identity_comes_from_the_options() {
    let task = ok(&minimal());
    assert_eq!(
        task.arn,
        "arn:aws:ecs:eu-west-1:123456789012:task/local/0123abcd"
    );
    assert_eq!(task.id(), "0123abcd");
    assert_eq!(
        task.task_cluster_arn.as_deref(),
        Some("arn:aws:ecs:eu-west-1:123456789012:cluster/local")
    );
    assert_eq!(task.family, "app");
    assert_eq!(task.version, "1");
    assert_eq!(task.desired_status.as_deref(), Some("RUNNING"));
    assert_eq!(task.network_mode.as_deref(), Some("bridge"));
    assert_eq!(
        task.task_definition_account_id.as_deref(),
        Some("123456789012")
    );
}

#[test]
fn accepts_register_task_definition_input_with_its_api_fields() {
    let task = ok(&with_task(json!({
        "taskRoleArn": "arn:aws:iam::123456789012:role/app",
        "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "networkMode": "host",
        "pidMode": "task",
        "ipcMode": "none",
        "requiresCompatibilities": ["EC2"],
        "tags": [{"key": "team", "value": "a"}],
        "cpu": "512",
        "memory": "1 GB",
        "placementConstraints": [],
        "runtimePlatform": {"operatingSystemFamily": "LINUX"},
        "someFutureField": {"anything": true}
    })));
    assert_eq!(task.network_mode.as_deref(), Some("host"));
    assert_eq!(task.pid_mode.as_deref(), Some("task"));
    assert_eq!(task.ipc_mode.as_deref(), Some("none"));
    assert_eq!(task.cpu, Some(0.5));
    assert_eq!(task.memory, Some(1024));
}

#[test]
fn accepts_describe_task_definition_output() {
    let inner = with_task(json!({
        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/app:7",
        "revision": 7,
        "status": "ACTIVE",
        "compatibilities": ["EC2", "EXTERNAL"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "registeredAt": "2024-01-01T00:00:00.000Z",
        "registeredBy": "arn:aws:iam::123456789012:user/me"
    }));
    let task = ok(&json!({"taskDefinition": inner, "tags": []}));
    assert_eq!(task.family, "app");
    assert_eq!(task.version, "7");
    assert_eq!(task.containers[0].name, "app");
}

#[test]
fn describe_output_errors_name_the_full_path() {
    let mut inner = minimal();
    inner["containerDefinitions"][0]["memory"] = json!("128");
    assert_error(
        &json!({"taskDefinition": inner}),
        "taskDefinition.containerDefinitions[0].memory",
        "expected an integer, found a string",
    );
    assert_error(
        &json!({"taskDefinition": []}),
        "taskDefinition",
        "expected an object",
    );
}

#[test]
fn task_cpu_units_and_vcpu_strings_become_vcpu() {
    for (text, vcpu) in [
        ("256", 0.25),
        ("1024", 1.0),
        ("0.25 vCPU", 0.25),
        ("1 vcpu", 1.0),
        ("2vCPU", 2.0),
        (" 0.5 VCPU ", 0.5),
    ] {
        let task = ok(&with_task(json!({ "cpu": text })));
        assert_eq!(task.cpu, Some(vcpu), "{text}");
    }
}

#[test]
fn task_memory_strings_become_mib() {
    for (text, mib) in [
        ("512", 512),
        ("1 GB", 1024),
        ("1GB", 1024),
        ("0.5 gb", 512),
        ("2 GB", 2048),
    ] {
        let task = ok(&with_task(json!({ "memory": text })));
        assert_eq!(task.memory, Some(mib), "{text}");
    }
}

#[test]
fn unparseable_task_cpu_and_memory_are_errors() {
    for cpu in [
        "lots", "0.5", "0 vCPU", "-1", "vCPU", "NaN vCPU", "inf vcpu", "1 GHz",
    ] {
        assert_error(
            &with_task(json!({ "cpu": cpu })),
            "cpu",
            "expected CPU units",
        );
    }
    for memory in ["lots", "1.5", "0", "1 TB", "0.0001 GB", "GB", "-512"] {
        assert_error(
            &with_task(json!({ "memory": memory })),
            "memory",
            "expected MiB",
        );
    }
}

#[test]
fn task_cpu_and_memory_must_be_strings_as_in_the_api() {
    let def = with_task(json!({"cpu": 256, "memory": 512}));
    assert_error(&def, "cpu", "expected a string, found a number");
    assert_error(&def, "memory", "expected a string, found a number");
}

#[test]
fn awsvpc_is_refused_with_a_clear_reason() {
    let def = with_task(json!({"networkMode": "awsvpc"}));
    assert_error(
        &def,
        "networkMode",
        "awsvpc is not supported by local run yet",
    );
    assert_error(
        &with_task(json!({"networkMode": "nat"})),
        "networkMode",
        "not one of",
    );
}

#[test]
fn pid_and_ipc_modes_are_checked() {
    assert_error(
        &with_task(json!({"pidMode": "none"})),
        "pidMode",
        "not one of host, task",
    );
    assert_error(
        &with_task(json!({"ipcMode": "shareable"})),
        "ipcMode",
        "not one of",
    );
}

#[test]
fn revision_becomes_the_version_string() {
    assert_eq!(ok(&with_task(json!({"revision": 12}))).version, "12");
    assert_error(&with_task(json!({"revision": 0})), "revision", "1 or more");
}

// ---- volumes ----

#[test]
fn volumes_map_to_acs_volumes() {
    let task = ok(&with_task(json!({"volumes": [
        {"name": "scratch"},
        {"name": "logs", "host": {"sourcePath": "/var/log/app"}},
        {"name": "empty", "host": {}},
        {"name": "data", "dockerVolumeConfiguration": {
            "scope": "shared", "autoprovision": true, "driver": "local",
            "driverOpts": {"type": "tmpfs"}, "labels": {"a": "b"}}},
        {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-123", "transitEncryption": "ENABLED"}}
    ]})));
    let v = &task.volumes;
    assert_eq!(v[0].kind.as_deref(), Some("host"));
    assert_eq!(v[0].host.as_ref().unwrap().source_path, None);
    assert_eq!(
        v[1].host.as_ref().unwrap().source_path.as_deref(),
        Some("/var/log/app")
    );
    assert_eq!(v[2].host.as_ref().unwrap().source_path, None);
    assert_eq!(v[3].kind.as_deref(), Some("docker"));
    let docker = v[3].docker_volume_configuration.as_ref().unwrap();
    assert_eq!(docker.scope.as_deref(), Some("shared"));
    assert_eq!(docker.autoprovision, Some(true));
    assert_eq!(docker.driver_opts.as_ref().unwrap()["type"], "tmpfs");
    assert_eq!(v[4].kind.as_deref(), Some("efs"));
    let efs = v[4].efs_volume_configuration.as_ref().unwrap();
    assert_eq!(efs["fileSystemId"], "fs-123");
    assert_eq!(efs["transitEncryption"], "ENABLED");
}

#[test]
fn volume_mistakes_are_reported() {
    let def = with_task(json!({"volumes": [
        {"name": "a b"},
        {"name": "dup"},
        {"name": "dup"},
        {"host": {"sourcePath": "relative/path"}},
        {"name": "d", "dockerVolumeConfiguration": {"scope": "global", "autoprovision": true}},
        {"name": "e", "efsVolumeConfiguration": {}}
    ]}));
    assert_error(&def, "volumes[0].name", "letters, digits");
    assert_error(&def, "volumes[2].name", "duplicate volume name");
    assert_error(&def, "volumes[3].name", "is required");
    assert_error(&def, "volumes[3].host.sourcePath", "not an absolute path");
    assert_error(
        &def,
        "volumes[4].dockerVolumeConfiguration.scope",
        "not one of task, shared",
    );
    assert_error(
        &def,
        "volumes[4].dockerVolumeConfiguration.autoprovision",
        "shared",
    );
    assert_error(
        &def,
        "volumes[5].efsVolumeConfiguration.fileSystemId",
        "is required",
    );
}

// ---- container: ACS fields ----

#[test]
fn container_fields_map_to_the_acs_container() {
    let task = ok(&with_container(json!({
        "command": ["sh", "-c", "echo hi"],
        "entryPoint": ["/bin/entry"],
        "cpu": 128,
        "essential": true,
        "privileged": false,
        "startTimeout": 30,
        "stopTimeout": 10,
        "credentialSpecs": [],
        "resourceRequirements": []
    })));
    let c = &task.containers[0];
    assert_eq!(c.name, "app");
    assert_eq!(c.image, "busybox");
    assert_eq!(c.command.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
    assert_eq!(c.entry_point.as_deref().unwrap(), ["/bin/entry"]);
    assert_eq!((c.cpu, c.memory), (Some(128), Some(128)));
    assert_eq!((c.essential, c.privileged), (Some(true), Some(false)));
    assert_eq!((c.start_timeout, c.stop_timeout), (Some(30), Some(10)));
}

#[test]
fn essential_defaults_to_true() {
    let task = ok(&minimal());
    assert_eq!(task.containers[0].essential, None);
    assert!(task.containers[0].is_essential());
}

#[test]
fn environment_list_becomes_a_map() {
    let task = ok(&with_container(json!({"environment": [
        {"name": "A", "value": "1"}, {"name": "EMPTY"}, {"name": "B", "value": "x=y"}
    ]})));
    let env = task.containers[0].environment.as_ref().unwrap();
    assert_eq!(env.len(), 3);
    assert_eq!(
        (env["A"].as_str(), env["EMPTY"].as_str(), env["B"].as_str()),
        ("1", "", "x=y")
    );
}

#[test]
fn duplicate_environment_names_are_an_error() {
    let def = with_container(json!({"environment": [
        {"name": "A", "value": "1"}, {"name": "A", "value": "2"}
    ]}));
    assert_error(
        &def,
        "containerDefinitions[0].environment[1].name",
        "duplicate environment variable \"A\"",
    );
}

#[test]
fn port_mappings_map_to_acs_port_mappings() {
    let task = ok(&with_container(json!({"portMappings": [
        {"containerPort": 80, "hostPort": 8080, "protocol": "tcp", "name": "web", "appProtocol": "http"},
        {"containerPort": 53, "protocol": "udp"},
        {"containerPort": 9000, "hostPort": 0},
        {"containerPortRange": "7000-7010"}
    ]})));
    let p = task.containers[0].port_mappings.as_ref().unwrap();
    assert_eq!(
        (p[0].container_port, p[0].host_port, p[0].protocol),
        (Some(80), Some(8080), Some(Protocol::Tcp))
    );
    assert_eq!(
        (p[1].container_port, p[1].host_port, p[1].protocol),
        (Some(53), None, Some(Protocol::Udp))
    );
    assert_eq!(p[2].host_port, Some(0));
    assert_eq!(p[3].container_port_range.as_deref(), Some("7000-7010"));
    assert_eq!(p[3].container_port, None);
}

#[test]
fn port_mapping_mistakes_are_reported() {
    let def = with_container(json!({"portMappings": [
        {"containerPort": 0},
        {"containerPort": 70000, "hostPort": 65536},
        {"containerPortRange": "7000-7010", "hostPort": 7000},
        {"containerPortRange": "7000"},
        {"containerPortRange": "7010-7000"},
        {"containerPort": 80, "protocol": "sctp"},
        {"hostPort": 80},
        {"containerPort": "80"}
    ]}));
    let at = |i: usize, key: &str| format!("containerDefinitions[0].portMappings[{i}].{key}");
    assert_error(&def, &at(0, "containerPort"), "not a port number (1-65535)");
    assert_error(&def, &at(1, "containerPort"), "70000 is not a port number");
    assert_error(
        &def,
        &at(1, "hostPort"),
        "65536 is not a port number (0-65535)",
    );
    assert_error(
        &def,
        &at(2, "hostPort"),
        "cannot be given with containerPortRange",
    );
    assert_error(&def, &at(3, "containerPortRange"), "not a port range");
    assert_error(
        &def,
        &at(4, "containerPortRange"),
        "first port must be below the last",
    );
    assert_error(&def, &at(5, "protocol"), "\"sctp\" is not one of tcp, udp");
    assert_error(
        &def,
        &at(6, "containerPort"),
        "is required unless containerPortRange",
    );
    assert_error(
        &def,
        &at(7, "containerPort"),
        "expected an integer, found a string",
    );
}

#[test]
fn host_network_mode_needs_equal_host_and_container_ports() {
    let mut def =
        with_container(json!({"portMappings": [{"containerPort": 80, "hostPort": 8080}]}));
    def["networkMode"] = json!("host");
    assert_error(
        &def,
        "containerDefinitions[0].portMappings[0].hostPort",
        "must equal containerPort",
    );
}

#[test]
fn mount_points_and_volumes_from_map_to_acs() {
    let mut def = two_containers(
        json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}]}),
        json!({"volumesFrom": [{"sourceContainer": "a", "readOnly": false}], "links": ["a:alias"]}),
    );
    def["volumes"] = json!([{"name": "data"}]);
    let task = ok(&def);
    let m = &task.containers[0].mount_points.as_ref().unwrap()[0];
    assert_eq!(
        (
            m.source_volume.as_str(),
            m.container_path.as_str(),
            m.read_only
        ),
        ("data", "/data", Some(true))
    );
    let v = &task.containers[1].volumes_from.as_ref().unwrap()[0];
    assert_eq!(
        (v.source_container.as_str(), v.read_only),
        ("a", Some(false))
    );
    assert_eq!(task.containers[1].links.as_deref().unwrap(), ["a:alias"]);
}

#[test]
fn depends_on_maps_to_acs_dependencies() {
    let def = two_containers(
        json!({"essential": false}),
        json!({"dependsOn": [{"containerName": "a", "condition": "SUCCESS"}]}),
    );
    let task = ok(&def);
    let dep = &task.containers[1].depends_on.as_ref().unwrap()[0];
    assert_eq!(dep.container_name, "a");
    assert_eq!(dep.condition, DependencyCondition::Success);
}

#[test]
fn linux_parameters_stay_in_the_acs_model() {
    let task = ok(&with_container(json!({"linuxParameters": {
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
        "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write"]}],
        "initProcessEnabled": true,
        "sharedMemorySize": 64
    }})));
    let c = &task.containers[0];
    let l = c.linux_parameters.as_ref().unwrap();
    let caps = l.capabilities.as_ref().unwrap();
    assert_eq!(caps.add.as_deref().unwrap(), ["NET_ADMIN"]);
    assert_eq!(caps.drop.as_deref().unwrap(), ["MKNOD"]);
    let dev = &l.devices.as_ref().unwrap()[0];
    assert_eq!(
        (dev.host_path.as_str(), dev.container_path.as_deref()),
        ("/dev/fuse", Some("/dev/fuse"))
    );
    assert_eq!(
        (l.init_process_enabled, l.shared_memory_size),
        (Some(true), Some(64))
    );
    assert_eq!(c.docker_config, None, "no ShmSize or Init in hostConfig");
}

#[test]
fn tmpfs_goes_to_host_config_with_size_in_mib() {
    let task = ok(&with_container(json!({"linuxParameters": {"tmpfs": [
        {"containerPath": "/run", "size": 64, "mountOptions": ["noexec", "nosuid"]},
        {"containerPath": "/tmp", "size": 16}
    ]}})));
    let host = host_config(&task);
    assert_eq!(
        host["Tmpfs"],
        json!({"/run": "size=64m,noexec,nosuid", "/tmp": "size=16m"})
    );
    assert!(host.get("ShmSize").is_none() && host.get("Init").is_none());
}

#[test]
fn max_swap_becomes_memory_swap_bytes_on_top_of_the_limit() {
    let task = ok(&with_container(
        json!({"linuxParameters": {"maxSwap": 256, "swappiness": 10}}),
    ));
    let host = host_config(&task);
    assert_eq!(host["MemorySwap"], json!((128 + 256) * MIB));
    assert_eq!(host["MemorySwappiness"], json!(10));
    let task = ok(&with_container(json!({"linuxParameters": {"maxSwap": 0}})));
    assert_eq!(host_config(&task)["MemorySwap"], json!(128 * MIB));
    assert_eq!(
        host_config(&task)["MemorySwappiness"],
        json!(60),
        "ECS default"
    );
}

#[test]
fn swappiness_without_max_swap_is_ignored() {
    let task = ok(&with_container(
        json!({"linuxParameters": {"swappiness": 10}}),
    ));
    assert_eq!(task.containers[0].docker_config, None);
}

#[test]
fn secrets_get_the_acs_provider_target_and_region() {
    let task = ok(&with_container(json!({
        "secrets": [
            {"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbC"},
            {"name": "TOKEN", "valueFrom": "/app/token"}
        ],
        "logConfiguration": {"logDriver": "splunk", "secretOptions": [
            {"name": "splunk-token", "valueFrom": "arn:aws:ssm:us-east-2:123456789012:parameter/t"}
        ]}
    })));
    let s = task.containers[0].secrets.as_ref().unwrap();
    assert_eq!(
        s[0],
        json!({"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbC",
        "provider": "asm", "target": "CONTAINER", "type": "ENVIRONMENT_VARIABLE", "region": "us-east-1"})
    );
    assert_eq!(s[1]["provider"], "ssm");
    assert_eq!(s[1]["region"], "eu-west-1");
    assert_eq!(s[2]["target"], "LOG_DRIVER");
    assert_eq!(s[2]["region"], "us-east-2");
    assert_eq!(
        host_config(&task)["LogConfig"],
        json!({"Type": "splunk", "Config": {}})
    );
}

#[test]
fn environment_files_are_passed_through() {
    let files = json!([{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}]);
    let task = ok(&with_container(json!({"environmentFiles": files.clone()})));
    assert_eq!(json!(task.containers[0].environment_files), files);
    let def = with_container(json!({"environmentFiles": [{"value": "x", "type": "http"}]}));
    assert_error(
        &def,
        "containerDefinitions[0].environmentFiles[0].type",
        "not one of s3",
    );
}

#[test]
fn repository_credentials_become_asm_registry_authentication() {
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry";
    let task = ok(&with_container(
        json!({"repositoryCredentials": {"credentialsParameter": arn}}),
    ));
    assert_eq!(
        task.containers[0].registry_authentication,
        Some(
            json!({"type": "asm", "asmAuthData": {"credentialsParameter": arn, "region": "us-east-1"}})
        )
    );
}

#[test]
fn restart_policy_maps_and_is_checked() {
    let policy = json!({"enabled": true, "ignoredExitCodes": [0, 137], "restartAttemptPeriod": 60});
    let task = ok(&with_container(json!({ "restartPolicy": policy })));
    let r = task.containers[0].restart_policy.as_ref().unwrap();
    assert_eq!(
        (r.enabled, r.restart_attempt_period),
        (Some(true), Some(60))
    );
    assert_eq!(r.ignored_exit_codes.as_deref().unwrap(), [0, 137]);
    let def = with_container(
        json!({"restartPolicy": {"ignoredExitCodes": ["x"], "restartAttemptPeriod": 5}}),
    );
    assert_error(
        &def,
        "containerDefinitions[0].restartPolicy.enabled",
        "is required",
    );
    assert_error(
        &def,
        "containerDefinitions[0].restartPolicy.ignoredExitCodes[0]",
        "expected an integer",
    );
    assert_error(
        &def,
        "containerDefinitions[0].restartPolicy.restartAttemptPeriod",
        "60-1800",
    );
}

// ---- container: dockerConfig ----

#[test]
fn no_docker_config_when_nothing_needs_it() {
    assert_eq!(ok(&minimal()).containers[0].docker_config, None);
}

#[test]
fn only_the_strings_with_keys_are_emitted() {
    let task = ok(&with_container(json!({"user": "nobody"})));
    let dc = task.containers[0].docker_config.as_ref().unwrap();
    assert!(dc.config.is_some() && dc.host_config.is_none() && dc.version.is_none());
    let task = ok(&with_container(json!({"readonlyRootFilesystem": true})));
    let dc = task.containers[0].docker_config.as_ref().unwrap();
    assert!(dc.config.is_none() && dc.host_config.is_some());
}

#[test]
fn container_config_keys_use_docker_names() {
    let task = ok(&with_container(json!({
        "user": "1000:1000",
        "workingDirectory": "/srv",
        "dockerLabels": {"team": "a", "tier": "web"},
        "hostname": "box",
        "pseudoTerminal": true,
        "interactive": true,
        "disableNetworking": false
    })));
    assert_eq!(
        config(&task),
        json!({
            "User": "1000:1000", "WorkingDir": "/srv", "Labels": {"team": "a", "tier": "web"},
            "Hostname": "box", "Tty": true, "OpenStdin": true, "NetworkDisabled": false
        })
    );
}

#[test]
fn health_check_uses_nanoseconds_and_ecs_defaults() {
    let cmd = json!(["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/ || exit 1"]);
    let task = ok(&with_container(
        json!({"healthCheck": {"command": cmd.clone()}}),
    ));
    assert_eq!(
        task.containers[0].health_check_type.as_deref(),
        Some("docker")
    );
    assert_eq!(
        config(&task)["Healthcheck"],
        json!({"Test": cmd, "Interval": 30 * SECOND_NS, "Timeout": 5 * SECOND_NS,
               "Retries": 3, "StartPeriod": 0})
    );
}

#[test]
fn health_check_seconds_become_nanoseconds() {
    let task = ok(&with_container(json!({"healthCheck": {
        "command": ["CMD", "true"], "interval": 10, "timeout": 2, "retries": 5, "startPeriod": 15
    }})));
    assert_eq!(
        config(&task)["Healthcheck"],
        json!({"Test": ["CMD", "true"], "Interval": 10 * SECOND_NS, "Timeout": 2 * SECOND_NS,
               "Retries": 5, "StartPeriod": 15 * SECOND_NS})
    );
}

#[test]
fn health_check_mistakes_are_reported() {
    let def = with_container(json!({"healthCheck": {
        "command": ["curl", "-f", "http://x/"], "interval": 1, "timeout": 61, "retries": 0, "startPeriod": 301
    }}));
    let at = |key: &str| format!("containerDefinitions[0].healthCheck.{key}");
    assert_error(&def, &at("command"), "CMD-SHELL");
    assert_error(&def, &at("interval"), "outside 5-300");
    assert_error(&def, &at("timeout"), "outside 2-60");
    assert_error(&def, &at("retries"), "outside 1-10");
    assert_error(&def, &at("startPeriod"), "outside 0-300");
    assert_error(
        &with_container(json!({"healthCheck": {}})),
        &at("command"),
        "is required",
    );
}

#[test]
fn memory_reservation_is_bytes_in_host_config() {
    let task = ok(&with_container(json!({"memoryReservation": 64})));
    assert_eq!(host_config(&task)["MemoryReservation"], json!(64 * MIB));
    assert_eq!(host_config(&task)["MemoryReservation"], json!(67_108_864));
}

#[test]
fn log_configuration_becomes_log_config() {
    let task = ok(&with_container(json!({"logConfiguration": {
        "logDriver": "json-file", "options": {"max-size": "10m", "max-file": "3"}
    }})));
    assert_eq!(
        host_config(&task)["LogConfig"],
        json!({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
    );
    let def = with_container(json!({"logConfiguration": {"logDriver": "local"}}));
    assert_error(
        &def,
        "containerDefinitions[0].logConfiguration.logDriver",
        "\"local\" is not one of",
    );
}

#[test]
fn ulimits_use_docker_shape() {
    let task = ok(&with_container(json!({"ulimits": [
        {"name": "nofile", "softLimit": 1024, "hardLimit": 4096}
    ]})));
    assert_eq!(
        host_config(&task)["Ulimits"],
        json!([{"Name": "nofile", "Soft": 1024, "Hard": 4096}])
    );
    let def = with_container(json!({"ulimits": [
        {"name": "files", "softLimit": 1, "hardLimit": 1},
        {"name": "nproc", "softLimit": 10, "hardLimit": 5},
        {"name": "core"}
    ]}));
    assert_error(
        &def,
        "containerDefinitions[0].ulimits[0].name",
        "not a ulimit name",
    );
    assert_error(
        &def,
        "containerDefinitions[0].ulimits[1].softLimit",
        "above the hardLimit 5",
    );
    assert_error(
        &def,
        "containerDefinitions[0].ulimits[2].hardLimit",
        "is required",
    );
}

#[test]
fn dns_and_extra_hosts_use_docker_forms() {
    let task = ok(&with_container(json!({
        "dnsServers": ["10.0.0.2"],
        "dnsSearchDomains": ["corp.example"],
        "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}]
    })));
    let host = host_config(&task);
    assert_eq!(host["Dns"], json!(["10.0.0.2"]));
    assert_eq!(host["DnsSearch"], json!(["corp.example"]));
    assert_eq!(host["ExtraHosts"], json!(["db:10.0.0.5"]));
    let def = with_container(json!({"extraHosts": [{"hostname": "db"}]}));
    assert_error(
        &def,
        "containerDefinitions[0].extraHosts[0].ipAddress",
        "is required",
    );
}

#[test]
fn read_only_root_security_options_and_sysctls_go_to_host_config() {
    let task = ok(&with_container(json!({
        "readonlyRootFilesystem": true,
        "dockerSecurityOptions": ["no-new-privileges"],
        "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}]
    })));
    let host = host_config(&task);
    assert_eq!(host["ReadonlyRootfs"], json!(true));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["Sysctls"], json!({"net.core.somaxconn": "1024"}));
}

// ---- validation ----

#[test]
fn text_that_is_not_json_is_one_error_at_the_root() {
    let err = task_from_definition("{not json", &opts()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].field, "$");
    assert!(err.0[0].message.contains("not valid JSON"));
    assert_error(
        &json!([1, 2]),
        "$",
        "expected a JSON object, found an array",
    );
}

#[test]
fn family_is_required_and_well_formed() {
    let mut def = minimal();
    def.as_object_mut().unwrap().remove("family");
    assert_error(&def, "family", "is required");
    assert_error(
        &with_task(json!({"family": ""})),
        "family",
        "must not be empty",
    );
    assert_error(
        &with_task(json!({"family": "my app"})),
        "family",
        "letters, digits",
    );
    assert_error(
        &with_task(json!({"family": "x".repeat(256)})),
        "family",
        "1-255",
    );
    assert_error(
        &with_task(json!({"family": 7})),
        "family",
        "expected a string, found a number",
    );
}

#[test]
fn containers_are_required() {
    let mut def = minimal();
    def.as_object_mut().unwrap().remove("containerDefinitions");
    assert_error(&def, "containerDefinitions", "is required");
    let def = with_task(json!({"containerDefinitions": []}));
    assert_error(&def, "containerDefinitions", "at least one container");
    let def = with_task(json!({"containerDefinitions": {"name": "app"}}));
    assert_error(
        &def,
        "containerDefinitions",
        "expected an array, found an object",
    );
}

#[test]
fn container_names_are_checked_and_unique() {
    let def = two_containers(json!({"name": "web"}), json!({"name": "web"}));
    assert_error(
        &def,
        "containerDefinitions[1].name",
        "duplicate container name \"web\"",
    );
    assert_error(
        &with_container(json!({"name": "web.1"})),
        "containerDefinitions[0].name",
        "letters",
    );
    assert_error(
        &with_container(json!({"name": ""})),
        "containerDefinitions[0].name",
        "must not be empty",
    );
}

#[test]
fn image_is_required() {
    let mut def = minimal();
    def["containerDefinitions"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    assert_error(&def, "containerDefinitions[0].image", "is required");
}

#[test]
fn a_container_needs_memory_unless_the_task_has_some() {
    let mut def = minimal();
    def["containerDefinitions"][0]
        .as_object_mut()
        .unwrap()
        .remove("memory");
    assert_error(
        &def,
        "containerDefinitions[0].memory",
        "set memory or memoryReservation",
    );
    def["memory"] = json!("512");
    assert_eq!(ok(&def).containers[0].memory, None);
    let mut def = minimal();
    def["containerDefinitions"][0] =
        json!({"name": "app", "image": "busybox", "memoryReservation": 32});
    ok(&def);
}

#[test]
fn memory_limits_are_checked() {
    let def = with_container(json!({"memory": 64, "memoryReservation": 128}));
    assert_error(
        &def,
        "containerDefinitions[0].memoryReservation",
        "above the container's memory limit of 64",
    );
    assert_error(
        &with_container(json!({"memory": 4})),
        "containerDefinitions[0].memory",
        "minimum of 6 MiB",
    );
    assert_error(
        &with_container(json!({"memoryReservation": 5})),
        "containerDefinitions[0].memoryReservation",
        "minimum of 6 MiB",
    );
    let def = with_task(json!({"memory": "64"}));
    assert_error(
        &def,
        "containerDefinitions[0].memory",
        "above the task's memory of 64 MiB",
    );
}

#[test]
fn mount_points_must_name_a_task_volume() {
    let def =
        with_container(json!({"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}));
    assert_error(
        &def,
        "containerDefinitions[0].mountPoints[0].sourceVolume",
        "no task volume is named \"nope\"",
    );
    let def = with_container(json!({"mountPoints": [{"sourceVolume": "nope"}]}));
    assert_error(
        &def,
        "containerDefinitions[0].mountPoints[0].containerPath",
        "is required",
    );
}

#[test]
fn references_must_name_a_container() {
    let def = with_container(json!({
        "links": ["ghost:alias"],
        "volumesFrom": [{"sourceContainer": "phantom"}],
        "dependsOn": [{"containerName": "spirit", "condition": "START"}]
    }));
    assert_error(
        &def,
        "containerDefinitions[0].links[0]",
        "no container is named \"ghost\"",
    );
    assert_error(
        &def,
        "containerDefinitions[0].volumesFrom[0].sourceContainer",
        "\"phantom\"",
    );
    assert_error(
        &def,
        "containerDefinitions[0].dependsOn[0].containerName",
        "\"spirit\"",
    );
}

#[test]
fn dependency_conditions_are_checked() {
    let def = two_containers(
        json!({}),
        json!({"dependsOn": [{"containerName": "a", "condition": "READY"}]}),
    );
    assert_error(
        &def,
        "containerDefinitions[1].dependsOn[0].condition",
        "not one of START, COMPLETE, SUCCESS, HEALTHY",
    );
    let def = two_containers(json!({}), json!({"dependsOn": [{"containerName": "a"}]}));
    assert_error(
        &def,
        "containerDefinitions[1].dependsOn[0].condition",
        "is required",
    );
}

#[test]
fn healthy_dependency_needs_a_health_check() {
    let def = two_containers(
        json!({}),
        json!({"dependsOn": [{"containerName": "a", "condition": "HEALTHY"}]}),
    );
    assert_error(
        &def,
        "containerDefinitions[1].dependsOn[0].condition",
        "needs a healthCheck on container \"a\"",
    );
    let def = two_containers(
        json!({"healthCheck": {"command": ["CMD", "true"]}}),
        json!({"dependsOn": [{"containerName": "a", "condition": "HEALTHY"}]}),
    );
    ok(&def);
}

#[test]
fn success_and_complete_need_a_non_essential_dependency() {
    let def = two_containers(
        json!({}),
        json!({"dependsOn": [{"containerName": "a", "condition": "SUCCESS"}]}),
    );
    assert_error(
        &def,
        "containerDefinitions[1].dependsOn[0].condition",
        "essential container \"a\"",
    );
}

#[test]
fn dependency_cycles_name_their_containers() {
    let mut def = json!({"family": "app", "containerDefinitions": [
        {"name": "a", "image": "busybox", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "START"}]},
        {"name": "b", "image": "busybox", "memory": 64, "links": ["c"]},
        {"name": "c", "image": "busybox", "memory": 64, "volumesFrom": [{"sourceContainer": "a"}]}
    ]});
    assert_error(
        &def,
        "containerDefinitions[2].volumesFrom[0].sourceContainer",
        "dependency cycle",
    );
    assert_error(
        &def,
        "containerDefinitions[2].volumesFrom[0].sourceContainer",
        "a -> b -> c -> a",
    );
    def["containerDefinitions"][1]
        .as_object_mut()
        .unwrap()
        .remove("links");
    ok(&def);
    let def =
        with_container(json!({"dependsOn": [{"containerName": "app", "condition": "START"}]}));
    assert_error(
        &def,
        "containerDefinitions[0].dependsOn[0].containerName",
        "app -> app",
    );
}

#[test]
fn a_long_dependency_chain_does_not_exhaust_the_stack() {
    const N: usize = 20_000;
    let containers: Vec<Value> = (0..N)
        .map(|i| {
            let mut c = json!({"name": format!("c{i}"), "image": "busybox", "memory": 6});
            if i + 1 < N {
                c["links"] = json!([format!("c{}", i + 1)]);
            }
            c
        })
        .collect();
    let mut def = json!({"family": "long", "containerDefinitions": containers});
    assert_eq!(ok(&def).containers.len(), N);
    def["containerDefinitions"][N - 1]["links"] = json!(["c0"]);
    let cycles: Vec<_> = errors(&def)
        .into_iter()
        .filter(|e| e.message.contains("cycle"))
        .collect();
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        cycles[0].field,
        format!("containerDefinitions[{}].links[0]", N - 1)
    );
}

#[test]
fn volumes_take_one_kind_only() {
    let def = with_task(json!({"volumes": [
        {"name": "v", "host": {}, "dockerVolumeConfiguration": {}},
        {"name": "w", "fsxWindowsFileServerVolumeConfiguration": {}}
    ]}));
    assert_error(&def, "volumes[0]", "set only one of");
    assert_error(
        &def,
        "volumes[1].fsxWindowsFileServerVolumeConfiguration",
        "Windows",
    );
}

#[test]
fn a_cycle_is_reported_once() {
    let def = two_containers(
        json!({"dependsOn": [{"containerName": "b", "condition": "START"}]}),
        json!({"dependsOn": [{"containerName": "a", "condition": "START"}]}),
    );
    let cycles = errors(&def)
        .into_iter()
        .filter(|e| e.message.contains("cycle"))
        .count();
    assert_eq!(cycles, 1);
}

#[test]
fn at_least_one_container_must_be_essential() {
    let def = two_containers(json!({"essential": false}), json!({"essential": false}));
    assert_error(
        &def,
        "containerDefinitions",
        "at least one container must be essential",
    );
}

#[test]
fn links_need_bridge_networking() {
    let mut def = two_containers(json!({}), json!({"links": ["a"]}));
    def["networkMode"] = json!("host");
    assert_error(
        &def,
        "containerDefinitions[1].links",
        "need network mode bridge",
    );
}

#[test]
fn wrong_json_types_are_named_precisely() {
    let def = with_container(json!({
        "essential": "yes",
        "command": "echo hi",
        "entryPoint": ["sh", 1],
        "environment": {"A": "1"},
        "portMappings": [8080],
        "dockerLabels": {"n": 1},
        "cpu": 1.5,
        "stopTimeout": 99999999999i64,
        "linuxParameters": []
    }));
    let at = |key: &str| format!("containerDefinitions[0].{key}");
    assert_error(&def, &at("essential"), "expected a boolean, found a string");
    assert_error(&def, &at("command"), "expected an array, found a string");
    assert_error(
        &def,
        &at("entryPoint[1]"),
        "expected a string, found a number",
    );
    assert_error(
        &def,
        &at("environment"),
        "expected an array, found an object",
    );
    assert_error(
        &def,
        &at("portMappings[0]"),
        "expected an object, found a number",
    );
    assert_error(
        &def,
        &at("dockerLabels.n"),
        "expected a string, found a number",
    );
    assert_error(&def, &at("cpu"), "expected an integer, found 1.5");
    assert_error(
        &def,
        &at("stopTimeout"),
        "out of range for a 32-bit integer",
    );
    assert_error(
        &def,
        &at("linuxParameters"),
        "expected an object, found an array",
    );
    let linux = errors(&def)
        .into_iter()
        .filter(|e| e.field == at("linuxParameters"))
        .count();
    assert_eq!(
        linux, 1,
        "one error per field even when two readers look at it"
    );
    assert_error(
        &with_task(json!({"taskRoleArn": 1})),
        "taskRoleArn",
        "expected a string",
    );
    assert_error(&with_task(json!({"tags": {}})), "tags", "expected an array");
}

#[test]
fn null_counts_as_absent() {
    let task = ok(&with_container(
        json!({"command": null, "essential": null, "healthCheck": null}),
    ));
    assert_eq!(task.containers[0].command, None);
    assert_eq!(task.containers[0].docker_config, None);
}

#[test]
fn many_mistakes_are_all_reported_at_once() {
    let def = json!({
        "family": "bad family",
        "networkMode": "awsvpc",
        "cpu": "fast",
        "containerDefinitions": [
            {"name": "web", "memory": 2, "portMappings": [{"containerPort": 0, "protocol": "icmp"}],
             "mountPoints": [{"sourceVolume": "missing", "containerPath": "/m"}]},
            {"name": "web", "image": "busybox", "memory": "64", "essential": false,
             "dependsOn": [{"containerName": "db", "condition": "READY"}]},
            {"name": "side", "image": "busybox", "essential": false, "memoryReservation": 64, "memory": 32,
             "environment": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}]}
        ]
    });
    let got: Vec<(String, String)> = errors(&def)
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect();
    let expected = [
        ("family", "letters, digits"),
        ("networkMode", "awsvpc"),
        ("cpu", "expected CPU units"),
        ("containerDefinitions[0].image", "is required"),
        ("containerDefinitions[0].memory", "minimum of 6 MiB"),
        (
            "containerDefinitions[0].portMappings[0].containerPort",
            "port number",
        ),
        (
            "containerDefinitions[0].portMappings[0].protocol",
            "not one of tcp, udp",
        ),
        (
            "containerDefinitions[0].mountPoints[0].sourceVolume",
            "no task volume",
        ),
        ("containerDefinitions[1].memory", "expected an integer"),
        (
            "containerDefinitions[1].dependsOn[0].condition",
            "not one of START",
        ),
        (
            "containerDefinitions[1].dependsOn[0].containerName",
            "no container is named \"db\"",
        ),
        ("containerDefinitions[1].name", "duplicate container name"),
        (
            "containerDefinitions[2].memoryReservation",
            "above the container's memory limit",
        ),
        (
            "containerDefinitions[2].environment[1].name",
            "duplicate environment variable",
        ),
    ];
    for (field, text) in expected {
        assert!(
            got.iter().any(|(f, m)| f == field && m.contains(text)),
            "missing {field}: {text} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn errors_display_one_a_line() {
    let err = convert(&json!({"containerDefinitions": []})).unwrap_err();
    let text = err.to_string();
    assert_eq!(text.lines().count(), err.0.len());
    assert!(text.lines().any(|l| l == "family: is required"), "{text}");
    let _: &dyn std::error::Error = &err;
}
