//! The control-plane simulator (`support::ecs_sim`) is as strict as ECS.
//!
//! Driven with the real AWS SDK, raw signed HTTP requests and websocket
//! clients, it accepts what the official agent sends (the captured
//! registration, verbatim) and refuses bad signatures, tampered bodies,
//! requests that break the model, unknown clusters and instances, malformed
//! upgrades and invalid ACS/TCS frames. Every refusal here is one a broken
//! agent would hit, so these tests can fail.

mod support;

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::operation::register_container_instance::builders::RegisterContainerInstanceFluentBuilder;
use aws_sdk_ecs::types::{Attribute, ContainerStateChange, Resource};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

use support::ecs_sim::{sigv4 as sim_sigv4, EcsSim, SimConfig, WsKind};
use support::http;
use support::imds::{identity_document, ImdsConfig};

const WAIT: Duration = Duration::from_secs(5);
const TASK: &str = "arn:aws:ecs:us-west-2:123456789012:task/test/11111111111111111111111111111111";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

// ---- helpers: the SDK, raw signed requests, websocket clients

async fn ecs_client(
    sim: &EcsSim,
    access_key: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_sdk_ecs::Client {
    let c = sim.config();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .credentials_provider(Credentials::new(
            access_key,
            secret,
            token.map(String::from),
            None,
            "sim",
        ))
        .region(Region::new(c.region.clone()))
        .endpoint_url(sim.endpoint())
        .load()
        .await;
    aws_sdk_ecs::Client::new(&sdk)
}

async fn good_client(sim: &EcsSim) -> aws_sdk_ecs::Client {
    let c = sim.config();
    let token = c.session_token.as_deref();
    ecs_client(sim, &c.access_key_id, &c.secret_access_key, token).await
}

fn attribute(name: &str, value: Option<&str>) -> Attribute {
    Attribute::builder()
        .name(name)
        .set_value(value.map(String::from))
        .build()
        .unwrap()
}

fn registration(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
) -> RegisterContainerInstanceFluentBuilder {
    let resource = |name: &str, n: i32| {
        Resource::builder()
            .name(name)
            .r#type("INTEGER")
            .integer_value(n)
            .build()
    };
    client
        .register_container_instance()
        .cluster(cluster)
        .instance_identity_document(identity_document(&ImdsConfig::default()))
        .instance_identity_document_signature("ZmFrZS1zaWduYXR1cmU=")
        .total_resources(resource("CPU", 2048))
        .total_resources(resource("MEMORY", 3768))
        .total_resources(
            Resource::builder()
                .name("PORTS")
                .r#type("STRINGSET")
                .string_set_value("22")
                .build(),
        )
        .attributes(attribute("ecs.os-type", Some("linux")))
        .attributes(attribute("ecs.capability.container-ordering", None))
}

async fn registered(sim: &EcsSim) -> String {
    let out = registration(&good_client(sim).await, "test")
        .send()
        .await
        .expect("register");
    out.container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_string()
}

fn host(sim: &EcsSim) -> String {
    sim.endpoint().trim_start_matches("http://").to_string()
}

/// SigV4 headers (authorization, x-amz-date, …) for a request, signed the SDK's way.
fn sign_request(
    sim: &EcsSim,
    secret: &str,
    at: SystemTime,
    req: (&str, &str),
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let c = sim.config();
    let identity = Credentials::new(
        &c.access_key_id,
        secret,
        c.session_token.clone(),
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&c.region)
        .name("ecs")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        req.0,
        req.1,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let headers = instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    headers.collect()
}

/// A raw ECS API call whose signature covers `signed_body` but which carries `sent_body`.
async fn raw_api_at(
    sim: &EcsSim,
    target: &str,
    sent_body: &str,
    signed_body: &str,
    at: SystemTime,
) -> (u16, Value) {
    let host = host(sim);
    let target = format!("AmazonEC2ContainerServiceV20141113.{target}");
    let content_type = "application/x-amz-json-1.1";
    let base = [
        ("content-type", content_type),
        ("host", host.as_str()),
        ("x-amz-target", target.as_str()),
    ];
    let url = format!("{}/", sim.endpoint());
    let auth = sign_request(
        sim,
        &sim.config().secret_access_key,
        at,
        ("POST", &url),
        &base,
        signed_body.as_bytes(),
    );
    let mut headers = vec![
        ("Content-Type", content_type),
        ("X-Amz-Target", target.as_str()),
    ];
    headers.extend(auth.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let response = http::request("POST", sim.endpoint(), "/", &headers, sent_body)
        .await
        .unwrap();
    (
        response.status,
        serde_json::from_str(&response.body).unwrap_or(Value::Null),
    )
}

async fn raw_api(sim: &EcsSim, target: &str, body: &str) -> (u16, Value) {
    raw_api_at(sim, target, body, body, SystemTime::now()).await
}

fn acs_query(arn: &str) -> Vec<(&'static str, String)> {
    vec![
        ("agentHash", "a8b3e7d3".into()),
        ("agentVersion", "1.105.1".into()),
        ("clusterArn", "test".into()),
        ("containerInstanceArn", arn.into()),
        ("dockerVersion", "DockerVersion: 20.10.24+dfsg1".into()),
        ("protocolVersion", "2".into()),
        ("sendCredentials", "true".into()),
        ("seqNum", "1".into()),
    ]
}

fn tcs_query(arn: &str) -> Vec<(&'static str, String)> {
    vec![
        ("agentHash", "a8b3e7d3".into()),
        ("agentVersion", "1.105.1".into()),
        ("cluster", "test".into()),
        ("containerInstance", arn.into()),
        ("dockerVersion", "20.10.24+dfsg1".into()),
    ]
}

/// Go's `url.Values.Encode`: sorted, form-encoded (space as `+`).
fn encode(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    parts.sort();
    parts.join("&")
}

/// Opens `path?query`, signed with `secret` (unsigned if `None`), as rust-dependencies.md §6 does.
async fn ws_connect(
    sim: &EcsSim,
    path_and_query: &str,
    secret: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let host = host(sim);
    let mut req = format!("ws://{host}{path_and_query}")
        .into_client_request()
        .unwrap();
    if let Some(secret) = secret {
        let uri = req.uri().to_string();
        let signed = sign_request(
            sim,
            secret,
            SystemTime::now(),
            ("GET", &uri),
            &[("host", &host)],
            b"",
        );
        for (k, v) in signed {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn acs_connect(sim: &EcsSim, arn: &str) -> Ws {
    let path = format!("/acs/ws?{}", encode(&acs_query(arn)));
    ws_connect(sim, &path, Some(&sim.config().secret_access_key))
        .await
        .expect("ACS upgrade")
}

/// The HTTP status and bare `{"<Exception>":"…"}` body of a refused upgrade.
fn refusal(result: Result<Ws, tungstenite::Error>) -> (u16, Value) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

async fn next_text(ws: &mut Ws) -> Value {
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time");
    match frame {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A TCS frame as the Go agent builds it: signed GET of the TCS URL with the JSON as body.
fn tcs_frame(sim: &EcsSim, path_and_query: &str, signed_json: &str, sent_json: &str) -> String {
    let host = host(sim);
    let url = format!("https://{host}{path_and_query}");
    let secret = &sim.config().secret_access_key;
    let signed = sign_request(
        sim,
        secret,
        SystemTime::now(),
        ("GET", &url),
        &[("host", &host)],
        signed_json.as_bytes(),
    );
    let get = |name: &str| {
        signed
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    format!(
        "Authorization: {}\r\nHost: {host}\r\nX-Amz-Date: {}\r\n\r\n{sent_json}",
        get("authorization"),
        get("x-amz-date")
    )
}

fn code(body: &Value) -> &str {
    body["__type"].as_str().unwrap_or_default()
}

// ---- the simulator's own primitives

#[test]
fn sha256_and_amz_dates_are_right() {
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(sim_sigv4::sha256_hex(b""), empty);
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(sim_sigv4::sha256_hex(b"abc"), abc);
    let t = sim_sigv4::parse_amz_date("20261126T121105Z").unwrap();
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        1_795_695_065
    );
    assert_eq!(sim_sigv4::format_amz_date(t), "20261126T121105Z");
    assert!(sim_sigv4::parse_amz_date("2026-11-26T12:11:05Z").is_none());
}

/// The signatures the official Go agent computed in wire-captures.md §4 and §6 verify here.
#[test]
fn captured_go_signatures_verify() {
    let id = sim_sigv4::Identity {
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
        region: "us-east-1".into(),
        service: "ecs".into(),
    };
    let at = sim_sigv4::parse_amz_date("20261126T121105Z").unwrap();
    let credential = "AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/ecs/aws4_request";
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let register_auth = format!(
        "{credential}, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-target, Signature=1980597f7840378b76de3252adb6f7a30e4297d63a65d1227de3c28cf7be6619"
    );
    let mut headers = pairs(&[
        ("Host", "127.0.0.1:17080"),
        (
            "User-Agent",
            "Amazon ECS Agent - v1.105.1 (*a8b3e7d3) (linux; LINUX) (+http://aws.amazon.com/ecs/)",
        ),
        ("Content-Length", "3553"),
        (
            "Amz-Sdk-Invocation-Id",
            "18b0b2e9-e755-46fc-ad02-9822a761c043",
        ),
        ("Amz-Sdk-Request", "attempt=1; max=3"),
        ("Authorization", &register_auth),
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Date", "20261126T121105Z"),
        (
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.RegisterContainerInstance",
        ),
        ("Accept-Encoding", "gzip"),
    ]);
    let register = |headers: &[(String, String)], body: &str| {
        let req = sim_sigv4::Received {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: body.as_bytes(),
        };
        sim_sigv4::verify(&req, &id, at)
    };
    assert_eq!(register(&headers, CAPTURED_REGISTRATION), Ok(()));
    assert!(register(
        &headers,
        &CAPTURED_REGISTRATION.replace("us-east-1a", "us-east-1b")
    )
    .is_err());
    headers[4].1 = "attempt=2; max=3".into();
    assert!(register(&headers, CAPTURED_REGISTRATION).is_err());

    let acs_auth = format!(
        "{credential}, SignedHeaders=host;x-amz-date, Signature=5ad12f2558f9f9a6efc321b36f10c9bca879eb6896071fe1a9e83d530fa974f6"
    );
    let query = "agentHash=a8b3e7d3&agentVersion=1.105.1&clusterArn=test&containerInstanceArn=arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acontainer-instance%2Ftest%2F0123456789abcdef0123456789abcdef&dockerVersion=DockerVersion%3A+20.10.24%2Bdfsg1&protocolVersion=2&sendCredentials=true&seqNum=1";
    let headers = pairs(&[
        ("Host", "127.0.0.1:17080"),
        ("User-Agent", "Go-http-client/1.1"),
        ("Authorization", &acs_auth),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "1JMKkxPozVlUgI4k8YNYmg=="),
        ("Sec-WebSocket-Version", "13"),
        ("Upgrade", "websocket"),
        ("X-Amz-Date", "20261126T121105Z"),
    ]);
    let upgrade = |query: &str| {
        let req = sim_sigv4::Received {
            method: "GET",
            path: "/acs/ws",
            query,
            headers: &headers,
            body: b"",
        };
        sim_sigv4::verify(&req, &id, at)
    };
    assert_eq!(upgrade(query), Ok(()));
    assert!(upgrade(&query.replace("sendCredentials=true", "sendCredentials=false")).is_err());
    let later = at + Duration::from_secs(301);
    let req = sim_sigv4::Received {
        method: "GET",
        path: "/acs/ws",
        query,
        headers: &headers,
        body: b"",
    };
    assert!(
        matches!(sim_sigv4::verify(&req, &id, later), Err(sim_sigv4::AuthError::Invalid(m)) if m.contains("expired"))
    );
}

// ---- the ECS API with the real SDK

#[tokio::test]
async fn registration_echoes_attributes_and_zone_and_keeps_an_issued_arn() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let client = good_client(&sim).await;
    let out = registration(&client, "test")
        .send()
        .await
        .expect("register");
    let ci = out.container_instance().expect("containerInstance");
    let arn = ci.container_instance_arn().unwrap().to_string();
    let id = arn
        .strip_prefix("arn:aws:ecs:us-west-2:123456789012:container-instance/test/")
        .unwrap_or_else(|| panic!("unexpected ARN {arn}"));
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let attributes: Vec<(&str, Option<&str>)> = ci
        .attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .collect();
    assert!(
        attributes.contains(&("ecs.os-type", Some("linux"))),
        "{attributes:?}"
    );
    assert!(attributes.contains(&("ecs.capability.container-ordering", None)));
    assert!(attributes.contains(&("ecs.availability-zone", Some("us-west-2a"))));
    assert_eq!(ci.status(), Some("ACTIVE"));
    assert_eq!(ci.ec2_instance_id(), Some("i-0123456789abcdef0"));
    assert_eq!(ci.registered_resources().len(), 3);
    assert_eq!(ci.registered_resources(), ci.remaining_resources());

    let again = registration(&client, "test")
        .container_instance_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.container_instance().unwrap().container_instance_arn(),
        Some(arn.as_str())
    );
    let fresh = registration(&client, "test").send().await.unwrap();
    assert_ne!(
        fresh.container_instance().unwrap().container_instance_arn(),
        Some(arn.as_str())
    );
    let bodies = sim.registrations();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[1].body["containerInstanceArn"], arn.as_str());
    assert_eq!(bodies[0].body["totalResources"][0]["integerValue"], 2048);
}

#[tokio::test]
async fn poll_endpoint_is_discovered_only_for_a_registered_instance() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let client = good_client(&sim).await;
    let arn = registered(&sim).await;
    let out = client
        .discover_poll_endpoint()
        .cluster("test")
        .container_instance(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.endpoint(),
        Some(format!("{}/acs/", sim.endpoint()).as_str())
    );
    assert_eq!(
        out.telemetry_endpoint(),
        Some(format!("{}/tcs/", sim.endpoint()).as_str())
    );

    let unknown = arn.replace(&arn[arn.len() - 32..], &"f".repeat(32));
    let err = client
        .discover_poll_endpoint()
        .cluster("test")
        .container_instance(unknown)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterException"), "{err:?}");
}

#[tokio::test]
async fn task_state_changes_are_acked_for_known_tasks_and_recorded() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let client = good_client(&sim).await;
    sim.add_known_task(TASK, &["sleeper"]);
    let change = |name: &str| {
        ContainerStateChange::builder()
            .container_name(name)
            .runtime_id("dd5069a1")
            .status("RUNNING")
            .build()
    };
    let before = SystemTime::now();
    let out = client
        .submit_task_state_change()
        .cluster("test")
        .task(TASK)
        .status("RUNNING")
        .reason("")
        .containers(change("sleeper"))
        .send()
        .await
        .expect("submit");
    assert_eq!(out.acknowledgment(), Some("ACK"));
    let recorded = sim.task_state_changes();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].at >= before);
    assert_eq!(
        recorded[0].body["containers"][0]["containerName"],
        "sleeper"
    );
    assert_eq!(recorded[0].body["status"], "RUNNING");

    let unknown_task = client
        .submit_task_state_change()
        .cluster("test")
        .task(format!("{TASK}0"))
        .status("RUNNING")
        .send();
    assert_eq!(
        unknown_task.await.unwrap_err().code(),
        Some("InvalidParameterException")
    );
    let stranger = client
        .submit_task_state_change()
        .cluster("test")
        .task(TASK)
        .containers(change("other"))
        .send();
    assert_eq!(
        stranger.await.unwrap_err().code(),
        Some("InvalidParameterException")
    );
    let bad_status = client
        .submit_task_state_change()
        .cluster("test")
        .task(TASK)
        .status("CREATED")
        .send();
    assert_eq!(
        bad_status.await.unwrap_err().code(),
        Some("InvalidParameterException")
    );
    let long_reason = client
        .submit_task_state_change()
        .cluster("test")
        .task(TASK)
        .reason("x".repeat(1025))
        .send();
    assert_eq!(
        long_reason.await.unwrap_err().code(),
        Some("InvalidParameterException")
    );
    assert_eq!(sim.task_state_changes().len(), 1);
}

