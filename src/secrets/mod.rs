//! Container secrets from SSM Parameter Store and Secrets Manager, fetched with the task's
//! execution role before the container is created, into its environment.
//!
//! SSM: `valueFrom` is a parameter name or ARN; names are batched 10 per `GetParameters`
//! (`WithDecryption`), grouped by region. Secrets Manager: `valueFrom` is the secret ARN, with an
//! optional `:json-key:version-stage:version-id` suffix (empty fields omitted); a JSON key picks
//! one field of a JSON secret. Values never reach logs or error text.
//!
//! Secrets with target `LOG_DRIVER` become options of the container's log driver (the driver
//! applies them; see `runtime::driver`).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
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

/// A Secrets Manager reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmRef {
    pub secret_id: String,
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

/// Splits `arn:aws:secretsmanager:<region>:<acct>:secret:<name>[:json-key[:stage[:id]]]`.
pub fn parse_asm(value_from: &str) -> AsmRef {
    let parts: Vec<&str> = value_from.split(':').collect();
    if parts.len() <= 7 || !value_from.starts_with("arn:") {
        return AsmRef {
            secret_id: value_from.to_owned(),
            json_key: None,
            version_stage: None,
            version_id: None,
        };
    }
    let field = |i: usize| {
        parts
            .get(i)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
    };
    AsmRef {
        secret_id: parts[..7].join(":"),
        json_key: field(7),
        version_stage: field(8),
        version_id: field(9),
    }
}

/// Why secrets could not be resolved, in the official agent's vocabulary; never holds a value.
fn failure(what: &str) -> String {
    format!("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: {what}")
}

/// Fetches the container-target secrets of one container: name → value.
pub async fn resolve(
    sdk: &SdkConfig,
    execution: Option<&RoleCredentials>,
    task_region: &str,
    secrets: &[SecretRef],
) -> Result<BTreeMap<String, String>, String> {
    let role = execution
        .ok_or_else(|| failure("the task has secrets but no execution role credentials"))?;
    let creds = Credentials::new(
        &role.access_key_id,
        &role.secret_access_key,
        Some(role.session_token.clone()),
        None,
        "ecs-execution-role",
    );
    let mut out = BTreeMap::new();
    let mut ssm: BTreeMap<String, Vec<&SecretRef>> = BTreeMap::new();
    for s in secrets {
        let region = s
            .region
            .clone()
            .or_else(|| arn_region(&s.value_from))
            .unwrap_or_else(|| task_region.to_owned());
        if s.provider.as_deref() == Some("asm")
            || s.value_from.starts_with("arn:aws:secretsmanager:")
        {
            let value = asm_value(sdk, &creds, &region, &parse_asm(&s.value_from)).await?;
            out.insert(s.name.clone(), value);
        } else {
            ssm.entry(region).or_default().push(s);
        }
    }
    for (region, refs) in ssm {
        for batch in refs.chunks(10) {
            out.extend(ssm_values(sdk, &creds, &region, batch).await?);
        }
    }
    Ok(out)
}

fn arn_region(value_from: &str) -> Option<String> {
    let parts: Vec<&str> = value_from.split(':').collect();
    (value_from.starts_with("arn:") && parts.len() > 3 && !parts[3].is_empty())
        .then(|| parts[3].to_owned())
}

async fn ssm_values(
    sdk: &SdkConfig,
    creds: &Credentials,
    region: &str,
    batch: &[&SecretRef],
) -> Result<BTreeMap<String, String>, String> {
    let conf = aws_sdk_ssm::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(creds.clone())
        .build();
    let client = aws_sdk_ssm::Client::from_conf(conf);
    let names: Vec<String> = batch.iter().map(|s| s.value_from.clone()).collect();
    let out = client
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            failure(&format!(
                "unable to retrieve secrets from ssm: {}",
                code_of(&e)
            ))
        })?;
    if let Some(bad) = out.invalid_parameters().first() {
        return Err(failure(&format!(
            "unable to retrieve secrets from ssm: invalid parameters: {bad}"
        )));
    }
    let mut values = BTreeMap::new();
    for p in out.parameters() {
        let (Some(name), Some(arn), Some(value)) = (p.name(), p.arn(), p.value()) else {
            continue;
        };
        for s in batch
            .iter()
            .filter(|s| s.value_from == name || s.value_from == arn)
        {
            values.insert(s.name.clone(), value.to_owned());
        }
    }
    Ok(values)
}

async fn asm_value(
    sdk: &SdkConfig,
    creds: &Credentials,
    region: &str,
    r: &AsmRef,
) -> Result<String, String> {
    let conf = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(creds.clone())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(conf);
    let out = client
        .get_secret_value()
        .secret_id(&r.secret_id)
        .set_version_stage(r.version_stage.clone())
        .set_version_id(r.version_id.clone())
        .send()
        .await
        .map_err(|e| {
            failure(&format!(
                "unable to retrieve secret from asm: {}: {}",
                r.secret_id,
                code_of(&e)
            ))
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| failure(&format!("secret {} has no string value", r.secret_id)))?;
    match &r.json_key {
        None => Ok(text.to_owned()),
        Some(key) => {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                failure(&format!(
                    "secret {} is not JSON, so it has no key {key}",
                    r.secret_id
                ))
            })?;
            match json.get(key) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(failure(&format!("secret {} has no key {key}", r.secret_id))),
            }
        }
    }
}

/// The service error code of an SDK error (never its message, which could echo input).
fn code_of<E: aws_sdk_ssm::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_ssm::error::SdkError<E, R>,
) -> String {
    match e {
        aws_sdk_ssm::error::SdkError::ServiceError(s) => {
            s.err().code().unwrap_or("UnknownError").to_owned()
        }
        _ => "the service could not be reached".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asm_references_split_into_their_parts() {
        let base = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf";
        assert_eq!(
            parse_asm(base),
            AsmRef {
                secret_id: base.into(),
                json_key: None,
                version_stage: None,
                version_id: None
            }
        );
        let r = parse_asm(&format!("{base}:password::"));
        assert_eq!(
            (r.secret_id.as_str(), r.json_key.as_deref(), r.version_stage),
            (base, Some("password"), None)
        );
        let r = parse_asm(&format!("{base}:password:AWSPREVIOUS:v1"));
        assert_eq!(
            (r.version_stage.as_deref(), r.version_id.as_deref()),
            (Some("AWSPREVIOUS"), Some("v1"))
        );
        let r = parse_asm(&format!("{base}::AWSCURRENT:"));
        assert_eq!(
            (r.json_key, r.version_stage.as_deref()),
            (None, Some("AWSCURRENT"))
        );
        assert_eq!(parse_asm("plain-name").secret_id, "plain-name");
    }

    #[test]
    fn regions_come_from_arns() {
        assert_eq!(
            arn_region("arn:aws:ssm:eu-west-1:1:parameter/x").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("/app/db"), None);
    }
}
