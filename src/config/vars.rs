//! The table of every configuration variable: name, JSON key, type, default, status and doc.
//!
//! One entry per variable generates the [`Config`] field, its [`Variable`] description (used for
//! unknown-key warnings, `config check` and the README reference) and its resolution. Defaults are
//! those an operator of the official agent gets on an ECS-optimized AMI, i.e. the agent's own
//! defaults overlaid with what ecs-init sets, with the container paths mapped to host paths
//! (`/data` → `/var/lib/ecs/data`, `/log` → `/var/log/ecs`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::parse::{self, word_enum, PortRange, RateLimit, Raw};
use super::resolve::Resolver;
use super::{Secret, Status, Variable};

/// Renders a value for `config check` and the reference table.
pub trait Render {
    fn render(&self) -> String;
}

impl Render for String {
    fn render(&self) -> String {
        self.clone()
    }
}
impl Render for bool {
    fn render(&self) -> String {
        self.to_string()
    }
}
impl Render for u8 {
    fn render(&self) -> String {
        self.to_string()
    }
}
impl Render for u16 {
    fn render(&self) -> String {
        self.to_string()
    }
}
impl Render for u32 {
    fn render(&self) -> String {
        self.to_string()
    }
}
impl Render for f64 {
    fn render(&self) -> String {
        self.to_string()
    }
}
impl Render for Duration {
    fn render(&self) -> String {
        parse::format_duration(*self)
    }
}
impl Render for Vec<u16> {
    fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
impl Render for Vec<String> {
    fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
impl Render for BTreeMap<String, String> {
    fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
impl Render for Secret {
    fn render(&self) -> String {
        "<redacted>".to_owned()
    }
}
impl<T: Render> Render for Option<T> {
    fn render(&self) -> String {
        match self {
            Some(v) => v.render(),
            None => "(unset)".to_owned(),
        }
    }
}
macro_rules! render_display {
    ($($t:ty),*) => { $(impl Render for $t { fn render(&self) -> String { self.to_string() } })* };
}
render_display!(
    PortRange,
    RateLimit,
    ImagePullBehavior,
    PropagateTagsFrom,
    EngineAuthType,
    IpCompatibility,
    LogLevel,
    LogFormat,
    LogRollover
);

word_enum!(
    /// `ECS_IMAGE_PULL_BEHAVIOR`.
    ImagePullBehavior, image_pull_behavior {
        /// Pull; fall back to a cached image if the pull fails.
        Default = ["default"],
        /// Always pull; fail the task if the pull fails.
        Always = ["always"],
        /// Pull only if the image is not cached (or was removed by image cleanup).
        Once = ["once"],
        /// Use a cached image if there is one; pull otherwise.
        PreferCached = ["prefer-cached"],
    }
);

word_enum!(
    /// `ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM`.
    PropagateTagsFrom, propagate_tags_from {
        None = ["none"],
        Ec2Instance = ["ec2_instance"],
    }
);

word_enum!(
    /// `ECS_ENGINE_AUTH_TYPE`.
    EngineAuthType, engine_auth_type {
        Docker = ["docker"],
        Dockercfg = ["dockercfg"],
    }
);

word_enum!(
    /// `ECS_INSTANCE_IP_COMPATIBILITY`.
    IpCompatibility, ip_compatibility {
        Ipv4 = ["ipv4"],
        Ipv6 = ["ipv6"],
    }
);

word_enum!(
    /// `ECS_LOGLEVEL` and `ECS_LOGLEVEL_ON_INSTANCE` (the official agent's words).
    LogLevel, log_level {
        Debug = ["debug"],
        Info = ["info"],
        Warn = ["warn"],
        Error = ["error"],
        Crit = ["crit"],
        None = ["none"],
    }
);

word_enum!(
    /// `ECS_LOG_OUTPUT_FORMAT`.
    LogFormat, log_format {
        Logfmt = ["logfmt"],
        Json = ["json"],
    }
);

word_enum!(
    /// `ECS_LOG_ROLLOVER_TYPE`: `hourly` is what the documentation says, `date` what the code reads.
    LogRollover, log_rollover {
        Size = ["size"],
        Hourly = ["hourly", "date"],
        None = ["none"],
    }
);

fn opt<T>(f: fn(Raw) -> parse::ParseResult<T>) -> impl Fn(Raw) -> parse::ParseResult<Option<T>> {
    move |raw| f(raw).map(Some)
}

fn secret(raw: Raw) -> parse::ParseResult<Option<Secret>> {
    let text = raw.text().into_owned();
    if serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.is_object()) {
        Ok(Some(Secret::new(text)))
    } else {
        Err("a JSON object of registry credentials (value not shown: it is secret)".to_owned())
    }
}

macro_rules! config_table {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty {
            env: $env:literal, json: $json:expr, status: $status:ident,
            parse: $parse:expr, default: $default:expr $(,)?
        }
    )*) => {
        /// The effective agent configuration. Field docs name the variable each comes from.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ #[doc = concat!("\n\nVariable: `", $env, "`.")] pub $field: $ty, )*
        }

        /// Every variable this agent knows, in table order.
        pub static VARIABLES: &[Variable] = &[$(
            Variable {
                env: $env,
                json_key: $json,
                status: Status::$status,
                secret: matches!($env.as_bytes(), b"ECS_ENGINE_AUTH_DATA"),
                doc: concat!($($doc),+),
            },
        )*];

