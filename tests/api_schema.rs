//! The CRD is generated from the Rust types, matches the committed copy byte for byte, and
//! its spec schema is the StartBuild request of the CodeBuild service model: every member,
//! same names, same nesting, same enums, required members and documented bounds. The same
//! for the CodeBuildBatchRun CRD and the StartBuildBatch request.

use codebuild_operator::crd::{Kind, batch_crd, crd, crd_yaml, kind_yaml};
use serde_json::{Map, Value};

const COMMITTED: &str = include_str!("../crds/codebuild.operator.dev_codebuildruns.yaml");
const MODEL: &str = include_str!("data/codebuild-model.json");
const CHART_CRD: &str = "charts/codebuild-operator/crds/codebuild.operator.dev_codebuildruns.yaml";

#[test]
fn committed_crd_is_the_generated_one() {
    let generated = crd_yaml().unwrap();
    assert!(
        generated == COMMITTED,
        "crds/codebuild.operator.dev_codebuildruns.yaml is stale (first difference at line {}). Regenerate it with:\n  \
         cargo run -- crd > crds/codebuild.operator.dev_codebuildruns.yaml",
        first_difference(&generated, COMMITTED)
    );
    // The chart ships the same file, when the chart exists.
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART_CRD);
    if let Ok(chart_crd) = std::fs::read_to_string(&chart) {
        assert!(
            chart_crd == generated,
            "{CHART_CRD} differs from crds/. Regenerate it with:\n  cargo run -- crd > {CHART_CRD}"
        );
    }
}

/// The 1-based line where two texts first differ, with both lines.
fn first_difference(a: &str, b: &str) -> String {
    let mut lines = a.lines().zip(b.lines()).enumerate();
    match lines.find(|(_, (x, y))| x != y) {
        Some((i, (x, y))) => format!("{}: generated {x:?}, committed {y:?}", i + 1),
        None => format!(
            "end: generated {} lines, committed {}",
            a.lines().count(),
            b.lines().count()
        ),
    }
}

fn spec_schema() -> Value {
    let crd = serde_json::to_value(crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn names_and_subresources() {
    let crd = serde_json::to_value(crd()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "codebuildruns.codebuild.operator.dev"
    );
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["cbr"])
    );
    assert_eq!(
        crd["spec"]["names"]["categories"],
        serde_json::json!(["codebuild"])
    );
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["Status", "Phase", "Age", "Build ID"] {
        assert!(
            columns.contains(&c),
            "printer column {c} missing: {columns:?}"
        );
    }
    let conditions =
        &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}

#[test]
fn spec_is_the_start_build_request() {
    let model: Value = serde_json::from_str(MODEL).unwrap();
    let spec = spec_schema();
    let mut problems = Vec::new();
    compare(
        &model,
        "StartBuildInput",
        &spec,
        "spec",
        &mut problems,
        &["operator"],
    );
    assert!(
        problems.is_empty(),
        "spec schema differs from the service model:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        spec["required"],
        serde_json::json!(["projectName"]),
        "only projectName is required"
    );
}

#[test]
fn schema_is_structural_and_closed() {
    let text = serde_json::to_string(&crd()).unwrap();
    assert!(!text.contains("x-kubernetes-preserve-unknown-fields"));
    assert!(!text.contains("\"$ref\""));
    assert!(!text.contains("\"anyOf\"") && !text.contains("\"oneOf\""));
}

#[test]
fn every_field_is_documented() {
    let crd = serde_json::to_value(crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut undocumented = Vec::new();
    documented(&root["properties"]["spec"], "spec", &mut undocumented);
    documented(&root["properties"]["status"], "status", &mut undocumented);
    // Condition comes from k8s-openapi, documented there.
    undocumented.retain(|p| !p.starts_with("status.conditions[]."));
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

fn documented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, s) in props {
            let p = format!("{path}.{name}");
            if s.get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(p.clone());
            }
            documented(s, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        documented(items, &format!("{path}[]"), out);
    }
}

