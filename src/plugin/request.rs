//! The runs `start` and `rerun` create (pure): the spec from flags and a StartBuild JSON,
//! or from an earlier run; a generateName Kubernetes accepts.

use kube::Resource;
use serde_json::{Map, Value, json};

use super::PluginError;
use crate::api::CodeBuildRun;
use crate::api::names::RERUN_OF_ANNOTATION;

/// The longest generateName prefix: the apiserver adds 5 characters to reach 63.
const PREFIX_MAX: usize = 58;

/// The spec of a new run: the StartBuild JSON of `file` (if any), with `project`,
/// `source_version` and `env` (`NAME=VALUE`, PLAINTEXT, replacing a variable of the same
/// name) over it.
pub fn start_spec(
    file: Option<Value>,
    project: Option<&str>,
    source_version: Option<&str>,
    env: &[String],
) -> Result<Map<String, Value>, PluginError> {
    let mut spec = match file {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(PluginError::usage(
                "the -f file must hold one JSON object: a StartBuild request",
            ));
        }
    };
    if let Some(project) = project {
        spec.insert("projectName".into(), json!(project));
    }
    match spec.get("projectName") {
        Some(Value::String(p)) if !p.is_empty() => {}
        _ => {
            return Err(PluginError::usage(
                "no project: name one (kubectl codebuild start PROJECT) or set projectName in the -f file",
            ));
        }
    }
    if let Some(version) = source_version {
        spec.insert("sourceVersion".into(), json!(version));
    }
    if !env.is_empty() {
        let mut vars = match spec.remove("environmentVariablesOverride") {
            Some(Value::Array(vars)) => vars,
            _ => Vec::new(),
        };
        for pair in env {
            let Some((name, value)) = pair.split_once('=').filter(|(n, _)| !n.is_empty()) else {
                return Err(PluginError::usage(format!(
                    "--env {pair:?}: expected NAME=VALUE"
                )));
            };
            vars.retain(|v| v["name"] != name);
            vars.push(json!({"name": name, "value": value, "type": "PLAINTEXT"}));
        }
        spec.insert("environmentVariablesOverride".into(), Value::Array(vars));
    }
    Ok(spec)
}

/// A generateName prefix for runs of `project` (a name or an ARN): lower case, letters,
/// digits and dashes, ending in `-`.
pub fn generate_name(base: &str) -> String {
    let name = base.rsplit(['/', ':']).next().unwrap_or(base);
    let mut cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    cleaned.truncate(PREFIX_MAX - 1);
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "codebuild-".into()
    } else {
        format!("{cleaned}-")
    }
}

/// A CodeBuildRun manifest to create.
pub fn manifest(
    generate_name: &str,
    spec: Map<String, Value>,
    annotations: Option<Value>,
) -> Value {
    let mut metadata = json!({"generateName": generate_name});
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    json!({
        "apiVersion": CodeBuildRun::api_version(&()),
        "kind": CodeBuildRun::kind(&()),
        "metadata": metadata,
        "spec": spec,
    })
}

/// The manifest of a run repeating `run`: the same StartBuild members and operator settings,
/// without its idempotency token (the operator gives the new run its own) and without a
/// stop request; named like it (its generateName, else its name and a dash), annotated with
/// the run it repeats. Labels are not copied: a GitOps tool's labels would make it prune the
/// new run.
pub fn rerun_manifest(run: &CodeBuildRun) -> Result<Value, PluginError> {
    let mut spec = match serde_json::to_value(&run.spec) {
        Ok(Value::Object(spec)) => spec,
        _ => return Err(PluginError::failed("the run's spec cannot be read as JSON")),
    };
    spec.remove("idempotencyToken");
    if let Some(Value::Object(operator)) = spec.get_mut("operator") {
        operator.remove("stop");
        if operator.is_empty() {
            spec.remove("operator");
        }
    }
    let name = run.metadata.name.clone().unwrap_or_default();
    let prefix = run
        .metadata
        .generate_name
        .clone()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| generate_name(&name));
    Ok(manifest(
        &prefix,
        spec,
        Some(json!({ RERUN_OF_ANNOTATION: name })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_go_over_the_file() {
        let file = json!({"projectName": "from-file", "sourceVersion": "dev",
            "environmentVariablesOverride": [{"name": "A", "value": "old"}, {"name": "K", "value": "keep"}]});
        let spec = start_spec(
            Some(file),
            None,
            Some("main"),
            &["A=new".into(), "B=x=y".into()],
        )
        .unwrap();
        assert_eq!(spec["projectName"], "from-file");
        assert_eq!(spec["sourceVersion"], "main");
        assert_eq!(
            spec["environmentVariablesOverride"],
            json!([{"name": "K", "value": "keep"},
                   {"name": "A", "value": "new", "type": "PLAINTEXT"},
                   {"name": "B", "value": "x=y", "type": "PLAINTEXT"}])
        );
        let spec = start_spec(None, Some("app"), None, &[]).unwrap();
        assert_eq!(Value::Object(spec), json!({"projectName": "app"}));
    }

    #[test]
    fn what_is_missing_is_named() {
        let e = start_spec(None, None, None, &[]).unwrap_err();
        assert!(e.to_string().contains("no project"), "{e}");
        let e = start_spec(None, Some("p"), None, &["NOVALUE".into()]).unwrap_err();
        assert!(e.to_string().contains("NAME=VALUE"), "{e}");
        assert!(start_spec(Some(json!([1])), None, None, &[]).is_err());
    }

    #[test]
    fn generate_names_are_dns_labels() {
        assert_eq!(generate_name("my-app"), "my-app-");
        assert_eq!(
            generate_name("arn:aws:codebuild:us-east-1:1:project/My_App"),
            "my-app-"
        );
        assert_eq!(generate_name(&"x".repeat(80)).len(), 58);
        assert_eq!(generate_name("__"), "codebuild-");
    }

    #[test]
    fn a_rerun_drops_the_token_and_the_stop() {
        let run: CodeBuildRun = serde_json::from_value(json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
            "metadata": {"name": "app-x7k2p", "generateName": "app-", "labels": {"argocd": "x"}},
            "spec": {"projectName": "app", "idempotencyToken": "t", "sourceVersion": "main",
                     "operator": {"stop": true, "region": "eu-west-1"}},
        }))
        .unwrap();
        let m = rerun_manifest(&run).unwrap();
        assert_eq!(m["metadata"]["generateName"], "app-");
        assert_eq!(
            m["metadata"]["annotations"][RERUN_OF_ANNOTATION],
            "app-x7k2p"
        );
        assert!(m["metadata"].get("labels").is_none());
        assert_eq!(
            m["spec"],
            json!({"projectName": "app", "sourceVersion": "main", "operator": {"region": "eu-west-1"}})
        );
    }
}
