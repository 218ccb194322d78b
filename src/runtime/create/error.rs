//! Why a create request could not be built.
//!
//! Every message starts with the official agent's reason prefix `CannotCreateContainerError: `,
//! because the text goes to ECS as the container's `reason`.

/// A task container whose Docker create request cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// `dockerConfig.config` or `dockerConfig.hostConfig` is not a JSON object of the Docker
    /// Engine API schema.
    #[error("CannotCreateContainerError: container {container}: invalid {field}: {source}")]
    InvalidDockerConfig {
        container: String,
        /// `dockerConfig.config` or `dockerConfig.hostConfig`.
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The container `overrides` string is not `{"command":[…]}` JSON.
    #[error("CannotCreateContainerError: container {container}: invalid overrides: {source}")]
    InvalidOverrides {
        container: String,
        #[source]
        source: serde_json::Error,
    },
    /// The container asks for privileged mode and `ECS_DISABLE_PRIVILEGED` is on.
    #[error(
        "CannotCreateContainerError: container {container}: privileged containers are disabled \
         on this instance (ECS_DISABLE_PRIVILEGED)"
    )]
    PrivilegedDisabled { container: String },
    /// A mount point names a volume the task does not define (or that was not resolved).
    #[error(
        "CannotCreateContainerError: container {container}: mount point references unknown \
         volume {volume:?}"
    )]
    UnknownVolume { container: String, volume: String },
    /// A mount point resolves to an empty host path or has an empty container path.
    #[error(
        "CannotCreateContainerError: container {container}: mount point of volume {volume:?} \
         has an empty path"
    )]
    EmptyMountPath { container: String, volume: String },
    /// `links` or `volumesFrom` names a container that has no Docker name yet.
    #[error(
        "CannotCreateContainerError: container {container}: {field} target not available: {peer}"
    )]
    UnknownPeer {
        container: String,
        /// `links` or `volumesFrom`.
        field: &'static str,
        peer: String,
    },
    /// A link is not `name` or `name:alias`.
    #[error("CannotCreateContainerError: container {container}: invalid link format {link:?}")]
    InvalidLink { container: String, link: String },
    /// The task network mode is one this agent does not run (`awsvpc`, or unknown).
    #[error("CannotCreateContainerError: network mode {mode:?} is not supported")]
    UnsupportedNetworkMode { mode: String },
    /// The task's `pidMode`/`ipcMode` is `task` (needs a namespace pause container) or unknown.
    #[error("CannotCreateContainerError: {field} {mode:?} is not supported yet")]
    UnsupportedNamespaceMode {
        /// `pidMode` or `ipcMode`.
        field: &'static str,
        mode: String,
    },
    /// The engine passed a different number of resolved ports than the container has mappings.
    #[error(
        "CannotCreateContainerError: container {container}: {resolved} resolved host ports for \
         {mappings} port mappings"
    )]
    PortsNotResolved {
        container: String,
        mappings: usize,
        resolved: usize,
    },
    /// A port mapping (in port-mapping order, from 0) cannot be turned into port bindings.
    #[error("CannotCreateContainerError: container {container}: port mapping {index}: {reason}")]
    InvalidPortMapping {
        container: String,
        index: usize,
        reason: String,
    },
    /// A Linux device permission is not `read`, `write` or `mknod`.
    #[error(
        "CannotCreateContainerError: container {container}: device {device}: unknown \
         permission {permission:?}"
    )]
    InvalidDevicePermission {
        container: String,
        device: String,
        permission: String,
    },
    /// `healthCheckType` is `DOCKER` but no `Healthcheck` arrived in `dockerConfig.config`.
    #[error(
        "CannotCreateContainerError: container {container}: docker health check is nil while \
         container health check type is DOCKER"
    )]
    MissingHealthcheck { container: String },
    /// The request built so far could not be turned into JSON for the overlay (a bug).
    #[error("CannotCreateContainerError: container {container}: cannot encode request: {source}")]
    Encode {
        container: String,
        #[source]
        source: serde_json::Error,
    },
}
