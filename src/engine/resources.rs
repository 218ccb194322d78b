//! Host resource accounting: CPU units, memory, TCP and UDP host ports.
//!
//! Unlike the official agent's FIFO queue, a task that does not fit yet does not hold back the
//! tasks behind it: the engine offers every waiting task, in arrival order, whatever is free.
//! Dynamic host ports are chosen here, from `ECS_DYNAMIC_HOST_PORT_RANGE` (or the kernel's range
//! the caller passes), so the engine knows every binding before the container is created. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Protocol, Task};

/// Tells whether a host port is taken by something outside the engine (another process, a
/// container the engine does not know). Injected, so the engine stays pure.
pub type PortProbe = std::sync::Arc<dyn Fn(Protocol, u16) -> bool + Send + Sync>;

/// What the host offers to tasks.
#[derive(Clone)]
pub struct HostCapacity {
    /// CPU units (1024 per core).
    pub cpu: u64,
    pub memory_mib: u64,
    pub reserved_tcp: BTreeSet<u16>,
    pub reserved_udp: BTreeSet<u16>,
    /// Inclusive range for dynamic host ports.
    pub dynamic_ports: (u16, u16),
    /// Checks a dynamic port candidate against the host; `None` trusts the engine's own books.
    pub port_in_use: Option<PortProbe>,
}

impl std::fmt::Debug for HostCapacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCapacity")
            .field("cpu", &self.cpu)
            .field("memory_mib", &self.memory_mib)
            .field("reserved_tcp", &self.reserved_tcp)
            .field("reserved_udp", &self.reserved_udp)
            .field("dynamic_ports", &self.dynamic_ports)
            .finish_non_exhaustive()
    }
}

impl PartialEq for HostCapacity {
    fn eq(&self, o: &Self) -> bool {
        (
            self.cpu,
            self.memory_mib,
            &self.reserved_tcp,
            &self.reserved_udp,
            self.dynamic_ports,
        ) == (
            o.cpu,
            o.memory_mib,
            &o.reserved_tcp,
            &o.reserved_udp,
            o.dynamic_ports,
        )
    }
}

/// A container port (or range) bound to a host port (or range of the same length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    pub container: (u16, u16),
    pub host: (u16, u16),
    pub protocol: Protocol,
}

/// One port mapping as the task asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    pub container: (u16, u16),
    /// A fixed host port; `None` for a dynamic one (or range).
    pub host: Option<u16>,
    pub protocol: Protocol,
}

/// What a task needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Demand {
    pub cpu: u64,
    pub memory_mib: u64,
    /// Port requests per container, in container order.
    pub ports: Vec<Vec<PortRequest>>,
}

/// Why a task does not fit now (or ever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// Not enough free now; it may fit when another task stops.
    NotNow(String),
    /// More than the host has at all, or a reserved port: it never fits.
    Never(String),
}

/// Computes a task's demand as the official agent does: task-level CPU/memory when given,
/// else the sum over containers (memory reservation when set, else the hard limit).
pub fn demand(task: &Task) -> Result<Demand, String> {
    let cpu = match task.cpu {
        Some(vcpu) => (vcpu * 1024.0).round() as u64,
        None => task
            .containers
            .iter()
            .map(|c| c.cpu.unwrap_or(0).max(0) as u64)
            .sum(),
    };
    let memory_mib = match task.memory {
        Some(m) => m.max(0) as u64,
        None => task.containers.iter().map(container_memory_mib).sum(),
    };
    let mut ports = Vec::new();
    for c in &task.containers {
        let mut requests = Vec::new();
        for (i, pm) in c.port_mappings.iter().flatten().enumerate() {
            let field = || format!("container {} portMappings[{i}]", c.name);
            let container = match (&pm.container_port_range, pm.container_port) {
                (Some(range), _) => parse_range(range)
                    .ok_or_else(|| format!("{}: bad containerPortRange {range:?}", field()))?,
                (None, Some(p)) if p > 0 => (p, p),
                _ => return Err(format!("{}: containerPort is required", field())),
            };
            let host = pm
                .host_port
                .filter(|&h| h > 0 && pm.container_port_range.is_none());
            requests.push(PortRequest {
                container,
                host,
                protocol: pm.protocol.unwrap_or_default(),
            });
        }
        ports.push(requests);
    }
    Ok(Demand {
        cpu,
        memory_mib,
        ports,
    })
}

