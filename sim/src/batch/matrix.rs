//! `batch/build-matrix`: `static` settings every build shares and `dynamic` lists whose
//! combinations are the builds — every `buildspec` x `env/compute-type` x `env/image` x each
//! `env/variables` list, the first dimension varying slowest.
//!
//! The service does not document the identifiers it gives matrix builds; the simulator names
//! each after its dynamic values (`matrix1_yml_MY_VAR_VALUE1`: every character outside
//! `[A-Za-z0-9_]` becomes `_`, a repeated name gets `_2`, `_3`...).

use super::spec::{Entry, EntryEnv, env_of, flag, list, text};
use crate::buildspec::Node;
use std::collections::HashSet;

/// One value of one dynamic dimension.
#[derive(Clone, Debug)]
enum Choice {
    Buildspec(String),
    ComputeType(String),
    Image(String),
    Variable(String, String),
}

impl Choice {
    fn name_part(&self) -> String {
        match self {
            Choice::Buildspec(v) | Choice::ComputeType(v) | Choice::Image(v) => v.clone(),
            Choice::Variable(n, v) => format!("{n}_{v}"),
        }
    }

    fn apply(&self, entry: &mut Entry) {
        match self {
            Choice::Buildspec(v) => entry.buildspec = Some(v.clone()),
            Choice::ComputeType(v) => entry.env.compute_type = Some(v.clone()),
            Choice::Image(v) => entry.env.image = Some(v.clone()),
            Choice::Variable(n, v) => set_var(&mut entry.env, n, v),
        }
    }
}

fn set_var(env: &mut EntryEnv, name: &str, value: &str) {
    match env.variables.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => env.variables.push((name.to_string(), value.to_string())),
    }
}

/// The builds of a `build-matrix` body.
pub fn expand(body: &Node) -> Result<Vec<Entry>, String> {
    let what = "batch/build-matrix";
    let base = match body.get("static") {
        Some(s) => Entry {
            buildspec: text(s.get("buildspec")).filter(|b| !b.is_empty()),
            env: env_of(s.get("env"), &format!("{what}/static"))?,
            ignore_failure: flag(s.get("ignore-failure"), what)?.unwrap_or(false),
            debug_session: flag(s.get("debug-session"), what)?,
            ..Entry::default()
        },
        None => Entry::default(),
    };
    let dims = dimensions(body.get("dynamic"))?;
    if dims.is_empty() {
        return Err(format!("{what}: dynamic gives no values to combine"));
    }
    let mut names = HashSet::new();
    let mut entries = Vec::new();
    for combination in product(&dims) {
        let mut entry = base.clone();
        for choice in &combination {
            choice.apply(&mut entry);
        }
        let parts: Vec<String> = combination.iter().map(Choice::name_part).collect();
        entry.identifier = unique_name(&sanitize(&parts.join("_")), &mut names);
        entries.push(entry);
    }
    Ok(entries)
}

/// The non-empty dimensions of `dynamic`, in combination order.
fn dimensions(dynamic: Option<&Node>) -> Result<Vec<Vec<Choice>>, String> {
    let Some(dynamic) = dynamic else {
        return Err("batch/build-matrix: dynamic is required".into());
    };
    let env = dynamic.get("env");
    let mut dims: Vec<Vec<Choice>> = vec![
        dynamic
            .get("buildspec")
            .map(list)
            .unwrap_or_default()
            .into_iter()
            .map(Choice::Buildspec)
            .collect(),
        env.and_then(|e| e.get("compute-type"))
            .map(list)
            .unwrap_or_default()
            .into_iter()
            .map(Choice::ComputeType)
            .collect(),
        env.and_then(|e| e.get("image"))
            .map(list)
            .unwrap_or_default()
            .into_iter()
            .map(Choice::Image)
            .collect(),
    ];
    match env.and_then(|e| e.get("variables")) {
        None => {}
        Some(Node::Map(vars)) => {
            for (name, values) in vars {
                let choices = list(values)
                    .into_iter()
                    .map(|v| Choice::Variable(name.clone(), v))
                    .collect();
                dims.push(choices);
            }
        }
        Some(_) => {
            return Err("batch/build-matrix: dynamic/env/variables must be a mapping".into());
        }
    }
    dims.retain(|d| !d.is_empty());
    Ok(dims)
}

