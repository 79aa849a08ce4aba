//! `handover` (issue 17, "Numbers"): two replicas of the operator with --leader-election
//! (a Lease of their own per trial, each replica its own metrics port). Once both are ready
//! and one leads, the leader gets SIGTERM (a rolling update) or SIGKILL (a crash), and a run
//! is created at once. Measured: from the signal to that run's build id in status, and to
//! the standby's `codebuild_operator_leader` gauge reading 1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, DynamicObject};

use crate::cluster::{self, Observer};
use crate::operator::Operator;
use crate::report::Goal;
use crate::util::now;
use crate::{Bench, LONG_PHASE, sleep};

/// The operator's lease duration (src/leader.rs, LEASE_DURATION_SECS).
const LEASE_SECS: f64 = 15.0;
/// How long a trial waits for the build id.
const TRIAL_TIMEOUT: f64 = 60.0;

/// One trial: seconds from the signal.
struct Trial {
    build_id: f64,
    /// To the standby reporting itself leader (NaN if it was not seen before the build id).
    leading: f64,
}

impl Bench {
    pub(crate) async fn handover(&mut self) -> anyhow::Result<()> {
        self.state().reset();
        let (ns, api, obs) = self.namespace("handover").await?;
        let mut rows: [(Vec<f64>, Vec<f64>); 2] = Default::default();
        for rep in 0..self.plan.handover_reps {
            for (i, (sig, name)) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")]
                .into_iter()
                .enumerate()
            {
                let t = self.handover_once(&ns, &api, &obs, sig, name, rep).await;
                let t = match t {
                    Ok(t) => t,
                    Err(e) => {
                        obs.stop();
                        return Err(e);
                    }
                };
                eprintln!(
                    "bench: handover {rep}: {name} of the leader -> standby leads {:.2}s, build id {:.2}s",
                    t.leading, t.build_id
                );
                rows[i].0.push(t.build_id);
                rows[i].1.push(t.leading);
            }
        }
        obs.stop();
        let [(term_id, term_lead), (kill_id, kill_lead)] = rows;
        let r = &mut self.report;
        let what = "2 replicas, --leader-election";
        r.add(
            "h",
            format!("{what}: SIGTERM of the leader -> build id of a run created at once"),
            "s",
            term_id,
            Goal::Le(2.0),
            "",
        );
        r.add(
            "h",
            format!("{what}: SIGTERM of the leader -> the standby leads"),
            "s",
            term_lead,
            Goal::None,
            "its codebuild_operator_leader gauge, polled every 50 ms",
        );
        r.add(
            "h",
            format!("{what}: SIGKILL of the leader -> build id of a run created at once"),
            "s",
            kill_id,
            Goal::Le(LEASE_SECS + 2.0),
            "lease 15 s + 2 s",
        );
        r.add(
            "h",
            format!("{what}: SIGKILL of the leader -> the standby leads"),
            "s",
            kill_lead,
            Goal::None,
            "its codebuild_operator_leader gauge, polled every 50 ms",
        );
        Ok(())
    }

    /// Two fresh replicas on a fresh Lease; `sig` to the leader, then a run created.
    async fn handover_once(
        &mut self,
        ns: &str,
        api: &Api<DynamicObject>,
        obs: &Observer,
        sig: libc::c_int,
        sig_name: &str,
        rep: usize,
    ) -> anyhow::Result<Trial> {
        let lease = format!("bench-{}-{}", self.tag, self.seq);
        let extra: Vec<String> = [
            "--leader-election",
            "--lease-name",
            &lease,
            "--lease-namespace",
            ns,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut ops = vec![
            self.spawn_operator(ns, &extra)?,
            self.spawn_operator(ns, &extra)?,
        ];
        let trial = trial(
            &mut ops,
            api,
            obs,
            sig,
            &format!("handover-{}-{rep}", sig_name.to_lowercase()),
        )
        .await;
        for op in ops {
            // The survivor releases the lease; the signalled one has exited or is reaped.
            op.stop().await;
        }
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let _ = leases.delete(&lease, &DeleteParams::default()).await;
        trial
    }
}

/// Waits for both replicas to be ready with one leading, signals the leader, creates `run`
/// and measures.
async fn trial(
    ops: &mut [Operator],
    api: &Api<DynamicObject>,
    obs: &Observer,
    sig: libc::c_int,
    run: &str,
) -> anyhow::Result<Trial> {
    for op in ops.iter_mut() {
        op.wait_synced(Duration::from_secs(120)).await?;
    }
    let leader = wait_leader(ops).await?;
    let standby = 1 - leader;
    // A rolling update replaces a leader that has led for a while: let the standby's watch
    // on the Lease settle.
    sleep(2.0).await;
    let t_sig = now();
    ops[leader].signal(sig);
    let created = Arc::new(Mutex::new(HashMap::new()));
    cluster::create_runs(api, vec![(run.to_owned(), LONG_PHASE)], 1, &created).await?;
    let mut leading = f64::NAN;
    let t0 = Instant::now();
    loop {
        let id_t = obs.seen.lock().unwrap().get(run).and_then(|s| s.build_id_t);
        if let Some(t) = id_t {
            return Ok(Trial {
                build_id: t - t_sig,
                leading,
            });
        }
        if leading.is_nan() && ops[standby].metric("codebuild_operator_leader").await == Some(1.0) {
            leading = now() - t_sig;
        }
        if t0.elapsed().as_secs_f64() > TRIAL_TIMEOUT {
            bail!("no build id for {run} {TRIAL_TIMEOUT}s after the leader's signal");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the one replica that leads, once both answer /readyz 200.
async fn wait_leader(ops: &[Operator]) -> anyhow::Result<usize> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let mut leading = vec![];
        let mut ready = 0;
        for (i, op) in ops.iter().enumerate() {
            if op.ready().await {
                ready += 1;
            }
            if op.metric("codebuild_operator_leader").await == Some(1.0) {
                leading.push(i);
            }
        }
        if ready == ops.len() && leading.len() == 1 {
            return Ok(leading[0]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no single leader among the replicas within 60 s")
}
