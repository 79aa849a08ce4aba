//! `ratelimit` (issue 17, "Numbers"): a burst of runs against a StartBuild request rate
//! limit (the simulator's token bucket: `rate` per second, a burst of `rate`, then
//! ThrottlingException). Measured: first create to the last StartBuild that went through,
//! against the ideal N / rate, and the throttled share of every StartBuild request that
//! reached the simulator (the operator's own retries and the SDK's included).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use codebuild_sim::{Counters, RateLimits, StartRecord};

use crate::report::Goal;
use crate::util::now;
use crate::{Bench, LONG_PHASE, cluster, wait_until};

/// One repetition.
struct Outcome {
    /// First create to the last StartBuild that went through.
    all_started: f64,
    /// First create to the last build id in status.
    all_ids: f64,
    /// Throttled StartBuild requests, % of all StartBuild requests.
    throttled_pct: f64,
    /// StartBuild requests per run.
    requests_per_run: f64,
}

impl Bench {
    pub(crate) async fn ratelimit(&mut self) -> anyhow::Result<()> {
        let (n, rate) = (self.plan.ratelimit_n, self.plan.ratelimit_rate);
        let ideal = n as f64 / rate;
        let (mut started, mut ratio, mut ids, mut pct, mut per_run) =
            (vec![], vec![], vec![], vec![], vec![]);
        for rep in 0..self.plan.ratelimit_reps {
            let o = self.ratelimit_once(n, rate).await?;
            eprintln!(
                "bench: ratelimit {rep}: all {n} started in {:.1}s (ideal {ideal:.0}s), ids {:.1}s, throttled {:.1}% of StartBuild requests, {:.2} requests per run",
                o.all_started, o.all_ids, o.throttled_pct, o.requests_per_run
            );
            started.push(o.all_started);
            ratio.push(o.all_started / ideal);
            ids.push(o.all_ids);
            pct.push(o.throttled_pct);
            per_run.push(o.requests_per_run);
        }
        let what = format!("burst of {n} runs, StartBuild limited to {rate}/s");
        let r = &mut self.report;
        r.add(
            "g",
            format!("{what}: first create to the last StartBuild through"),
            "s",
            started,
            Goal::None,
            format!("ideal {n}/{rate} = {ideal:.0}s"),
        );
        r.add(
            "g",
            format!("{what}: all started / ideal"),
            "x",
            ratio,
            Goal::Le(1.2),
            "",
        );
        r.add(
            "g",
            format!("{what}: all build ids in status"),
            "s",
            ids,
            Goal::None,
            "",
        );
        r.add(
            "g",
            format!("{what}: throttled StartBuild requests / all StartBuild requests"),
            "%",
            pct,
            Goal::Lt(10.0),
            "simulator counters, SDK retries included",
        );
        r.add(
            "g",
            format!("{what}: StartBuild requests per run"),
            "requests",
            per_run,
            Goal::None,
            "",
        );
        Ok(())
    }

    async fn ratelimit_once(&mut self, n: usize, rate: f64) -> anyhow::Result<Outcome> {
        self.state().reset();
        let limits = RateLimits::from_specs(&[format!("StartBuild={rate}/s")])
            .map_err(|e| anyhow!("rate limit: {e}"))?;
        let (ns, api, obs) = self.namespace("ratelimit").await?;
        let op = self.operator(&ns).await?;
        // Every bucket starts full.
        self.state().set_rate_limits(limits);
        let created = Arc::new(Mutex::new(HashMap::new()));
        // Builds that keep running: only the starts are measured.
        let runs = Self::names("ratelimit", 0, n, LONG_PHASE);
        let t0 = now();
        cluster::create_runs(&api, runs, 32, &created).await?;
        let done = wait_until(
            "every build id in status",
            120.0 + 5.0 * n as f64 / rate,
            || obs.count(|s| s.build_id.is_some()) >= n,
        )
        .await;
        let counters = self.state().counters();
        let starts = self.state().starts();
        let snap = obs.snapshot();
        op.stop().await;
        obs.stop();
        self.state().set_rate_limits(RateLimits::default());
        done?;
        let mut ids = HashSet::new();
        let mut last = t0;
        for s in &starts {
            if let (None, Some(id), false) = (&s.error, &s.build_id, s.replayed) {
                ids.insert(id.clone());
                last = last.max(s.time);
            }
        }
        if ids.len() < n {
            anyhow::bail!("{} builds started for {n} runs", ids.len());
        }
        let all_ids = snap
            .values()
            .filter_map(|s| s.build_id_t)
            .fold(t0, f64::max)
            - t0;
        eprintln!(
            "bench: ratelimit: builds started per 5 s after the first create: {}",
            per_bucket(&starts, t0, 5.0)
        );
        let (requests, throttled) = start_build_requests(&counters);
        Ok(Outcome {
            all_started: last - t0,
            all_ids,
            throttled_pct: 100.0 * throttled / requests.max(1.0),
            requests_per_run: requests / n as f64,
        })
    }
}

/// (StartBuild requests the simulator received, of which throttled).
fn start_build_requests(c: &Counters) -> (f64, f64) {
    let get = |m: &std::collections::BTreeMap<String, u64>| {
        m.get("StartBuild").copied().unwrap_or(0) as f64
    };
    (get(&c.calls), get(&c.throttled_by_operation))
}

/// Builds started (StartBuild calls that went through) per `secs` after `t0`.
fn per_bucket(starts: &[StartRecord], t0: f64, secs: f64) -> String {
    let mut buckets: Vec<usize> = vec![];
    for s in starts.iter().filter(|s| s.error.is_none() && !s.replayed) {
        let i = ((s.time - t0).max(0.0) / secs) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, 0);
        }
        buckets[i] += 1;
    }
    buckets
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