fn container_memory_mib(c: &crate::model::Container) -> u64 {
    let reservation = c
        .docker_config
        .as_ref()
        .and_then(|d| d.host_config.as_deref())
        .and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok())
        .and_then(|v| v.get("MemoryReservation").and_then(|m| m.as_u64()))
        .filter(|&b| b > 0)
        .map(|bytes| bytes.div_ceil(1024 * 1024));
    reservation.unwrap_or_else(|| c.memory.unwrap_or(0).max(0) as u64)
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

#[derive(Debug, Clone, Default)]
struct Reservation {
    cpu: u64,
    memory_mib: u64,
    ports: Vec<(Protocol, u16)>,
}

/// The host's capacity and what tasks hold of it.
#[derive(Debug, Clone)]
pub struct Resources {
    capacity: HostCapacity,
    used_cpu: u64,
    used_memory: u64,
    used_ports: BTreeSet<(Protocol, u16)>,
    held: BTreeMap<String, Reservation>,
    next_dynamic: u16,
}

impl Resources {
    /// The host's books; `start` picks where the dynamic port search begins (random in
    /// production, so that agents sharing a host do not all start at the bottom of the range).
    pub fn new(capacity: HostCapacity, start: u64) -> Self {
        let (lo, hi) = capacity.dynamic_ports;
        let next_dynamic = lo + (start % (u64::from(hi - lo) + 1)) as u16;
        Resources {
            capacity,
            used_cpu: 0,
            used_memory: 0,
            used_ports: BTreeSet::new(),
            held: BTreeMap::new(),
            next_dynamic,
        }
    }

    /// Whether the task holds a reservation.
    pub fn holds(&self, task: &str) -> bool {
        self.held.contains_key(task)
    }

    /// Reserves the demand for `task` and chooses its host ports, or says why it cannot.
    pub fn reserve(&mut self, task: &str, d: &Demand) -> Result<Vec<Vec<Binding>>, Shortfall> {
        self.check_capacity(d)?;
        let mut taken: Vec<(Protocol, u16)> = Vec::new();
        let mut bindings = Vec::new();
        for requests in &d.ports {
            let mut bound = Vec::new();
            for r in requests {
                let host = match r.host {
                    Some(p) => self.static_port(r.protocol, p, &taken)?,
                    None => {
                        self.dynamic_block(r.protocol, r.container.1 - r.container.0 + 1, &taken)?
                    }
                };
                for p in host.0..=host.1 {
                    taken.push((r.protocol, p));
                }
                bound.push(Binding {
                    container: r.container,
                    host,
                    protocol: r.protocol,
                });
            }
            bindings.push(bound);
        }
        self.used_cpu += d.cpu;
        self.used_memory += d.memory_mib;
        self.used_ports.extend(taken.iter().copied());
        self.held.insert(
            task.to_owned(),
            Reservation {
                cpu: d.cpu,
                memory_mib: d.memory_mib,
                ports: taken,
            },
        );
        Ok(bindings)
    }

    /// Records what a restored task already holds (its saved host ports included), without
    /// choosing anything: the agent restarted while the task held its reservation.
    pub fn adopt(&mut self, task: &str, cpu: u64, memory_mib: u64, ports: Vec<(Protocol, u16)>) {
        self.release(task);
        self.used_cpu += cpu;
        self.used_memory += memory_mib;
        self.used_ports.extend(ports.iter().copied());
        self.held.insert(
            task.to_owned(),
            Reservation {
                cpu,
                memory_mib,
                ports,
            },
        );
    }

