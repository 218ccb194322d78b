//! The task credentials endpoint over real HTTP on 127.0.0.1: bodies and error JSON exactly as
//! the official agent's, the per-client rate limit, the audit log.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ecs_agent::credentials::{Entry, RoleType, Store};
use ecs_agent::endpoints::audit::AuditLog;
use ecs_agent::endpoints::credentials::{serve_on, CredentialsApi};
use ecs_agent::endpoints::ratelimit::RateLimiter;
use ecs_agent::model::RoleCredentials;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start(store: Store, steady: u32, burst: u32) -> (String, Buffer) {
    let audit_buf = Buffer::default();
    let api = Arc::new(CredentialsApi {
        store,
        limiter: RateLimiter::new(steady, burst),
        audit: AuditLog::new(
            Some(Box::new(audit_buf.clone())),
            "prod",
            "arn:aws:ecs:us-west-2:123456789012:container-instance/prod/abc",
        ),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(listener, api));
    (format!("http://{addr}"), audit_buf)
}

fn store_with_one() -> Store {
    let store = Store::default();
    store.put(Entry {
        task_arn: "arn:aws:ecs:us-west-2:123456789012:task/prod/t1".into(),
        role_type: RoleType::Task,
        credentials: RoleCredentials {
            credentials_id: "cid-1".into(),
            role_arn: "arn:aws:iam::123456789012:role/app".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "SECRETKEY".into(),
            session_token: "SESSIONTOKEN".into(),
            expiration: "2026-11-26T20:00:00Z".into(),
            credential_scope: None,
        },
    });
    store
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let r = support::http::get(base, path, &[]).await.expect("request");
    (r.status, r.body)
}

#[tokio::test]
async fn v2_and_v1_serve_the_credentials_json_of_the_official_agent() {
    let (base, audit) = start(store_with_one(), 40, 60).await;
    let expected = r#"{"RoleArn":"arn:aws:iam::123456789012:role/app","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRETKEY","Token":"SESSIONTOKEN","Expiration":"2026-11-26T20:00:00Z"}"#;
    assert_eq!(
        get(&base, "/v2/credentials/cid-1").await,
        (200, expected.to_owned())
    );
    assert_eq!(
        get(&base, "/v1/credentials?id=cid-1").await,
        (200, expected.to_owned())
    );
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(" 200 127.0.0.1:"), "{}", lines[0]);
    assert!(lines[0].contains("\"/v2/credentials\""), "{}", lines[0]);
    assert!(lines[0].ends_with("arn:aws:ecs:us-west-2:123456789012:task/prod/t1 GetCredentials 2 prod arn:aws:ecs:us-west-2:123456789012:container-instance/prod/abc"), "{}", lines[0]);
    assert!(
        !log.contains("SECRETKEY") && !log.contains("SESSIONTOKEN"),
        "no secret in the audit log"
    );
}

#[tokio::test]
async fn errors_carry_the_official_codes_and_statuses() {
    let store = store_with_one();
    store.mark_pending(
        "arn:aws:ecs:us-west-2:123456789012:task/prod/t0",
        RoleType::Task,
        "cid-restored",
    );
    let (base, _) = start(store, 40, 60).await;
    assert_eq!(
        get(&base, "/v2/credentials").await,
        (400, r#"{"code":"NoIdInRequest","message":"CredentialsV2Request: No Credential ID in the request","HTTPErrorCode":400}"#.to_owned())
    );
    assert_eq!(
        get(&base, "/v1/credentials").await,
        (400, r#"{"code":"NoIdInRequest","message":"CredentialsV1Request: No Credential ID in the request","HTTPErrorCode":400}"#.to_owned())
    );
    assert_eq!(
        get(&base, "/v2/credentials/nope").await,
        (400, r#"{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found","HTTPErrorCode":400}"#.to_owned())
    );
    let (status, body) = get(&base, "/v2/credentials/cid-restored").await;
    assert_eq!(
        status, 503,
        "known after a restart but not yet resent: 503, never 400"
    );
    assert!(body.contains("CredentialsUninitialized"), "{body}");
}

#[tokio::test]
async fn a_client_past_its_rate_limit_gets_the_official_429_and_an_audit_line() {
    let (base, audit) = start(store_with_one(), 1, 3).await;
    let mut responses = Vec::new();
    for _ in 0..5 {
        let r = support::http::get(&base, "/v2/credentials/cid-1", &[("User-Agent", "sdk/1")])
            .await
            .expect("request");
        responses.push(r);
    }
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    let throttled = responses
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no 429: {statuses:?}"));
    assert_eq!(throttled.body, "You have reached maximum request limit.");
    assert_eq!(
        throttled.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "every request audited, throttled ones too:\n{log}"
    );
    let throttled_lines: Vec<&&str> = lines.iter().filter(|l| l.contains(" 429 ")).collect();
    assert_eq!(
        throttled_lines.len(),
        statuses.iter().filter(|s| **s == 429).count()
    );
    for line in throttled_lines {
        // `<time> 429 <client> "/v2/credentials" "<user agent>" - ` and no event fields.
        let (_time, rest) = line.split_once(' ').unwrap();
        assert!(rest.starts_with("429 127.0.0.1:"), "{line}");
        assert!(
            rest.ends_with(" \"/v2/credentials\" \"sdk/1\" - "),
            "the path without the ID, no task, no event fields: {line:?}"
        );
    }
    assert!(!log.contains("cid-1"), "no credentials ID in the audit log");
}
