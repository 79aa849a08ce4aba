//! `limits` (issue 17, "Numbers"): runs against the account's concurrent build limit. N runs
//! created at once, the simulator refusing StartBuild with AccountLimitExceededException
//! past K running builds (builds of ten phases). Measured: the time until every run has
//! SUCCEEDED in status against the ideal (ceil(N/K) waves of one build time), and how many
//! StartBuild calls the simulator refused per poll interval while runs waited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codebuild_sim::{Faults, StartRecord};

use crate::report::Goal;
use crate::util::now;
use crate::{Bench, cluster, wait_until};

/// The error the simulator answers past the limit.
const REFUSED: &str = "AccountLimitExceededException";

/// One repetition.
struct Outcome {
    /// First create to the last run SUCCEEDED in status (NaN unless every run succeeded).
    all_succeeded: f64,
    succeeded: usize,
    /// StartBuild calls refused for the limit.
    refused: usize,
    /// Refused calls per poll interval while runs waited (first refusal to last start).
    per_interval: f64,
    /// The most refused calls within any one poll interval.
    peak: usize,
}

impl Bench {
    pub(crate) async fn limits(&mut self) -> anyhow::Result<()> {
        let (n, max, phase) = (
            self.plan.limits_runs,
            self.plan.limits_max,
            self.plan.limits_phase,
        );
        let build = 10.0 * phase;
        let ideal = (n as f64 / max as f64).ceil() * build;
        let (mut secs, mut ratio, mut per_interval, mut peak, mut refused, mut ok) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for rep in 0..self.plan.limits_reps {
            let o = self.limits_once(n, max, phase).await?;
            eprintln!(
                "bench: limits {rep}: {} of {n} succeeded, all in {:.1}s (ideal {ideal:.0}s), {} refused StartBuild, {:.2} per poll interval, at most {} in one",
                o.succeeded, o.all_succeeded, o.refused, o.per_interval, o.peak
            );
            secs.push(o.all_succeeded);
            ratio.push(o.all_succeeded / ideal);
            per_interval.push(o.per_interval);
            peak.push(o.peak as f64);
            refused.push(o.refused as f64);
            ok.push(o.succeeded as f64);
        }
        let what = format!("{n} runs, limit {max} concurrent builds, builds of {build:.0}s");
        let r = &mut self.report;
        r.add(
            "g",
            format!("{what}: first create to all SUCCEEDED in status"),
            "s",
            secs,
            Goal::None,
            format!("ideal ceil({n}/{max}) x {build:.0}s = {ideal:.0}s"),
        );
        r.add(
            "g",
            format!("{what}: all SUCCEEDED / ideal"),
            "x",
            ratio,
            Goal::Le(1.3),
            "",
        );
        r.add(
            "g",
            format!(
                "{what}: refused StartBuild calls per poll interval per target while runs wait"
            ),
            "calls",
            per_interval,
            Goal::Le(1.0),
            "AccountLimitExceeded, first refusal to last start, 1 target",
        );
        r.add(
            "g",
            format!("{what}: most refused StartBuild calls in one poll interval"),
            "calls",
            peak,
            Goal::None,
            "any window of one interval",
        );
        r.add(
            "g",
            format!("{what}: refused StartBuild calls in all"),
            "calls",
            refused,
            Goal::None,
            "",
        );
        r.add(
            "g",
            format!("{what}: runs that SUCCEEDED"),
            "runs",
            ok,
            Goal::Eq(n as f64),
            "",
        );
        Ok(())
    }

    async fn limits_once(&mut self, n: usize, max: usize, phase: f64) -> anyhow::Result<Outcome> {
        self.state().reset();
        self.state().set_faults(Faults {
            max_concurrent_builds: Some(max as u32),
            ..Default::default()
        });
        let (ns, api, obs) = self.namespace("limits").await?;
        let op = self.operator(&ns).await?;
        let created = Arc::new(Mutex::new(HashMap::new()));
        let ideal = (n as f64 / max as f64).ceil() * 10.0 * phase;
        let t0 = now();
        cluster::create_runs(&api, Self::names("limits", 0, n, phase), 32, &created).await?;
        let done = wait_until("every run final in status", 120.0 + 5.0 * ideal, || {
            obs.count(|s| s.final_t.is_some()) >= n
        })
        .await;
        let snap = obs.snapshot();
        let starts = self.state().starts();
        op.stop().await;
        obs.stop();
        self.state().set_faults(Faults::default());
        done?;
        let succeeded: Vec<f64> = snap
            .values()
            .filter(|s| s.final_status.as_deref() == Some("SUCCEEDED"))
            .filter_map(|s| s.final_t)
            .collect();
        let all_succeeded = if succeeded.len() >= n {
            succeeded.iter().fold(0.0, |a: f64, b| a.max(*b)) - t0
        } else {
            f64::NAN
        };
        eprintln!("bench: limits: {}", timeline(&starts, t0));
        let (refused, per_interval, peak) = refusals(&starts, self.plan.interval);
        Ok(Outcome {
            all_succeeded,
            succeeded: succeeded.len(),
            refused,
            per_interval,
            peak,
        })
    }
}

/// (refused calls, refused calls per `interval` from the first refusal to the last start
/// that went through, the most refused calls within any window of one `interval`).
fn refusals(starts: &[StartRecord], interval: f64) -> (usize, f64, usize) {
    let mut refused: Vec<f64> = starts
        .iter()
        .filter(|s| s.error.as_deref() == Some(REFUSED))
        .map(|s| s.time)
        .collect();
    refused.sort_by(f64::total_cmp);
    let Some(&first) = refused.first() else {
        return (0, 0.0, 0);
    };
    let last_start = starts
        .iter()
        .filter(|s| s.error.is_none() && s.build_id.is_some())
        .map(|s| s.time)
        .fold(first, f64::max);
    let intervals = ((last_start - first) / interval).max(1.0);
    let peak = (0..refused.len())
        .map(|i| {
            refused[i..]
                .iter()
                .take_while(|t| **t < refused[i] + interval)
                .count()
        })
        .max()
        .unwrap_or(0);
    (refused.len(), refused.len() as f64 / intervals, peak)
}

/// StartBuild calls in seconds after `t0`: "+" went through, "x" refused for the limit.
fn timeline(starts: &[StartRecord], t0: f64) -> String {
    starts
        .iter()
        .map(|s| {
            let mark = match (&s.error, s.replayed) {
                (None, false) => "+",
                (None, true) => "=",
                (Some(e), _) if e == REFUSED => "x",
                (Some(_), _) => "!",
            };
            format!("{mark}{:.1}", s.time - t0)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: f64, error: Option<&str>) -> StartRecord {
        StartRecord {
            time,
            project_name: None,
            idempotency_token: None,
            access_key_id: None,
            request: serde_json::Value::Null,
            build_id: error.is_none().then(|| format!("bench:{time}")),
            replayed: false,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn refusals_per_interval_span_first_refusal_to_last_start() {
        let starts = vec![
            record(0.0, None),
            record(0.1, Some(REFUSED)),
            record(0.2, Some(REFUSED)),
            record(5.0, Some(REFUSED)),
            record(10.0, None),
            record(20.1, None),
        ];
        let (n, per, peak) = refusals(&starts, 5.0);
        assert_eq!(n, 3);
        assert!((per - 3.0 / 4.0).abs() < 1e-9, "{per}");
        assert_eq!(peak, 3); // 0.1, 0.2 and 5.0 lie within 5 s of 0.1
        assert_eq!(refusals(&[record(1.0, None)], 5.0), (0, 0.0, 0));
    }
}
