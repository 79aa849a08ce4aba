//! The operator binary as a subprocess, and what /proc and its /metrics say about it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{proc_cpu_seconds, proc_status_mib, signal};

pub struct Operator {
    child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl Operator {
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        endpoint: &str,
        poll_interval: &str,
        extra_args: &[String],
        log: PathBuf,
    ) -> anyhow::Result<Operator> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args([
                "run",
                "--namespaces",
                namespace,
                "--region",
                "us-east-1",
                "--endpoint-url",
                endpoint,
                "--poll-interval",
                poll_interval,
                "--log-format",
                "text",
                "--metrics-address",
                "127.0.0.1:0",
            ])
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The operator's log filter: info, or CODEBUILD_BENCH_OPERATOR_LOG (e.g.
            // "info,codebuild_operator::controller=debug") to look into a figure.
            .env(
                "RUST_LOG",
                std::env::var("CODEBUILD_BENCH_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Operator {
            child,
            log,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss(&self) -> f64 {
        proc_status_mib(self.pid(), "VmRSS").unwrap_or(f64::NAN)
    }

    pub fn hwm(&self) -> f64 {
        proc_status_mib(self.pid(), "VmHWM").unwrap_or(f64::NAN)
    }

    pub fn cpu(&self) -> f64 {
        proc_cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for "watch cache synced" in its log.
    pub async fn wait_synced(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().contains("watch cache synced") {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "the operator exited ({status}); log {}:\n{}",
                    self.log.display(),
                    tail(&self.log_text(), 30)
                );
            }
            if Instant::now() > deadline {
                bail!("the operator's watch cache did not sync within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of its metrics server, from the log.
    fn metrics_address(&self) -> Option<String> {
        let log = self.log_text();
        let line = log.lines().find(|l| l.contains("serving /metrics"))?;
        let at = line.find("address=")? + "address=".len();
        Some(
            line[at..]
                .split_whitespace()
                .next()?
                .trim_matches('"')
                .to_owned(),
        )
    }

    /// GET `path` of its metrics server: (HTTP status, body); None when it cannot be
    /// reached (not serving yet, or gone).
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let addr = self.metrics_address()?;
        let fetch = async {
            let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
            s.write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).await.ok()?;
            Some(body)
        };
        let text = tokio::time::timeout(Duration::from_secs(5), fetch)
            .await
            .ok()??;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    /// Sum of every series of the metric `name` (exactly that name, any labels); None
    /// without /metrics or without such a series.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        let mut total = None;
        for line in body.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                continue;
            }
            if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *total.get_or_insert(0.0) += v;
            }
        }
        total
    }

    /// Sum of every `codebuild_operator_reconciles_total` series; None without /metrics.
    pub async fn reconciles(&self) -> Option<f64> {
        self.metric("codebuild_operator_reconciles_total").await
    }

    /// Whether /readyz answers 200 (every watch cache synced, leadership known).
    pub async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Some((200, _)))
    }

    /// Sends `sig` and returns at once.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit; whether it did.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGTERM, wait up to 30 s, then SIGKILL.
    pub async fn stop(mut self) {
        signal(self.pid(), libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(30)).await {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