fn compare(
    model: &Value,
    shape: &str,
    schema: &Value,
    path: &str,
    problems: &mut Vec<String>,
    extra: &[&str],
) {
    let m = &model["shapes"][shape];
    match m["type"].as_str().unwrap() {
        "structure" => {
            let empty = Map::new();
            let props = schema["properties"].as_object().unwrap_or(&empty);
            let members = m["members"].as_object().unwrap();
            for (name, member_shape) in members {
                match props.get(name) {
                    Some(s) => compare(
                        model,
                        member_shape.as_str().unwrap(),
                        s,
                        &format!("{path}.{name}"),
                        problems,
                        &[],
                    ),
                    None => problems.push(format!("{path}.{name}: missing")),
                }
            }
            for name in props.keys() {
                if !members.contains_key(name) && !extra.contains(&name.as_str()) {
                    problems.push(format!("{path}.{name}: not a member of {shape}"));
                }
            }
            let mut required: Vec<&str> = m["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let mut ours: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            required.sort();
            ours.sort();
            if required != ours {
                problems.push(format!(
                    "{path}: required {ours:?}, model says {required:?}"
                ));
            }
            expect_type(schema, "object", path, problems);
        }
        "list" => {
            expect_type(schema, "array", path, problems);
            if let Some(max) = m.get("max")
                && schema.get("maxItems") != Some(max)
            {
                problems.push(format!(
                    "{path}: maxItems {:?}, model max {max}",
                    schema.get("maxItems")
                ));
            }
            compare(
                model,
                m["member"].as_str().unwrap(),
                &schema["items"],
                &format!("{path}[]"),
                problems,
                &[],
            );
        }
        "string" => {
            expect_type(schema, "string", path, problems);
            if let Some(values) = m.get("enum")
                && schema.get("enum") != Some(values)
            {
                problems.push(format!(
                    "{path}: enum {:?}, model {values}",
                    schema.get("enum")
                ));
            }
            if let Some(min) = m.get("min")
                && schema.get("minLength") != Some(min)
            {
                problems.push(format!(
                    "{path}: minLength {:?}, model min {min}",
                    schema.get("minLength")
                ));
            }
        }
        "integer" | "long" => {
            expect_type(schema, "integer", path, problems);
            for (bound, key) in [("min", "minimum"), ("max", "maximum")] {
                if let Some(v) = m.get(bound)
                    && schema.get(key).and_then(Value::as_f64) != v.as_f64()
                {
                    problems.push(format!(
                        "{path}: {key} {:?}, model {bound} {v}",
                        schema.get(key)
                    ));
                }
            }
        }
        "boolean" => expect_type(schema, "boolean", path, problems),
        other => problems.push(format!(
            "{path}: model type {other} not expected in StartBuild"
        )),
    }
}

fn expect_type(schema: &Value, ty: &str, path: &str, problems: &mut Vec<String>) {
    if schema.get("type").and_then(Value::as_str) != Some(ty) {
        problems.push(format!(
            "{path}: type {:?}, expected {ty}",
            schema.get("type")
        ));
    }
}

// === CodeBuildBatchRun ===

const COMMITTED_BATCH: &str =
    include_str!("../crds/codebuild.operator.dev_codebuildbatchruns.yaml");
const CHART_BATCH_CRD: &str =
    "charts/codebuild-operator/crds/codebuild.operator.dev_codebuildbatchruns.yaml";

#[test]
fn committed_batch_crd_is_the_generated_one() {
    let generated = kind_yaml(Kind::Batch).unwrap();
    assert!(
        generated == COMMITTED_BATCH,
        "crds/{0} is stale (first difference at line {1}). Regenerate it with:\n  \
         cargo run -- crd batch > crds/{0}",
        Kind::Batch.file_name(),
        first_difference(&generated, COMMITTED_BATCH)
    );
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART_BATCH_CRD);
    let chart_crd = std::fs::read_to_string(&chart).expect("the chart ships the batch CRD");
    assert!(
        chart_crd == generated,
        "{CHART_BATCH_CRD} differs from crds/. Regenerate it with:\n  \
         cargo run -- crd batch > {CHART_BATCH_CRD}"
    );
}

#[test]
fn batch_names_columns_and_subresources() {
    let crd = serde_json::to_value(batch_crd()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "codebuildbatchruns.codebuild.operator.dev"
    );
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "CodeBuildBatchRun");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["cbbr"])
    );
    assert_eq!(
        crd["spec"]["names"]["categories"],
        serde_json::json!(["codebuild"])
    );
    let v = &crd["spec"]["versions"][0];
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<(&str, &str)> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    for column in [
        ("Status", ".status.buildBatchStatus"),
        ("Phase", ".status.currentPhase"),
        ("Builds", ".status.builds"),
        ("Batch ID", ".status.id"),
    ] {
        assert!(columns.contains(&column), "{column:?} missing: {columns:?}");
    }
    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(status["default"], serde_json::json!({}));
    assert_eq!(
        status["properties"]["conditions"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}

#[test]
fn batch_spec_is_the_start_build_batch_request() {
    let model: Value = serde_json::from_str(MODEL).unwrap();
    let crd = serde_json::to_value(batch_crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut problems = Vec::new();
    compare(
        &model,
        "StartBuildBatchInput",
        spec,
        "spec",
        &mut problems,
        &["operator"],
    );
    assert!(
        problems.is_empty(),
        "batch spec schema differs from the service model:\n{}",
        problems.join("\n")
    );
    assert_eq!(spec["required"], serde_json::json!(["projectName"]));
    assert_eq!(
        spec["properties"].as_object().unwrap().len(),
        32,
        "31 members and operator"
    );
}

#[test]
fn every_batch_field_is_documented_and_the_schema_is_structural() {
    let crd = serde_json::to_value(batch_crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut undocumented = Vec::new();
    documented(&root["properties"]["spec"], "spec", &mut undocumented);
    documented(&root["properties"]["status"], "status", &mut undocumented);
    undocumented.retain(|p| !p.starts_with("status.conditions[]."));
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
    let text = serde_json::to_string(&crd).unwrap();
    assert!(!text.contains("x-kubernetes-preserve-unknown-fields"));
    assert!(!text.contains("\"$ref\""));
    assert!(!text.contains("\"anyOf\"") && !text.contains("\"oneOf\""));
}
