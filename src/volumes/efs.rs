//! What mounting one EFS task volume takes: the task definition's `efsVolumeConfiguration`
//! checked field by field, then either the agent's own NFSv4.1 mount (no TLS, no IAM, no access
//! point) or an amazon-efs-utils `mount -t efs` invocation. Pure: no I/O here.
//!
//! The official agent sends every EFS volume through its volume plugin when `efsAuth` is
//! configured, and otherwise through Docker's `local` driver with NFS options, silently dropping
//! TLS, IAM and access points. This agent never drops them: a volume that needs efs-utils and
//! finds none stops its task with a reason saying so.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The NFS options EFS documents and the official agent uses, in its order.
pub const NFS_OPTIONS: &str =
    "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport";

/// The `efsVolumeConfiguration` of a task volume (acs-api-2.json `EFSVolumeConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EfsVolumeConfiguration {
    pub file_system_id: Option<String>,
    pub root_directory: Option<String>,
    /// `ENABLED` or `DISABLED` (default).
    pub transit_encryption: Option<String>,
    pub transit_encryption_port: Option<i64>,
    pub authorization_config: Option<AuthorizationConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizationConfig {
    pub access_point_id: Option<String>,
    /// `ENABLED` or `DISABLED` (default).
    pub iam: Option<String>,
}

/// Where the task runs and what the host offers, for [`plan`].
#[derive(Debug, Clone)]
pub struct EfsContext<'a> {
    pub region: &'a str,
    pub availability_zone: Option<&'a str>,
    /// `ECS_EFS_MOUNT_TARGETS`: file system id, or `id@zone`, to the mount target's host name or
    /// address, in place of the file system's DNS name.
    pub mount_targets: &'a BTreeMap<String, String>,
    /// Whether amazon-efs-utils (`mount.efs`) is installed.
    pub efs_utils: bool,
    /// The task role's credentials path (`/v2/credentials/<id>`), when the task has a role.
    pub task_role_uri: Option<&'a str>,
}

/// How to mount one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// `mount(2)` of `:<export>` with type `nfs` and `addr=<address of host>,<options>`.
    Nfs {
        file_system_id: String,
        /// DNS name (or override) of the mount target, resolved by the agent.
        host: String,
        export: String,
        options: String,
    },
    /// `mount -t efs -o <options> <device> <target>` through amazon-efs-utils.
    EfsUtils {
        file_system_id: String,
        device: String,
        options: Vec<String>,
    },
}

impl MountPlan {
    pub fn file_system_id(&self) -> &str {
        match self {
            MountPlan::Nfs { file_system_id, .. } | MountPlan::EfsUtils { file_system_id, .. } => {
                file_system_id
            }
        }
    }

    /// The arguments of `mount` for the efs-utils path (`None` for the agent's own mount).
    pub fn mount_args(&self, target: &str) -> Option<Vec<String>> {
        match self {
            MountPlan::Nfs { .. } => None,
            MountPlan::EfsUtils {
                device, options, ..
            } => {
                let mut args = vec!["-t".to_owned(), "efs".to_owned()];
                if !options.is_empty() {
                    args.push("-o".into());
                    args.push(options.join(","));
                }
                args.push(device.clone());
                args.push(target.to_owned());
                Some(args)
            }
        }
    }
}

/// Why a volume cannot be mounted as configured. The text names the field and never carries a
/// credential (the credentials URI holds only an id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("efsVolumeConfiguration is not valid JSON for this field set: {0}")]
    Malformed(String),
    #[error("efsVolumeConfiguration.fileSystemId is missing")]
    MissingFileSystemId,
    #[error("efsVolumeConfiguration.fileSystemId {0:?} is not an EFS file system id (fs-<hex>)")]
    BadFileSystemId(String),
    #[error("efsVolumeConfiguration.rootDirectory {0:?} is not a path without '.', '..', commas, spaces or control characters")]
    BadRootDirectory(String),
    #[error("efsVolumeConfiguration.{field} is {value:?}; expected ENABLED or DISABLED")]
    BadSwitch { field: &'static str, value: String },
    #[error("efsVolumeConfiguration.transitEncryptionPort {0} is not a port number")]
    BadPort(i64),
    #[error("efsVolumeConfiguration.authorizationConfig.accessPointId {0:?} is not an access point id (fsap-<hex>)")]
    BadAccessPoint(String),
    #[error("efsVolumeConfiguration.{0} requires transitEncryption ENABLED")]
    NeedsTransitEncryption(&'static str),
    #[error("efsVolumeConfiguration.rootDirectory must be empty or \"/\" with an access point")]
    RootWithAccessPoint,
    #[error(
        "efsVolumeConfiguration.authorizationConfig.iam is ENABLED but the task has no task role"
    )]
    IamWithoutTaskRole,
    #[error("efsVolumeConfiguration.authorizationConfig.iam: the task role's credentials id has characters a mount option cannot carry")]
    BadCredentialsUri,
    #[error("{0} needs amazon-efs-utils (mount.efs), which is not installed on this instance; refusing to mount without it")]
    NeedsEfsUtils(&'static str),
}

