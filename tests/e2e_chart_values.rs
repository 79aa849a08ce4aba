//! End to end: the chart's values for real clusters (name overrides, security contexts,
//! extra env and volumes, pod metadata, priority, topology spread and the default
//! anti-affinity, ServiceMonitor relabelings, aggregated user roles), its schema, its
//! package, its Kubernetes floor and its generated README.
//!
//! Every value is rendered with `helm template` and sent to the local kube-apiserver as a
//! server-side dry run (`kubectl apply --dry-run=server -o json`), and the assertions read
//! the objects as the apiserver returned them (validated, defaulted). The aggregated roles
//! are installed for real and checked with `kubectl auth can-i --as` and with real writes.
//!
//! Needs the local control plane (hack/local-cluster.sh), its helm
//! (`hack/local-cluster.sh bin helm`) and helm-docs (`hack/chart-readme.sh bin`, built on
//! first use); fails, never skips, when they are missing.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestNamespace, kubectl, kubectl_ok, kubectl_stdin, output_text, wait_for};

const CHART: &str = "charts/codebuild-operator";
/// The Kubernetes version `helm template` renders for (the local control plane's minor).
const KUBE_VERSION: &str = "1.36.0";
/// The chart's floor, as its templates check it.
const KUBE_FLOOR: &str = "1.33.0";
/// The release name of rendered (not installed) charts.
const RELEASE: &str = "vals";
/// The full name of [`RELEASE`] with the default values.
const FULLNAME: &str = "vals-codebuild-operator";
const RUNS: &str = "codebuildruns.codebuild.operator.dev";
const BATCHES: &str = "codebuildbatchruns.codebuild.operator.dev";
const POLICIES: &str = "codebuildrunpolicies.codebuild.operator.dev";

// ---- helm ---------------------------------------------------------------------------------

fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new(support::repo_root().join("hack/local-cluster.sh"))
            .args(["bin", "helm"])
            .output()
            .expect("running hack/local-cluster.sh bin helm");
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success() && path.is_file(),
            "no helm binary (hack/local-cluster.sh build builds it): {}",
            output_text(&out)
        );
        path
    })
}

/// `helm ARGS` against the local control plane (run from the repository root).
fn helm(args: &[&str]) -> Output {
    let root = support::repo_root();
    Command::new(helm_bin())
        .args(args)
        .current_dir(root)
        .env("KUBECONFIG", support::kubeconfig())
        .env("HELM_CACHE_HOME", root.join("target/helm/cache"))
        .env("HELM_CONFIG_HOME", root.join("target/helm/config"))
        .env("HELM_DATA_HOME", root.join("target/helm/data"))
        .output()
        .unwrap_or_else(|e| panic!("helm {}: {e}", args.join(" ")))
}

