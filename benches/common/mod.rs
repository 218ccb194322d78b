//! What the benchmarks share: removing the containers a run made, found by the run-unique
//! `com.amazonaws.ecs.cluster` label they carry.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use ecs_agent::runtime::names;

/// Force-removes every container labelled for `cluster`; `bench` names the caller in messages.
pub async fn remove_labelled(bench: &str, docker: &Docker, cluster: &str) {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={cluster}", names::LABEL_CLUSTER)],
    )]);
    let list = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker.list_containers(Some(list)).await.unwrap_or_default();
    for id in found.into_iter().filter_map(|c| c.id) {
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = docker.remove_container(&id, Some(rm)).await {
            eprintln!("{bench}: could not remove container {id}: {e}");
        }
    }
}