/// Decides how to mount the volume whose configuration is `raw`.
pub fn plan(raw: &Value, ctx: &EfsContext) -> Result<MountPlan, PlanError> {
    let cfg: EfsVolumeConfiguration =
        serde_json::from_value(raw.clone()).map_err(|e| PlanError::Malformed(e.to_string()))?;
    let fs = cfg
        .file_system_id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(PlanError::MissingFileSystemId)?;
    if !is_id(&fs, "fs-") {
        return Err(PlanError::BadFileSystemId(fs));
    }
    let root = root_directory(cfg.root_directory.as_deref())?;
    let tls = switch("transitEncryption", cfg.transit_encryption.as_deref())?;
    let auth = cfg.authorization_config.clone().unwrap_or_default();
    let iam = switch("authorizationConfig.iam", auth.iam.as_deref())?;
    let access_point = auth.access_point_id.clone().filter(|s| !s.is_empty());
    if let Some(ap) = &access_point {
        if !is_id(ap, "fsap-") {
            return Err(PlanError::BadAccessPoint(ap.clone()));
        }
        if root != "/" {
            return Err(PlanError::RootWithAccessPoint);
        }
    }
    let port = match cfg.transit_encryption_port {
        None | Some(0) => None,
        Some(p) if (1..=65535).contains(&p) => Some(p),
        Some(p) => return Err(PlanError::BadPort(p)),
    };
    if iam && !tls {
        return Err(PlanError::NeedsTransitEncryption(
            "authorizationConfig.iam ENABLED",
        ));
    }
    if access_point.is_some() && !tls {
        return Err(PlanError::NeedsTransitEncryption(
            "authorizationConfig.accessPointId",
        ));
    }
    if !(tls || iam || access_point.is_some()) {
        return Ok(MountPlan::Nfs {
            host: mount_target(&fs, ctx),
            file_system_id: fs,
            export: root,
            options: NFS_OPTIONS.to_owned(),
        });
    }
    if !ctx.efs_utils {
        let what = if iam {
            "IAM authorization"
        } else if access_point.is_some() {
            "an access point"
        } else {
            "transit encryption"
        };
        return Err(PlanError::NeedsEfsUtils(what));
    }
    // The official agent's option order: tls, tlsport, iam, awscredsuri, accesspoint.
    let mut options = Vec::new();
    if tls {
        options.push("tls".to_owned());
    }
    if let Some(p) = port {
        options.push(format!("tlsport={p}"));
    }
    if iam {
        let uri = ctx.task_role_uri.ok_or(PlanError::IamWithoutTaskRole)?;
        // The URI carries the credentials id from ACS: nothing in it may end the option.
        if !uri
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
        {
            return Err(PlanError::BadCredentialsUri);
        }
        options.push("iam".into());
        options.push(format!("awscredsuri={uri}"));
    }
    if let Some(ap) = access_point {
        options.push(format!("accesspoint={ap}"));
    }
    // An operator's mount target override reaches efs-utils as its own option when it is an
    // address (efs-utils resolves names itself).
    let target = mount_target(&fs, ctx);
    if let Ok(ip) = target.parse::<std::net::IpAddr>() {
        options.push(format!("mounttargetip={ip}"));
    }
    Ok(MountPlan::EfsUtils {
        device: format!("{fs}:{root}"),
        file_system_id: fs,
        options,
    })
}