#[tokio::test]
async fn wrong_secret_or_unknown_key_is_refused() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let wrong_secret = ecs_client(&sim, &sim.config().access_key_id, "not-the-secret", None).await;
    let err = registration(&wrong_secret, "test")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
    let unknown_key = ecs_client(
        &sim,
        "AKIDSOMEBODYELSE0001",
        &sim.config().secret_access_key,
        None,
    )
    .await;
    let err = registration(&unknown_key, "test").send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    assert!(sim.registrations().is_empty());
    let statuses: Vec<u16> = sim.api_calls().iter().map(|c| c.status).collect();
    assert!(
        statuses.contains(&403) && statuses.contains(&400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_configured_session_token_is_required_on_api_and_websockets() {
    let config = SimConfig {
        session_token: Some("session-token-1".into()),
        ..SimConfig::default()
    };
    let sim = EcsSim::start(config).await;
    let arn = registered(&sim).await;
    let (key, secret) = (&sim.config().access_key_id, &sim.config().secret_access_key);
    for token in [None, Some("session-token-2")] {
        let client = ecs_client(&sim, key, secret, token).await;
        let err = registration(&client, "test").send().await.unwrap_err();
        assert_eq!(err.code(), Some("UnrecognizedClientException"), "{token:?}");
    }
    acs_connect(&sim, &arn).await;
    let upgrade = &sim.upgrades()[0];
    assert!(upgrade.accepted, "{upgrade:?}");
}

#[tokio::test]
async fn body_changed_after_signing_or_stale_signature_is_refused() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let signed = r#"{"clusters":["test"]}"#;
    let (status, body) =
        raw_api_at(&sim, "DescribeClusters", signed, signed, SystemTime::now()).await;
    assert_eq!(status, 200, "{body}");
    let tampered = r#"{"clusters":["evil"]}"#;
    let (status, body) = raw_api_at(
        &sim,
        "DescribeClusters",
        tampered,
        signed,
        SystemTime::now(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "InvalidSignatureException"),
        "{body}"
    );
    let stale = SystemTime::now() - Duration::from_secs(600);
    let (status, body) = raw_api_at(&sim, "DescribeClusters", signed, signed, stale).await;
    assert_eq!(
        (status, code(&body)),
        (403, "InvalidSignatureException"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Signature expired"),
        "{body}"
    );
    let unsigned = http::request(
        "POST",
        sim.endpoint(),
        "/",
        &[(
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.DescribeClusters",
        )],
        signed,
    );
    let response = unsigned.await.unwrap();
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(code(&body), "IncompleteSignatureException", "{body}");
}

#[tokio::test]
async fn requests_that_break_the_model_are_refused_naming_the_field() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let arn = registered(&sim).await;
    let no_status = json!({"cluster": "test", "containerInstances": [arn]}).to_string();
    let (status, body) = raw_api(&sim, "UpdateContainerInstancesState", &no_status).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidParameterException"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("'status'"),
        "{body}"
    );

    let nameless =
        json!({"cluster": "test", "attributes": [{"name": "a"}, {"value": "x"}]}).to_string();
    let (_, body) = raw_api(&sim, "RegisterContainerInstance", &nameless).await;
    assert_eq!(code(&body), "InvalidParameterException", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("attributes[1].name"),
        "{body}"
    );

    let bad_enum =
        json!({"cluster": "test", "containerInstances": [arn], "status": "SLEEPING"}).to_string();
    let (_, body) = raw_api(&sim, "UpdateContainerInstancesState", &bad_enum).await;
    assert_eq!(code(&body), "InvalidParameterException", "{body}");
    let wrong_type = json!({"cluster": 5}).to_string();
    assert_eq!(
        code(&raw_api(&sim, "DescribeClusters", &wrong_type).await.1),
        "SerializationException"
    );
    let typo = json!({"cluster": "test", "containerInstanceARN": arn}).to_string();
    assert_eq!(
        code(&raw_api(&sim, "DiscoverPollEndpoint", &typo).await.1),
        "SerializationException"
    );
    assert_eq!(
        code(&raw_api(&sim, "ListClusters", "{}").await.1),
        "UnknownOperationException"
    );
}

