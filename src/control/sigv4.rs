//! The ACS/TCS websocket endpoint: URL building and SigV4 signing, as the official agent does it.
//!
//! * URLs: `<endpoint>/ws?<query>` with the official query parameters, sorted and escaped as Go's
//!   `url.Values.Encode` does (space → `+`, `:` → `%3A`, `/` → `%2F`, `+` → `%2B`), with the
//!   scheme rewritten `https → wss`, `http → ws`.
//! * The upgrade `GET` is signed in headers for service `ecs`, over `host` (plus `x-amz-date`, and
//!   `x-amz-security-token` for temporary credentials) and the query, with an empty payload and
//!   no `X-Amz-Content-Sha256` header.
//! * Every TCS frame is signed on its own: a `GET` of the TCS URL whose payload is the JSON
//!   envelope, written as `Authorization`, `Host`, `X-Amz-Date` (and `X-Amz-Security-Token`)
//!   header lines in that (Go's sorted) order, an empty line, then the JSON.
//!
//! Pure: time and credentials are passed in; no I/O. Verifying signatures is the test control
//! plane's job, not this module's.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SigningError, SigningInstructions, SigningSettings,
};
use aws_sigv4::sign::v4;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{header, Uri};

/// The service name ACS and TCS signatures are scoped to.
const SERVICE: &str = "ecs";

/// Why a request or frame could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The upgrade request has no (ASCII) `Host` header to sign.
    #[error("websocket request has no Host header")]
    NoHost,
    /// The TCS URL is not an absolute URL with a host.
    #[error("not an absolute URL with a host: {url:?}")]
    InvalidUrl { url: String },
    /// The signer's parameters were incomplete (a bug, not a runtime condition).
    #[error("sigv4 parameters: {source}")]
    Params {
        #[from]
        source: v4::signing_params::BuildError,
    },
    /// The signer refused the request (e.g. an unparsable URI).
    #[error("sigv4 signing: {source}")]
    Signing {
        #[from]
        source: SigningError,
    },
}

/// Query parameters of the ACS websocket URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcsParams {
    /// `ECS_CLUSTER` as configured (name or ARN); sent as `clusterArn`.
    pub cluster: String,
    pub container_instance_arn: String,
    /// Short git hash of the agent build.
    pub agent_hash: String,
    /// `1.105.1`, without a leading `v`.
    pub agent_version: String,
    /// The Docker server version (sent as `DockerVersion: <v>`), or `containerd` (sent as is);
    /// `None` or empty when unknown (omitted).
    pub docker_version: Option<String>,
    /// `true` on the first connection after process start: ACS then pushes the credentials of
    /// all running tasks.
    pub send_credentials: bool,
}

/// Query parameters of the TCS websocket URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcsParams {
    /// `ECS_CLUSTER` as configured; sent as `cluster`.
    pub cluster: String,
    /// Sent as `containerInstance`.
    pub container_instance_arn: String,
    pub agent_hash: String,
    pub agent_version: String,
    /// The bare Docker server version; `None` when the runtime is not Docker (omitted).
    pub docker_version: Option<String>,
}

/// `wss://…/ws?agentHash=…&agentVersion=…&clusterArn=…&containerInstanceArn=…&dockerVersion=…
/// &protocolVersion=2&sendCredentials=…&seqNum=1`.
pub fn acs_url(endpoint: &str, p: &AcsParams) -> String {
    let mut query = vec![
        ("agentHash", p.agent_hash.clone()),
        ("agentVersion", p.agent_version.clone()),
        ("clusterArn", p.cluster.clone()),
        ("containerInstanceArn", p.container_instance_arn.clone()),
        ("protocolVersion", "2".to_owned()),
        ("sendCredentials", p.send_credentials.to_string()),
        ("seqNum", "1".to_owned()),
    ];
    if let Some(version) = p.docker_version.as_deref().filter(|v| !v.is_empty()) {
        let formatted = if version == "containerd" {
            version.to_owned()
        } else {
            format!("DockerVersion: {version}")
        };
        query.push(("dockerVersion", formatted));
    }
    websocket_url(endpoint, query)
}

