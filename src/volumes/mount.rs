//! The system calls behind EFS volumes: an NFS `mount(2)` made by the agent itself (as Docker's
//! `local` driver makes it for the official agent: source `:<export>`, type `nfs`, data
//! `addr=<ip>,<options>`), `umount2(2)`, the amazon-efs-utils helper run as a child process,
//! and the mount table read back from `/proc/self/mountinfo`. Every call that can hang on a
//! dead server runs with a deadline.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Why a mount or unmount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount(2) failed: {0}")]
    Syscall(Errno),
    #[error("no answer within {0:?} (server unreachable?)")]
    TimedOut(Duration),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{program} exited with {status}: {stderr}")]
    Helper {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// The data string of the agent's NFS mount.
pub fn nfs_data(addr: IpAddr, options: &str) -> String {
    format!("addr={addr},{options}")
}

/// One `mount(2)` of `:<export>` from `addr` at `target`, type `nfs` (the kernel picks NFSv4.1
/// from `nfsvers=4.1` in `options`).
pub fn mount_nfs(addr: IpAddr, export: &str, target: &Path, options: &str) -> Result<(), Errno> {
    let source = format!(":{export}");
    let data = nfs_data(addr, options);
    mount(
        Some(source.as_str()),
        target,
        Some("nfs"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
}

/// [`mount_nfs`] on a thread of its own, given up after `timeout`. A mount that completes after
/// the deadline is undone at once, so a late success leaks nothing.
pub async fn mount_nfs_within(
    addr: IpAddr,
    export: &str,
    target: &Path,
    options: &str,
    timeout: Duration,
) -> Result<(), MountError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (export, path, options) = (export.to_owned(), target.to_owned(), options.to_owned());
    std::thread::Builder::new()
        .name("efs-mount".into())
        .spawn(move || {
            let result = mount_nfs(addr, &export, &path, &options);
            if let Err(Ok(())) = tx.send(result) {
                // Nobody waits any more: the caller timed out and reported a failure.
                let _ = unmount(&path);
            }
        })
        .map_err(|e| MountError::Spawn {
            program: "mount thread".into(),
            source: e,
        })?;
    let mut rx = rx;
    match tokio::time::timeout(timeout, &mut rx).await {
        Ok(Ok(result)) => result.map_err(MountError::Syscall),
        Ok(Err(_)) => Err(MountError::Syscall(Errno::EIO)),
        Err(_) => {
            // A mount that finished between the last poll and now is undone here; one that
            // finishes later finds the channel closed and undoes itself.
            rx.close();
            if let Ok(Ok(())) = rx.try_recv() {
                let _ = unmount(target);
            }
            Err(MountError::TimedOut(timeout))
        }
    }
}

/// Detaches the mount at `target` (`umount -l`, as the official agent's volume plugin does):
/// it returns at once even when the server is dead, and the kernel finishes the unmount when
/// nothing uses it any more. `Ok(false)` when nothing is mounted there.
pub fn unmount(target: &Path) -> Result<bool, Errno> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Resolves a mount target host name (or parses an address) within `timeout`, preferring IPv4
/// as EFS mount targets are reached.
pub async fn resolve(host: &str, timeout: Duration) -> Result<IpAddr, MountError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let fail = |reason: String| MountError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let name = format!("{host}:2049");
    let lookup = tokio::net::lookup_host(name);
    let addrs: Vec<IpAddr> = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail(format!("no answer within {timeout:?}"))),
    };
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| fail("no address".into()))
}

