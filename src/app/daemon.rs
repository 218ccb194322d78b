//! `ecs-agent run`: the daemon. Configuration → Docker → instance metadata → registration →
//! engine, reporter and the ACS session, until SIGTERM/SIGINT, which leaves the containers
//! running (as the official agent does: no deregistration, no close frame).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::resume::{forward_sent, save_registration, saved_state, start_image_cleanup};
use super::{host, local_run, memory, Exit};
use crate::config::Config;
use crate::control::api::{self, backend_url};
use crate::control::imds::{Imds, InstanceFacts};
use crate::control::register::{self, RegisterError, RegisterRequest};
use crate::control::reporter::Reporter;
use crate::control::session::{self, SessionContext};
use crate::control::telemetry::{self, TelemetryContext};
use crate::credentials::{self, RoleType};
use crate::endpoints::audit::AuditLog;
use crate::endpoints::credentials::{serve_on, CredentialsApi};
use crate::endpoints::ratelimit::RateLimiter;
use crate::engine::{Change, Engine, EngineConfig};
use crate::logs::checkpoint::Checkpoints;
use crate::logs::cloudwatch::CloudWatch;
use crate::logs::shipper::Shipper;
use crate::model::Status;
use crate::runtime::{DockerRuntime, Driver, DriverSettings};
use crate::volumes::efs_mounts::{detect_efs_utils, EfsMounts, EfsSettings};

/// The agent's version as ACS wants it (no leading `v`).
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short git hash of the build.
pub const AGENT_HASH: &str = env!("ECS_AGENT_GIT_HASH");

fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        stop_timeout: config.container_stop_timeout,
        pull_upfront: config.pull_dependent_containers_upfront,
        cleanup_wait: config.task_cleanup_wait,
        cleanup_jitter: config.task_cleanup_wait_jitter,
        stop_retry: Duration::from_secs(5),
        capacity: host::capacity(config),
    }
}

/// Reads the instance facts, unless external mode skips IMDS.
async fn instance_facts(
    config: &Config,
    http: aws_sdk_ecs::config::SharedHttpClient,
) -> Result<Option<InstanceFacts>, Exit> {
    if config.external {
        return Ok(None);
    }
    match Imds::new(http.clone()).instance_facts().await {
        Ok(f) => Ok(Some(f)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the instance metadata");
            Err(Exit::Failure)
        }
    }
}

/// Where EFS volumes are mounted and how, for this instance.
fn efs_settings(config: &Config, region: &str, facts: Option<&InstanceFacts>) -> EfsSettings {
    let efs_utils = detect_efs_utils();
    if efs_utils.is_none() {
        tracing::info!("amazon-efs-utils not found: EFS volumes with TLS, IAM or access points will be refused");
    }
    EfsSettings {
        root: std::path::Path::new(&config.data_dir).join("efs"),
        region: region.to_owned(),
        availability_zone: facts.and_then(|f| f.availability_zone.clone()),
        mount_targets: config.efs_mount_targets.clone(),
        efs_utils_mount: efs_utils,
        timeout: config.efs_mount_timeout,
    }
}

