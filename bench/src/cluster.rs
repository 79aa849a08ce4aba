//! The local kube-apiserver: client, namespaces, CodeBuildRun creation, an observer that
//! sees every write to every run of a namespace, and apiserver request counters.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::util::now;

pub const BENCH_LABEL: &str = "codebuild-bench";

pub fn run_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("codebuild.operator.dev", "v1alpha1", "CodeBuildRun"),
        "codebuildruns",
    )
}

pub async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(Client::try_from(config)?)
}

/// The kubeconfig of hack/local-cluster.sh, bringing the control plane up if it is down and
/// installing the CRD.
pub fn ensure_cluster(root: &Path) -> anyhow::Result<PathBuf> {
    let script = root.join("hack/local-cluster.sh");
    let status = std::process::Command::new(&script).arg("status").output()?;
    if !status.status.success() {
        eprintln!("bench: bringing the local control plane up (hack/local-cluster.sh up)");
        let up = std::process::Command::new("flock")
            .arg(root.join("target/local-cluster.lock"))
            .arg(&script)
            .arg("up")
            .status()?;
        if !up.success() {
            bail!("hack/local-cluster.sh up failed");
        }
    }
    let out = std::process::Command::new(&script)
        .arg("kubeconfig")
        .output()?;
    let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !kubeconfig.is_file() {
        bail!("hack/local-cluster.sh kubeconfig gave no file");
    }
    let crds = root.join("crds");
    for args in [
        vec![
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds.to_str().unwrap(),
        ],
        vec![
            "wait",
            "--for=condition=Established",
            "crd/codebuildruns.codebuild.operator.dev",
            "--timeout=60s",
        ],
    ] {
        let out = std::process::Command::new("kubectl")
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(kubeconfig)
}

pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}
    }))?;
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// Removes every run of the bench's namespaces (finalizers first: the operator is gone),
/// then the namespaces (they stay Terminating: this control plane has no namespace
/// controller, but they are empty).
pub async fn cleanup(client: &Client) -> anyhow::Result<usize> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let list = nss
        .list(&ListParams::default().labels(&format!("{BENCH_LABEL}=true")))
        .await?;
    let mut removed = 0;
    for ns in list {
        let name = ns.name_any();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &name, &run_resource());
        let names: Vec<String> = api
            .list_metadata(&ListParams::default())
            .await?
            .into_iter()
            .filter(|o| !o.finalizers().is_empty())
            .map(|o| o.name_any())
            .collect();
        removed += names.len();
        stream::iter(names)
            .map(|n| {
                let api = api.clone();
                async move {
                    let _ = api
                        .patch(
                            &n,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        )
                        .await;
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        // The operator's Events too: left for the apiserver's 1 h event TTL they pile up
        // in its watch cache and slow the next run down.
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(client.clone(), &name);
        let _ = events
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        if ns.metadata.deletion_timestamp.is_none() {
            let _ = nss.delete(&name, &DeleteParams::default()).await;
        }
    }
    Ok(removed)
}

/// A CodeBuildRun of project `bench` whose simulated build has `phase_seconds` per phase
/// (10 phases, then COMPLETED; 0 = finished at once).
pub fn run_manifest(name: &str, phase_seconds: f64) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildRun",
        "metadata": {"name": name},
        "spec": {
            "projectName": "bench",
            "environmentVariablesOverride": [
                {"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": phase_seconds.to_string()}
            ]
        }
    }))?)
}

