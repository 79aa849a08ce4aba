//! End to end, tenancy: the operator binary with `--enforce-policies` on a real
//! kube-apiserver, the CodeBuild simulator, and moto's STS for tenant roles.
//!
//! - runs in two namespaces under two CodeBuildRunPolicies: allowed ones start, refused ones
//!   are Stalled with reason PolicyDenied, the policy gap in the message and a Warning Event,
//!   and nothing is started for them; a policy change starts a refused run;
//! - each override rule (member not allowed, member denied, value rules);
//! - each namespace's builds are started, watched and stopped with its policy's role;
//! - no secret (PLAINTEXT value, credentials) shows in status, Events, logs or metrics, and a
//!   secret-looking PLAINTEXT variable gets a Warning Event.
//!
//! Policies are cluster-scoped: every policy here selects namespaces by a label key unique
//! to the test, so tests running side by side never grant each other anything.

mod policy_cases;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use codebuild_operator::api::{CodeBuildRun, CodeBuildRunPolicy, CodeBuildRunSpec};
use codebuild_operator::policy::{Decision, RunRequest, evaluate};
use codebuild_sim::{Server, SimConfig};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use policy_cases::{every_member_allowed, every_rule_refusals, every_rule_spec, project_with};
use serde_json::{Value, json};
use support::moto::start_moto;
use support::{
    API_VERSION, OperatorProcess, TestNamespace, condition, free_port, http_get, kubectl_ok,
    kubectl_stdin, output_text, random_suffix, request_marker,
};

const POLL: Duration = Duration::from_millis(250);
const WAIT: Duration = Duration::from_secs(60);

// ---- environment ---------------------------------------------------------------------------

/// Cluster-scoped policies of one test, deleted on drop.
struct PolicySet {
    api: Api<CodeBuildRunPolicy>,
    names: Vec<String>,
}

impl PolicySet {
    async fn new() -> PolicySet {
        PolicySet {
            api: Api::all(support::client().await),
            names: Vec::new(),
        }
    }

    /// Creates (or replaces) the policy `name` with `spec`; returns it as stored.
    async fn apply(&mut self, name: &str, spec: Value) -> CodeBuildRunPolicy {
        let policy = json!({
            "apiVersion": API_VERSION, "kind": "CodeBuildRunPolicy",
            "metadata": {"name": name}, "spec": spec,
        });
        let stored = self
            .api
            .patch(
                name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&policy),
            )
            .await
            .unwrap_or_else(|e| panic!("applying CodeBuildRunPolicy {name}: {e}"));
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
        stored
    }
}

impl Drop for PolicySet {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = support::kubectl(&["delete", "codebuildrunpolicy", name, "--wait=false"]);
        }
    }
}

/// A namespace labelled `<key>=<value>` (the key is unique to the test).
fn labelled_namespace(prefix: &str, key: &str, value: &str) -> TestNamespace {
    let ns = TestNamespace::new(prefix);
    kubectl_ok(&["label", "namespace", ns.name(), &format!("{key}={value}")]);
    ns
}

fn selector(key: &str, value: &str) -> Value {
    json!({"matchLabels": {key: value}})
}

/// `kubectl create -f -` of a run, as a user would.
fn create_run(ns: &str, name: &str, spec: Value) {
    let manifest = support::run_manifest(name, spec);
    let out = kubectl_stdin(&["create", "-n", ns, "-f", "-"], &manifest);
    assert!(
        out.status.success(),
        "kubectl create refused:\n{manifest}\n{}",
        output_text(&out)
    );
}

async fn wait_condition(
    runs: &Api<CodeBuildRun>,
    name: &str,
    type_: &str,
    status: &str,
) -> CodeBuildRun {
    support::wait_for_async(
        &format!("cbr/{name}: {type_}={status}"),
        WAIT,
        POLL,
        || async {
            runs.get_opt(name)
                .await
                .ok()
                .flatten()
                .filter(|run| condition(run, type_).is_some_and(|c| c.status == status))
        },
    )
    .await
}

