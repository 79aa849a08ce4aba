//! The CodeBuildRunPolicy CRD: generated from the Rust types, committed byte for byte, and
//! its override member names are exactly the StartBuild and StartBuildBatch members of the
//! service model (less projectName and idempotencyToken, which are not overrides); every rule is documented for
//! `kubectl explain`; the example policies parse, and the locked-down shared project
//! refuses every side door of StartBuild.

use std::collections::BTreeMap;

use codebuild_operator::api::{CodeBuildRun, CodeBuildRunPolicy, override_members};
use codebuild_operator::crd::{Kind, kind_yaml, policy_crd};
use codebuild_operator::policy::rules::CONSTRAINTS;
use codebuild_operator::policy::{Decision, RunRequest, evaluate};
use serde_json::Value;

const COMMITTED: &str = include_str!("../crds/codebuild.operator.dev_codebuildrunpolicies.yaml");
const CHART_CRD: &str = include_str!(
    "../charts/codebuild-operator/crds/codebuild.operator.dev_codebuildrunpolicies.yaml"
);
const MODEL: &str = include_str!("data/codebuild-model.json");

#[test]
fn committed_policy_crd_is_the_generated_one() {
    let generated = kind_yaml(Kind::Policy).unwrap();
    assert!(
        generated == COMMITTED,
        "crds/{0} is stale. Regenerate it with:\n  cargo run -- crd policy > crds/{0}",
        Kind::Policy.file_name()
    );
    assert!(
        generated == CHART_CRD,
        "charts/codebuild-operator/crds/{0} differs. Regenerate it with:\n  \
         cargo run -- crd policy > charts/codebuild-operator/crds/{0}",
        Kind::Policy.file_name()
    );
}

#[test]
fn override_members_are_the_start_build_and_start_build_batch_members() {
    let model: Value = serde_json::from_str(MODEL).unwrap();
    let mut expected: Vec<String> = ["StartBuildInput", "StartBuildBatchInput"]
        .iter()
        .flat_map(|shape| {
            model["shapes"][shape]["members"]
                .as_object()
                .unwrap_or_else(|| panic!("{shape} in the model extract"))
                .keys()
                .cloned()
        })
        .filter(|m| m != "projectName" && m != "idempotencyToken")
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(override_members(), expected);
}

#[test]
fn member_lists_are_enums_in_the_schema() {
    let crd = serde_json::to_value(policy_crd()).unwrap();
    let overrides = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["overrides"]["properties"];
    for list in ["allowed", "denied"] {
        let values: Vec<&str> = overrides[list]["items"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("overrides.{list} has an enum"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(values[0], "*");
        assert_eq!(
            values[1..],
            override_members()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(overrides[list]["x-kubernetes-list-type"], "set");
    }
    assert_eq!(crd["spec"]["scope"], "Cluster");
}

const POLICIES: &str = include_str!("../examples/tenancy/policies.yaml");
const SHARED_PROJECT: &str = include_str!("../examples/tenancy/shared-project.yaml");
const SHARED_PROJECT_RUNS: &str = include_str!("../examples/tenancy/shared-project-runs.yaml");

/// The documents of a multi-document YAML file, as JSON.
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).expect("YAML"))
        .collect()
}

/// The example policies parse as CodeBuildRunPolicies without dropping a field.
#[test]
fn example_policies_parse_completely() {
    let docs: Vec<Value> = [POLICIES, SHARED_PROJECT]
        .iter()
        .flat_map(|text| documents(text))
        .collect();
    for value in &docs {
        let policy: CodeBuildRunPolicy =
            serde_json::from_value(value.clone()).expect("a CodeBuildRunPolicy");
        let mut back = serde_json::to_value(&policy).unwrap();
        // Metadata round-trips with defaults; compare the spec, which must be complete.
        assert_eq!(back["spec"].take(), value["spec"], "{value}");
    }
    assert_eq!(docs.len(), 4);
}

