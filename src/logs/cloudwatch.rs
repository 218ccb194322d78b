//! Delivering one batch to CloudWatch Logs: `PutLogEvents` with the task's execution role (or
//! the instance's credentials), creating the stream (and the group, with
//! `awslogs-create-group`) when CloudWatch says it does not exist, retrying throttling, server
//! errors and network failures with jittered backoff for as long as it takes (an outage loses
//! nothing; a drain deadline bounds the wait for a stopped container), giving up on a batch
//! CloudWatch refuses for good (access denied, a missing group it may not create) after
//! [`MAX_REFUSED_ATTEMPTS`], and counting the events CloudWatch rejects. Credentials come from the store at each call, so refreshed
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
    /// The credentials ID in the agent's store whose credentials sign the calls: the one
    /// `awslogs-credentials-endpoint` names, else the execution role's (`logsAuthStrategy`
    /// ExecutionRole); `None` for the instance's own credentials.
    pub execution_credentials_id: Option<String>,
}

/// Attempts at a batch CloudWatch refuses with an error that retrying does not cure
/// (`AccessDeniedException`, a missing group without `awslogs-create-group`, …) before the
/// batch is given up (logged as an error and counted as dropped): the refusal may be a
/// passing one (a policy being attached), but it must not hold the container forever.
pub const MAX_REFUSED_ATTEMPTS: u32 = 5;

/// Counters for observers (tests, benchmarks, logs).
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    /// Events CloudWatch accepted the request of but rejected (too old, too new, expired).
    pub rejected: AtomicU64,
    /// Events given up: refused as invalid, or refused for good [`MAX_REFUSED_ATTEMPTS`] times.
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
}

/// How CloudWatch's `rejectedLogEventsInfo` indexes translate into counts of events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_new: u64,
    pub too_old: u64,
    pub expired: u64,
}

impl Rejected {
    /// From the indexes CloudWatch returns for a batch of `len` events: events from
    /// `too_new_start` on are too new; events up to `too_old_end` and up to `expired_end`
    /// (inclusive, overlapping: expired ones are also old) are too old or expired.
    pub fn from_indexes(
        len: usize,
        too_new_start: Option<i32>,
        too_old_end: Option<i32>,
        expired_end: Option<i32>,
    ) -> Rejected {
        let len = len as i64;
        let upto = |end: Option<i32>| end.map_or(0, |i| (i64::from(i) + 1).clamp(0, len));
        let too_new = too_new_start.map_or(0, |i| (len - i64::from(i)).clamp(0, len));
        let (too_old, expired) = (upto(too_old_end), upto(expired_end));
        // The old end counts the expired ones too; the new ones start after both.
        let too_old = (too_old - expired).max(0);
        let too_new = too_new.min(len - too_old - expired);
        Rejected {
            too_new: too_new as u64,
            too_old: too_old as u64,
            expired: expired as u64,
        }
    }

    pub fn total(&self) -> u64 {
        self.too_new + self.too_old + self.expired
    }
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

    /// Sends `events` until CloudWatch accepts them, refuses them as invalid, or refuses them
    /// for good [`MAX_REFUSED_ATTEMPTS`] times (both logged and counted as dropped).
    pub async fn deliver(&self, dest: &Destination, events: &[Event], counters: &Counters) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30), 2.0);
        let mut refused = 0;
        loop {
            let failure = match self.client(dest) {
                Ok(client) => match put(&client, dest, events).await {
                    Ok(rejected) => {
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                        counters
                            .events
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        counters
                            .rejected
                            .fetch_add(rejected.total(), Ordering::Relaxed);
                        return;
                    }
                    Err(e) if e.code == "ResourceNotFoundException" => {
                        match create(&client, dest, &e).await {
                            Ok(()) => continue,
                            Err(e) => e,
                        }
                    }
                    Err(e) if e.code == "InvalidParameterException" => {
                        tracing::error!(group = %dest.group, stream = %dest.stream, error = %e, events = events.len(), "CloudWatch refused a batch as invalid; dropped");
                        counters
                            .dropped
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => e,
                },
                // Execution-role credentials that ACS has not sent yet: they may come.
                Err(message) => ApiError {
                    operation: "PutLogEvents",
                    code: "CredentialsUnavailable".into(),
                    message,
                },
            };
            let retriable = failure.is_retriable() || failure.code == "CredentialsUnavailable";
            if !retriable {
                refused += 1;
                if refused >= MAX_REFUSED_ATTEMPTS {
                    tracing::error!(group = %dest.group, stream = %dest.stream, error = %failure, events = events.len(), attempts = refused, "CloudWatch refused a log batch; dropped");
                    counters
                        .dropped
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    return;
                }
            }
            counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = backoff.next_delay();
            tracing::warn!(group = %dest.group, stream = %dest.stream, error = %failure, retry_in_ms = wait.as_millis() as u64, "log batch not delivered; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// One `PutLogEvents` call; the number of events CloudWatch rejected.
async fn put(client: &Client, dest: &Destination, events: &[Event]) -> Result<Rejected, ApiError> {
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
    let rejected = out
        .rejected_log_events_info()
        .map_or_else(Rejected::default, |r| {
            Rejected::from_indexes(
                events.len(),
                r.too_new_log_event_start_index(),
                r.too_old_log_event_end_index(),
                r.expired_log_event_end_index(),
            )
        });
    if rejected.total() > 0 {
        tracing::warn!(group = %dest.group, stream = %dest.stream, too_new = rejected.too_new, too_old = rejected.too_old, expired = rejected.expired, "CloudWatch rejected log events");
    }
    Ok(rejected)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(len: usize, new: Option<i32>, old: Option<i32>, exp: Option<i32>) -> [u64; 3] {
        let r = Rejected::from_indexes(len, new, old, exp);
        [r.too_new, r.too_old, r.expired]
    }

    #[test]
    fn rejected_indexes_become_counts_without_counting_an_event_twice() {
        assert_eq!(counts(10, None, None, None), [0, 0, 0]);
        assert_eq!(counts(10, Some(7), None, None), [3, 0, 0]);
        assert_eq!(counts(10, None, Some(2), None), [0, 3, 0]);
        // Events 0-1 expired, 2-4 merely old (the old end covers the expired ones).
        assert_eq!(counts(10, Some(8), Some(4), Some(1)), [2, 3, 2]);
        assert_eq!(counts(10, None, None, Some(9)), [0, 0, 10]);
        // Indexes out of range (a misbehaving endpoint) never count more than the batch.
        assert_eq!(counts(10, Some(-5), Some(20), None), [0, 10, 0]);
        assert_eq!(counts(10, Some(12), None, None), [0, 0, 0]);
        assert_eq!(
            Rejected::from_indexes(10, Some(8), Some(4), Some(1)).total(),
            7
        );
    }
}