/// What the library decides for a run of `spec` in `namespace` (labels `labels`) under
/// `policies`: the expected message of a refusal.
fn expected_denial(
    namespace: &str,
    labels: &[(&str, &str)],
    spec: &Value,
    policies: &[&CodeBuildRunPolicy],
) -> String {
    let spec: CodeBuildRunSpec = serde_json::from_value(spec.clone()).expect("a valid spec");
    let mut all_labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all_labels.insert("kubernetes.io/metadata.name".into(), namespace.into());
    all_labels.insert(
        support::NAMESPACE_LABEL.0.into(),
        support::NAMESPACE_LABEL.1.into(),
    );
    let region = spec
        .operator
        .as_ref()
        .and_then(|o| o.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let request = RunRequest {
        namespace,
        region: &region,
        spec: &spec,
    };
    match evaluate(&request, &all_labels, policies) {
        Decision::Denied { message } => message,
        other => panic!("expected the library to refuse {spec:?}, it says {other:?}"),
    }
}

/// Asserts that the run is refused with `message`: Stalled=True, Succeeded=False and
/// Ready=False with reason PolicyDenied, a Warning Event with the same note, no build.
async fn assert_refused(client: &kube::Client, ns: &str, name: &str, message: &str) {
    let runs: Api<CodeBuildRun> = Api::namespaced(client.clone(), ns);
    let run = wait_condition(&runs, name, "Stalled", "True").await;
    for type_ in ["Stalled", "Succeeded", "Ready"] {
        let c = condition(&run, type_).unwrap_or_else(|| panic!("{name}: no {type_}"));
        assert_eq!(c.reason, "PolicyDenied", "{name} {type_}: {c:?}");
        assert_eq!(c.message, message, "{name} {type_}");
    }
    assert_eq!(condition(&run, "Succeeded").unwrap().status, "False");
    let status = run.status.clone().unwrap_or_default();
    assert!(status.build.build_id.is_none(), "{name}: {status:?}");
    assert!(status.start_attempt.is_none(), "{name}: {status:?}");
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    support::wait_for_async(
        &format!("a PolicyDenied Event for {name}"),
        WAIT,
        POLL,
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.reason.as_deref() == Some("PolicyDenied")
                })
                .map(|e| {
                    assert_eq!(e.type_.as_deref(), Some("Warning"));
                    assert_eq!(e.note.as_deref(), Some(message));
                })
        },
    )
    .await;
}

/// The uids of the runs the simulator was asked to start builds for.
fn started_uids(sim: &Server) -> Vec<String> {
    sim.state()
        .starts()
        .iter()
        .filter_map(|s| request_marker(&s.request).map(str::to_owned))
        .collect()
}

async fn uid(runs: &Api<CodeBuildRun>, name: &str) -> String {
    runs.get(name).await.unwrap().metadata.uid.unwrap()
}

/// A run that must be refused: namespace, its labels, name, spec.
type RefusedCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, Value);

// ---- tests ---------------------------------------------------------------------------------

