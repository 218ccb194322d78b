//! Port mappings, with their host side already chosen, as Docker `ExposedPorts` and
//! `PortBindings`.
//!
//! Choosing dynamic host ports is the engine's job; this only lays out what it chose. A container
//! port range binds 1:1 onto a host range of the same length, as the official agent does.

use bollard::models::{PortBinding, PortMap};

use super::CreateError;
use crate::model::{PortMapping, Protocol};

/// One port mapping of a container with the host side chosen by the engine.
///
/// Exactly one of `container_port` and `container_port_range` is set. A `None` host side leaves
/// the choice to Docker (an ephemeral port), which the engine then reads back from inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedPort {
    pub container_port: Option<u16>,
    /// Inclusive `(start, end)`.
    pub container_port_range: Option<(u16, u16)>,
    pub host_port: Option<u16>,
    /// Inclusive `(start, end)`, as long as `container_port_range`.
    pub host_port_range: Option<(u16, u16)>,
    pub protocol: Protocol,
}

impl ResolvedPort {
    /// The mapping as the task definition states it: its fixed host port, if any (`hostPort` 0 or
    /// absent gives `None`), and its parsed container port range with no host range yet.
    pub fn requested(
        container: &str,
        index: usize,
        mapping: &PortMapping,
    ) -> Result<Self, CreateError> {
        let range = match mapping.container_port_range.as_deref() {
            Some(text) => Some(parse_port_range(text).ok_or_else(|| {
                invalid(
                    container,
                    index,
                    format!("invalid containerPortRange {text:?}"),
                )
            })?),
            None => None,
        };
        Ok(ResolvedPort {
            container_port: mapping.container_port.filter(|&p| p != 0),
            container_port_range: range,
            host_port: mapping.host_port.filter(|&p| p != 0),
            host_port_range: None,
            protocol: mapping.protocol.unwrap_or_default(),
        })
    }
}

/// Parses `start-end` (inclusive, `0 < start <= end`).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.trim().split_once('-')?;
    let start: u16 = start.trim().parse().ok()?;
    let end: u16 = end.trim().parse().ok()?;
    (start != 0 && start <= end).then_some((start, end))
}

/// `ExposedPorts` keys (`"80/tcp"`, ranges expanded, no duplicates, in mapping order) and the
/// `PortBindings` map for `ports`.
pub(super) fn port_config(
    container: &str,
    ports: &[ResolvedPort],
) -> Result<(Vec<String>, PortMap), CreateError> {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings = PortMap::new();
    for (index, port) in ports.iter().enumerate() {
        for (container_port, host_port) in pairs(container, index, port)? {
            let key = format!("{container_port}/{}", port.protocol);
            if !exposed.contains(&key) {
                exposed.push(key.clone());
            }
            let binding = PortBinding {
                host_ip: Some(String::new()),
                host_port: Some(host_port.map(|p| p.to_string()).unwrap_or_default()),
            };
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
    }
    Ok((exposed, bindings))
}

/// (container port, host port) pairs of one resolved mapping.
fn pairs(
    container: &str,
    index: usize,
    port: &ResolvedPort,
) -> Result<Vec<(u16, Option<u16>)>, CreateError> {
    let fail = |reason: &str| Err(invalid(container, index, reason.to_string()));
    match (port.container_port, port.container_port_range) {
        (Some(0), None) => fail("container port 0"),
        (Some(single), None) if port.host_port_range.is_none() => {
            Ok(vec![(single, port.host_port)])
        }
        (Some(_), None) => fail("host port range given for a single container port"),
        (None, Some(_)) if port.host_port.is_some() => {
            fail("single host port given for a container port range")
        }
        (None, Some((start, end))) => range_pairs(container, index, (start, end), port),
        _ => fail("exactly one of containerPort and containerPortRange must be set"),
    }
}

fn range_pairs(
    container: &str,
    index: usize,
    (start, end): (u16, u16),
    port: &ResolvedPort,
) -> Result<Vec<(u16, Option<u16>)>, CreateError> {
    if start == 0 || start > end {
        return Err(invalid(
            container,
            index,
            format!("invalid container port range {start}-{end}"),
        ));
    }
    match port.host_port_range {
        None => Ok((start..=end).map(|p| (p, None)).collect()),
        Some((host_start, host_end)) if host_end.checked_sub(host_start) == Some(end - start) => {
            Ok((start..=end).zip(host_start..=host_end).map(|(c, h)| (c, Some(h))).collect())
        }
        Some((host_start, host_end)) => Err(invalid(
            container,
            index,
            format!("host port range {host_start}-{host_end} does not match container port range {start}-{end}"),
        )),
    }
}

fn invalid(container: &str, index: usize, reason: String) -> CreateError {
    CreateError::InvalidPortMapping {
        container: container.to_string(),
        index,
        reason,
    }
}
