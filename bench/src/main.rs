//! `codebuild-bench`: runs the operator binary (release build) against the local
//! kube-apiserver (hack/local-cluster.sh) and an in-process CodeBuild simulator, and prints
//! one table. See the Performance section of README.md. `make bench` / `make bench-quick`.

#![allow(
    clippy::collapsible_if,
    clippy::too_many_arguments,
    clippy::type_complexity
)]
mod budget;
mod cluster;
mod handover;
mod limits;
mod operator;
mod ratelimit;
mod report;
mod util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use codebuild_sim::{Server, SimConfig};
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::json;

use budget::{Budget, Costs};
use cluster::{Observer, apiserver_requests, delta};
use operator::Operator;
use report::{Goal, Report};
use util::{median, now, percentile};

/// Benchmark the operator against the local control plane and the CodeBuild simulator.
#[derive(Debug, Parser)]
struct Args {
    /// Small sizes and short windows (a few minutes), for development.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated):
    /// small,burst,steady,awscli,scale,limits,ratelimit,handover. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The operator binary.
    #[arg(long, default_value = "target/release/codebuild-operator")]
    operator: PathBuf,
    /// Where the table, the CSV and the operator logs go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Wait (up to this many minutes) for a 1-minute load average below --max-load first.
    #[arg(long, default_value_t = 0.0)]
    wait_quiet_minutes: f64,
    #[arg(long, default_value_t = 1.5)]
    max_load: f64,
    /// Extra flag for every operator started (repeatable), e.g.
    /// --operator-arg=--max-concurrent-reconciles=64.
    #[arg(long, allow_hyphen_values = true)]
    operator_arg: Vec<String>,
    /// Override the burst size.
    #[arg(long)]
    burst_n: Option<usize>,
}

/// Sizes and durations of one mode.
#[derive(Clone, Debug)]
struct Plan {
    interval: f64,
    window: f64,
    windows: usize,
    small_sizes: Vec<usize>,
    burst_n: usize,
    burst_reps: usize,
    burst_phase: f64,
    steady_secs: f64,
    steady_reps: usize,
    steady_phase: f64,
    awscli_sizes: Vec<usize>,
    scale_stage1: usize,
    scale_total: usize,
    restart_reps: usize,
    /// `limits`: runs, the simulated concurrent build limit, seconds per phase (10 phases).
    limits_runs: usize,
    limits_max: usize,
    limits_phase: f64,
    limits_reps: usize,
    /// `ratelimit`: runs created at once, the simulated StartBuild rate (per second).
    ratelimit_n: usize,
    ratelimit_rate: f64,
    ratelimit_reps: usize,
    /// `handover`: trials of each signal.
    handover_reps: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                interval: 5.0,
                window: 10.0,
                windows: 2,
                small_sizes: vec![1, 100],
                burst_n: 200,
                burst_reps: 1,
                burst_phase: 4.0,
                steady_secs: 10.0,
                steady_reps: 1,
                steady_phase: 1.0,
                awscli_sizes: vec![1, 3],
                scale_stage1: 300,
                scale_total: 2000,
                restart_reps: 1,
                limits_runs: 30,
                limits_max: 5,
                limits_phase: 1.0,
                limits_reps: 1,
                ratelimit_n: 200,
                ratelimit_rate: 10.0,
                ratelimit_reps: 1,
                handover_reps: 1,
            }
        } else {
            Plan {
                interval: 5.0,
                window: 20.0,
                windows: 3,
                small_sizes: vec![1, 100],
                burst_n: 1000,
                burst_reps: 3,
                burst_phase: 6.0,
                steady_secs: 20.0,
                steady_reps: 3,
                steady_phase: 1.5,
                awscli_sizes: vec![1, 3, 6],
                scale_stage1: 1000,
                scale_total: 10000,
                restart_reps: 3,
                limits_runs: 30,
                limits_max: 5,
                limits_phase: 1.0,
                limits_reps: 3,
                ratelimit_n: 1000,
                ratelimit_rate: 10.0,
                ratelimit_reps: 3,
                handover_reps: 3,
            }
        }
    }
}

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 8] = [
    "small",
    "burst",
    "steady",
    "awscli",
    "scale",
    "limits",
    "ratelimit",
    "handover",
];

const LONG_PHASE: f64 = 3600.0;
/// How long after every run is final in status the apiserver budget is taken (the last
/// Events follow the final status writes).
const SETTLE: f64 = 2.0;
const RATE: f64 = 10.0;

