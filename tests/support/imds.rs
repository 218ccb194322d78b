//! A loopback stand-in for the EC2 instance metadata service (IMDSv2).
//!
//! `ImdsStub::start` binds `127.0.0.1:0` and serves the paths the official agent
//! reads at an EC2-mode start (wire-captures.md §3), plus instance-role
//! credentials for the SDK's IMDS credentials provider. It behaves like real
//! IMDSv2 where a client could notice: a session token from
//! `PUT /latest/api/token` is required on every GET, the TTL header is checked
//! and echoed, a PUT carrying `X-Forwarded-For` is refused, documents are
//! formatted the way EC2 formats them, and unknown paths get 404.
//!
//! Limits: IMDSv1 (token-less GETs) is always off; there are no directory
//! listings except `iam/security-credentials/`; the signature is a fixed blob
//! that nothing can verify.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TTL_SECONDS: u64 = 21_600;
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials";

/// What the stub reports about "its" instance.
#[derive(Debug, Clone)]
pub struct ImdsConfig {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub mac: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub local_ipv4: String,
    pub instance_type: String,
    pub ami_id: String,
    pub account_id: String,
    pub architecture: String,
    /// `pendingTime` in the identity document, RFC 3339.
    pub pending_time: String,
    /// Served raw at `/latest/dynamic/instance-identity/signature`.
    pub signature: String,
    /// The instance profile's role, listed under `iam/security-credentials/`.
    pub role_name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        Self {
            instance_id: "i-0123456789abcdef0".into(),
            region: "us-west-2".into(),
            availability_zone: "us-west-2a".into(),
            availability_zone_id: "usw2-az1".into(),
            mac: "02:00:00:00:00:01".into(),
            vpc_id: "vpc-0123456789abcdef0".into(),
            subnet_id: "subnet-0123456789abcdef0".into(),
            local_ipv4: "10.0.0.10".into(),
            instance_type: "m5.large".into(),
            ami_id: "ami-0123456789abcdef0".into(),
            account_id: "123456789012".into(),
            architecture: "x86_64".into(),
            pending_time: "2026-01-01T00:00:00Z".into(),
            signature: FAKE_SIGNATURE.into(),
            role_name: "ecsInstanceRole".into(),
            access_key_id: "ASIAIMDSSTUBEXAMPLE1".into(),
            secret_access_key: "imds-stub-secret-access-key".into(),
            session_token: "imds-stub-session-token".into(),
        }
    }
}

/// Base64 of a fixed 96-byte blob, wrapped at 76 columns like the real one.
const FAKE_SIGNATURE: &str = "\
ZmFrZS1zaWduYXR1cmUtb2YtdGhlLWluc3RhbmNlLWlkZW50aXR5LWRvY3VtZW50LXNlcnZlZC1i
eS10aGUtZWNzLWFnZW50LXRlc3Qtc3R1Yi0wMDAwMDAwMDAwMDA=";

/// One request as the stub saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
struct Tokens {
    expiry: HashMap<String, Instant>,
    issued: u64,
}

struct Shared {
    config: ImdsConfig,
    tokens: Mutex<Tokens>,
    log: Mutex<Vec<ImdsRequest>>,
    random: std::collections::hash_map::RandomState,
    /// What `spot/instance-action` serves; 404 while `None`, as on EC2.
    spot_action: Mutex<Option<String>>,
}

