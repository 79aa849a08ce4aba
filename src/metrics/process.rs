//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, ...), read from `/proc/self` on every scrape, with the names and
//! meanings of the Prometheus Go and Python clients' process collectors.
//!
//! prometheus-client has no process collector, and the crates that add one either target the
//! other `prometheus` crate or pull in a procfs library for six numbers: these are read here
//! directly. Off Linux (no `/proc`) nothing is exported.

use std::fmt;
use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of the times in `/proc/<pid>/stat`: USER_HZ, which Linux fixes at
/// 100 for user space on every architecture Kubernetes runs on (the Go client's procfs
/// assumes the same).
const USER_HZ: f64 = 100.0;

/// One reading of the process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: Option<i64>,
    /// Virtual memory, in bytes.
    pub virtual_memory_bytes: Option<i64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<i64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// OS threads.
    pub threads: Option<i64>,
}

impl ProcessSample {
    /// Reads `proc` (`/proc` on Linux) for the process `pid` (`self` for this one).
    pub fn read(proc: &Path, pid: &str) -> ProcessSample {
        let dir = proc.join(pid);
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        let stat = read(dir.join("stat")).and_then(|s| parse_stat(&s));
        let boot_time = read(proc.join("stat")).and_then(|s| parse_boot_time(&s));
        ProcessSample {
            cpu_seconds: stat.as_ref().map(|s| s.cpu_ticks as f64 / USER_HZ),
            resident_memory_bytes: read(dir.join("status")).and_then(|s| parse_vm_rss(&s)),
            virtual_memory_bytes: stat.as_ref().map(|s| s.vsize),
            open_fds: std::fs::read_dir(dir.join("fd"))
                .ok()
                .map(|entries| entries.count() as i64),
            max_fds: read(dir.join("limits")).and_then(|s| parse_max_fds(&s)),
            start_time_seconds: stat
                .as_ref()
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
            threads: stat.as_ref().map(|s| s.threads),
        }
    }
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_ticks: u64,
    threads: i64,
    start_ticks: u64,
    vsize: i64,
}

/// Parses `/proc/<pid>/stat` (proc(5)). The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself: the fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(Stat {
        cpu_ticks: utime + stime,
        threads: field(20)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        vsize: field(23)?.parse().ok()?,
    })
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes (the file says kB, meaning KiB).
fn parse_vm_rss(text: &str) -> Option<i64> {
    let value = text.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: i64 = value.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits` (None when unlimited).
fn parse_max_fds(text: &str) -> Option<i64> {
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Encodes a fresh [`ProcessSample`] of this process on every scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = ProcessSample::read(Path::new("/proc"), "self");
        if let Some(v) = s.cpu_seconds {
            let counter = ConstCounter::new(v);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, Option<f64>); 6] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                s.threads.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as proc(5) allows.
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1234 0 5 0 350 125 0 0 20 0 \
                    9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17987 0 0 0 \
                    17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                cpu_ticks: 475,
                threads: 9,
                start_ticks: 123456,
                vsize: 987654321,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status =
            "Name:\tcodebuild-operator\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(20 * 1024 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127431               127431               processes \n\
                      Max open files            1048576              1048576              files     \n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1764547200\nprocesses 9\n"),
            Some(1_764_547_200)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_itself() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let during = ProcessSample::read(Path::new("/proc"), "self");
        drop(file);
        assert!(
            during.open_fds.unwrap() >= 1,
            "at least the file opened above"
        );
        assert!(during.resident_memory_bytes.unwrap() > 1024 * 1024);
        assert!(during.virtual_memory_bytes.unwrap() >= during.resident_memory_bytes.unwrap());
        assert!(during.max_fds.unwrap_or(i64::MAX) >= during.open_fds.unwrap());
        assert!(during.threads.unwrap() >= 1);
        assert!(during.cpu_seconds.unwrap() >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = during.start_time_seconds.unwrap();
        // Started before now, and not before this test binary could have been built.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
    }
}