struct Bench {
    root: PathBuf,
    kubeconfig: PathBuf,
    client: Client,
    operator_bin: PathBuf,
    sim: Server,
    out: PathBuf,
    plan: Plan,
    report: Report,
    tag: String,
    seq: usize,
    idle_rss: Vec<f64>,
    op_cpu_per_build_min: HashMap<usize, Vec<f64>>,
    op_rss_per_build: HashMap<usize, Vec<f64>>,
    op_calls: HashMap<usize, Vec<f64>>,
    operator_args: Vec<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    if let Some(bad) = args.only.iter().find(|o| !SCENARIOS.contains(&o.as_str())) {
        bail!("unknown scenario {bad:?}: one of {}", SCENARIOS.join(","));
    }
    let root = std::env::current_dir()?;
    let started = Instant::now();
    let operator_bin = root.join(&args.operator);
    if !operator_bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p codebuild-operator -p codebuild-sim",
            operator_bin.display()
        );
    }
    let out = root.join(&args.out);
    std::fs::create_dir_all(out.join("logs"))?;
    let kubeconfig = cluster::ensure_cluster(&root)?;
    let client = cluster::client(&kubeconfig).await?;
    let left = cluster::cleanup(&client).await?;
    if left > 0 {
        eprintln!("bench: removed {left} runs left by an earlier bench");
    }
    if args.wait_quiet_minutes > 0.0 {
        let deadline = Instant::now() + Duration::from_secs_f64(args.wait_quiet_minutes * 60.0);
        while util::load1() >= args.max_load && Instant::now() < deadline {
            eprintln!(
                "bench: load {:.2} >= {}; waiting",
                util::load1(),
                args.max_load
            );
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
    let load_start = util::load1();
    let sim = Server::start(SimConfig {
        projects: vec!["bench".into()],
        seed: Some(7),
        ..Default::default()
    })
    .await?;
    let mut b = Bench {
        root: root.clone(),
        kubeconfig,
        client,
        operator_bin,
        sim,
        out: out.clone(),
        plan: {
            let mut p = Plan::new(args.quick);
            if let Some(n) = args.burst_n {
                p.burst_n = n;
            }
            p
        },
        operator_args: args.operator_arg.clone(),
        report: Report::default(),
        tag: util::cmd_output("date", &["+%H%M%S"]),
        seq: 0,
        idle_rss: vec![],
        op_cpu_per_build_min: HashMap::new(),
        op_rss_per_build: HashMap::new(),
        op_calls: HashMap::new(),
    };
    let run = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut errors = Vec::new();
    for name in SCENARIOS {
        if !run(name) {
            continue;
        }
        eprintln!(
            "bench: == {name} (t+{:.0}s, load {:.2})",
            started.elapsed().as_secs_f64(),
            util::load1()
        );
        let r = match name {
            "small" => b.small().await,
            "burst" => b.burst().await,
            "steady" => b.steady().await,
            "awscli" => b.awscli().await,
            "scale" => b.scale().await,
            "limits" => b.limits().await,
            "ratelimit" => b.ratelimit().await,
            _ => b.handover().await,
        };
        if let Err(e) = r {
            eprintln!("bench: {name} failed: {e:#}");
            errors.push(format!("{name}: {e:#}"));
        }
    }
    b.summary_rows();
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("bench: cleaning up");
    let _ = cluster::cleanup(&b.client).await;
    b.header(load_start, elapsed).await;
    let mut text = format!(
        "# codebuild-operator benchmark ({})\n\n{}\n{}",
        if args.quick { "quick mode" } else { "full" },
        b.report.header_text(),
        b.report.table()
    );
    if !errors.is_empty() {
        text.push_str(&format!("\nErrors:\n- {}\n", errors.join("\n- ")));
    }
    std::fs::write(out.join("results.md"), &text)?;
    std::fs::write(out.join("results.csv"), b.report.csv())?;
    println!("{text}");
    eprintln!(
        "bench: wrote {} and {}",
        out.join("results.md").display(),
        out.join("results.csv").display()
    );
    b.sim.shutdown().await;
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{} scenario(s) failed", errors.len())
    }
}

