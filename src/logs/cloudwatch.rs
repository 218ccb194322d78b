//! Delivering one batch to CloudWatch Logs: `PutLogEvents` with the task's execution role (or
//! the instance's credentials), creating the stream (and the group, with
//! `awslogs-create-group`) when CloudWatch says it does not exist, retrying throttling, server
//! errors and network failures with jittered backoff for as long as it takes, and counting the
//! events CloudWatch rejects. Credentials come from the store at each call, so refreshed
//! execution-role credentials are used as soon as ACS sends them; they are never logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;

use super::batch::Event;
use crate::control::api::{ApiError, Backoff};
use crate::credentials;

/// Where a container's events go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Destination {
    pub region: String,
    pub endpoint: Option<String>,
    pub group: String,
    pub stream: String,
    pub create_group: bool,
    /// The execution role's credentials ID (`logsAuthStrategy` ExecutionRole); `None` for the
    /// instance's own credentials.
    pub execution_credentials_id: Option<String>,
}

/// Counters for observers (tests, benchmarks, logs).
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    pub rejected: AtomicU64,
    pub retries: AtomicU64,
}

/// CloudWatch Logs clients built from the agent's SDK configuration.
#[derive(Clone)]
pub struct CloudWatch {
    sdk: SdkConfig,
    store: credentials::Store,
}

impl CloudWatch {
    pub fn new(sdk: SdkConfig, store: credentials::Store) -> Self {
        CloudWatch { sdk, store }
    }

    fn client(&self, dest: &Destination) -> Result<Client, String> {
        let mut conf = aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(dest.region.clone()));
        if let Some(endpoint) = &dest.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        if let Some(id) = &dest.execution_credentials_id {
            let role = self
                .store
                .get(id)
                .ok_or("the task's execution role credentials are not available yet")?
                .credentials;
            conf = conf.credentials_provider(Credentials::new(
                role.access_key_id,
                role.secret_access_key,
                Some(role.session_token),
                None,
                "ecs-execution-role",
            ));
        }
        Ok(Client::from_conf(conf.build()))
    }

    /// Sends `events` until CloudWatch accepts them (or refuses them as invalid, which is
    /// logged and counted: retrying would never succeed). Returns the events rejected.
    pub async fn deliver(&self, dest: &Destination, events: &[Event], counters: &Counters) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30), 2.0);
        loop {
            let failure = match self.client(dest) {
                Ok(client) => match put(&client, dest, events).await {
                    Ok(rejected) => {
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                        counters
                            .events
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        counters.rejected.fetch_add(rejected, Ordering::Relaxed);
                        return;
                    }
                    Err(e) if e.code == "ResourceNotFoundException" => {
                        match create(&client, dest, &e).await {
                            Ok(()) => continue,
                            Err(e) => e.to_string(),
                        }
                    }
                    Err(e) if e.code == "InvalidParameterException" => {
                        tracing::error!(group = %dest.group, stream = %dest.stream, error = %e, events = events.len(), "CloudWatch refused a batch as invalid; dropped");
                        counters
                            .rejected
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e,
            };
            counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = backoff.next_delay();
            tracing::warn!(group = %dest.group, stream = %dest.stream, error = %failure, retry_in_ms = wait.as_millis() as u64, "log batch not delivered; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// One `PutLogEvents` call; the number of events CloudWatch rejected.
async fn put(client: &Client, dest: &Destination, events: &[Event]) -> Result<u64, ApiError> {
    let input: Vec<InputLogEvent> = events
        .iter()
        .filter_map(|e| {
            InputLogEvent::builder()
                .timestamp(e.timestamp_ms)
                .message(&e.message)
                .build()
                .ok()
        })
        .collect();
    let out = client
        .put_log_events()
        .log_group_name(&dest.group)
        .log_stream_name(&dest.stream)
        .set_log_events(Some(input))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("PutLogEvents", e))?;
    Ok(out.rejected_log_events_info().map_or(0, |r| {
        let too_new = r
            .too_new_log_event_start_index()
            .map_or(0, |i| events.len() as i64 - i64::from(i));
        let too_old = r.too_old_log_event_end_index().map_or(0, |i| i64::from(i) + 1);
        let expired = r.expired_log_event_end_index().map_or(0, |i| i64::from(i) + 1);
        let rejected = (too_new + too_old.max(expired)).clamp(0, events.len() as i64) as u64;
        if rejected > 0 {
            tracing::warn!(group = %dest.group, stream = %dest.stream, rejected, "CloudWatch rejected log events (too old or too new)");
        }
        rejected
    }))
}

/// Creates what CloudWatch said is missing: the group (only with `awslogs-create-group`) and
/// the stream. Existing ones are fine.
async fn create(client: &Client, dest: &Destination, missing: &ApiError) -> Result<(), ApiError> {
    let group_missing = missing.message.contains("log group");
    if group_missing && !dest.create_group {
        return Err(ApiError {
            operation: "PutLogEvents",
            code: missing.code.clone(),
            message: format!(
                "log group {} does not exist and awslogs-create-group is not true",
                dest.group
            ),
        });
    }
    if group_missing {
        let r = client
            .create_log_group()
            .log_group_name(&dest.group)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("CreateLogGroup", e));
        already_exists_is_fine(r)?;
    }
    let r = client
        .create_log_stream()
        .log_group_name(&dest.group)
        .log_stream_name(&dest.stream)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("CreateLogStream", e));
    already_exists_is_fine(r)
}

fn already_exists_is_fine<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == "ResourceAlreadyExistsException" => Ok(()),
        Err(e) => Err(e),
    }
}
