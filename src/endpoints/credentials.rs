//! The task credentials endpoint (127.0.0.1:51679, reached from containers as 169.254.170.2):
//! `/v2/credentials/{id}` and the legacy `/v1/credentials?id=`, with the official agent's JSON
//! bodies and error codes, a per-client rate limit (`ECS_TASK_METADATA_RPS_LIMIT`; past it 429
//! with the plain-text body of the official agent's limiter, tollbooth) and an audit line per
//! request, throttled ones included. Knowing the unguessable ID is the only authorisation.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::audit::{AuditLog, Audited};
use super::ratelimit::RateLimiter;
use crate::credentials::{RoleType, Store};

/// What the handlers share.
pub struct CredentialsApi {
    pub store: Store,
    pub limiter: RateLimiter,
    pub audit: AuditLog,
}

/// The successful body: exactly the official agent's field names and order.
#[derive(Serialize)]
struct CredentialsBody<'a> {
    #[serde(rename = "RoleArn")]
    role_arn: &'a str,
    #[serde(rename = "AccessKeyId")]
    access_key_id: &'a str,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: &'a str,
    #[serde(rename = "Token")]
    token: &'a str,
    #[serde(rename = "Expiration")]
    expiration: &'a str,
}

/// Why a request failed, as the official agent names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NoId,
    UnknownId,
    Uninitialized,
}

/// What the official agent's rate limiter (tollbooth's defaults) answers past the limit.
const THROTTLED_BODY: &str = "You have reached maximum request limit.";
const THROTTLED_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
    #[serde(rename = "HTTPErrorCode")]
    http_error_code: u16,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::NoId | Failure::UnknownId => StatusCode::BAD_REQUEST,
            Failure::Uninitialized => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Failure::NoId => "NoIdInRequest",
            Failure::UnknownId => "InvalidIdInRequest",
            Failure::Uninitialized => "CredentialsUninitialized",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Failure::NoId => "No Credential ID in the request",
            Failure::UnknownId => "Credentials not found",
            Failure::Uninitialized => "Credentials uninitialized for ID",
        }
    }

    fn response(self, version: u8) -> Response {
        let body = ErrorBody {
            code: self.code(),
            message: format!("CredentialsV{version}Request: {}", self.text()),
            http_error_code: self.status().as_u16(),
        };
        json_response(self.status(), serde_json::to_vec(&body).unwrap_or_default())
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

/// The router for the credentials paths.
pub fn router(api: Arc<CredentialsApi>) -> Router {
    Router::new()
        .route("/v2/credentials", get(v2_without_id))
        .route("/v2/credentials/", get(v2_without_id))
        .route("/v2/credentials/{id}", get(v2))
        .route("/v1/credentials", get(v1))
        .with_state(api)
}

#[derive(serde::Deserialize)]
struct V1Query {
    id: Option<String>,
}

async fn v2(
    State(api): State<Arc<CredentialsApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(&api, peer, &headers, "/v2/credentials", Some(id), 2)
}

async fn v2_without_id(
    State(api): State<Arc<CredentialsApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    serve(&api, peer, &headers, "/v2/credentials", None, 2)
}

async fn v1(
    State(api): State<Arc<CredentialsApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<V1Query>,
) -> Response {
    serve(&api, peer, &headers, "/v1/credentials", q.id, 1)
}

fn serve(
    api: &CredentialsApi,
    peer: SocketAddr,
    headers: &HeaderMap,
    path: &str,
    id: Option<String>,
    version: u8,
) -> Response {
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (status, arn, role, response) = if api.limiter.allow(peer.ip()) {
        match lookup(api, id.as_deref().filter(|s| !s.is_empty())) {
            Ok((arn, role, body)) => (
                StatusCode::OK,
                arn,
                Some(role),
                json_response(StatusCode::OK, body),
            ),
            Err(f) => (f.status(), String::new(), None, f.response(version)),
        }
    } else {
        let status = StatusCode::TOO_MANY_REQUESTS;
        let response = (
            status,
            [("content-type", THROTTLED_CONTENT_TYPE)],
            THROTTLED_BODY,
        )
            .into_response();
        // Audited like a failed request: no task, no event fields.
        (status, String::new(), None, response)
    };
    api.audit.record(&Audited {
        peer,
        path,
        user_agent,
        arn: &arn,
        status: status.as_u16(),
        role,
    });
    response
}

fn lookup(api: &CredentialsApi, id: Option<&str>) -> Result<(String, RoleType, Vec<u8>), Failure> {
    let id = id.ok_or(Failure::NoId)?;
    if api.store.is_pending(id) {
        return Err(Failure::Uninitialized);
    }
    let entry = api.store.get(id).ok_or(Failure::UnknownId)?;
    let c = &entry.credentials;
    let body = CredentialsBody {
        role_arn: &c.role_arn,
        access_key_id: &c.access_key_id,
        secret_access_key: &c.secret_access_key,
        token: &c.session_token,
        expiration: &c.expiration,
    };
    let bytes = serde_json::to_vec(&body).map_err(|_| Failure::UnknownId)?;
    Ok((entry.task_arn, entry.role_type, bytes))
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    api: Arc<CredentialsApi>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(api).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