/// Two namespaces, two policies: what each may start, and every way a run is refused.
#[tokio::test(flavor = "multi_thread")]
async fn policies_decide_who_starts_what() {
    let key = format!("e2e-tenant-{}", random_suffix(6));
    let ns_a = labelled_namespace("pol-a", &key, "a");
    let ns_b = labelled_namespace("pol-b", &key, "b");
    let ns_c = TestNamespace::new("pol-none"); // no policy selects it
    let (a, b, c) = (ns_a.name(), ns_b.name(), ns_c.name());
    let sim = Server::start(SimConfig {
        phase_seconds: 0.2,
        projects: ["team-a-web", "team-a-api", "team-b-web", "shared-lib"]
            .map(String::from)
            .to_vec(),
        ..SimConfig::default()
    })
    .await
    .expect("starting the CodeBuild simulator");

    let suffix = random_suffix(6);
    let (pa_name, pb_name) = (format!("team-a-{suffix}"), format!("team-b-{suffix}"));
    let mut policies = PolicySet::new().await;
    let pa_spec = json!({
        "namespaceSelector": selector(&key, "a"),
        "projects": ["team-a-*"],
        "regions": ["us-*"],
        "overrides": {
            "allowed": ["sourceVersion", "environmentVariablesOverride", "imageOverride",
                        "sourceLocationOverride", "secondarySourcesOverride"],
            "images": ["aws/codebuild/standard:*"],
            "sourceLocations": ["https://github.com/team-a/*"],
        },
    });
    let mut pa = policies.apply(&pa_name, pa_spec.clone()).await;
    let pb = policies
        .apply(
            &pb_name,
            json!({
                "namespaceSelector": selector(&key, "b"),
                "projects": ["team-b-*", "shared-*"],
                "overrides": {
                    "allowed": ["*"],
                    "denied": ["buildspecOverride", "privilegedModeOverride"],
                    "serviceRoles": ["arn:aws:iam::123456789012:role/ci-*"],
                },
            }),
        )
        .await;

    let _op = OperatorProcess::start(
        a,
        &sim.endpoint(),
        &[
            "--namespaces",
            &format!("{a},{b},{c}"),
            "--enforce-policies",
        ],
    );
    let client = support::client().await;
    let runs_a: Api<CodeBuildRun> = Api::namespaced(client.clone(), a);
    let runs_b: Api<CodeBuildRun> = Api::namespaced(client.clone(), b);
    let runs_c: Api<CodeBuildRun> = Api::namespaced(client.clone(), c);

    // Allowed.
    create_run(
        a,
        "ok",
        json!({"projectName": "team-a-web", "sourceVersion": "main",
               "imageOverride": "aws/codebuild/standard:7.0",
               "secondarySourcesOverride": [{"type": "GITHUB", "sourceIdentifier": "lib",
                                             "location": "https://github.com/team-a/lib"}]}),
    );
    create_run(
        b,
        "ok",
        json!({"projectName": "shared-lib", "imageOverride": "anything:latest",
               "serviceRoleOverride": "arn:aws:iam::123456789012:role/ci-shared"}),
    );
    // Refused, one gap each.
    let labels_a = [(key.as_str(), "a")];
    let labels_b = [(key.as_str(), "b")];
    let refused: Vec<RefusedCase<'_>> = vec![
        (
            a,
            &labels_a,
            "other-team",
            json!({"projectName": "team-b-web"}),
        ),
        (
            a,
            &labels_a,
            "other-region",
            json!({"projectName": "team-a-web", "operator": {"region": "eu-west-1"}}),
        ),
        (
            a,
            &labels_a,
            "buildspec",
            json!({"projectName": "team-a-api", "buildspecOverride": "version: 0.2"}),
        ),
        (
            a,
            &labels_a,
            "image",
            json!({"projectName": "team-a-web", "imageOverride": "evil/miner:latest"}),
        ),
        (
            a,
            &labels_a,
            "source",
            json!({"projectName": "team-a-web",
                   "sourceLocationOverride": "https://github.com/attacker/repo"}),
        ),
        (
            a,
            &labels_a,
            "secondary",
            json!({"projectName": "team-a-web",
                   "secondarySourcesOverride": [{"type": "GITHUB", "sourceIdentifier": "x",
                                                 "location": "https://evil.example/x"}]}),
        ),
        (
            b,
            &labels_b,
            "privileged",
            json!({"projectName": "team-b-web", "privilegedModeOverride": true}),
        ),
        (
            b,
            &labels_b,
            "role",
            json!({"projectName": "team-b-web",
                   "serviceRoleOverride": "arn:aws:iam::123456789012:role/admin"}),
        ),
        (c, &[], "nobody", json!({"projectName": "shared-lib"})),
    ];
    for (ns, _, name, spec) in &refused {
        create_run(ns, name, spec.clone());
    }

    for (runs, name) in [(&runs_a, "ok"), (&runs_b, "ok")] {
        wait_condition(runs, name, "Succeeded", "True").await;
    }
    for (ns, labels, name, spec) in &refused {
        let message = expected_denial(ns, labels, spec, &[&pa, &pb]);
        assert_refused(&client, ns, name, &message).await;
    }
    // The wording, for the record (the library computed the messages above).
    let other_team = runs_a.get("other-team").await.unwrap();
    assert_eq!(
        condition(&other_team, "Stalled").unwrap().message,
        format!(
            "no CodeBuildRunPolicy lets namespace \"{a}\" start project \"team-b-web\" in region \
             \"us-east-1\" (policies for this namespace: {pa_name})"
        )
    );
    let nobody = runs_c.get("nobody").await.unwrap();
    assert_eq!(
        condition(&nobody, "Stalled").unwrap().message,
        format!("no CodeBuildRunPolicy grants namespace \"{c}\"")
    );
    // Only the two allowed runs were started, each once.
    let mut expected = vec![uid(&runs_a, "ok").await, uid(&runs_b, "ok").await];
    let mut started = started_uids(&sim);
    expected.sort();
    started.sort();
    assert_eq!(started, expected, "StartBuild only for the allowed runs");
    // `kubectl wait` sees the refusal.
    kubectl_ok(&[
        "wait",
        "--for=condition=Stalled",
        "cbr/buildspec",
        "-n",
        a,
        "--timeout=30s",
    ]);

    // The policy now allows buildspecOverride: the refused run starts without being touched.
    let mut spec = pa_spec.clone();
    spec["overrides"]["allowed"]
        .as_array_mut()
        .unwrap()
        .push("buildspecOverride".into());
    pa = policies.apply(&pa_name, spec).await;
    let run = wait_condition(&runs_a, "buildspec", "Succeeded", "True").await;
    assert_eq!(condition(&run, "Stalled").unwrap().status, "False");
    let attempt = run.status.unwrap().start_attempt.expect("a start attempt");
    assert_eq!(attempt.policy.as_deref(), Some(pa_name.as_str()));
    assert_eq!(attempt.role_arn, None);
    // ... and the others stay refused.
    let image = runs_a.get("image").await.unwrap();
    assert_eq!(condition(&image, "Stalled").unwrap().status, "True");
    assert_eq!(started_uids(&sim).len(), 3);
    // A namespace label change grants namespace c the policy of team b.
    kubectl_ok(&["label", "namespace", c, &format!("{key}=b")]);
    wait_condition(&runs_c, "nobody", "Succeeded", "True").await;
    assert_eq!(started_uids(&sim).len(), 4);
    drop(pa);
    drop(policies);
}

