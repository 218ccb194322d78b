use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

const BASE: &str = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf";

#[test]
fn asm_references_split_into_their_parts() {
    assert_eq!(
        parse_asm(BASE),
        Ok(AsmRef {
            secret_id: BASE.into(),
            json_key: None,
            version_stage: None,
            version_id: None
        })
    );
    let r = parse_asm(&format!("{BASE}:password::")).unwrap();
    assert_eq!(
        (r.secret_id.as_str(), r.json_key.as_deref(), r.version_stage),
        (BASE, Some("password"), None)
    );
    let r = parse_asm(&format!("{BASE}:password:AWSPREVIOUS:v1")).unwrap();
    assert_eq!(
        (r.version_stage.as_deref(), r.version_id.as_deref()),
        (Some("AWSPREVIOUS"), Some("v1"))
    );
    let r = parse_asm(&format!("{BASE}::AWSCURRENT:")).unwrap();
    assert_eq!(
        (r.json_key, r.version_stage.as_deref()),
        (None, Some("AWSCURRENT"))
    );
    assert_eq!(parse_asm("plain-name").unwrap().secret_id, "plain-name");
}

#[test]
fn asm_arns_with_other_than_2_or_5_resource_fields_are_refused_naming_them() {
    for bad in [
        format!("{BASE}:password"),
        format!("{BASE}:password:AWSCURRENT"),
        format!("{BASE}:password:AWSCURRENT:v1:extra"),
        "arn:aws:secretsmanager:us-west-2:123456789012:secret".to_owned(),
        "arn:aws:secretsmanager:us-west-2:123456789012:notsecret:x".to_owned(),
    ] {
        let e = parse_asm(&bad).expect_err(&bad);
        assert!(e.contains(&bad), "{e}");
    }
}