/// Every combination, one value per dimension, the first dimension varying slowest.
fn product(dims: &[Vec<Choice>]) -> Vec<Vec<Choice>> {
    dims.iter().fold(vec![Vec::new()], |acc, dim| {
        acc.iter()
            .flat_map(|prefix| {
                dim.iter().map(move |c| {
                    let mut next = prefix.clone();
                    next.push(c.clone());
                    next
                })
            })
            .collect()
    })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = name.to_string();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{name}_{n}");
    }
    candidate
}

#[cfg(test)]
mod tests {
    use crate::batch::spec::{Kind, read};

    const MATRIX: &str = "version: 0.2
batch:
  build-matrix:
    static:
      ignore-failure: true
      env:
        type: LINUX_CONTAINER
        privileged-mode: true
        variables:
          SHARED: yes
          MY_VAR: default
    dynamic:
      buildspec:
        - matrix1.yml
        - matrix2.yml
      env:
        variables:
          MY_VAR:
            - VALUE1
            - VALUE2
            - VALUE3
";

    #[test]
    fn two_buildspecs_by_three_values_make_six_builds() {
        let spec = read(Some(MATRIX)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.kind, Kind::Matrix);
        let ids: Vec<&str> = spec.entries.iter().map(|e| e.identifier.as_str()).collect();
        assert_eq!(
            ids,
            [
                "matrix1_yml_MY_VAR_VALUE1",
                "matrix1_yml_MY_VAR_VALUE2",
                "matrix1_yml_MY_VAR_VALUE3",
                "matrix2_yml_MY_VAR_VALUE1",
                "matrix2_yml_MY_VAR_VALUE2",
                "matrix2_yml_MY_VAR_VALUE3",
            ]
        );
        let e = &spec.entries[4];
        assert_eq!(e.buildspec.as_deref(), Some("matrix2.yml"));
        assert_eq!(e.env.env_type.as_deref(), Some("LINUX_CONTAINER"));
        assert_eq!(e.env.privileged_mode, Some(true));
        assert!(e.ignore_failure);
        assert_eq!(
            e.env.variables,
            [
                ("SHARED".to_string(), "yes".to_string()),
                ("MY_VAR".to_string(), "VALUE2".to_string())
            ]
        );
        assert!(spec.entries.iter().all(|e| e.depend_on.is_empty()));
    }

    #[test]
    fn compute_types_images_and_repeated_names() {
        let src = "batch:
  build-matrix:
    dynamic:
      env:
        compute-type: [BUILD_GENERAL1_SMALL, BUILD_GENERAL1_LARGE]
        image:
          - aws/codebuild/standard:7.0
          - aws/codebuild/standard-7.0
";
        let spec = read(Some(src)).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = spec.entries.iter().map(|e| e.identifier.as_str()).collect();
        assert_eq!(
            ids,
            [
                "BUILD_GENERAL1_SMALL_aws_codebuild_standard_7_0",
                "BUILD_GENERAL1_SMALL_aws_codebuild_standard_7_0_2",
                "BUILD_GENERAL1_LARGE_aws_codebuild_standard_7_0",
                "BUILD_GENERAL1_LARGE_aws_codebuild_standard_7_0_2",
            ]
        );
        assert_eq!(
            spec.entries[3].env.image.as_deref(),
            Some("aws/codebuild/standard-7.0")
        );
        assert_eq!(
            spec.entries[3].env.compute_type.as_deref(),
            Some("BUILD_GENERAL1_LARGE")
        );
    }

    #[test]
    fn a_matrix_needs_dynamic_values() {
        for src in [
            "batch:\n  build-matrix:\n    static:\n      ignore-failure: true\n",
            "batch:\n  build-matrix:\n    dynamic:\n      env:\n        variables:\n          A: []\n",
            "batch:\n  build-matrix:\n    dynamic:\n      env:\n        variables: [a]\n",
        ] {
            assert!(read(Some(src)).is_err(), "{src}");
        }
    }
}