#[tokio::test]
async fn unknown_cluster_is_not_found_until_default_is_created() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let client = good_client(&sim).await;
    let err = registration(&client, "nope").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ClusterNotFoundException"), "{err:?}");
    assert_eq!(err.message(), Some("Cluster not found."));
    let err = registration(&client, "default").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ClusterNotFoundException"));
    client
        .create_cluster()
        .cluster_name("default")
        .send()
        .await
        .expect("create default");
    let out = registration(&client, "default")
        .send()
        .await
        .expect("register in default");
    let arn = out
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap();
    assert!(arn.contains(":container-instance/default/"), "{arn}");
}

#[tokio::test]
async fn outage_and_throttling_are_injected_and_recorded() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let body = r#"{"clusters":["test"]}"#;
    sim.set_api_outage(true);
    let (status, answer) = raw_api(&sim, "DescribeClusters", body).await;
    assert_eq!(
        (status, code(&answer)),
        (503, "ServiceUnavailableException")
    );
    sim.set_api_outage(false);
    sim.throttle_next(2);
    for _ in 0..2 {
        let (status, answer) = raw_api(&sim, "DescribeClusters", body).await;
        assert_eq!((status, code(&answer)), (400, "ThrottlingException"));
    }
    assert_eq!(raw_api(&sim, "DescribeClusters", body).await.0, 200);

    sim.throttle_next(1);
    good_client(&sim)
        .await
        .describe_clusters()
        .clusters("test")
        .send()
        .await
        .expect("the SDK retries a throttle");
    let errors: Vec<Option<String>> = sim.api_calls().into_iter().map(|c| c.error).collect();
    assert_eq!(
        errors[errors.len() - 2..],
        [Some("ThrottlingException".into()), None]
    );
}

