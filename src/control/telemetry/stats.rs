//! Container statistics from polled Docker samples, as the official agent computes them
//! (`agent/stats/queue.go`, `utils_unix.go`): CPU as a percentage of the whole instance between
//! two consecutive samples, memory in MiB without the page cache, block I/O and network
//! counters as read, and per-publish CloudWatch stats sets (`min`, `max`, `sampleCount`, `sum`).
//!
//! Pure: samples carry the instant they were taken; nothing here talks to Docker or reads a
//! clock. A container's first sample yields no point (CPU needs two); a counter that went
//! backwards (the container restarted) yields none either.

use std::collections::VecDeque;
use std::time::Instant;

use bollard::models::ContainerStatsResponse;

use crate::control::tcs::{
    CwStatsSet, NetworkStatsSet, StorageStatsSet, UDoubleCwStatsSet, ULongStatsSet,
};

/// Points kept per container between publishes (older ones are dropped first).
pub const MAX_POINTS: usize = 64;

const MIB: u64 = 1024 * 1024;

/// Network counters summed over a container's interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One poll of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Instant,
    /// Cumulative CPU time of the container, nanoseconds.
    pub cpu_total_ns: u64,
    /// CPUs of the host (the denominator of the percentage).
    pub cpus: u32,
    /// Memory in use without the page cache, bytes.
    pub memory_bytes: u64,
    pub storage_read_bytes: u64,
    pub storage_write_bytes: u64,
    /// `None` when Docker reports no network (e.g. `none` or `host` mode).
    pub network: Option<NetCounters>,
}

impl Sample {
    /// A sample from a one-shot `GET /containers/{id}/stats`; `None` without CPU figures
    /// (the container is not running). `fallback_cpus` is used when Docker reports no count.
    pub fn from_docker(
        stats: &ContainerStatsResponse,
        at: Instant,
        fallback_cpus: u32,
    ) -> Option<Self> {
        let cpu = stats.cpu_stats.as_ref()?;
        let usage = cpu.cpu_usage.as_ref()?;
        let cpus = cpu
            .online_cpus
            .filter(|&n| n > 0)
            .or_else(|| {
                usage
                    .percpu_usage
                    .as_ref()
                    .map(|p| p.len() as u32)
                    .filter(|&n| n > 0)
            })
            .unwrap_or(fallback_cpus);
        let (storage_read_bytes, storage_write_bytes) = storage_bytes(stats);
        Some(Sample {
            at,
            cpu_total_ns: usage.total_usage?,
            cpus,
            memory_bytes: memory_bytes(stats),
            storage_read_bytes,
            storage_write_bytes,
            network: network(stats),
        })
    }
}

/// Usage minus the reclaimable cache, when smaller: `cache` on cgroup v1, `inactive_file` on v2
/// (which has no `cache`).
fn memory_bytes(stats: &ContainerStatsResponse) -> u64 {
    let Some(mem) = stats.memory_stats.as_ref() else {
        return 0;
    };
    let usage = mem.usage.unwrap_or(0);
    let detail = mem.stats.as_ref();
    let cache = ["cache", "inactive_file"].iter().find_map(|k| {
        detail
            .and_then(|d| d.get(*k))
            .copied()
            .filter(|&v| v < usage)
    });
    usage - cache.unwrap_or(0)
}

fn storage_bytes(stats: &ContainerStatsResponse) -> (u64, u64) {
    let entries = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref());
    let mut read = 0u64;
    let mut write = 0u64;
    for entry in entries.into_iter().flatten() {
        let value = entry.value.unwrap_or(0);
        match entry.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read = read.saturating_add(value),
            Some("write") => write = write.saturating_add(value),
            _ => {}
        }
    }
    (read, write)
}

fn network(stats: &ContainerStatsResponse) -> Option<NetCounters> {
    let networks = stats.networks.as_ref().filter(|n| !n.is_empty())?;
    let mut sum = NetCounters::default();
    for n in networks.values() {
        let add = |total: &mut u64, v: Option<u64>| *total = total.saturating_add(v.unwrap_or(0));
        add(&mut sum.rx_bytes, n.rx_bytes);
        add(&mut sum.rx_packets, n.rx_packets);
        add(&mut sum.rx_errors, n.rx_errors);
        add(&mut sum.rx_dropped, n.rx_dropped);
        add(&mut sum.tx_bytes, n.tx_bytes);
        add(&mut sum.tx_packets, n.tx_packets);
        add(&mut sum.tx_errors, n.tx_errors);
        add(&mut sum.tx_dropped, n.tx_dropped);
    }
    Some(sum)
}

