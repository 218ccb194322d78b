//! The ACS session: discover the endpoint, open the SigV4-signed websocket with the official
//! query parameters, answer every message, and reconnect forever with the official timers
//! (inactivity 1 min + up to 1 min, maximum age 30 min + up to 5 min, backoff 250 ms → 2 min
//! ×1.5; immediate reconnect after a normal close; one try an hour while the instance is
//! inactive). A malformed frame is logged and dropped: it never ends or stalls the session.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::acs;
use super::api::Backoff;
use super::discover::Discovery;
use super::sigv4::{acs_url, sign_upgrade, AcsParams};
use crate::credentials;
use crate::engine::{Change, Input, TaskChange};
use crate::model::Status;
use crate::runtime::{DriverHandle, Snapshot};

mod handlers;

/// Everything the session needs.
pub struct SessionContext {
    pub client: aws_sdk_ecs::Client,
    pub sdk: SdkConfig,
    pub cluster: String,
    pub instance_arn: String,
    pub docker_version: Option<String>,
    pub agent_version: String,
    pub agent_hash: String,
    pub engine: DriverHandle,
    pub snapshots: watch::Receiver<Snapshot>,
    /// Reports the session makes itself (tasks refused before they reach the engine).
    pub reports: mpsc::UnboundedSender<Change>,
    pub credentials: credentials::Store,
    /// Highest ACS sequence number seen (payloads, manifests), -1 for none; saved with the
    /// state so a restarted agent still drops stale task manifests.
    pub seq: Arc<AtomicI64>,
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    /// A normal close, end of stream, inactivity or age: reconnect at once.
    Reconnect,
    /// The instance was deregistered: try again in an hour.
    Inactive,
}

/// What the session remembers across connections.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// Highest sequence number seen (payloads and manifests).
    pub last_seq: Option<i64>,
    /// The last manifest's message ID, awaiting its TaskStopVerificationAck.
    pub last_manifest: Option<String>,
}

fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    max.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

/// Runs the ACS session until the process ends.
pub async fn run_acs(ctx: SessionContext) {
    let mut discovery = Discovery::new(
        ctx.client.clone(),
        ctx.cluster.clone(),
        ctx.instance_arn.clone(),
    );
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(120), 1.5);
    let mut first = true;
    let saved = ctx.seq.load(Ordering::SeqCst);
    let mut state = SessionState {
        last_seq: (saved >= 0).then_some(saved),
        ..SessionState::default()
    };
    loop {
        let mut connected = false;
        let result =
            connect_and_serve(&ctx, &mut discovery, first, &mut state, &mut connected).await;
        if connected {
            first = false;
        }
        match result {
            Ok(Ended::Reconnect) => backoff.reset(),
            Ok(Ended::Inactive) => {
                tracing::warn!(
                    "the container instance is inactive (deregistered); retrying ACS in an hour"
                );
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "ACS connection failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn connect_and_serve(
    ctx: &SessionContext,
    discovery: &mut Discovery,
    first: bool,
    state: &mut SessionState,
    connected: &mut bool,
) -> Result<Ended, String> {
    let endpoints = discovery.endpoints().await.map_err(|e| e.to_string())?;
    let params = AcsParams {
        cluster: ctx.cluster.clone(),
        container_instance_arn: ctx.instance_arn.clone(),
        agent_hash: ctx.agent_hash.clone(),
        agent_version: ctx.agent_version.clone(),
        docker_version: ctx.docker_version.clone(),
        send_credentials: first,
    };
    let url = acs_url(&endpoints.acs, &params);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad ACS URL: {e}"))?;
    let provider = ctx
        .sdk
        .credentials_provider()
        .ok_or("no credentials provider")?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| format!("no credentials: {e}"))?;
    let region = ctx.sdk.region().map(|r| r.to_string()).unwrap_or_default();
    sign_upgrade(&mut request, &creds, &region, SystemTime::now()).map_err(|e| e.to_string())?;
    let connect = tokio_tungstenite::connect_async(request);
    let ws = match tokio::time::timeout(Duration::from_secs(30), connect).await {
        Err(_) => return Err("ACS handshake timed out".into()),
        Ok(Err(e)) => return handshake_failure(e),
        Ok(Ok((ws, _))) => ws,
    };
    *connected = true;
    tracing::info!(endpoint = %endpoints.acs, send_credentials = first, "connected to ACS");
    serve(ctx, ws, state).await
}

fn handshake_failure(e: tokio_tungstenite::tungstenite::Error) -> Result<Ended, String> {
    if let tokio_tungstenite::tungstenite::Error::Http(response) = &e {
        let body = response
            .body()
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        if let Some((kind, message)) = acs::decode_handshake_error(&body) {
            if kind == "InactiveInstanceException" {
                return Ok(Ended::Inactive);
            }
            return Err(format!(
                "ACS refused the connection ({}): {kind}: {message}",
                response.status()
            ));
        }
        return Err(format!("ACS refused the connection: {}", response.status()));
    }
    Err(format!("ACS connection failed: {e}"))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(ctx: &SessionContext, ws: Ws, state: &mut SessionState) -> Result<Ended, String> {
    let (mut sink, mut stream) = ws.split();
    let inactivity = Duration::from_secs(60) + jitter(Duration::from_secs(60));
    let expires = Instant::now() + Duration::from_secs(1800) + jitter(Duration::from_secs(300));
    let mut deadline = Instant::now() + inactivity;
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("no message from ACS for {}s; reconnecting", inactivity.as_secs());
                let _ = sink.close().await;
                return Ok(Ended::Reconnect);
            }
            _ = tokio::time::sleep_until(expires) => {
                let close = CloseFrame { code: CloseCode::Normal, reason: "ConnectionExpired: Reconnect to continue".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return Ok(Ended::Reconnect);
            }
        };
        let text = match frame {
            None => return Ok(Ended::Reconnect),
            Some(Err(e)) => return Err(format!("ACS read failed: {e}")),
            Some(Ok(Message::Close(f))) => return closed(f),
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(_)) => continue,
        };
        deadline = Instant::now() + inactivity;
        let (replies, end) = handlers::handle(ctx, state, &text);
        if replies.iter().any(|r| matches!(r, Reply::Ack(_))) {
            // Acknowledge only what a crash cannot lose.
            ctx.engine.flush().await;
        }
        for reply in replies {
            sink.send(Message::Text(acs::encode(&reply).into()))
                .await
                .map_err(|e| format!("ACS write failed: {e}"))?;
        }
        if let Some(end) = end {
            return Ok(end);
        }
    }
}

/// Close codes after which the official agent reconnects at once.
fn closed(frame: Option<CloseFrame>) -> Result<Ended, String> {
    let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005);
    match code {
        1000 | 1001 | 1005 | 1006 | 1011 => Ok(Ended::Reconnect),
        other => Err(format!("ACS closed the connection with code {other}")),
    }
}

/// A STOPPED report for a task ACS sent that this agent cannot accept.
pub(crate) fn refused_task(arn: &str, reason: String) -> Change {
    Change::Task(TaskChange {
        task_arn: arn.to_owned(),
        status: Status::Stopped,
        reason: Some(reason),
        pull_started_at: None,
        pull_stopped_at: None,
        execution_stopped_at: None,
    })
}

pub(crate) use super::acs::Outbound as Reply;

impl SessionContext {
    pub(crate) fn to_engine(&self, input: Input) {
        if !self.engine.send(input) {
            tracing::error!("the engine is gone; dropping an ACS instruction");
        }
    }
}