/// Each namespace's builds are started, watched and stopped with its policy's IAM role
/// (moto's STS issues the credentials; the simulator records the access key of every
/// StartBuild), and nothing secret leaks into status, Events, logs or metrics.
/// A run created with the start-attempt annotation earlier operator versions wrote, as a
/// tenant could forge it (the admission policy is off here: the operator is the authority).
fn create_forged_run(ns: &str, name: &str, spec: Value, attempt: Value) {
    let manifest = json!({
        "apiVersion": API_VERSION, "kind": "CodeBuildRun",
        "metadata": {"name": name, "annotations": {
            "codebuild.operator.dev/start-attempt": attempt.to_string()}},
        "spec": spec,
    });
    let out = kubectl_stdin(&["create", "-n", ns, "-f", "-"], &manifest.to_string());
    assert!(out.status.success(), "{}", output_text(&out));
}

/// Waits for a Warning Event `reason` about run `name`.
async fn wait_warning(client: &kube::Client, ns: &str, name: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    support::wait_for_async(
        &format!("a {reason} Event for {name}"),
        WAIT,
        POLL,
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some("Warning")
            })
        },
    )
    .await
}

/// A tenant who forges the start-attempt annotation (a fresh or an old time, with or without
/// another tenant's role) gets no build the policies refuse, and an allowed run still starts
/// only as the identity the policies grant, with its own token.
#[tokio::test(flavor = "multi_thread")]
async fn forged_start_attempts_never_start_what_the_policies_refuse() {
    let key = format!("e2e-forged-{}", random_suffix(6));
    let ns = labelled_namespace("forged", &key, "a");
    let sim = Server::start(SimConfig {
        phase_seconds: 0.2,
        projects: vec!["allowed".into(), "forbidden".into()],
        ..SimConfig::default()
    })
    .await
    .expect("starting the CodeBuild simulator");
    let mut policies = PolicySet::new().await;
    let policy = policies
        .apply(
            &format!("forged-{}", random_suffix(6)),
            json!({"namespaceSelector": selector(&key, "a"), "projects": ["allowed"]}),
        )
        .await;
    let _op = OperatorProcess::start(ns.name(), &sim.endpoint(), &["--enforce-policies"]);
    let client = support::client().await;
    let runs: Api<CodeBuildRun> = Api::namespaced(client.clone(), ns.name());

    let foreign = "arn:aws:iam::222222222222:role/another-tenant";
    let fresh = k8s_openapi::jiff::Timestamp::now().to_string();
    let old = "2020-01-01T00:00:00Z".to_owned();
    let forbidden = json!({"projectName": "forbidden", "buildspecOverride": "version: 0.2"});
    let cases = [
        ("fresh", &fresh, None),
        ("fresh-role", &fresh, Some(foreign)),
        ("old", &old, None),
        ("old-role", &old, Some(foreign)),
    ];
    for (name, time, role) in &cases {
        let mut attempt = json!({"idempotencyToken": format!("forged-{name}"), "time": time,
                                 "region": "us-east-1"});
        if let Some(role) = role {
            attempt["roleArn"] = json!(role);
        }
        create_forged_run(ns.name(), name, forbidden.clone(), attempt);
    }
    let allowed_attempt = json!({"idempotencyToken": "forged-allowed", "time": fresh,
                                 "region": "us-east-1", "roleArn": foreign});
    create_forged_run(
        ns.name(),
        "allowed",
        json!({"projectName": "allowed"}),
        allowed_attempt,
    );

    let labels = [(key.as_str(), "a")];
    let message = expected_denial(ns.name(), &labels, &forbidden, &[&policy]);
    for (name, _, _) in &cases {
        assert_refused(&client, ns.name(), name, &message).await;
        let warning = wait_warning(&client, ns.name(), name, "StartAttemptIgnored").await;
        assert!(
            warning
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("kubectl"),
            "{warning:?}"
        );
    }
    wait_condition(&runs, "allowed", "Succeeded", "True").await;
    let allowed_uid = uid(&runs, "allowed").await;
    assert_eq!(
        started_uids(&sim),
        vec![allowed_uid],
        "only the allowed run started a build"
    );
    let start = &sim.state().starts()[0];
    assert_eq!(
        start.access_key_id.as_deref(),
        Some("AKIDE2ETEST"),
        "as the operator's own identity (the policy names no role), never the forged role"
    );
    assert_ne!(start.idempotency_token.as_deref(), Some("forged-allowed"));
    let recorded = runs.get("allowed").await.unwrap().status.unwrap();
    assert_eq!(recorded.start_attempt.unwrap().role_arn, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_roles_and_secret_hygiene() {
    let key = format!("e2e-role-{}", random_suffix(6));
    let ns_a = labelled_namespace("role-a", &key, "a");
    let ns_b = labelled_namespace("role-b", &key, "b");
    let (a, b) = (ns_a.name(), ns_b.name());
    let moto = start_moto();
    let sim = Server::start(SimConfig {
        phase_seconds: 0.5,
        projects: vec!["app".into()],
        ..SimConfig::default()
    })
    .await
    .expect("starting the CodeBuild simulator");
    let suffix = random_suffix(6);
    let mut policies = PolicySet::new().await;
    for (team, account) in [("a", "111111111111"), ("b", "222222222222")] {
        policies
            .apply(
                &format!("role-{team}-{suffix}"),
                json!({
                    "namespaceSelector": selector(&key, team),
                    "projects": ["app"],
                    "overrides": {"allowed": ["environmentVariablesOverride", "sourceVersion"]},
                    "roleArn": format!("arn:aws:iam::{account}:role/builds-{team}"),
                }),
            )
            .await;
    }
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let op = OperatorProcess::start(
        a,
        &sim.endpoint(),
        &[
            "--namespaces",
            &format!("{a},{b}"),
            "--enforce-policies",
            "--sts-endpoint-url",
            &moto.endpoint(),
            "--metrics-address",
            &metrics_address,
        ],
    );
    let client = support::client().await;

    const PLAINTEXT_SECRET: &str = "ghp_e2eDoNotLeakThisValue0123456789";
    const PLAINTEXT_VALUE: &str = "plain-value-e2e-7f3a";
    const PARAMETER_NAME: &str = "/e2e/db-password-parameter";
    let spec = json!({
        "projectName": "app",
        "sourceVersion": "main",
        "environmentVariablesOverride": [
            {"name": "GITHUB_TOKEN", "value": PLAINTEXT_SECRET},
            {"name": "STAGE", "value": PLAINTEXT_VALUE, "type": "PLAINTEXT"},
            {"name": "DB_PASSWORD", "value": PARAMETER_NAME, "type": "PARAMETER_STORE"},
        ],
    });
    for ns in [a, b] {
        create_run(ns, "build", spec.clone());
        create_run(
            ns,
            "long",
            json!({"projectName": "app", "environmentVariablesOverride": [
            {"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": "60"}]}),
        );
    }
    for ns in [a, b] {
        let runs: Api<CodeBuildRun> = Api::namespaced(client.clone(), ns);
        wait_condition(&runs, "build", "Succeeded", "True").await;
        let long = support::wait_for_async("the long build to run", WAIT, POLL, || async {
            runs.get("long").await.ok().filter(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.build.build_id.is_some())
            })
        })
        .await;
        let attempt = long.status.unwrap().start_attempt.unwrap();
        let team = if ns == a { "a" } else { "b" };
        assert_eq!(
            attempt.role_arn.as_deref(),
            Some(
                format!(
                    "arn:aws:iam::{}:role/builds-{team}",
                    if team == "a" {
                        "111111111111"
                    } else {
                        "222222222222"
                    }
                )
                .as_str()
            )
        );
        // Deleting it stops its build, with the same role.
        runs.delete("long", &DeleteParams::default()).await.unwrap();
    }
    // Every StartBuild of a namespace was signed with credentials of its role.
    let starts = sim.state().starts();
    assert_eq!(starts.len(), 4, "{starts:?}");
    let mut uid_ns: BTreeMap<String, &str> = BTreeMap::new();
    for ns in [a, b] {
        let runs: Api<CodeBuildRun> = Api::namespaced(client.clone(), ns);
        uid_ns.insert(uid(&runs, "build").await, ns);
    }
    let mut keys_by_ns: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for start in &starts {
        let marker = request_marker(&start.request)
            .expect("the marker variable")
            .to_owned();
        // The long runs are deleted by now: their uids are the ones not in the map.
        let ns = match uid_ns.get(&marker) {
            Some(ns) => *ns,
            None => "deleted",
        };
        keys_by_ns
            .entry(ns)
            .or_default()
            .push(start.access_key_id.clone().expect("a signed StartBuild"));
    }
    assert_eq!(
        keys_by_ns.get("deleted").map(Vec::len),
        Some(2),
        "{keys_by_ns:?}"
    );
    for (ns, account, team) in [(a, "111111111111", "a"), (b, "222222222222", "b")] {
        let keys = &keys_by_ns[ns];
        assert_eq!(keys.len(), 1, "{keys_by_ns:?}");
        // The long run of the namespace used the same (cached) credentials.
        assert!(keys_by_ns["deleted"].contains(&keys[0]), "{keys_by_ns:?}");
        assert!(
            keys[0].starts_with("ASIA"),
            "temporary credentials: {keys:?}"
        );
        assert_eq!(
            moto.caller_arn(&keys[0]).await,
            format!("arn:aws:sts::{account}:assumed-role/builds-{team}/codebuild-operator.{ns}")
        );
    }
    // Deleting the long runs stopped their builds (StopBuild, made with each role).
    support::wait_for_async("both long builds stopped", WAIT, POLL, || async {
        let stopped = sim
            .state()
            .builds()
            .iter()
            .filter(|b| b["buildStatus"] == "STOPPED")
            .count();
        (stopped == 2).then_some(())
    })
    .await;

    // Secret hygiene: the secret-looking PLAINTEXT variable is warned about...
    let events: Api<Event> = Api::namespaced(client.clone(), a);
    support::wait_for_async("a PlaintextSecret Event", WAIT, POLL, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("PlaintextSecret"))
            .map(|e| {
                assert_eq!(e.type_.as_deref(), Some("Warning"));
                let note = e.note.unwrap_or_default();
                assert!(note.contains("GITHUB_TOKEN"), "{note}");
                assert!(note.contains("SECRETS_MANAGER"), "{note}");
                assert!(
                    !note.contains("STAGE"),
                    "STAGE does not look secret: {note}"
                );
                assert!(
                    !note.contains("DB_PASSWORD"),
                    "PARAMETER_STORE is fine: {note}"
                );
            })
    })
    .await;
    // ... and no value or credential appears in status, Events, the log or the metrics.
    let mut haystacks = Vec::new();
    for ns in [a, b] {
        let statuses = kubectl_ok(&[
            "get",
            "cbr",
            "-n",
            ns,
            "-o",
            "jsonpath={range .items[*]}{.status}{end}",
        ]);
        assert!(
            statuses.contains("buildId"),
            "statuses were read: {statuses}"
        );
        haystacks.push((format!("status in {ns}"), statuses));
        haystacks.push((
            format!("Events in {ns}"),
            kubectl_ok(&["get", "events", "-n", ns, "-o", "yaml"]),
        ));
    }
    haystacks.push(("the operator log".into(), op.log()));
    let metrics = match http_get(metrics_port, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    };
    haystacks.push(("the metrics".into(), metrics));
    let mut needles = vec![
        PLAINTEXT_SECRET.to_owned(),
        PLAINTEXT_VALUE.to_owned(),
        PARAMETER_NAME.to_owned(),
        // The operator's own secret key (support sets it) and the tenant keys.
        "e2e-secret".to_owned(),
    ];
    needles.extend(keys_by_ns.values().flatten().cloned());
    for (what, text) in &haystacks {
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "{what} contains the secret {needle:?}"
            );
        }
    }
    drop(policies);
}

