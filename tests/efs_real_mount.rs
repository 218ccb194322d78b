//! EFS mounted for real. This machine's kernel has no NFS client, so the agent's own EFS mount
//! code (`EfsMounts`, through `tests/support/efs_guest.rs`) runs inside a stock Debian kernel
//! booted under qemu, whose NFS client mounts nfs-ganesha serving a directory of this test —
//! ganesha and qemu together in a network namespace of their own (`scripts/efs-vm`), so nothing
//! leaves the machine. Checked: the NFSv4.1 mount with every EFS option, a rootDirectory, files
//! both ways, one mount for two containers, adoption after a restart, a clean unmount, a missing
//! rootDirectory and a dead server stopping with reasons that name the file system.

use std::path::{Path, PathBuf};
use std::process::Command;

const FS: &str = "fs-0123abcd";

/// The guest program, built if this run has not built it, stripped into `dir` (the debug
/// build carries ~100 MB of debug information the guest does not need).
fn guest_binary(dir: &Path) -> PathBuf {
    let test_exe = std::env::current_exe().unwrap();
    let profile_dir = test_exe.parent().unwrap().parent().unwrap();
    let built = profile_dir.join("examples").join("efs_guest");
    if !built.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "efs_guest"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --example efs_guest failed");
    }
    let out = dir.join("efs-guest");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(&built)
        .status()
        .expect("strip (binutils)");
    assert!(status.success());
    out
}

fn probe<'a>(log: &'a str, key: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(key))
        .map(str::trim)
        .collect()
}

#[test]
fn the_agents_efs_code_mounts_nfs_from_a_real_kernel_client_in_a_guest() {
    let work = tempfile::tempdir().unwrap();
    let guest = guest_binary(work.path());
    let export = work.path().join("export");
    // The rootDirectory of the volume: a directory inside the export.
    std::fs::create_dir_all(export.join("app")).unwrap();
    std::fs::write(
        export.join("app").join("from-host.txt"),
        "written on the host\n",
    )
    .unwrap();
    let log_path = work.path().join("serial.log");
    let output = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/efs-vm"))
        .arg("run")
        .arg("--guest-bin")
        .arg(&guest)
        .arg("--export")
        .arg(&export)
        .arg("--log")
        .arg(&log_path)
        .arg("--guest-args")
        .arg(format!("{FS} 10.0.2.2 /export/app"))
        .output()
        .expect("scripts/efs-vm runs");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let explain = format!(
        "efs-vm: {}\nstderr: {}\nserial log:\n{log}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{explain}");
    assert!(log.contains("PROBE-DONE"), "{explain}");
    assert!(log.contains("PROBE-EXIT rc=0"), "{explain}");

    // The kernel's own view of the mount: the agent's source, type and every EFS option.
    let mounts = probe(&log, "PROBE-PROCMOUNTS ");
    assert_eq!(mounts.len(), 1, "{explain}");
    let fields: Vec<&str> = mounts[0].split(' ').collect();
    assert_eq!(fields[0], ":/export/app", "{explain}");
    assert_eq!(fields[2], "nfs4", "{explain}");
    let options: Vec<&str> = fields[3].split(',').collect();
    for want in [
        "vers=4.1",
        "rsize=1048576",
        "wsize=1048576",
        "hard",
        "timeo=600",
        "retrans=2",
        "noresvport",
        "addr=10.0.2.2",
    ] {
        assert!(options.contains(&want), "{want} missing in {options:?}");
    }

    // Files both ways.
    assert_eq!(
        probe(&log, "PROBE-READ "),
        ["written on the host"],
        "{explain}"
    );
    let from_guest = std::fs::read_to_string(export.join("app").join("from-guest.txt"))
        .unwrap_or_else(|e| panic!("from-guest.txt on the host: {e}\n{explain}"));
    assert_eq!(
        from_guest,
        format!("written in the guest through {FS}:/export/app\n")
    );

    // One mount for a second container, adopted after a restart, released once.
    assert!(
        log.contains("PROBE-SECOND-CONTAINER same mount"),
        "{explain}"
    );
    assert!(log.contains("PROBE-ADOPTED kept=1 released=0"), "{explain}");
    assert!(log.contains("PROBE-RELEASED"), "{explain}");

    // Failures name the file system; the dead server is given up at the deadline.
    let bad_root = probe(&log, "PROBE-BAD-ROOT ");
    assert_eq!(bad_root.len(), 1, "{explain}");
    assert!(
        bad_root[0].starts_with(&format!(
            "ResourceInitializationError: failed to mount EFS volume \"missing\" ({FS} from 10.0.2.2:/export/no-such-directory)"
        )),
        "{explain}"
    );
    let dead = probe(&log, "PROBE-DEAD-SERVER ");
    assert_eq!(dead.len(), 1, "{explain}");
    assert!(
        dead[0].contains(FS) && dead[0].contains("no answer within 5s"),
        "{explain}"
    );
}