/// The host the agent resolves for a file system: an override for the zone, then for the file
/// system, then `<id>.efs.<region>.<dns suffix of the partition>`.
pub fn mount_target(fs: &str, ctx: &EfsContext) -> String {
    if let Some(zone) = ctx.availability_zone {
        if let Some(host) = ctx.mount_targets.get(&format!("{fs}@{zone}")) {
            return host.clone();
        }
    }
    if let Some(host) = ctx.mount_targets.get(fs) {
        return host.clone();
    }
    format!("{fs}.efs.{}.{}", ctx.region, dns_suffix(ctx.region))
}

/// The DNS suffix of a region's partition.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else if region.starts_with("eu-isoe-") {
        "cloud.adc-e.uk"
    } else if region.starts_with("us-isof-") {
        "csp.hci.ic.gov"
    } else {
        "amazonaws.com"
    }
}

fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (8..=40).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn switch(field: &'static str, value: Option<&str>) -> Result<bool, PlanError> {
    match value {
        None | Some("") | Some("DISABLED") => Ok(false),
        Some("ENABLED") => Ok(true),
        Some(other) => Err(PlanError::BadSwitch {
            field,
            value: other.to_owned(),
        }),
    }
}

/// `/` when absent; otherwise an absolute path (a missing leading `/` is added, as EFS does)
/// without `..`, commas, whitespace or control characters, and without a trailing `/`.
fn root_directory(raw: Option<&str>) -> Result<String, PlanError> {
    let raw = raw.unwrap_or("");
    let bad = || PlanError::BadRootDirectory(raw.to_owned());
    if raw.len() > 4096
        || raw
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == ".." || *p == ".") {
        return Err(bad());
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(targets: &'a BTreeMap<String, String>, efs_utils: bool) -> EfsContext<'a> {
        EfsContext {
            region: "us-west-2",
            availability_zone: Some("us-west-2b"),
            mount_targets: targets,
            efs_utils,
            task_role_uri: Some("/v2/credentials/cred-1"),
        }
    }

    const FS: &str = "fs-0123abcd";

    #[test]
    fn plain_nfs_uses_the_dns_name_and_the_efs_options() {
        let t = BTreeMap::new();
        let p = plan(&json!({"fileSystemId": FS}), &ctx(&t, false)).unwrap();
        assert_eq!(
            p,
            MountPlan::Nfs {
                file_system_id: FS.into(),
                host: "fs-0123abcd.efs.us-west-2.amazonaws.com".into(),
                export: "/".into(),
                options:
                    "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport"
                        .into(),
            }
        );
        assert_eq!(p.mount_args("/x"), None);
    }

    #[test]
    fn root_directory_is_normalised_and_checked() {
        let t = BTreeMap::new();
        let export = |root: &str| match plan(
            &json!({"fileSystemId": FS, "rootDirectory": root}),
            &ctx(&t, false),
        ) {
            Ok(MountPlan::Nfs { export, .. }) => Ok(export),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(export("").unwrap(), "/");
        assert_eq!(export("/").unwrap(), "/");
        assert_eq!(export("/data/app/").unwrap(), "/data/app");
        assert_eq!(export("data").unwrap(), "/data");
        assert_eq!(export("//a//b").unwrap(), "/a/b");
        for bad in ["/a/../b", "/a,b", "/a b", "/a\nb", "/./a"] {
            assert_eq!(
                export(bad),
                Err(PlanError::BadRootDirectory(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_system_and_access_point_ids_are_checked() {
        let t = BTreeMap::new();
        let c = ctx(&t, true);
        assert_eq!(plan(&json!({}), &c), Err(PlanError::MissingFileSystemId));
        for bad in ["fs-12", "fs-xyz12345", "efs-0123abcd", "fs-0123abcd/../x"] {
            assert_eq!(
                plan(&json!({"fileSystemId": bad}), &c),
                Err(PlanError::BadFileSystemId(bad.into()))
            );
        }
        assert!(plan(&json!({"fileSystemId": "fs-0123456789abcdef0"}), &c).is_ok());
        let ap = json!({"fileSystemId": FS, "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": "ap-1"}});
        assert_eq!(plan(&ap, &c), Err(PlanError::BadAccessPoint("ap-1".into())));
        assert!(matches!(
            plan(&json!({"fileSystemId": 7}), &c),
            Err(PlanError::Malformed(_))
        ));
    }

    #[test]
    fn switches_and_ports_are_checked() {
        let t = BTreeMap::new();
        let c = ctx(&t, true);
        assert_eq!(
            plan(
                &json!({"fileSystemId": FS, "transitEncryption": "enabled"}),
                &c
            ),
            Err(PlanError::BadSwitch {
                field: "transitEncryption",
                value: "enabled".into()
            })
        );
        assert_eq!(
            plan(
                &json!({"fileSystemId": FS, "transitEncryption": "ENABLED", "transitEncryptionPort": 70000}),
                &c
            ),
            Err(PlanError::BadPort(70000))
        );
        assert_eq!(
            plan(
                &json!({"fileSystemId": FS, "authorizationConfig": {"iam": "ENABLED"}}),
                &c
            ),
            Err(PlanError::NeedsTransitEncryption(
                "authorizationConfig.iam ENABLED"
            ))
        );
        assert_eq!(
            plan(
                &json!({"fileSystemId": FS, "authorizationConfig": {"accessPointId": "fsap-0123abcd0123abcd0"}}),
                &c
            ),
            Err(PlanError::NeedsTransitEncryption(
                "authorizationConfig.accessPointId"
            ))
        );
        assert_eq!(
            plan(
                &json!({"fileSystemId": FS, "rootDirectory": "/x", "transitEncryption": "ENABLED",
                    "authorizationConfig": {"accessPointId": "fsap-0123abcd0123abcd0"}}),
                &c
            ),
            Err(PlanError::RootWithAccessPoint)
        );
    }

    /// Every combination of transitEncryption, transitEncryptionPort, iam and accessPointId,
    /// against the options the official agent gives amazon-efs-utils (§9.3): `tls` when
    /// encrypted, `tlsport=<port>` when a port is set, `iam` + `awscredsuri=<task role URI>`
    /// when IAM is on, `accesspoint=<id>`; device `<fs>:<rootDirectory>`.
    #[test]
    fn every_combination_gives_the_official_efs_utils_options() {
        let t = BTreeMap::new();
        let c = ctx(&t, true);
        for tls in [false, true] {
            for port in [None, Some(20049)] {
                for iam in [false, true] {
                    for ap in [None, Some("fsap-0123abcd0123abcd0")] {
                        let mut v = json!({"fileSystemId": FS,
                            "transitEncryption": if tls { "ENABLED" } else { "DISABLED" },
                            "authorizationConfig": {"iam": if iam { "ENABLED" } else { "DISABLED" }}});
                        if let Some(p) = port {
                            v["transitEncryptionPort"] = json!(p);
                        }
                        if let Some(ap) = ap {
                            v["authorizationConfig"]["accessPointId"] = json!(ap);
                        } else {
                            v["rootDirectory"] = json!("/data");
                        }
                        let got = plan(&v, &c);
                        let case = format!("tls={tls} port={port:?} iam={iam} ap={ap:?}");
                        if !tls && (iam || ap.is_some()) {
                            assert!(
                                matches!(got, Err(PlanError::NeedsTransitEncryption(_))),
                                "{case}: {got:?}"
                            );
                            continue;
                        }
                        if !tls {
                            // Plain NFS: a port alone changes nothing (no TLS tunnel to use it).
                            assert!(matches!(got, Ok(MountPlan::Nfs { .. })), "{case}: {got:?}");
                            continue;
                        }
                        let mut want = vec!["tls".to_owned()];
                        if let Some(p) = port {
                            want.push(format!("tlsport={p}"));
                        }
                        if iam {
                            want.push("iam".into());
                            want.push("awscredsuri=/v2/credentials/cred-1".into());
                        }
                        if let Some(ap) = ap {
                            want.push(format!("accesspoint={ap}"));
                        }
                        let device = if ap.is_some() {
                            format!("{FS}:/")
                        } else {
                            format!("{FS}:/data")
                        };
                        assert_eq!(
                            got,
                            Ok(MountPlan::EfsUtils {
                                file_system_id: FS.into(),
                                device: device.clone(),
                                options: want.clone(),
                            }),
                            "{case}"
                        );
                        let args = got.unwrap().mount_args("/mnt/t").unwrap();
                        assert_eq!(
                            args,
                            ["-t", "efs", "-o", &want.join(","), &device, "/mnt/t"],
                            "{case}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn without_efs_utils_tls_iam_and_access_points_are_refused_not_dropped() {
        let t = BTreeMap::new();
        let c = ctx(&t, false);
        let tls = json!({"fileSystemId": FS, "transitEncryption": "ENABLED"});
        assert_eq!(
            plan(&tls, &c),
            Err(PlanError::NeedsEfsUtils("transit encryption"))
        );
        let iam = json!({"fileSystemId": FS, "transitEncryption": "ENABLED",
            "authorizationConfig": {"iam": "ENABLED"}});
        assert_eq!(
            plan(&iam, &c),
            Err(PlanError::NeedsEfsUtils("IAM authorization"))
        );
        let ap = json!({"fileSystemId": FS, "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": "fsap-0123abcd0123abcd0"}});
        assert_eq!(
            plan(&ap, &c),
            Err(PlanError::NeedsEfsUtils("an access point"))
        );
        assert!(PlanError::NeedsEfsUtils("IAM authorization")
            .to_string()
            .contains("amazon-efs-utils"));
    }

    #[test]
    fn iam_needs_a_task_role() {
        let t = BTreeMap::new();
        let mut c = ctx(&t, true);
        c.task_role_uri = None;
        let iam = json!({"fileSystemId": FS, "transitEncryption": "ENABLED",
            "authorizationConfig": {"iam": "ENABLED"}});
        assert_eq!(plan(&iam, &c), Err(PlanError::IamWithoutTaskRole));
        c.task_role_uri = Some("/v2/credentials/x,accesspoint=fsap-00000000");
        assert_eq!(plan(&iam, &c), Err(PlanError::BadCredentialsUri));
    }

    #[test]
    fn an_address_override_reaches_efs_utils_as_mounttargetip() {
        let mut t = BTreeMap::new();
        t.insert(FS.to_owned(), "10.0.0.5".to_owned());
        let tls = json!({"fileSystemId": FS, "transitEncryption": "ENABLED"});
        match plan(&tls, &ctx(&t, true)).unwrap() {
            MountPlan::EfsUtils { options, .. } => {
                assert_eq!(options, ["tls", "mounttargetip=10.0.0.5"])
            }
            other => panic!("{other:?}"),
        }
        t.insert(FS.to_owned(), "mt.example".to_owned());
        match plan(&tls, &ctx(&t, true)).unwrap() {
            MountPlan::EfsUtils { options, .. } => assert_eq!(options, ["tls"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mount_targets_override_by_zone_then_file_system() {
        let mut t = BTreeMap::new();
        t.insert(FS.to_owned(), "10.0.0.5".to_owned());
        assert_eq!(mount_target(FS, &ctx(&t, false)), "10.0.0.5");
        t.insert(format!("{FS}@us-west-2b"), "10.0.2.5".to_owned());
        assert_eq!(mount_target(FS, &ctx(&t, false)), "10.0.2.5");
        let mut other_zone = ctx(&t, false);
        other_zone.availability_zone = Some("us-west-2a");
        assert_eq!(mount_target(FS, &other_zone), "10.0.0.5");
        let none = BTreeMap::new();
        let mut cn = ctx(&none, false);
        cn.region = "cn-north-1";
        assert_eq!(
            mount_target(FS, &cn),
            "fs-0123abcd.efs.cn-north-1.amazonaws.com.cn"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_configurations_never_panic(s in ".{0,200}") {
            let t = BTreeMap::new();
            let c = ctx(&t, true);
            let _ = plan(&Value::String(s.clone()), &c);
            let tls = json!({"fileSystemId": FS, "rootDirectory": s.clone(), "transitEncryption": "ENABLED"});
            for v in [json!({"fileSystemId": FS, "rootDirectory": s}), tls] {
                match plan(&v, &c) {
                    Ok(MountPlan::Nfs { export, .. }) => {
                        proptest::prop_assert!(export.starts_with('/'));
                        proptest::prop_assert!(!export.contains(',') && !export.split('/').any(|p| p == ".."));
                    }
                    Ok(MountPlan::EfsUtils { device, .. }) => {
                        proptest::prop_assert!(device.starts_with("fs-0123abcd:/"));
                        proptest::prop_assert!(!device.contains(',') && !device.split('/').any(|p| p == ".."));
                    }
                    Err(_) => {}
                }
            }
        }
    }
}
