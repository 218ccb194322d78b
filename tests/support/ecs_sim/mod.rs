//! A strict, loopback-only simulator of the ECS control plane the agent talks
//! to: the ECS JSON 1.1 API, the ACS websocket and the TCS websocket, on one
//! port of 127.0.0.1.
//!
//! It is built only from the service models in `tests/fixtures/spec/` and the
//! captures of the official agent (`../shared/reference/wire-captures.md`),
//! never from the crate's own codec, so a test against it is not circular.
//! Every request is SigV4-verified with the configured secret, every body is
//! checked against the model, and everything the agent sends is recorded with
//! a timestamp (refusals and invalid frames included) for tests to assert on.
//!
//! Modules: `api` (front door), `ops` and `submit` (operations), `sigv4` (verifier),
//! `model` (smithy/api-2 validators), `ws` (the shared port, upgrades,
//! sessions), `acs` and `tcs` (per-protocol rules), `state`.
//!
//! Limits: one open ACS and one open TCS session at a time are driven (the
//! newest wins; older ones keep being recorded); the identity document's
//! signature is not verified; `smithy.api#pattern` is not checked.

mod acs;
mod api;
mod model;
mod ops;
pub mod sigv4;
mod state;
mod submit;
mod tcs;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use state::{AgentFrame, ApiCall, Recorded, WsKind, WsUpgrade};

use state::{Outbound, Shared};

/// The account, region, credentials and clusters the simulated ECS knows.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Required (as `X-Amz-Security-Token`) when set, refused when not.
    pub session_token: Option<String>,
    /// Clusters that exist from the start; others (e.g. `default`) need CreateCluster.
    pub cluster_names: Vec<String>,
    pub account_id: String,
}

impl Default for SimConfig {
    /// Region `us-west-2` (as the IMDS stub), static keys, one cluster `test`.
    fn default() -> Self {
        SimConfig {
            region: "us-west-2".into(),
            access_key_id: "AKIDECSSIMULATOR0001".into(),
            secret_access_key: "ecs-simulator-secret-access-key".into(),
            session_token: None,
            cluster_names: vec!["test".into()],
            account_id: "123456789012".into(),
        }
    }
}

impl SimConfig {
    fn identity(&self) -> sigv4::Identity {
        sigv4::Identity {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
            region: self.region.clone(),
            service: "ecs".into(),
        }
    }
}

