//! The TCS (telemetry) session: discover the endpoint, open the SigV4-signed websocket with the
//! official query, publish metrics, container health and the instance status every publish
//! interval as individually signed frames, and reconnect forever with the official timers
//! (liveness 1 min + up to 1 min, reset by a heartbeat or an ack; maximum age 30 min + up to
//! 5 min; backoff 1 s → 1 min ×2 ±20 %; immediate reconnect after a normal close or EOF).
//!
//! Metrics are polled from Docker by a collector that runs beside the connection (see
//! [`collect`]), never as one stats stream per container. The first publish goes out as soon as
//! the connection is up (an idle `PublishMetricsRequest` on an instance without tasks, as the
//! official agent's capture shows); the instance status from the second publish tick on.
//!
//! Limits: a publish that fails to send is lost (no replay buffer); after a
//! `StopTelemetrySessionMessage` the session reconnects after one backoff delay; a deregistered
//! instance is retried with the ordinary backoff (the ACS session owns that condition).

mod collect;
mod doctor;
mod signer;
mod stats;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::api::Backoff;
use super::discover::Discovery;
use super::sigv4::{sign_upgrade, tcs_url, TcsParams};
use super::{acs, tcs};
use collect::{CollectorContext, Gathered, Meta};
use signer::Signer;

pub use stats::{
    cpu_percent, ContainerStats, CounterStats, FloatStats, NetCounters, Sample, Series,
};

/// The official production publish interval.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(20);
const LIVENESS: Duration = Duration::from_secs(60);
const LIVENESS_JITTER: Duration = Duration::from_secs(60);
const MAX_AGE: Duration = Duration::from_secs(30 * 60);
const MAX_AGE_JITTER: Duration = Duration::from_secs(5 * 60);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that ends sooner than this is retried after a backoff delay even when it ended
/// normally, so that a server closing every connection at once is not hammered.
const MIN_UPTIME: Duration = Duration::from_secs(5);

/// Everything the TCS session needs.
pub struct TelemetryContext {
    /// For `DiscoverPollEndpoint`.
    pub client: aws_sdk_ecs::Client,
    /// Credentials and region for signing the upgrade and every frame.
    pub sdk: aws_config::SdkConfig,
    /// `ECS_CLUSTER` as configured.
    pub cluster: String,
    pub instance_arn: String,
    /// The bare Docker server version (`None`: omitted from the URL).
    pub docker_version: Option<String>,
    pub agent_version: String,
    pub agent_hash: String,
    pub docker: bollard::Docker,
    pub snapshots: tokio::sync::watch::Receiver<crate::runtime::Snapshot>,
    /// `ECS_DISABLE_METRICS`: publish idle metrics only (health and status still go out).
    pub disable_metrics: bool,
    /// [`PUBLISH_INTERVAL`] in production.
    pub publish_interval: Duration,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// A normal close, EOF, silence or age: reconnect at once.
    Reconnect,
    /// TCS asked to stop the session: reconnect after a backoff delay.
    Stopped,
}

/// Runs the TCS session and its collector until the process ends (or the future is dropped).
pub async fn run_tcs(ctx: TelemetryContext) {
    let gathered = Mutex::new(Gathered::new(SystemTime::now()));
    let collector = collect::run(
        CollectorContext {
            docker: &ctx.docker,
            snapshots: &ctx.snapshots,
            disable_metrics: ctx.disable_metrics,
            publish_interval: ctx.publish_interval,
        },
        &gathered,
    );
    tokio::join!(collector, sessions(&ctx, &gathered));
}