/// CPU use between two samples in percent of the whole instance (100 = every CPU busy):
/// `100 × Δcpu / (Δt × cpus)`. `None` when time did not advance or the counter went backwards.
pub fn cpu_percent(prev: &Sample, cur: &Sample) -> Option<f64> {
    let elapsed = cur.at.checked_duration_since(prev.at)?.as_nanos() as f64;
    let used = cur.cpu_total_ns.checked_sub(prev.cpu_total_ns)? as f64;
    let percent = 100.0 * used / (elapsed * f64::from(cur.cpus.max(1)));
    percent.is_finite().then_some(percent)
}

/// Bytes per second of a counter between two samples.
fn per_second(prev: u64, cur: u64, seconds: f64) -> f64 {
    let rate = cur.saturating_sub(prev) as f64 / seconds;
    if rate.is_finite() {
        rate
    } else {
        0.0
    }
}

/// Min, max, count and sum of floating-point values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloatStats {
    min: f64,
    max: f64,
    sum: f64,
    count: i64,
}

impl FloatStats {
    /// Adds a value; NaN and infinities are skipped, as the official agent skips NaN.
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += value;
        self.count += 1;
    }

    /// `CWStatsSet`, or `None` without samples (the official agent sends no set then).
    pub fn cw(&self) -> Option<CwStatsSet> {
        (self.count > 0).then_some(CwStatsSet {
            max: Some(self.max),
            min: Some(self.min),
            sample_count: Some(self.count),
            sum: Some(self.sum),
        })
    }

    /// `UDoubleCWStatsSet` (negative values cannot occur: rates of growing counters).
    pub fn udouble(&self) -> Option<UDoubleCwStatsSet> {
        (self.count > 0).then_some(UDoubleCwStatsSet {
            max: self.max,
            min: self.min,
            sample_count: self.count,
            sum: self.sum,
        })
    }
}

/// Min, max, count and sum of unsigned counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterStats {
    min: u64,
    max: u64,
    sum: u128,
    count: i64,
}

impl CounterStats {
    pub fn add(&mut self, value: u64) {
        if self.count == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += u128::from(value);
        self.count += 1;
    }

    /// `ULongStatsSet`; what exceeds an `i64` goes to the `overflow*` members, as Go does.
    pub fn ulong(&self) -> Option<ULongStatsSet> {
        if self.count == 0 {
            return None;
        }
        let (max, overflow_max) = split_i64(u128::from(self.max));
        let (min, overflow_min) = split_i64(u128::from(self.min));
        let (sum, overflow_sum) = split_i64(self.sum);
        Some(ULongStatsSet {
            max,
            min,
            overflow_max: Some(overflow_max),
            overflow_min: Some(overflow_min),
            overflow_sum: Some(overflow_sum),
            sample_count: self.count,
            sum,
        })
    }
}

/// Go's `getInt64WithOverflow`: values above `i64::MAX` become `i64::MAX` plus the remainder.
fn split_i64(value: u128) -> (i64, i64) {
    let max = i64::MAX as u128;
    if value > max {
        (i64::MAX, (value % max).min(max) as i64)
    } else {
        (value as i64, 0)
    }
}

/// What one interval between two samples contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    cpu_percent: f64,
    memory_mib: f64,
    storage_read_bytes: u64,
    storage_write_bytes: u64,
    network: Option<(NetCounters, f64, f64)>,
}

/// The stats sets of one container over one publish interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    pub cpu: CwStatsSet,
    pub memory: CwStatsSet,
    pub storage: StorageStatsSet,
    pub network: Option<NetworkStatsSet>,
}

/// One container's samples since the last publish.
#[derive(Debug, Default)]
pub struct Series {
    last: Option<Sample>,
    points: VecDeque<Point>,
}

impl Series {
    /// Records a poll; from the second one on, each adds a point.
    pub fn push(&mut self, sample: Sample) {
        if let Some(point) = self.last.as_ref().and_then(|prev| point(prev, &sample)) {
            if self.points.len() == MAX_POINTS {
                self.points.pop_front();
            }
            self.points.push_back(point);
        }
        self.last = Some(sample);
    }

    /// Points waiting to be published.
    pub fn pending(&self) -> usize {
        self.points.len()
    }

