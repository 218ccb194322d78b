//! Registry credentials for image pulls. Today: Amazon ECR (`registryAuthentication` type
//! `ecr`): `GetAuthorizationToken` for the registry ID and region (at `endpointOverride` when
//! given), with the task's execution role when `useExecutionRole`, else the instance's own
//! credentials; tokens cached per region + registry + endpoint + role and refreshed well before
//! they expire. Tokens are never logged.
//!
//! Known limits: `asm` registry authentication and `ECS_ENGINE_AUTH_*` are not built yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use base64::Engine as _;
use bollard::auth::DockerCredentials;
use serde::Deserialize;

use crate::model::RoleCredentials;

/// Refresh a cached token when it has less than this left.
const REFRESH_BEFORE: Duration = Duration::from_secs(30 * 60);

/// `registryAuthentication.ecrAuthData`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcrAuthData {
    pub registry_id: Option<String>,
    pub region: Option<String>,
    pub endpoint_override: Option<String>,
    pub use_execution_role: Option<bool>,
}

/// The ECR part of a container's `registryAuthentication`, if it has one.
pub fn ecr_auth(
    registry_authentication: Option<&serde_json::Value>,
) -> Result<Option<EcrAuthData>, String> {
    let Some(v) = registry_authentication else {
        return Ok(None);
    };
    match v.get("type").and_then(|t| t.as_str()) {
        Some("ecr") => serde_json::from_value(v.get("ecrAuthData").cloned().unwrap_or_default())
            .map(Some)
            .map_err(|e| format!("registryAuthentication.ecrAuthData: {e}")),
        _ => Ok(None),
    }
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    region: String,
    registry: String,
    endpoint: String,
    role: String,
}

/// Fetches and caches ECR registry credentials.
pub struct EcrAuth {
    instance: SdkConfig,
    cache: Mutex<HashMap<Key, (DockerCredentials, SystemTime)>>,
}

impl EcrAuth {
    /// `instance` carries the agent's HTTP client and its own credentials.
    pub fn new(instance: SdkConfig) -> Self {
        EcrAuth {
            instance,
            cache: Mutex::default(),
        }
    }

    /// Registry credentials for a pull; `execution` is the task's execution role, if any.
    pub async fn credentials(
        &self,
        auth: &EcrAuthData,
        execution: Option<&RoleCredentials>,
    ) -> Result<DockerCredentials, String> {
        let use_role = auth.use_execution_role.unwrap_or(false);
        let role = match (use_role, execution) {
            (true, Some(c)) => Some(c),
            (true, None) => {
                return Err("the task's execution role credentials are not available".into())
            }
            (false, _) => None,
        };
        let key = Key {
            region: auth.region.clone().unwrap_or_default(),
            registry: auth.registry_id.clone().unwrap_or_default(),
            endpoint: auth.endpoint_override.clone().unwrap_or_default(),
            role: role.map(|r| r.role_arn.clone()).unwrap_or_default(),
        };
        if let Some((creds, expires)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if expires
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                > REFRESH_BEFORE
            {
                return Ok(creds.clone());
            }
        }
        let (creds, expires) = self.fetch(auth, role).await?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (creds.clone(), expires));
        Ok(creds)
    }

    async fn fetch(
        &self,
        auth: &EcrAuthData,
        role: Option<&RoleCredentials>,
    ) -> Result<(DockerCredentials, SystemTime), String> {
        let mut conf = aws_sdk_ecr::config::Builder::from(&self.instance);
        if let Some(region) = &auth.region {
            conf = conf.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = auth.endpoint_override.as_deref().filter(|e| !e.is_empty()) {
            conf = conf.endpoint_url(endpoint);
        }
        if let Some(r) = role {
            let creds = Credentials::new(
                &r.access_key_id,
                &r.secret_access_key,
                Some(r.session_token.clone()),
                None,
                "ecs-execution-role",
            );
            conf = conf.credentials_provider(creds);
        }
        let client = aws_sdk_ecr::Client::from_conf(conf.build());
        // Deprecated in the SDK (ECR ignores it today), but the official agent sends it.
        #[allow(deprecated)]
        let call = client
            .get_authorization_token()
            .set_registry_ids(auth.registry_id.clone().map(|id| vec![id]));
        let out = call.send().await.map_err(|e| {
            format!(
                "GetAuthorizationToken: {}",
                aws_sdk_ecr::error::DisplayErrorContext(&e)
            )
        })?;
        let data = out
            .authorization_data()
            .first()
            .ok_or("GetAuthorizationToken returned no authorization data")?;
        let token = data
            .authorization_token()
            .ok_or("GetAuthorizationToken returned no token")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("the ECR token is not base64 user:password")?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("the ECR token is not user:password")?;
        let expires = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or_else(SystemTime::now);
        let creds = DockerCredentials {
            username: Some(user.to_owned()),
            password: Some(password.to_owned()),
            serveraddress: data.proxy_endpoint().map(str::to_owned),
            ..Default::default()
        };
        Ok((creds, expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_auth_is_read_from_the_acs_shape() {
        let v = serde_json::json!({"type": "ecr", "ecrAuthData": {"registryId": "123456789012", "region": "us-west-2", "useExecutionRole": true}});
        let a = ecr_auth(Some(&v)).unwrap().unwrap();
        assert_eq!(a.registry_id.as_deref(), Some("123456789012"));
        assert_eq!(a.use_execution_role, Some(true));
        assert_eq!(
            ecr_auth(Some(&serde_json::json!({"type": "asm"}))).unwrap(),
            None
        );
        assert_eq!(ecr_auth(None).unwrap(), None);
        assert!(ecr_auth(Some(
            &serde_json::json!({"type": "ecr", "ecrAuthData": {"region": 5}})
        ))
        .is_err());
    }
}
