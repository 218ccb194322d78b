//! The agent binary as a test runs it: `ecs-agent run` against the simulator and the IMDS
//! stub, with its data, logs and configuration in a directory of the test, talking only to
//! 127.0.0.1; the task containers of its cluster removed when it is dropped.

use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::ecs_sim::EcsSim;
use super::imds::ImdsStub;
use crate::support;

pub struct Agent {
    pub child: Child,
    pub cluster: String,
    _dir: Option<tempfile::TempDir>,
    stderr_path: std::path::PathBuf,
    /// Remove the cluster's task containers on drop (not between the lives of one agent).
    pub remove_containers: bool,
}

impl Agent {
    pub fn start_with(sim: &EcsSim, imds: &ImdsStub, extra_env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Self::start_in(sim, imds, extra_env, dir.path());
        agent._dir = Some(dir);
        agent
    }

    /// Starts the agent with its data and logs in `dir` (kept by the caller, for restarts).
    pub fn start_in(
        sim: &EcsSim,
        imds: &ImdsStub,
        extra_env: &[(&str, &str)],
        dir: &std::path::Path,
    ) -> Agent {
        let cluster = sim
            .config()
            .cluster_names
            .first()
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        let stderr_path = dir.join("agent.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecs-agent"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .env("ECS_BACKEND_HOST", sim.endpoint())
            .env("AWS_DEFAULT_REGION", &sim.config().region)
            .env("AWS_ACCESS_KEY_ID", &sim.config().access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &sim.config().secret_access_key)
            .env("AWS_CONFIG_FILE", dir.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
            .env("ECS_CLUSTER", &cluster)
            .env("ECS_LOGFILE", "")
            .env("ECS_LOGLEVEL", "debug")
            .env("ECS_DATADIR", dir.join("data"))
            .env("ECS_AUDIT_LOGFILE", dir.join("audit.log"))
            .env("ECS_AGENT_CONFIG_FILE_PATH", dir.join("ecs.config.json"))
            .env("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached")
            .env("ECS_ENABLE_TASK_CPU_MEM_LIMIT", "false")
            .env("ECS_CONTAINER_STOP_TIMEOUT", "2s")
            .env("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", "1h")
            .arg("--ecs-config")
            .arg(dir.join("ecs.config"))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            cmd.env("DOCKER_HOST", host);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().expect("agent starts"),
            cluster,
            _dir: None,
            stderr_path,
            remove_containers: true,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A child already reaped keeps its status: its PID may belong to another process now.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.child.wait();
        }
        if !self.remove_containers {
            return;
        }
        let cluster = self.cluster.clone();
        // Remove the task containers on a thread of its own (Drop may run inside a runtime).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(remove_containers(&cluster));
        })
        .join();
    }
}

pub async fn remove_containers(cluster: &str) {
    let docker = support::env::docker().await;
    support::env::remove_cluster_containers(&docker, cluster).await;
}

/// An ACS PayloadMessage carrying `tasks`.
pub fn payload(sim: &EcsSim, message_id: &str, seq: i64, tasks: Vec<Value>) -> Value {
    json!({"type": "PayloadMessage", "message": {
        "clusterArn": format!("arn:aws:ecs:us-west-2:123456789012:cluster/{}", sim.config().cluster_names[0]),
        "containerInstanceArn": sim.container_instance_arn().unwrap(),
        "messageId": message_id, "seqNum": seq, "generatedAt": 1795695300, "tasks": tasks
    }})
}
