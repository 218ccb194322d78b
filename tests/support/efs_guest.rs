//! The agent's own EFS mount code, run inside a qemu guest whose real kernel NFS client mounts
//! nfs-ganesha on the host (`tests/efs_real_mount.rs`, `scripts/efs-vm`). This machine's kernel
//! cannot mount NFS, so this is where `EfsMounts` meets a real server.
//!
//! Arguments: `<fileSystemId> <server address> <rootDirectory>`. Prints `PROBE-…` lines for the
//! test to check and exits non-zero at the first check that fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ecs_agent::model::{Task, Volume};
use ecs_agent::volumes::efs_mounts::{EfsMounts, EfsSettings};
use ecs_agent::volumes::mount;
use serde_json::json;

const TASK_ARN: &str = "arn:aws:ecs:us-west-2:123456789012:task/efs-guest/0123456789abcdef";

fn fail(what: &str) -> ! {
    println!("PROBE-FAIL {what}");
    std::process::exit(1);
}

fn settings(fs: &str, server: &str, timeout: Duration) -> EfsSettings {
    let mut targets = BTreeMap::new();
    targets.insert(fs.to_owned(), server.to_owned());
    EfsSettings {
        root: "/run/ecs/data/efs".into(),
        region: "us-west-2".into(),
        availability_zone: Some("us-west-2a".into()),
        mount_targets: targets,
        efs_utils_mount: None,
        timeout,
    }
}

fn task(volumes: Vec<Volume>) -> Task {
    Task {
        arn: TASK_ARN.into(),
        family: "efs-guest".into(),
        version: "1".into(),
        volumes,
        ..Default::default()
    }
}

fn volume(name: &str, fs: &str, root: &str) -> Volume {
    Volume {
        name: name.into(),
        kind: Some("efs".into()),
        efs_volume_configuration: Some(json!({"fileSystemId": fs, "rootDirectory": root})),
        ..Default::default()
    }
}

fn mount_lines(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(p.as_str()))
        .map(str::to_owned)
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [fs, server, root] = args.as_slice() else {
        fail("usage: efs-guest <fileSystemId> <server> <rootDirectory>");
    };

    // 1. The plain NFSv4.1 path, as a task's first container create runs it.
    let mounts = EfsMounts::new(settings(fs, server, Duration::from_secs(60)));
    let data = volume("data", fs, root);
    let t = task(vec![data.clone()]);
    let started = Instant::now();
    let path = match mounts.prepare(&t, &data).await {
        Ok(p) => p,
        Err(reason) => fail(&format!("mount: {reason}")),
    };
    println!(
        "PROBE-MOUNTED {} in {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    let lines = mount_lines(&path);
    for l in &lines {
        println!("PROBE-PROCMOUNTS {l}");
    }
    if lines.len() != 1 {
        fail(&format!("{} mounts at {}", lines.len(), path.display()));
    }
    match std::fs::read_to_string(path.join("from-host.txt")) {
        Ok(s) => println!("PROBE-READ {}", s.trim()),
        Err(e) => fail(&format!("read from-host.txt: {e}")),
    }
    let text = format!("written in the guest through {fs}:{root}\n");
    if let Err(e) = std::fs::write(path.join("from-guest.txt"), &text)
        .and_then(|()| std::fs::File::open(path.join("from-guest.txt"))?.sync_all())
    {
        fail(&format!("write from-guest.txt: {e}"));
    }
    println!("PROBE-WROTE from-guest.txt");
    // A second container of the task gets the same mount, not a second one.
    match mounts.prepare(&t, &data).await {
        Ok(p) if p == path && mount_lines(&path).len() == 1 => {
            println!("PROBE-SECOND-CONTAINER same mount")
        }
        other => fail(&format!("second prepare: {other:?}")),
    }

    // 2. An agent restart: a new instance adopts the mount of the known task.
    let after_restart = EfsMounts::new(settings(fs, server, Duration::from_secs(60)));
    let known: BTreeSet<String> = [t.id().to_owned()].into();
    let (kept, released) = after_restart.adopt(&known);
    match after_restart.prepare(&t, &data).await {
        Ok(p) if p == path && kept == 1 && released == 0 && mount_lines(&path).len() == 1 => {
            println!("PROBE-ADOPTED kept={kept} released={released}")
        }
        other => fail(&format!(
            "adopt: kept={kept} released={released} prepare={other:?} mounts={}",
            mount_lines(&path).len()
        )),
    }

    // 3. Task cleanup: unmounted once, directory gone; a second release does nothing.
    after_restart.release(t.id());
    if !mount_lines(&path).is_empty() || path.exists() {
        fail("still mounted or directory left after release");
    }
    after_restart.release(t.id());
    println!("PROBE-RELEASED");

    // 4. A rootDirectory the server does not have: the task's reason names the file system.
    let missing = volume("missing", fs, "/export/no-such-directory");
    let t2 = task(vec![missing.clone()]);
    match mounts.prepare(&t2, &missing).await {
        Err(reason) if reason.contains(fs.as_str()) => println!("PROBE-BAD-ROOT {reason}"),
        other => fail(&format!("bad root: {other:?}")),
    }
    mounts.release(t2.id());

    // 5. A server that accepts the connection and never answers (a listener of this guest on
    // its own loopback that reads nothing): the deadline ends the attempt.
    let silent = match std::net::TcpListener::bind("127.0.0.1:2049") {
        Ok(l) => l,
        Err(e) => fail(&format!("silent listener: {e}")),
    };
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let dead = EfsMounts::new(settings(fs, "127.0.0.1", Duration::from_secs(5)));
    let v = volume("dead", fs, "/");
    let t3 = task(vec![v.clone()]);
    let started = Instant::now();
    match dead.prepare(&t3, &v).await {
        Err(reason) if started.elapsed() < Duration::from_secs(20) => println!(
            "PROBE-DEAD-SERVER after {} ms: {reason}",
            started.elapsed().as_millis()
        ),
        other => fail(&format!(
            "dead server: {other:?} after {:?}",
            started.elapsed()
        )),
    }
    if !mount::mounts_under(&mount::mountinfo(), Path::new("/run/ecs/data/efs")).is_empty() {
        fail("a mount was left behind");
    }
    println!("PROBE-DONE");
}
