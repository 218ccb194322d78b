//! The service calls behind secrets: one SSM `GetParameters` batch, one Secrets Manager
//! `GetSecretValue`. Errors name what was asked for and the service's error code, never a value
//! or the service's message (which could echo input).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

use super::AsmRef;

/// Fetches up to 10 parameters of one region: `(region, name as asked)` → value. A name SSM
/// calls invalid (missing, or not readable) fails the batch, naming it.
pub(super) async fn ssm_batch(
    sdk: &SdkConfig,
    creds: &Credentials,
    region: &str,
    names: Vec<String>,
) -> Result<BTreeMap<(String, String), String>, String> {
    let conf = aws_sdk_ssm::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(creds.clone())
        .build();
    let client = aws_sdk_ssm::Client::from_conf(conf);
    let out = client
        .get_parameters()
        .set_names(Some(names.clone()))
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "unable to retrieve secrets from ssm in {region}: [{}]: {}",
                names.join(", "),
                code_of(&e)
            )
        })?;
    if !out.invalid_parameters().is_empty() {
        return Err(format!(
            "unable to retrieve secrets from ssm in {region}: invalid parameters: [{}]",
            out.invalid_parameters().join(", ")
        ));
    }
    let mut values = BTreeMap::new();
    for p in out.parameters() {
        let (Some(name), Some(value)) = (p.name(), p.value()) else {
            continue;
        };
        let selected = p.selector().map(|s| format!("{name}{s}"));
        let asked = names.iter().filter(|n| {
            n.as_str() == name || Some(n.as_str()) == p.arn() || Some(*n) == selected.as_ref()
        });
        for n in asked {
            values.insert((region.to_owned(), n.clone()), value.to_owned());
        }
    }
    Ok(values)
}

/// Fetches one Secrets Manager secret's `SecretString` (the stage and version id when given).
pub(super) async fn asm_secret(
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
            format!(
                "unable to retrieve secret from asm: {}: {}",
                r.secret_id,
                code_of(&e)
            )
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| format!("secret {} has no string value", r.secret_id))
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
