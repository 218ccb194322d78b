//! What the simulator remembers: the control-plane state (clusters, container
//! instances, known tasks), the open websocket sessions, the fault switches,
//! and the record of everything the agent sent.
//!
//! One mutex guards it all; every change bumps a `watch` counter so the
//! `wait_*` accessors wake up. Nothing here does I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::SimConfig;

/// One request body the simulator accepted, with its arrival time.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: SystemTime,
    pub body: Value,
}

/// One call to the ECS JSON API, accepted or not.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub at: SystemTime,
    /// The operation named by `X-Amz-Target` (empty if there was none).
    pub operation: String,
    pub status: u16,
    /// The `__type` of the error answer, `None` on success.
    pub error: Option<String>,
    pub error_message: Option<String>,
    /// The parsed body, `Null` if it was not JSON.
    pub body: Value,
}

/// Which websocket a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsKind {
    Acs,
    Tcs,
}

/// One websocket upgrade attempt, accepted or refused.
#[derive(Debug, Clone)]
pub struct WsUpgrade {
    pub at: SystemTime,
    pub kind: WsKind,
    /// Path and raw query as sent, e.g. `/acs/ws?agentHash=…`.
    pub path_and_query: String,
    /// Decoded query parameters in the order sent.
    pub query: Vec<(String, String)>,
    /// ACS only: the `sendCredentials` value, if it parsed as a boolean.
    pub send_credentials: Option<bool>,
    pub accepted: bool,
    /// The refusal body (`{"<Exception>":"<message>"}`) when refused.
    pub refusal: Option<String>,
}

/// One frame the agent sent on ACS or TCS.
#[derive(Debug, Clone)]
pub struct AgentFrame {
    pub at: SystemTime,
    /// The session (1-based, per kind) the frame arrived on.
    pub connection: u64,
    /// The whole frame as text (TCS: header block, blank line and JSON).
    pub raw: String,
    /// TCS only: the signed header block.
    pub headers: Vec<(String, String)>,
    /// The JSON envelope, if it parsed.
    pub json: Option<Value>,
    /// The envelope's `type`, if present.
    pub msg_type: Option<String>,
    pub valid: bool,
    pub error: Option<String>,
}

impl AgentFrame {
    /// The envelope's `message` (or `Null`).
    pub fn message(&self) -> &Value {
        self.json
            .as_ref()
            .and_then(|j| j.get("message"))
            .unwrap_or(&Value::Null)
    }

    /// `message.messageId` as a string, if present.
    pub fn message_id(&self) -> Option<&str> {
        self.message().get("messageId").and_then(Value::as_str)
    }
}

/// A container instance the simulator issued.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub arn: String,
    pub cluster: String,
    pub status: String,
    pub version: u64,
    /// The `containerInstance` object returned by RegisterContainerInstance.
    pub record: Value,
}

/// A command to an open websocket session.
#[derive(Debug)]
pub(super) enum Outbound {
    Text(String),
    Close(u16),
    Drop,
}

/// An accepted upgrade: what the session needs to check the agent's frames.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub id: u64,
    pub path: String,
    pub raw_query: String,
    pub cluster: String,
    pub instance_arn: String,
}

#[derive(Default)]
pub(super) struct State {
    pub clusters: BTreeSet<String>,
    pub instances: Vec<Instance>,
    pub client_tokens: HashMap<String, String>,
    /// Task ARN → container names (from PayloadMessages or `add_known_task`).
    pub tasks: HashMap<String, Vec<String>>,
    pub outage: bool,
    pub throttle: u32,
    pub heartbeat: HashMap<WsKind, Duration>,
    pub heartbeats_sent: u64,
    pub api_calls: Vec<ApiCall>,
    pub registrations: Vec<Recorded>,
    pub task_state_changes: Vec<Recorded>,
    pub container_state_changes: Vec<Recorded>,
    pub attachment_state_changes: Vec<Recorded>,
    pub upgrades: Vec<WsUpgrade>,
    pub acs_frames: Vec<AgentFrame>,
    pub tcs_frames: Vec<AgentFrame>,
    pub acs_sent: Vec<Recorded>,
    pub connections: HashMap<WsKind, u64>,
    /// The open session of each kind (the newest one wins).
    pub open: HashMap<WsKind, (Session, mpsc::UnboundedSender<Outbound>)>,
}

impl State {
    pub fn instance(&self, reference: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.arn == reference || i.arn.rsplit('/').next() == Some(reference))
    }

    pub fn instance_mut(&mut self, reference: &str) -> Option<&mut Instance> {
        self.instances
            .iter_mut()
            .find(|i| i.arn == reference || i.arn.rsplit('/').next() == Some(reference))
    }

    /// Whether an ACS session for `arn` is open.
    pub fn agent_connected(&self, arn: &str) -> bool {
        self.open
            .get(&WsKind::Acs)
            .is_some_and(|(s, tx)| s.instance_arn == arn && !tx.is_closed())
    }

    pub fn frames_mut(&mut self, kind: WsKind) -> &mut Vec<AgentFrame> {
        match kind {
            WsKind::Acs => &mut self.acs_frames,
            WsKind::Tcs => &mut self.tcs_frames,
        }
    }
}

/// The state plus its change counter and the fixed facts of this simulator.
pub(super) struct Shared {
    pub config: SimConfig,
    pub endpoint: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(config: SimConfig, endpoint: String) -> Shared {
        let state = State {
            clusters: config.cluster_names.iter().cloned().collect(),
            ..State::default()
        };
        Shared {
            config,
            endpoint,
            state: Mutex::new(state),
            changed: watch::channel(0).0,
        }
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    /// Changes the state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
        r
    }

    /// Polls `find` after every change until it yields or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        find: impl Fn(&State) -> Option<T>,
        timeout: Duration,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(found) = self.read(&find) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.read(&find),
            }
        }
    }

    pub fn cluster_arn(&self, name: &str) -> String {
        let c = &self.config;
        format!("arn:aws:ecs:{}:{}:cluster/{name}", c.region, c.account_id)
    }
}
