//! The CodeBuildRunPolicy CRD: generated from the Rust types, committed byte for byte, and
//! its override member names are exactly the StartBuild members of the service model (less
//! projectName and idempotencyToken, which are not overrides).

use codebuild_operator::api::override_members;
use codebuild_operator::crd::{Kind, kind_yaml, policy_crd};
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
fn override_members_are_the_start_build_members() {
    let model: Value = serde_json::from_str(MODEL).unwrap();
    let mut expected: Vec<String> = model["shapes"]["StartBuildInput"]["members"]
        .as_object()
        .expect("StartBuildInput in the model extract")
        .keys()
        .filter(|m| *m != "projectName" && *m != "idempotencyToken")
        .cloned()
        .collect();
    expected.sort();
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

/// The example policies parse as CodeBuildRunPolicies without dropping a field.
#[test]
fn example_policies_parse_completely() {
    let text = include_str!("../examples/tenancy/policies.yaml");
    let mut count = 0;
    for doc in text.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(doc).expect("YAML");
        let policy: codebuild_operator::api::CodeBuildRunPolicy =
            serde_json::from_value(value.clone()).expect("a CodeBuildRunPolicy");
        let mut back = serde_json::to_value(&policy).unwrap();
        // Metadata round-trips with defaults; compare the spec, which must be complete.
        assert_eq!(back["spec"].take(), value["spec"], "{doc}");
        count += 1;
    }
    assert_eq!(count, 3);
}