async fn sessions(ctx: &TelemetryContext, gathered: &Mutex<Gathered>) {
    let mut discovery = Discovery::new(
        ctx.client.clone(),
        ctx.cluster.clone(),
        ctx.instance_arn.clone(),
    );
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 2.0);
    loop {
        let mut up_since = None;
        let result = connect_and_serve(ctx, gathered, &mut discovery, &mut up_since).await;
        let brief = up_since.is_some_and(|t: Instant| t.elapsed() < MIN_UPTIME);
        match result {
            Ok(Ended::Reconnect) if !brief => {
                backoff.reset();
                tracing::info!("TCS connection closed; reconnecting");
            }
            Ok(ended) => {
                let wait = backoff.next_delay();
                tracing::info!(
                    ?ended,
                    retry_in_ms = wait.as_millis() as u64,
                    "TCS session ended"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "TCS connection failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn connect_and_serve(
    ctx: &TelemetryContext,
    gathered: &Mutex<Gathered>,
    discovery: &mut Discovery,
    up_since: &mut Option<Instant>,
) -> Result<Ended, String> {
    let endpoints = discovery.endpoints().await.map_err(|e| e.to_string())?;
    let params = TcsParams {
        cluster: ctx.cluster.clone(),
        container_instance_arn: ctx.instance_arn.clone(),
        agent_hash: ctx.agent_hash.clone(),
        agent_version: ctx.agent_version.clone(),
        docker_version: ctx.docker_version.clone(),
    };
    let url = tcs_url(&endpoints.tcs, &params);
    let mut signer = Signer::new(ctx, &url).await?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad TCS URL: {e}"))?;
    sign_upgrade(
        &mut request,
        &signer.creds,
        &signer.region,
        SystemTime::now(),
    )
    .map_err(|e| e.to_string())?;
    let ws =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
        {
            Err(_) => return Err("TCS handshake timed out".into()),
            Ok(Err(e)) => return Err(handshake_failure(e)),
            Ok(Ok((ws, _))) => ws,
        };
    *up_since = Some(Instant::now());
    tracing::info!(endpoint = %endpoints.tcs, "connected to TCS");
    serve(ctx, gathered, ws, &mut signer).await
}

fn handshake_failure(e: WsError) -> String {
    if let WsError::Http(response) = &e {
        let body = response
            .body()
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        if let Some((kind, message)) = acs::decode_handshake_error(&body) {
            return format!(
                "TCS refused the connection ({}): {kind}: {message}",
                response.status()
            );
        }
        return format!("TCS refused the connection: {}", response.status());
    }
    format!("TCS connection failed: {e}")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(
    ctx: &TelemetryContext,
    gathered: &Mutex<Gathered>,
    ws: Ws,
    signer: &mut Signer,
) -> Result<Ended, String> {
    let (mut sink, mut stream) = ws.split();
    let liveness = LIVENESS + jitter(LIVENESS_JITTER);
    let expires = Instant::now() + MAX_AGE + jitter(MAX_AGE_JITTER);
    let mut deadline = Instant::now() + liveness;
    let mut publish = tokio::time::interval(ctx.publish_interval);
    publish.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut first_tick = true;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    None => return Ok(Ended::Reconnect),
                    Some(Err(e)) => return read_failure(e),
                    Some(Ok(Message::Close(f))) => return closed(f),
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(_)) => continue,
                };
                match on_message(&text) {
                    Reaction::Alive => deadline = Instant::now() + liveness,
                    Reaction::Nothing => {}
                    Reaction::Stop => {
                        let _ = sink.close().await;
                        return Ok(Ended::Stopped);
                    }
                }
            }
            _ = publish.tick() => {
                let messages = cycle(ctx, gathered, !first_tick);
                first_tick = false;
                for message in messages {
                    let frame = signer.frame(&tcs::encode(&message)).await?;
                    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(frame.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(format!("TCS write failed: {e}")),
                        Err(_) => return Err("TCS write timed out".into()),
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(silent_for_s = liveness.as_secs(), "no heartbeat or ack from TCS; reconnecting");
                let _ = sink.close().await;
                return Ok(Ended::Reconnect);
            }
            _ = tokio::time::sleep_until(expires) => {
                let close = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "ConnectionExpired: Reconnect to continue".into(),
                };
                let _ = sink.send(Message::Close(Some(close))).await;
                return Ok(Ended::Reconnect);
            }
        }
    }
}

/// The publish requests of one tick: metrics, health, then (after the first tick) the status.
fn cycle(
    ctx: &TelemetryContext,
    gathered: &Mutex<Gathered>,
    with_status: bool,
) -> Vec<tcs::Outbound> {
    let containers = collect::running(&ctx.snapshots.borrow());
    let meta = Meta {
        cluster: ctx.cluster.clone(),
        instance_arn: ctx.instance_arn.clone(),
    };
    let now = SystemTime::now();
    let id = || uuid::Uuid::new_v4().to_string();
    let mut g = collect::lock(gathered);
    let mut out = Vec::new();
    if let Some(c) = g.metrics_cycle(&containers, &meta, ctx.disable_metrics, id(), now) {
        out.extend(
            tcs::metrics_requests(c)
                .into_iter()
                .map(tcs::Outbound::PublishMetrics),
        );
    }
    if let Some(c) = g.health_cycle(&containers, &meta, id(), now) {
        out.extend(
            tcs::health_requests(c)
                .into_iter()
                .map(tcs::Outbound::PublishHealth),
        );
    }
    if with_status {
        out.push(tcs::Outbound::PublishInstanceStatus(g.doctor.request(
            &meta,
            id(),
            now,
        )));
    }
    out
}

