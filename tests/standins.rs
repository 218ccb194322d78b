//! Proves each stand-in the integration tests rely on, for real: dockerd and the
//! offline test images, moto (Secrets Manager, SSM, ECR), the loopback registry
//! with basic auth, and the IMDSv2 stub in `support::imds`.
//!
//! Needs `scripts/test-env up`; a stand-in that is down fails its tests.

mod support;

use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use support::imds::{ImdsConfig, ImdsStub};
use support::{aws, env, http};

const TOKEN_PATH: &str = "/latest/api/token";
const TTL: (&str, &str) = ("X-aws-ec2-metadata-token-ttl-seconds", "21600");
const DOCUMENT_PATH: &str = "/latest/dynamic/instance-identity/document";

// ------------------------------------------------------------------ docker

/// Runs `cmd` (or the image's default command) to completion and returns
/// (exit code, stdout). The container is removed whatever happens.
async fn run_to_completion(docker: &Docker, image: &str, cmd: Option<&[&str]>) -> (i64, String) {
    let name = env::unique_name("ecs-agent-standin");
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("create container from {image}: {e}"));
    let result = start_wait_and_read_stdout(docker, &name).await;
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&name, Some(remove))
        .await
        .expect("remove test container");
    result.unwrap_or_else(|e| panic!("run {name}: {e}"))
}

async fn start_wait_and_read_stdout(
    docker: &Docker,
    name: &str,
) -> Result<(i64, String), bollard::errors::Error> {
    docker.start_container(name, None).await?;
    let wait = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    // bollard reports a non-zero exit as an error carrying the code.
    let code = match docker
        .wait_container(name, Some(wait))
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(responses) => responses.last().map_or(0, |r| r.status_code),
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
        Err(e) => return Err(e),
    };
    let logs = LogsOptionsBuilder::default().stdout(true).build();
    let chunks: Vec<LogOutput> = docker.logs(name, Some(logs)).try_collect().await?;
    let stdout = chunks
        .iter()
        .filter(|c| matches!(c, LogOutput::StdOut { .. }))
        .map(|c| String::from_utf8_lossy(&c.clone().into_bytes()).into_owned())
        .collect();
    Ok((code, stdout))
}

#[tokio::test]
async fn container_output_is_read_back_through_bollard() {
    let docker = env::docker().await;
    let cmd = ["sh", "-c", "echo hello-from-ecs-agent-test"];
    let (code, stdout) = run_to_completion(&docker, &env::image(), Some(&cmd)).await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "hello-from-ecs-agent-test\n");
}

#[tokio::test]
async fn exit_image_default_command_exits_with_42() {
    let docker = env::docker().await;
    let (code, _) = run_to_completion(&docker, &env::image_exit(), None).await;
    assert_eq!(code, 42);
}

