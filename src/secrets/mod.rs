//! Container secrets from SSM Parameter Store and Secrets Manager, fetched with the task's
//! execution role once per task, before the first container of the task is created (see
//! [`cache`]), into the containers' environments and log driver options.
//!
//! SSM: `valueFrom` is a parameter name or ARN; distinct names are batched 10 per
//! `GetParameters` (`WithDecryption`), grouped by region. Secrets Manager: `valueFrom` is the
//! secret's name or ARN, an ARN with an optional `:json-key:version-stage:version-id` suffix
//! (empty fields omitted; any other number of fields is refused); one `GetSecretValue` per
//! distinct secret and version, a JSON key picking one field of a JSON secret. Every call of a
//! task runs at once, as the official agent's goroutines do.
//!
//! Values stay in memory: never logged (their types print names only), never in an error, never
//! in the saved state. Errors name the secret's `valueFrom`.

pub mod cache;
mod fetch;

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use futures_util::future::try_join_all;
use serde::Deserialize;

use crate::model::RoleCredentials;

/// One entry of a container's `secrets`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretRef {
    pub name: String,
    pub value_from: String,
    /// `ssm` or `asm`.
    pub provider: Option<String>,
    pub region: Option<String>,
    /// `CONTAINER` (default) or `LOG_DRIVER`.
    pub target: Option<String>,
}

impl SecretRef {
    fn is_asm(&self) -> bool {
        self.provider.as_deref() == Some("asm")
            || (self.provider.is_none()
                && self.value_from.split(':').nth(2) == Some("secretsmanager"))
    }

    fn is_log_driver(&self) -> bool {
        self.target.as_deref() == Some("LOG_DRIVER")
    }
}

/// A Secrets Manager reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AsmRef {
    pub secret_id: String,
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

impl AsmRef {
    /// What one `GetSecretValue` fetches (the JSON key is picked afterwards).
    fn version(&self) -> AsmRef {
        AsmRef {
            json_key: None,
            ..self.clone()
        }
    }
}

/// Splits `arn:<partition>:secretsmanager:<region>:<acct>:secret:<id>[:json-key:stage:id]`. The
/// ARN's resource part must have 2 fields (`secret:<id>`) or 5, as the official agent requires;
/// a name that is not an ARN is the secret id as it is.
pub fn parse_asm(value_from: &str) -> Result<AsmRef, String> {
    let whole = || AsmRef {
        secret_id: value_from.to_owned(),
        json_key: None,
        version_stage: None,
        version_id: None,
    };
    if !value_from.starts_with("arn:") {
        return Ok(whole());
    }
    let parts: Vec<&str> = value_from.split(':').collect();
    if parts.len() < 7 || parts[5] != "secret" || parts[6].is_empty() {
        return Err(format!(
            "invalid secrets manager arn {value_from}: the resource is not secret:<name>"
        ));
    }
    let field = |i: usize| Some(parts[i]).filter(|s| !s.is_empty()).map(str::to_owned);
    match parts.len() {
        7 => Ok(whole()),
        10 => Ok(AsmRef {
            secret_id: parts[..7].join(":"),
            json_key: field(7),
            version_stage: field(8),
            version_id: field(9),
        }),
        _ => Err(format!(
            "invalid secrets manager arn {value_from}: the resource needs 2 or 5 colon-separated fields (secret:<name>[:json-key:version-stage:version-id])"
        )),
    }
}

/// Why secrets could not be resolved, in the official agent's vocabulary; never holds a value.
fn failure(what: &str) -> String {
    format!("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: {what}")
}

/// One container's secret values: those for its environment and those for its log driver's
/// options (`target` `LOG_DRIVER`). Prints names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerSecrets {
    pub env: BTreeMap<String, String>,
    pub log_options: BTreeMap<String, String>,
}

impl std::fmt::Debug for ContainerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSecrets")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("log_options", &self.log_options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The secrets of a task's containers, by container name.
pub type TaskSecretRefs = BTreeMap<String, Vec<SecretRef>>;

/// The region a secret is read in: its own, else its ARN's, else the task's.
fn region_of(s: &SecretRef, task_region: &str) -> String {
    s.region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| arn_region(&s.value_from))
        .unwrap_or_else(|| task_region.to_owned())
}

