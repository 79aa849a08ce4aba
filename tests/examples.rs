//! Every manifest in examples/ is a valid `CodeBuildRun` as the Rust types read it, and none
//! of its fields is silently dropped (the types do not deny unknown fields, so a misspelt
//! member would otherwise vanish). The apiserver's view of the same files is checked in
//! tests/e2e_api.rs. The same for examples/batch/ and `CodeBuildBatchRun` (run end to end
//! in tests/e2e_batch.rs).

mod support;

use codebuild_operator::api::{CodeBuildBatchRun, CodeBuildRun};
use serde_json::Value;
use support::example_files;

const MIN_EXAMPLES: usize = 6;

/// Collects, as `path: problem`, every place where `original` is not contained in
/// `reparsed`: a key that disappeared, an array whose length changed, a scalar that changed.
fn missing(original: &Value, reparsed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, reparsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => missing(value, other, &here, out),
                    None => out.push(format!("{here}: dropped by the Rust types")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

#[test]
fn there_are_enough_examples() {
    let files = example_files();
    assert!(
        files.len() >= MIN_EXAMPLES,
        "expected at least {MIN_EXAMPLES} examples/*.yaml, found {}: {files:?}",
        files.len()
    );
}

#[test]
fn every_example_parses_as_a_codebuildrun_without_dropping_fields() {
    let mut failures = Vec::new();
    for file in example_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("reading an example");

        assert!(
            text.starts_with('#'),
            "{name}: should start with comments saying what it does and how to apply it"
        );
        for needle in ["kubectl apply -f", "kubectl get cbr -w", "kubectl wait"] {
            assert!(
                text.contains(needle),
                "{name}: its comments should show `{needle}`"
            );
        }

        let run: CodeBuildRun = match serde_saphyr::from_str(&text) {
            Ok(run) => run,
            Err(e) => {
                failures.push(format!("{name}: not a CodeBuildRun: {e}"));
                continue;
            }
        };
        assert_eq!(
            run.metadata.namespace, None,
            "{name}: leave the namespace to -n"
        );
        let name_in_file = run.metadata.name.clone().unwrap_or_default();
        assert!(
            !name_in_file.is_empty(),
            "{name}: metadata.name is required"
        );
        assert!(
            text.contains(&format!("cbr/{name_in_file}")),
            "{name}: the `kubectl wait` comment should name cbr/{name_in_file}"
        );
        assert!(
            !run.spec.project_name.is_empty(),
            "{name}: empty projectName"
        );

        let original: Value = serde_saphyr::from_str(&text).expect("YAML as a JSON value");
        let reparsed = serde_json::to_value(&run).expect("serialising a CodeBuildRun");
        let mut lost = Vec::new();
        missing(&original, &reparsed, "", &mut lost);
        if !lost.is_empty() {
            failures.push(format!("{name}:\n  {}", lost.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "examples/ problems:\n{}",
        failures.join("\n")
    );
}

/// The field-loss check itself works: a misspelt member is reported.
#[test]
fn a_misspelt_member_is_caught() {
    let text = "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRun\n\
                metadata: {name: x}\nspec:\n  projectName: my-app\n  sourceVersoin: main\n";
    let run: CodeBuildRun = serde_saphyr::from_str(text).expect("unknown fields are ignored");
    let original: Value = serde_saphyr::from_str(text).unwrap();
    let mut lost = Vec::new();
    missing(
        &original,
        &serde_json::to_value(&run).unwrap(),
        "",
        &mut lost,
    );
    assert_eq!(
        lost,
        vec![".spec.sourceVersoin: dropped by the Rust types".to_owned()]
    );
}

/// The examples together cover what they are meant to show.
#[test]
fn the_examples_cover_the_documented_uses() {
    let runs: Vec<(String, CodeBuildRun)> = example_files()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (
                name.clone(),
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        })
        .collect();
    let any = |what: &str, pred: &dyn Fn(&CodeBuildRun) -> bool| {
        assert!(runs.iter().any(|(_, r)| pred(r)), "no example shows {what}");
    };
    any("a run with only projectName", &|r| {
        serde_json::to_value(&r.spec)
            .unwrap()
            .as_object()
            .unwrap()
            .len()
            == 1
    });
    any("a sourceVersion", &|r| r.spec.source_version.is_some());
    for ty in ["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"] {
        any(&format!("an environment variable of type {ty}"), &|r| {
            r.spec
                .environment_variables_override
                .iter()
                .flatten()
                .any(|v| v.type_.is_some_and(|t| t.as_str() == ty))
        });
    }
    any("an inline multi-line buildspecOverride", &|r| {
        r.spec
            .buildspec_override
            .as_deref()
            .is_some_and(|b| b.contains("phases:") && b.lines().count() > 3)
    });
    any("S3 artifacts with secondary artifacts", &|r| {
        r.spec
            .artifacts_override
            .as_ref()
            .is_some_and(|a| a.type_.as_str() == "S3")
            && r.spec
                .secondary_artifacts_override
                .as_ref()
                .is_some_and(|s| !s.is_empty())
    });
    any("secondary sources with versions", &|r| {
        r.spec
            .secondary_sources_override
            .as_ref()
            .is_some_and(|s| !s.is_empty())
            && r.spec
                .secondary_sources_version_override
                .as_ref()
                .is_some_and(|s| !s.is_empty())
    });
    any("operator settings", &|r| r.spec.operator.is_some());
}

#[test]
fn every_batch_example_parses_as_a_codebuildbatchrun_without_dropping_fields() {
    let files = support::batch_example_files();
    assert!(files.len() >= 3, "a matrix, a graph, a retry: {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("reading an example");
        assert!(text.starts_with('#'), "{name}: should start with comments");
        for needle in ["kubectl apply -f", "kubectl get cbbr -w", "kubectl wait"] {
            assert!(
                text.contains(needle),
                "{name}: its comments should show `{needle}`"
            );
        }
        let run: CodeBuildBatchRun = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: not a CodeBuildBatchRun: {e}"));
        let name_in_file = run.metadata.name.clone().unwrap_or_default();
        assert!(
            text.contains(&format!("cbbr/{name_in_file}")),
            "{name}: the `kubectl wait` comment should name cbbr/{name_in_file}"
        );
        assert!(
            run.spec
                .buildspec_override
                .as_deref()
                .unwrap_or_default()
                .contains("batch:"),
            "{name}: shows the batch section it runs"
        );
        let original: Value = serde_saphyr::from_str(&text).expect("YAML as a JSON value");
        let reparsed = serde_json::to_value(&run).expect("serialising a CodeBuildBatchRun");
        let mut lost = Vec::new();
        missing(&original, &reparsed, "", &mut lost);
        assert!(lost.is_empty(), "{name}:\n  {}", lost.join("\n  "));
    }
}