/// The example policies are accepted by the apiserver, and a typo in a policy is refused
/// with the field named and the valid values listed.
#[test]
fn example_policies_are_accepted_and_typos_refused() {
    let example = support::repo_root().join("examples/tenancy/policies.yaml");
    let out = support::kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        example.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let typo = "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRunPolicy\nmetadata:\n  name: typo\nspec:\n  namespaceSelector: {}\n  projects: [app]\n  overrides:\n    allowed: [buildSpecOverride]\n";
    let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], typo);
    let text = output_text(&out);
    assert!(!out.status.success(), "a typo was accepted");
    assert!(
        text.contains("spec.overrides.allowed[0]: Unsupported value: \"buildSpecOverride\"")
            && text.contains("\"buildspecOverride\""),
        "{text}"
    );
    let no_projects = "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRunPolicy\nmetadata:\n  name: empty\nspec:\n  namespaceSelector: {}\n  projects: []\n";
    let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], no_projects);
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "a policy without projects was accepted"
    );
    assert!(text.contains("spec.projects"), "{text}");
}

// ---- side doors, at kubectl apply and in the operator --------------------------------------

/// The label that makes the test's binding check a run at admission; runs without it reach
/// the operator unchecked, so both deciders see the same run.
const CHECKED: (&str, &str) = ("e2e-admission-check", "on");

