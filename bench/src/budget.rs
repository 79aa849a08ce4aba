//! The apiserver write budget of a scenario (issue 16): what the kube-apiserver spent on a
//! set of builds, from before their creation to every run final in status. CPU from
//! /proc of the control plane's own kube-apiserver (its pid file), requests from its
//! `apiserver_request_total`.

use std::collections::{BTreeMap, HashMap};

use kube::Client;

use crate::cluster::{
    self, Seen, WRITE_VERBS, apiserver_errors, apiserver_requests, delta, write_deltas,
};
use crate::report::{Goal, Report};
use crate::util::proc_cpu_seconds;

/// A sample taken before the builds.
pub struct Budget {
    pid: Option<u32>,
    cpu0: Option<f64>,
    req0: HashMap<String, f64>,
    err0: HashMap<String, f64>,
}

/// What the builds cost the apiserver.
#[derive(Clone, Debug)]
pub struct Cost {
    /// kube-apiserver CPU seconds per 1,000 builds (NaN without its pid file).
    pub cpu_per_1000: f64,
    /// Write requests per 1,000 builds, every resource, less the bench's own creates.
    pub writes_per_1000: f64,
    /// Events created or updated per build.
    pub events_per_build: f64,
    /// Write requests to `codebuildruns/status` per build.
    pub status_writes_per_build: f64,
    /// Status changes the watch saw, per build.
    pub status_changes_per_build: f64,
    /// The write requests, by `resource:VERB/subresource`.
    pub by_key: BTreeMap<String, f64>,
    /// Of those, the ones answered with an error, by `resource:VERB/subresource:code`.
    pub refused: BTreeMap<String, f64>,
}

impl Budget {
    /// Samples the apiserver's CPU time and request counters now.
    pub async fn start(client: &Client) -> Budget {
        let pid = cluster::control_plane_pids().0;
        let req0 = apiserver_requests(client).await;
        let err0 = apiserver_errors(client).await;
        Budget {
            pid,
            cpu0: pid.and_then(proc_cpu_seconds),
            req0,
            err0,
        }
    }

    /// The cost of `n` builds whose runs the bench created itself (`n` POSTs of
    /// codebuildruns, not counted as the operator's writes), with what the watch saw.
    pub async fn finish(&self, client: &Client, n: usize, snap: &HashMap<String, Seen>) -> Cost {
        let cpu1 = self.pid.and_then(proc_cpu_seconds);
        let req1 = apiserver_requests(client).await;
        let err1 = apiserver_errors(client).await;
        let refused = err1
            .keys()
            .filter(|k| {
                let verb = k.split(':').nth(1).unwrap_or("");
                WRITE_VERBS.contains(&verb.split('/').next().unwrap_or(""))
            })
            .map(|k| (k.clone(), delta(&self.err0, &err1, k)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        let nf = n.max(1) as f64;
        let cpu = match (self.cpu0, cpu1) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        let by_key = write_deltas(&self.req0, &req1, |_, _| true);
        let sum = |pick: &dyn Fn(&str) -> bool| -> f64 {
            by_key.iter().filter(|(k, _)| pick(k)).map(|(_, v)| v).sum()
        };
        let all = sum(&|_| true);
        let events = sum(&|k| {
            k.starts_with("events:") && !k.contains(":DELETE") // the bench's cleanup deletes
        });
        let status = sum(&|k| k.starts_with("codebuildruns:") && k.ends_with("/status"));
        let changes: f64 = snap.values().map(|s| s.status_writes as f64).sum();
        Cost {
            cpu_per_1000: cpu * 1000.0 / nf,
            writes_per_1000: (all - n as f64).max(0.0) * 1000.0 / nf,
            events_per_build: events / nf,
            status_writes_per_build: status / nf,
            status_changes_per_build: changes / nf,
            by_key,
            refused,
        }
    }
}

/// The costs of the repetitions of one scenario.
#[derive(Default)]
pub struct Costs(Vec<Cost>);

impl Costs {
    pub fn push(&mut self, cost: Cost) {
        eprintln!(
            "bench: apiserver budget: {:.1} CPU-s and {:.0} write requests per 1,000 builds, {:.2} Events and {:.2} status writes per build; writes by resource: {}; refused: {}",
            cost.cpu_per_1000,
            cost.writes_per_1000,
            cost.events_per_build,
            cost.status_writes_per_build,
            cost.by_key
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            if cost.refused.is_empty() {
                "none".to_owned()
            } else {
                cost.refused
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        );
        self.0.push(cost);
    }

    fn of(&self, f: impl Fn(&Cost) -> f64) -> Vec<f64> {
        self.0.iter().map(f).collect()
    }

    /// The budget rows of one scenario, `what` naming it ("burst of 1000", "10 creates/s").
    pub fn add_rows(&self, report: &mut Report, what: &str) {
        report.add(
            "f",
            format!("kube-apiserver CPU per 1,000 builds, create to final ({what})"),
            "CPU-s",
            self.of(|c| c.cpu_per_1000),
            Goal::None,
            "its /proc; includes serving the bench's creates and watch",
        );
        report.add(
            "e",
            format!("apiserver write requests per 1,000 builds, create to final ({what})"),
            "requests",
            self.of(|c| c.writes_per_1000),
            Goal::None,
            "apiserver_request_total POST/PUT/PATCH/APPLY/DELETE, every resource, less the bench's creates",
        );
        report.add(
            "e",
            format!("Events per build ({what})"),
            "Events",
            self.of(|c| c.events_per_build),
            Goal::Le(3.0),
            "created or updated; builds that succeed, default flags",
        );
        report.add(
            "e",
            format!("status write requests per build ({what})"),
            "requests",
            self.of(|c| c.status_writes_per_build),
            Goal::None,
            "codebuildruns/status at the apiserver",
        );
        report.add(
            "e",
            format!("status changes per build seen by the watch ({what})"),
            "writes",
            self.of(|c| c.status_changes_per_build),
            Goal::None,
            "",
        );
    }
}
