//! Docker operations for engine commands, each returning the engine's [`Outcome`]: pulls
//! (bounded in number, with the pull behaviour), create, start, stop (then the exit code),
//! remove, task volumes, and the container event stream filtered on the server side.
//! Failure reasons use the official agent's vocabulary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, EventMessage, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::config::ImagePullBehavior;
use crate::engine::{DockerEvent, Outcome};
use crate::model::Health;

/// Settings of the Docker side.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    pub pull_behavior: ImagePullBehavior,
    pub pull_timeout: Duration,
    pub create_timeout: Duration,
    pub start_timeout: Duration,
    /// How many pulls may run at once (the official agent has no bound: #4308).
    pub max_concurrent_pulls: usize,
}

/// The Docker client with the agent's policies around it.
#[derive(Clone)]
pub struct DockerRuntime {
    pub docker: Docker,
    settings: DockerSettings,
    pulls: Arc<Semaphore>,
}

/// The text of a Docker error without bollard's wrapping.
pub fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Splits `repo[:tag][@digest]` into what `/images/create` wants; no tag means `latest`.
pub fn split_image(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_owned(), digest.to_owned());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_owned(),
            image[last_slash + i + 1..].to_owned(),
        ),
        None => (image.to_owned(), "latest".to_owned()),
    }
}

impl DockerRuntime {
    pub fn new(docker: Docker, settings: DockerSettings) -> Self {
        let pulls = Arc::new(Semaphore::new(settings.max_concurrent_pulls.max(1)));
        DockerRuntime {
            docker,
            settings,
            pulls,
        }
    }

    /// The image's digest and whether it is present locally.
    async fn local_image(&self, image: &str) -> Option<Option<String>> {
        let inspect = self.docker.inspect_image(image).await.ok()?;
        Some(inspect.repo_digests.and_then(|d| d.into_iter().next()))
    }

    /// Pulls (or not) as `ECS_IMAGE_PULL_BEHAVIOR` says, with registry credentials if given.
    pub async fn pull(&self, image: &str, credentials: Option<DockerCredentials>) -> Outcome {
        let cached = self.local_image(image).await;
        let behavior = self.settings.pull_behavior;
        if let (Some(digest), ImagePullBehavior::PreferCached | ImagePullBehavior::Once) =
            (&cached, behavior)
        {
            return Outcome::Pulled {
                image_digest: digest.clone(),
            };
        }
        let result = {
            let _permit = self.pulls.acquire().await;
            let pull = self.pull_from_registry(image, credentials);
            tokio::time::timeout(self.settings.pull_timeout, pull).await
        };
        let error = match result {
            Ok(Ok(())) => {
                return Outcome::Pulled {
                    image_digest: self.local_image(image).await.flatten(),
                }
            }
            Ok(Err(e)) => docker_message(&e),
            Err(_) => format!(
                "pull of {image} timed out after {}s",
                self.settings.pull_timeout.as_secs()
            ),
        };
        match (cached, behavior) {
            (Some(digest), ImagePullBehavior::Default) => {
                tracing::warn!(image, error = %error, "pull failed; using the cached image");
                Outcome::Pulled {
                    image_digest: digest,
                }
            }
            _ => Outcome::PullFailed {
                reason: format!("CannotPullContainerError: {error}"),
            },
        }
    }

