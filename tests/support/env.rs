//! Where the stand-ins started by `scripts/test-env up` live, and clients for them.
//!
//! Every address comes from an `ECS_TEST_*` variable (see `scripts/test-env env`)
//! and falls back to the script's defaults. A stand-in that does not answer is a
//! test failure with a message saying how to start it, never a silent skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;

pub const START_HINT: &str =
    "start the stand-ins with `sudo scripts/test-env up` and `. /tmp/ecs-agent-test-env/env`";

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// moto server, e.g. `http://127.0.0.1:5000`.
pub fn moto_url() -> String {
    var_or("ECS_TEST_MOTO_URL", "http://127.0.0.1:5000")
}

/// The ECR stand-in registry as `host:port`, e.g. `127.0.0.1:5005`.
pub fn registry() -> String {
    var_or("ECS_TEST_REGISTRY", "127.0.0.1:5005")
}

pub fn registry_user() -> String {
    var_or("ECS_TEST_REGISTRY_USER", "AWS")
}

/// Equal to the token moto's ECR GetAuthorizationToken yields.
pub fn registry_password() -> String {
    var_or("ECS_TEST_REGISTRY_PASSWORD", "123456789012-auth-token")
}

/// The busybox image imported offline by `scripts/test-env`; Cmd `["sh"]`.
pub fn image() -> String {
    var_or("ECS_TEST_IMAGE", "ecs-agent-test/busybox:latest")
}

/// Busybox with a HEALTHCHECK that passes until `/tmp/unhealthy` exists; runs until SIGTERM.
pub fn image_healthy() -> String {
    var_or("ECS_TEST_IMAGE_HEALTHY", "ecs-agent-test/healthy:latest")
}

/// Busybox whose default command exits with code 42.
pub fn image_exit() -> String {
    var_or("ECS_TEST_IMAGE_EXIT", "ecs-agent-test/exit:latest")
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<nanos>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A Docker client for the daemon at `DOCKER_HOST` (default `/var/run/docker.sock`),
/// with the API version negotiated. Panics with a hint if the daemon does not answer.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_unix_defaults()
        .unwrap_or_else(|e| panic!("cannot make a Docker client: {e}; {START_HINT}"));
    docker
        .negotiate_version()
        .await
        .unwrap_or_else(|e| panic!("dockerd does not answer: {e}; {START_HINT}"))
}

/// Panics with a hint unless something accepts TCP connections at `endpoint`
/// (`http://host:port` or `host:port`, loopback only).
pub async fn require_listening(what: &str, endpoint: &str) {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr: std::net::SocketAddr = host
        .parse()
        .unwrap_or_else(|e| panic!("{what} address {host:?} is not ip:port: {e}"));
    assert!(
        addr.ip().is_loopback(),
        "{what} must be on loopback, not {addr}"
    );
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("{what} is not listening on {addr}: {e}; {START_HINT}"),
        Err(_) => panic!("{what} on {addr} did not accept a connection in 5 s; {START_HINT}"),
    }
}

/// Every container (running or not) carrying the label `key=value`.
pub async fn containers_labelled(
    docker: &Docker,
    label: &str,
) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters = std::collections::HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await
}

/// Force-removes every container (and its anonymous volumes) labelled with this ECS cluster:
/// how tests clean up what their tasks made, even after a failure.
pub async fn remove_cluster_containers(docker: &Docker, cluster: &str) {
    use bollard::query_parameters::RemoveContainerOptionsBuilder;
    let label = format!("com.amazonaws.ecs.cluster={cluster}");
    for c in containers_labelled(docker, &label)
        .await
        .unwrap_or_default()
    {
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let _ = docker
            .remove_container(c.id.as_deref().unwrap_or_default(), Some(rm))
            .await;
    }
}
