//! The Argo CD health check (gitops/argocd/health.lua) run by a real Lua 5.1 interpreter
//! against the fixtures in gitops/argocd/testdata, with the expectations of
//! gitops/argocd/health_test.yaml (Argo CD's resource_customizations test format); the
//! argocd-cm snippet carries the same script; the GitOps examples parse.
//!
//! Needs `lua5.1` (Debian: `apt-get install lua5.1`; .ci/run installs it). Fails, never
//! skips, when it is missing: Argo CD runs gopher-lua with Lua 5.1 semantics, so 5.1 is the
//! interpreter that matters.

use std::path::{Path, PathBuf};
use std::process::Command;

use codebuild_operator::api::{CodeBuildBatchRun, CodeBuildRun};
use serde_json::Value;

const LUA: &str = "lua5.1";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn argocd_dir() -> PathBuf {
    root().join("gitops/argocd")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Lua literal of a JSON value (objects and arrays become tables, null becomes nil), as
/// Argo CD hands the object to the script.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs health.lua on `object` through driver.lua; returns (status, message).
fn health(script: &Path, object: &Value, name: &str) -> (String, String) {
    let dir = root().join("target/gitops-health");
    std::fs::create_dir_all(&dir).expect("creating target/gitops-health");
    let object_file = dir.join(format!("{name}.lua"));
    std::fs::write(&object_file, format!("return {}\n", lua_literal(object)))
        .expect("writing the object as Lua");
    let out = Command::new(LUA)
        .arg(argocd_dir().join("driver.lua"))
        .arg(script)
        .arg(&object_file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {LUA} ({e}): install it (apt-get install -y lua5.1; .ci/run does) — \
                 the Argo CD health check is tested with the Lua 5.1 Argo CD runs"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{LUA} failed on {name}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let message = lines.next().unwrap_or_default().to_owned();
    (status, message)
}

#[test]
fn health_check_gives_the_expected_status_for_every_fixture() {
    let tests = yaml(&argocd_dir().join("health_test.yaml"));
    let tests = tests["tests"].as_array().expect("tests: a list");
    assert!(!tests.is_empty());
    let mut covered = Vec::new();
    let mut failures = Vec::new();
    for case in tests {
        let input = case["inputPath"].as_str().expect("inputPath");
        let expected_status = case["healthStatus"]["status"].as_str().expect("status");
        let expected_message = case["healthStatus"]["message"].as_str().unwrap_or("");
        let object = yaml(&argocd_dir().join(input));
        let name = Path::new(input)
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a file name");
        let (status, message) = health(&argocd_dir().join("health.lua"), &object, name);
        if status != expected_status || message != expected_message {
            failures.push(format!(
                "{input}: got {status:?} {message:?}, expected {expected_status:?} {expected_message:?}"
            ));
        }
        covered.push(input.trim_start_matches("testdata/").to_owned());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every fixture is checked, and every status the check can give is exercised.
    let mut files: Vec<String> = std::fs::read_dir(argocd_dir().join("testdata"))
        .expect("reading testdata")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    covered.sort();
    assert_eq!(files, covered, "every testdata file has an expectation");
    for status in ["Healthy", "Degraded", "Progressing"] {
        assert!(
            tests
                .iter()
                .any(|t| t["healthStatus"]["status"].as_str() == Some(status)),
            "no fixture expects {status}"
        );
    }
}

#[test]
fn fixtures_are_valid_runs_of_either_kind() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(argocd_dir().join("testdata")).expect("reading testdata") {
        let path = entry.expect("entry").path();
        let text = read(&path);
        let kind = yaml(&path)["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "CodeBuildRun" => {
                let _: CodeBuildRun = serde_saphyr::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: not a CodeBuildRun: {e}", path.display()));
            }
            "CodeBuildBatchRun" => {
                let _: CodeBuildBatchRun = serde_saphyr::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: not a CodeBuildBatchRun: {e}", path.display()));
            }
            other => panic!("{}: kind {other:?}", path.display()),
        }
        kinds.push(kind);
    }
    for kind in ["CodeBuildRun", "CodeBuildBatchRun"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} fixture");
    }
}

#[test]
fn argocd_cm_snippet_embeds_health_lua_verbatim() {
    let cm = yaml(&argocd_dir().join("argocd-cm.yaml"));
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    for kind in ["CodeBuildRun", "CodeBuildBatchRun"] {
        let key = format!("resource.customizations.health.codebuild.operator.dev_{kind}");
        let embedded = cm["data"][&key]
            .as_str()
            .unwrap_or_else(|| panic!("argocd-cm.yaml has no data.{key}"));
        assert_eq!(
            embedded,
            read(&argocd_dir().join("health.lua")),
            "argocd-cm.yaml must carry gitops/argocd/health.lua verbatim under {key}"
        );
    }
}

#[test]
fn gitops_examples_parse_and_their_runs_are_valid() {
    let dir = root().join("examples/gitops");
    let mut runs = 0;
    for entry in std::fs::read_dir(&dir).expect("reading examples/gitops") {
        let path = entry.expect("entry").path();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for doc in docs {
            if doc["kind"] == "CodeBuildRun" {
                let _: CodeBuildRun = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                runs += 1;
            }
            if doc["kind"] == "Kustomization" && doc["metadata"]["name"] == "app-builds" {
                assert_eq!(
                    doc["spec"]["healthChecks"][0]["kind"],
                    "CodeBuildRun",
                    "{}",
                    path.display()
                );
            }
        }
    }
    assert!(runs >= 1, "the Argo CD hook example holds a CodeBuildRun");
    let hook = read(&dir.join("argocd-postsync-hook.yaml"));
    for needle in [
        "generateName:",
        "argocd.argoproj.io/hook: PostSync",
        "argocd.argoproj.io/hook-delete-policy",
    ] {
        assert!(hook.contains(needle), "hook example lacks {needle}");
    }
}
