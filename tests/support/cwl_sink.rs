//! A minimal CloudWatch Logs endpoint for benchmarks (moto is too slow to measure against):
//! it accepts `PutLogEvents`, `CreateLogGroup`, `CreateLogStream` and `DescribeLogStreams`
//! (awsJson 1.1, any credentials, no signature check) on 127.0.0.1 and counts, per stream, the
//! events, their bytes and the distinct numbered lines (a message starting with digits counts
//! by that number, so repeats and losses show), and the access keys that signed the calls
//! (from the `Authorization` header). It can refuse calls: all of them with 503, or the next
//! few `PutLogEvents` with a chosen error (throttling, 503).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;
use serde_json::{json, Value};

/// What one stream received.
#[derive(Debug, Default, Clone)]
pub struct StreamCount {
    pub events: u64,
    pub bytes: u64,
    pub numbers: HashSet<u64>,
    /// Messages received more than once.
    pub repeats: u64,
    pub calls: u64,
    /// Access key IDs of the accepted calls.
    pub access_keys: BTreeSet<String>,
    /// When the first and the last accepted batch arrived.
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
}

/// An error a call can be refused with.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// 400 `ThrottlingException`.
    Throttling,
    /// 503 `ServiceUnavailableException`.
    Unavailable,
}

impl Refusal {
    fn reply(self) -> (axum::http::StatusCode, &'static str) {
        match self {
            Refusal::Throttling => (
                axum::http::StatusCode::BAD_REQUEST,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Refusal::Unavailable => (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                r#"{"__type":"ServiceUnavailableException","message":"down"}"#,
            ),
        }
    }
}

/// The running endpoint.
pub struct CwlSink {
    pub url: String,
    streams: Arc<Mutex<BTreeMap<String, StreamCount>>>,
    accepting: Arc<AtomicBool>,
    refusals: Arc<Mutex<VecDeque<Refusal>>>,
}

impl CwlSink {
    pub async fn start() -> CwlSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let streams: Arc<Mutex<BTreeMap<String, StreamCount>>> = Arc::default();
        let accepting = Arc::new(AtomicBool::new(true));
        let refusals: Arc<Mutex<VecDeque<Refusal>>> = Arc::default();
        let (state, open, refuse) = (streams.clone(), accepting.clone(), refusals.clone());
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (state, open, refuse) = (state.clone(), open.clone(), refuse.clone());
                async move {
                    let json = [("content-type", "application/x-amz-json-1.1")];
                    let put = target(&headers) == "PutLogEvents";
                    let refusal = match open.load(Ordering::SeqCst) {
                        false => Some(Refusal::Unavailable),
                        true if put => refuse.lock().unwrap().pop_front(),
                        true => None,
                    };
                    if let Some(r) = refusal {
                        let (status, body) = r.reply();
                        return (status, json, body.to_owned());
                    }
                    let (headers, body) = handle(&state, &headers, &body);
                    (axum::http::StatusCode::OK, headers, body)
                }
            });
        tokio::spawn(async move { axum::serve(listener, app).await });
        CwlSink {
            url,
            streams,
            accepting,
            refusals,
        }
    }

    /// Refuses the next `PutLogEvents` calls, one refusal each, in order.
    pub fn refuse_next(&self, refusals: &[Refusal]) {
        self.refusals.lock().unwrap().extend(refusals);
    }

    /// How many of the refusals asked for are still to come.
    pub fn refusals_left(&self) -> usize {
        self.refusals.lock().unwrap().len()
    }

    /// Refuses every call with 503 (`false`) or accepts again (`true`).
    pub fn set_accepting(&self, on: bool) {
        self.accepting.store(on, Ordering::SeqCst);
    }

    /// What the stream received so far.
    pub fn stream(&self, name: &str) -> StreamCount {
        self.streams
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

/// The operation a call asks for (`PutLogEvents`, …).
fn target(headers: &HeaderMap) -> &str {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    target.rsplit('.').next().unwrap_or_default()
}

/// The access key ID of a SigV4 `Authorization` header (`… Credential=AKID/date/…`).
fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

fn handle(
    state: &Mutex<BTreeMap<String, StreamCount>>,
    headers: &HeaderMap,
    body: &[u8],
) -> ([(&'static str, &'static str); 1], String) {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let reply = match target(headers) {
        "PutLogEvents" => {
            let stream = request["logStreamName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut streams = state.lock().unwrap();
            let count = streams.entry(stream).or_default();
            count.calls += 1;
            count.access_keys.extend(access_key(headers));
            count.first_at.get_or_insert_with(Instant::now);
            count.last_at = Some(Instant::now());
            for e in request["logEvents"].as_array().into_iter().flatten() {
                let message = e["message"].as_str().unwrap_or_default();
                count.events += 1;
                count.bytes += message.len() as u64;
                let digits: String = message.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse() {
                    if !count.numbers.insert(n) {
                        count.repeats += 1;
                    }
                }
            }
            json!({"nextSequenceToken": count.calls.to_string()})
        }
        "DescribeLogStreams" => json!({"logStreams": []}),
        _ => json!({}),
    };
    (
        [("content-type", "application/x-amz-json-1.1")],
        reply.to_string(),
    )
}