    /// The stats sets of the points since the last call, which are then forgotten;
    /// `None` when there are none.
    pub fn take(&mut self) -> Option<ContainerStats> {
        if self.points.is_empty() {
            return None;
        }
        let points: Vec<Point> = self.points.drain(..).collect();
        let float = |f: fn(&Point) -> f64| {
            let mut s = FloatStats::default();
            points.iter().for_each(|p| s.add(f(p)));
            s
        };
        let counter = |f: &dyn Fn(&Point) -> Option<u64>| {
            let mut s = CounterStats::default();
            points.iter().filter_map(f).for_each(|v| s.add(v));
            s.ulong()
        };
        let rate = |f: fn(&(NetCounters, f64, f64)) -> f64| {
            let mut s = FloatStats::default();
            points
                .iter()
                .filter_map(|p| p.network.as_ref())
                .for_each(|n| s.add(f(n)));
            s.udouble()
        };
        let net =
            |f: fn(&NetCounters) -> u64| counter(&|p: &Point| p.network.as_ref().map(|n| f(&n.0)));
        let network = points
            .iter()
            .any(|p| p.network.is_some())
            .then(|| NetworkStatsSet {
                rx_bytes: net(|n| n.rx_bytes),
                rx_bytes_per_second: rate(|n| n.1),
                rx_dropped: net(|n| n.rx_dropped),
                rx_errors: net(|n| n.rx_errors),
                rx_packets: net(|n| n.rx_packets),
                tx_bytes: net(|n| n.tx_bytes),
                tx_bytes_per_second: rate(|n| n.2),
                tx_dropped: net(|n| n.tx_dropped),
                tx_errors: net(|n| n.tx_errors),
                tx_packets: net(|n| n.tx_packets),
            });
        Some(ContainerStats {
            cpu: float(|p| p.cpu_percent).cw()?,
            memory: float(|p| p.memory_mib).cw()?,
            storage: StorageStatsSet {
                read_size_bytes: counter(&|p: &Point| Some(p.storage_read_bytes)),
                write_size_bytes: counter(&|p: &Point| Some(p.storage_write_bytes)),
            },
            network,
        })
    }
}

