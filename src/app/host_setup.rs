//! `ecs-agent host-setup` / `host-cleanup`: the host plumbing ecs-init does around the agent,
//! so that containers reach the credentials endpoint as 169.254.170.2:80.
//!
//! - `net.ipv4.conf.all.route_localnet=1`, so packets DNATed to 127.0.0.1 are routed;
//! - nat PREROUTING: tcp to 169.254.170.2:80 → DNAT 127.0.0.1:51679 (bridge-mode containers);
//! - nat OUTPUT: tcp to 169.254.170.2:80 → REDIRECT 51679 (host-mode processes);
//! - filter INPUT: drop traffic to 127.0.0.0/8 that is not from 127.0.0.0/8 and not DNATed (it
//!   protects route_localnet), unless `ECS_SKIP_LOCALHOST_TRAFFIC_FILTER`;
//! - filter INPUT: drop the introspection port 51678 from other hosts, unless
//!   `ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS`.
//!
//! Both commands are idempotent: a rule is added only if `iptables -C` does not find it, and
//! removed for as long as it finds it. They shell out to `iptables`, as ecs-init does.

use std::fs;
use std::process::Command;

use crate::config::Config;

const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// One iptables rule: table, chain, whether it goes first, and its match/target words.
struct Rule {
    table: &'static str,
    chain: &'static str,
    insert: bool,
    spec: Vec<&'static str>,
}

fn rules(config: &Config) -> Vec<Rule> {
    let mut out = vec![
        Rule {
            table: "nat",
            chain: "PREROUTING",
            insert: false,
            spec: "-p tcp -d 169.254.170.2 --dport 80 -j DNAT --to-destination 127.0.0.1:51679"
                .split(' ')
                .collect(),
        },
        Rule {
            table: "nat",
            chain: "OUTPUT",
            insert: false,
            spec: "-p tcp -d 169.254.170.2 --dport 80 -j REDIRECT --to-ports 51679"
                .split(' ')
                .collect(),
        },
    ];
    if !config.skip_localhost_traffic_filter {
        out.push(Rule {
            table: "filter",
            chain: "INPUT",
            insert: true,
            spec: "--dst 127.0.0.0/8 ! --src 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
                .split(' ')
                .collect(),
        });
    }
    if !config.allow_offhost_introspection_access {
        out.push(Rule {
            table: "filter",
            chain: "INPUT",
            insert: true,
            spec: "-p tcp --dport 51678 ! -i lo -j DROP".split(' ').collect(),
        });
    }
    out
}

fn iptables(table: &str, op: &str, chain: &str, spec: &[&str]) -> Result<bool, String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", table, op, chain])
        .args(spec)
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    match (op, out.status.success()) {
        (_, true) => Ok(true),
        ("-C", false) => Ok(false),
        _ => Err(format!(
            "iptables -t {table} {op} {chain} {}: {}",
            spec.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Applies the rules and the sysctl; running it twice changes nothing the second time.
pub fn setup(config: &Config) -> Result<(), String> {
    fs::write(ROUTE_LOCALNET, "1").map_err(|e| format!("{ROUTE_LOCALNET}: {e}"))?;
    for r in rules(config) {
        if !iptables(r.table, "-C", r.chain, &r.spec)? {
            iptables(
                r.table,
                if r.insert { "-I" } else { "-A" },
                r.chain,
                &r.spec,
            )?;
        }
    }
    Ok(())
}

/// Removes every rule `setup` adds (all copies) and turns route_localnet off again.
pub fn cleanup(config: &Config) -> Result<(), String> {
    let mut all = rules(config);
    // Clean up both optional rules whatever the configuration says now.
    let everything = Config {
        skip_localhost_traffic_filter: false,
        allow_offhost_introspection_access: false,
        ..config.clone()
    };
    all.extend(rules(&everything));
    for r in all {
        while iptables(r.table, "-C", r.chain, &r.spec)? {
            iptables(r.table, "-D", r.chain, &r.spec)?;
        }
    }
    fs::write(ROUTE_LOCALNET, "0").map_err(|e| format!("{ROUTE_LOCALNET}: {e}"))
}