/// `wss://…/ws?agentHash=…&agentVersion=…&cluster=…&containerInstance=…&dockerVersion=…`.
pub fn tcs_url(endpoint: &str, p: &TcsParams) -> String {
    let mut query = vec![
        ("agentHash", p.agent_hash.clone()),
        ("agentVersion", p.agent_version.clone()),
        ("cluster", p.cluster.clone()),
        ("containerInstance", p.container_instance_arn.clone()),
    ];
    if let Some(version) = p.docker_version.as_deref().filter(|v| !v.is_empty()) {
        query.push(("dockerVersion", version.to_owned()));
    }
    websocket_url(endpoint, query)
}

/// Endpoint with its scheme made a websocket one, `/` appended if missing, `ws?` and the
/// sorted, escaped query. An endpoint without a scheme is taken as `https`.
fn websocket_url(endpoint: &str, mut query: Vec<(&str, String)>) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => "wss".to_owned(),
        "http" => "ws".to_owned(),
        other => other.to_owned(),
    };
    let slash = if rest.ends_with('/') { "" } else { "/" };
    query.sort_by(|a, b| a.0.cmp(b.0));
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", go_query_escape(k), go_query_escape(v)))
        .collect();
    format!("{scheme}://{rest}{slash}ws?{}", encoded.join("&"))
}

/// Go's `url.QueryEscape`: unreserved characters stay, space becomes `+`, the rest `%XX`.
fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Signs the websocket upgrade request in place: adds `authorization`, `x-amz-date` and, for
/// temporary credentials, `x-amz-security-token`. Only `Host` (as the request carries it) is
/// signed among the existing headers; the query is part of the signature.
pub fn sign_upgrade(
    req: &mut Request,
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        req.headers_mut().remove(name);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(SignError::NoHost)?
        .to_owned();
    let uri = req.uri().to_string();
    let instructions = sign_get(&uri, &host, b"", creds, region, time)?;
    instructions.apply_to_request_http1x(req);
    Ok(())
}

