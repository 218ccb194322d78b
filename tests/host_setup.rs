//! `ecs-agent host-setup` / `host-cleanup` inside network namespaces the test creates: a "host"
//! namespace running the agent's rules with a server on 127.0.0.1:51679, and a "container"
//! namespace that must reach it as 169.254.170.2:80 — never touching the machine's own tables.

use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Hosts {
    host: String,
    container: String,
    server: Child,
    dir: tempfile::TempDir,
}

impl Hosts {
    fn new() -> Hosts {
        let n = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let (host, container) = (format!("ecsh{n}"), format!("ecsc{n}"));
        let (vh, vc) = (format!("vh{n}"), format!("vc{n}"));
        let subnet = 16 + NEXT.load(Ordering::SeqCst) * 4;
        let (ha, ca) = (
            format!("10.254.77.{}/30", subnet + 1),
            format!("10.254.77.{}/30", subnet + 2),
        );
        ok(&["ip", "netns", "add", &host]);
        ok(&["ip", "netns", "add", &container]);
        ok(&[
            "ip", "link", "add", &vh, "type", "veth", "peer", "name", &vc,
        ]);
        ok(&["ip", "link", "set", &vh, "netns", &host]);
        ok(&["ip", "link", "set", &vc, "netns", &container]);
        ok(&["ip", "-n", &host, "addr", "add", &ha, "dev", &vh]);
        ok(&["ip", "-n", &container, "addr", "add", &ca, "dev", &vc]);
        for (ns, dev) in [(&host, &vh), (&container, &vc)] {
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        let gateway = ha.split('/').next().unwrap().to_owned();
        ok(&[
            "ip", "-n", &container, "route", "add", "default", "via", &gateway,
        ]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "credentials-endpoint\n").unwrap();
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host,
                "busybox",
                "httpd",
                "-f",
                "-p",
                "127.0.0.1:51679",
                "-h",
            ])
            .arg(dir.path())
            .spawn()
            .expect("busybox httpd");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Hosts {
            host,
            container,
            server,
            dir,
        }
    }

    fn agent(&self, command: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.host,
            env!("CARGO_BIN_EXE_ecs-agent"),
            "--ecs-config",
            "/nonexistent",
            command,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ECS_LOGFILE", "")
        .env(
            "ECS_AGENT_CONFIG_FILE_PATH",
            self.dir.path().join("none.json"),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// What the "container" gets from http://169.254.170.2/, or None.
    fn fetch(&self) -> Option<String> {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &self.container,
            "curl",
            "--noproxy",
            "*",
            "-s",
            "-m",
            "3",
            "http://169.254.170.2/index.html",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn rules(&self, table: &str) -> String {
        String::from_utf8_lossy(
            &run(&[
                "ip", "netns", "exec", &self.host, "iptables", "-t", table, "-S",
            ])
            .stdout,
        )
        .into_owned()
    }

    fn route_localnet(&self) -> String {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &self.host,
            "cat",
            "/proc/sys/net/ipv4/conf/all/route_localnet",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = run(&["ip", "netns", "del", &self.host]);
        let _ = run(&["ip", "netns", "del", &self.container]);
    }
}

fn host_nat_rules() -> String {
    String::from_utf8_lossy(&run(&["iptables", "-t", "nat", "-S"]).stdout).into_owned()
}

#[test]
fn containers_reach_the_credentials_endpoint_as_169_254_170_2_after_setup_and_not_after_cleanup() {
    let before = host_nat_rules();
    let h = Hosts::new();
    assert_eq!(h.fetch(), None, "nothing answers before setup");
    let out = h.agent("host-setup", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.fetch().as_deref(), Some("credentials-endpoint\n"));
    assert_eq!(h.route_localnet(), "1");
    let filter = h.rules("filter");
    assert!(
        filter.contains("--dport 51678") && filter.contains("-j DROP"),
        "introspection closed to other hosts: {filter}"
    );
    assert!(
        filter.contains("! -s 127.0.0.0/8 -d 127.0.0.0/8"),
        "localhost protected: {filter}"
    );
    assert!(h.agent("host-cleanup", &[]).status.success());
    assert_eq!(h.fetch(), None, "nothing answers after cleanup");
    assert!(!h.rules("nat").contains("169.254.170.2"));
    assert!(!h.rules("filter").contains("51678"));
    assert_eq!(h.route_localnet(), "0");
    assert_eq!(
        host_nat_rules(),
        before,
        "the machine's own tables are untouched"
    );
}

#[test]
fn setup_and_cleanup_are_idempotent_and_honour_the_ecs_init_switches() {
    let h = Hosts::new();
    let env = [
        ("ECS_SKIP_LOCALHOST_TRAFFIC_FILTER", "true"),
        ("ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", "true"),
    ];
    for _ in 0..2 {
        assert!(h.agent("host-setup", &env).status.success());
    }
    let nat = h.rules("nat");
    assert_eq!(
        nat.matches("169.254.170.2").count(),
        2,
        "PREROUTING and OUTPUT once each:\n{nat}"
    );
    let filter = h.rules("filter");
    assert!(
        !filter.contains("51678"),
        "introspection left open as configured: {filter}"
    );
    assert!(
        !filter.contains("127.0.0.0/8"),
        "localhost filter skipped as configured: {filter}"
    );
    assert_eq!(h.fetch().as_deref(), Some("credentials-endpoint\n"));
    for _ in 0..2 {
        assert!(h.agent("host-cleanup", &[]).status.success());
    }
    assert!(!h.rules("nat").contains("169.254.170.2"));
}