/// What a message from TCS does to the session.
#[derive(Debug, PartialEq, Eq)]
enum Reaction {
    /// A heartbeat or an ack: the connection is alive.
    Alive,
    Nothing,
    Stop,
}

fn on_message(text: &str) -> Reaction {
    match tcs::decode(text) {
        Ok(tcs::Inbound::Heartbeat(_))
        | Ok(tcs::Inbound::AckPublishMetric(_))
        | Ok(tcs::Inbound::AckPublishHealth(_))
        | Ok(tcs::Inbound::AckPublishInstanceStatus(_)) => Reaction::Alive,
        Ok(tcs::Inbound::StopTelemetrySession(m)) => {
            tracing::info!(message = ?m.message, "TCS asked to stop the telemetry session");
            Reaction::Stop
        }
        Ok(tcs::Inbound::Exception { kind, message }) => {
            tracing::warn!(kind = %kind, message = %message, "TCS reported an error");
            Reaction::Nothing
        }
        Ok(tcs::Inbound::Unknown { kind }) => {
            tracing::info!(kind = %kind, "unknown TCS message dropped");
            Reaction::Nothing
        }
        Err(e) => {
            tracing::warn!(error = %e, "malformed TCS frame dropped");
            Reaction::Nothing
        }
    }
}

/// An EOF (the peer went away without a close frame) reconnects at once; other errors back off.
fn read_failure(e: WsError) -> Result<Ended, String> {
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ok(Ended::Reconnect),
        other => Err(format!("TCS read failed: {other}")),
    }
}

/// Close codes after which the official agent reconnects at once.
fn closed(frame: Option<CloseFrame>) -> Result<Ended, String> {
    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
    match code {
        1000 | 1001 | 1005 | 1006 | 1011 => Ok(Ended::Reconnect),
        other => Err(format!("TCS closed the connection with code {other}")),
    }
}

/// Up to `max`, from the clock's sub-second noise.
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    max.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_and_acks_keep_the_connection_alive() {
        assert_eq!(
            on_message(r#"{"type":"HeartbeatMessage","message":{"healthy":true}}"#),
            Reaction::Alive
        );
        assert_eq!(
            on_message(r#"{"type":"AckPublishMetric","message":{}}"#),
            Reaction::Alive
        );
        assert_eq!(
            on_message(r#"{"type":"AckPublishHealth","message":{}}"#),
            Reaction::Alive
        );
        assert_eq!(
            on_message(r#"{"type":"AckPublishInstanceStatus","message":{}}"#),
            Reaction::Alive
        );
    }

    #[test]
    fn stop_ends_and_other_messages_are_dropped() {
        assert_eq!(
            on_message(r#"{"type":"StopTelemetrySessionMessage","message":{"message":"bye"}}"#),
            Reaction::Stop
        );
        assert_eq!(
            on_message(r#"{"type":"ServerException","message":{"message":"oops"}}"#),
            Reaction::Nothing
        );
        assert_eq!(
            on_message(r#"{"type":"SomethingNew","message":{}}"#),
            Reaction::Nothing
        );
        assert_eq!(on_message("not json"), Reaction::Nothing);
        assert_eq!(
            on_message(r#"{"type":"HeartbeatMessage","message":{"healthy":"yes"}}"#),
            Reaction::Nothing
        );
    }

    #[test]
    fn normal_closes_and_eof_reconnect_at_once() {
        let frame = |code: u16| {
            Some(CloseFrame {
                code: code.into(),
                reason: "".into(),
            })
        };
        assert_eq!(closed(frame(1000)), Ok(Ended::Reconnect));
        assert_eq!(closed(None), Ok(Ended::Reconnect));
        assert!(closed(frame(4000)).is_err());
        let eof = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(read_failure(eof), Ok(Ended::Reconnect));
        assert!(read_failure(WsError::Utf8(String::new())).is_err());
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(LIVENESS_JITTER) <= LIVENESS_JITTER);
        }
    }
}