/// Runs a mount helper (`mount -t efs …`) with `args` in a process group of its own, and
/// kills the whole group (`mount.efs`, `mount.nfs4`, …) after `timeout`.
pub async fn run_helper(
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<(), MountError> {
    let name = program.display().to_string();
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| MountError::Spawn {
            program: name.clone(),
            source: e,
        })?;
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(MountError::Spawn {
                program: name,
                source: e,
            })
        }
        Err(_) => {
            if let Some(pgid) = group {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            return Err(MountError::TimedOut(timeout));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = redact_credentials_uri(&String::from_utf8_lossy(&output.stderr));
    let stderr: String = stderr.trim().chars().take(2000).collect();
    Err(MountError::Helper {
        program: name,
        status: output.status.to_string(),
        stderr,
    })
}

/// Replaces the id in every `/v2/credentials/<id>` (the key to the task role's credentials on
/// the credentials endpoint) that a helper's message may quote.
pub fn redact_credentials_uri(text: &str) -> String {
    const MARK: &str = "/v2/credentials/";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i + MARK.len()]);
        out.push_str("<redacted>");
        rest = &rest[i + MARK.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Mount points at or below `root`, from a `/proc/self/mountinfo` text.
pub fn mounts_under(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(root))
        .collect()
}

/// Whether `path` is a mount point, from a `/proc/self/mountinfo` text.
pub fn is_mounted(mountinfo: &str, path: &Path) -> bool {
    mounts_under(mountinfo, path).iter().any(|p| p == path)
}

/// The mount table of this process.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mountinfo paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:50 / /var/lib/ecs/data/efs/t1/data rw,relatime shared:40 - nfs4 :/ rw,vers=4.1,addr=10.0.0.5
91 22 0:51 /sub /var/lib/ecs/data/efs/t2/my\\040vol rw - nfs4 :/sub rw
92 22 0:52 / /var/lib/ecs/data/other rw - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_lists_the_mounts_under_a_root() {
        let root = Path::new("/var/lib/ecs/data/efs");
        assert_eq!(
            mounts_under(INFO, root),
            [
                PathBuf::from("/var/lib/ecs/data/efs/t1/data"),
                PathBuf::from("/var/lib/ecs/data/efs/t2/my vol")
            ]
        );
        assert!(is_mounted(INFO, Path::new("/var/lib/ecs/data/efs/t1/data")));
        assert!(!is_mounted(INFO, Path::new("/var/lib/ecs/data/efs/t1")));
    }

    #[test]
    fn credentials_ids_are_redacted_from_helper_messages() {
        assert_eq!(
            redact_credentials_uri("GET http://169.254.170.2/v2/credentials/ab-12.c failed; /v2/credentials/x'"),
            "GET http://169.254.170.2/v2/credentials/<redacted> failed; /v2/credentials/<redacted>'"
        );
        assert_eq!(redact_credentials_uri("plain"), "plain");
    }

    #[test]
    fn the_nfs_data_string_carries_the_address_first() {
        assert_eq!(
            nfs_data("10.0.2.2".parse().unwrap(), crate::volumes::efs::NFS_OPTIONS),
            "addr=10.0.2.2,nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport"
        );
    }

    #[test]
    fn unmounting_what_is_not_mounted_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unmount(dir.path()), Ok(false));
        assert_eq!(unmount(&dir.path().join("absent")), Ok(false));
    }

    #[tokio::test]
    async fn the_helper_succeeds_fails_with_its_stderr_or_is_killed_at_the_deadline() {
        let sh = Path::new("/bin/sh");
        let args = |s: &str| vec!["-c".to_owned(), s.to_owned()];
        run_helper(sh, &args("exit 0"), Duration::from_secs(5))
            .await
            .unwrap();
        let err = run_helper(
            sh,
            &args("echo 'mount.nfs4: access denied by server' >&2; exit 32"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("access denied by server"), "{text}");
        assert!(text.contains("32"), "{text}");
        let started = std::time::Instant::now();
        // The helper's own children go with it (mount.efs runs mount.nfs4, stunnel…).
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let err = run_helper(sh, &args(&script), Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(err, MountError::TimedOut(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let alive = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "the helper's child {child} survived the deadline");
        let err = run_helper(Path::new("/nonexistent/mount"), &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, MountError::Spawn { .. }), "{err}");
    }

    #[tokio::test]
    async fn names_resolve_and_addresses_pass_through() {
        let t = Duration::from_secs(5);
        assert_eq!(
            resolve("10.0.2.2", t).await.unwrap(),
            "10.0.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve("localhost", t).await.unwrap(),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        // (No lookup of an unknown name here: it would ask the machine's DNS server.)
    }
}