/// One signed TCS frame: the header block, an empty line, then `body` (the JSON envelope).
/// `url` is the TCS websocket URL (`ws`/`wss` or `http`/`https`, the signature is the same).
pub fn signed_tcs_frame(
    url: &str,
    body: &str,
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<String, SignError> {
    let invalid = || SignError::InvalidUrl {
        url: url.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    let host = host_header(&uri).ok_or_else(invalid)?;
    let instructions = sign_get(url, &host, body.as_bytes(), creds, region, time)?;
    let mut lines: Vec<(String, &str)> = instructions
        .headers()
        .map(|(name, value)| (go_header_name(name), value))
        .collect();
    lines.push(("Host".to_owned(), &host));
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut frame = String::with_capacity(body.len() + 512);
    for (name, value) in lines {
        frame.push_str(&name);
        frame.push_str(": ");
        frame.push_str(value);
        frame.push_str("\r\n");
    }
    frame.push_str("\r\n");
    frame.push_str(body);
    Ok(frame)
}

/// SigV4 (service `ecs`) of a `GET` of `uri` with only `host` among its headers.
fn sign_get(
    uri: &str,
    host: &str,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<SigningInstructions, SignError> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        "GET",
        uri,
        std::iter::once(("host", host)),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    Ok(instructions)
}

/// The `Host` value Go's signer uses: the URL's host and port, without a default port.
fn host_header(uri: &Uri) -> Option<String> {
    let host = uri.host().filter(|h| !h.is_empty())?;
    let default_port = match uri.scheme_str() {
        Some("https" | "wss") => Some(443),
        Some("http" | "ws") => Some(80),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

/// Go's canonical header form: `x-amz-date` → `X-Amz-Date`.
fn go_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    const ARN: &str =
        "arn:aws:ecs:us-east-1:123456789012:container-instance/test/0123456789abcdef0123456789abcdef";
    /// Path and query of the official agent's upgrades (wire-captures §6).
    const CAPTURED_ACS: &str = "/acs/ws?agentHash=a8b3e7d3&agentVersion=1.105.1&clusterArn=test&containerInstanceArn=arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acontainer-instance%2Ftest%2F0123456789abcdef0123456789abcdef&dockerVersion=DockerVersion%3A+20.10.24%2Bdfsg1&protocolVersion=2&sendCredentials=true&seqNum=1";
    const CAPTURED_TCS: &str = "/tcs/ws?agentHash=a8b3e7d3&agentVersion=1.105.1&cluster=test&containerInstance=arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acontainer-instance%2Ftest%2F0123456789abcdef0123456789abcdef&dockerVersion=20.10.24%2Bdfsg1";

    fn acs_params() -> AcsParams {
        AcsParams {
            cluster: "test".into(),
            container_instance_arn: ARN.into(),
            agent_hash: "a8b3e7d3".into(),
            agent_version: "1.105.1".into(),
            docker_version: Some("20.10.24+dfsg1".into()),
            send_credentials: true,
        }
    }

    fn tcs_params() -> TcsParams {
        TcsParams {
            cluster: "test".into(),
            container_instance_arn: ARN.into(),
            agent_hash: "a8b3e7d3".into(),
            agent_version: "1.105.1".into(),
            docker_version: Some("20.10.24+dfsg1".into()),
        }
    }

    /// 2026-11-26T12:11:05Z, the capture's `X-Amz-Date`.
    fn capture_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_695_065)
    }

    fn creds(key: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials::new(key, secret, token.map(str::to_owned), None, "test")
    }

    #[test]
    fn acs_url_matches_the_captured_request_line() {
        let url = acs_url("http://127.0.0.1:17080/acs/", &acs_params());
        assert_eq!(url, format!("ws://127.0.0.1:17080{CAPTURED_ACS}"));
    }

    #[test]
    fn tcs_url_matches_the_captured_request_line() {
        let url = tcs_url("http://127.0.0.1:17080/tcs/", &tcs_params());
        assert_eq!(url, format!("ws://127.0.0.1:17080{CAPTURED_TCS}"));
    }

    #[test]
    fn endpoints_get_a_websocket_scheme_and_a_slash() {
        let p = tcs_params();
        assert!(tcs_url("https://ecs-t-1.us-east-1.amazonaws.com", &p)
            .starts_with("wss://ecs-t-1.us-east-1.amazonaws.com/ws?agentHash="));
        assert!(tcs_url("http://127.0.0.1:1", &p).starts_with("ws://127.0.0.1:1/ws?"));
        assert!(tcs_url("HTTPS://h/x/", &p).starts_with("wss://h/x/ws?"));
        assert!(tcs_url("h.example", &p).starts_with("wss://h.example/ws?"));
    }

    #[test]
    fn docker_version_is_prefixed_for_acs_only_and_omitted_when_unknown() {
        let mut p = acs_params();
        p.docker_version = Some("containerd".into());
        assert!(acs_url("https://h", &p).contains("&dockerVersion=containerd&"));
        for unknown in [None, Some(String::new())] {
            p.docker_version = unknown;
            assert!(!acs_url("https://h", &p).contains("dockerVersion"));
        }
        p.send_credentials = false;
        assert!(acs_url("https://h", &p).ends_with("&sendCredentials=false&seqNum=1"));
        let mut t = tcs_params();
        t.docker_version = None;
        assert!(!tcs_url("https://h", &t).contains("dockerVersion"));
    }

    #[test]
    fn query_values_are_escaped_like_go() {
        assert_eq!(
            go_query_escape("a b+c:d/e~f_g.h-i"),
            "a+b%2Bc%3Ad%2Fe~f_g.h-i"
        );
        assert_eq!(go_query_escape("é&="), "%C3%A9%26%3D");
    }

    #[test]
    fn upgrade_signature_matches_the_official_agent() {
        // The capture's agent signed with AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test.
        let url = acs_url("http://127.0.0.1:17080/acs/", &acs_params());
        let mut req = url.into_client_request().unwrap();
        sign_upgrade(
            &mut req,
            &creds("test", "test", None),
            "us-east-1",
            capture_time(),
        )
        .unwrap();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("authorization").as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/ecs/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5ad12f2558f9f9a6efc321b36f10c9bca879eb6896071fe1a9e83d530fa974f6"
            )
        );
        assert_eq!(header("x-amz-date").as_deref(), Some("20261126T121105Z"));
        assert_eq!(header("x-amz-security-token"), None);
        assert_eq!(header("x-amz-content-sha256"), None);
        assert_eq!(
            req.uri().to_string(),
            format!("ws://127.0.0.1:17080{CAPTURED_ACS}")
        );
    }

    #[test]
    fn temporary_credentials_sign_the_session_token() {
        let url = acs_url("http://127.0.0.1:17080/acs/", &acs_params());
        let mut req = url.into_client_request().unwrap();
        let temporary = creds(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token"),
        );
        sign_upgrade(&mut req, &temporary, "us-east-1", capture_time()).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        // Recomputed independently with python3 hmac/hashlib (see tests/codec_golden.rs).
        assert!(auth.ends_with(
            "SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=e80564c271fed9a5fc7fc703c8a489a08037c040ce62654d5cf363474b2bb4f0"
        ));
        assert_eq!(req.headers()["x-amz-security-token"], "session-token");

        // Re-signing with permanent credentials drops the stale token header.
        let permanent = creds(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        sign_upgrade(&mut req, &permanent, "us-east-1", capture_time()).unwrap();
        assert!(req.headers().get("x-amz-security-token").is_none());
        assert!(req.headers()["authorization"]
            .to_str()
            .unwrap()
            .contains("SignedHeaders=host;x-amz-date,"));
    }

    #[test]
    fn an_upgrade_without_host_cannot_be_signed() {
        let mut req = "ws://h/ws".into_client_request().unwrap();
        req.headers_mut().remove(header::HOST);
        let err = sign_upgrade(
            &mut req,
            &creds("a", "b", None),
            "us-east-1",
            capture_time(),
        );
        assert!(matches!(err, Err(SignError::NoHost)));
    }

    #[test]
    fn tcs_frames_carry_go_ordered_headers_then_the_json() {
        let url = tcs_url("http://127.0.0.1:17080/tcs/", &tcs_params());
        let body = r#"{"type":"PublishMetricsRequest","message":{}}"#;
        let temporary = creds("AKID", "secret", Some("tok"));
        let frame = signed_tcs_frame(&url, body, &temporary, "us-east-1", capture_time()).unwrap();
        let (head, json) = frame.split_once("\r\n\r\n").unwrap();
        assert_eq!(json, body);
        let names: Vec<&str> = head
            .split("\r\n")
            .map(|line| line.split_once(": ").unwrap().0)
            .collect();
        assert_eq!(
            names,
            [
                "Authorization",
                "Host",
                "X-Amz-Date",
                "X-Amz-Security-Token"
            ]
        );
        assert!(head.contains("\r\nHost: 127.0.0.1:17080\r\n"));
        assert!(head.contains("SignedHeaders=host;x-amz-date;x-amz-security-token, "));
        assert!(head.ends_with("\r\nX-Amz-Security-Token: tok"));
    }

    #[test]
    fn the_tcs_frame_signature_covers_the_body() {
        let url = tcs_url("http://127.0.0.1:17080/tcs/", &tcs_params());
        let c = creds("test", "test", None);
        let sign = |body| signed_tcs_frame(&url, body, &c, "us-east-1", capture_time()).unwrap();
        assert_ne!(
            sign("{}").split_once("\r\n").unwrap().0,
            sign("[]").split_once("\r\n").unwrap().0
        );
        // The scheme does not matter: Go signs the https form, the socket uses wss.
        let https = url.replacen("ws://", "http://", 1);
        let other = signed_tcs_frame(&https, "{}", &c, "us-east-1", capture_time()).unwrap();
        assert_eq!(other, sign("{}"));
    }

    #[test]
    fn default_ports_are_not_part_of_the_host() {
        let host = |u: &str| host_header(&u.parse().unwrap());
        assert_eq!(host("wss://h.example:443/ws").as_deref(), Some("h.example"));
        assert_eq!(
            host("https://h.example:8443/ws").as_deref(),
            Some("h.example:8443")
        );
        assert_eq!(host("ws://127.0.0.1:80/ws").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("ws://[::1]:17080/ws").as_deref(), Some("[::1]:17080"));
        assert!(matches!(
            signed_tcs_frame("/ws", "{}", &creds("a", "b", None), "r", capture_time()),
            Err(SignError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn header_names_take_go_canonical_form() {
        assert_eq!(
            go_header_name("x-amz-security-token"),
            "X-Amz-Security-Token"
        );
        assert_eq!(go_header_name("authorization"), "Authorization");
    }
}
