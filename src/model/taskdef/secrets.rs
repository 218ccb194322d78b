//! Secrets and private-registry credentials in the shape ACS delivers them.
//!
//! A task definition names a secret by `valueFrom` only; the control plane adds the `provider`
//! (`asm` for Secrets Manager ARNs, `ssm` for Parameter Store names or ARNs), the `region` (from
//! the ARN, else the task's) and the `target`: `CONTAINER` with type `ENVIRONMENT_VARIABLE` for
//! `secrets`, `LOG_DRIVER` for `logConfiguration.secretOptions`. Values are never read here.

use serde_json::{json, Value};

use super::fields::Obj;

/// `repositoryCredentials` → ACS `registryAuthentication` of type `asm`.
pub(super) fn registry_auth(def: &Obj<'_>, region: &str) -> Option<Value> {
    let creds = def.object("repositoryCredentials")?;
    let parameter = creds.required_str("credentialsParameter")?;
    Some(json!({
        "type": "asm",
        "asmAuthData": { "credentialsParameter": parameter, "region": arn_region(parameter, region) },
    }))
}

/// `secrets` (into the environment) and `logConfiguration.secretOptions` (into log options), in
/// the ACS shape: provider `asm` for Secrets Manager ARNs, `ssm` otherwise; region from the ARN.
pub(super) fn secrets(def: &Obj<'_>, region: &str) -> Option<Vec<Value>> {
    let env = def.objects("secrets");
    let log = def
        .peek_object("logConfiguration")
        .and_then(|l| l.objects("secretOptions"));
    if env.is_none() && log.is_none() {
        return None;
    }
    let env = env.unwrap_or_default();
    let env = env.iter().filter_map(|s| secret(s, region, "CONTAINER"));
    let log = log.unwrap_or_default();
    let log = log.iter().filter_map(|s| secret(s, region, "LOG_DRIVER"));
    Some(env.chain(log).collect())
}

fn secret(s: &Obj<'_>, region: &str, target: &str) -> Option<Value> {
    let name = s.required_str("name");
    let value_from = s.required_str("valueFrom")?;
    let provider = if value_from.contains(":secretsmanager:") {
        "asm"
    } else {
        "ssm"
    };
    let mut secret = json!({
        "name": name?,
        "valueFrom": value_from,
        "provider": provider,
        "target": target,
        "region": arn_region(value_from, region),
    });
    if target == "CONTAINER" {
        secret["type"] = json!("ENVIRONMENT_VARIABLE");
    }
    Some(secret)
}

/// The region of an ARN (`arn:aws:ssm:<region>:...`), or the task's region for a bare name.
fn arn_region<'t>(value: &'t str, default: &'t str) -> &'t str {
    match value
        .strip_prefix("arn:")
        .map(|rest| rest.split(':').nth(2))
    {
        Some(Some(region)) if !region.is_empty() => region,
        _ => default,
    }
}
