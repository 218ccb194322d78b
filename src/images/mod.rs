//! Registry credentials for image pulls. Today: Amazon ECR (`registryAuthentication` type
//! `ecr`): `GetAuthorizationToken` for the registry ID and region (at `endpointOverride` when
//! given), with the task's execution role when `useExecutionRole`, else the instance's own
//! credentials; tokens cached per region + registry + endpoint + role ARN + credentials ID (as
//! the official agent keys them) and fetched again once within 30 minutes of their expiry.
//! Tokens are never logged.
//!
//! Also `registryAuthentication` type `asm` (username and password from Secrets Manager) and
//! `ECS_ENGINE_AUTH_TYPE`/`ECS_ENGINE_AUTH_DATA` for containers without registry authentication.
//!
//! Image cleanup: [`cleanup`] is the pure policy (the records of the images tasks pulled and
//! used, and which images and stopped non-ECS containers a cycle removes: unused tracked images
//! least recently used first, then untracked ones smallest first, within one per-cycle budget);
//! [`cleaner`] runs it against Docker every `ECS_IMAGE_CLEANUP_INTERVAL`, and early when the
//! Docker data disk is fuller than `ECS_IMAGE_CLEANUP_DISK_THRESHOLD` (this agent's own trigger).
//! [`reference`](mod@reference) gives image references the short form Docker lists them in.

pub mod cleaner;
pub mod cleanup;
pub mod reference;

use std::collections::{BTreeMap, HashMap};
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

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Key {
    region: String,
    registry: String,
    endpoint: String,
    role: String,
    credentials_id: String,
}

impl Key {
    fn new(auth: &EcrAuthData, role: Option<&RoleCredentials>) -> Self {
        Key {
            region: auth.region.clone().unwrap_or_default(),
            registry: auth.registry_id.clone().unwrap_or_default(),
            endpoint: auth.endpoint_override.clone().unwrap_or_default(),
            role: role.map(|r| r.role_arn.clone()).unwrap_or_default(),
            credentials_id: role.map(|r| r.credentials_id.clone()).unwrap_or_default(),
        }
    }
}

/// Registry credentials with their expiry, by what they were fetched for.
#[derive(Default)]
struct TokenCache(Mutex<HashMap<Key, (DockerCredentials, SystemTime)>>);

impl TokenCache {
    /// The cached credentials for `key`, unless they expire within [`REFRESH_BEFORE`] of `now`.
    fn fresh(&self, key: &Key, now: SystemTime) -> Option<DockerCredentials> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (creds, expires) = cache.get(key)?;
        let left = expires.duration_since(now).unwrap_or_default();
        (left > REFRESH_BEFORE).then(|| creds.clone())
    }

    fn store(&self, key: Key, creds: DockerCredentials, expires: SystemTime) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (creds, expires));
    }

    /// The cached credentials for `key` if still fresh at `now`, else what `fetch` returns
    /// (cached with its expiry).
    async fn get_or_fetch<F, Fut>(
        &self,
        key: Key,
        now: SystemTime,
        fetch: F,
    ) -> Result<DockerCredentials, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(DockerCredentials, SystemTime), String>>,
    {
        if let Some(creds) = self.fresh(&key, now) {
            return Ok(creds);
        }
        let (creds, expires) = fetch().await?;
        self.store(key, creds.clone(), expires);
        Ok(creds)
    }
}

/// Fetches and caches ECR registry credentials.
pub struct EcrAuth {
    instance: SdkConfig,
    cache: TokenCache,
}

