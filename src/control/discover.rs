//! `DiscoverPollEndpoint`: where ACS and TCS are. Cached for 12 hours; when the call fails, an
//! expired answer is used rather than none, as the official agent does.

use std::time::{Duration, Instant};

use super::api::ApiError;

/// How long an answer is trusted.
pub const CACHE_FOR: Duration = Duration::from_secs(12 * 3600);

/// The session endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub acs: String,
    pub tcs: String,
}

/// The cached discovery for one container instance.
pub struct Discovery {
    client: aws_sdk_ecs::Client,
    cluster: String,
    instance_arn: String,
    cache: Option<(Endpoints, Instant)>,
}

impl Discovery {
    pub fn new(client: aws_sdk_ecs::Client, cluster: String, instance_arn: String) -> Self {
        Discovery {
            client,
            cluster,
            instance_arn,
            cache: None,
        }
    }

    /// The endpoints: cached when fresh, asked for otherwise, stale if asking fails.
    pub async fn endpoints(&mut self) -> Result<Endpoints, ApiError> {
        if let Some((e, at)) = &self.cache {
            if at.elapsed() < CACHE_FOR {
                return Ok(e.clone());
            }
        }
        match self.ask().await {
            Ok(e) => {
                self.cache = Some((e.clone(), Instant::now()));
                Ok(e)
            }
            Err(err) => match &self.cache {
                Some((stale, _)) => {
                    tracing::warn!(error = %err, "DiscoverPollEndpoint failed; using the expired answer");
                    Ok(stale.clone())
                }
                None => Err(err),
            },
        }
    }

    async fn ask(&self) -> Result<Endpoints, ApiError> {
        let out = self
            .client
            .discover_poll_endpoint()
            .cluster(&self.cluster)
            .container_instance(&self.instance_arn)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("DiscoverPollEndpoint", e))?;
        let missing = |what: &str| ApiError {
            operation: "DiscoverPollEndpoint",
            code: "ServerException".into(),
            message: format!("no {what} in the response"),
        };
        Ok(Endpoints {
            acs: out.endpoint.ok_or_else(|| missing("endpoint"))?,
            tcs: out
                .telemetry_endpoint
                .ok_or_else(|| missing("telemetryEndpoint"))?,
        })
    }
}