/// wire-captures.md §4, byte for byte (Content-Length 3553).
const CAPTURED_REGISTRATION: &str = r#"{"attributes":[{"name":"ecs.capability.private-registry-authentication.secretsmanager"},{"name":"ecs.capability.secrets.ssm.environment-variables"},{"name":"ecs.capability.secrets.ssm.bootstrap.log-driver"},{"name":"ecs.capability.ecr-endpoint"},{"name":"ecs.capability.secrets.asm.environment-variables"},{"name":"ecs.capability.secrets.asm.bootstrap.log-driver"},{"name":"ecs.capability.container-ordering"},{"name":"ecs.capability.full-sync"},{"name":"ecs.capability.env-files.s3"},{"name":"ecs.capability.network.container-port-range"},{"name":"ecs.capability.container-restart-policy"},{"name":"com.amazonaws.ecs.capability.privileged-container"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.17"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.18"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.19"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.20"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.21"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.22"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.23"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.24"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.25"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.28"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.29"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.30"},{"name":"com.amazonaws.ecs.capability.docker-remote-api.1.32"},{"name":"com.amazonaws.ecs.capability.logging-driver.json-file"},{"name":"com.amazonaws.ecs.capability.logging-driver.none"},{"name":"com.amazonaws.ecs.capability.ecr-auth"},{"name":"ecs.capability.execution-role-ecr-pull"},{"name":"ecs.capability.container-health-check"},{"name":"ecs.capability.docker-plugin.local"},{"name":"ecs.capability.aws-appmesh"},{"name":"ecs.capability.task-eia"},{"name":"ecs.capability.task-eia.optimized-cpu"},{"name":"ecs.capability.firelens.fluentd"},{"name":"ecs.capability.firelens.fluentbit"},{"name":"com.amazonaws.ecs.capability.logging-driver.awsfirelens"},{"name":"ecs.capability.logging-driver.awsfirelens.log-driver-buffer-limit"},{"name":"ecs.capability.firelens.non-root-user"},{"name":"ecs.capability.efs"},{"name":"ecs.capability.storage.s3-files"},{"name":"ecs.capability.firelens.options.config.file"},{"name":"ecs.capability.firelens.options.config.s3"},{"name":"ecs.capability.storage.ebsta-non-root-user"},{"name":"ecs.capability.ipv6-only"},{"name":"ecs.os-type","value":"linux"},{"name":"ecs.os-family","value":"LINUX"},{"name":"ecs.os-type-detailed","value":"LINUX"}],"clientToken":"13a4a013-266b-4090-a715-3ebcff413a24","cluster":"test","instanceIdentityDocument":"{\n  \"accountId\": \"123456789012\",\n  \"architecture\": \"x86_64\",\n  \"availabilityZone\": \"us-east-1a\",\n  \"billingProducts\": null,\n  \"devpayProductCodes\": null,\n  \"marketplaceProductCodes\": null,\n  \"imageId\": \"ami-0123456789abcdef0\",\n  \"instanceId\": \"i-0123456789abcdef0\",\n  \"instanceType\": \"m5.large\",\n  \"kernelId\": null,\n  \"pendingTime\": \"2026-01-01T00:00:00Z\",\n  \"privateIp\": \"10.0.0.10\",\n  \"ramdiskId\": null,\n  \"region\": \"us-east-1\",\n  \"version\": \"2017-09-30\"\n}","instanceIdentityDocumentSignature":"ZmFrZS1zaWduYXR1cmU=","totalResources":[{"integerValue":2048,"name":"CPU","type":"INTEGER"},{"integerValue":24105,"name":"MEMORY","type":"INTEGER"},{"name":"PORTS","stringSetValue":["22","2375","2376","51678","51679"],"type":"STRINGSET"},{"name":"PORTS_UDP","stringSetValue":[],"type":"STRINGSET"}]}"#;