/// A running simulator; it stops when dropped.
pub struct EcsSim {
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl EcsSim {
    /// A simulator that knows one cluster, `cluster`, and otherwise the defaults.
    pub async fn for_cluster(cluster: &str) -> EcsSim {
        Self::start(SimConfig {
            cluster_names: vec![cluster.to_owned()],
            ..SimConfig::default()
        })
        .await
    }

    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start(config: SimConfig) -> EcsSim {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the ECS simulator on 127.0.0.1");
        let addr = listener.local_addr().expect("ECS simulator address");
        let shared = Arc::new(Shared::new(config, format!("http://{addr}")));
        let (http_tx, http_rx) = mpsc::channel(64);
        let accept = tokio::spawn(ws::accept_loop(listener, http_tx, shared.clone()));
        let app = Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel();
        let http = ws::HttpConnections { rx: http_rx, addr };
        tokio::spawn(async move {
            let _ = axum::serve(http, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        EcsSim {
            shared,
            accept,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `ECS_BACKEND_HOST`.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    // ---- fault injection and test set-up

    /// While on, every API call gets 503 `ServiceUnavailableException` and every upgrade 503.
    pub fn set_api_outage(&self, on: bool) {
        self.shared.update(|s| s.outage = on);
    }

    /// The next `n` authenticated API calls get 400 `ThrottlingException`.
    pub fn throttle_next(&self, n: u32) {
        self.shared.update(|s| s.throttle = n);
    }

    /// Makes a task known to Submit*StateChange (PayloadMessages sent with `acs_send` do this).
    pub fn add_known_task(&self, task_arn: &str, container_names: &[&str]) {
        let names = container_names.iter().map(|n| n.to_string()).collect();
        self.shared
            .update(|s| s.tasks.insert(task_arn.to_string(), names));
    }

    // ---- API records

    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.shared.read(|s| s.api_calls.clone())
    }

    /// Accepted RegisterContainerInstance request bodies.
    pub fn registrations(&self) -> Vec<Recorded> {
        self.shared.read(|s| s.registrations.clone())
    }

    /// Accepted SubmitTaskStateChange request bodies.
    pub fn task_state_changes(&self) -> Vec<Recorded> {
        self.shared.read(|s| s.task_state_changes.clone())
    }

    pub fn container_state_changes(&self) -> Vec<Recorded> {
        self.shared.read(|s| s.container_state_changes.clone())
    }

    pub fn attachment_state_changes(&self) -> Vec<Recorded> {
        self.shared.read(|s| s.attachment_state_changes.clone())
    }

    /// The ARN of the most recently registered container instance.
    pub fn container_instance_arn(&self) -> Option<String> {
        self.shared
            .read(|s| s.instances.last().map(|i| i.arn.clone()))
    }

    /// The first API call matching `pred` (earlier ones included), waiting up to `timeout`.
    pub async fn wait_api_call(
        &self,
        pred: impl Fn(&ApiCall) -> bool,
        timeout: Duration,
    ) -> Option<ApiCall> {
        let find = |s: &state::State| s.api_calls.iter().find(|c| pred(c)).cloned();
        self.shared.wait_for(find, timeout).await
    }

    /// The first accepted task state change whose body matches `pred`, waiting up to `timeout`.
    pub async fn wait_task_state_change(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Recorded> {
        let find = |s: &state::State| s.task_state_changes.iter().find(|r| pred(&r.body)).cloned();
        self.shared.wait_for(find, timeout).await
    }

    // ---- websockets

    /// Every upgrade attempt on either websocket, in arrival order.
    pub fn upgrades(&self) -> Vec<WsUpgrade> {
        self.shared.read(|s| s.upgrades.clone())
    }

    /// Sends `{"type","message"}` to the agent on the open ACS session.
    pub fn acs_send(&self, frame: Value) -> Result<(), String> {
        acs::send(&self.shared, frame)
    }

    /// Frames sent to the agent on ACS (by `acs_send` and heartbeats).
    pub fn acs_sent(&self) -> Vec<Recorded> {
        self.shared.read(|s| s.acs_sent.clone())
    }

    pub fn acs_frames(&self) -> Vec<AgentFrame> {
        self.shared.read(|s| s.acs_frames.clone())
    }

    pub fn tcs_frames(&self) -> Vec<AgentFrame> {
        self.shared.read(|s| s.tcs_frames.clone())
    }

    /// The first ACS agent frame matching `pred` (earlier ones included), waiting up to `timeout`.
    pub async fn wait_acs_frame(
        &self,
        pred: impl Fn(&AgentFrame) -> bool,
        timeout: Duration,
    ) -> Option<AgentFrame> {
        let find = |s: &state::State| s.acs_frames.iter().find(|f| pred(f)).cloned();
        self.shared.wait_for(find, timeout).await
    }

    pub async fn wait_tcs_frame(
        &self,
        pred: impl Fn(&AgentFrame) -> bool,
        timeout: Duration,
    ) -> Option<AgentFrame> {
        let find = |s: &state::State| s.tcs_frames.iter().find(|f| pred(f)).cloned();
        self.shared.wait_for(find, timeout).await
    }

    /// Accepted ACS connections so far.
    pub fn acs_connections(&self) -> u64 {
        self.connections(WsKind::Acs)
    }

    pub fn tcs_connections(&self) -> u64 {
        self.connections(WsKind::Tcs)
    }

    fn connections(&self, kind: WsKind) -> u64 {
        self.shared
            .read(|s| s.connections.get(&kind).copied().unwrap_or(0))
    }

    /// Waits until the `n`th connection of `kind` (or a later one) is the open one, so that
    /// what is sent next goes to it and not to an older connection still closing.
    pub async fn wait_connected(&self, kind: WsKind, n: u64, timeout: Duration) -> bool {
        let find = |s: &state::State| {
            s.open
                .get(&kind)
                .is_some_and(|(session, _)| session.id >= n)
                .then_some(())
        };
        self.shared.wait_for(find, timeout).await.is_some()
    }

    /// Whether a session of `kind` is open.
    pub fn is_connected(&self, kind: WsKind) -> bool {
        self.shared.read(|s| s.open.contains_key(&kind))
    }

    /// Sends a `HeartbeatMessage` every `interval` on sessions of `kind` (`None`: never, the default).
    pub fn set_heartbeat(&self, kind: WsKind, interval: Option<Duration>) {
        self.shared.update(|s| match interval {
            Some(i) => s.heartbeat.insert(kind, i),
            None => s.heartbeat.remove(&kind),
        });
    }

    /// Drops the open ACS connection without a close frame.
    pub fn acs_disconnect(&self) {
        self.command(WsKind::Acs, Outbound::Drop);
    }

    /// Sends a close frame with `code` on the open ACS connection.
    pub fn acs_close(&self, code: u16) {
        self.command(WsKind::Acs, Outbound::Close(code));
    }

    /// Drops the open TCS connection without a close frame.
    pub fn tcs_disconnect(&self) {
        self.command(WsKind::Tcs, Outbound::Drop);
    }

    fn command(&self, kind: WsKind, command: Outbound) {
        self.shared.read(|s| {
            if let Some((_, tx)) = s.open.get(&kind) {
                let _ = tx.send(command);
            }
        });
    }
}

impl Drop for EcsSim {
    fn drop(&mut self) {
        self.accept.abort();
        self.acs_disconnect();
        self.tcs_disconnect();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
