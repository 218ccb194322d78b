//! The ECS API calls the agent makes (RegisterContainerInstance, DiscoverPollEndpoint,
//! SubmitTaskStateChange, CreateCluster) through aws-sdk-ecs, at `ECS_BACKEND_HOST` when set,
//! with the SDK's default credential chain. One place decides which errors are retriable.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::config::SharedHttpClient;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};

/// The agent's HTTP client: hyper 1 + rustls with ring, the crate's one TLS stack.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// SDK configuration for the agent's own calls: its region, the default credential chain.
pub async fn sdk_config(region: &str, http: SharedHttpClient) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_owned()))
        .load()
        .await
}

/// `ECS_BACKEND_HOST` as an endpoint URL: the scheme is kept as given, `https://` added if none.
pub fn backend_url(host: &str) -> String {
    if host.contains("://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    }
}

/// An ECS API failure, classified once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct ApiError {
    pub operation: &'static str,
    /// The service's error code (`InvalidParameterException`, …) or `NetworkError`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn from_sdk<E, R>(operation: &'static str, e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, message) = match &e {
            SdkError::ServiceError(s) => (
                s.err().code().unwrap_or("UnknownError").to_owned(),
                s.err().message().unwrap_or_default().to_owned(),
            ),
            other => (
                "NetworkError".to_owned(),
                aws_sdk_ecs::error::DisplayErrorContext(other).to_string(),
            ),
        };
        ApiError {
            operation,
            code,
            message,
        }
    }

    /// Whether trying again later can help (throttling, server errors, the network).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ThrottlingException"
                | "ServerException"
                | "ServiceUnavailableException"
                | "LimitExceededException"
                | "InternalFailure"
                | "RequestTimeout"
                | "NetworkError"
                | "UnknownError"
        )
    }
}

/// Exponential backoff with ±20 % jitter, as the official agent's retriers use.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub current: Duration,
    pub min: Duration,
    pub max: Duration,
    pub factor: f64,
    seed: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, factor: f64) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            current: min,
            min,
            max,
            factor,
            seed,
        }
    }

    /// The next wait, jittered.
    pub fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.8 + (self.seed % 401) as f64 / 1000.0; // 0.8 ..= 1.2
        let delay = self.current.mul_f64(jitter).min(self.max);
        self.current = self.current.mul_f64(self.factor).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_host_keeps_its_scheme() {
        assert_eq!(
            backend_url("http://127.0.0.1:17080"),
            "http://127.0.0.1:17080"
        );
        assert_eq!(
            backend_url("ecs.us-west-2.amazonaws.com"),
            "https://ecs.us-west-2.amazonaws.com"
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.3);
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            last = b.next_delay();
            assert!(last >= Duration::from_millis(800) && last <= Duration::from_secs(30));
        }
        assert!(last >= Duration::from_secs(24), "reached the cap: {last:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn retriable_codes() {
        let e = |code: &str| ApiError {
            operation: "x",
            code: code.into(),
            message: String::new(),
        };
        assert!(e("ThrottlingException").is_retriable());
        assert!(e("NetworkError").is_retriable());
        assert!(!e("InvalidParameterException").is_retriable());
        assert!(!e("ClientException").is_retriable());
    }
}