        impl Config {
            pub(super) fn resolve(r: &mut Resolver) -> Config {
                let mut c = Config {
                    $( $field: {
                        let parser: fn(Raw) -> parse::ParseResult<$ty> = |raw| ($parse)(raw);
                        r.value(variable($env), parser, || $default)
                    }, )*
                };
                c.apply_bounds(r);
                c
            }

            /// Every variable with its effective value rendered (secrets redacted).
            pub fn rendered(&self) -> Vec<(&'static Variable, String)> {
                vec![$( (variable($env), Render::render(&self.$field)), )*]
            }

            /// Every variable with its default rendered.
            pub fn rendered_defaults() -> Vec<(&'static Variable, String)> {
                vec![$( (variable($env), { let d: $ty = $default; Render::render(&d) }), )*]
            }
        }
    };
}

fn variable(env: &str) -> &'static Variable {
    VARIABLES
        .iter()
        .find(|v| v.env == env)
        .expect("every table entry is in VARIABLES")
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

config_table! {
    // ---- Core / identity ----
    /// Cluster the instance registers into; `default` is created if missing.
    cluster: String { env: "ECS_CLUSTER", json: Some("Cluster"), status: Active,
        parse: parse::cluster, default: s("default") }
    /// Region of the ECS endpoint; read from the instance identity document when unset.
    /// Required when `ECS_EXTERNAL` is true.
    aws_region: Option<String> { env: "AWS_DEFAULT_REGION", json: Some("AWSRegion"), status: Active,
        parse: parse::region, default: None }
    /// Override of the ECS API endpoint (host or URL).
    backend_host: Option<String> { env: "ECS_BACKEND_HOST", json: Some("APIEndpoint"), status: Active,
        parse: parse::endpoint, default: None }
    /// ECS Anywhere mode: no instance metadata service; region must be given.
    external: bool { env: "ECS_EXTERNAL", json: Some("External"), status: Active,
        parse: parse::boolean, default: false }
    /// Custom attributes, sent on the first registration only (JSON object).
    instance_attributes: BTreeMap<String, String> { env: "ECS_INSTANCE_ATTRIBUTES", json: Some("InstanceAttributes"), status: Active,
        parse: parse::string_map, default: BTreeMap::new() }
    /// Tags for the container instance (JSON object).
    container_instance_tags: BTreeMap<String, String> { env: "ECS_CONTAINER_INSTANCE_TAGS", json: Some("ContainerInstanceTags"), status: Active,
        parse: parse::string_map, default: BTreeMap::new() }
    /// Also tag the container instance with the EC2 instance's tags (`none` or `ec2_instance`).
    propagate_tags_from: PropagateTagsFrom { env: "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM", json: Some("ContainerInstancePropagateTagsFrom"), status: Pending,
        parse: propagate_tags_from, default: PropagateTagsFrom::None }
    /// Wait for the Auto Scaling warm pool lifecycle to reach InService before registering.
    warm_pools_check: bool { env: "ECS_WARM_POOLS_CHECK", json: Some("WarmPoolsSupport"), status: Pending,
        parse: parse::boolean, default: false }
    /// Drain the instance when a Spot interruption notice arrives.
    spot_instance_draining: bool { env: "ECS_ENABLE_SPOT_INSTANCE_DRAINING", json: Some("SpotInstanceDrainingEnabled"), status: Active,
        parse: parse::boolean, default: false }
    /// IP family of the instance (`ipv4` or `ipv6`); detected from the default routes when unset.
    instance_ip_compatibility: Option<IpCompatibility> { env: "ECS_INSTANCE_IP_COMPATIBILITY", json: Some("InstanceIPCompatibility"), status: Pending,
        parse: opt(ip_compatibility), default: None }
    /// Detailed OS family reported to ECS (ecs-init sets it from /etc/os-release).
    detailed_os_family: Option<String> { env: "ECS_DETAILED_OS_FAMILY", json: None, status: Active,
        parse: parse::opt_token, default: None }

    // ---- Resources / placement ----
    /// TCP host ports never given to tasks (JSON array).
    reserved_ports: Vec<u16> { env: "ECS_RESERVED_PORTS", json: Some("ReservedPorts"), status: Active,
        parse: parse::port_list, default: vec![22, 2375, 2376, 51678, 51679] }
    /// UDP host ports never given to tasks (JSON array).
    reserved_ports_udp: Vec<u16> { env: "ECS_RESERVED_PORTS_UDP", json: Some("ReservedPortsUDP"), status: Active,
        parse: parse::port_list, default: Vec::new() }
    /// MiB of memory kept back from tasks.
    reserved_memory: u16 { env: "ECS_RESERVED_MEMORY", json: Some("ReservedMemory"), status: Active,
        parse: parse::uint16, default: 0 }
    /// Host port range for dynamic port mappings (`start-end`); the kernel's ephemeral range when unset.
    dynamic_host_port_range: Option<PortRange> { env: "ECS_DYNAMIC_HOST_PORT_RANGE", json: Some("DynamicHostPortRange"), status: Active,
        parse: parse::port_range, default: None }
    /// Enforce task-level CPU and memory limits through a task cgroup.
    task_cpu_mem_limit: bool { env: "ECS_ENABLE_TASK_CPU_MEM_LIMIT", json: Some("TaskCPUMemLimit"), status: Active,
        parse: parse::boolean, default: true }
    /// Mount point of the cgroup file system.
    cgroup_path: String { env: "ECS_CGROUP_PATH", json: Some("CgroupPath"), status: Active,
        parse: parse::abs_path, default: s("/sys/fs/cgroup") }
    /// CFS period for task CPU limits (8ms to 100ms; others fall back to the default).
    cgroup_cpu_period: Duration { env: "ECS_CGROUP_CPU_PERIOD", json: Some("CgroupCPUPeriod"), status: Active,
        parse: parse::duration, default: Duration::from_millis(100) }
    /// Maximum number of processes per task (1 to 4194304; unset means no limit).
    task_pids_limit: Option<u32> { env: "ECS_TASK_PIDS_LIMIT", json: Some("TaskPidsLimit"), status: Active,
        parse: parse::opt_count, default: None }
    /// Propagate the task memory limit to the task cgroup on cgroup v2.
    propagate_task_memory_limit_cgroupv2: bool { env: "ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2", json: Some("PropagateTaskMemoryLimitCgroupV2"), status: Pending,
        parse: parse::boolean, default: false }
    /// Expose NVIDIA GPUs to tasks.
    gpu_support: bool { env: "ECS_ENABLE_GPU_SUPPORT", json: Some("GPUSupportEnabled"), status: Pending,
        parse: parse::boolean, default: false }
    /// Docker runtime name for GPU containers.
    nvidia_runtime: String { env: "ECS_NVIDIA_RUNTIME", json: Some("NvidiaRuntime"), status: Pending,
        parse: parse::token, default: s("nvidia") }
    /// Expose AWS Inferentia devices to tasks.
    inferentia_support: bool { env: "ECS_ENABLE_INF_SUPPORT", json: Some("InferentiaSupportEnabled"), status: Pending,
        parse: parse::boolean, default: false }

    // ---- Timeouts ----
    /// Time between SIGTERM and SIGKILL when stopping a container (minimum 1s; lower is raised).
    container_stop_timeout: Duration { env: "ECS_CONTAINER_STOP_TIMEOUT", json: Some("DockerStopTimeout"), status: Active,
        parse: parse::duration, default: Duration::from_secs(30) }
    /// Time allowed for a container start (minimum 45s; lower is raised).
    container_start_timeout: Duration { env: "ECS_CONTAINER_START_TIMEOUT", json: Some("ContainerStartTimeout"), status: Active,
        parse: parse::duration, default: Duration::from_secs(180) }
    /// Time allowed for a container create (minimum 1m; lower is raised).
    container_create_timeout: Duration { env: "ECS_CONTAINER_CREATE_TIMEOUT", json: Some("ContainerCreateTimeout"), status: Active,
        parse: parse::duration, default: Duration::from_secs(240) }
    /// Time allowed to resolve an image manifest (minimum 30s; lower is raised).
    manifest_pull_timeout: Duration { env: "ECS_MANIFEST_PULL_TIMEOUT", json: Some("ManifestPullTimeout"), status: Pending,
        parse: parse::duration, default: Duration::from_secs(60) }
    /// Time allowed for a whole image pull.
    image_pull_timeout: Duration { env: "ECS_IMAGE_PULL_TIMEOUT", json: Some("ImagePullTimeout"), status: Active,
        parse: parse::duration, default: Duration::from_secs(2 * 3600) }
    /// A pull with no progress for this long is cancelled (minimum 1m; lower is raised).
    image_pull_inactivity_timeout: Duration { env: "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", json: Some("ImagePullInactivityTimeout"), status: Pending,
        parse: parse::duration, default: Duration::from_secs(60) }

    // ---- Images / cleanup ----
    /// When to pull images: `default`, `always`, `once` or `prefer-cached`.
    image_pull_behavior: ImagePullBehavior { env: "ECS_IMAGE_PULL_BEHAVIOR", json: Some("ImagePullBehavior"), status: Active,
        parse: image_pull_behavior, default: ImagePullBehavior::Default }
    /// Pull the images of containers that wait on dependencies before their dependencies start.
    pull_dependent_containers_upfront: bool { env: "ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT", json: Some("DependentContainersPullUpfront"), status: Active,
        parse: parse::boolean, default: false }
    /// Turn off automated image cleanup.
    disable_image_cleanup: bool { env: "ECS_DISABLE_IMAGE_CLEANUP", json: Some("ImageCleanupDisabled"), status: Active,
        parse: parse::boolean, default: false }
    /// Interval between image cleanup cycles (minimum 10m; lower falls back to the default).
    image_cleanup_interval: Duration { env: "ECS_IMAGE_CLEANUP_INTERVAL", json: Some("ImageCleanupInterval"), status: Active,
        parse: parse::duration, default: Duration::from_secs(30 * 60) }
    /// An image unused by tasks is deleted only after this age.
    image_minimum_cleanup_age: Duration { env: "ECS_IMAGE_MINIMUM_CLEANUP_AGE", json: Some("MinimumImageDeletionAge"), status: Active,
        parse: parse::duration, default: Duration::from_secs(3600) }
    /// Minimum age of untracked (non-ECS) images before cleanup deletes them.
    non_ecs_image_minimum_cleanup_age: Duration { env: "NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE", json: Some("NonECSMinimumImageDeletionAge"), status: Active,
        parse: parse::duration, default: Duration::from_secs(3600) }
    /// Images deleted per cleanup cycle (minimum 1; lower falls back to the default).
    num_images_delete_per_cycle: u32 { env: "ECS_NUM_IMAGES_DELETE_PER_CYCLE", json: Some("NumImagesToDeletePerCycle"), status: Active,
        parse: parse::count, default: 5 }
    /// Stopped non-ECS containers deleted per cleanup cycle.
    non_ecs_containers_delete_per_cycle: u32 { env: "NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE", json: Some("NumNonECSContainersToDeletePerCycle"), status: Active,
        parse: parse::count, default: 5 }
    /// Also clean up images and containers that ECS did not start.
    untracked_image_cleanup: bool { env: "ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP", json: Some("DeleteNonECSImagesEnabled"), status: Active,
        parse: parse::boolean, default: false }
    /// Images never cleaned up (comma-separated names).
    exclude_untracked_images: Vec<String> { env: "ECS_EXCLUDE_UNTRACKED_IMAGE", json: Some("ImageCleanupExclusionList"), status: Active,
        parse: parse::comma_list, default: Vec::new() }
    /// This agent's own, not the official agent's: percent (0-100) of the Docker data disk in
    /// use at which image cleanup runs early, without waiting for the interval; 0 turns it off.
    image_cleanup_disk_threshold: u8 { env: "ECS_IMAGE_CLEANUP_DISK_THRESHOLD", json: None, status: Active,
        parse: parse::percent, default: 90 }
    /// Time after a task stops before its containers are removed (below 1s falls back to the default).
    task_cleanup_wait: Duration { env: "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", json: Some("TaskCleanupWaitDuration"), status: Active,
        parse: parse::duration, default: Duration::from_secs(3 * 3600) }
    /// Random extra wait (0 to this) added to the task cleanup wait.
    task_cleanup_wait_jitter: Duration { env: "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER", json: Some("TaskCleanupWaitDurationJitter"), status: Active,
        parse: parse::duration, default: Duration::ZERO }
    /// This agent's own, not the official agent's: remove containers that carry this cluster's
    /// ECS labels but that the agent's saved state does not know.
    remove_unknown_containers: bool { env: "ECS_REMOVE_UNKNOWN_CONTAINERS", json: None, status: Active,
        parse: parse::boolean, default: false }
    /// Format of `ECS_ENGINE_AUTH_DATA`: `docker` or `dockercfg`.
    engine_auth_type: Option<EngineAuthType> { env: "ECS_ENGINE_AUTH_TYPE", json: Some("EngineAuthType"), status: Active,
        parse: opt(engine_auth_type), default: None }
    /// Private registry credentials (JSON object). Secret: never printed or logged.
    engine_auth_data: Option<Secret> { env: "ECS_ENGINE_AUTH_DATA", json: Some("EngineAuthData"), status: Active,
        parse: secret, default: None }

    // ---- Features / security ----
    /// Give the containers of tasks with a task role `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` and
    /// advertise the `task-iam-role` capability (ecs-init turns it on); the endpoint runs either way.
    task_iam_role: bool { env: "ECS_ENABLE_TASK_IAM_ROLE", json: Some("TaskIAMRoleEnabled"), status: Active,
        parse: parse::boolean, default: true }
    /// Task IAM roles for tasks in host network mode (ecs-init turns it on).
    task_iam_role_network_host: bool { env: "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", json: Some("TaskIAMRoleEnabledForNetworkHost"), status: Pending,
        parse: parse::boolean, default: true }
    /// Refuse privileged containers.
    disable_privileged: bool { env: "ECS_DISABLE_PRIVILEGED", json: Some("PrivilegedDisabled"), status: Active,
        parse: parse::boolean, default: false }
    /// Advertise SELinux support (docker security options).
    selinux_capable: bool { env: "ECS_SELINUX_CAPABLE", json: Some("SELinuxCapable"), status: Active,
        parse: parse::boolean, default: false }
    /// Advertise AppArmor support (docker security options).
    apparmor_capable: bool { env: "ECS_APPARMOR_CAPABLE", json: Some("AppArmorCapable"), status: Active,
        parse: parse::boolean, default: false }
    /// Log drivers tasks may use (JSON array; each must be a Docker log driver ECS knows).
    available_logging_drivers: Vec<String> { env: "ECS_AVAILABLE_LOGGING_DRIVERS", json: Some("AvailableLoggingDrivers"), status: Active,
        parse: parse::string_list, default: strings(&["json-file", "syslog", "awslogs", "fluentd", "none"]) }
    /// Let awslogs use the task execution role (ecs-init turns it on).
    awslogs_execution_role_override: bool { env: "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE", json: Some("OverrideAWSLogsExecutionRole"), status: Active,
        parse: parse::boolean, default: true }
    /// This agent's own, not the official agent's: leave `awslogs` to Docker's own log driver
    /// (the official behaviour) instead of shipping the logs from the agent.
    awslogs_docker_driver: bool { env: "ECS_AWSLOGS_DOCKER_DRIVER", json: None, status: Active,
        parse: parse::boolean, default: false }
    /// This agent's own: how long task cleanup waits for a stopped container's logs to be
    /// shipped before it removes the container anyway (an error counts the lines left).
    awslogs_drain_timeout: Duration { env: "ECS_AWSLOGS_DRAIN_TIMEOUT", json: None, status: Active,
        parse: parse::duration, default: Duration::from_secs(600) }
    /// Ignore container health checks.
    disable_docker_health_check: bool { env: "ECS_DISABLE_DOCKER_HEALTH_CHECK", json: Some("DisableDockerHealthCheck"), status: Active,
        parse: parse::boolean, default: false }
    /// Write the container metadata file into each container.
    container_metadata: bool { env: "ECS_ENABLE_CONTAINER_METADATA", json: Some("ContainerMetadataEnabled"), status: Pending,
        parse: parse::boolean, default: false }
    /// Data directory as seen from the host (for container metadata files).
    host_data_dir: String { env: "ECS_HOST_DATA_DIR", json: Some("DataDirOnHost"), status: Pending,
        parse: parse::abs_path, default: s("/var/lib/ecs") }
    /// Match shared docker volumes on their full configuration, not only the name.
    shared_volume_match_full_config: bool { env: "ECS_SHARED_VOLUME_MATCH_FULL_CONFIG", json: Some("SharedVolumeMatchFullConfig"), status: Pending,
        parse: parse::boolean, default: false }
    /// Capabilities of the volume plugin (JSON array; ecs-init sets `["efsAuth"]`). With
    /// `efsAuth`, EFS volumes with TLS, IAM or access points go through amazon-efs-utils when it
    /// is installed (`ecs.capability.efsAuth` is advertised only then).
    volume_plugin_capabilities: Vec<String> { env: "ECS_VOLUME_PLUGIN_CAPABILITIES", json: Some("VolumePluginCapabilities"), status: Active,
        parse: parse::string_list, default: strings(&["efsAuth"]) }
    /// This agent's own: EFS mount targets to use in place of `<fs>.efs.<region>.<suffix>`, as a
    /// JSON object from a file system id, or `<id>@<availability zone>`, to a host name or address.
    efs_mount_targets: BTreeMap<String, String> { env: "ECS_EFS_MOUNT_TARGETS", json: None, status: Active,
        parse: parse::string_map, default: BTreeMap::new() }
    /// This agent's own: how long one EFS mount (name lookup included) may take before the task
    /// is stopped, so a dead server cannot hang it.
    efs_mount_timeout: Duration { env: "ECS_EFS_MOUNT_TIMEOUT", json: None, status: Active,
        parse: parse::duration, default: Duration::from_secs(60) }
    /// FireLens log routing in async mode.
    firelens_async: bool { env: "ECS_ENABLE_FIRELENS_ASYNC", json: Some("FirelensAsyncEnabled"), status: Pending,
        parse: parse::boolean, default: true }
    /// FSx for Windows File Server volumes (Windows only).
    fsx_windows_file_server: bool { env: "ECS_FSX_WINDOWS_FILE_SERVER_SUPPORTED", json: Some("FSxWindowsFileServerCapable"), status: Ignored,
        parse: parse::boolean, default: false }
    /// gMSA credential specs through credentials-fetcher.
    gmsa_supported: bool { env: "ECS_GMSA_SUPPORTED", json: Some("GMSACapable"), status: Pending,
        parse: parse::boolean, default: false }
    /// The Linux instance is joined to a domain (for gMSA).
    domain_joined_linux_instance: bool { env: "ECS_DOMAIN_JOINED_LINUX_INSTANCE", json: None, status: Pending,
        parse: parse::boolean, default: false }
    /// credentials-fetcher socket (for gMSA).
    credentials_fetcher_host: Option<String> { env: "CREDENTIALS_FETCHER_HOST", json: None, status: Pending,
        parse: parse::opt_token, default: None }
    /// credentials-fetcher host directory (for gMSA).
    credentials_fetcher_host_dir: Option<String> { env: "CREDENTIALS_FETCHER_HOST_DIR", json: None, status: Pending,
        parse: parse::opt_abs_path, default: None }
    /// Secret name for domainless gMSA.
    credentials_fetcher_secret_name: Option<String> { env: "CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA", json: None, status: Pending,
        parse: parse::opt_token, default: None }
    /// EBS task attach support (ecs-init turns it off when /mnt/ecs/ebs is missing).
    ebs_task_attach: bool { env: "ECS_EBSTA_SUPPORTED", json: Some("EBSTASupportEnabled"), status: Pending,
        parse: parse::boolean, default: true }
    /// Labels for the pause container (JSON object).
    pause_labels: BTreeMap<String, String> { env: "ECS_PAUSE_LABELS", json: None, status: Pending,
        parse: parse::string_map, default: BTreeMap::new() }

    // ---- Networking (awsvpc) ----
    /// awsvpc task networking (ecs-init turns it on).
    task_eni: bool { env: "ECS_ENABLE_TASK_ENI", json: Some("TaskENIEnabled"), status: Pending,
        parse: parse::boolean, default: true }
    /// ENI trunking for higher awsvpc task density.
    high_density_eni: bool { env: "ECS_ENABLE_HIGH_DENSITY_ENI", json: Some("ENITrunkingEnabled"), status: Pending,
        parse: parse::boolean, default: true }
    /// Directory of the CNI plugins.
    cni_plugins_path: String { env: "ECS_CNI_PLUGINS_PATH", json: Some("CNIPluginsPath"), status: Pending,
        parse: parse::abs_path, default: s("/amazon-ecs-cni-plugins") }
    /// Block awsvpc tasks from the instance metadata service.
    awsvpc_block_imds: bool { env: "ECS_AWSVPC_BLOCK_IMDS", json: Some("AWSVPCBlockInstanceMetdata"), status: Pending,
        parse: parse::boolean, default: false }
    /// Extra routes through the task ENI's local gateway (JSON array of CIDR blocks).
    awsvpc_additional_local_routes: Vec<String> { env: "ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES", json: Some("AWSVPCAdditionalLocalRoutes"), status: Pending,
        parse: parse::cidr_list, default: Vec::new() }
    /// Leave IPv6 out of port bindings.
    exclude_ipv6_port_binding: bool { env: "ECS_EXCLUDE_IPV6_PORTBINDING", json: Some("ShouldExcludeIPv6PortBinding"), status: Pending,
        parse: parse::boolean, default: true }
    /// Log level of the CNI plugins.
    cni_log_level: Option<String> { env: "ECS_CNI_LOGLEVEL", json: None, status: Pending,
        parse: parse::opt_token, default: None }
    /// Log file of the CNI plugins.
    cni_log_file: Option<String> { env: "ECS_CNI_LOG_FILE", json: None, status: Pending,
        parse: parse::opt_abs_path, default: None }

    // ---- Metrics / endpoints ----
    /// Do not collect or send container metrics.
    disable_metrics: bool { env: "ECS_DISABLE_METRICS", json: Some("DisableMetrics"), status: Active,
        parse: parse::boolean, default: false }
    /// Poll docker stats instead of streaming them.
    poll_metrics: bool { env: "ECS_POLL_METRICS", json: Some("PollMetrics"), status: Pending,
        parse: parse::boolean, default: false }
    /// Interval between stats polls (5s to 20s; clamped).
    polling_metrics_wait: Duration { env: "ECS_POLLING_METRICS_WAIT_DURATION", json: Some("PollingMetricsWaitDuration"), status: Pending,
        parse: parse::duration, default: Duration::from_secs(10) }
    /// Per-client rate limit of the task metadata and credentials endpoints (`steady,burst`).
    task_metadata_rps_limit: RateLimit { env: "ECS_TASK_METADATA_RPS_LIMIT", json: None, status: Active,
        parse: parse::rate_limit, default: RateLimit { steady: 40, burst: 60 } }
    /// Leave the availability zone out of task metadata.
    disable_task_metadata_az: bool { env: "ECS_DISABLE_TASK_METADATA_AZ", json: Some("TaskMetadataAZDisabled"), status: Pending,
        parse: parse::boolean, default: false }
    /// Serve Prometheus metrics on port 51680.
    prometheus_metrics: bool { env: "ECS_ENABLE_PROMETHEUS_METRICS", json: Some("PrometheusMetricsEnabled"), status: Pending,
        parse: parse::boolean, default: false }
    /// Write periodic runtime statistics of the agent.
    runtime_stats: bool { env: "ECS_ENABLE_RUNTIME_STATS", json: Some("EnableRuntimeStats"), status: Pending,
        parse: parse::boolean, default: false }

    // ---- State / updates / logging ----
    /// Directory of the agent's saved state.
    data_dir: String { env: "ECS_DATADIR", json: Some("DataDir"), status: Active,
        parse: parse::abs_path, default: s("/var/lib/ecs/data") }
    /// Save state so that a restarted agent resumes its tasks.
    checkpoint: bool { env: "ECS_CHECKPOINT", json: Some("Checkpoint"), status: Active,
        parse: parse::boolean, default: true }
    /// Self-updates through ACS (this agent is updated by its package instead).
    updates_enabled: bool { env: "ECS_UPDATES_ENABLED", json: Some("UpdatesEnabled"), status: Ignored,
        parse: parse::boolean, default: true }
    /// Download directory for self-updates.
    update_download_dir: String { env: "ECS_UPDATE_DOWNLOAD_DIR", json: Some("UpdateDownloadDir"), status: Ignored,
        parse: parse::abs_path, default: s("/var/cache/ecs") }
    /// Path of the JSON configuration file.
    agent_config_file_path: String { env: "ECS_AGENT_CONFIG_FILE_PATH", json: None, status: Active,
        parse: parse::abs_path, default: s("/etc/ecs/ecs.config.json") }
    /// Log file of the agent; empty means no file (stderr only).
    log_file: String { env: "ECS_LOGFILE", json: None, status: Active,
        parse: parse::abs_path_or_empty, default: s("/var/log/ecs/ecs-agent.log") }
    /// Log level on stderr: debug, info, warn, error, crit, none.
    log_level: LogLevel { env: "ECS_LOGLEVEL", json: None, status: Active,
        parse: log_level, default: LogLevel::Info }
    /// Log level of the log file; `ECS_LOGLEVEL` when unset.
    log_level_on_instance: Option<LogLevel> { env: "ECS_LOGLEVEL_ON_INSTANCE", json: None, status: Active,
        parse: opt(log_level), default: None }
    /// Docker log driver of the agent container (ecs-init).
    log_driver: Option<String> { env: "ECS_LOG_DRIVER", json: None, status: HostSetup,
        parse: parse::opt_token, default: None }
    /// Options of the agent container's log driver (JSON object; ecs-init).
    log_opts: BTreeMap<String, String> { env: "ECS_LOG_OPTS", json: None, status: HostSetup,
        parse: parse::string_map, default: BTreeMap::new() }
    /// When the log file rolls over: `size`, `hourly` (`date`) or `none`.
    log_rollover_type: LogRollover { env: "ECS_LOG_ROLLOVER_TYPE", json: None, status: Active,
        parse: log_rollover, default: LogRollover::Size }
    /// Log line format: `logfmt` or `json`.
    log_output_format: LogFormat { env: "ECS_LOG_OUTPUT_FORMAT", json: None, status: Active,
        parse: log_format, default: LogFormat::Logfmt }
    /// Size in MB at which the log file rolls over (size rollover).
    log_max_file_size_mb: f64 { env: "ECS_LOG_MAX_FILE_SIZE_MB", json: None, status: Active,
        parse: parse::positive_float, default: 5.0 }
    /// Number of rolled-over log files kept.
    log_max_roll_count: u32 { env: "ECS_LOG_MAX_ROLL_COUNT", json: None, status: Active,
        parse: parse::count, default: 24 }
    /// Audit log of credentials requests.
    audit_logfile: String { env: "ECS_AUDIT_LOGFILE", json: Some("CredentialsAuditLogFile"), status: Active,
        parse: parse::abs_path, default: s("/var/log/ecs/audit.log") }
    /// Turn off the credentials audit log.
    audit_logfile_disabled: bool { env: "ECS_AUDIT_LOGFILE_DISABLED", json: Some("CredentialsAuditLogDisabled"), status: Active,
        parse: parse::boolean, default: false }
    /// Host the `--healthcheck` probe connects to.
    agent_healthcheck_host: String { env: "ECS_AGENT_HEALTHCHECK_HOST", json: None, status: Pending,
        parse: parse::token, default: s("localhost") }
    /// Shared-credentials profile for the agent's own credentials (ECS Anywhere).
    alternate_credential_profile: String { env: "ECS_ALTERNATE_CREDENTIAL_PROFILE", json: None, status: Pending,
        parse: parse::token, default: s("default") }

    // ---- Runtime ----
    /// Docker Engine API endpoint.
    docker_host: String { env: "DOCKER_HOST", json: Some("DockerEndpoint"), status: Active,
        parse: parse::docker_host, default: s("unix:///var/run/docker.sock") }

    // ---- Host setup (ecs-init) ----
    /// Skip the iptables rule that drops non-local traffic to 127.0.0.0/8.
    skip_localhost_traffic_filter: bool { env: "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER", json: None, status: Active,
        parse: parse::boolean, default: false }
    /// Leave the introspection port (51678) open to other hosts.
    allow_offhost_introspection_access: bool { env: "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", json: None, status: Active,
        parse: parse::boolean, default: false }
    /// No longer read by the official agent (the rule now uses "not loopback").
    offhost_introspection_interface_name: Option<String> { env: "ECS_OFFHOST_INTROSPECTION_INTERFACE_NAME", json: None, status: Ignored,
        parse: parse::opt_token, default: None }
    /// Labels of the agent container (JSON object; there is no agent container here).
    agent_labels: BTreeMap<String, String> { env: "ECS_AGENT_LABELS", json: None, status: Ignored,
        parse: parse::string_map, default: BTreeMap::new() }
    /// AppArmor profile of the agent container (there is no agent container here).
    agent_apparmor_profile: String { env: "ECS_AGENT_APPARMOR_PROFILE", json: None, status: Ignored,
        parse: parse::token, default: s("ecs-agent-default") }
    /// Run the agent container in the host PID namespace (there is no agent container here).
    agent_pid_namespace_host: bool { env: "ECS_AGENT_PID_NAMESPACE_HOST", json: None, status: Ignored,
        parse: parse::boolean, default: false }
    /// Run the agent container privileged (there is no agent container here).
    agent_run_privileged: bool { env: "ECS_AGENT_RUN_PRIVILEGED", json: None, status: Ignored,
        parse: parse::boolean, default: false }
    /// json-file size limit of the agent container's log (there is no agent container here).
    init_docker_log_file_size: String { env: "ECS_INIT_DOCKER_LOG_FILE_SIZE", json: None, status: Ignored,
        parse: parse::docker_size, default: s("16m") }
    /// json-file count of the agent container's log (there is no agent container here).
    init_docker_log_file_num: u32 { env: "ECS_INIT_DOCKER_LOG_FILE_NUM", json: None, status: Ignored,
        parse: parse::count, default: 4 }
}