/// Deletes the binding and the admission policy of one test when dropped.
struct AdmissionObjects(String);

impl Drop for AdmissionObjects {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = support::kubectl(&[
                "delete",
                kind,
                &self.0,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
    }
}

/// Binds the admission policy `name` (which the operator writes) to the runs labelled
/// [`CHECKED`] in the namespaces labelled `key`.
fn bind_checked(name: &str, key: &str) -> AdmissionObjects {
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchExpressions": [{"key": key, "operator": "Exists"}]},
                "objectSelector": {"matchLabels": {CHECKED.0: CHECKED.1}},
            },
        },
    });
    let out = kubectl_stdin(&["apply", "-f", "-"], &binding.to_string());
    assert!(out.status.success(), "{}", output_text(&out));
    AdmissionObjects(name.to_owned())
}

/// `kubectl apply` of a run labelled [`CHECKED`]: Ok when accepted, else the admission
/// policy's message.
fn apply_checked(ns: &str, name: &str, spec: &Value) -> Result<(), String> {
    send_checked(&["apply", "-n", ns, "-f", "-"], name, spec)
}

/// `kubectl create --dry-run=server` of a run labelled [`CHECKED`], as [`apply_checked`].
fn dry_run_checked(ns: &str, name: &str, spec: &Value) -> Result<(), String> {
    send_checked(
        &["create", "--dry-run=server", "-n", ns, "-f", "-"],
        name,
        spec,
    )
}