#[tokio::test]
async fn healthy_image_container_becomes_healthy() {
    use bollard::models::HealthStatusEnum;
    let docker = env::docker().await;
    let name = env::unique_name("ecs-agent-standin-healthy");
    let body = ContainerCreateBody {
        image: Some(env::image_healthy()),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("create from {}: {e}", env::image_healthy()));
    let status = async {
        docker.start_container(&name, None).await?;
        // interval 1 s: healthy after the first probe, well within 15 s.
        for _ in 0..75 {
            let inspect = docker.inspect_container(&name, None).await?;
            let health = inspect.state.and_then(|s| s.health).and_then(|h| h.status);
            if health == Some(HealthStatusEnum::HEALTHY) {
                return Ok(health);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Ok::<_, bollard::errors::Error>(None)
    }
    .await;
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&name, Some(remove))
        .await
        .expect("remove test container");
    let status = status.unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert_eq!(
        status,
        Some(HealthStatusEnum::HEALTHY),
        "{name} never became healthy"
    );
}

// ------------------------------------------------------------------ moto

#[tokio::test]
async fn moto_returns_the_secret_value_it_stored() {
    let client = aws_sdk_secretsmanager::Client::new(&aws::moto_config().await);
    let name = env::unique_name("standin/secret");
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"u","password":"p"}"#)
        .send()
        .await
        .expect("CreateSecret");
    let got = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("GetSecretValue");
    assert_eq!(
        got.secret_string(),
        Some(r#"{"username":"u","password":"p"}"#)
    );
    assert_eq!(got.name(), Some(name.as_str()));
}

#[tokio::test]
async fn moto_decrypts_secure_string_and_lists_missing_parameters() {
    use aws_sdk_ssm::types::ParameterType;
    let client = aws_sdk_ssm::Client::new(&aws::moto_config().await);
    let name = format!("/{}", env::unique_name("standin/param"));
    let missing = format!("{name}-missing");
    client
        .put_parameter()
        .name(&name)
        .value("topsecret")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");
    let got = client
        .get_parameters()
        .names(&name)
        .names(&missing)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameters");
    let values: Vec<_> = got
        .parameters()
        .iter()
        .map(|p| (p.name(), p.value()))
        .collect();
    assert_eq!(values, [(Some(name.as_str()), Some("topsecret"))]);
    assert_eq!(got.invalid_parameters(), [missing]);
}

#[tokio::test]
async fn moto_ecr_token_decodes_to_the_registry_credentials() {
    let client = aws_sdk_ecr::Client::new(&aws::moto_config().await);
    let got = client
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken");
    let token = got.authorization_data()[0]
        .authorization_token()
        .expect("authorizationToken");
    let decoded = String::from_utf8(base64_decode(token)).expect("token is UTF-8");
    let expected = format!("{}:{}", env::registry_user(), env::registry_password());
    assert_eq!(decoded, expected);
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .unwrap_or_else(|| panic!("not base64: {c:?}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

// ------------------------------------------------------------------ registry

fn registry_credentials(password: &str) -> DockerCredentials {
    DockerCredentials {
        username: Some(env::registry_user()),
        password: Some(password.to_string()),
        serveraddress: Some(env::registry()),
        ..Default::default()
    }
}

async fn pull(docker: &Docker, repo: &str, credentials: DockerCredentials) -> Result<(), String> {
    let options = CreateImageOptionsBuilder::default()
        .from_image(repo)
        .tag("latest")
        .build();
    let mut progress = docker.create_image(Some(options), None, Some(credentials));
    while let Some(item) = progress.next().await {
        item.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::test]
async fn registry_image_is_pulled_with_basic_auth() {
    let docker = env::docker().await;
    env::require_listening("docker-registry", &env::registry()).await;
    let repo = format!("{}/busybox", env::registry());
    let reference = format!("{repo}:latest");
    // Untag only: the layers are shared with the imported busybox image.
    let untag = RemoveImageOptionsBuilder::default().force(false).build();
    let _ = docker.remove_image(&reference, Some(untag), None).await;
    assert!(
        docker.inspect_image(&reference).await.is_err(),
        "{reference} still present"
    );

    pull(
        &docker,
        &repo,
        registry_credentials(&env::registry_password()),
    )
    .await
    .unwrap_or_else(|e| panic!("pull {reference}: {e}"));

    let image = docker
        .inspect_image(&reference)
        .await
        .unwrap_or_else(|e| panic!("{reference} missing after pull: {e}"));
    assert!(image.repo_tags.unwrap_or_default().contains(&reference));
}

#[tokio::test]
async fn registry_refuses_a_pull_with_a_wrong_password() {
    let docker = env::docker().await;
    env::require_listening("docker-registry", &env::registry()).await;
    let repo = format!("{}/busybox", env::registry());
    let err = pull(&docker, &repo, registry_credentials("wrong-password"))
        .await
        .expect_err("pull with a wrong password must fail");
    assert!(err.contains("unauthorized"), "unexpected error: {err}");
}

/// dockerd decodes X-Registry-Auth as URL-safe base64 and silently drops it if
/// that fails; bollard 0.21 encodes with the standard alphabet. Credentials
/// whose encoding contains `/` or `+` (long ECR tokens nearly always do) are
/// therefore lost. If this test starts failing, bollard fixed its encoding.
#[tokio::test]
async fn dockerd_drops_bollard_credentials_whose_header_is_not_url_safe() {
    let docker = env::docker().await;
    env::require_listening("docker-registry", &env::registry()).await;
    let repo = format!("{}/busybox", env::registry());
    // "???" encodes to "Pz8/": the header gets a '/' while the password stays right.
    let credentials = DockerCredentials {
        email: Some("a???@example.com".into()),
        ..registry_credentials(&env::registry_password())
    };
    let err = pull(&docker, &repo, credentials)
        .await
        .expect_err("dockerd accepted a standard-base64 X-Registry-Auth");
    assert!(
        err.contains("no basic auth credentials"),
        "unexpected error: {err}"
    );
}

/// The workaround for the test above: rewrite the header into the URL-safe
/// alphabet (the two alphabets differ only in `+/` versus `-_`).
#[tokio::test]
async fn url_safe_registry_auth_modifier_keeps_credentials() {
    let docker = env::docker().await.with_request_modifier(|mut request| {
        if let Some(value) = request.headers().get("X-Registry-Auth") {
            let url_safe = value
                .to_str()
                .unwrap_or_default()
                .replace('+', "-")
                .replace('/', "_");
            let value = url_safe.parse().expect("header value");
            request.headers_mut().insert("X-Registry-Auth", value);
        }
        request
    });
    env::require_listening("docker-registry", &env::registry()).await;
    let repo = format!("{}/busybox", env::registry());
    let credentials = DockerCredentials {
        email: Some("a???@example.com".into()),
        ..registry_credentials(&env::registry_password())
    };
    pull(&docker, &repo, credentials)
        .await
        .unwrap_or_else(|e| panic!("pull with URL-safe X-Registry-Auth: {e}"));
}

// ------------------------------------------------------------------ IMDS stub

async fn stub_token(stub: &ImdsStub) -> String {
    let response = http::put(stub.endpoint(), TOKEN_PATH, &[TTL])
        .await
        .expect("PUT token");
    assert_eq!(response.status, 200, "PUT token: {response:?}");
    response.body
}

#[tokio::test]
async fn imds_stub_refuses_get_without_token() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let response = http::get(stub.endpoint(), "/latest/meta-data/instance-id", &[])
        .await
        .expect("GET");
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn imds_stub_refuses_get_with_bogus_token() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    stub_token(&stub).await;
    let bogus = [("X-aws-ec2-metadata-token", "bogus")];
    let response = http::get(stub.endpoint(), "/latest/meta-data/instance-id", &bogus)
        .await
        .expect("GET");
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn imds_stub_serves_metadata_after_token_put() {
    let config = ImdsConfig {
        instance_id: "i-0feedfacecafe0001".into(),
        ..ImdsConfig::default()
    };
    let stub = ImdsStub::start(config).await;
    let response = http::put(stub.endpoint(), TOKEN_PATH, &[TTL])
        .await
        .expect("PUT");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    let token = [("X-aws-ec2-metadata-token", response.body.as_str())];

    let get = |path: &'static str| http::get(stub.endpoint(), path, &token);
    let id = get("/latest/meta-data/instance-id").await.expect("GET");
    assert_eq!((id.status, id.body.as_str()), (200, "i-0feedfacecafe0001"));
    let vpc = get("/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/vpc-id")
        .await
        .expect("GET");
    assert_eq!(
        (vpc.status, vpc.body.as_str()),
        (200, "vpc-0123456789abcdef0")
    );
    let user_data = get("/latest/user-data").await.expect("GET");
    assert_eq!(user_data.status, 404);
    assert_eq!(stub.tokens_issued(), 1);
    assert_eq!(stub.count("/latest/meta-data/instance-id"), 1);
}

#[tokio::test]
async fn imds_stub_rejects_token_put_without_ttl_header() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let response = http::put(stub.endpoint(), TOKEN_PATH, &[])
        .await
        .expect("PUT");
    assert_eq!(response.status, 400);
    let too_long = [("X-aws-ec2-metadata-token-ttl-seconds", "21601")];
    let response = http::put(stub.endpoint(), TOKEN_PATH, &too_long)
        .await
        .expect("PUT");
    assert_eq!(response.status, 400);
    assert_eq!(stub.tokens_issued(), 0);
}

#[tokio::test]
async fn imds_stub_refuses_forwarded_token_put() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let headers = [TTL, ("X-Forwarded-For", "10.1.2.3")];
    let response = http::put(stub.endpoint(), TOKEN_PATH, &headers)
        .await
        .expect("PUT");
    assert_eq!(response.status, 403);
}

#[tokio::test]
async fn imds_stub_allows_only_get_and_put() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let response = http::request("POST", stub.endpoint(), TOKEN_PATH, &[TTL], "")
        .await
        .expect("POST");
    assert_eq!(response.status, 405);
}

#[tokio::test]
async fn imds_stub_rejects_expired_tokens() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let token = stub_token(&stub).await;
    stub.expire_tokens();
    let headers = [("X-aws-ec2-metadata-token", token.as_str())];
    let response = http::get(stub.endpoint(), DOCUMENT_PATH, &headers)
        .await
        .expect("GET");
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn imds_stub_formats_identity_document_like_ec2() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let token = stub_token(&stub).await;
    let headers = [("X-aws-ec2-metadata-token", token.as_str())];
    let response = http::get(stub.endpoint(), DOCUMENT_PATH, &headers)
        .await
        .expect("GET");
    assert_eq!(response.status, 200);
    assert!(response
        .body
        .starts_with("{\n  \"accountId\" : \"123456789012\",\n"));
    assert!(response.body.ends_with("\"version\" : \"2017-09-30\"\n}"));
    let doc: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
    assert_eq!(doc["instanceId"], "i-0123456789abcdef0");
    assert_eq!(doc["region"], "us-west-2");
    assert_eq!(doc["availabilityZone"], "us-west-2a");
    assert!(doc["kernelId"].is_null());
}

#[tokio::test]
async fn imds_stub_lists_role_and_serves_its_credentials() {
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let token = stub_token(&stub).await;
    let headers = [("X-aws-ec2-metadata-token", token.as_str())];
    let base = "/latest/meta-data/iam/security-credentials/";
    let roles = http::get(stub.endpoint(), base, &headers)
        .await
        .expect("GET");
    assert_eq!(
        (roles.status, roles.body.as_str()),
        (200, "ecsInstanceRole")
    );
    let creds = http::get(stub.endpoint(), &format!("{base}ecsInstanceRole"), &headers)
        .await
        .expect("GET");
    assert_eq!(creds.status, 200);
    let creds: serde_json::Value = serde_json::from_str(&creds.body).expect("JSON");
    assert_eq!(creds["Code"], "Success");
    assert_eq!(creds["Type"], "AWS-HMAC");
    assert_eq!(creds["AccessKeyId"], "ASIAIMDSSTUBEXAMPLE1");
    let expiration = creds["Expiration"].as_str().expect("Expiration");
    assert!(
        expiration.len() == 20 && expiration.ends_with('Z'),
        "{expiration}"
    );
}

/// The SDK's own IMDS credentials provider accepts the stub: token flow,
/// TTL echo and credential JSON are all as it expects.
#[tokio::test]
async fn sdk_imds_credentials_provider_reads_credentials_from_stub() {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let stub = ImdsStub::start(ImdsConfig::default()).await;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let provider_config =
        aws_config::provider_config::ProviderConfig::without_region().with_http_client(http_client);
    let imds = aws_config::imds::Client::builder()
        .configure(&provider_config)
        .endpoint(stub.endpoint())
        .expect("endpoint")
        .build();
    let provider = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .configure(&provider_config)
        .imds_client(imds)
        .build();
    let credentials = provider.provide_credentials().await.expect("credentials");
    assert_eq!(credentials.access_key_id(), "ASIAIMDSSTUBEXAMPLE1");
    assert_eq!(credentials.session_token(), Some("imds-stub-session-token"));
    assert!(stub.tokens_issued() >= 1);
}

#[test]
fn rfc3339_formats_known_instants() {
    use std::time::{Duration, UNIX_EPOCH};
    let at = |secs| support::imds::rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
}
