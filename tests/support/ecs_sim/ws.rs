//! One port for the API and both websockets, and the websocket sessions.
//!
//! Every accepted TCP connection is peeked at: a request line starting
//! `GET /acs/ws` or `GET /tcs/ws` goes to tungstenite's `accept_hdr_async`,
//! anything else is handed to the axum server through `HttpConnections`, an
//! `axum::serve::Listener`. The upgrade is refused unless SigV4 (empty payload,
//! `host` and `x-amz-date` signed, query included) and the protocol's query
//! parameters check out; refusals carry the bare `{"<Exception>":"<message>"}`
//! body ACS/TCS use. A session then relays `Outbound` commands, sends
//! heartbeats when configured, and hands each agent frame to `acs`/`tcs`.
//!
//! Limits: a websocket upgrade must be the first request on its connection
//! (true of tungstenite and gorilla clients). An upgrade is refused during an
//! API outage as well.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::sigv4::{self, percent_decode, Received};
use super::state::{AgentFrame, Outbound, Session, Shared, WsKind, WsUpgrade};
use super::{acs, tcs};

/// The connections that are not websocket upgrades, for `axum::serve`.
pub(super) struct HttpConnections {
    pub rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    pub addr: SocketAddr,
}

impl axum::serve::Listener for HttpConnections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.rx.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Accepts connections forever, routing each one to a websocket session or to axum.
pub(super) async fn accept_loop(
    listener: TcpListener,
    http: mpsc::Sender<(TcpStream, SocketAddr)>,
    shared: Arc<Shared>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (http, shared) = (http.clone(), shared.clone());
        tokio::spawn(async move {
            match websocket_kind(&stream).await {
                Some(kind) => upgrade(stream, kind, shared).await,
                None => {
                    let _ = http.send((stream, peer)).await;
                }
            }
        });
    }
}

/// Peeks at the request line without consuming it.
async fn websocket_kind(stream: &TcpStream) -> Option<WsKind> {
    const PREFIXES: [(&[u8], WsKind); 2] =
        [(b"GET /acs/ws", WsKind::Acs), (b"GET /tcs/ws", WsKind::Tcs)];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 12];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        let head = &buf[..n];
        if n == buf.len() {
            let (prefix, rest) = head.split_at(11);
            let kind = PREFIXES.iter().find(|(p, _)| *p == prefix).map(|(_, k)| *k);
            return kind.filter(|_| matches!(rest[0], b'?' | b' '));
        }
        let possible = PREFIXES.iter().any(|(p, _)| p.starts_with(head));
        if n == 0 || !possible || Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Why an upgrade is refused: HTTP status and the bare error body.
pub(super) struct Refusal {
    pub status: u16,
    pub exception: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, exception: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            exception,
            message: message.into(),
        }
    }

    fn body(&self) -> String {
        json!({ self.exception: self.message }).to_string()
    }
}

/// The query as a map; refuses unknown, repeated, missing and empty parameters.
pub(super) fn params<'a>(
    query: &'a [(String, String)],
    required: &[&str],
    optional: &[&str],
) -> Result<HashMap<&'a str, &'a str>, Refusal> {
    let bad = |m: String| Refusal::new(400, "BadRequestException", m);
    let mut map = HashMap::new();
    for (k, v) in query {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(bad(format!("unknown query parameter {k:?}")));
        }
        if v.is_empty() {
            return Err(bad(format!("query parameter {k:?} is empty")));
        }
        if map.insert(k.as_str(), v.as_str()).is_some() {
            return Err(bad(format!("query parameter {k:?} is repeated")));
        }
    }
    match required.iter().find(|r| !map.contains_key(**r)) {
        Some(missing) => Err(bad(format!("missing query parameter {missing:?}"))),
        None => Ok(map),
    }
}

/// `agentVersion` is a bare `MAJOR.MINOR.PATCH` (no leading `v`), as the official agent sends it.
pub(super) fn check_agent_version(p: &HashMap<&str, &str>) -> Result<(), Refusal> {
    let version = p.get("agentVersion").copied().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) {
        return Ok(());
    }
    Err(Refusal::new(
        400,
        "BadRequestException",
        format!("agentVersion must be MAJOR.MINOR.PATCH, not {version:?}"),
    ))
}