    async fn pull_from_registry(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
    ) -> Result<(), DockerError> {
        let (repo, tag) = split_image(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(&repo)
            .tag(&tag)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::DockerResponseServerError {
                    status_code: 500,
                    message: detail,
                });
            }
        }
        Ok(())
    }

    /// Creates the container. Names are unique per container of a task, so a container of
    /// this name already there is this one, created before an agent restart: it is adopted,
    /// never created twice.
    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Outcome {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let call = self.docker.create_container(Some(options), body);
        match tokio::time::timeout(self.settings.create_timeout, call).await {
            Ok(Ok(r)) => Outcome::Created { docker_id: r.id },
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            })) => match self.docker.inspect_container(name, None).await {
                Ok(existing) => Outcome::Created {
                    docker_id: existing.id.unwrap_or_default(),
                },
                Err(e) => Outcome::CreateFailed {
                    reason: format!("CannotCreateContainerError: {}", docker_message(&e)),
                },
            },
            Ok(Err(e)) => Outcome::CreateFailed { reason: format!("CannotCreateContainerError: {}", docker_message(&e)) },
            Err(_) => Outcome::CreateFailed {
                reason: format!(
                    "DockerTimeoutError: Could not transition to created; timed out after waiting {}s",
                    self.settings.create_timeout.as_secs()
                ),
            },
        }
    }

    pub async fn start(&self, id: &str) -> Outcome {
        let call = self.docker.start_container(id, None);
        match tokio::time::timeout(self.settings.start_timeout, call).await {
            // 304: already running (a start redone after an agent restart).
            Ok(Ok(()))
            | Ok(Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            })) => Outcome::Started,
            Ok(Err(e)) => Outcome::StartFailed { reason: format!("CannotStartContainerError: {}", docker_message(&e)) },
            Err(_) => Outcome::StartFailed {
                reason: format!(
                    "DockerTimeoutError: Could not transition to started; timed out after waiting {}s",
                    self.settings.start_timeout.as_secs()
                ),
            },
        }
    }

    /// `docker stop` with the timeout (SIGTERM, then SIGKILL), then the exit code.
    pub async fn stop(&self, id: &str, timeout: Duration) -> Outcome {
        let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        // The call itself gets the stop timeout plus a margin, as the official agent does.
        let call = self.docker.stop_container(id, Some(options));
        match tokio::time::timeout(timeout + Duration::from_secs(120), call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_not_found(&e) => return Outcome::Stopped { exit_code: None },
            // 304: already stopped.
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            })) => {}
            Ok(Err(e)) => {
                return Outcome::StopFailed {
                    reason: docker_message(&e),
                }
            }
            Err(_) => {
                return Outcome::StopFailed {
                    reason: "docker stop timed out".into(),
                }
            }
        }
        match self.docker.inspect_container(id, None).await {
            Ok(i) => Outcome::Stopped {
                exit_code: i.state.and_then(|s| s.exit_code),
            },
            Err(_) => Outcome::Stopped { exit_code: None },
        }
    }

    pub async fn remove(&self, id: &str) -> Outcome {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Outcome::Removed,
            Err(e) if is_not_found(&e) => Outcome::Removed,
            Err(e) => {
                tracing::warn!(docker_id = id, error = %docker_message(&e), "remove failed");
                Outcome::Removed
            }
        }
    }

    /// Creates a Docker volume unless it exists (shared volumes are reused).
    pub async fn ensure_volume(&self, request: VolumeCreateRequest) -> Result<(), String> {
        let name = request.name.clone().unwrap_or_default();
        if self.docker.inspect_volume(&name).await.is_ok() {
            return Ok(());
        }
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| docker_message(&e))
    }

    pub async fn remove_volume(&self, name: &str) {
        if let Err(e) = self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            if !is_not_found(&e) {
                tracing::warn!(volume = name, error = %docker_message(&e), "volume removal failed");
            }
        }
    }

    /// What Docker says about a container now, as the event it amounts to.
    pub async fn inspect_event(&self, id: &str) -> Option<DockerEvent> {
        match self.docker.inspect_container(id, None).await {
            Ok(i) => {
                let state = i.state?;
                if state.running == Some(true) {
                    let health = state
                        .health
                        .and_then(|h| h.status)
                        .map(|s| health_of(s.as_ref()));
                    Some(DockerEvent::Health(health.unwrap_or(Health::Unknown)))
                } else if state
                    .started_at
                    .as_deref()
                    .is_some_and(|s| !s.starts_with("0001"))
                {
                    Some(DockerEvent::Died {
                        exit_code: state.exit_code,
                    })
                } else {
                    None
                }
            }
            Err(e) if is_not_found(&e) => Some(DockerEvent::Died { exit_code: None }),
            Err(_) => None,
        }
    }

    /// Whether dockerd answers `/_ping`.
    pub async fn ping(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    /// Container events (start, die, health) from `since` on (Docker replays the ones between
    /// `since` and the subscription), filtered by dockerd.
    pub fn events(
        &self,
        since: SystemTime,
    ) -> impl Stream<Item = Result<(String, DockerEvent), DockerError>> + '_ {
        let filters: HashMap<String, Vec<String>> = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                vec!["start".into(), "die".into(), "health_status".into()],
            ),
        ]);
        let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
        let options = EventsOptionsBuilder::default()
            .since(&format!("{}.{:09}", since.as_secs(), since.subsec_nanos()))
            .filters(&filters)
            .build();
        self.docker
            .events(Some(options))
            .filter_map(|item| async move { item.map(to_event).transpose() })
    }
}

fn health_of(word: &str) -> Health {
    match word.trim() {
        "healthy" => Health::Healthy,
        "unhealthy" => Health::Unhealthy,
        _ => Health::Unknown,
    }
}

/// Maps a Docker event message to the engine's event, if it is one the engine wants.
pub fn to_event(m: EventMessage) -> Option<(String, DockerEvent)> {
    let actor = m.actor?;
    let id = actor.id?;
    let attrs = actor.attributes.unwrap_or_default();
    let action = m.action?;
    let event = match action.as_str() {
        "start" => DockerEvent::Started,
        "die" => DockerEvent::Died {
            exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
        },
        a if a.starts_with("health_status") => {
            DockerEvent::Health(health_of(a.split_once(':').map_or("", |(_, h)| h)))
        }
        _ => return None,
    };
    Some((id, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn image_names_split_into_repo_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_image("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_image("127.0.0.1:5005/app"),
            ("127.0.0.1:5005/app".into(), "latest".into())
        );
        assert_eq!(
            split_image("127.0.0.1:5005/app:v2"),
            ("127.0.0.1:5005/app".into(), "v2".into())
        );
        assert_eq!(
            split_image("repo@sha256:abc"),
            ("repo".into(), "sha256:abc".into())
        );
    }

    fn message(action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn docker_events_map_to_engine_events() {
        assert_eq!(
            to_event(message("die", &[("exitCode", "137")])),
            Some((
                "abc".into(),
                DockerEvent::Died {
                    exit_code: Some(137)
                }
            ))
        );
        assert_eq!(
            to_event(message("start", &[])),
            Some(("abc".into(), DockerEvent::Started))
        );
        assert_eq!(
            to_event(message("health_status: healthy", &[])),
            Some(("abc".into(), DockerEvent::Health(Health::Healthy)))
        );
        assert_eq!(to_event(message("exec_start: sh", &[])), None);
    }
}
