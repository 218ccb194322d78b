//! A minimal CloudWatch Logs endpoint for benchmarks (moto is too slow to measure against):
//! it accepts `PutLogEvents`, `CreateLogGroup`, `CreateLogStream` and `DescribeLogStreams`
//! (awsJson 1.1, any credentials, no signature check) on 127.0.0.1 and counts, per stream, the
//! events, their bytes and the distinct numbered lines (a message starting with digits counts
//! by that number, so repeats and losses show).

use std::collections::{BTreeMap, HashSet};
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
    pub calls: u64,
    /// When the first and the last accepted batch arrived.
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
}

/// The running endpoint.
pub struct CwlSink {
    pub url: String,
    streams: Arc<Mutex<BTreeMap<String, StreamCount>>>,
    accepting: Arc<AtomicBool>,
}

impl CwlSink {
    pub async fn start() -> CwlSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let streams: Arc<Mutex<BTreeMap<String, StreamCount>>> = Arc::default();
        let accepting = Arc::new(AtomicBool::new(true));
        let (state, open) = (streams.clone(), accepting.clone());
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (state, open) = (state.clone(), open.clone());
                async move {
                    if !open.load(Ordering::SeqCst) {
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "application/x-amz-json-1.1")],
                            r#"{"__type":"ServiceUnavailableException","message":"down"}"#
                                .to_owned(),
                        );
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
        }
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

fn handle(
    state: &Mutex<BTreeMap<String, StreamCount>>,
    headers: &HeaderMap,
    body: &[u8],
) -> ([(&'static str, &'static str); 1], String) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let reply = match target.rsplit('.').next().unwrap_or_default() {
        "PutLogEvents" => {
            let stream = request["logStreamName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut streams = state.lock().unwrap();
            let count = streams.entry(stream).or_default();
            count.calls += 1;
            count.first_at.get_or_insert_with(Instant::now);
            count.last_at = Some(Instant::now());
            for e in request["logEvents"].as_array().into_iter().flatten() {
                let message = e["message"].as_str().unwrap_or_default();
                count.events += 1;
                count.bytes += message.len() as u64;
                let digits: String = message.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse() {
                    count.numbers.insert(n);
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
