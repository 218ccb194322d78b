//! Registration of the instance (`RegisterContainerInstance`): resources, attributes and the
//! capabilities this agent really has, the identity document, tags, a fresh client token;
//! re-registration with a saved ARN; the response's attributes checked; the official retry and
//! terminal rules (the caller maps [`RegisterError`] to exit codes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{Attribute, Resource, Tag};

use super::api::{ApiError, Backoff};
use super::imds::InstanceFacts;
use crate::config::Config;
use crate::engine::HostCapacity;

/// Docker API versions the official agent advertises (below 1.33, without 1.26, 1.27, 1.31).
const DOCKER_API_VERSIONS: &[(u32, u32)] = &[
    (1, 17),
    (1, 18),
    (1, 19),
    (1, 20),
    (1, 21),
    (1, 22),
    (1, 23),
    (1, 24),
    (1, 25),
    (1, 28),
    (1, 29),
    (1, 30),
    (1, 32),
];

const CAP: &str = "com.amazonaws.ecs.capability.";
const ECS_CAP: &str = "ecs.capability.";

/// One attribute: name and optional value.
pub type Attr = (String, Option<String>);

/// The attributes and capabilities this agent sends. Only what is built is advertised; each
/// later feature adds its own capability. `efs_utils`: amazon-efs-utils is installed.
pub fn attributes(
    config: &Config,
    docker_api: (u32, u32),
    first_registration: bool,
    efs_utils: bool,
) -> Vec<Attr> {
    let name = |n: String| (n, None);
    let mut out: Vec<Attr> = Vec::new();
    for cap in [
        "container-ordering",
        "network.container-port-range",
        "container-restart-policy",
        "docker-plugin.local",
    ] {
        out.push(name(format!("{ECS_CAP}{cap}")));
    }
    if !config.disable_privileged {
        out.push(name(format!("{CAP}privileged-container")));
    }
    for (major, minor) in DOCKER_API_VERSIONS.iter().filter(|v| **v <= docker_api) {
        out.push(name(format!("{CAP}docker-remote-api.{major}.{minor}")));
    }
    for driver in &config.available_logging_drivers {
        if driver != "awsfirelens" {
            out.push(name(format!("{CAP}logging-driver.{driver}")));
        }
    }
    if config.selinux_capable {
        out.push(name(format!("{CAP}selinux")));
    }
    if config.apparmor_capable {
        out.push(name(format!("{CAP}apparmor")));
    }
    if !config.disable_docker_health_check {
        out.push(name(format!("{ECS_CAP}container-health-check")));
    }
    if config.task_cpu_mem_limit {
        out.push(name(format!("{ECS_CAP}task-cpu-mem-limit")));
    }
    // ECR pulls with the instance's or the execution role's credentials, any endpoint.
    out.push(name(format!("{CAP}ecr-auth")));
    out.push(name(format!("{ECS_CAP}execution-role-ecr-pull")));
    // awslogs with the execution role: the agent ships those logs itself.
    if config.awslogs_execution_role_override && !config.awslogs_docker_driver {
        out.push(name(format!("{ECS_CAP}execution-role-awslogs")));
    }
    out.push(name(format!("{ECS_CAP}ecr-endpoint")));
    // Container secrets into the environment, with the execution role.
    out.push(name(format!("{ECS_CAP}secrets.ssm.environment-variables")));
    out.push(name(format!("{ECS_CAP}secrets.asm.environment-variables")));
    out.push(name(format!(
        "{ECS_CAP}private-registry-authentication.secretsmanager"
    )));
    out.push(name(format!("{ECS_CAP}secrets.ssm.bootstrap.log-driver")));
    out.push(name(format!("{ECS_CAP}secrets.asm.bootstrap.log-driver")));
    if config.task_iam_role {
        out.push(name(format!("{CAP}task-iam-role")));
    }
    if config.task_iam_role_network_host {
        out.push(name(format!("{CAP}task-iam-role-network-host")));
    }
    // EFS volumes: plain NFSv4.1 mounted by the agent; TLS, IAM and access points through
    // amazon-efs-utils, so only when it is installed and the operator left `efsAuth` on.
    out.push(name(format!("{ECS_CAP}efs")));
    if efs_utils
        && config
            .volume_plugin_capabilities
            .iter()
            .any(|c| c == "efsAuth")
    {
        out.push(name(format!("{ECS_CAP}efsAuth")));
    }
    out.push(("ecs.os-type".into(), Some("linux".into())));
    out.push(("ecs.os-family".into(), Some("LINUX".into())));
    let detailed = config
        .detailed_os_family
        .clone()
        .unwrap_or_else(|| "LINUX".into());
    out.push(("ecs.os-type-detailed".into(), Some(detailed)));
    if config.external {
        out.push(name(format!("{ECS_CAP}external")));
        out.push((
            "ecs.cpu-architecture".into(),
            Some(std::env::consts::ARCH.replace("aarch64", "arm64")),
        ));
    }
    if first_registration {
        for (k, v) in &config.instance_attributes {
            out.push((k.clone(), Some(v.clone())));
        }
    }
    out
}

