//! What a container needs from AWS and the agent before Docker sees it: registry credentials
//! for its pull (ECR, Secrets Manager or `ECS_ENGINE_AUTH_*`), its secrets (environment and log
//! driver options) with the execution role, and the environment the agent adds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::images::{asm_credentials, ecr_auth, EcrAuth, EngineAuth};
use crate::model::Task;
use crate::secrets::cache::SecretsCache;
use crate::secrets::{ContainerSecrets, SecretRef, TaskSecretRefs};

/// What a pull may authenticate with.
pub(super) struct PullAuth {
    pub ecr: Option<Arc<EcrAuth>>,
    pub sdk: Option<aws_config::SdkConfig>,
    pub engine: Option<EngineAuth>,
}

impl PullAuth {
    /// The credentials for one pull: the container's `registryAuthentication` (ecr or asm),
    /// else `ECS_ENGINE_AUTH_*` for the image's registry, else none.
    pub async fn credentials(
        &self,
        registry_authentication: Option<&serde_json::Value>,
        image: &str,
        execution: Option<&crate::model::RoleCredentials>,
    ) -> Result<Option<bollard::auth::DockerCredentials>, String> {
        let kind = registry_authentication
            .and_then(|r| r.get("type"))
            .and_then(|t| t.as_str());
        match (kind, &self.ecr, &self.sdk) {
            (Some("ecr"), Some(ecr), _) => {
                let data = ecr_auth(registry_authentication)?.unwrap_or_default();
                ecr.credentials(&data, execution).await.map(Some)
            }
            (Some("asm"), _, Some(sdk)) => asm_credentials(
                sdk,
                execution,
                registry_authentication.unwrap_or(&serde_json::Value::Null),
            )
            .await
            .map(Some),
            (Some(other), _, _) => Err(format!("type {other} is not available in this run mode")),
            (None, _, _) => Ok(self.engine.as_ref().and_then(|e| e.for_image(image))),
        }
    }
}

/// The container's secrets (environment and log driver options), from the resolution of every
/// secret of its task: the first create of a task resolves them all, the others wait for it.
pub(super) async fn container_secrets(
    cache: &SecretsCache,
    sdk: Option<&aws_config::SdkConfig>,
    execution: Option<&crate::model::RoleCredentials>,
    task: &Task,
    container: &str,
) -> Result<ContainerSecrets, String> {
    let refs = task_secret_refs(task);
    if refs.is_empty() {
        return Ok(ContainerSecrets::default());
    }
    let Some(sdk) = sdk else {
        return Err(
            "ResourceInitializationError: secrets are not supported by this run mode".into(),
        );
    };
    let region = task.arn.split(':').nth(3).unwrap_or_default().to_owned();
    let all = cache
        .task(&task.arn, || {
            crate::secrets::resolve_task(sdk, execution, &region, &refs)
        })
        .await?;
    Ok(all.get(container).cloned().unwrap_or_default())
}

/// The secrets of every container of a task that has any.
fn task_secret_refs(task: &Task) -> TaskSecretRefs {
    task.containers
        .iter()
        .map(|c| {
            let refs: Vec<SecretRef> = c
                .secrets
                .iter()
                .flatten()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect();
            (c.name.clone(), refs)
        })
        .filter(|(_, refs)| !refs.is_empty())
        .collect()
}