fn point(prev: &Sample, cur: &Sample) -> Option<Point> {
    let cpu_percent = cpu_percent(prev, cur)?;
    let seconds = cur.at.checked_duration_since(prev.at)?.as_secs_f64();
    let network = cur.network.map(|n| {
        let before = prev.network.unwrap_or(n);
        let rx = per_second(before.rx_bytes, n.rx_bytes, seconds);
        let tx = per_second(before.tx_bytes, n.tx_bytes, seconds);
        (n, rx, tx)
    });
    Some(Point {
        cpu_percent,
        // Whole MiB, as the official agent reports.
        memory_mib: (cur.memory_bytes / MIB) as f64,
        storage_read_bytes: cur.storage_read_bytes,
        storage_write_bytes: cur.storage_write_bytes,
        network,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn sample(at: Instant, cpu_ns: u64, memory_mib: u64) -> Sample {
        Sample {
            at,
            cpu_total_ns: cpu_ns,
            cpus: 2,
            memory_bytes: memory_mib * MIB,
            storage_read_bytes: 4096,
            storage_write_bytes: 0,
            network: None,
        }
    }

    #[test]
    fn cpu_percent_is_of_the_whole_instance() {
        let t0 = Instant::now();
        let a = sample(t0, 1_000_000_000, 0);
        // 0.5 s of CPU in 1 s on 2 CPUs: a quarter of the instance.
        let b = sample(t0 + Duration::from_secs(1), 1_500_000_000, 0);
        assert_eq!(cpu_percent(&a, &b), Some(25.0));
        // Both CPUs fully busy for 2 s.
        let c = sample(t0 + Duration::from_secs(3), 5_500_000_000, 0);
        assert_eq!(cpu_percent(&b, &c), Some(100.0));
    }

    #[test]
    fn cpu_percent_needs_time_to_pass_and_a_growing_counter() {
        let t0 = Instant::now();
        let a = sample(t0, 1_000, 0);
        assert_eq!(cpu_percent(&a, &sample(t0, 2_000, 0)), None);
        let restarted = sample(t0 + Duration::from_secs(1), 10, 0);
        assert_eq!(cpu_percent(&a, &restarted), None);
        assert_eq!(cpu_percent(&restarted, &a), None, "time going backwards");
    }

    #[test]
    fn float_stats_accumulate_min_max_count_and_sum() {
        let mut s = FloatStats::default();
        assert_eq!(s.cw(), None);
        for v in [3.0, 1.5, f64::NAN, 7.25] {
            s.add(v);
        }
        let set = s.cw().unwrap();
        assert_eq!(
            serde_json::to_value(&set).unwrap(),
            json!({"max": 7.25, "min": 1.5, "sampleCount": 3, "sum": 11.75})
        );
    }

    #[test]
    fn counter_stats_carry_what_exceeds_an_i64_as_overflow() {
        let mut s = CounterStats::default();
        s.add(5);
        s.add(u64::MAX);
        let set = s.ulong().unwrap();
        assert_eq!((set.min, set.overflow_min), (5, Some(0)));
        assert_eq!((set.max, set.overflow_max), (i64::MAX, Some(1)));
        assert_eq!(set.sample_count, 2);
        assert_eq!(set.sum, i64::MAX);
    }

    #[test]
    fn a_series_publishes_each_point_once() {
        let t0 = Instant::now();
        let mut series = Series::default();
        series.push(sample(t0, 0, 10));
        assert_eq!(series.take(), None, "one sample gives no CPU figure");
        series.push(sample(t0 + Duration::from_secs(1), 200_000_000, 12));
        series.push(sample(t0 + Duration::from_secs(2), 1_000_000_000, 20));
        assert_eq!(series.pending(), 2);
        let stats = series.take().unwrap();
        assert_eq!(
            serde_json::to_value(&stats.cpu).unwrap(),
            json!({"max": 40, "min": 10, "sampleCount": 2, "sum": 50})
        );
        assert_eq!(
            serde_json::to_value(&stats.memory).unwrap(),
            json!({"max": 20, "min": 12, "sampleCount": 2, "sum": 32})
        );
        assert_eq!(stats.storage.read_size_bytes.unwrap().max, 4096);
        assert_eq!(stats.network, None);
        assert_eq!(series.take(), None, "already published");
        series.push(sample(t0 + Duration::from_secs(3), 1_000_000_000, 20));
        assert_eq!(series.take().unwrap().cpu.sample_count, Some(1));
    }

    #[test]
    fn a_series_keeps_the_newest_points_when_unpublished() {
        let t0 = Instant::now();
        let mut series = Series::default();
        for i in 0..(MAX_POINTS as u64 + 10) {
            series.push(sample(t0 + Duration::from_secs(i), i * 1_000_000, 1));
        }
        assert_eq!(series.pending(), MAX_POINTS);
    }

    #[test]
    fn network_rates_come_from_consecutive_counters() {
        let t0 = Instant::now();
        let with_net = |at, rx| Sample {
            network: Some(NetCounters {
                rx_bytes: rx,
                tx_bytes: 100,
                ..NetCounters::default()
            }),
            ..sample(at, 0, 0)
        };
        let mut series = Series::default();
        series.push(with_net(t0, 1000));
        series.push(with_net(t0 + Duration::from_secs(2), 3000));
        let net = series.take().unwrap().network.unwrap();
        assert_eq!(net.rx_bytes_per_second.unwrap().sum, 1000.0);
        assert_eq!(net.tx_bytes_per_second.unwrap().max, 0.0);
        assert_eq!(net.rx_bytes.unwrap().max, 3000);
    }

    #[test]
    fn docker_stats_are_read_like_the_official_agent() {
        let stats: ContainerStatsResponse = serde_json::from_value(json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 123456789u64, "percpu_usage": [1, 2, 3, 4]}},
            "memory_stats": {"usage": 50 * MIB, "stats": {"cache": 10 * MIB}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 100},
                {"major": 8, "minor": 0, "op": "Write", "value": 30},
                {"major": 8, "minor": 0, "op": "Total", "value": 130},
                {"major": 8, "minor": 1, "op": "read", "value": 1}]},
            "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1}}
        }))
        .unwrap();
        let s = Sample::from_docker(&stats, Instant::now(), 8).unwrap();
        assert_eq!(s.cpu_total_ns, 123456789);
        assert_eq!(s.cpus, 4, "from percpu_usage when online_cpus is absent");
        assert_eq!(s.memory_bytes, 40 * MIB);
        assert_eq!((s.storage_read_bytes, s.storage_write_bytes), (101, 30));
        let net = s.network.unwrap();
        assert_eq!((net.rx_bytes, net.tx_bytes), (11, 20));
    }

    #[test]
    fn a_stopped_container_gives_no_sample() {
        let stats: ContainerStatsResponse =
            serde_json::from_value(json!({"cpu_stats": {}, "memory_stats": {}})).unwrap();
        assert_eq!(Sample::from_docker(&stats, Instant::now(), 2), None);
    }
}
