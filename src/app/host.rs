//! Facts about the host the engine needs: CPU units, memory, the kernel's ephemeral port range.

use std::collections::BTreeSet;
use std::fs;

use crate::config::Config;
use crate::engine::HostCapacity;
use crate::model::Protocol;

/// Kernel default when `/proc` cannot be read (Linux's documented default range).
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// MemTotal from `/proc/meminfo`, in MiB.
pub fn memory_total_mib() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The kernel's ephemeral port range.
pub fn ephemeral_ports() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| parse_range(&t))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (lo <= hi).then_some((lo, hi))
}

/// What the host offers to tasks, as the official agent computes it: 1024 CPU units per core,
/// MemTotal minus `ECS_RESERVED_MEMORY`, the reserved ports, the dynamic port range.
pub fn capacity(config: &Config) -> HostCapacity {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let memory = memory_total_mib().unwrap_or(0);
    let dynamic = config
        .dynamic_host_port_range
        .map(|r| (r.start, r.end))
        .unwrap_or_else(ephemeral_ports);
    HostCapacity {
        cpu: cores * 1024,
        memory_mib: memory.saturating_sub(u64::from(config.reserved_memory)),
        reserved_tcp: config.reserved_ports.iter().copied().collect(),
        reserved_udp: config
            .reserved_ports_udp
            .iter()
            .copied()
            .collect::<BTreeSet<u16>>(),
        dynamic_ports: dynamic,
        port_in_use: Some(std::sync::Arc::new(port_in_use)),
    }
}

/// Whether something on the host holds the port (a listener, or Docker's proxy for another
/// container's published port): the port is in use if it cannot be bound.
pub fn port_in_use(protocol: Protocol, port: u16) -> bool {
    let addr = (std::net::Ipv4Addr::UNSPECIFIED, port);
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind(addr).is_err(),
        Protocol::Udp => std::net::UdpSocket::bind(addr).is_err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_port_range_parse() {
        assert_eq!(
            parse_meminfo("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24000)
        );
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_range("junk"), None);
    }

    #[test]
    fn a_bound_port_is_in_use() {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(port_in_use(Protocol::Tcp, port));
        drop(listener);
        assert!(!port_in_use(Protocol::Tcp, port));
    }
}