    /// Gives back what `task` held (no-op if nothing).
    pub fn release(&mut self, task: &str) {
        if let Some(r) = self.held.remove(task) {
            self.used_cpu -= r.cpu;
            self.used_memory -= r.memory_mib;
            for p in r.ports {
                self.used_ports.remove(&p);
            }
        }
    }

    fn check_capacity(&self, d: &Demand) -> Result<(), Shortfall> {
        let cap = &self.capacity;
        if d.memory_mib > cap.memory_mib {
            return Err(Shortfall::Never(format!(
                "RESOURCE:MEMORY: the task needs {} MiB, the instance has {} MiB",
                d.memory_mib, cap.memory_mib
            )));
        }
        if d.cpu > cap.cpu {
            return Err(Shortfall::Never(format!(
                "RESOURCE:CPU: the task needs {} CPU units, the instance has {}",
                d.cpu, cap.cpu
            )));
        }
        if self.used_memory + d.memory_mib > cap.memory_mib {
            return Err(Shortfall::NotNow(format!(
                "waiting for {} MiB of memory",
                d.memory_mib
            )));
        }
        if self.used_cpu + d.cpu > cap.cpu {
            return Err(Shortfall::NotNow(format!(
                "waiting for {} CPU units",
                d.cpu
            )));
        }
        Ok(())
    }

    fn static_port(
        &self,
        proto: Protocol,
        port: u16,
        taken: &[(Protocol, u16)],
    ) -> Result<(u16, u16), Shortfall> {
        let reserved = match proto {
            Protocol::Tcp => &self.capacity.reserved_tcp,
            Protocol::Udp => &self.capacity.reserved_udp,
        };
        if reserved.contains(&port) {
            return Err(Shortfall::Never(format!(
                "RESOURCE:PORTS: host port {port}/{proto} is reserved"
            )));
        }
        if self.used_ports.contains(&(proto, port)) || taken.contains(&(proto, port)) {
            return Err(Shortfall::NotNow(format!(
                "waiting for host port {port}/{proto}"
            )));
        }
        Ok((port, port))
    }

    fn port_free(&self, proto: Protocol, port: u16, taken: &[(Protocol, u16)]) -> bool {
        let reserved = match proto {
            Protocol::Tcp => &self.capacity.reserved_tcp,
            Protocol::Udp => &self.capacity.reserved_udp,
        };
        !reserved.contains(&port)
            && !self.used_ports.contains(&(proto, port))
            && !taken.contains(&(proto, port))
            && !self
                .capacity
                .port_in_use
                .as_ref()
                .is_some_and(|probe| probe(proto, port))
    }