#[tokio::test]
async fn the_official_agents_captured_exchange_is_accepted() {
    assert_eq!(
        CAPTURED_REGISTRATION.len(),
        3553,
        "the capture must be copied verbatim"
    );
    let sim = EcsSim::start(SimConfig {
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
        cluster_names: vec!["test".into()],
        account_id: "123456789012".into(),
    })
    .await;
    let host = host(&sim);
    let length = CAPTURED_REGISTRATION.len().to_string();
    let target = "AmazonEC2ContainerServiceV20141113.RegisterContainerInstance";
    let signed_headers = [
        (
            "amz-sdk-invocation-id",
            "18b0b2e9-e755-46fc-ad02-9822a761c043",
        ),
        ("amz-sdk-request", "attempt=1; max=3"),
        ("content-length", length.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("host", host.as_str()),
        ("x-amz-target", target),
    ];
    let url = format!("{}/", sim.endpoint());
    let auth = sign_request(
        &sim,
        "test",
        SystemTime::now(),
        ("POST", &url),
        &signed_headers,
        CAPTURED_REGISTRATION.as_bytes(),
    );
    let authorization = &auth.iter().find(|(k, _)| k == "authorization").unwrap().1;
    assert!(authorization.contains("SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-target,"));
    let mut headers = vec![
        (
            "User-Agent",
            "Amazon ECS Agent - v1.105.1 (*a8b3e7d3) (linux; LINUX) (+http://aws.amazon.com/ecs/)",
        ),
        ("Amz-Sdk-Invocation-Id", signed_headers[0].1),
        ("Amz-Sdk-Request", signed_headers[1].1),
        ("Content-Type", signed_headers[3].1),
        ("X-Amz-Target", target),
        ("Accept-Encoding", "gzip"),
    ];
    headers.extend(auth.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let response = http::request("POST", sim.endpoint(), "/", &headers, CAPTURED_REGISTRATION)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let answer: Value = serde_json::from_str(&response.body).unwrap();
    let instance = &answer["containerInstance"];
    assert_eq!(instance["attributes"].as_array().unwrap().len(), 49);
    assert!(instance["attributes"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "ecs.availability-zone", "value": "us-east-1a"})));
    let arn = instance["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_string();

    let discover = json!({"cluster": "test", "containerInstance": arn, "zoneId": ""}).to_string();
    let (status, endpoints) = raw_api(&sim, "DiscoverPollEndpoint", &discover).await;
    assert_eq!(status, 200, "{endpoints}");
    // wire-captures.md §6, with this simulator's ARN.
    let encoded_arn = arn.replace(':', "%3A").replace('/', "%2F");
    let acs = format!("/acs/ws?agentHash=a8b3e7d3&agentVersion=1.105.1&clusterArn=test&containerInstanceArn={encoded_arn}&dockerVersion=DockerVersion%3A+20.10.24%2Bdfsg1&protocolVersion=2&sendCredentials=true&seqNum=1");
    let tcs = format!("/tcs/ws?agentHash=a8b3e7d3&agentVersion=1.105.1&cluster=test&containerInstance={encoded_arn}&dockerVersion=20.10.24%2Bdfsg1");
    ws_connect(&sim, &acs, Some("test"))
        .await
        .expect("captured ACS upgrade");
    ws_connect(&sim, &tcs, Some("test"))
        .await
        .expect("captured TCS upgrade");
    let upgrades = sim.upgrades();
    assert!(upgrades.iter().all(|u| u.accepted), "{upgrades:?}");
    assert_eq!(upgrades[0].send_credentials, Some(true));
    assert!(upgrades[0].query.contains(&(
        "dockerVersion".into(),
        "DockerVersion: 20.10.24+dfsg1".into()
    )));
}

// ---- ACS

#[tokio::test]
async fn acs_upgrade_is_refused_unless_signed_and_exact() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let arn = registered(&sim).await;
    let secret = sim.config().secret_access_key.clone();
    let path = |q: &[(&str, String)]| format!("/acs/ws?{}", encode(q));
    let good = acs_query(&arn);

    let (status, body) = refusal(ws_connect(&sim, &path(&good), None).await);
    assert_eq!(status, 403);
    assert!(body["AccessDeniedException"].is_string(), "{body}");
    let (status, body) = refusal(ws_connect(&sim, &path(&good), Some("wrong-secret")).await);
    assert_eq!(status, 403);
    assert!(
        body["AccessDeniedException"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );

    let without_seq: Vec<_> = good
        .iter()
        .filter(|(k, _)| *k != "seqNum")
        .cloned()
        .collect();
    let (_, body) = refusal(ws_connect(&sim, &path(&without_seq), Some(&secret)).await);
    assert!(
        body["BadRequestException"]
            .as_str()
            .unwrap()
            .contains("seqNum"),
        "{body}"
    );
    let replace = |key: &str, value: &str| {
        let mut q = good.clone();
        q.iter_mut()
            .filter(|(k, _)| *k == key)
            .for_each(|(_, v)| *v = value.into());
        q
    };
    for (key, value) in [
        ("protocolVersion", "1"),
        ("sendCredentials", "yes"),
        ("dockerVersion", "20.10.24"),
        ("seqNum", "2"),
        ("agentVersion", "v1.105.1"),
    ] {
        let (status, body) =
            refusal(ws_connect(&sim, &path(&replace(key, value)), Some(&secret)).await);
        assert_eq!(status, 400, "{key}={value}: {body}");
        assert!(
            body["BadRequestException"].as_str().unwrap().contains(key),
            "{body}"
        );
    }
    let mut extra = good.clone();
    extra.push(("debug", "1".into()));
    assert!(
        refusal(ws_connect(&sim, &path(&extra), Some(&secret)).await).1["BadRequestException"]
            .is_string()
    );
    let stranger = replace(
        "containerInstanceArn",
        &arn.replace(&arn[arn.len() - 32..], &"0".repeat(32)),
    );
    let (_, body) = refusal(ws_connect(&sim, &path(&stranger), Some(&secret)).await);
    assert!(body["InvalidInstanceException"].is_string(), "{body}");
    let (_, body) =
        refusal(ws_connect(&sim, &path(&replace("clusterArn", "other")), Some(&secret)).await);
    assert!(body["InvalidClusterException"].is_string(), "{body}");

    assert_eq!(sim.acs_connections(), 0);
    assert!(sim
        .upgrades()
        .iter()
        .all(|u| !u.accepted && u.refusal.is_some()));
    acs_connect(&sim, &arn).await;
    assert_eq!(sim.acs_connections(), 1);
}

#[tokio::test]
async fn acs_frames_are_validated_against_the_model_and_what_was_sent() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let arn = registered(&sim).await;
    let mut ws = acs_connect(&sim, &arn).await;
    assert!(sim.wait_connected(WsKind::Acs, 1, WAIT).await);
    let cluster_arn = "arn:aws:ecs:us-west-2:123456789012:cluster/test";
    let payload = json!({"type": "PayloadMessage", "message": {
        "clusterArn": cluster_arn, "containerInstanceArn": arn, "messageId": "payload-1", "seqNum": 1,
        "tasks": [{"arn": TASK, "desiredStatus": "RUNNING", "containers": [{"name": "sleeper"}]}]}});
    sim.acs_send(payload.clone()).unwrap();
    assert_eq!(next_text(&mut ws).await, payload);

    let ack = |message: Value| {
        Message::text(json!({"type": "AckRequest", "message": message}).to_string())
    };
    let sends = [
        ack(json!({"cluster": cluster_arn, "containerInstance": arn})),
        ack(json!({"cluster": cluster_arn, "containerInstance": arn, "messageId": "payload-9"})),
        ack(json!({"cluster": "test", "containerInstance": arn, "messageId": "payload-1"})),
        ack(json!({"cluster": cluster_arn, "containerInstance": arn, "messageID": "payload-1"})),
        Message::text(
            json!({"type": "PayloadMessage", "message": {"messageId": "payload-1"}}).to_string(),
        ),
        Message::binary(b"{}".to_vec()),
        ack(json!({"cluster": cluster_arn, "containerInstance": arn, "messageId": "payload-1"})),
    ];
    for message in sends {
        ws.send(message).await.unwrap();
    }
    let last = sim
        .wait_acs_frame(|f| f.valid, WAIT)
        .await
        .expect("the good ack");
    assert_eq!(last.message_id(), Some("payload-1"));
    let frames = sim.acs_frames();
    assert_eq!(frames.len(), 7);
    let errors: Vec<&str> = frames
        .iter()
        .map(|f| f.error.as_deref().unwrap_or(""))
        .collect();
    assert!(frames[..6].iter().all(|f| !f.valid), "{errors:?}");
    assert!(errors[0].contains("messageId"), "{errors:?}");
    assert!(errors[1].contains("payload-9"), "{errors:?}");
    assert!(errors[2].contains("cluster"), "{errors:?}");
    assert!(errors[3].contains("messageID"), "{errors:?}");
    assert!(errors[4].contains("PayloadMessage"), "{errors:?}");
    assert!(errors[5].contains("binary"), "{errors:?}");

    // The payload taught the simulator its task.
    let client = good_client(&sim).await;
    client
        .submit_task_state_change()
        .cluster("test")
        .task(TASK)
        .status("RUNNING")
        .send()
        .await
        .expect("known task");
}

