//! Small helpers: clocks, /proc readers, statistics, child processes.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall clock, epoch seconds (the simulator's clock is the same one).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A field (kB) of /proc/PID/status, e.g. "VmRSS" or "VmHWM", in MiB.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: f64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(kb / 1024.0);
        }
    }
    None
}

/// User + system CPU seconds of a running process (/proc/PID/stat).
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / tck)
}

/// What `wait4` reports for a finished child: CPU seconds (user + system, including its
/// waited-for descendants) and peak RSS in MiB (the largest single process of the tree).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub max_rss_mib: f64,
    /// Exited 0 (not killed).
    #[allow(dead_code)] // kept for debugging a Job's exit
    pub success: bool,
}

/// Polls `wait4(pid, WNOHANG)` until the child exits or `timeout` passes (then SIGKILL).
pub async fn wait_usage(pid: u32, timeout: Duration) -> Usage {
    let deadline = std::time::Instant::now() + timeout;
    let mut killed = false;
    loop {
        let mut status: libc::c_int = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid as i32 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Usage {
                cpu_seconds: tv(ru.ru_utime) + tv(ru.ru_stime),
                max_rss_mib: ru.ru_maxrss as f64 / 1024.0,
                success: !killed && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            };
        }
        if r < 0 {
            return Usage::default();
        }
        if !killed && std::time::Instant::now() > deadline {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a signal to one process id.
pub fn signal(pid: u32, sig: libc::c_int) {
    unsafe { libc::kill(pid as i32, sig) };
}

/// Nearest-rank percentile (p in 0..=100) of unsorted samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Output of a short command, trimmed; "?" when it cannot run.
pub fn cmd_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            }
            s
        })
        .unwrap_or_else(|| "?".into())
}

pub fn read_trim(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// 1-minute load average.
pub fn load1() -> f64 {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1.0)
}