/// The registered resources: CPU units, memory, reserved TCP and UDP ports.
pub fn total_resources(capacity: &HostCapacity) -> Vec<Resource> {
    let ports =
        |set: &std::collections::BTreeSet<u16>| set.iter().map(u16::to_string).collect::<Vec<_>>();
    let integer = |n: &str, v: u64| {
        Resource::builder()
            .name(n)
            .r#type("INTEGER")
            .integer_value(v.min(i32::MAX as u64) as i32)
            .build()
    };
    let string_set = |n: &str, v: Vec<String>| {
        Resource::builder()
            .name(n)
            .r#type("STRINGSET")
            .set_string_set_value(Some(v))
            .build()
    };
    vec![
        integer("CPU", capacity.cpu),
        integer("MEMORY", capacity.memory_mib),
        string_set("PORTS", ports(&capacity.reserved_tcp)),
        string_set("PORTS_UDP", ports(&capacity.reserved_udp)),
    ]
}

/// What registration produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub container_instance_arn: String,
    pub availability_zone: Option<String>,
}

/// Why registration failed: terminal failures exit 5 (systemd does not restart), others 1.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("registration refused: {0}")]
    Terminal(String),
    #[error("registration failed: {0}")]
    Failed(String),
}

/// Everything a registration sends.
pub struct RegisterRequest<'a> {
    pub cluster: &'a str,
    pub saved_arn: Option<&'a str>,
    pub facts: Option<&'a InstanceFacts>,
    pub capacity: &'a HostCapacity,
    pub attributes: Vec<Attr>,
    pub tags: &'a BTreeMap<String, String>,
}

/// Registers, creating the `default` cluster when it is the one missing, retrying throttling and
/// server errors with backoff (3 s doubling to 192 s) for up to an hour.
pub async fn register(
    client: &aws_sdk_ecs::Client,
    req: &RegisterRequest<'_>,
) -> Result<Registration, RegisterError> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut backoff = Backoff::new(Duration::from_secs(3), Duration::from_secs(192), 2.0);
    let token = uuid::Uuid::new_v4().to_string();
    let mut created_default = false;
    loop {
        match register_once(client, req, &token).await {
            Ok(r) => return Ok(r),
            Err(e)
                if e.code == "ClusterNotFoundException"
                    && req.cluster == "default"
                    && !created_default =>
            {
                created_default = true;
                tracing::info!("cluster default does not exist; creating it");
                client
                    .create_cluster()
                    .cluster_name("default")
                    .send()
                    .await
                    .map_err(|e| {
                        RegisterError::Failed(ApiError::from_sdk("CreateCluster", e).to_string())
                    })?;
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "registration failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) if e.is_retriable() => return Err(RegisterError::Failed(e.to_string())),
            Err(e) => return Err(RegisterError::Terminal(e.to_string())),
        }
    }
}

async fn register_once(
    client: &aws_sdk_ecs::Client,
    req: &RegisterRequest<'_>,
    token: &str,
) -> Result<Registration, ApiError> {
    let mut call = client
        .register_container_instance()
        .cluster(req.cluster)
        .instance_identity_document(
            req.facts
                .map(|f| f.identity_document.clone())
                .unwrap_or_default(),
        )
        .instance_identity_document_signature(
            req.facts
                .map(|f| f.identity_signature.clone())
                .unwrap_or_default(),
        )
        .set_total_resources(Some(total_resources(req.capacity)))
        .set_container_instance_arn(req.saved_arn.map(str::to_owned));
    for (name, value) in &req.attributes {
        call = call.attributes(
            Attribute::builder()
                .name(name)
                .set_value(value.clone())
                .build()
                .expect("name is set"),
        );
    }
    for (k, v) in req.tags {
        call = call.tags(Tag::builder().key(k).value(v).build());
    }
    let out = call
        .customize()
        .mutate_request(with_client_token(token.to_owned()))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("RegisterContainerInstance", e))?;
    let instance = out.container_instance.ok_or_else(|| ApiError {
        operation: "RegisterContainerInstance",
        code: "ServerException".into(),
        message: "no containerInstance in the response".into(),
    })?;
    let returned: Vec<(String, Option<String>)> = instance
        .attributes()
        .iter()
        .map(|a| (a.name().to_owned(), a.value().map(str::to_owned)))
        .collect();
    if let Some(missing) = req.attributes.iter().find(|a| !returned.contains(a)) {
        return Err(ApiError {
            operation: "RegisterContainerInstance",
            code: "AttributeError".into(),
            message: format!("the registered instance lacks attribute {}", missing.0),
        });
    }
    let availability_zone = returned
        .iter()
        .find(|(n, _)| n == "ecs.availability-zone")
        .and_then(|(_, v)| v.clone());
    let arn = instance.container_instance_arn.unwrap_or_default();
    Ok(Registration {
        container_instance_arn: arn,
        availability_zone,
    })
}