/// Logging drivers the official agent accepts in `ECS_AVAILABLE_LOGGING_DRIVERS`.
pub const KNOWN_LOGGING_DRIVERS: &[&str] = &[
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "logentries",
    "sumologic",
    "none",
    "awsfirelens",
];

struct Bound {
    env: &'static str,
    min: Duration,
    /// What a value below `min` becomes: the minimum (raised) or the default (replaced).
    below: Duration,
}

impl Config {
    /// Applies the official agent's bounds: some values below a minimum are raised to it, some
    /// replaced by the default, each with a warning; values no rule can repair are errors.
    fn apply_bounds(&mut self, r: &mut Resolver) {
        let secs = Duration::from_secs;
        let rules = [
            (
                &mut self.container_stop_timeout,
                Bound {
                    env: "ECS_CONTAINER_STOP_TIMEOUT",
                    min: secs(1),
                    below: secs(1),
                },
            ),
            (
                &mut self.container_start_timeout,
                Bound {
                    env: "ECS_CONTAINER_START_TIMEOUT",
                    min: secs(45),
                    below: secs(45),
                },
            ),
            (
                &mut self.container_create_timeout,
                Bound {
                    env: "ECS_CONTAINER_CREATE_TIMEOUT",
                    min: secs(60),
                    below: secs(60),
                },
            ),
            (
                &mut self.manifest_pull_timeout,
                Bound {
                    env: "ECS_MANIFEST_PULL_TIMEOUT",
                    min: secs(30),
                    below: secs(30),
                },
            ),
            (
                &mut self.image_pull_inactivity_timeout,
                Bound {
                    env: "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
                    min: secs(60),
                    below: secs(60),
                },
            ),
            (
                &mut self.image_cleanup_interval,
                Bound {
                    env: "ECS_IMAGE_CLEANUP_INTERVAL",
                    min: secs(600),
                    below: secs(1800),
                },
            ),
            (
                &mut self.task_cleanup_wait,
                Bound {
                    env: "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
                    min: secs(1),
                    below: secs(3 * 3600),
                },
            ),
            (
                &mut self.image_pull_timeout,
                Bound {
                    env: "ECS_IMAGE_PULL_TIMEOUT",
                    min: Duration::from_nanos(1),
                    below: secs(2 * 3600),
                },
            ),
        ];
        for (value, bound) in rules {
            if *value < bound.min {
                r.adjusted(
                    bound.env,
                    format!(
                        "{} is below the minimum {}; using {}",
                        parse::format_duration(*value),
                        parse::format_duration(bound.min),
                        parse::format_duration(bound.below)
                    ),
                );
                *value = bound.below;
            }
        }
        let period = self.cgroup_cpu_period;
        if !(Duration::from_millis(8)..=Duration::from_millis(100)).contains(&period) {
            r.adjusted(
                "ECS_CGROUP_CPU_PERIOD",
                format!(
                    "{} is outside 8ms..100ms; using 100ms",
                    parse::format_duration(period)
                ),
            );
            self.cgroup_cpu_period = Duration::from_millis(100);
        }
        if self.poll_metrics {
            let clamped = self.polling_metrics_wait.clamp(secs(5), secs(20));
            if clamped != self.polling_metrics_wait {
                r.adjusted(
                    "ECS_POLLING_METRICS_WAIT_DURATION",
                    format!(
                        "{} is outside 5s..20s; using {}",
                        parse::format_duration(self.polling_metrics_wait),
                        parse::format_duration(clamped)
                    ),
                );
                self.polling_metrics_wait = clamped;
            }
        }
        if self.num_images_delete_per_cycle < 1 {
            r.adjusted(
                "ECS_NUM_IMAGES_DELETE_PER_CYCLE",
                "0 is below the minimum 1; using 5".to_owned(),
            );
            self.num_images_delete_per_cycle = 5;
        }
        if let Some(limit) = self.task_pids_limit {
            if !(1..=4_194_304).contains(&limit) {
                r.adjusted(
                    "ECS_TASK_PIDS_LIMIT",
                    format!("{limit} is outside 1..4194304; no limit is set"),
                );
                self.task_pids_limit = None;
            }
        }
        self.check_cross_field_rules(r);
    }