/// The container's log configuration: its `dockerConfig.hostConfig` `LogConfig` with the
/// secret options added: `(type, options)`, or `None` when the task sets none.
pub(super) fn effective_log_config(
    model: &crate::model::Container,
    secret_options: &BTreeMap<String, String>,
) -> Option<(String, BTreeMap<String, String>)> {
    let host_config: serde_json::Value = model
        .docker_config
        .as_ref()
        .and_then(|d| d.host_config.as_deref())
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    let log = &host_config["LogConfig"];
    let typ = log["Type"].as_str()?.to_owned();
    let mut config: BTreeMap<String, String> = log["Config"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    config.extend(secret_options.clone());
    Some((typ, config))
}

/// What Docker gets as the log configuration, and the awslogs options the agent ships with
/// itself (`ship`): an awslogs container gets Docker's local rotating `json-file` driver
/// instead. `None` keeps the task's own configuration untouched.
pub(super) struct LogPlan {
    pub docker: Option<bollard::models::HostConfigLogConfig>,
    pub ship: Option<crate::logs::options::AwsLogsOptions>,
}

/// Decides the log plan; a bad awslogs option fails the create, naming the option.
pub(super) fn log_plan(
    model: &crate::model::Container,
    secret_options: &BTreeMap<String, String>,
    agent_ships: bool,
) -> Result<LogPlan, String> {
    let effective = effective_log_config(model, secret_options);
    let as_docker = |typ: &str, config: BTreeMap<String, String>| {
        Some(bollard::models::HostConfigLogConfig {
            typ: Some(typ.to_owned()),
            config: Some(config.into_iter().collect()),
        })
    };
    match effective {
        Some((typ, config)) if typ == "awslogs" && agent_ships => {
            let from_secrets = secret_options.keys().cloned().collect();
            let options =
                crate::logs::options::AwsLogsOptions::parse_with_secrets(&config, &from_secrets)
                    .map_err(|e| {
                        format!(
                            "CannotCreateContainerError: failed to initialize logging driver: {e}"
                        )
                    })?;
            let (local, local_options) = crate::logs::options::local_log_driver();
            Ok(LogPlan {
                docker: as_docker(local, local_options),
                ship: Some(options),
            })
        }
        Some((typ, config)) if !secret_options.is_empty() => Ok(LogPlan {
            docker: as_docker(&typ, config),
            ship: None,
        }),
        _ => Ok(LogPlan {
            docker: None,
            ship: None,
        }),
    }
}

/// `text` with every non-empty secret value in `values` blanked out.
pub(super) fn redact<'a>(mut text: String, values: impl Iterator<Item = &'a String>) -> String {
    for v in values.filter(|v| !v.is_empty()) {
        text = text.replace(v.as_str(), "<secret>");
    }
    text
}

/// Environment the agent adds to every container of a task.
pub(super) fn agent_env(task: &Task, task_iam_role: bool) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let (true, Some(uri)) = (task_iam_role, task.role_credentials_uri()) {
        env.insert("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".to_owned(), uri);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awslogs_container(options: serde_json::Value) -> crate::model::Container {
        let host_config = serde_json::json!({"LogConfig": {"Type": "awslogs", "Config": options}});
        crate::model::Container {
            name: "app".into(),
            docker_config: Some(crate::model::DockerConfig {
                host_config: Some(host_config.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn secret_values_are_blanked_out_of_docker_errors() {
        let values = ["t0ken".to_owned(), String::new()];
        let text = redact("bad log opt splunk-token: \"t0ken\"".into(), values.iter());
        assert_eq!(text, "bad log opt splunk-token: \"<secret>\"");
    }

    #[test]
    fn a_bad_awslogs_option_from_a_secret_fails_the_create_without_its_value() {
        let model = awslogs_container(serde_json::json!({"awslogs-group": "g"}));
        for option in [
            "mode",
            "awslogs-create-group",
            "awslogs-max-buffered-events",
        ] {
            let secret = [(option.to_owned(), "s3cret-value".to_owned())].into();
            let Err(reason) = log_plan(&model, &secret, true) else {
                panic!("{option}: a bad value is refused");
            };
            assert!(
                reason.starts_with("CannotCreateContainerError: ") && reason.contains(option),
                "{reason}"
            );
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        let plain =
            awslogs_container(serde_json::json!({"awslogs-group": "g", "mode": "plain-bad"}));
        let Err(reason) = log_plan(&plain, &BTreeMap::new(), true) else {
            panic!("a bad plain value is refused");
        };
        assert!(
            reason.contains("\"plain-bad\""),
            "a plain value is quoted: {reason}"
        );
    }
}