impl EcrAuth {
    /// `instance` carries the agent's HTTP client and its own credentials.
    pub fn new(instance: SdkConfig) -> Self {
        EcrAuth {
            instance,
            cache: TokenCache::default(),
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
        self.cache
            .get_or_fetch(Key::new(auth, role), SystemTime::now(), || {
                self.fetch(auth, role)
            })
            .await
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

    fn token(password: &str) -> DockerCredentials {
        DockerCredentials {
            username: Some("AWS".into()),
            password: Some(password.into()),
            ..Default::default()
        }
    }

    fn role(credentials_id: &str) -> RoleCredentials {
        RoleCredentials {
            credentials_id: credentials_id.into(),
            role_arn: "arn:aws:iam::123456789012:role/exec".into(),
            ..Default::default()
        }
    }

    /// Asks `cache` at `now`, with a fetch that counts its calls and yields a token `valid` long.
    async fn pull(
        cache: &TokenCache,
        key: &Key,
        now: SystemTime,
        valid: Duration,
        fetches: &std::sync::atomic::AtomicUsize,
    ) -> String {
        let creds = cache
            .get_or_fetch(key.clone(), now, || async {
                let n = fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                Ok((token(&format!("token-{n}")), now + valid))
            })
            .await
            .unwrap();
        creds.password.unwrap()
    }

    #[tokio::test]
    async fn a_second_pull_reuses_the_token_until_the_refresh_window() {
        let cache = TokenCache::default();
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let auth = EcrAuthData {
            registry_id: Some("123456789012".into()),
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let key = Key::new(&auth, Some(&role("exec-1")));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(pull(&cache, &key, t0, hours(12), &fetches).await, "token-1");
        assert_eq!(
            pull(&cache, &key, t0 + hours(1), hours(12), &fetches).await,
            "token-1",
            "reused"
        );
        // 31 minutes left: still outside the window.
        let outside = t0 + hours(12) - Duration::from_secs(31 * 60);
        assert_eq!(
            pull(&cache, &key, outside, hours(12), &fetches).await,
            "token-1"
        );
        // 29 minutes left: inside the 30-minute window, fetched again.
        let inside = t0 + hours(12) - Duration::from_secs(29 * 60);
        assert_eq!(
            pull(&cache, &key, inside, hours(12), &fetches).await,
            "token-2"
        );
        assert_eq!(
            pull(&cache, &key, inside + hours(1), hours(12), &fetches).await,
            "token-2",
            "the new token is cached in turn"
        );
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tokens_are_cached_per_region_registry_endpoint_role_and_credentials_id() {
        let cache = TokenCache::default();
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let valid = Duration::from_secs(12 * 3600);
        let base = EcrAuthData {
            registry_id: Some("123456789012".into()),
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let other_region = EcrAuthData {
            region: Some("eu-west-1".into()),
            ..base.clone()
        };
        let other_registry = EcrAuthData {
            registry_id: Some("210987654321".into()),
            ..base.clone()
        };
        let other_endpoint = EcrAuthData {
            endpoint_override: Some("http://127.0.0.1:5000".into()),
            ..base.clone()
        };
        let keys = [
            Key::new(&base, None),
            Key::new(&base, Some(&role("exec-1"))),
            Key::new(&base, Some(&role("exec-2"))),
            Key::new(&other_region, Some(&role("exec-1"))),
            Key::new(&other_registry, Some(&role("exec-1"))),
            Key::new(&other_endpoint, Some(&role("exec-1"))),
        ];
        for (i, key) in keys.iter().enumerate() {
            let expected = format!("token-{}", i + 1);
            assert_eq!(pull(&cache, key, now, valid, &fetches).await, expected);
        }
        for (i, key) in keys.iter().enumerate() {
            let expected = format!("token-{}", i + 1);
            assert_eq!(pull(&cache, key, now, valid, &fetches).await, expected);
        }
        assert_eq!(
            fetches.load(std::sync::atomic::Ordering::SeqCst),
            keys.len()
        );
    }
}

/// `ECS_ENGINE_AUTH_TYPE` / `ECS_ENGINE_AUTH_DATA`: private registry credentials for images
/// whose container has no `registryAuthentication`; the longest matching registry key wins.
#[derive(Clone, Default)]
pub struct EngineAuth {
    /// Normalised key (`host[/path]`, no scheme) and its credentials.
    entries: Vec<(String, DockerCredentials)>,
}

impl std::fmt::Debug for EngineAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("EngineAuth")
            .field("registries", &keys)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AuthEntry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    email: Option<String>,
}

fn normalise(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// `registry/repository` of an image reference, Docker Hub images under `docker.io`.
fn qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_host =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        image.to_owned()
    } else {
        format!("docker.io/{image}")
    }
}

impl EngineAuth {
    /// Parses the data in the `docker` form (`{"registry":{"username","password"}}`) or the
    /// `dockercfg` form (`{"registry":{"auth":"base64(user:pass)"}}`). Errors never quote values.
    pub fn parse(dockercfg: bool, data: &str) -> Result<EngineAuth, String> {
        let map: BTreeMap<String, AuthEntry> = serde_json::from_str(data).map_err(|_| {
            "ECS_ENGINE_AUTH_DATA is not a JSON object of registry credentials".to_owned()
        })?;
        let mut entries = Vec::new();
        for (key, e) in map {
            let (username, password) = match (dockercfg, e.auth) {
                (true, Some(auth)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| format!("ECS_ENGINE_AUTH_DATA: the auth of {key} is not base64 user:password"))?;
                    let (u, p) = decoded.split_once(':').ok_or_else(|| {
                        format!("ECS_ENGINE_AUTH_DATA: the auth of {key} is not user:password")
                    })?;
                    (u.to_owned(), p.to_owned())
                }
                _ => (
                    e.username.unwrap_or_default(),
                    e.password.unwrap_or_default(),
                ),
            };
            let creds = DockerCredentials {
                username: Some(username),
                password: Some(password),
                email: e.email,
                serveraddress: Some(key.clone()),
                ..Default::default()
            };
            entries.push((normalise(&key), creds));
        }
        Ok(EngineAuth { entries })
    }

    /// The credentials for `image`: the longest registry key that prefixes it.
    pub fn for_image(&self, image: &str) -> Option<DockerCredentials> {
        let name = qualified(image);
        self.entries
            .iter()
            .filter(|(k, _)| name == *k || name.starts_with(&format!("{k}/")))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, c)| c.clone())
    }
}

