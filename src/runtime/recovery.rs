//! What the driver does for durability: saving the engine's state before any command it led
//! to reaches Docker (so a container is never created that the saved state cannot find by
//! name), and, after a restart, finding the containers of this cluster that the saved state
//! does not know.

use std::collections::{BTreeMap, BTreeSet};

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

use super::docker::DockerRuntime;
use super::names::{self, LABEL_CLUSTER};
use crate::engine::TaskState;
use crate::images::cleanup::ImageRecords;
use crate::state::{self, Writer};

/// Writes the state when it changed; a failure is logged and retried with the next change.
pub(super) async fn persist(writer: &mut Writer, tasks: Vec<TaskState>, images: ImageRecords) {
    let Some(bytes) = writer.render(tasks, images) else {
        return;
    };
    let dir = writer.dir.clone();
    let written = tokio::task::spawn_blocking(move || state::write(&dir, &bytes).map(|()| bytes));
    match written.await {
        Ok(Ok(bytes)) => writer.written(bytes),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot save the agent state"),
        Err(e) => tracing::error!(error = %e, "cannot save the agent state"),
    }
    crate::failpoint::hit("saved");
}

/// Containers labelled for `cluster` that none of `tasks` knows (by ID or, for one whose
/// creation was under way, by name): `(id, name)`.
pub(super) async fn unknown_containers(
    docker: &DockerRuntime,
    cluster: &str,
    tasks: &[TaskState],
) -> Vec<(String, String)> {
    let mut known_ids = BTreeSet::new();
    let mut known_names = BTreeSet::new();
    for t in tasks {
        for c in &t.containers {
            known_ids.extend(c.docker_id.clone());
            let name = names::docker_container_name(
                &t.task.family,
                &t.task.version,
                &c.name,
                &c.name_suffix,
            );
            known_names.insert(format!("/{name}"));
        }
    }
    let filters = BTreeMap::from([(
        "label".to_owned(),
        vec![format!("{LABEL_CLUSTER}={cluster}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters.into_iter().collect())
        .build();
    let Ok(list) = docker.docker.list_containers(Some(options)).await else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|c| {
            let id = c.id?;
            let name = c.names.unwrap_or_default().into_iter().next()?;
            let known = known_ids.contains(&id) || known_names.contains(&name);
            (!known).then_some((id, name))
        })
        .collect()
}

/// Reports (and with `remove`, force-removes) the containers of this cluster that the state
/// does not know.
pub(super) async fn handle_unknown(
    docker: &DockerRuntime,
    cluster: &str,
    tasks: &[TaskState],
    remove: bool,
) {
    for (id, name) in unknown_containers(docker, cluster, tasks).await {
        if !remove {
            tracing::warn!(docker_id = %id, name = %name, "container of this cluster unknown to the agent state; left alone (ECS_REMOVE_UNKNOWN_CONTAINERS=true removes such containers)");
            continue;
        }
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.docker.remove_container(&id, Some(options)).await {
            Ok(()) => {
                tracing::warn!(docker_id = %id, name = %name, "removed a container of this cluster unknown to the agent state")
            }
            Err(e) => {
                tracing::warn!(docker_id = %id, name = %name, error = %e, "cannot remove an unknown container")
            }
        }
    }
}