    /// A free block of `len` consecutive ports from the dynamic range, searched round-robin.
    fn dynamic_block(
        &mut self,
        proto: Protocol,
        len: u16,
        taken: &[(Protocol, u16)],
    ) -> Result<(u16, u16), Shortfall> {
        let (lo, hi) = self.capacity.dynamic_ports;
        let span = u32::from(hi - lo) + 1;
        for step in 0..span {
            let start = lo as u32 + (u32::from(self.next_dynamic - lo) + step) % span;
            let end = start + u32::from(len) - 1;
            if end > u32::from(hi) {
                continue;
            }
            let (s, e) = (start as u16, end as u16);
            if (s..=e).all(|p| self.port_free(proto, p, taken)) {
                self.next_dynamic = if e == hi { lo } else { e + 1 };
                return Ok((s, e));
            }
        }
        Err(Shortfall::NotNow(format!(
            "waiting for {len} free dynamic {proto} port(s)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Resources {
        Resources::new(
            HostCapacity {
                cpu: 2048,
                memory_mib: 1000,
                reserved_tcp: [22].into(),
                reserved_udp: BTreeSet::new(),
                dynamic_ports: (40000, 40009),
                port_in_use: None,
            },
            0,
        )
    }

    fn mem(m: u64) -> Demand {
        Demand {
            memory_mib: m,
            ..Default::default()
        }
    }

    #[test]
    fn memory_is_held_until_released() {
        let mut r = host();
        r.reserve("a", &mem(600)).unwrap();
        assert!(matches!(
            r.reserve("b", &mem(600)),
            Err(Shortfall::NotNow(_))
        ));
        assert!(
            r.reserve("c", &mem(300)).is_ok(),
            "a smaller task still fits"
        );
        r.release("a");
        assert!(r.reserve("b", &mem(600)).is_ok());
    }

    #[test]
    fn more_than_the_host_has_never_fits() {
        let mut r = host();
        assert!(
            matches!(r.reserve("a", &mem(2000)), Err(Shortfall::Never(m)) if m.starts_with("RESOURCE:MEMORY"))
        );
    }

    #[test]
    fn static_ports_conflict_and_reserved_ports_never_fit() {
        let mut r = host();
        let want = |p| Demand {
            ports: vec![vec![PortRequest {
                container: (80, 80),
                host: Some(p),
                protocol: Protocol::Tcp,
            }]],
            ..Default::default()
        };
        assert!(r.reserve("a", &want(8080)).is_ok());
        assert!(matches!(
            r.reserve("b", &want(8080)),
            Err(Shortfall::NotNow(_))
        ));
        assert!(matches!(
            r.reserve("c", &want(22)),
            Err(Shortfall::Never(_))
        ));
        r.release("a");
        assert!(r.reserve("b", &want(8080)).is_ok());
    }

    #[test]
    fn dynamic_ports_come_from_the_range_without_reuse() {
        let mut r = host();
        let dynamic = Demand {
            ports: vec![vec![PortRequest {
                container: (80, 80),
                host: None,
                protocol: Protocol::Tcp,
            }]],
            ..Default::default()
        };
        let mut seen = BTreeSet::new();
        for i in 0..10 {
            let b = r.reserve(&format!("t{i}"), &dynamic).unwrap();
            let port = b[0][0].host.0;
            assert!((40000..=40009).contains(&port));
            assert!(seen.insert(port), "port {port} given twice");
        }
        assert!(matches!(
            r.reserve("t10", &dynamic),
            Err(Shortfall::NotNow(_))
        ));
        r.release("t3");
        assert!(r.reserve("t10", &dynamic).is_ok());
    }

    #[test]
    fn container_port_ranges_get_a_host_block_of_the_same_length() {
        let mut r = host();
        let d = Demand {
            ports: vec![vec![PortRequest {
                container: (5000, 5002),
                host: None,
                protocol: Protocol::Udp,
            }]],
            ..Default::default()
        };
        let b = r.reserve("a", &d).unwrap();
        assert_eq!(b[0][0].host.1 - b[0][0].host.0, 2);
    }

    #[test]
    fn dynamic_ports_the_host_uses_are_skipped() {
        let mut cap = host().capacity.clone();
        cap.port_in_use = Some(std::sync::Arc::new(|_, p| p % 2 == 0));
        let mut r = Resources::new(cap, 3);
        let dynamic = Demand {
            ports: vec![vec![PortRequest {
                container: (80, 80),
                host: None,
                protocol: Protocol::Tcp,
            }]],
            ..Default::default()
        };
        for i in 0..5 {
            let port = r.reserve(&format!("t{i}"), &dynamic).unwrap()[0][0].host.0;
            assert_eq!(port % 2, 1, "{port} is in use on the host");
        }
        assert!(matches!(
            r.reserve("t5", &dynamic),
            Err(Shortfall::NotNow(_))
        ));
    }

    #[test]
    fn the_dynamic_search_starts_where_the_seed_says() {
        let mut cap = host().capacity.clone();
        cap.dynamic_ports = (40000, 40009);
        let mut r = Resources::new(cap, 7);
        let dynamic = Demand {
            ports: vec![vec![PortRequest {
                container: (80, 80),
                host: None,
                protocol: Protocol::Tcp,
            }]],
            ..Default::default()
        };
        assert_eq!(r.reserve("a", &dynamic).unwrap()[0][0].host.0, 40007);
    }
}