/// Runs the daemon until a signal.
pub async fn run(config: &Config) -> Exit {
    let docker = match local_run::connect_docker(config).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "docker is not available");
            return Exit::Failure;
        }
    };
    let docker_version = docker.version().await.ok().and_then(|v| v.version);
    let api_version = docker.client_version();
    let http = api::http_client();
    let imds_client = Imds::new(http.clone());
    let facts = match instance_facts(config, http.clone()).await {
        Ok(f) => f,
        Err(exit) => return exit,
    };
    let Some(region) = config
        .aws_region
        .clone()
        .or_else(|| facts.as_ref().and_then(|f| f.region.clone()))
    else {
        tracing::error!(
            "no region: set AWS_DEFAULT_REGION or make the instance identity document reachable"
        );
        return Exit::Terminal;
    };
    let sdk = api::sdk_config(&region, http).await;
    let mut ecs_conf = aws_sdk_ecs::config::Builder::from(&sdk);
    if let Some(host) = &config.backend_host {
        ecs_conf = ecs_conf.endpoint_url(backend_url(host));
    }
    let client = aws_sdk_ecs::Client::from_conf(ecs_conf.build());
    let capacity = host::capacity(config);
    let docker_api = (
        api_version.major_version as u32,
        api_version.minor_version as u32,
    );
    let instance_id = facts
        .as_ref()
        .map(|f| f.instance_id.clone())
        .unwrap_or_default();
    let resumed = match saved_state(config, &instance_id) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let saved_arn = resumed.arn.clone();
    let efs_settings = efs_settings(config, &region, facts.as_ref());
    let request = RegisterRequest {
        cluster: &config.cluster,
        saved_arn: saved_arn.as_deref(),
        facts: facts.as_ref(),
        capacity: &capacity,
        attributes: register::attributes(
            config,
            docker_api,
            saved_arn.is_none(),
            efs_settings.efs_utils_mount.is_some(),
        ),
        tags: &config.container_instance_tags,
    };
    let registration = match register::register(&client, &request).await {
        Ok(r) => r,
        Err(e @ RegisterError::Terminal(_)) => {
            tracing::error!(error = %e, "registration refused");
            return Exit::Terminal;
        }
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            return Exit::Failure;
        }
    };
    let writer = match save_registration(config, &registration, &instance_id, &resumed) {
        Ok(w) => w,
        Err(exit) => return exit,
    };
    tracing::info!(container_instance = %registration.container_instance_arn, cluster = %config.cluster, "registered");

    let seed = crate::runtime::driver::now_millis() ^ (u64::from(std::process::id()) << 32);
    let tcs_docker = docker.clone();
    let cleanup_docker = docker.clone();
    let logs_docker = docker.clone();
    let runtime = DockerRuntime::new(docker, local_run::docker_settings(config));
    let settings = DriverSettings {
        cluster: config.cluster.clone(),
        disable_privileged: config.disable_privileged,
        remove_unknown: config.remove_unknown_containers,
    };
    let store = credentials::Store::default();
    mark_restored_pending(&store, &resumed.tasks);
    let images = Arc::new(Mutex::new(resumed.images));
    let efs = Arc::new(EfsMounts::new(efs_settings));
    let known: std::collections::BTreeSet<String> = resumed
        .tasks
        .iter()
        .map(|t| t.task.id().to_owned())
        .collect();
    // Off the async threads: releasing reads the mount table and unmounts.
    let adopting = efs.clone();
    let (kept, released) = tokio::task::spawn_blocking(move || adopting.adopt(&known))
        .await
        .unwrap_or((0, 0));
    if kept + released > 0 {
        tracing::info!(kept, released, "efs mounts found at start");
    }
    let (engine, redo) = Engine::restore(engine_config(config), seed, resumed.tasks);
    let (driver, handle, changes, snapshots) = Driver::new(engine, runtime, settings);
    let driver = driver
        .with_restored(redo)
        .with_image_records(images.clone())
        .with_efs(efs);
    start_image_cleanup(config, cleanup_docker, images);
    let seq = writer.as_ref().map_or_else(
        || Arc::new(std::sync::atomic::AtomicI64::new(-1)),
        |w| w.seq.clone(),
    );
    let driver = match writer {
        Some(w) => driver.with_state(w),
        None => driver,
    };
    let driver = if config.task_cpu_mem_limit {
        driver.with_task_cgroups(local_run::cgroup_settings(config))
    } else {
        driver
    };
    let driver = if config.task_iam_role {
        driver.with_task_iam_role()
    } else {
        driver
    };
    let ecr = Arc::new(crate::images::EcrAuth::new(sdk.clone()));
    let driver = driver
        .with_registry_auth(ecr, store.clone())
        .with_secrets(sdk.clone());
    let driver = if config.awslogs_docker_driver {
        driver
    } else {
        let checkpoints =
            Checkpoints::new(config.checkpoint.then(|| config.data_dir.clone().into()));
        let cloudwatch = CloudWatch::new(sdk.clone(), store.clone());
        let shipper = Shipper::new(
            logs_docker,
            cloudwatch,
            checkpoints,
            config.awslogs_drain_timeout,
        );
        driver.with_log_shipping(shipper, region.clone())
    };
    let driver = match local_run::engine_auth(config) {
        Ok(Some(auth)) => driver.with_engine_auth(auth),
        Ok(None) => driver,
        Err(e) => {
            tracing::error!("{e}");
            return Exit::Terminal;
        }
    };
    tokio::spawn(driver.run());
    start_credentials_endpoint(config, store.clone(), &registration.container_instance_arn).await;

    // Engine changes and the session's own reports (tasks refused before the engine) share one
    // ordered path to the reporter.
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_changes(changes, report_tx.clone(), store.clone()));
    let (reporter, sent) = Reporter::new(client.clone(), config.cluster.clone());
    tokio::spawn(forward_sent(sent, handle.clone()));
    let spot_client = client.clone();
    tokio::spawn(reporter.run(report_rx));

    tokio::spawn(telemetry::run_tcs(TelemetryContext {
        client: client.clone(),
        sdk: sdk.clone(),
        cluster: config.cluster.clone(),
        instance_arn: registration.container_instance_arn.clone(),
        docker_version: docker_version.clone(),
        agent_version: AGENT_VERSION.to_owned(),
        agent_hash: AGENT_HASH.to_owned(),
        docker: tcs_docker,
        snapshots: snapshots.clone(),
        disable_metrics: config.disable_metrics,
        publish_interval: telemetry::PUBLISH_INTERVAL,
    }));
    tokio::spawn(async {
        tokio::time::sleep(memory::STARTUP_SETTLE).await;
        let _ = tokio::task::spawn_blocking(memory::release_after_startup).await;
    });
    let ctx = SessionContext {
        client,
        sdk,
        cluster: config.cluster.clone(),
        instance_arn: registration.container_instance_arn,
        docker_version,
        agent_version: AGENT_VERSION.to_owned(),
        agent_hash: AGENT_HASH.to_owned(),
        engine: handle,
        snapshots,
        reports: report_tx,
        credentials: store,
        seq,
    };
    if config.spot_instance_draining && !config.external {
        tokio::spawn(watch_spot_interruption(
            imds_client.clone(),
            spot_client,
            ctx.cluster.clone(),
            ctx.instance_arn.clone(),
        ));
    }
    tokio::select! {
        _ = session::run_acs(ctx) => Exit::Failure,
        _ = shutdown_signal() => {
            tracing::info!("stopping on signal; task containers keep running");
            Exit::Success
        }
    }
}

