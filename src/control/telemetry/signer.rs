//! Signing of TCS frames as the official agent does: a `GET` of the session's URL in its
//! `http(s)` form whose body is the frame's JSON. The credentials fetched for the upgrade are
//! reused until they come close to expiring.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::TelemetryContext;
use crate::control::sigv4::signed_tcs_frame;

/// Credentials closer than this to expiry are fetched again before signing a frame.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Signs frames as the official agent does: a `GET` of the session's URL in its `http(s)` form,
/// the frame's JSON as the body.
pub(super) struct Signer {
    url: String,
    pub region: String,
    provider: SharedCredentialsProvider,
    pub creds: Credentials,
}

impl Signer {
    pub async fn new(ctx: &TelemetryContext, ws_url: &str) -> Result<Self, String> {
        let provider = ctx
            .sdk
            .credentials_provider()
            .ok_or("no credentials provider")?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials: {e}"))?;
        Ok(Signer {
            url: http_form(ws_url),
            region: ctx.sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            provider,
            creds,
        })
    }

    pub async fn frame(&mut self, json: &str) -> Result<String, String> {
        let expiring = self
            .creds
            .expiry()
            .is_some_and(|at| at <= SystemTime::now() + REFRESH_BEFORE_EXPIRY);
        if expiring {
            self.creds = self
                .provider
                .provide_credentials()
                .await
                .map_err(|e| format!("no credentials: {e}"))?;
        }
        signed_tcs_frame(
            &self.url,
            json,
            &self.creds,
            &self.region,
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())
    }
}

/// `wss://…` → `https://…`, `ws://…` → `http://…`.
fn http_form(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_signed_for_the_http_form_of_the_url() {
        assert_eq!(
            http_form("wss://ecs-t-1.us-west-2.amazonaws.com/ws?a=1"),
            "https://ecs-t-1.us-west-2.amazonaws.com/ws?a=1"
        );
        assert_eq!(
            http_form("ws://127.0.0.1:1/tcs/ws?a=1"),
            "http://127.0.0.1:1/tcs/ws?a=1"
        );
    }
}