#[test]
fn regions_come_from_arns() {
    assert_eq!(
        arn_region("arn:aws:ssm:eu-west-1:1:parameter/x").as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(arn_region("/app/db"), None);
}

fn ssm(name: &str, value_from: &str, region: Option<&str>) -> SecretRef {
    SecretRef {
        name: name.into(),
        value_from: value_from.into(),
        provider: Some("ssm".into()),
        region: region.map(Into::into),
        target: None,
    }
}

fn asm(name: &str, value_from: &str) -> SecretRef {
    SecretRef {
        name: name.into(),
        value_from: value_from.into(),
        provider: Some("asm".into()),
        region: None,
        target: None,
    }
}

#[test]
fn calls_are_planned_per_region_and_distinct_secret() {
    let mut refs = TaskSecretRefs::new();
    refs.insert(
        "a".into(),
        (0..12)
            .map(|i| ssm(&format!("P{i}"), &format!("/p/{i}"), None))
            .chain([ssm("E", "/p/0", Some("eu-west-1"))])
            .chain([asm("U", &format!("{BASE}:user::")), asm("W", BASE)])
            .collect(),
    );
    refs.insert(
        "b".into(),
        vec![ssm("P0", "/p/0", None), asm("X", &format!("{BASE}:pass::"))],
    );
    let calls = plan(&refs, "us-west-2").unwrap();
    assert_eq!(calls.ssm["us-west-2"].len(), 12, "one name once");
    assert_eq!(calls.ssm["eu-west-1"].len(), 1);
    assert_eq!(calls.asm.len(), 1, "json keys of one secret share its call");
}

#[test]
fn a_malformed_asm_arn_fails_the_plan_before_any_call() {
    let mut refs = TaskSecretRefs::new();
    let bad = format!("{BASE}:only-a-key");
    refs.insert("a".into(), vec![ssm("P", "/p", None), asm("X", &bad)]);
    let e = plan(&refs, "us-west-2").unwrap_err();
    assert!(e.starts_with("ResourceInitializationError: "), "{e}");
    assert!(e.contains(&bad), "{e}");
}

/// What the stand-in SSM / Secrets Manager saw.
#[derive(Default)]
struct Seen {
    /// The names of each GetParameters, with its WithDecryption.
    ssm: Mutex<Vec<(Vec<String>, bool)>>,
    asm: Mutex<Vec<String>>,
    arrived: AtomicUsize,
    most_in_flight: AtomicUsize,
    in_flight: AtomicUsize,
}

/// A stand-in for SSM and Secrets Manager on 127.0.0.1 that holds each request until `expect`
/// requests are under way at once (or 5 s pass), so calls made one after another show as
/// never more than one in flight.
async fn stand_in(expect: usize) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = state.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
                seen.arrived.fetch_add(1, Ordering::SeqCst);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while seen.arrived.load(Ordering::SeqCst) < expect
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                let reply = if target.ends_with("GetParameters") {
                    let names: Vec<String> = req["Names"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect();
                    let decrypt = req["WithDecryption"] == serde_json::json!(true);
                    seen.ssm.lock().unwrap().push((names.clone(), decrypt));
                    let params: Vec<serde_json::Value> = names
                        .iter()
                        .map(|n| {
                            serde_json::json!({"Name": n, "Value": format!("v{n}"),
                            "ARN": format!("arn:aws:ssm:us-west-2:1:parameter{n}")})
                        })
                        .collect();
                    serde_json::json!({"Parameters": params, "InvalidParameters": []})
                } else {
                    let id = req["SecretId"].as_str().unwrap_or_default().to_owned();
                    seen.asm.lock().unwrap().push(id.clone());
                    serde_json::json!({"ARN": id, "Name": "n",
                        "SecretString": format!(r#"{{"user":"u-{id}","pass":"p"}}"#)})
                };
                (
                    [("content-type", "application/x-amz-json-1.1")],
                    reply.to_string(),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn sdk_for(url: &str) -> SdkConfig {
    SdkConfig::builder()
        .http_client(crate::control::api::http_client())
        .endpoint_url(url)
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

fn role() -> RoleCredentials {
    RoleCredentials {
        credentials_id: "exec".into(),
        access_key_id: "AKID".into(),
        secret_access_key: "s".into(),
        session_token: "t".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn ssm_batches_of_10_and_every_asm_secret_are_fetched_at_once() {
    let second = BASE.replace("db-AbCdEf", "api-XyZabc");
    // 12 SSM names: two GetParameters; two distinct secrets: two GetSecretValue.
    let (url, seen) = stand_in(4).await;
    let mut refs = TaskSecretRefs::new();
    refs.insert(
        "a".into(),
        (0..12)
            .map(|i| ssm(&format!("P{i}"), &format!("/p/{i}"), None))
            .chain([asm("U", &format!("{BASE}:user::"))])
            .collect(),
    );
    let mut log = asm("splunk-token", &format!("{second}:user::"));
    log.target = Some("LOG_DRIVER".into());
    refs.insert("b".into(), vec![asm("P", &format!("{BASE}:pass::")), log]);
    let got = resolve_task(&sdk_for(&url), Some(&role()), "us-west-2", &refs)
        .await
        .unwrap();
    assert_eq!(got["a"].env.len(), 13);
    assert_eq!(got["a"].env["P11"], "v/p/11");
    assert_eq!(got["a"].env["U"], format!("u-{BASE}"));
    assert_eq!(got["b"].env["P"], "p");
    assert_eq!(got["b"].log_options["splunk-token"], format!("u-{second}"));
    let mut batches: Vec<(usize, bool)> = seen
        .ssm
        .lock()
        .unwrap()
        .iter()
        .map(|(n, d)| (n.len(), *d))
        .collect();
    batches.sort();
    assert_eq!(batches, [(2, true), (10, true)]);
    assert_eq!(seen.asm.lock().unwrap().len(), 2, "one call per secret");
    assert_eq!(
        seen.most_in_flight.load(Ordering::SeqCst),
        4,
        "all four calls under way at once"
    );
}

#[test]
fn container_secrets_print_names_only() {
    let mut s = ContainerSecrets::default();
    s.env.insert("DB".into(), "hunter2".into());
    s.log_options.insert("token".into(), "hunter3".into());
    let shown = format!("{s:?}");
    assert!(shown.contains("DB") && shown.contains("token"), "{shown}");
    assert!(!shown.contains("hunter"), "{shown}");
}