/// With `ECS_ENABLE_SPOT_INSTANCE_DRAINING`: polls IMDS `spot/instance-action` every second and,
/// once a notice appears, sets the instance DRAINING so ECS moves its tasks away.
async fn watch_spot_interruption(
    imds: Imds,
    client: aws_sdk_ecs::Client,
    cluster: String,
    instance_arn: String,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(action) = imds.spot_instance_action().await else {
            continue;
        };
        tracing::warn!(notice = %action, "spot interruption notice; draining the instance");
        let result = client
            .update_container_instances_state()
            .cluster(&cluster)
            .container_instances(&instance_arn)
            .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
            .send()
            .await;
        match result {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %api::ApiError::from_sdk("UpdateContainerInstancesState", e), "draining failed; retrying")
            }
        }
    }
}

/// Known tasks' credentials answer 503 until ACS sends them again (sendCredentials=true); ACS
/// resends none for tasks that had stopped, so their IDs stay unknown (400).
fn mark_restored_pending(store: &credentials::Store, tasks: &[crate::engine::TaskState]) {
    for t in tasks.iter().filter(|t| t.known != Status::Stopped) {
        let ids = [
            (&t.task.role_credentials, RoleType::Task),
            (&t.task.execution_role_credentials, RoleType::Execution),
        ];
        for (c, role) in ids {
            if let Some(c) = c.as_ref().filter(|c| !c.credentials_id.is_empty()) {
                store.mark_pending(&t.task.arn, role, &c.credentials_id);
            }
        }
    }
}

/// Passes engine changes on to the reporter; a task that stopped loses its task-role
/// credentials (the execution role's stay until cleanup, for log drivers).
async fn forward_changes(
    mut from: mpsc::UnboundedReceiver<Change>,
    to: mpsc::UnboundedSender<Change>,
    store: credentials::Store,
) {
    while let Some(change) = from.recv().await {
        if let Change::Task(t) = &change {
            if t.status == Status::Stopped {
                store.remove_task(&t.task_arn, RoleType::Task);
            }
        }
        if to.send(change).is_err() {
            break;
        }
    }
}

/// Where the credentials endpoint listens; containers reach it as 169.254.170.2:80 through the
/// host rules ecs-init sets up.
const CREDENTIALS_ADDR: &str = "127.0.0.1:51679";

/// The audit log's writer, unless it is disabled or cannot be opened.
fn audit_sink(config: &Config) -> Option<Box<dyn std::io::Write + Send>> {
    if config.audit_logfile_disabled || config.audit_logfile.is_empty() {
        return None;
    }
    let path = std::path::Path::new(&config.audit_logfile);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(Box::new(f)),
        Err(e) => {
            tracing::warn!(path = %config.audit_logfile, error = %e, "cannot open the audit log");
            None
        }
    }
}

/// Starts the credentials endpoint; a failure to bind is logged, not fatal.
async fn start_credentials_endpoint(
    config: &Config,
    store: credentials::Store,
    instance_arn: &str,
) {
    let limit = config.task_metadata_rps_limit;
    let api = std::sync::Arc::new(CredentialsApi {
        store,
        limiter: RateLimiter::new(limit.steady, limit.burst),
        audit: AuditLog::new(audit_sink(config), &config.cluster, instance_arn),
    });
    match tokio::net::TcpListener::bind(CREDENTIALS_ADDR).await {
        Ok(listener) => {
            tokio::spawn(async move {
                if let Err(e) = serve_on(listener, api).await {
                    tracing::error!(error = %e, "the credentials endpoint stopped");
                }
            });
        }
        Err(e) => {
            tracing::warn!(addr = CREDENTIALS_ADDR, error = %e, "cannot serve task credentials")
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match &mut term {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Sources};
    use std::io::Write;

    fn config(env: &[(&str, &str)]) -> Config {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load(&Sources {
            env,
            ..Sources::default()
        })
        .expect("valid configuration")
        .config
    }

    #[test]
    fn the_audit_log_is_written_to_its_file_unless_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/audit.log");
        let file = path.to_str().unwrap();
        let disabled = config(&[
            ("ECS_AUDIT_LOGFILE", file),
            ("ECS_AUDIT_LOGFILE_DISABLED", "true"),
        ]);
        assert!(audit_sink(&disabled).is_none());
        assert!(!path.exists(), "a disabled audit log creates no file");

        let mut sink = audit_sink(&config(&[("ECS_AUDIT_LOGFILE", file)])).expect("a sink");
        writeln!(sink, "line").unwrap();
        drop(sink);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line\n");
    }
}