/// `registryAuthentication` type `asm`: the username and password kept in a Secrets Manager
/// secret, read with the task's execution role.
pub async fn asm_credentials(
    sdk: &SdkConfig,
    execution: Option<&RoleCredentials>,
    registry_authentication: &serde_json::Value,
) -> Result<DockerCredentials, String> {
    let data = registry_authentication
        .get("asmAuthData")
        .cloned()
        .unwrap_or_default();
    let arn = data
        .get("credentialsParameter")
        .and_then(|v| v.as_str())
        .ok_or("asmAuthData.credentialsParameter is missing")?;
    let role = execution.ok_or("the task's execution role credentials are not available")?;
    let mut conf =
        aws_sdk_secretsmanager::config::Builder::from(sdk).credentials_provider(Credentials::new(
            &role.access_key_id,
            &role.secret_access_key,
            Some(role.session_token.clone()),
            None,
            "ecs-execution-role",
        ));
    let region = data
        .get("region")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| arn.split(':').nth(3).map(str::to_owned));
    if let Some(region) = region.filter(|r| !r.is_empty()) {
        conf = conf.region(aws_config::Region::new(region));
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(conf.build());
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let code = match &e {
                aws_sdk_secretsmanager::error::SdkError::ServiceError(s) => {
                    aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(s.err())
                        .unwrap_or("UnknownError")
                        .to_owned()
                }
                _ => "the service could not be reached".to_owned(),
            };
            format!("GetSecretValue {arn}: {code}")
        })?;
    #[derive(Deserialize)]
    struct UserPass {
        username: String,
        password: String,
    }
    let up: UserPass = serde_json::from_str(out.secret_string().unwrap_or_default())
        .map_err(|_| format!("secret {arn} is not a JSON object with username and password"))?;
    Ok(DockerCredentials {
        username: Some(up.username),
        password: Some(up.password),
        ..Default::default()
    })
}

#[cfg(test)]
mod engine_auth_tests {
    use super::*;

    #[test]
    fn the_longest_matching_registry_wins_in_both_forms() {
        let docker = r#"{"https://index.docker.io/v1/":{"username":"hub","password":"p1"},
            "registry.example.com":{"username":"ex","password":"p2"},
            "registry.example.com/team":{"username":"team","password":"p3"}}"#;
        let a = EngineAuth::parse(false, docker).unwrap();
        let user = |img: &str| a.for_image(img).and_then(|c| c.username);
        assert_eq!(user("busybox").as_deref(), Some("hub"));
        assert_eq!(user("registry.example.com/app:1").as_deref(), Some("ex"));
        assert_eq!(
            user("registry.example.com/team/app").as_deref(),
            Some("team")
        );
        assert_eq!(user("other.example.com/app"), None);
        let cfg = r#"{"127.0.0.1:5005":{"auth":"QVdTOnNlY3JldA==","email":"a@b"}}"#;
        let c = EngineAuth::parse(true, cfg)
            .unwrap()
            .for_image("127.0.0.1:5005/busybox:latest")
            .unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("AWS"), Some("secret"))
        );
        let err = EngineAuth::parse(true, r#"{"r":{"auth":"not base64!"}}"#).unwrap_err();
        assert!(!err.contains("not base64!"), "values never quoted: {err}");
        assert!(!format!("{a:?}").contains("p1"), "Debug shows no password");
    }
}