/// Every field of `spec.overrides` has a description, and every value rule's says what it
/// constrains with an example, so `kubectl explain codebuildrunpolicy.spec.overrides`
/// documents each one.
#[test]
fn every_rule_is_documented_for_kubectl_explain() {
    let crd = serde_json::to_value(policy_crd()).unwrap();
    let overrides = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["overrides"];
    assert!(
        overrides["description"]
            .as_str()
            .is_some_and(|d| d.contains("value rule")),
        "{overrides}"
    );
    let fields = overrides["properties"].as_object().unwrap();
    for (field, schema) in fields {
        let description = schema["description"].as_str().unwrap_or_default();
        assert!(description.len() > 40, "overrides.{field}: {description:?}");
    }
    for c in CONSTRAINTS {
        let description = fields[c.rule()]["description"].as_str().unwrap();
        assert!(
            description.contains(c.member()),
            "overrides.{} does not name {}: {description}",
            c.rule(),
            c.member()
        );
        assert!(
            description.contains("e.g.") || description.contains("`false`"),
            "overrides.{} has no example: {description}",
            c.rule()
        );
    }
    // The operator writes the status; `kubectl get` shows what is left open.
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    assert!(
        version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["jsonPath"] == ".status.unconstrainedOverrides")
    );
}

/// The locked-down shared project (examples/tenancy/shared-project.yaml) lets a tenant set
/// the source version and plain variables, and refuses every side door of
/// shared-project-runs.yaml, each for the member it tries; its status warns of nothing.
#[test]
fn the_locked_down_shared_project_refuses_every_side_door() {
    let policy: CodeBuildRunPolicy =
        serde_json::from_value(documents(SHARED_PROJECT).remove(0)).unwrap();
    let status = evaluate::policy_status(&policy);
    assert!(status.unconstrained_overrides.is_empty(), "{status:?}");
    assert_eq!(status.warning, None);
    let labels = BTreeMap::from([("builds-shared-app".to_owned(), "true".to_owned())]);
    let runs: Vec<CodeBuildRun> = documents(SHARED_PROJECT_RUNS)
        .into_iter()
        .map(|doc| serde_json::from_value(doc).expect("a CodeBuildRun"))
        .collect();
    assert!(runs.len() > 20, "{} runs", runs.len());
    let mut members_refused = Vec::new();
    for run in &runs {
        let name = run.metadata.name.as_deref().unwrap();
        let request = RunRequest {
            namespace: "tenant",
            region: "us-east-1",
            spec: &run.spec,
        };
        let decision = evaluate(&request, &labels, &[&policy]);
        if name == "allowed" {
            assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
            continue;
        }
        let Decision::Denied { message } = decision else {
            panic!("{name} was allowed");
        };
        let gaps = evaluate::override_gaps("shared-app", policy.spec.overrides.as_ref(), &run.spec);
        assert_eq!(gaps.len(), 1, "{name}: one side door per run: {gaps:?}");
        assert_eq!(
            message,
            evaluate::overrides_refused("tenant", "shared-app", "us-east-1", &gaps),
            "{name}"
        );
        let spec = serde_json::to_value(&run.spec).unwrap();
        members_refused.extend(
            evaluate::used_overrides(&spec)
                .into_iter()
                .map(str::to_owned),
        );
    }
    // Every member the issue names as a side door is tried (and refused) at least once.
    for member in [
        "environmentVariablesOverride",
        "artifactsOverride",
        "secondaryArtifactsOverride",
        "cacheOverride",
        "logsConfigOverride",
        "registryCredentialOverride",
        "sourceAuthOverride",
        "certificateOverride",
        "encryptionKeyOverride",
        "fleetOverride",
        "computeTypeOverride",
        "timeoutInMinutesOverride",
        "queuedTimeoutInMinutesOverride",
        "privilegedModeOverride",
        "debugSessionEnabled",
        "autoRetryLimitOverride",
    ] {
        assert!(
            members_refused.iter().any(|m| m == member),
            "no side door run sets {member}"
        );
    }
}