async fn upgrade(stream: TcpStream, kind: WsKind, shared: Arc<Shared>) {
    let mut accepted: Option<Session> = None;
    #[allow(clippy::result_large_err)] // tungstenite's ErrorResponse is large; its API, not ours
    let callback = |req: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match check_upgrade(&shared, kind, req) {
            Ok(session) => {
                accepted = Some(session);
                Ok(response)
            }
            Err(refusal) => {
                let mut error = ErrorResponse::new(Some(refusal.body()));
                *error.status_mut() = refusal.status.try_into().unwrap_or_default();
                error.headers_mut().insert(
                    "content-type",
                    "application/json".parse().expect("header value"),
                );
                Err(error)
            }
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if let Some(session) = accepted {
        run_session(ws, kind, session, &shared).await;
    }
}

/// Checks and records one upgrade request.
fn check_upgrade(shared: &Shared, kind: WsKind, req: &Request) -> Result<Session, Refusal> {
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let outcome = authorize(shared, req, &raw_query).and_then(|()| match kind {
        WsKind::Acs => shared.read(|s| acs::check_query(s, &query)),
        WsKind::Tcs => shared.read(|s| tcs::check_query(s, &query)),
    });
    let send_credentials = query
        .iter()
        .find(|(k, _)| kind == WsKind::Acs && k == "sendCredentials")
        .and_then(|(_, v)| v.parse().ok());
    shared.update(|s| {
        s.upgrades.push(WsUpgrade {
            at: SystemTime::now(),
            kind,
            path_and_query: req.uri().to_string(),
            query: query.clone(),
            send_credentials,
            accepted: outcome.is_ok(),
            refusal: outcome.as_ref().err().map(Refusal::body),
        });
        let (cluster, instance_arn) = outcome?;
        let count = s.connections.entry(kind).or_default();
        *count += 1;
        Ok(Session {
            id: *count,
            path: req.uri().path().to_string(),
            raw_query,
            cluster,
            instance_arn,
        })
    })
}

fn authorize(shared: &Shared, req: &Request, raw_query: &str) -> Result<(), Refusal> {
    if shared.read(|s| s.outage) {
        return Err(Refusal::new(503, "ServerException", "Service Unavailable"));
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let received = Received {
        method: "GET",
        path: req.uri().path(),
        query: raw_query,
        headers: &headers,
        body: b"",
    };
    sigv4::verify(&received, &shared.config.identity(), SystemTime::now()).map_err(|e| {
        Refusal::new(
            403,
            "AccessDeniedException",
            format!("{}: {}", e.code(), e.message()),
        )
    })
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn run_session(ws: Ws, kind: WsKind, session: Session, shared: &Shared) {
    let (tx, mut commands) = mpsc::unbounded_channel();
    shared.update(|s| s.open.insert(kind, (session.clone(), tx)));
    let (mut sink, mut frames) = ws.split();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_heartbeat = Instant::now();
    let mut silently = false;
    loop {
        let reply = tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => on_text(shared, kind, &session, text.as_str()),
                Some(Ok(Message::Binary(bytes))) => {
                    record_binary(shared, kind, &session, &bytes);
                    None
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => None,
            },
            // A session replaced by a newer one gets no more commands but stays open.
            Some(command) = commands.recv() => match command {
                Outbound::Text(text) => Some(Message::text(text)),
                Outbound::Close(code) => Some(Message::Close(Some(CloseFrame {
                    code: code.into(),
                    reason: "".into(),
                }))),
                Outbound::Drop => {
                    silently = true;
                    break;
                }
            },
            _ = tick.tick() => {
                let interval = shared.read(|s| s.heartbeat.get(&kind).copied());
                match interval.filter(|i| last_heartbeat.elapsed() >= *i) {
                    Some(_) => {
                        last_heartbeat = Instant::now();
                        Some(Message::text(heartbeat(shared, kind)))
                    }
                    None => None,
                }
            }
        };
        if let Some(message) = reply {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    }
    if !silently {
        let _ = sink.close().await; // completes a closing handshake the agent started
    }
    shared.update(|s| {
        if s.open
            .get(&kind)
            .is_some_and(|(open, _)| open.id == session.id)
        {
            s.open.remove(&kind);
        }
    });
}

fn on_text(shared: &Shared, kind: WsKind, session: &Session, text: &str) -> Option<Message> {
    match kind {
        WsKind::Acs => {
            acs::on_frame(shared, session, text);
            None
        }
        WsKind::Tcs => tcs::on_frame(shared, session, text).map(Message::text),
    }
}

fn heartbeat(shared: &Shared, kind: WsKind) -> String {
    match kind {
        WsKind::Acs => acs::heartbeat(shared),
        WsKind::Tcs => tcs::heartbeat(),
    }
}

fn record_binary(shared: &Shared, kind: WsKind, session: &Session, bytes: &[u8]) {
    shared.update(|s| {
        s.frames_mut(kind).push(AgentFrame {
            at: SystemTime::now(),
            connection: session.id,
            raw: String::from_utf8_lossy(bytes).into_owned(),
            headers: vec![],
            json: None,
            msg_type: None,
            valid: false,
            error: Some("binary frame: ACS and TCS frames are text".into()),
        })
    });
}
