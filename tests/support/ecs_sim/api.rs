//! The front door of the ECS JSON 1.1 API: `POST /` routed by `X-Amz-Target`.
//!
//! Checks run in the order the service applies them: fault injection (outage),
//! SigV4, target and content type, throttling, JSON syntax, the operation's
//! input model; then `ops` does the operation. Every call is recorded, refused
//! or not. Errors go out as `{"__type":…,"message":…}` with the
//! `application/x-amz-json-1.1` content type the SDK expects.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::model::models;
use super::ops;
use super::sigv4::{self, Received};
use super::state::{ApiCall, Shared};

const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operations the simulator implements.
pub const OPERATIONS: &[&str] = &[
    "RegisterContainerInstance",
    "DeregisterContainerInstance",
    "DiscoverPollEndpoint",
    "SubmitTaskStateChange",
    "SubmitContainerStateChange",
    "SubmitAttachmentStateChanges",
    "CreateCluster",
    "DescribeClusters",
    "UpdateContainerInstancesState",
];

/// An error answer, named as ECS names it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidParameterException", message)
    }

    pub fn client(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "ClientException", message)
    }

    pub fn cluster_not_found() -> ApiError {
        ApiError::new(400, "ClusterNotFoundException", "Cluster not found.")
    }
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = header_str(&headers, "x-amz-target")
        .and_then(|t| t.strip_prefix(TARGET_PREFIX).map(str::to_string))
        .unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let outcome = serve(&shared, &method, &uri, &headers, &body, &operation);
    let (status, error, error_message) = match &outcome {
        Ok(_) => (200, None, None),
        Err(e) => (e.status, Some(e.code.clone()), Some(e.message.clone())),
    };
    shared.update(|s| {
        s.api_calls.push(ApiCall {
            at: SystemTime::now(),
            operation,
            status,
            error,
            error_message,
            body: parsed,
        })
    });
    match outcome {
        Ok(answer) => json_response(200, &answer),
        Err(e) => json_response(e.status, &json!({"__type": e.code, "message": e.message})),
    }
}

fn serve(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    operation: &str,
) -> Result<Value, ApiError> {
    if shared.read(|s| s.outage) {
        return Err(ApiError::new(
            503,
            "ServiceUnavailableException",
            "Service Unavailable",
        ));
    }
    if method != Method::POST || uri.path() != "/" {
        return Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!("no route for {method} {}", uri.path()),
        ));
    }
    authenticate(shared, uri, headers, body)?;
    if !OPERATIONS.contains(&operation) {
        let target = header_str(headers, "x-amz-target").unwrap_or_default();
        return Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("unknown X-Amz-Target {target:?}"),
        ));
    }
    if header_str(headers, "content-type").as_deref() != Some(CONTENT_TYPE) {
        return Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("Content-Type must be {CONTENT_TYPE}"),
        ));
    }
    let throttled = shared.update(|s| {
        let throttled = s.throttle > 0;
        s.throttle = s.throttle.saturating_sub(1);
        throttled
    });
    if throttled {
        return Err(ApiError::new(400, "ThrottlingException", "Rate exceeded"));
    }
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "SerializationException",
            format!("body is not JSON: {e}"),
        )
    })?;
    if !request.is_object() {
        return Err(ApiError::new(
            400,
            "SerializationException",
            "body must be a JSON object",
        ));
    }
    models()
        .ecs
        .validate_input(operation, &request)
        .map_err(|v| ApiError::new(400, v.code(), v.message()))?;
    ops::dispatch(shared, operation, &request)
}

fn authenticate(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let pairs = header_pairs(headers);
    let received = Received {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body,
    };
    sigv4::verify(&received, &shared.config.identity(), SystemTime::now())
        .map_err(|e| ApiError::new(e.status(), e.code(), e.message()))
}

/// Header names and values as text (values that are not UTF-8 become lossy text).
pub(super) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}