/// What a task's secrets need from the services: distinct SSM names by region, distinct Secrets
/// Manager versions by region. Refuses a malformed Secrets Manager ARN before any call.
#[derive(Debug, Default)]
struct Calls {
    ssm: BTreeMap<String, BTreeSet<String>>,
    asm: BTreeSet<(String, AsmRef)>,
}

fn plan(refs: &TaskSecretRefs, task_region: &str) -> Result<Calls, String> {
    let mut calls = Calls::default();
    for s in refs.values().flatten() {
        let region = region_of(s, task_region);
        if s.is_asm() {
            let r = parse_asm(&s.value_from).map_err(|e| failure(&e))?;
            calls.asm.insert((region, r.version()));
        } else {
            calls
                .ssm
                .entry(region)
                .or_default()
                .insert(s.value_from.clone());
        }
    }
    Ok(calls)
}

/// Fetches the secrets of every container of a task, all calls at once: container name → its
/// values. Fails, naming the secret, if any one of them cannot be had.
pub async fn resolve_task(
    sdk: &SdkConfig,
    execution: Option<&RoleCredentials>,
    task_region: &str,
    refs: &TaskSecretRefs,
) -> Result<BTreeMap<String, ContainerSecrets>, String> {
    let role = execution
        .ok_or_else(|| failure("the task has secrets but no execution role credentials"))?;
    let creds = Credentials::new(
        &role.access_key_id,
        &role.secret_access_key,
        Some(role.session_token.clone()),
        None,
        "ecs-execution-role",
    );
    let calls = plan(refs, task_region)?;
    let ssm_calls = calls.ssm.iter().flat_map(|(region, names)| {
        let names: Vec<&String> = names.iter().collect();
        let batches: Vec<Vec<String>> = names
            .chunks(10)
            .map(|b| b.iter().map(|n| n.to_string()).collect())
            .collect();
        let creds = &creds;
        batches
            .into_iter()
            .map(move |batch| fetch::ssm_batch(sdk, creds, region, batch))
    });
    let asm_calls = calls.asm.iter().map(|(region, r)| async {
        let text = fetch::asm_secret(sdk, &creds, region, r).await?;
        Ok::<_, String>(((region.clone(), r.clone()), text))
    });
    let (ssm, asm) = futures_util::try_join!(try_join_all(ssm_calls), try_join_all(asm_calls))
        .map_err(|e| failure(&e))?;
    let ssm: BTreeMap<(String, String), String> = ssm.into_iter().flatten().collect();
    let asm: BTreeMap<(String, AsmRef), String> = asm.into_iter().collect();
    let mut out = BTreeMap::new();
    for (container, secrets) in refs {
        let mut values = ContainerSecrets::default();
        for s in secrets {
            let value = value_of(s, task_region, &ssm, &asm).map_err(|e| failure(&e))?;
            let into = if s.is_log_driver() {
                &mut values.log_options
            } else {
                &mut values.env
            };
            into.insert(s.name.clone(), value);
        }
        out.insert(container.clone(), values);
    }
    Ok(out)
}

/// One secret's value from what the calls returned (a JSON key picked out here).
fn value_of(
    s: &SecretRef,
    task_region: &str,
    ssm: &BTreeMap<(String, String), String>,
    asm: &BTreeMap<(String, AsmRef), String>,
) -> Result<String, String> {
    let region = region_of(s, task_region);
    if !s.is_asm() {
        return ssm
            .get(&(region, s.value_from.clone()))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "unable to retrieve secrets from ssm: no value returned for {}",
                    s.value_from
                )
            });
    }
    let r = parse_asm(&s.value_from)?;
    let text = asm.get(&(region, r.version())).ok_or_else(|| {
        format!(
            "unable to retrieve secret from asm: no value returned for {}",
            s.value_from
        )
    })?;
    let Some(key) = &r.json_key else {
        return Ok(text.clone());
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        format!(
            "secret {}: the secret is not JSON, so it has no key {key}",
            s.value_from
        )
    })?;
    match json.get(key) {
        Some(serde_json::Value::String(v)) => Ok(v.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!(
            "secret {}: the secret has no key {key}",
            s.value_from
        )),
    }
}

fn arn_region(value_from: &str) -> Option<String> {
    let parts: Vec<&str> = value_from.split(':').collect();
    (value_from.starts_with("arn:") && parts.len() > 3 && !parts[3].is_empty())
        .then(|| parts[3].to_owned())
}

#[cfg(test)]
mod tests;