fn send_checked(args: &[&str], name: &str, spec: &Value) -> Result<(), String> {
    let manifest = json!({
        "apiVersion": API_VERSION, "kind": "CodeBuildRun",
        "metadata": {"name": name, "labels": {CHECKED.0: CHECKED.1}},
        "spec": spec,
    });
    let out = kubectl_stdin(args, &manifest.to_string());
    if out.status.success() {
        return Ok(());
    }
    let text = output_text(&out);
    const MARK: &str = "denied request: ";
    Err(match text.find(MARK) {
        Some(at) => text[at + MARK.len()..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => text,
    })
}

/// A run refused at `kubectl apply` with the library's message, then (sent again without
/// the admission label) refused by the operator with the same message; the message.
async fn refused_alike(
    client: &kube::Client,
    ns: &str,
    labels: &[(&str, &str)],
    name: &str,
    spec: &Value,
    policies: &[&CodeBuildRunPolicy],
) -> String {
    let expected = expected_denial(ns, labels, spec, policies);
    assert_eq!(
        apply_checked(ns, name, spec),
        Err(expected.clone()),
        "{name} at kubectl apply"
    );
    create_run(ns, name, spec.clone());
    assert_refused(client, ns, name, &expected).await;
    expected
}

/// The locked-down shared project of examples/tenancy (as written, for this test's
/// namespace) refuses every side door of shared-project-runs.yaml at `kubectl apply` and in
/// the operator, with the same message, and starts what it allows; a policy with every
/// value rule lets the same members through with allowed values and refuses the others,
/// alike; and the operator writes each policy's status, warning of what a policy leaves open.
#[tokio::test(flavor = "multi_thread")]
async fn every_side_door_is_refused_at_kubectl_apply_and_by_the_operator_alike() {
    let key = format!("e2e-doors-{}", random_suffix(6));
    let ns_guard = labelled_namespace("doors", &key, "tenant");
    let ns = ns_guard.name();
    let sim = Server::start(SimConfig {
        phase_seconds: 0.2,
        projects: vec!["shared-app".into(), "ruled".into()],
        ..SimConfig::default()
    })
    .await
    .expect("starting the CodeBuild simulator");
    let suffix = random_suffix(6);
    let mut set = PolicySet::new().await;
    let example: Value =
        serde_saphyr::from_str(include_str!("../examples/tenancy/shared-project.yaml")).unwrap();
    let mut shared_spec = example["spec"].clone();
    shared_spec["namespaceSelector"] = selector(&key, "tenant");
    let shared = set
        .apply(&format!("shared-app-{suffix}"), shared_spec)
        .await;
    let ruled_name = format!("ruled-{suffix}");
    let ruled = set
        .apply(
            &ruled_name,
            every_rule_spec(selector(&key, "tenant"), json!(["ruled"])),
        )
        .await;
    let open_name = format!("open-{suffix}");
    let open = set
        .apply(
            &open_name,
            json!({"namespaceSelector": selector(&key, "nobody"), "projects": ["*"],
                   "overrides": {"allowed": ["*"], "artifactLocations": ["a/*"]}}),
        )
        .await;
    let vap_name = format!("cbr-doors-{suffix}");
    let _admission = bind_checked(&vap_name, &key);
    let _op = OperatorProcess::start(
        ns,
        &sim.endpoint(),
        &["--enforce-policies", "--admission-policy", &vap_name],
    );
    let client = support::client().await;
    let runs: Api<CodeBuildRun> = Api::namespaced(client.clone(), ns);
    let policies = [&shared, &ruled, &open];
    let labels = [(key.as_str(), "tenant")];

    // The operator has written the admission policy once a refused run is refused.
    let probe = json!({"projectName": "shared-app", "privilegedModeOverride": true});
    let probe_message = expected_denial(ns, &labels, &probe, &policies);
    support::wait_for("the admission policy in effect", WAIT, POLL, || {
        (dry_run_checked(ns, "probe", &probe) == Err(probe_message.clone())).then_some(())
    });

    // Every side door of the example is refused alike; the run it is for starts.
    let docs = include_str!("../examples/tenancy/shared-project-runs.yaml");
    let mut side_doors = 0;
    for doc in docs.split("\n---\n") {
        let run: Value = serde_saphyr::from_str(doc).unwrap();
        let name = run["metadata"]["name"].as_str().unwrap().to_owned();
        let spec = &run["spec"];
        if name == "allowed" {
            apply_checked(ns, &name, spec).expect("the run the shared project is for");
            continue;
        }
        let message = refused_alike(&client, ns, &labels, &name, spec, &policies).await;
        assert!(
            message.contains(&format!(
                "policy \"{}\" does not allow",
                shared.metadata.name.as_deref().unwrap()
            )),
            "{message}"
        );
        side_doors += 1;
    }
    assert!(side_doors > 20, "{side_doors}");
    wait_condition(&runs, "allowed", "Succeeded", "True").await;

    // The rules that allow: every member with an allowed value starts; each refused value
    // is refused alike.
    apply_checked(ns, "every-member", &every_member_allowed("ruled")).expect("allowed values");
    for (case, overrides, part) in every_rule_refusals(&ruled_name) {
        let spec = project_with("ruled", overrides);
        let message = refused_alike(
            &client,
            ns,
            &labels,
            &format!("ruled-{case}"),
            &spec,
            &policies,
        )
        .await;
        assert!(message.contains(part.as_str()), "{case}: {message}");
    }
    let done = wait_condition(&runs, "every-member", "Succeeded", "True").await;
    let attempt = done.status.unwrap().start_attempt.unwrap();
    assert_eq!(attempt.policy.as_deref(), Some(ruled_name.as_str()));
    let mut expected = vec![
        uid(&runs, "allowed").await,
        uid(&runs, "every-member").await,
    ];
    let mut started = started_uids(&sim);
    expected.sort();
    started.sort();
    assert_eq!(started, expected, "StartBuild only for the allowed runs");

    // Status: the operator says what each policy leaves open.
    let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    let status_of = |name: String| {
        let api = api.clone();
        async move { api.get(&name).await.ok().and_then(|p| p.status) }
    };
    let open_status = support::wait_for_async("the open policy's status", WAIT, POLL, || {
        status_of(open_name.clone())
    })
    .await;
    assert_eq!(open_status, evaluate::policy_status(&open));
    assert!(
        open_status
            .unconstrained_overrides
            .contains(&"environmentVariablesOverride".to_owned())
    );
    assert!(
        !open_status
            .unconstrained_overrides
            .contains(&"artifactsOverride".to_owned())
    );
    assert!(
        open_status
            .warning
            .as_deref()
            .unwrap()
            .contains("overrides.parameterNames, overrides.secrets)"),
        "{open_status:?}"
    );
    for p in [&shared, &ruled] {
        let status = support::wait_for_async("a locked-down policy's status", WAIT, POLL, || {
            status_of(p.metadata.name.clone().unwrap())
        })
        .await;
        assert!(status.unconstrained_overrides.is_empty(), "{status:?}");
        assert_eq!(status.warning, None);
        assert_eq!(status.observed_generation, p.metadata.generation);
    }
    let printed = kubectl_ok(&["get", "codebuildrunpolicy", &open_name]);
    assert!(
        printed.contains("UNCONSTRAINED") && printed.contains("environmentVariablesOverride"),
        "{printed}"
    );
    // Closing what is left open clears the warning.
    let mut spec = serde_json::to_value(&open.spec).unwrap();
    spec["overrides"] = json!({"allowed": ["sourceVersion"]});
    let closed = set.apply(&open_name, spec).await;
    support::wait_for_async("the warning cleared", WAIT, POLL, || {
        let status_of = status_of(open_name.clone());
        let generation = closed.metadata.generation;
        async move {
            status_of.await.filter(|s| {
                s.observed_generation == generation && s.unconstrained_overrides.is_empty()
            })
        }
    })
    .await;
    drop(set);
}