#[track_caller]
fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "`helm {}` failed:\n{}",
        args.join(" "),
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` of `chart` as [`RELEASE`] into `ns` for [`KUBE_VERSION`], with `extra`.
fn template_chart(chart: &str, ns: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "template",
        RELEASE,
        chart,
        "--namespace",
        ns,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The chart rendered with `extra`; panics with Helm's message when it refuses.
#[track_caller]
fn render(ns: &str, extra: &[&str]) -> String {
    let out = template_chart(CHART, ns, extra);
    assert!(
        out.status.success(),
        "helm template {extra:?} failed:\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `manifests` to the apiserver as a server-side dry run and returns the objects it
/// answered with. Panics with the apiserver's message when it refuses any of them.
#[track_caller]
fn dry_run(ns: &str, what: &str, manifests: &str) -> Vec<Value> {
    let out = kubectl_stdin(
        &[
            "apply",
            "-n",
            ns,
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        manifests,
    );
    assert!(
        out.status.success(),
        "{what}: the apiserver refused the rendered chart:\n{}\n{manifests}",
        output_text(&out)
    );
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: kubectl's JSON: {e}"));
    match answer["kind"].as_str() {
        Some("List") => answer["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![answer],
    }
}

/// The chart rendered with `extra` and accepted by the apiserver (server-side dry run).
#[track_caller]
fn accepted(ns: &str, extra: &[&str]) -> Vec<Value> {
    dry_run(ns, &format!("{extra:?}"), &render(ns, extra))
}

/// The object of `kind` named `name` among `objects`.
#[track_caller]
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let present: Vec<String> = objects
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind} {name:?} among {present:?}")
        })
}

fn kinds<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The pod spec of the one Deployment.
#[track_caller]
fn pod_spec(objects: &[Value]) -> &Value {
    let deployments = kinds(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    &deployments[0]["spec"]["template"]["spec"]
}

/// The operator container.
#[track_caller]
fn container(objects: &[Value]) -> &Value {
    let container = &pod_spec(objects)["containers"][0];
    assert_eq!(container["name"], "operator");
    container
}

/// `--set-json KEY=JSON`.
fn set_json(key: &str, value: &Value) -> String {
    format!("{key}={value}")
}

/// Creates a Pod with the Deployment's pod template as a server-side dry run in `ns`, which
/// enforces the `restricted` Pod Security Standard (PodSecurity admission judges Pods, not
/// Deployments).
fn restricted_pod(ns: &str, objects: &[Value]) -> Output {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-security-probe"},
        "spec": pod_spec(objects),
    });
    kubectl_stdin(
        &["create", "-n", ns, "--dry-run=server", "-f", "-"],
        &pod.to_string(),
    )
}

/// The labels the harness puts on what it creates, as a JSON object.
fn e2e_labels() -> Value {
    let (key, value) = support::NAMESPACE_LABEL;
    let mut labels = serde_json::Map::new();
    labels.insert(key.to_owned(), json!(value));
    Value::Object(labels)
}

/// `kubectl auth can-i ARGS --as USER`.
fn can(user: &str, args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--as", user]);
    String::from_utf8_lossy(&kubectl(&full).stdout).trim() == "yes"
}

/// Deletes a cluster-scoped object on drop.
struct ClusterObject(String);

impl Drop for ClusterObject {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", &self.0, "--ignore-not-found", "--wait=false"]);
    }
}

/// Uninstalls a Helm release on drop (its ClusterRoles and bindings are cluster-scoped).
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let out = helm(&[
            "uninstall",
            &self.name,
            "-n",
            &self.namespace,
            "--wait=false",
        ]);
        if !out.status.success() {
            eprintln!("helm uninstall {}: {}", self.name, output_text(&out));
        }
    }
}

/// A directory of its own under target/ for files a test writes.
fn scratch_dir(what: &str) -> PathBuf {
    let dir = support::repo_root().join(format!(
        "target/e2e-chart-values/{what}-{}",
        support::random_suffix(6)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

// ---- names ----------------------------------------------------------------------------------

#[test]
fn name_overrides_rename_every_object() {
    let ns = TestNamespace::new("chart-names");
    let n = ns.name();

    // nameOverride: the name part of the full name and the app.kubernetes.io/name label.
    let objects = accepted(n, &["--set", "nameOverride=cbo", "--set", "replicas=2"]);
    let deployment = object(&objects, "Deployment", "vals-cbo");
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "cbo"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        "cbo"
    );
    let service = object(&objects, "Service", "vals-cbo-metrics");
    assert_eq!(service["spec"]["selector"]["app.kubernetes.io/name"], "cbo");
    object(&objects, "ServiceAccount", "vals-cbo");
    object(&objects, "ClusterRole", "vals-cbo");
    object(&objects, "Role", "vals-cbo-leader-election");
    object(&objects, "PodDisruptionBudget", "vals-cbo");
    assert!(
        container(&objects)["args"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("--lease-name=vals-cbo-leader")))
    );

    // fullnameOverride: every object name; the name label stays the chart's.
    let objects = accepted(
        n,
        &[
            "--set",
            "fullnameOverride=platform-ci",
            "--set",
            "replicas=2",
            "--set",
            "policy.enforce=true",
        ],
    );
    let deployment = object(&objects, "Deployment", "platform-ci");
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/name"],
        "codebuild-operator"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-ci"
    );
    for (kind, name) in [
        ("ServiceAccount", "platform-ci"),
        ("Service", "platform-ci-metrics"),
        ("ClusterRole", "platform-ci"),
        ("ClusterRoleBinding", "platform-ci"),
        ("ClusterRole", "platform-ci-policy"),
        ("Role", "platform-ci-leader-election"),
        ("ValidatingAdmissionPolicyBinding", "platform-ci-policy"),
    ] {
        object(&objects, kind, name);
    }
    let binding = object(&objects, "ClusterRoleBinding", "platform-ci");
    assert_eq!(binding["subjects"][0]["name"], "platform-ci");

    // The longest fullnameOverride the schema allows still gives a valid Service name.
    let longest = format!("f{}", "x".repeat(54));
    let objects = accepted(n, &["--set", &format!("fullnameOverride={longest}")]);
    let service = format!("{longest}-metrics");
    assert_eq!(service.len(), 63);
    object(&objects, "Service", &service);
}

// ---- security contexts ------------------------------------------------------------------

#[test]
fn security_contexts_default_to_restricted_and_can_drop_the_fixed_ids_for_openshift() {
    let ns = TestNamespace::new("chart-secctx");
    let n = ns.name();
    kubectl_ok(&[
        "label",
        "namespace",
        n,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]);

    let defaults = accepted(n, &[]);
    let pod = &pod_spec(&defaults)["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["runAsUser"], 65532);
    assert_eq!(pod["runAsGroup"], 65532);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    let c = &container(&defaults)["securityContext"];
    assert_eq!(c["allowPrivilegeEscalation"], false);
    assert_eq!(c["readOnlyRootFilesystem"], true);
    assert_eq!(c["runAsUser"], 65532);
    assert_eq!(c["capabilities"]["drop"], json!(["ALL"]));
    let out = restricted_pod(n, &defaults);
    assert!(out.status.success(), "defaults: {}", output_text(&out));

    // OpenShift's restricted-v2: no fixed UID/GID; the rest stays, and still meets
    // `restricted`.
    let openshift = accepted(
        n,
        &[
            "--set",
            "podSecurityContext.runAsUser=null",
            "--set",
            "podSecurityContext.runAsGroup=null",
            "--set",
            "securityContext.runAsUser=null",
        ],
    );
    let pod = &pod_spec(&openshift)["securityContext"];
    assert!(pod.get("runAsUser").is_none(), "{pod}");
    assert!(pod.get("runAsGroup").is_none(), "{pod}");
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    let c = &container(&openshift)["securityContext"];
    assert!(c.get("runAsUser").is_none(), "{c}");
    assert_eq!(c["readOnlyRootFilesystem"], true);
    assert_eq!(c["allowPrivilegeEscalation"], false);
    let out = restricted_pod(n, &openshift);
    assert!(out.status.success(), "openshift: {}", output_text(&out));

    // A key added merges with the default.
    let merged = accepted(n, &["--set", "podSecurityContext.fsGroup=2000"]);
    let pod = &pod_spec(&merged)["securityContext"];
    assert_eq!(pod["fsGroup"], 2000);
    assert_eq!(pod["runAsUser"], 65532);

    // The restricted check is real: a container that may escalate is refused.
    let weakened = accepted(
        n,
        &["--set", "securityContext.allowPrivilegeEscalation=true"],
    );
    let out = restricted_pod(n, &weakened);
    assert!(
        !out.status.success() && output_text(&out).contains("allowPrivilegeEscalation"),
        "PodSecurity should refuse it: {}",
        output_text(&out)
    );
}

/// `helm upgrade --reuse-values` from a chart without the new values reuses the old chart's
/// defaults, so the new keys are missing altogether (Helm sets the chart's values to the old
/// release's). Rendered from a copy of the chart whose values.yaml lacks them, the objects
/// are the ones the defaults give: the restricted security contexts are never dropped.
#[test]
fn values_missing_after_a_reuse_values_upgrade_render_as_the_defaults() {
    let ns = TestNamespace::new("chart-reuse");
    let n = ns.name();
    let dir = scratch_dir("reuse");
    let copy = dir.join("codebuild-operator");
    let cp = Command::new("cp")
        .args(["-r", CHART])
        .arg(&copy)
        .current_dir(support::repo_root())
        .output()
        .expect("cp");
    assert!(cp.status.success(), "{}", output_text(&cp));
    let values = std::fs::read_to_string(support::repo_root().join(CHART).join("values.yaml"))
        .expect("reading values.yaml");
    let mut values: Value = serde_saphyr::from_str(&values).expect("values.yaml parses");
    let new_keys = [
        "nameOverride",
        "fullnameOverride",
        "aggregatedRoles",
        "podSecurityContext",
        "securityContext",
        "topologySpreadConstraints",
        "extraVolumes",
        "extraVolumeMounts",
    ];
    for key in new_keys {
        assert!(
            values.as_object_mut().and_then(|v| v.remove(key)).is_some(),
            "values.yaml has no {key}"
        );
    }
    let monitor = values["metrics"]["serviceMonitor"]
        .as_object_mut()
        .expect("metrics.serviceMonitor");
    assert!(monitor.remove("relabelings").is_some());
    assert!(monitor.remove("metricRelabelings").is_some());
    // JSON is YAML.
    std::fs::write(copy.join("values.yaml"), values.to_string()).expect("writing values.yaml");

    let copy = copy.to_string_lossy().into_owned();
    for extra in [&[][..], &["--set", "replicas=3"][..]] {
        let old = template_chart(&copy, n, extra);
        assert!(old.status.success(), "{extra:?}: {}", output_text(&old));
        let old = String::from_utf8_lossy(&old.stdout).into_owned();
        let new = render(n, extra);
        assert_eq!(old, new, "{extra:?}: values missing render differently");
        dry_run(n, "without the new keys", &old);
    }
}

// ---- env, volumes, pod metadata, scheduling -----------------------------------------------

#[test]
fn extra_env_volumes_and_mounts_bring_a_proxy_ca_bundle() {
    let ns = TestNamespace::new("chart-extra");
    let n = ns.name();
    let env = json!([
        {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
        {"name": "SSL_CERT_FILE", "value": "/etc/codebuild-operator/ca/ca-bundle.crt"},
        {"name": "RUST_LOG", "valueFrom": {"configMapKeyRef": {"name": "operator-log", "key": "level"}}},
    ]);
    let volumes = json!([
        {"name": "ca-bundle", "configMap": {"name": "corporate-ca-bundle"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "16Mi"}},
    ]);
    let mounts = json!([
        {"name": "ca-bundle", "mountPath": "/etc/codebuild-operator/ca", "readOnly": true},
        {"name": "scratch", "mountPath": "/tmp"},
    ]);
    let objects = accepted(
        n,
        &[
            "--set-json",
            &set_json("extraEnv", &env),
            "--set-json",
            &set_json("extraVolumes", &volumes),
            "--set-json",
            &set_json("extraVolumeMounts", &mounts),
        ],
    );
    let c = container(&objects);
    let names: Vec<&str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "POD_NAME",
            "POD_NAMESPACE",
            "HTTPS_PROXY",
            "SSL_CERT_FILE",
            "RUST_LOG"
        ]
    );
    assert_eq!(&c["env"][3], &env[1]);
    assert_eq!(
        c["env"][4]["valueFrom"]["configMapKeyRef"]["name"],
        "operator-log"
    );
    assert_eq!(
        c["volumeMounts"][0]["mountPath"],
        "/etc/codebuild-operator/ca"
    );
    assert_eq!(c["volumeMounts"][0]["readOnly"], true);
    assert_eq!(c["volumeMounts"][1]["name"], "scratch");
    let pod = pod_spec(&objects);
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        "corporate-ca-bundle"
    );
    assert_eq!(pod["volumes"][1]["emptyDir"]["sizeLimit"], "16Mi");

    // Without them: no volumes and no mounts at all.
    let objects = accepted(n, &[]);
    assert!(pod_spec(&objects).get("volumes").is_none());
    assert!(container(&objects).get("volumeMounts").is_none());
}

#[test]
fn pod_annotations_labels_priority_and_topology_spread() {
    let ns = TestNamespace::new("chart-podmeta");
    let n = ns.name();
    let spread = json!([
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"tier": "ops"}}, "minDomains": 2},
    ]);
    let objects = accepted(
        n,
        &[
            "--set",
            "podAnnotations.example\\.com/owner=platform",
            "--set",
            "podLabels.team=platform",
            "--set",
            "priorityClassName=platform-critical",
            "--set",
            "replicas=2",
            "--set-json",
            &set_json("topologySpreadConstraints", &spread),
        ],
    );
    let deployment = &kinds(&objects, "Deployment")[0];
    let meta = &deployment["spec"]["template"]["metadata"];
    assert_eq!(meta["annotations"]["example.com/owner"], "platform");
    assert_eq!(meta["labels"]["team"], "platform");
    assert_eq!(
        meta["labels"]["app.kubernetes.io/name"],
        "codebuild-operator"
    );
    // Pod labels are not selector labels (a selector cannot change after install).
    assert!(
        deployment["spec"]["selector"]["matchLabels"]
            .get("team")
            .is_none()
    );
    let pod = pod_spec(&objects);
    assert_eq!(pod["priorityClassName"], "platform-critical");
    let constraints = pod["topologySpreadConstraints"]
        .as_array()
        .expect("topologySpreadConstraints");
    assert_eq!(constraints.len(), 2);
    assert_eq!(constraints[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(
        constraints[0]["labelSelector"],
        json!({"matchLabels": {
            "app.kubernetes.io/name": "codebuild-operator",
            "app.kubernetes.io/instance": RELEASE,
        }}),
        "a constraint without labelSelector selects the operator's pods"
    );
    assert_eq!(
        constraints[1]["labelSelector"],
        json!({"matchLabels": {"tier": "ops"}}),
        "a labelSelector given is kept as it is"
    );
    assert_eq!(constraints[1]["minDomains"], 2);

    // The chart's own labels cannot be replaced through podLabels.
    let out = template_chart(
        CHART,
        n,
        &["--set", "podLabels.app\\.kubernetes\\.io/instance=other"],
    );
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("podLabels may not set app.kubernetes.io/instance"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn anti_affinity_by_default_only_above_one_replica_and_user_affinity_replaces_it() {
    let ns = TestNamespace::new("chart-affinity");
    let n = ns.name();

    let one = accepted(n, &[]);
    assert!(pod_spec(&one).get("affinity").is_none(), "one replica");

    let two = accepted(n, &["--set", "replicas=2"]);
    let anti = &pod_spec(&two)["affinity"];
    assert!(anti.get("nodeAffinity").is_none());
    assert!(
        anti["podAntiAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none(),
        "preferred only: never blocks scheduling"
    );
    let preferred = &anti["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(preferred.as_array().map(Vec::len), Some(1), "{anti}");
    assert_eq!(preferred[0]["weight"], 100);
    let term = &preferred[0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "codebuild-operator", "app.kubernetes.io/instance": RELEASE})
    );

    let user = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.example.com/platform", "operator": "Exists"}
        ]}]
    }}});
    for replicas in ["1", "3"] {
        let objects = accepted(
            n,
            &[
                "--set",
                &format!("replicas={replicas}"),
                "--set-json",
                &set_json("affinity", &user),
            ],
        );
        assert_eq!(
            pod_spec(&objects)["affinity"],
            user,
            "replicas={replicas}: the user's affinity, exactly"
        );
    }
}

// ---- ServiceMonitor ---------------------------------------------------------------------

/// A ServiceMonitor CRD for the dry run, written for this test: only the fields the chart
/// renders, typed as the Prometheus Operator's monitoring.coreos.com/v1 CRD types them
/// (durations, RelabelConfig), and nothing else, so a misspelled or mistyped field fails the
/// strict dry run. Not the Prometheus Operator's own CRD (which this repository does not
/// vendor).
fn service_monitor_crd() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let duration = json!({"type": "string",
            "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"});
        let relabel = json!({"type": "array", "items": {"type": "object", "properties": {
            "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
            "separator": {"type": "string"},
            "targetLabel": {"type": "string"},
            "regex": {"type": "string"},
            "modulus": {"type": "integer", "format": "int64"},
            "replacement": {"type": "string"},
            "action": {"type": "string", "default": "replace", "enum": [
                "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod",
                "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep",
                "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual",
                "dropequal", "DropEqual"]},
        }}});
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": "servicemonitors.monitoring.coreos.com",
                "labels": e2e_labels(),
            },
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                          "plural": "servicemonitors", "singular": "servicemonitor"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
                    "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                        "type": "object",
                        "required": ["endpoints", "selector"],
                        "properties": {
                            "selector": {"type": "object", "properties": {
                                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                            "namespaceSelector": {"type": "object", "properties": {
                                "matchNames": {"type": "array", "items": {"type": "string"}}}},
                            "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": duration,
                                "scrapeTimeout": duration,
                                "relabelings": relabel,
                                "metricRelabelings": relabel,
                            }}},
                        },
                    }}},
                }}],
            },
        });
        let out = kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=e2e-chart-values",
                "-f",
                "-",
            ],
            &crd.to_string(),
        );
        assert!(out.status.success(), "ServiceMonitor CRD: {}", output_text(&out));
        kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "--timeout=60s",
        ]);
    });
}

#[test]
fn service_monitor_scrape_interval_and_relabelings() {
    service_monitor_crd();
    let ns = TestNamespace::new("chart-smon");
    let n = ns.name();
    let relabelings = json!([
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"},
        {"regex": "pod_template_hash", "action": "labeldrop"},
    ]);
    let metric_relabelings = json!([
        {"sourceLabels": ["__name__"], "regex": "codebuild_operator_tracker_round_builds_bucket", "action": "drop"},
    ]);
    let manifests = render(
        n,
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.serviceMonitor.interval=1m",
            "--set",
            "metrics.serviceMonitor.scrapeTimeout=20s",
            "--set",
            "metrics.serviceMonitor.labels.release=prometheus",
            "--set-json",
            &set_json("metrics.serviceMonitor.relabelings", &relabelings),
            "--set-json",
            &set_json(
                "metrics.serviceMonitor.metricRelabelings",
                &metric_relabelings,
            ),
        ],
    );
    // kubectl may need a moment to discover a kind that was just created.
    let objects = wait_for(
        "the ServiceMonitor kind to be served",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let out = kubectl_stdin(
                &[
                    "apply",
                    "-n",
                    n,
                    "--dry-run=server",
                    "-o",
                    "json",
                    "-f",
                    "-",
                ],
                &manifests,
            );
            if out.status.success() {
                let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl's JSON");
                return list["items"].as_array().cloned();
            }
            let text = output_text(&out);
            assert!(
                text.contains("no matches for kind"),
                "the apiserver refused the rendered chart:\n{text}\n{manifests}"
            );
            None
        },
    );
    let monitor = object(&objects, "ServiceMonitor", FULLNAME);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["interval"], "1m");
    assert_eq!(endpoint["scrapeTimeout"], "20s");
    assert_eq!(endpoint["relabelings"], relabelings);
    assert_eq!(endpoint["metricRelabelings"], metric_relabelings);

    // Without relabelings the endpoint has none (the defaults are empty lists).
    let objects = dry_run(
        n,
        "default ServiceMonitor",
        &render(n, &["--set", "metrics.serviceMonitor.enabled=true"]),
    );
    let endpoint = &object(&objects, "ServiceMonitor", FULLNAME)["spec"]["endpoints"][0];
    assert_eq!(endpoint["interval"], "30s");
    assert!(endpoint.get("relabelings").is_none());
    assert!(endpoint.get("metricRelabelings").is_none());
}

// ---- aggregated user roles ------------------------------------------------------------------

#[test]
fn aggregated_roles_render_exactly_the_promised_rules() {
    let ns = TestNamespace::new("chart-aggr");
    let n = ns.name();
    assert!(
        kinds(&accepted(n, &[]), "ClusterRole")
            .iter()
            .all(|r| !r["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("-view")),
        "no user roles by default"
    );
    let objects = accepted(n, &["--set", "aggregatedRoles.enabled=true"]);
    let view = object(&objects, "ClusterRole", &format!("{FULLNAME}-view"));
    let edit = object(&objects, "ClusterRole", &format!("{FULLNAME}-edit"));
    let label = |role: &Value, key: &str| {
        role["metadata"]["labels"][format!("rbac.authorization.k8s.io/{key}")].clone()
    };
    assert_eq!(label(view, "aggregate-to-view"), "true");
    assert_eq!(label(view, "aggregate-to-edit"), Value::Null);
    assert_eq!(label(edit, "aggregate-to-edit"), "true");
    assert_eq!(label(edit, "aggregate-to-admin"), "true");
    assert_eq!(label(edit, "aggregate-to-view"), Value::Null);
    assert_eq!(
        view["rules"],
        json!([{"apiGroups": ["codebuild.operator.dev"],
                "resources": ["codebuildruns", "codebuildbatchruns"],
                "verbs": ["get", "list", "watch"]}])
    );
    assert_eq!(
        edit["rules"],
        json!([{"apiGroups": ["codebuild.operator.dev"],
                "resources": ["codebuildruns", "codebuildbatchruns"],
                "verbs": ["create", "update", "patch", "delete"]}])
    );
}

/// The rules kube-controller-manager's clusterrole-aggregation controller gives the
/// ClusterRole `name`: the union of the rules of every ClusterRole its aggregationRule
/// selects, recursively (the built-in `view` is itself aggregated into `edit`, and `edit`
/// into `admin`). This control plane runs no controller-manager, so the built-in roles here
/// have their aggregationRules but no rules; the test does the controller's union itself,
/// from the cluster's own aggregationRules and labels.
fn aggregated_rules(roles: &[Value], name: &str, path: &mut Vec<String>) -> Vec<Value> {
    assert!(
        !path.contains(&name.to_owned()),
        "aggregation cycle: {path:?}"
    );
    let role = roles
        .iter()
        .find(|r| r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name}"));
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        return role["rules"].as_array().cloned().unwrap_or_default();
    };
    path.push(name.to_owned());
    let mut rules = Vec::new();
    for selector in selectors {
        assert!(
            selector.get("matchExpressions").is_none(),
            "{name}: matchExpressions are not emulated: {selector}"
        );
        let want = selector["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for other in roles {
            let labels = &other["metadata"]["labels"];
            if want.iter().all(|(k, v)| &labels[k] == v) {
                let other_name = other["metadata"]["name"].as_str().expect("a name");
                for rule in aggregated_rules(roles, other_name, path) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
        }
    }
    path.pop();
    rules
}

/// A copy of the built-in ClusterRole `builtin` with the rules aggregation gives it, bound
/// to `user` in `ns` with a RoleBinding (as `kubectl create rolebinding --clusterrole=edit`
/// would bind the built-in one).
fn bind_aggregated(builtin: &str, user: &str, ns: &str) -> (ClusterObject, Vec<Value>) {
    let roles: Value =
        serde_json::from_str(&kubectl_ok(&["get", "clusterroles", "-o", "json"])).expect("JSON");
    let roles = roles["items"].as_array().cloned().unwrap_or_default();
    let rules = aggregated_rules(&roles, builtin, &mut Vec::new());
    let name = format!("e2e-{ns}-aggregated-{builtin}");
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": e2e_labels()},
        "rules": rules,
    });
    let out = kubectl_stdin(&["create", "-f", "-"], &role.to_string());
    assert!(out.status.success(), "{name}: {}", output_text(&out));
    let guard = ClusterObject(format!("clusterrole/{name}"));
    kubectl_ok(&[
        "create",
        "rolebinding",
        &format!("{builtin}-{user}"),
        "-n",
        ns,
        &format!("--clusterrole={name}"),
        &format!("--user={user}"),
    ]);
    (guard, rules)
}

#[test]
fn aggregated_roles_give_namespace_users_runs_but_never_status() {
    let ns = TestNamespace::new("chart-users");
    let other = TestNamespace::new("chart-users-other");
    let n = ns.name();
    let release = Release {
        name: format!("cbu-{}", support::random_suffix(5)),
        namespace: n.to_owned(),
    };
    let notes = helm_ok(&[
        "install",
        &release.name,
        CHART,
        "-n",
        n,
        "--set",
        &format!("watchNamespaces={{{n}}}"),
        "--set",
        "aggregatedRoles.enabled=true",
    ]);
    let fullname = format!("{}-codebuild-operator", release.name);
    assert!(
        notes.contains(&format!(
            "ClusterRoles {fullname}-view and -edit. Neither may write status."
        )),
        "{notes}"
    );

    // The installed roles carry exactly the labels the cluster's built-in roles select by.
    for (role, builtin) in [("view", "view"), ("edit", "edit"), ("edit", "admin")] {
        let selector = kubectl_ok(&[
            "get",
            &format!("clusterrole/{builtin}"),
            "-o",
            "jsonpath={.aggregationRule.clusterRoleSelectors[0].matchLabels}",
        ]);
        let selector: serde_json::Map<String, Value> =
            serde_json::from_str(&selector).expect("matchLabels JSON");
        let labels = kubectl_ok(&[
            "get",
            &format!("clusterrole/{fullname}-{role}"),
            "-o",
            "jsonpath={.metadata.labels}",
        ]);
        let labels: Value = serde_json::from_str(&labels).expect("labels JSON");
        for (k, v) in &selector {
            assert_eq!(
                &labels[k], v,
                "{fullname}-{role} is aggregated into {builtin}"
            );
        }
    }

    let suffix = support::random_suffix(5);
    let viewer = format!("e2e-viewer-{suffix}");
    let editor = format!("e2e-editor-{suffix}");
    let (_view_guard, view_rules) = bind_aggregated("view", &viewer, n);
    let (_edit_guard, edit_rules) = bind_aggregated("edit", &editor, n);
    // What aggregation put in: our rules, and nothing on the status subresource.
    for rules in [&view_rules, &edit_rules] {
        assert!(
            rules
                .iter()
                .any(|r| r["resources"] == json!(["codebuildruns", "codebuildbatchruns"])),
            "{rules:?}"
        );
        let text = serde_json::to_string(rules).expect("JSON");
        assert!(
            !text.contains("codebuildruns/") && !text.contains("codebuildbatchruns/"),
            "a subresource rule: {text}"
        );
        assert!(!text.contains("codebuildrunpolicies"), "{text}");
    }

    let status = "--subresource=status";
    let finalizers = "--subresource=finalizers";
    let o = other.name();
    for verb in ["get", "list", "watch"] {
        assert!(
            can(&viewer, &[verb, BATCHES, "-n", n]),
            "view may {verb} batch runs"
        );
        assert!(can(&viewer, &[verb, RUNS, "-n", n]), "view may {verb} runs");
        assert!(can(&editor, &[verb, RUNS, "-n", n]), "edit may {verb} runs");
        assert!(!can(&viewer, &[verb, RUNS, "-n", o]), "only in {n}");
        assert!(!can(&viewer, &[verb, POLICIES]), "view: no policies");
        assert!(!can(&editor, &[verb, POLICIES]), "edit: no policies");
    }
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            can(&editor, &[verb, BATCHES, "-n", n]),
            "edit may {verb} batch runs"
        );
        assert!(can(&editor, &[verb, RUNS, "-n", n]), "edit may {verb} runs");
        assert!(!can(&viewer, &[verb, RUNS, "-n", n]), "view may not {verb}");
        assert!(!can(&editor, &[verb, RUNS, "-n", o]), "only in {n}");
        assert!(!can(&editor, &[verb, POLICIES]), "edit: no policies");
    }
    for user in [&viewer, &editor] {
        for verb in ["get", "update", "patch"] {
            assert!(
                !can(user, &[verb, RUNS, status, "-n", n]),
                "{user} may not {verb} codebuildruns/status"
            );
            assert!(
                !can(user, &[verb, BATCHES, status, "-n", n]),
                "{user} may not {verb} codebuildbatchruns/status"
            );
        }
        assert!(!can(user, &["update", RUNS, finalizers, "-n", n]));
    }

    // And for real: the editor creates a run and cannot write its status, neither through
    // the subresource (forbidden) nor through the object (the apiserver drops it).
    let run = support::run_manifest("users-run", json!({"projectName": "demo"}));
    let out = kubectl_stdin(&["create", "-n", n, "--as", &viewer, "-f", "-"], &run);
    assert!(
        !out.status.success() && output_text(&out).contains("forbidden"),
        "view created a run: {}",
        output_text(&out)
    );
    let out = kubectl_stdin(&["create", "-n", n, "--as", &editor, "-f", "-"], &run);
    assert!(out.status.success(), "edit: {}", output_text(&out));
    let forged = r#"{"status":{"buildStatus":"SUCCEEDED","startAttempt":{"idempotencyToken":"x","time":"2026-01-01T00:00:00Z","region":"us-east-1","roleArn":"arn:aws:iam::123456789012:role/another-tenant"}}}"#;
    let out = kubectl(&[
        "patch",
        "codebuildrun/users-run",
        "-n",
        n,
        "--as",
        &editor,
        status,
        "--type=merge",
        "-p",
        forged,
    ]);
    assert!(
        !out.status.success() && output_text(&out).contains("forbidden"),
        "edit patched status: {}",
        output_text(&out)
    );
    let out = kubectl(&[
        "patch",
        "codebuildrun/users-run",
        "-n",
        n,
        "--as",
        &editor,
        "--type=merge",
        "-p",
        forged,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let seen = kubectl_ok(&[
        "get",
        "codebuildrun/users-run",
        "-n",
        n,
        "--as",
        &viewer,
        "-o",
        "jsonpath={.status}",
    ]);
    // The CRD defaults status to {}; nothing of the forged status may be in it.
    assert_eq!(seen, "{}", "status written through the object: {seen}");
}

// ---- the schema ---------------------------------------------------------------------------

#[test]
fn wrong_types_for_the_new_values_are_refused_with_clear_messages() {
    let too_long = format!("fullnameOverride=f{}", "x".repeat(55));
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--set", "nameOverride=Bad_Name"],
            &["'/nameOverride'", "does not match pattern"],
        ),
        (
            vec!["--set-json", "nameOverride=1"],
            &["'/nameOverride'", "got number, want string"],
        ),
        (
            vec!["--set", &too_long],
            &["'/fullnameOverride'", "maxLength: got 56, want 55"],
        ),
        (
            vec!["--set-json", "podSecurityContext=[]"],
            &["'/podSecurityContext'", "got array, want object"],
        ),
        (
            vec!["--set", "podSecurityContext.runAsUser=root"],
            &[
                "'/podSecurityContext/runAsUser'",
                "got string, want integer",
            ],
        ),
        (
            vec!["--set", "podSecurityContext.runAsUsr=1000"],
            &[
                "'/podSecurityContext'",
                "additional properties 'runAsUsr' not allowed",
            ],
        ),
        (
            vec!["--set-json", "securityContext=true"],
            &["'/securityContext'", "got boolean, want object"],
        ),
        (
            vec!["--set", "securityContext.readOnlyRootFilesystem=yes"],
            &[
                "'/securityContext/readOnlyRootFilesystem'",
                "got string, want boolean",
            ],
        ),
        (
            vec!["--set-json", r#"extraEnv={"name":"A"}"#],
            &["'/extraEnv'", "got object, want array"],
        ),
        (
            vec![
                "--set",
                "extraEnv[0].name=A",
                "--set",
                "extraEnv[0].value=1",
            ],
            &["'/extraEnv/0/value'", "got number, want string"],
        ),
        (
            vec!["--set-json", r#"extraVolumes="ca""#],
            &["'/extraVolumes'", "got string, want array"],
        ),
        (
            vec![
                "--set-json",
                r#"extraVolumes=[{"configMap":{"name":"ca"}}]"#,
            ],
            &["'/extraVolumes/0'", "missing property 'name'"],
        ),
        (
            vec!["--set-json", "extraVolumeMounts={}"],
            &["'/extraVolumeMounts'", "got object, want array"],
        ),
        (
            vec!["--set-json", r#"extraVolumeMounts=[{"name":"ca"}]"#],
            &["'/extraVolumeMounts/0'", "missing property 'mountPath'"],
        ),
        (
            vec![
                "--set-json",
                r#"extraVolumeMounts=[{"name":"ca","mountPath":"/ca","readOnly":"yes"}]"#,
            ],
            &[
                "'/extraVolumeMounts/0/readOnly'",
                "got string, want boolean",
            ],
        ),
        (
            vec!["--set-json", "podAnnotations=[]"],
            &["'/podAnnotations'", "got array, want object"],
        ),
        (
            vec!["--set", "podLabels.team=1"],
            &["'/podLabels/team'", "got number, want string"],
        ),
        (
            vec!["--set", "priorityClassName=7"],
            &["'/priorityClassName'", "got number, want string"],
        ),
        (
            vec!["--set-json", "topologySpreadConstraints={}"],
            &["'/topologySpreadConstraints'", "got object, want array"],
        ),
        (
            vec![
                "--set-json",
                r#"topologySpreadConstraints=[{"maxSkew":"one","topologyKey":"zone","whenUnsatisfiable":"ScheduleAnyway"}]"#,
            ],
            &[
                "'/topologySpreadConstraints/0/maxSkew'",
                "got string, want integer",
            ],
        ),
        (
            vec!["--set-json", "affinity=[]"],
            &["'/affinity'", "got array, want object"],
        ),
        (
            vec!["--set", "metrics.serviceMonitor.interval=30"],
            &[
                "'/metrics/serviceMonitor/interval'",
                "got number, want string",
            ],
        ),
        (
            vec!["--set-json", "metrics.serviceMonitor.relabelings={}"],
            &[
                "'/metrics/serviceMonitor/relabelings'",
                "got object, want array",
            ],
        ),
        (
            vec![
                "--set-json",
                r#"metrics.serviceMonitor.metricRelabelings=[{"sourceLabels":"__name__"}]"#,
            ],
            &[
                "'/metrics/serviceMonitor/metricRelabelings/0/sourceLabels'",
                "got string, want array",
            ],
        ),
        (
            vec![
                "--set-json",
                r#"metrics.serviceMonitor.relabelings=[{"action":"explode"}]"#,
            ],
            &[
                "'/metrics/serviceMonitor/relabelings/0/action'",
                "value must be one of 'replace'",
            ],
        ),
        (
            vec!["--set", "aggregatedRoles.enabled=yes"],
            &["'/aggregatedRoles/enabled'", "got string, want boolean"],
        ),
        (
            vec!["--set", "aggregatedRoles=true"],
            &["'/aggregatedRoles'", "got boolean, want object"],
        ),
        (
            vec!["--set", "aggregatedRoles.view=true"],
            &[
                "'/aggregatedRoles'",
                "additional properties 'view' not allowed",
            ],
        ),
    ];
    for (extra, messages) in cases {
        let out = template_chart(CHART, "default", &extra);
        let text = output_text(&out);
        assert!(!out.status.success(), "{extra:?} should be refused");
        assert!(
            text.contains("values don't meet the specifications of the schema"),
            "{extra:?}: refused by the schema, not later:\n{text}"
        );
        for message in messages {
            assert!(
                text.contains(message),
                "{extra:?}: expected {message:?} in:\n{text}"
            );
        }
    }
}

/// Every value in a values file using all the new ones at once lints clean (strict).
#[test]
fn helm_lint_is_clean_with_every_new_value() {
    let dir = scratch_dir("lint");
    let values = dir.join("real-cluster.yaml");
    std::fs::write(
        &values,
        r#"
fullnameOverride: codebuild
replicas: 2
podAnnotations: {example.com/owner: platform}
podLabels: {team: platform}
priorityClassName: platform-critical
podSecurityContext: {runAsUser: null, runAsGroup: null, fsGroup: 2000}
securityContext: {runAsUser: null}
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
extraEnv:
  - {name: SSL_CERT_FILE, value: /etc/codebuild-operator/ca/ca-bundle.crt}
extraVolumes:
  - {name: ca-bundle, configMap: {name: corporate-ca-bundle}}
extraVolumeMounts:
  - {name: ca-bundle, mountPath: /etc/codebuild-operator/ca, readOnly: true}
aggregatedRoles: {enabled: true}
metrics:
  serviceMonitor:
    enabled: true
    interval: 1m
    relabelings:
      - {sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: node}
    metricRelabelings:
      - {sourceLabels: [__name__], regex: go_.*, action: drop}
"#,
    )
    .expect("writing the values file");
    let values = values.to_string_lossy().into_owned();
    let out = helm_ok(&[
        "lint",
        "--strict",
        CHART,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        &values,
    ]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    helm_ok(&["lint", "--strict", CHART, "--kube-version", KUBE_VERSION]);
}

// ---- the package, its CRDs, the Kubernetes floor ------------------------------------------

/// The CRD files of the chart, by name.
fn chart_crds() -> Vec<(String, String)> {
    let dir = support::repo_root().join(CHART).join("crds");
    let mut crds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("reading a CRD");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    crds.sort();
    crds
}

#[test]
fn the_packaged_chart_installs_and_shows_both_crds() {
    let ns = TestNamespace::new("chart-package");
    let n = ns.name();
    let dir = scratch_dir("package");
    let dir_str = dir.to_string_lossy().into_owned();
    helm_ok(&["package", CHART, "--destination", &dir_str]);
    let packages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reading the package directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    assert_eq!(packages.len(), 1, "{packages:?}");
    let tgz = packages[0].to_string_lossy().into_owned();
    let chart_yaml = helm_ok(&["show", "chart", &tgz]);
    let version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("a version in Chart.yaml")
        .trim()
        .to_owned();
    assert!(
        tgz.ends_with(&format!("codebuild-operator-{version}.tgz")),
        "{tgz}"
    );

    // The three CRDs, exactly as in crds/, each named in the Artifact Hub annotation.
    let crds = helm_ok(&["show", "crds", &tgz]);
    let files = chart_crds();
    assert_eq!(files.len(), 3, "{files:?}");
    for (file, text) in &files {
        assert!(crds.contains(text.trim()), "helm show crds lacks {file}");
    }
    assert_eq!(crds.matches("kind: CustomResourceDefinition").count(), 3);
    for (kind, name) in [
        ("CodeBuildRun", RUNS),
        ("CodeBuildBatchRun", BATCHES),
        ("CodeBuildRunPolicy", POLICIES),
    ] {
        assert!(crds.contains(&format!("name: {name}\n")), "{name}");
        assert!(crds.contains(&format!("kind: {kind}\n")), "{kind}");
        let annotation = chart_yaml
            .split("artifacthub.io/crds:")
            .nth(1)
            .expect("the artifacthub.io/crds annotation");
        assert!(
            annotation.contains(&format!("kind: {kind}\n"))
                && annotation.contains(&format!("name: {name}\n")),
            "artifacthub.io/crds lacks {kind}:\n{chart_yaml}"
        );
    }

    // The generated README ships in the package; its template does not.
    let readme = helm_ok(&["show", "readme", &tgz]);
    let committed = std::fs::read_to_string(support::repo_root().join(CHART).join("README.md"))
        .expect("reading the chart README");
    assert_eq!(readme.trim(), committed.trim());
    let listing = Command::new("tar")
        .args(["-tzf", &tgz])
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("codebuild-operator/values.schema.json"));
    assert!(!listing.contains("README.md.gotmpl"), "{listing}");

    helm_ok(&["lint", "--strict", &tgz, "--kube-version", KUBE_VERSION]);

    // Installs from the package: a server-side dry run, then for real.
    let release = Release {
        name: format!("cbk-{}", support::random_suffix(5)),
        namespace: n.to_owned(),
    };
    let scoped = format!("watchNamespaces={{{n}}}");
    helm_ok(&[
        "install",
        &release.name,
        &tgz,
        "-n",
        n,
        "--set",
        &scoped,
        "--dry-run=server",
    ]);
    let notes = helm_ok(&["install", &release.name, &tgz, "-n", n, "--set", &scoped]);
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    let label = kubectl_ok(&[
        "get",
        &format!("deployment/{}-codebuild-operator", release.name),
        "-n",
        n,
        "-o",
        "jsonpath={.metadata.labels.helm\\.sh/chart}",
    ]);
    assert_eq!(label, format!("codebuild-operator-{version}"));
    let status = helm_ok(&["status", &release.name, "-n", n]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    // Both CRDs are served (the harness applied crds/; Helm skips CRDs that exist).
    for crd in [RUNS, POLICIES] {
        kubectl_ok(&["get", &format!("crd/{crd}")]);
    }
}

#[test]
fn rendering_below_the_kube_version_floor_says_what_to_do() {
    let ns = TestNamespace::new("chart-floor");
    let n = ns.name();
    let floor = format!("needs Kubernetes {KUBE_FLOOR} or newer");

    // No --kube-version: Helm renders for the version built into it, below the floor here
    // (v1.20.0 in a build from source), and the message says what to pass.
    let out = helm(&["template", RELEASE, CHART, "-n", n]);
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "rendered without --kube-version:\n{text}"
    );
    for needle in [
        floor.as_str(),
        "`helm template`, `helm lint` and `--dry-run=client` ask no cluster",
        "--kube-version 1.33.0",
    ] {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }

    let out = helm(&[
        "template",
        RELEASE,
        CHART,
        "-n",
        n,
        "--kube-version",
        "1.32.9",
    ]);
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains(&floor), "{text}");
    assert!(
        text.contains("this render is for Kubernetes v1.32.9"),
        "{text}"
    );

    helm_ok(&[
        "template",
        RELEASE,
        CHART,
        "-n",
        n,
        "--kube-version",
        KUBE_FLOOR,
    ]);
    // Against a cluster Helm uses the cluster's version (the local control plane's, 1.36).
    helm_ok(&["install", RELEASE, CHART, "-n", n, "--dry-run=server"]);
    helm_ok(&["template", RELEASE, CHART, "-n", n, "--validate"]);
}

// ---- the chart README ---------------------------------------------------------------------

#[test]
fn the_chart_readme_is_generated_from_values_and_has_not_drifted() {
    let root = support::repo_root();
    // flock: test processes started side by side build helm-docs once.
    let lock = root.join("target/chart-readme.lock");
    let out = Command::new("flock")
        .arg(&lock)
        .arg(root.join("hack/chart-readme.sh"))
        .arg("check")
        .current_dir(root)
        .output()
        .expect("running hack/chart-readme.sh check");
    assert!(
        out.status.success(),
        "the chart README drifted from values.yaml; regenerate it with \
         `hack/chart-readme.sh generate`:\n{}",
        output_text(&out)
    );

    // Every value is documented (helm-docs lists a value without a `# --` comment with an
    // empty description) and typed and described in the schema.
    let readme = std::fs::read_to_string(root.join(CHART).join("README.md")).expect("README");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(CHART).join("values.schema.json")).expect("schema"),
    )
    .expect("values.schema.json parses");
    let mut keys = BTreeSet::new();
    for row in readme.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
        if cells[0] == "| Key" {
            continue;
        }
        let key = cells[0].trim_start_matches("| ");
        let description = cells.last().map(|d| d.trim_end_matches('|').trim());
        assert!(
            description.is_some_and(|d| !d.is_empty()),
            "{key} has no `# --` description in values.yaml"
        );
        let mut node = &schema;
        for part in key.split('.') {
            node = &node["properties"][part];
        }
        assert!(node.get("type").is_some(), "{key}: no type in the schema");
        assert!(
            node.get("description").is_some(),
            "{key}: no description in the schema"
        );
        keys.insert(key.to_owned());
    }
    for key in [
        "nameOverride",
        "fullnameOverride",
        "podSecurityContext",
        "securityContext",
        "extraEnv",
        "extraVolumes",
        "extraVolumeMounts",
        "podAnnotations",
        "podLabels",
        "priorityClassName",
        "topologySpreadConstraints",
        "affinity",
        "aggregatedRoles.enabled",
        "metrics.serviceMonitor.interval",
        "metrics.serviceMonitor.relabelings",
        "metrics.serviceMonitor.metricRelabelings",
    ] {
        assert!(keys.contains(key), "the README lists no {key}");
    }
}