    fn check_cross_field_rules(&mut self, r: &mut Resolver) {
        let bad: Vec<&String> = self
            .available_logging_drivers
            .iter()
            .filter(|d| !KNOWN_LOGGING_DRIVERS.contains(&d.as_str()))
            .collect();
        if !bad.is_empty() {
            let given = Render::render(&self.available_logging_drivers);
            let allowed = format!("log drivers among: {}", KNOWN_LOGGING_DRIVERS.join(", "));
            r.refuse("ECS_AVAILABLE_LOGGING_DRIVERS", given, &allowed);
        }
        if self.external && self.aws_region.is_none() {
            r.refuse(
                "AWS_DEFAULT_REGION",
                String::new(),
                "a region (AWS_DEFAULT_REGION must be set when ECS_EXTERNAL is true)",
            );
        }
        if self.engine_auth_data.is_some() && self.engine_auth_type.is_none() {
            r.refuse(
                "ECS_ENGINE_AUTH_TYPE",
                String::new(),
                "docker or dockercfg (required when ECS_ENGINE_AUTH_DATA is set)",
            );
        }
        // As in the official agent, checkpointing defaults on only when a data directory is set.
        if !r.is_set("ECS_CHECKPOINT") && self.data_dir.is_empty() {
            self.checkpoint = false;
        }
    }
}
