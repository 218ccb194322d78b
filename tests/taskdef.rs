//! Task definitions → ACS tasks: the shipped examples convert cleanly, and no input text, however
//! odd, makes the converter panic.

use std::path::{Path, PathBuf};

use ecs_agent::model::{task_from_definition, DependencyCondition, LocalRunOptions, Task};
use proptest::prelude::*;
use serde_json::{Map, Value};

const TEST_IMAGE: &str = "ecs-agent-test/busybox:latest";

fn opts() -> LocalRunOptions {
    LocalRunOptions {
        cluster: "local".into(),
        task_id: "0123456789abcdef".into(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn example(name: &str) -> Task {
    let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
    task_from_definition(&text, &opts()).unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

#[test]
fn every_example_converts_without_errors() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let task = example(path.file_name().unwrap().to_str().unwrap());
            let images: Vec<&str> = task.containers.iter().map(|c| c.image.as_str()).collect();
            assert!(
                images.iter().all(|i| *i == TEST_IMAGE),
                "{path:?} uses {images:?}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the examples, found {seen}");
}

#[test]
fn hello_is_one_essential_echo() {
    let task = example("hello.json");
    assert_eq!(task.family, "hello");
    assert_eq!(task.containers.len(), 1);
    let c = &task.containers[0];
    assert!(c.is_essential());
    assert_eq!(c.command.as_ref().unwrap()[0], "echo");
}

#[test]
fn web_with_sidecar_orders_its_containers() {
    let task = example("web-with-sidecar.json");
    let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["init", "web", "sidecar"]);
    let [init, web, sidecar] = &task.containers[..] else {
        unreachable!()
    };
    assert!(!init.is_essential() && web.is_essential() && !sidecar.is_essential());
    let web_dep = &web.depends_on.as_ref().unwrap()[0];
    assert_eq!(
        (web_dep.container_name.as_str(), web_dep.condition),
        ("init", DependencyCondition::Success)
    );
    let side_dep = &sidecar.depends_on.as_ref().unwrap()[0];
    assert_eq!(
        (side_dep.container_name.as_str(), side_dep.condition),
        ("web", DependencyCondition::Healthy)
    );
    assert_eq!(sidecar.links.as_deref().unwrap(), ["web"]);
    assert!(task.containers.iter().all(|c| c.memory.is_some()));
    assert!(web.stop_timeout.is_some());
}

#[test]
fn web_with_sidecar_serves_a_task_scoped_volume_on_a_dynamic_port() {
    let task = example("web-with-sidecar.json");
    let www = &task.volumes[0];
    assert_eq!(www.name, "www");
    assert_eq!(www.host.as_ref().unwrap().source_path, None);
    let web = &task.containers[1];
    let port = &web.port_mappings.as_ref().unwrap()[0];
    assert_eq!(port.container_port, Some(8080));
    assert!(matches!(port.host_port, None | Some(0)));
    assert_eq!(web.health_check_type.as_deref(), Some("docker"));
    let config: Value =
        serde_json::from_str(web.docker_config.as_ref().unwrap().config.as_ref().unwrap()).unwrap();
    let test = config["Healthcheck"]["Test"].as_array().unwrap();
    assert_eq!(test[0], "CMD-SHELL");
    assert!(test[1].as_str().unwrap().starts_with("wget "));
}

/// Keys of the task definition model, so generated documents reach deep into the converter.
const KEYS: &[&str] = &[
    "family",
    "taskDefinition",
    "revision",
    "networkMode",
    "cpu",
    "memory",
    "volumes",
    "containerDefinitions",
    "name",
    "image",
    "essential",
    "memoryReservation",
    "command",
    "environment",
    "value",
    "portMappings",
    "containerPort",
    "hostPort",
    "containerPortRange",
    "protocol",
    "links",
    "mountPoints",
    "sourceVolume",
    "containerPath",
    "volumesFrom",
    "sourceContainer",
    "dependsOn",
    "containerName",
    "condition",
    "healthCheck",
    "interval",
    "retries",
    "linuxParameters",
    "tmpfs",
    "size",
    "maxSwap",
    "swappiness",
    "ulimits",
    "softLimit",
    "hardLimit",
    "logConfiguration",
    "logDriver",
    "options",
    "secretOptions",
    "secrets",
    "valueFrom",
    "extraHosts",
    "hostname",
    "ipAddress",
    "systemControls",
    "namespace",
    "host",
    "sourcePath",
    "dockerVolumeConfiguration",
    "scope",
    "autoprovision",
    "efsVolumeConfiguration",
    "fileSystemId",
    "restartPolicy",
    "enabled",
    "ignoredExitCodes",
    "repositoryCredentials",
    "credentialsParameter",
    "dockerLabels",
];

const STRINGS: &[&str] = &[
    "",
    "a",
    "b",
    "web",
    "START",
    "HEALTHY",
    "SUCCESS",
    "tcp",
    "udp",
    "7000-7010",
    "9-1",
    "-",
    "256",
    "0.25 vCPU",
    "1 GB",
    "1e400 GB",
    "NaN vcpu",
    "host",
    "awsvpc",
    "shared",
    "json-file",
    "nofile",
    "CMD-SHELL",
    "arn:aws:secretsmanager:us-east-1:1:secret:x",
    "arn:",
    "/abs",
    "é:ü",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-70_000i64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                let map: Map<String, Value> =
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                Value::Object(map)
            }),
        ]
    })
}

/// Converts and checks what holds for any input: errors are never empty, and an accepted task
/// carries Docker-schema strings that are JSON objects.
fn convert_any(text: &str) {
    match task_from_definition(text, &opts()) {
        Err(errors) => assert!(!errors.0.is_empty()),
        Ok(task) => {
            for c in &task.containers {
                let dc = c.docker_config.iter();
                for s in dc.flat_map(|d| [&d.config, &d.host_config]).flatten() {
                    let v: Value = serde_json::from_str(s).unwrap();
                    assert!(v.is_object());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        convert_any(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        convert_any(&value.to_string());
    }

    #[test]
    fn the_example_with_one_field_replaced_never_panics(
        path in prop::collection::vec(0usize..8, 1..5),
        replacement in json_value(),
    ) {
        let text = std::fs::read_to_string(examples_dir().join("web-with-sidecar.json")).unwrap();
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        replace_at(&mut doc, &path, replacement);
        convert_any(&doc.to_string());
    }
}

/// Walks down by child index (object members in order, array elements) and replaces what it
/// reaches.
fn replace_at(doc: &mut Value, path: &[usize], replacement: Value) {
    let Some((&first, rest)) = path.split_first() else {
        *doc = replacement;
        return;
    };
    let child = match doc {
        Value::Object(map) if !map.is_empty() => {
            let n = map.len();
            map.values_mut().nth(first % n)
        }
        Value::Array(items) if !items.is_empty() => {
            let n = items.len();
            items.get_mut(first % n)
        }
        _ => None,
    };
    match child {
        Some(child) => replace_at(child, rest, replacement),
        None => *doc = replacement,
    }
}