/// The public SDK model lacks the agent-only `clientToken` member of RegisterContainerInstance
/// (the official agent's fork has it): add it to the JSON body before the request is signed.
fn with_client_token(
    token: String,
) -> impl Fn(&mut aws_smithy_runtime_api::http::Request) + Send + Sync + 'static {
    move |req| {
        let Some(bytes) = req.body().bytes() else {
            return;
        };
        let Ok(serde_json::Value::Object(mut body)) =
            serde_json::from_slice::<serde_json::Value>(bytes)
        else {
            return;
        };
        body.insert(
            "clientToken".into(),
            serde_json::Value::String(token.clone()),
        );
        let Ok(new) = serde_json::to_vec(&body) else {
            return;
        };
        req.headers_mut()
            .insert("content-length", new.len().to_string());
        *req.body_mut() = aws_smithy_types::body::SdkBody::from(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Sources};

    fn config(env: &[(&str, &str)]) -> Config {
        let sources = Sources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        load(&sources).unwrap().config
    }

    fn names(attrs: &[Attr]) -> Vec<&str> {
        attrs.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn advertises_docker_api_versions_up_to_the_daemons() {
        let attrs = attributes(&config(&[]), (1, 41), true, false);
        let n = names(&attrs);
        assert!(n.contains(&"com.amazonaws.ecs.capability.docker-remote-api.1.32"));
        assert!(!n.contains(&"com.amazonaws.ecs.capability.docker-remote-api.1.26"));
        let old = attributes(&config(&[]), (1, 24), true, false);
        assert!(!names(&old).contains(&"com.amazonaws.ecs.capability.docker-remote-api.1.25"));
    }

    #[test]
    fn custom_attributes_only_on_first_registration() {
        let c = config(&[("ECS_INSTANCE_ATTRIBUTES", r#"{"team":"web"}"#)]);
        assert!(attributes(&c, (1, 41), true, false).contains(&("team".into(), Some("web".into()))));
        assert!(!names(&attributes(&c, (1, 41), false, false)).contains(&"team"));
    }

    #[test]
    fn capabilities_follow_the_configuration() {
        let c = config(&[
            ("ECS_DISABLE_PRIVILEGED", "true"),
            (
                "ECS_AVAILABLE_LOGGING_DRIVERS",
                r#"["json-file","awslogs"]"#,
            ),
        ]);
        let n = attributes(&c, (1, 41), true, false);
        let n = names(&n);
        assert!(!n.contains(&"com.amazonaws.ecs.capability.privileged-container"));
        assert!(n.contains(&"com.amazonaws.ecs.capability.logging-driver.awslogs"));
        assert!(!n.contains(&"com.amazonaws.ecs.capability.logging-driver.none"));
        assert!(n.contains(&"ecs.os-type"));
        assert!(n.contains(&"com.amazonaws.ecs.capability.ecr-auth"));
        assert!(n.contains(&"com.amazonaws.ecs.capability.task-iam-role"));
        assert!(n.contains(&"ecs.capability.secrets.ssm.environment-variables"));
        assert!(n.contains(&"ecs.capability.secrets.ssm.bootstrap.log-driver"));
        assert!(n.contains(&"ecs.capability.efs"));
        assert!(!n.contains(&"ecs.capability.efsAuth"), "no efs-utils here");
        let with_utils = attributes(&c, (1, 41), true, true);
        assert!(names(&with_utils).contains(&"ecs.capability.efsAuth"));
        let mut no_auth = c.clone();
        no_auth.volume_plugin_capabilities.clear();
        let without = attributes(&no_auth, (1, 41), true, true);
        assert!(!names(&without).contains(&"ecs.capability.efsAuth"));
    }

    #[test]
    fn resources_are_cpu_memory_and_port_sets() {
        let cap = HostCapacity {
            cpu: 2048,
            memory_mib: 24105,
            reserved_tcp: [22, 2375].into(),
            reserved_udp: Default::default(),
            dynamic_ports: (1, 2),
            port_in_use: None,
        };
        let r = total_resources(&cap);
        assert_eq!(r[0].name(), Some("CPU"));
        assert_eq!(r[0].integer_value(), 2048);
        assert_eq!(r[1].integer_value(), 24105);
        assert_eq!(
            r[2].string_set_value(),
            ["22".to_owned(), "2375".to_owned()]
        );
        assert_eq!(r[3].name(), Some("PORTS_UDP"));
    }
}
