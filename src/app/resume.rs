//! What `ecs-agent run` does for restarts: reading the saved state and deciding what it means
//! for this start, saving the registration with the resumed tasks, feeding ECS's acceptances
//! back to the engine, and the image cleanup loop over the saved image records.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Exit;
use crate::config::Config;
use crate::control::register;
use crate::control::reporter::Report;
use crate::engine::{Input, TaskState};
use crate::images::cleaner::ImageCleaner;
use crate::images::cleanup::{CleanupPolicy, ImageRecords};
use crate::model::Status;
use crate::runtime::driver::DriverHandle;
use crate::state::{self, Resume};

/// What the saved state gives this start.
#[derive(Default)]
pub(super) struct Resumed {
    /// The container instance ARN to re-register with.
    pub arn: Option<String>,
    /// The tasks to carry on with.
    pub tasks: Vec<TaskState>,
    /// Images pulled for tasks, for image cleanup.
    pub images: ImageRecords,
    /// The highest ACS sequence number seen before the restart.
    pub acs_seq: Option<i64>,
}

/// Reads the saved state (when checkpointing). Another EC2 instance's state is ignored, another
/// cluster's is a terminal error, as in the official agent, and so is a state of a newer schema
/// (a downgrade). A corrupt file is set aside (the previous copy used); a data directory that
/// cannot be read at all stops the agent.
pub(super) fn saved_state(config: &Config, instance_id: &str) -> Result<Resumed, Exit> {
    if !config.checkpoint {
        return Ok(Resumed::default());
    }
    let loaded = match state::load(Path::new(&config.data_dir)) {
        Ok(l) => l,
        Err(e) if e.is_terminal() => {
            tracing::error!(error = %e, "cannot use the saved state");
            return Err(Exit::Terminal);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the saved state");
            return Err(Exit::Failure);
        }
    };
    for error in &loaded.errors {
        tracing::error!(data_dir = %config.data_dir, "saved state: {error}");
    }
    for note in &loaded.notes {
        tracing::warn!(data_dir = %config.data_dir, "saved state: {note}");
    }
    let Some(saved) = loaded.state else {
        return Ok(Resumed::default());
    };
    match state::resume(Some(&saved.metadata), &config.cluster, instance_id) {
        Ok(Resume::Reregister(arn)) => {
            tracing::info!(container_instance = %arn, tasks = saved.tasks.len(), "restored from the saved state");
            Ok(Resumed {
                arn: Some(arn),
                tasks: saved.tasks,
                images: saved.images,
                acs_seq: saved.acs_seq_num,
            })
        }
        Ok(Resume::Fresh) => {
            tracing::warn!(saved_instance = %saved.metadata.ec2_instance_id, "the saved state is another EC2 instance's; starting fresh");
            Ok(Resumed::default())
        }
        Err(why) => {
            tracing::error!("{why}");
            Err(Exit::Terminal)
        }
    }
}

/// Saves what registration returned with the resumed tasks, so a restart re-registers as the
/// same instance; the writer goes on to the driver. `None` without checkpointing.
pub(super) fn save_registration(
    config: &Config,
    r: &register::Registration,
    instance_id: &str,
    resumed: &Resumed,
) -> Result<Option<state::Writer>, Exit> {
    if !config.checkpoint {
        return Ok(None);
    }
    let m = state::Metadata {
        cluster: config.cluster.clone(),
        container_instance_arn: r.container_instance_arn.clone(),
        ec2_instance_id: instance_id.to_owned(),
        availability_zone: r.availability_zone.clone(),
    };
    let mut writer = state::Writer::new(config.data_dir.clone().into(), m);
    writer.seq.store(
        resumed.acs_seq.unwrap_or(-1),
        std::sync::atomic::Ordering::SeqCst,
    );
    let bytes = writer
        .render(resumed.tasks.clone(), resumed.images.clone())
        .unwrap_or_default();
    match state::write(&writer.dir, &bytes) {
        Ok(()) => {
            writer.written(bytes);
            Ok(Some(writer))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot save the agent state under ECS_DATADIR");
            Err(Exit::Failure)
        }
    }
}

/// Starts the image cleanup loop, unless configuration turns it off.
pub(super) fn start_image_cleanup(
    config: &Config,
    docker: bollard::Docker,
    images: Arc<Mutex<ImageRecords>>,
) {
    match CleanupPolicy::from_config(config) {
        Some(policy) => {
            let cleaner = ImageCleaner::new(docker, policy, images);
            tokio::spawn(cleaner.run(config.image_cleanup_interval));
        }
        None => tracing::info!("image cleanup is off"),
    }
}

/// Tells the engine which state changes ECS accepted, so a restart does not send them again.
pub(super) async fn forward_sent(mut sent: mpsc::UnboundedReceiver<Report>, engine: DriverHandle) {
    while let Some(r) = sent.recv().await {
        let status = match r.status {
            "RUNNING" => Some(Status::Running),
            "STOPPED" => Some(Status::Stopped),
            _ => None,
        };
        let containers = r
            .containers
            .iter()
            .map(|c| (c.container.clone(), c.status))
            .collect();
        let input = Input::Sent {
            task_arn: r.task_arn,
            status,
            containers,
        };
        if !engine.send(input) {
            break;
        }
    }
}