/// Polls `cond` every 100 ms until true or `timeout`.
async fn wait_until(
    what: &str,
    timeout: f64,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed().as_secs_f64() > timeout {
            bail!("timed out after {timeout:.0}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sleep(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
}

/// One measurement window against an operator.
struct Window {
    secs: f64,
    calls: f64,
    cpu: f64,
    writes: f64,
}

impl Bench {
    fn state(&self) -> &codebuild_sim::SimState {
        self.sim.state()
    }

    async fn namespace(
        &mut self,
        what: &str,
    ) -> anyhow::Result<(String, Api<DynamicObject>, Observer)> {
        self.seq += 1;
        let ns = format!("bench-{}-{}-{}", what, self.tag, self.seq);
        cluster::create_namespace(&self.client, &ns).await?;
        let api = Api::namespaced_with(self.client.clone(), &ns, &cluster::run_resource());
        let obs = Observer::start(api.clone()).await?;
        Ok((ns, api, obs))
    }

    async fn operator(&mut self, ns: &str) -> anyhow::Result<Operator> {
        let mut op = self.spawn_operator(ns, &[])?;
        op.wait_synced(Duration::from_secs(120)).await?;
        Ok(op)
    }

    /// Starts an operator watching `ns` with `extra` flags after --operator-arg's, without
    /// waiting for it.
    fn spawn_operator(&mut self, ns: &str, extra: &[String]) -> anyhow::Result<Operator> {
        let log = self.out.join("logs").join(format!("{ns}-{}.log", self.seq));
        self.seq += 1;
        let args: Vec<String> = self.operator_args.iter().chain(extra).cloned().collect();
        Operator::start(
            &self.operator_bin,
            &self.kubeconfig,
            ns,
            &self.sim.endpoint(),
            &format!("{}s", self.plan.interval),
            &args,
            log,
        )
    }

    /// Idle RSS of an operator watching an empty namespace.
    async fn idle_sample(&mut self, op: &Operator) {
        sleep(3.0).await;
        self.idle_rss.push(op.rss());
    }

    async fn window(&self, op: &Operator, obs: &Observer, secs: f64) -> Window {
        let c0 = self.state().counters().total_calls as f64;
        let cpu0 = op.cpu();
        let w0 = obs.total_writes() as f64;
        let t0 = Instant::now();
        sleep(secs).await;
        Window {
            secs: t0.elapsed().as_secs_f64(),
            calls: self.state().counters().total_calls as f64 - c0,
            cpu: op.cpu() - cpu0,
            writes: obs.total_writes() as f64 - w0,
        }
    }

    fn names(prefix: &str, from: usize, to: usize, phase: f64) -> Vec<(String, f64)> {
        (from..to)
            .map(|i| (format!("{prefix}-{i:05}"), phase))
            .collect()
    }

    // === (a) at 1 and 100, idle memory ===

    async fn small(&mut self) -> anyhow::Result<()> {
        self.state().reset();
        let (ns, api, obs) = self.namespace("small").await?;
        let op = self.operator(&ns).await?;
        self.idle_sample(&op).await;
        let created = Arc::new(Mutex::new(HashMap::new()));
        let mut have = 0;
        let mut no_change_writes = vec![];
        for size in self.plan.small_sizes.clone() {
            cluster::create_runs(
                &api,
                Self::names("long", have, size, LONG_PHASE),
                16,
                &created,
            )
            .await?;
            have = size;
            wait_until("build ids", 120.0, || {
                obs.count(|s| s.build_id.is_some()) >= size
            })
            .await?;
            sleep(self.plan.interval + 0.5).await;
            for _ in 0..self.plan.windows {
                let w = self.window(&op, &obs, self.plan.window).await;
                let per_min = w.secs / 60.0;
                self.op_calls
                    .entry(size)
                    .or_default()
                    .push(w.calls / size as f64 / per_min);
                self.op_cpu_per_build_min
                    .entry(size)
                    .or_default()
                    .push(w.cpu / size as f64 / per_min);
                no_change_writes.push(w.writes);
            }
            self.op_rss_per_build
                .entry(size)
                .or_default()
                .push(op.rss());
        }
        self.report.add(
            "e",
            "apiserver writes while no build changed (long builds, a window of each size)",
            "writes",
            no_change_writes,
            Goal::Eq(0.0),
            "",
        );
        op.stop().await;
        obs.stop();
        Ok(())
    }

    // === (b) burst, (a) at 1,000, (c), (e) patches, (f) ===

    async fn burst(&mut self) -> anyhow::Result<()> {
        let n = self.plan.burst_n;
        let phase = self.plan.burst_phase;
        let mut all_started = vec![];
        let mut all_ids = vec![];
        let mut wbi_max = vec![];
        let mut cpu_per_1000 = vec![];
        let mut finished_calls = vec![];
        let mut rss_running = vec![];
        let mut rss_finished = vec![];
        let mut lags_p50 = vec![];
        let mut lags_p99 = vec![];
        let mut writes_per_run = vec![];
        let mut extra_writes = vec![];
        let mut noop_writes = vec![];
        let mut costs = Costs::default();
        let mut burst_cpu: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        for rep in 0..self.plan.burst_reps {
            self.state().reset();
            let (ns, api, obs) = self.namespace("burst").await?;
            let op = self.operator(&ns).await?;
            self.idle_sample(&op).await;
            let a0 = apiserver_requests(&self.client).await;
            let budget = Budget::start(&self.client).await;
            let created = Arc::new(Mutex::new(HashMap::new()));
            let cpu0 = op.cpu();
            let (api_pid, etcd_pid) = cluster::control_plane_pids();
            let cpu_of = |pid: Option<u32>| pid.and_then(util::proc_cpu_seconds);
            let me = Some(std::process::id());
            let p0 = [cpu_of(api_pid), cpu_of(etcd_pid), Some(cpu0), cpu_of(me)];
            let t0 = now();
            cluster::create_runs(&api, Self::names("burst", 0, n, phase), 32, &created).await?;
            let t_created = now() - t0;
            wait_until("every build id in status", 600.0, || {
                obs.count(|s| s.build_id.is_some()) >= n
            })
            .await?;
            let p1 = [
                cpu_of(api_pid),
                cpu_of(etcd_pid),
                Some(op.cpu()),
                cpu_of(me),
            ];
            let took = now() - t0;
            for (i, who) in PROFILED.iter().enumerate() {
                if let (Some(a), Some(b)) = (p0[i], p1[i]) {
                    burst_cpu.entry(*who).or_default().push((b - a) / took);
                }
            }
            let starts = self.state().starts();
            let first_start = starts.iter().map(|s| s.time).fold(f64::INFINITY, f64::min);
            let last_start = starts.iter().map(|s| s.time).fold(0.0, f64::max);
            all_started.push(last_start - t0);
            let snap = obs.snapshot();
            all_ids.push(
                snap.values()
                    .filter_map(|s| s.build_id_t)
                    .fold(0.0, f64::max)
                    - t0,
            );
            wbi_max.push(
                snap.values()
                    .filter_map(|s| s.writes_before_id)
                    .max()
                    .unwrap_or(0) as f64,
            );
            eprintln!(
                "bench: burst {rep}: created in {t_created:.1}s, started {:.1}s, ids {:.1}s, {} StartBuild",
                last_start - t0,
                all_ids.last().unwrap(),
                starts.len()
            );
            // (a) at n in flight: until the first build could end.
            sleep(self.plan.interval + 0.5).await;
            let first_end = first_start + 10.0 * phase;
            let mut windows = 0;
            while windows < self.plan.windows {
                let left = first_end - now() - 1.0;
                // Whole poll intervals, so a window holds a whole number of rounds.
                let secs =
                    (self.plan.window.min(left) / self.plan.interval).floor() * self.plan.interval;
                if secs < self.plan.interval * 2.0 {
                    break;
                }
                let w = self.window(&op, &obs, secs).await;
                let m = w.secs / 60.0;
                self.op_calls
                    .entry(n)
                    .or_default()
                    .push(w.calls / n as f64 / m);
                self.op_cpu_per_build_min
                    .entry(n)
                    .or_default()
                    .push(w.cpu / n as f64 / m);
                windows += 1;
            }
            if windows == 0 {
                eprintln!(
                    "bench: burst {rep}: no time for a call-rate window before the builds end"
                );
            }
            rss_running.push(op.rss());
            wait_until("every run final in status", 600.0, || {
                obs.count(|s| s.final_t.is_some()) >= n
            })
            .await?;
            cpu_per_1000.push((op.cpu() - cpu0) * 1000.0 / n as f64);
            // The last Events follow the final status writes.
            sleep(SETTLE).await;
            costs.push(budget.finish(&self.client, n, &obs.snapshot()).await);
            // Finished builds cost nothing.
            sleep(self.plan.interval + 1.0 - SETTLE).await;
            let w = self.window(&op, &obs, 2.0 * self.plan.interval).await;
            finished_calls.push(w.calls);
            rss_finished.push(op.rss());
            let a1 = apiserver_requests(&self.client).await;
            // (c) status lag and (e) writes per run.
            let snap = obs.snapshot();
            let lags = self.lags(&snap);
            lags_p50.push(percentile(&lags, 50.0).unwrap_or(f64::NAN));
            lags_p99.push(percentile(&lags, 99.0).unwrap_or(f64::NAN));
            let (w, extra) = writes_after_id(&snap);
            writes_per_run.push(w);
            extra_writes.push(extra);
            let status_writes: f64 = snap.values().map(|s| s.status_writes as f64).sum();
            noop_writes.push(delta(&a0, &a1, "codebuildruns:APPLY/status") - status_writes);
            op.stop().await;
            obs.stop();
        }
        let nn = n.to_string();
        self.report.add(
            "b",
            format!("burst of {nn} creates: all StartBuild received"),
            "s",
            all_started,
            Goal::Le(15.0),
            "",
        );
        self.report.add(
            "b",
            format!("burst of {nn} creates: all build ids in status"),
            "s",
            all_ids,
            Goal::Le(15.0),
            "",
        );
        for (who, v) in burst_cpu {
            self.report.add(
                "b",
                format!(
                    "profile: CPU cores used by {who}, first create to every build id in status"
                ),
                "cores",
                v,
                Goal::None,
                "of 2",
            );
        }
        self.report.add(
            "b",
            "burst: apiserver writes to a run before its build id (max over runs)",
            "writes",
            wbi_max,
            Goal::Le(3.0),
            "",
        );
        self.report.add(
            "c",
            format!("status lag p50, {nn} builds of 10 phases x {phase}s"),
            "s",
            lags_p50,
            Goal::None,
            "",
        );
        self.report.add(
            "c",
            format!("status lag p99, {nn} builds of 10 phases x {phase}s"),
            "s",
            lags_p99,
            Goal::Le(self.plan.interval + 1.0),
            "",
        );
        self.report.add(
            "e",
            "status writes per run after its build id, whole build (median run)",
            "writes",
            writes_per_run,
            Goal::None,
            "burst",
        );
        self.report.add(
            "e",
            "status writes not matched by an observed phase/status change (all runs)",
            "writes",
            extra_writes,
            Goal::Eq(0.0),
            "burst",
        );
        self.report.add(
            "e",
            "status APPLY requests that changed nothing (apiserver count - watched status changes)",
            "requests",
            noop_writes,
            Goal::Eq(0.0),
            "cluster-wide counter",
        );
        costs.add_rows(&mut self.report, &format!("burst of {nn}"));
        self.report.add(
            "a",
            format!("API calls/min with {nn} finished builds"),
            "calls",
            finished_calls
                .iter()
                .map(|c| c * 60.0 / (2.0 * self.plan.interval))
                .collect(),
            Goal::Eq(0.0),
            "",
        );
        self.report.add(
            "d",
            format!("operator RSS with {nn} running builds"),
            "MiB",
            rss_running,
            Goal::None,
            "",
        );
        self.report.add(
            "d",
            format!("operator RSS with {nn} finished runs"),
            "MiB",
            rss_finished,
            Goal::None,
            "",
        );
        self.report.add(
            "f",
            format!("operator CPU per 1,000 builds, create to final ({nn} at once)"),
            "CPU-s",
            cpu_per_1000,
            Goal::None,
            "",
        );
        Ok(())
    }

    /// Time from each phase's start in the simulator to that phase in status (the phase
    /// written with the build id is excluded: it is (b)).
    fn lags(&self, snap: &HashMap<String, cluster::Seen>) -> Vec<f64> {
        let mut lags = vec![];
        for s in snap.values() {
            let Some(id) = &s.build_id else { continue };
            let Some(build) = self.state().build(id) else {
                continue;
            };
            let starts: HashMap<String, f64> = build["phases"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            Some((
                                p["phaseType"].as_str()?.to_owned(),
                                p["startTime"].as_f64()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (phase, t) in s.phases.iter().skip(1) {
                if let Some(start) = starts.get(phase) {
                    lags.push(t - start);
                }
            }
        }
        lags
    }

    // === (b) steady 10/s, (c) ===

    async fn steady(&mut self) -> anyhow::Result<()> {
        let n = (self.plan.steady_secs * RATE) as usize;
        let phase = self.plan.steady_phase;
        let (mut s50, mut s99, mut i50, mut i99, mut wbi, mut l50, mut l99, mut wpr, mut extra) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        let mut cpu_per_1000 = vec![];
        let mut costs = Costs::default();
        for _ in 0..self.plan.steady_reps {
            self.state().reset();
            let (ns, api, obs) = self.namespace("steady").await?;
            let op = self.operator(&ns).await?;
            self.idle_sample(&op).await;
            let created: Arc<Mutex<HashMap<String, f64>>> = Arc::new(Mutex::new(HashMap::new()));
            let budget = Budget::start(&self.client).await;
            let cpu0 = op.cpu();
            let t0 = Instant::now();
            let mut tasks = vec![];
            for (i, (name, ph)) in Self::names("steady", 0, n, phase).into_iter().enumerate() {
                let at = t0 + Duration::from_secs_f64(i as f64 / RATE);
                let api = api.clone();
                let created = created.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    cluster::create_runs(&api, vec![(name, ph)], 1, &created).await
                }));
            }
            for t in tasks {
                t.await??;
            }
            wait_until("every run final in status", 300.0, || {
                obs.count(|s| s.final_t.is_some()) >= n
            })
            .await?;
            cpu_per_1000.push((op.cpu() - cpu0) * 1000.0 / n as f64);
            sleep(SETTLE).await;
            costs.push(budget.finish(&self.client, n, &obs.snapshot()).await);
            let created = created.lock().unwrap().clone();
            let snap = obs.snapshot();
            let start_by_id: HashMap<String, f64> = self
                .state()
                .starts()
                .into_iter()
                .filter_map(|s| Some((s.build_id?, s.time)))
                .collect();
            let mut to_start = vec![];
            let mut to_id = vec![];
            for (name, s) in &snap {
                let (Some(c), Some(id)) = (created.get(name), &s.build_id) else {
                    continue;
                };
                if let Some(st) = start_by_id.get(id) {
                    to_start.push((st - c) * 1000.0);
                }
                if let Some(t) = s.build_id_t {
                    to_id.push((t - c) * 1000.0);
                }
            }
            s50.push(percentile(&to_start, 50.0).unwrap_or(f64::NAN));
            s99.push(percentile(&to_start, 99.0).unwrap_or(f64::NAN));
            i50.push(percentile(&to_id, 50.0).unwrap_or(f64::NAN));
            i99.push(percentile(&to_id, 99.0).unwrap_or(f64::NAN));
            wbi.push(
                snap.values()
                    .filter_map(|s| s.writes_before_id)
                    .max()
                    .unwrap_or(0) as f64,
            );
            let lags = self.lags(&snap);
            l50.push(percentile(&lags, 50.0).unwrap_or(f64::NAN));
            l99.push(percentile(&lags, 99.0).unwrap_or(f64::NAN));
            let (w, e) = writes_after_id(&snap);
            wpr.push(w);
            extra.push(e);
            op.stop().await;
            obs.stop();
        }
        self.report.add(
            "b",
            "create -> StartBuild received, p50 (10 creates/s)",
            "ms",
            s50,
            Goal::Le(100.0),
            "",
        );
        self.report.add(
            "b",
            "create -> StartBuild received, p99 (10 creates/s)",
            "ms",
            s99,
            Goal::Le(500.0),
            "",
        );
        self.report.add(
            "b",
            "create -> build id in status, p50 (10 creates/s)",
            "ms",
            i50,
            Goal::Le(100.0),
            "",
        );
        self.report.add(
            "b",
            "create -> build id in status, p99 (10 creates/s)",
            "ms",
            i99,
            Goal::Le(500.0),
            "",
        );
        self.report.add(
            "b",
            "10/s: apiserver writes to a run before its build id (max over runs)",
            "writes",
            wbi,
            Goal::Le(3.0),
            "",
        );
        self.report.add(
            "c",
            format!("status lag p50, 10 creates/s, builds of 10 phases x {phase}s"),
            "s",
            l50,
            Goal::None,
            "",
        );
        self.report.add(
            "c",
            format!("status lag p99, 10 creates/s, builds of 10 phases x {phase}s"),
            "s",
            l99,
            Goal::Le(self.plan.interval + 1.0),
            "",
        );
        self.report.add(
            "e",
            "status writes per run after its build id, whole build (median run)",
            "writes",
            wpr,
            Goal::None,
            "10/s",
        );
        self.report.add(
            "e",
            "status writes not matched by an observed phase/status change (all runs)",
            "writes",
            extra,
            Goal::Eq(0.0),
            "10/s",
        );
        self.report.add(
            "f",
            "operator CPU per 1,000 builds, create to final (10 creates/s)",
            "CPU-s",
            cpu_per_1000,
            Goal::None,
            "",
        );
        costs.add_rows(&mut self.report, "10 creates/s");
        Ok(())
    }

    // === (a) the AWS CLI Job baseline ===

    async fn awscli(&mut self) -> anyhow::Result<()> {
        let script = format!(
            r#"set -u
ID=$(aws codebuild start-build --project-name bench --endpoint-url "$SIM" \
  --environment-variables-override name=CODEBUILD_SIM_PHASE_SECONDS,value={LONG_PHASE},type=PLAINTEXT \
  --query build.id --output text) || exit 1
# One call per interval: sleep what is left of it after the call.
period_us=$((INTERVAL * 1000000))
i=0
while [ $i -lt 100000 ]; do
  t0=${{EPOCHREALTIME/./}}
  DONE=$(aws codebuild batch-get-builds --ids "$ID" --endpoint-url "$SIM" \
    --query 'builds[0].buildComplete' --output text) || DONE=error
  [ "$DONE" = "True" ] && exit 0
  left=$((period_us - (${{EPOCHREALTIME/./}} - t0)))
  [ $left -gt 0 ] && sleep "$((left / 1000000)).$(printf %06d $((left % 1000000)))"
  i=$((i + 1))
done
"#
        );
        std::fs::write(self.out.join("awscli-job.sh"), &script)?;
        let mut calls_all = vec![];
        let mut cpu_all = vec![];
        let mut rss_all = vec![];
        for k in self.plan.awscli_sizes.clone() {
            self.state().reset();
            let log = std::fs::File::create(self.out.join("logs").join(format!("awscli-{k}.log")))?;
            let spawned = Instant::now();
            let mut pids = vec![];
            for _ in 0..k {
                let child = std::process::Command::new("bash")
                    .arg("-c")
                    .arg(&script)
                    .env("SIM", self.sim.endpoint())
                    .env("INTERVAL", format!("{}", self.plan.interval as u64))
                    .env("AWS_ACCESS_KEY_ID", "AKIDBENCHCLI")
                    .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("AWS_PAGER", "")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(log.try_clone()?)
                    .spawn()?;
                pids.push(child.id());
                std::mem::forget(child); // reaped with wait4 below, for its rusage
            }
            let started = wait_until("every Job's StartBuild", 180.0, || {
                self.state().starts().len() >= k
            })
            .await;
            let mut calls = vec![];
            if started.is_ok() {
                sleep(self.plan.interval + 1.0).await;
                for _ in 0..self.plan.windows {
                    let c0 = self.state().counters().total_calls as f64;
                    let t = Instant::now();
                    sleep(self.plan.window).await;
                    let c = self.state().counters().total_calls as f64 - c0;
                    calls.push(c / k as f64 / (t.elapsed().as_secs_f64() / 60.0));
                }
            }
            for b in self.state().builds() {
                if let Some(id) = b["id"].as_str() {
                    let _ = self
                        .state()
                        .call("StopBuild", &json!({"id": id}), Some("AKIDBENCH"));
                }
            }
            let mut cpu = vec![];
            let mut rss = vec![];
            let usages = futures::future::join_all(
                pids.iter()
                    .map(|p| util::wait_usage(*p, Duration::from_secs(60))),
            )
            .await;
            let lifetime = spawned.elapsed().as_secs_f64();
            for u in usages {
                cpu.push(u.cpu_seconds / (lifetime / 60.0));
                rss.push(u.max_rss_mib);
            }
            started?;
            eprintln!(
                "bench: awscli x{k}: calls/build/min {:?}, CPU-s/build/min {:.2}, peak RSS/job {:.0} MiB",
                calls,
                median(&cpu).unwrap_or(0.0),
                median(&rss).unwrap_or(0.0)
            );
            self.report.add(
                "a",
                format!("AWS CLI Job loop: API calls per build per minute, {k} jobs"),
                "calls",
                calls.clone(),
                Goal::None,
                "measured",
            );
            calls_all.extend(calls);
            cpu_all.push(median(&cpu).unwrap_or(f64::NAN));
            rss_all.push(median(&rss).unwrap_or(f64::NAN));
        }
        self.report.add(
            "a",
            "AWS CLI Job loop: CPU-s per tracked build per minute (one sample per fleet size)",
            "CPU-s",
            cpu_all,
            Goal::None,
            "measured",
        );
        self.report.add(
            "a",
            "AWS CLI Job loop: peak memory per tracked build (largest process of a Job)",
            "MiB",
            rss_all,
            Goal::None,
            "measured",
        );
        self.report.add("a", "AWS CLI Job loop: API calls per build per minute, all sizes", "calls", calls_all, Goal::None, "measured; per build, independent of the fleet size, so it is the figure at 100 and 1,000 builds too (extrapolated)");
        Ok(())
    }

    // === (d) memory at 1,000 and 10,000, (e) restart ===

    async fn scale(&mut self) -> anyhow::Result<()> {
        self.state().reset();
        let (ns, api, obs) = self.namespace("scale").await?;
        let mut op = self.operator(&ns).await?;
        self.idle_sample(&op).await;
        let created = Arc::new(Mutex::new(HashMap::new()));
        let mut have = 0;
        let mut rss_stage: HashMap<usize, Vec<f64>> = HashMap::new();
        let mut calls_mix = vec![];
        for target in [self.plan.scale_stage1, self.plan.scale_total] {
            // One run in ten keeps running; nine finish at once.
            let runs: Vec<(String, f64)> = (have..target)
                .map(|i| {
                    (
                        format!("scale-{i:05}"),
                        if i % 10 == 0 { LONG_PHASE } else { 0.0 },
                    )
                })
                .collect();
            let t = Instant::now();
            cluster::create_runs(&api, runs, 32, &created).await?;
            let running = (0..target).filter(|i| i % 10 == 0).count();
            let finished = target - running;
            wait_until("build ids and finished runs", 1200.0, || {
                obs.count(|s| s.build_id.is_some()) >= target
                    && obs.count(|s| s.final_t.is_some()) >= finished
            })
            .await?;
            eprintln!(
                "bench: scale: {target} runs settled in {:.0}s",
                t.elapsed().as_secs_f64()
            );
            have = target;
            sleep(2.0 * self.plan.interval).await;
            let w = self.window(&op, &obs, 2.0 * self.plan.interval).await;
            calls_mix.push((target, running, w.calls / (w.secs / 60.0)));
            if target == self.plan.scale_total {
                // Also a sample of (a) at this many in-flight builds, with long builds, so it
                // does not depend on how fast a burst starts.
                self.op_calls
                    .entry(running)
                    .or_default()
                    .push(w.calls / running as f64 / (w.secs / 60.0));
            }
            for _ in 0..3 {
                rss_stage.entry(target).or_default().push(op.rss());
                sleep(1.0).await;
            }
        }
        let total = self.plan.scale_total;
        let running = (0..total).filter(|i| i % 10 == 0).count();
        let (
            mut startbuilds,
            mut writes,
            mut reconciled,
            mut peak,
            mut steady,
            mut ratio,
            mut noop,
        ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for rep in 0..self.plan.restart_reps {
            op.stop().await;
            let c0 = self.state().counters();
            let w0 = obs.total_writes() as f64;
            let a0 = apiserver_requests(&self.client).await;
            let t0 = Instant::now();
            op = self.operator(&ns).await?;
            let synced = t0.elapsed().as_secs_f64();
            let mut all = None;
            let mut hwm: f64 = 0.0;
            while t0.elapsed().as_secs_f64() < 120.0 {
                hwm = hwm.max(op.hwm());
                match op.reconciles().await {
                    Some(r) if r >= total as f64 => {
                        all = Some(t0.elapsed().as_secs_f64());
                        break;
                    }
                    None if t0.elapsed().as_secs_f64() > 10.0 => break,
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            sleep((30.0 - t0.elapsed().as_secs_f64()).max(2.0 * self.plan.interval + 1.0)).await;
            let mut s = vec![];
            for _ in 0..3 {
                s.push(op.rss());
                sleep(1.0).await;
            }
            let hwm = hwm.max(op.hwm());
            let st = median(&s).unwrap_or(f64::NAN);
            let c1 = self.state().counters();
            let a1 = apiserver_requests(&self.client).await;
            let sb = *c1.calls.get("StartBuild").unwrap_or(&0) as f64
                - *c0.calls.get("StartBuild").unwrap_or(&0) as f64;
            let ids = (c1.batch_get_builds_ids - c0.batch_get_builds_ids) as f64;
            let w = obs.total_writes() as f64 - w0;
            let n_apply = delta(&a0, &a1, "codebuildruns:APPLY/status")
                + delta(&a0, &a1, "codebuildruns:PATCH/")
                + delta(&a0, &a1, "codebuildruns:PATCH/status")
                + delta(&a0, &a1, "codebuildruns:UPDATE/");
            eprintln!(
                "bench: restart {rep}: synced {synced:.1}s, all reconciled {all:?}, StartBuild {sb}, writes {w}, write requests {n_apply}, BatchGetBuilds ids {ids} (running {running}), HWM {hwm:.1} MiB, steady {st:.1} MiB"
            );
            startbuilds.push(sb);
            writes.push(w);
            noop.push(n_apply);
            reconciled.push(all.unwrap_or(f64::NAN));
            peak.push(hwm);
            steady.push(st);
            ratio.push(hwm / st);
        }
        op.stop().await;
        obs.stop();
        let s1 = self.plan.scale_stage1;
        let idle = median(&self.idle_rss).unwrap_or(f64::NAN);
        self.report.add(
            "d",
            format!("operator RSS at {s1} runs (1 in 10 running)"),
            "MiB",
            rss_stage.remove(&s1).unwrap_or_default(),
            Goal::Le(48.0),
            "3 samples, 1 s apart",
        );
        self.report.add(
            "d",
            format!("operator RSS at {total} runs (1 in 10 running), first operator"),
            "MiB",
            rss_stage.remove(&total).unwrap_or_default(),
            Goal::Le(128.0),
            "3 samples, 1 s apart",
        );
        self.report.add(
            "d",
            format!("operator RSS at {total} runs, steady after a restart"),
            "MiB",
            steady,
            Goal::Le(128.0),
            "",
        );
        self.report.add(
            "d",
            format!("operator peak RSS (VmHWM) during the initial list of {total} runs"),
            "MiB",
            peak,
            Goal::None,
            "",
        );
        self.report.add(
            "d",
            "initial-list peak / steady state",
            "x",
            ratio,
            Goal::Le(1.5),
            "",
        );
        self.report.add(
            "d",
            "operator memory per run at the largest size, (RSS - idle)/runs",
            "KiB",
            vec![
                (median(
                    &self
                        .report
                        .rows
                        .iter()
                        .rev()
                        .find(|r| r.figure.contains("steady after a restart"))
                        .map(|r| r.samples.clone())
                        .unwrap_or_default(),
                )
                .unwrap_or(f64::NAN)
                    - idle)
                    * 1024.0
                    / total as f64,
            ],
            Goal::None,
            "",
        );
        for (target, running, calls) in calls_mix {
            self.report.add(
                "a",
                format!("API calls/min with {target} runs of which {running} running"),
                "calls",
                vec![calls],
                Goal::Le(((running as f64 / 100.0).ceil()) * 60.0 / self.plan.interval),
                "ceil(running/100) per round",
            );
        }
        self.report.add(
            "e",
            format!("restart with {total} runs: StartBuild calls"),
            "calls",
            startbuilds,
            Goal::Eq(0.0),
            "",
        );
        self.report.add(
            "e",
            format!(
                "restart with {total} runs: writes to the runs (watched resourceVersion changes)"
            ),
            "writes",
            writes,
            Goal::Eq(0.0),
            "",
        );
        self.report.add(
            "e",
            format!("restart with {total} runs: run write requests at the apiserver"),
            "requests",
            noop,
            Goal::Eq(0.0),
            "cluster-wide counter",
        );
        self.report.add(
            "e",
            format!("restart with {total} runs: time until every run was reconciled"),
            "s",
            reconciled,
            Goal::Le(60.0),
            "operator reconciles_total >= runs",
        );
        Ok(())
    }

    /// Rows that combine scenarios: call rates side by side, per-build CPU and memory.
    fn summary_rows(&mut self) {
        let idle = self.idle_rss.clone();
        if !idle.is_empty() {
            self.report.add(
                "d",
                "operator RSS idle (empty namespace, one sample per operator start)",
                "MiB",
                idle.clone(),
                Goal::Le(25.0),
                "",
            );
        }
        let cli = self
            .report
            .median_of("AWS CLI Job loop: API calls per build per minute, all sizes");
        let mut sizes: Vec<usize> = self.op_calls.keys().copied().collect();
        sizes.sort();
        for n in sizes {
            let calls = self.op_calls.get(&n).cloned().unwrap_or_default();
            let goal = if n >= 1000 {
                Goal::Le(0.12)
            } else {
                Goal::None
            };
            self.report.add(
                "a",
                format!("operator: API calls per in-flight build per minute, {n} in flight"),
                "calls",
                calls.clone(),
                goal,
                "",
            );
            if let (Some(c), Some(o)) = (cli, median(&calls)) {
                self.report.add(
                    "a",
                    format!("ratio AWS CLI Job loop / operator, calls per build, {n} in flight"),
                    "x",
                    vec![c / o],
                    Goal::None,
                    if n > 10 {
                        "AWS CLI side extrapolated per build"
                    } else {
                        ""
                    },
                );
            }
            let cpu = self
                .op_cpu_per_build_min
                .get(&n)
                .cloned()
                .unwrap_or_default();
            self.report.add(
                "a",
                format!("operator: CPU-s per tracked build per minute, {n} in flight"),
                "CPU-s",
                cpu,
                Goal::None,
                "",
            );
            if let Some(r) = self.op_rss_per_build.get(&n) {
                let per: Vec<f64> = r.iter().map(|v| v / n as f64).collect();
                self.report.add(
                    "a",
                    format!("operator: memory per tracked build, RSS/{n}"),
                    "MiB",
                    per,
                    Goal::None,
                    "whole process",
                );
            }
        }
        let rows = self.report.rows.clone();
        let mut keyed = rows.clone();
        // Keep sections together, in order.
        keyed.sort_by_key(|r| r.section);
        self.report.rows = keyed;
        let _ = rows;
    }

    async fn header(&mut self, load_start: f64, elapsed: f64) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            })
            .unwrap_or_else(|| "?".into());
        let mem = util::read_trim("/proc/meminfo")
            .lines()
            .next()
            .unwrap_or("")
            .replace("MemTotal:", "")
            .trim()
            .to_owned();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("PRETTY_NAME="))
                    .map(|l| l[12..].trim_matches('"').to_owned())
            })
            .unwrap_or_default();
        let procs = running_binaries();
        let git = util::cmd_output(
            "git",
            &[
                "-C",
                self.root.to_str().unwrap_or("."),
                "describe",
                "--always",
                "--dirty",
            ],
        );
        let h = &mut self.report.header;
        // The invocation as run (`make bench` runs `codebuild-bench --wait-quiet-minutes 40`).
        let args: Vec<String> = std::env::args().collect();
        h.push(("command".into(), args.join(" ")));
        h.push((
            "date".into(),
            util::cmd_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        ));
        h.push((
            "machine".into(),
            format!(
                "{} CPUs ({cpu}), {mem} RAM, {os}, Linux {}",
                num_cpus(),
                util::read_trim("/proc/sys/kernel/osrelease")
            ),
        ));
        h.push((
            "load average (1 min) at start / end".into(),
            format!("{load_start:.2} / {:.2}", util::load1()),
        ));
        h.push((
            "operator".into(),
            format!(
                "{} (release build, git {git})",
                util::cmd_output(self.operator_bin.to_str().unwrap_or(""), &["--version"])
            ),
        ));
        h.push(("rustc".into(), util::cmd_output("rustc", &["--version"])));
        h.push((
            "kube-apiserver".into(),
            format!(
                "{} ({})",
                cluster::apiserver_version(&self.client).await,
                procs.0
            ),
        ));
        h.push(("etcd".into(), procs.1));
        h.push((
            "kubectl".into(),
            util::cmd_output("kubectl", &["version", "--client", "-o", "json"])
                .lines()
                .find(|l| l.contains("gitVersion"))
                .unwrap_or("")
                .trim()
                .trim_end_matches(',')
                .to_owned(),
        ));
        h.push(("AWS CLI".into(), util::cmd_output("aws", &["--version"])));
        h.push((
            "simulator".into(),
            "codebuild-sim in the bench process, time scale 1, project `bench`".into(),
        ));
        h.push((
            "poll interval".into(),
            format!("{}s (default)", self.plan.interval),
        ));
        h.push((
            "bench wall time".into(),
            format!("{:.1} min", elapsed / 60.0),
        ));
    }
}