/// A running stub; it stops when dropped.
pub struct ImdsStub {
    endpoint: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ImdsStub {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    /// Schedules (or clears) a Spot interruption notice, served at `spot/instance-action`.
    pub fn set_spot_action(&self, action: Option<&str>) {
        *self.shared.spot_action.lock().unwrap() = action.map(str::to_owned);
    }

    pub async fn start(config: ImdsConfig) -> ImdsStub {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the IMDS stub on 127.0.0.1");
        let addr = listener.local_addr().expect("IMDS stub address");
        let shared = Arc::new(Shared {
            config,
            tokens: Mutex::default(),
            log: Mutex::default(),
            random: Default::default(),
            spot_action: Mutex::default(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("IMDS stub server");
        });
        ImdsStub {
            endpoint: format!("http://{addr}"),
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn config(&self) -> &ImdsConfig {
        &self.shared.config
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests (any method, any outcome) asked for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// How many session tokens have been handed out.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens.lock().unwrap().issued
    }

    /// Makes every token issued so far invalid, as if its TTL had run out.
    pub fn expire_tokens(&self) {
        self.shared.tokens.lock().unwrap().expiry.clear();
    }
}

impl Drop for ImdsStub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let response = route(&shared, &method, &path, &headers);
    shared.log.lock().unwrap().push(ImdsRequest {
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    });
    response
}

const SPOT_PATH: &str = "/latest/meta-data/spot/instance-action";

fn route(shared: &Shared, method: &Method, path: &str, headers: &HeaderMap) -> Response {
    match (method, path == TOKEN_PATH) {
        (&Method::PUT, true) => issue_token(shared, headers),
        (&Method::GET, false) => match authorize(shared, headers) {
            Ok(()) if path == SPOT_PATH => match shared.spot_action.lock().unwrap().clone() {
                Some(action) => plain(StatusCode::OK, action),
                None => plain(StatusCode::NOT_FOUND, String::new()),
            },
            Ok(()) => serve(&shared.config, path),
            Err(status) => plain(status, String::new()),
        },
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}

fn issue_token(shared: &Shared, headers: &HeaderMap) -> Response {
    if headers.contains_key("x-forwarded-for") {
        return plain(StatusCode::FORBIDDEN, String::new());
    }
    let Some(ttl) = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TTL_SECONDS).contains(ttl))
    else {
        return plain(StatusCode::BAD_REQUEST, String::new());
    };
    let token = random_token(shared);
    let mut tokens = shared.tokens.lock().unwrap();
    tokens.issued += 1;
    tokens
        .expiry
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    let mut response = plain(StatusCode::OK, token);
    response
        .headers_mut()
        .insert(TTL_HEADER, HeaderValue::from(ttl));
    response
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), StatusCode> {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let tokens = shared.tokens.lock().unwrap();
    match tokens.expiry.get(token) {
        Some(expiry) if *expiry > Instant::now() => Ok(()),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

fn serve(c: &ImdsConfig, path: &str) -> Response {
    let macs = format!("/latest/meta-data/network/interfaces/macs/{}", c.mac);
    let role = format!("{CREDENTIALS_PATH}/{}", c.role_name);
    let body = match path {
        "/latest/meta-data/instance-id" => c.instance_id.clone(),
        "/latest/meta-data/mac" => c.mac.clone(),
        "/latest/meta-data/placement/availability-zone" => c.availability_zone.clone(),
        "/latest/meta-data/placement/availability-zone-id" => c.availability_zone_id.clone(),
        "/latest/meta-data/placement/region" => c.region.clone(),
        "/latest/meta-data/local-ipv4" => c.local_ipv4.clone(),
        "/latest/meta-data/instance-type" => c.instance_type.clone(),
        "/latest/meta-data/ami-id" => c.ami_id.clone(),
        "/latest/dynamic/instance-identity/document" => identity_document(c),
        "/latest/dynamic/instance-identity/signature" => c.signature.clone(),
        "/latest/meta-data/iam/info" => iam_info(c),
        p if p == format!("{macs}/vpc-id") => c.vpc_id.clone(),
        p if p == format!("{macs}/subnet-id") => c.subnet_id.clone(),
        p if p == CREDENTIALS_PATH || p == format!("{CREDENTIALS_PATH}/") => c.role_name.clone(),
        p if p == role => role_credentials(c),
        _ => return not_found(),
    };
    plain(StatusCode::OK, body)
}

/// The identity document as EC2 prints it: two-space indent, `" : "` between
/// key and value, keys in EC2's order, no trailing newline.
pub fn identity_document(c: &ImdsConfig) -> String {
    let s = |v: &str| serde_json::Value::from(v);
    let null = serde_json::Value::Null;
    ec2_json(&[
        ("accountId", s(&c.account_id)),
        ("architecture", s(&c.architecture)),
        ("availabilityZone", s(&c.availability_zone)),
        ("billingProducts", null.clone()),
        ("devpayProductCodes", null.clone()),
        ("marketplaceProductCodes", null.clone()),
        ("imageId", s(&c.ami_id)),
        ("instanceId", s(&c.instance_id)),
        ("instanceType", s(&c.instance_type)),
        ("kernelId", null.clone()),
        ("pendingTime", s(&c.pending_time)),
        ("privateIp", s(&c.local_ipv4)),
        ("ramdiskId", null),
        ("region", s(&c.region)),
        ("version", s("2017-09-30")),
    ])
}

fn role_credentials(c: &ImdsConfig) -> String {
    let now = SystemTime::now();
    let s = |v: &str| serde_json::Value::from(v);
    ec2_json(&[
        ("Code", s("Success")),
        ("LastUpdated", s(&rfc3339(now))),
        ("Type", s("AWS-HMAC")),
        ("AccessKeyId", s(&c.access_key_id)),
        ("SecretAccessKey", s(&c.secret_access_key)),
        ("Token", s(&c.session_token)),
        (
            "Expiration",
            s(&rfc3339(now + Duration::from_secs(6 * 3600))),
        ),
    ])
}

fn iam_info(c: &ImdsConfig) -> String {
    let s = |v: &str| serde_json::Value::from(v);
    ec2_json(&[
        ("Code", s("Success")),
        ("LastUpdated", s(&rfc3339(SystemTime::now()))),
        (
            "InstanceProfileArn",
            s(&format!(
                "arn:aws:iam::{}:instance-profile/{}",
                c.account_id, c.role_name
            )),
        ),
        ("InstanceProfileId", s("AIPAIMDSSTUBEXAMPLE01")),
    ])
}

fn ec2_json(fields: &[(&str, serde_json::Value)]) -> String {
    let lines: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  \"{k}\" : {v}"))
        .collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("server", HeaderValue::from_static("EC2ws"));
    response
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, String::new())
}

/// 56 characters, like a real token; std's per-process random keys plus the clock.
fn random_token(shared: &Shared) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let issued = shared.tokens.lock().unwrap().issued;
    (0..4u8)
        .map(|round| {
            let mut h = shared.random.build_hasher();
            h.write_u128(nanos);
            h.write_u64(issued);
            h.write_u8(round);
            format!("{:016x}", h.finish())
        })
        .collect::<String>()[..56]
        .to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC (Hinnant's days-to-civil algorithm).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
