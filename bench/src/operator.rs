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
            .env("RUST_LOG", "info")
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

    /// Sum of every `codebuild_operator_reconciles_total` series; None without /metrics.
    pub async fn reconciles(&self) -> Option<f64> {
        let addr = self.metrics_address()?;
        let fetch = async {
            let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
            s.write_all(
                format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).await.ok()?;
            Some(body)
        };
        let body = tokio::time::timeout(Duration::from_secs(5), fetch)
            .await
            .ok()??;
        let mut total = None;
        for line in body.lines() {
            if line.starts_with("codebuild_operator_reconciles_total") {
                if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                    *total.get_or_insert(0.0) += v;
                }
            }
        }
        total
    }

    /// SIGTERM, wait up to 30 s, then SIGKILL.
    pub async fn stop(mut self) {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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