/// Creates `runs` (name, phase seconds) with `concurrency` requests in flight; records the
/// time each create was sent into `created`.
pub async fn create_runs(
    api: &Api<DynamicObject>,
    runs: Vec<(String, f64)>,
    concurrency: usize,
    created: &Arc<Mutex<HashMap<String, f64>>>,
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = stream::iter(runs)
        .map(|(name, phase)| {
            let api = api.clone();
            let created = created.clone();
            async move {
                let obj = run_manifest(&name, phase)?;
                created.lock().unwrap().insert(name.clone(), now());
                api.create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// What the observer saw of one run.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub last_rv: String,
    /// Distinct resourceVersions after the first one seen (each is one write).
    pub writes: u32,
    /// Of those, the ones that changed `.status`.
    pub status_writes: u32,
    /// `writes` when the build id first appeared (the claim, then the build id: 2).
    pub writes_before_id: Option<u32>,
    /// Of those, the ones that changed status.
    pub status_writes_before_id: Option<u32>,
    pub build_id: Option<String>,
    pub build_id_t: Option<f64>,
    status_hash: u64,
    /// (currentPhase, time seen) whenever `status.currentPhase` changed.
    pub phases: Vec<(String, f64)>,
    /// When `buildStatus` was first seen final (not IN_PROGRESS).
    pub final_t: Option<f64>,
    /// That final `buildStatus` (SUCCEEDED, FAILED, ...).
    pub final_status: Option<String>,
}

/// Watches every CodeBuildRun of a namespace and records each write as it arrives.
#[derive(Clone)]
pub struct Observer {
    pub seen: Arc<Mutex<HashMap<String, Seen>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Observer {
    /// Starts watching; returns once the initial list is done.
    pub async fn start(api: Api<DynamicObject>) -> anyhow::Result<Observer> {
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Ok(Some(event)) = events.try_next().await {
                match event {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => record(&s, &obj),
                    watcher::Event::InitDone => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(120), ready_rx)
            .await
            .context("the observer's initial list")??;
        Ok(Observer {
            seen,
            task: Arc::new(task),
        })
    }

    pub fn snapshot(&self) -> HashMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Total writes seen so far over every run.
    pub fn total_writes(&self) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .values()
            .map(|s| s.writes as u64)
            .sum()
    }

    /// How many of `names` satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .values()
            .filter(|s| pred(s))
            .count()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

fn record(seen: &Arc<Mutex<HashMap<String, Seen>>>, obj: &DynamicObject) {
    let t = now();
    let name = obj.name_any();
    let rv = obj.resource_version().unwrap_or_default();
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    status.to_string().hash(&mut hasher);
    let hash = hasher.finish();
    let mut map = seen.lock().unwrap();
    let first = !map.contains_key(&name);
    let s = map.entry(name).or_default();
    if s.last_rv == rv {
        return;
    }
    if !first {
        s.writes += 1;
        if hash != s.status_hash {
            s.status_writes += 1;
        }
    }
    s.last_rv = rv;
    s.status_hash = hash;
    let field = |k: &str| status.get(k).and_then(Value::as_str).map(str::to_owned);
    if s.build_id.is_none() {
        if let Some(id) = field("buildId") {
            s.build_id = Some(id);
            s.build_id_t = Some(t);
            s.writes_before_id = Some(s.writes);
            s.status_writes_before_id = Some(s.status_writes);
        }
    }
    if let Some(phase) = field("currentPhase") {
        if s.phases.last().map(|(p, _)| p != &phase).unwrap_or(true) {
            s.phases.push((phase, t));
        }
    }
    if s.final_t.is_none() {
        if let Some(bs) = field("buildStatus") {
            if bs != "IN_PROGRESS" {
                s.final_t = Some(t);
                s.final_status = Some(bs);
            }
        }
    }
}

/// apiserver_request_total of every resource, summed by `resource:VERB/subresource` (over
/// every response code, group and version).
pub async fn apiserver_requests(client: &Client) -> HashMap<String, f64> {
    request_counts(client, false).await
}

/// apiserver_request_total answered with an error (code 400 and up), summed by
/// `resource:VERB/subresource:code`.
pub async fn apiserver_errors(client: &Client) -> HashMap<String, f64> {
    request_counts(client, true).await
}

async fn request_counts(client: &Client, errors: bool) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(req) = http::Request::get("/metrics").body(Vec::new()) else {
        return out;
    };
    let Ok(text) = client.request_text(req).await else {
        return out;
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let mut key = format!(
            "{}:{}/{}",
            label("resource"),
            label("verb"),
            label("subresource")
        );
        if errors {
            let code = label("code");
            if code.parse::<u16>().unwrap_or(0) < 400 {
                continue;
            }
            key = format!("{key}:{code}");
        }
        *out.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// The verbs of `apiserver_request_total` that write (POST, PUT, PATCH, DELETE; a
/// server-side apply is counted as APPLY).
pub const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// The parts of a `resource:VERB/subresource` key.
fn key_parts(key: &str) -> (&str, &str, &str) {
    let (resource, rest) = key.split_once(':').unwrap_or((key, ""));
    let (verb, sub) = rest.split_once('/').unwrap_or((rest, ""));
    (resource, verb, sub)
}

/// Write requests between two samples of [`apiserver_requests`] whose `resource` and
/// `subresource` satisfy `pick`, by `resource:VERB/subresource`.
pub fn write_deltas(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    pick: impl Fn(&str, &str) -> bool,
) -> BTreeMap<String, f64> {
    after
        .keys()
        .filter(|k| {
            let (resource, verb, sub) = key_parts(k);
            WRITE_VERBS.contains(&verb) && pick(resource, sub)
        })
        .map(|k| (k.clone(), delta(before, after, k)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// `after - before` for one key.
pub fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// The apiserver's version (`/version`).
pub async fn apiserver_version(client: &Client) -> String {
    client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "?".into())
}

/// The kube-apiserver and etcd of the control plane the bench uses: the pid files of
/// hack/local-cluster.sh (`$E2E_RUN`, default target/local-cluster), so another control
/// plane on the same machine is never measured instead.
pub fn control_plane_pids() -> (Option<u32>, Option<u32>) {
    let run = std::env::var_os("E2E_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/local-cluster"));
    let pid = |file: &str| {
        std::fs::read_to_string(run.join(file))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
    };
    (pid("apiserver.pid"), pid("etcd.pid"))
}
