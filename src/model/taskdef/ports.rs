//! `portMappings`: container port or port range, host port (0 or absent = dynamic), protocol.
//! `name` and `appProtocol` (Service Connect) are accepted and ignored.

use super::fields::Obj;
use crate::model::task::{PortMapping, Protocol};

pub(super) fn port_mappings(c: &Obj<'_>) -> Option<Vec<PortMapping>> {
    let items = c.objects("portMappings")?;
    Some(items.iter().map(port_mapping).collect())
}

fn port_mapping(m: &Obj<'_>) -> PortMapping {
    m.str("name");
    m.str("appProtocol");
    let range = m.str("containerPortRange").filter(|r| !r.is_empty());
    let container_port = port(m, "containerPort", 1);
    let host_port = port(m, "hostPort", 0);
    match range {
        Some(r) => check_range(m, r, container_port, host_port),
        None if container_port.is_none() && m.get("containerPort").is_none() => m.error(
            "containerPort",
            "is required unless containerPortRange is set",
        ),
        None => {}
    }
    PortMapping {
        container_port,
        host_port,
        container_port_range: range.map(str::to_owned),
        protocol: protocol(m),
    }
}

fn check_range(m: &Obj<'_>, range: &str, container_port: Option<u16>, host_port: Option<u16>) {
    if container_port.is_some() {
        m.error(
            "containerPort",
            "set containerPort or containerPortRange, not both",
        );
    }
    if host_port.is_some_and(|p| p != 0) {
        m.error(
            "hostPort",
            "a hostPort cannot be given with containerPortRange (host ports are assigned)",
        );
    }
    if let Err(message) = parse_range(range) {
        m.error("containerPortRange", message);
    }
}

/// `start-end`, both ports in 1–65535, start below end.
pub(super) fn parse_range(range: &str) -> Result<(u16, u16), String> {
    let malformed = || format!("{range:?} is not a port range like \"8000-8010\"");
    let (start, end) = range.split_once('-').ok_or_else(malformed)?;
    let start: u16 = start.trim().parse().map_err(|_| malformed())?;
    let end: u16 = end.trim().parse().map_err(|_| malformed())?;
    if start == 0 {
        return Err(format!("{range:?}: ports must be in 1-65535"));
    }
    if start >= end {
        return Err(format!("{range:?}: the first port must be below the last"));
    }
    Ok((start, end))
}

/// A port number from `min` (1, or 0 for a dynamic host port) to 65535.
fn port(m: &Obj<'_>, key: &str, min: i64) -> Option<u16> {
    let n = m.int(key)?;
    if n < min || n > 65535 {
        m.error(key, format!("{n} is not a port number ({min}-65535)"));
        return None;
    }
    u16::try_from(n).ok()
}

fn protocol(m: &Obj<'_>) -> Option<Protocol> {
    match m.str("protocol")? {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        other => {
            m.error("protocol", format!("{other:?} is not one of tcp, udp"));
            None
        }
    }
}