#[tokio::test]
async fn acs_heartbeats_close_and_disconnect_are_driven_by_the_test() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let arn = registered(&sim).await;
    let mut ws = acs_connect(&sim, &arn).await;
    assert!(sim.wait_connected(WsKind::Acs, 1, WAIT).await);
    sim.set_heartbeat(WsKind::Acs, Some(Duration::from_millis(50)));
    let heartbeat = next_text(&mut ws).await;
    sim.set_heartbeat(WsKind::Acs, None);
    assert_eq!(heartbeat["type"], "HeartbeatMessage");
    let id = heartbeat["message"]["messageId"].clone();
    let reply = json!({"type": "HeartbeatAckRequest", "message": {"messageId": id}});
    ws.send(Message::text(reply.to_string())).await.unwrap();
    let frame = sim
        .wait_acs_frame(
            |f| f.msg_type.as_deref() == Some("HeartbeatAckRequest"),
            WAIT,
        )
        .await
        .unwrap();
    assert!(frame.valid, "{:?}", frame.error);

    sim.acs_close(1000);
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(close)))) => break assert_eq!(u16::from(close.code), 1000),
            Some(Ok(Message::Text(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let mut ws = acs_connect(&sim, &arn).await;
    assert!(sim.wait_connected(WsKind::Acs, 2, WAIT).await);
    sim.acs_disconnect();
    match tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("disconnect in time")
    {
        Some(Ok(Message::Close(_))) => panic!("acs_disconnect must not send a close frame"),
        Some(Ok(other)) => panic!("unexpected frame {other:?}"),
        Some(Err(_)) | None => {}
    }
    assert_eq!(sim.acs_connections(), 2);
    assert!(sim
        .acs_send(json!({"type": "HeartbeatMessage", "message": {}}))
        .is_err());
}

// ---- TCS

#[tokio::test]
async fn tcs_signed_publishes_are_acked_and_tampered_ones_are_not() {
    let sim = EcsSim::start(SimConfig::default()).await;
    let arn = registered(&sim).await;
    let path = format!("/tcs/ws?{}", encode(&tcs_query(&arn)));
    let (status, body) = refusal(ws_connect(&sim, &path, None).await);
    assert_eq!(
        (status, body["AccessDeniedException"].is_string()),
        (403, true),
        "{body}"
    );
    let mut prefixed = tcs_query(&arn);
    prefixed[4].1 = "DockerVersion: 20.10.24".into();
    let prefixed_path = format!("/tcs/ws?{}", encode(&prefixed));
    let secret = sim.config().secret_access_key.clone();
    assert!(
        refusal(ws_connect(&sim, &prefixed_path, Some(&secret)).await).1["BadRequestException"]
            .is_string()
    );
    let mut ws = ws_connect(&sim, &path, Some(&secret))
        .await
        .expect("TCS upgrade");

    let metadata = json!({"cluster": "test", "containerInstance": arn, "fin": true, "idle": true, "messageId": "m-1"});
    let metrics = json!({"type": "PublishMetricsRequest", "message": {"metadata": metadata, "timestamp": 1795695065.26}}).to_string();
    ws.send(Message::text(tcs_frame(&sim, &path, &metrics, &metrics)))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        json!({"type": "AckPublishMetric", "message": {}})
    );

    let health = json!({"type": "PublishHealthRequest", "message": {
        "metadata": {"cluster": "test", "containerInstance": arn, "fin": true, "messageId": "h-1"}, "timestamp": 1795695065.3}});
    let tampered = health.to_string().replace("h-1", "h-2");
    ws.send(Message::text(tcs_frame(
        &sim,
        &path,
        &health.to_string(),
        &tampered,
    )))
    .await
    .unwrap();
    ws.send(Message::text(metrics.clone())).await.unwrap();
    let status = json!({"type": "PublishInstanceStatusRequest", "message": {
        "metadata": {"cluster": "test", "containerInstance": arn, "requestId": "r-1"},
        "statuses": [{"type": "ContainerRuntime", "status": "OK", "lastUpdated": 1795695065.3, "lastStatusChange": 1795695065.3}],
        "timestamp": 1795695065.3}})
    .to_string();
    ws.send(Message::text(tcs_frame(&sim, &path, &status, &status)))
        .await
        .unwrap();
    // Neither the tampered nor the unsigned frame is acked: the next answer is for the status.
    assert_eq!(
        next_text(&mut ws).await,
        json!({"type": "AckPublishInstanceStatus", "message": {}})
    );

    let frames = sim.tcs_frames();
    let verdicts: Vec<(Option<&str>, bool)> = frames
        .iter()
        .map(|f| (f.msg_type.as_deref(), f.valid))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Some("PublishMetricsRequest"), true),
            (Some("PublishHealthRequest"), false),
            (None, false),
            (Some("PublishInstanceStatusRequest"), true),
        ]
    );
    assert!(
        frames[1].error.as_deref().unwrap().contains("signature"),
        "{:?}",
        frames[1].error
    );
    assert!(
        frames[2].error.as_deref().unwrap().contains("unsigned"),
        "{:?}",
        frames[2].error
    );
    assert_eq!(frames[0].headers[1], ("Host".to_string(), host(&sim)));
}