const PROFILED: [&str; 4] = [
    "kube-apiserver",
    "etcd",
    "the operator",
    "the bench (creates, watch, simulator)",
];

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// The kube-apiserver and etcd binaries running (their file names carry the versions).
fn running_binaries() -> (String, String) {
    let mut api = String::from("?");
    let mut etcd = String::from("?");
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let first = cmd.split(|b| *b == 0).next().unwrap_or(&[]);
            let first = String::from_utf8_lossy(first);
            let base = Path::new(first.as_ref())
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if base.starts_with("kube-apiserver") {
                api = base;
            } else if base.starts_with("etcd") {
                etcd = base;
            }
        }
    }
    (api, etcd)
}

/// (median status writes per run after the build id appeared, total status writes over
/// every run beyond one per observed change of currentPhase). Writes that leave status as
/// it was (the finalizer's release) are not status writes.
fn writes_after_id(snap: &HashMap<String, cluster::Seen>) -> (f64, f64) {
    let mut per_run = vec![];
    let mut extra = 0.0;
    for s in snap.values() {
        let Some(before) = s.status_writes_before_id else {
            continue;
        };
        let after = (s.status_writes - before) as f64;
        per_run.push(after);
        // Phase changes seen after the one written with the build id.
        let changes = s.phases.len().saturating_sub(1) as f64;
        extra += (after - changes).max(0.0);
    }
    (median(&per_run).unwrap_or(f64::NAN), extra)
}
