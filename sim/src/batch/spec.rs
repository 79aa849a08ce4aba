//! The batchspec: the `batch` section of a batch build's buildspec, read with the simulator's
//! YAML reader into the list of builds the batch runs. `build-list` and `build-graph` entries
//! are taken as written; a `build-matrix` is expanded into its combinations (see
//! [`super::matrix`]). Errors are the messages a batch fails with in DOWNLOAD_BATCHSPEC.

use crate::buildspec::{self, Node};
use std::collections::{HashMap, HashSet};

/// Which kind of batch the buildspec defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    List,
    Graph,
    Matrix,
}

/// An entry's `env` overrides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntryEnv {
    pub compute_type: Option<String>,
    pub image: Option<String>,
    /// `type`: the environment type.
    pub env_type: Option<String>,
    pub privileged_mode: Option<bool>,
    /// A fleet ARN or name.
    pub fleet: Option<String>,
    /// `variables`, in order.
    pub variables: Vec<(String, String)>,
}

/// One build of the batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub identifier: String,
    /// Another buildspec for this build (a path, as the service reads it).
    pub buildspec: Option<String>,
    pub env: EntryEnv,
    /// Identifiers of the entries that must end first (build-graph only).
    pub depend_on: Vec<String>,
    pub ignore_failure: bool,
    pub debug_session: Option<bool>,
}

/// A batch's builds and how failures end it.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSpec {
    pub kind: Kind,
    /// `fast-fail: true` stops the running builds when one fails (default false: they finish).
    pub fast_fail: bool,
    pub entries: Vec<Entry>,
}

const KINDS: [(&str, Kind); 3] = [
    ("build-list", Kind::List),
    ("build-graph", Kind::Graph),
    ("build-matrix", Kind::Matrix),
];

/// Reads the batchspec of the buildspec a batch runs (`buildspecOverride` or the project's
/// `source.buildspec`). Only inline YAML can be read: a path or an S3 object is in a source
/// the simulator does not have.
pub fn read(buildspec: Option<&str>) -> Result<BatchSpec, String> {
    let text = buildspec.map(str::trim).unwrap_or_default();
    if !text.contains('\n') {
        let shown = if text.is_empty() {
            "buildspec.yml"
        } else {
            text
        };
        return Err(format!(
            "codebuild-sim reads only inline buildspecs and cannot read {shown}: give the batch section in YAML (buildspecOverride or the project's source.buildspec)"
        ));
    }
    let root = buildspec::parse(text).ok_or("buildspec is empty")?;
    let batch = root
        .get("batch")
        .ok_or("buildspec has no batch section: a batch build needs batch/build-list, batch/build-graph or batch/build-matrix")?;
    let present: Vec<(&str, Kind)> = KINDS
        .into_iter()
        .filter(|(key, _)| batch.get(key).is_some())
        .collect();
    let (key, kind) = match present.as_slice() {
        [one] => *one,
        [] if batch.get("build-fanout").is_some() => {
            return Err("batch/build-fanout is not simulated by codebuild-sim".into());
        }
        [] => return Err("batch section has no build-list, build-graph or build-matrix".into()),
        _ => {
            return Err(
                "batch section may define only one of build-list, build-graph and build-matrix"
                    .into(),
            );
        }
    };
    let body = batch.get(key).ok_or("batch section is empty")?;
    let entries = match kind {
        Kind::Matrix => super::matrix::expand(body)?,
        Kind::List | Kind::Graph => entries_of(key, body, kind == Kind::Graph)?,
    };
    if kind == Kind::Graph {
        check_graph(&entries)?;
    }
    Ok(BatchSpec {
        kind,
        fast_fail: flag(batch.get("fast-fail"), "batch/fast-fail")?.unwrap_or(false),
        entries,
    })
}

fn entries_of(key: &str, body: &Node, graph: bool) -> Result<Vec<Entry>, String> {
    let Node::Seq(items) = body else {
        return Err(format!("batch/{key} must be a list of builds"));
    };
    if items.is_empty() {
        return Err(format!("batch/{key} has no builds"));
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let what = format!("batch/{key}[{i}]");
        let identifier = text(item.get("identifier"))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{what}: identifier is required"))?;
        if !seen.insert(identifier.clone()) {
            return Err(format!(
                "batch/{key}: identifier {identifier} is used twice"
            ));
        }
        let mut entry = Entry {
            identifier,
            buildspec: text(item.get("buildspec")).filter(|s| !s.is_empty()),
            env: env_of(item.get("env"), &what)?,
            ignore_failure: flag(item.get("ignore-failure"), &what)?.unwrap_or(false),
            debug_session: flag(item.get("debug-session"), &what)?,
            ..Entry::default()
        };
        if graph && let Some(deps) = item.get("depend-on") {
            entry.depend_on = list(deps);
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// An entry's (or a matrix's static) `env`; `variables` values are scalars.
pub(super) fn env_of(node: Option<&Node>, what: &str) -> Result<EntryEnv, String> {
    let Some(env) = node else {
        return Ok(EntryEnv::default());
    };
    let variables = match env.get("variables") {
        None => Vec::new(),
        Some(Node::Map(vars)) => vars
            .iter()
            .map(|(name, value)| match value {
                Node::Scalar(v) => Ok((name.clone(), v.clone())),
                _ => Err(format!(
                    "{what}: env/variables/{name} must be a single value"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{what}: env/variables must be a mapping")),
    };
    Ok(EntryEnv {
        compute_type: text(env.get("compute-type")),
        image: text(env.get("image")),
        env_type: text(env.get("type")),
        privileged_mode: flag(env.get("privileged-mode"), what)?,
        fleet: text(env.get("fleet")),
        variables,
    })
}

/// Every `depend-on` names an entry, and there is no cycle.
fn check_graph(entries: &[Entry]) -> Result<(), String> {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.identifier.as_str(), i))
        .collect();
    for e in entries {
        if let Some(missing) = e.depend_on.iter().find(|d| !index.contains_key(d.as_str())) {
            return Err(format!(
                "batch/build-graph: {} depends on {missing}, which is not in the graph",
                e.identifier
            ));
        }
    }
    // Kahn's algorithm: whatever cannot be ordered is on a cycle.
    let mut waiting: Vec<usize> = entries.iter().map(|e| e.depend_on.len()).collect();
    let mut ready: Vec<usize> = (0..entries.len()).filter(|&i| waiting[i] == 0).collect();
    let mut ordered = 0;
    while let Some(i) = ready.pop() {
        ordered += 1;
        for (j, e) in entries.iter().enumerate() {
            let edges = e
                .depend_on
                .iter()
                .filter(|d| index[d.as_str()] == i)
                .count();
            if edges > 0 {
                waiting[j] -= edges;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if ordered < entries.len() {
        let on_cycle: Vec<&str> = (0..entries.len())
            .filter(|&i| waiting[i] > 0)
            .map(|i| entries[i].identifier.as_str())
            .collect();
        return Err(format!(
            "batch/build-graph has a dependency cycle among {}",
            on_cycle.join(", ")
        ));
    }
    Ok(())
}

/// A scalar's text.
pub(super) fn text(node: Option<&Node>) -> Option<String> {
    match node {
        Some(Node::Scalar(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A scalar or a list of scalars, as a list.
pub(super) fn list(node: &Node) -> Vec<String> {
    match node {
        Node::Scalar(s) if s.is_empty() => Vec::new(),
        Node::Scalar(s) => vec![s.clone()],
        Node::Seq(items) => items.iter().filter_map(|i| text(Some(i))).collect(),
        Node::Map(_) => Vec::new(),
    }
}

/// A YAML boolean.
pub(super) fn flag(node: Option<&Node>, what: &str) -> Result<Option<bool>, String> {
    match text(node)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") => Ok(None),
        Some("true" | "yes" | "on") => Ok(Some(true)),
        Some("false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(format!("{what}: '{other}' is not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = "version: 0.2
batch:
  fast-fail: true
  build-graph:
    - identifier: build1
      env:
        variables:
          BUILD_ID: build1
      ignore-failure: false
    - identifier: build2
      buildspec: build2.yml
      env:
        compute-type: BUILD_GENERAL1_MEDIUM
        privileged-mode: true
        variables:
          CODEBUILD_SIM_FAIL_PHASE: BUILD
      depend-on:
        - build1
      ignore-failure: true
    - identifier: build3
      depend-on: [build1, build2]
      debug-session: true
phases:
  build:
    commands:
      - make
";

    #[test]
    fn reads_a_graph() {
        let spec = read(Some(GRAPH)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.kind, Kind::Graph);
        assert!(spec.fast_fail);
        let ids: Vec<&str> = spec.entries.iter().map(|e| e.identifier.as_str()).collect();
        assert_eq!(ids, ["build1", "build2", "build3"]);
        let b2 = &spec.entries[1];
        assert_eq!(b2.buildspec.as_deref(), Some("build2.yml"));
        assert_eq!(
            b2.env.compute_type.as_deref(),
            Some("BUILD_GENERAL1_MEDIUM")
        );
        assert_eq!(b2.env.privileged_mode, Some(true));
        assert_eq!(
            b2.env.variables,
            [("CODEBUILD_SIM_FAIL_PHASE".to_string(), "BUILD".to_string())]
        );
        assert!(b2.ignore_failure);
        assert_eq!(b2.depend_on, ["build1"]);
        assert_eq!(spec.entries[2].depend_on, ["build1", "build2"]);
        assert_eq!(spec.entries[2].debug_session, Some(true));
    }

    #[test]
    fn a_list_ignores_depend_on() {
        let spec = read(Some(
            "batch:\n  build-list:\n    - identifier: a\n      depend-on: [b]\n    - identifier: b\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.kind, Kind::List);
        assert!(!spec.fast_fail);
        assert!(spec.entries.iter().all(|e| e.depend_on.is_empty()));
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (None, "cannot read buildspec.yml"),
            (Some("ci/buildspec.yml"), "cannot read ci/buildspec.yml"),
            (
                Some("version: 0.2\nphases:\n  build:\n"),
                "no batch section",
            ),
            (Some("batch:\n  fast-fail: true\n"), "no build-list"),
            (
                Some("batch:\n  build-fanout:\n    parallelism: 2\n"),
                "build-fanout",
            ),
            (
                Some(
                    "batch:\n  build-list:\n    - identifier: a\n  build-graph:\n    - identifier: b\n",
                ),
                "only one",
            ),
            (
                Some("batch:\n  build-list:\n    - env:\n        image: x\n"),
                "identifier is required",
            ),
            (
                Some("batch:\n  build-list:\n    - identifier: a\n    - identifier: a\n"),
                "used twice",
            ),
            (Some("batch:\n  build-list: x\n"), "must be a list"),
            (
                Some("batch:\n  build-graph:\n    - identifier: a\n      depend-on: [z]\n"),
                "depends on z",
            ),
            (
                Some(
                    "batch:\n  build-graph:\n    - identifier: a\n      depend-on: [b]\n    - identifier: b\n      depend-on: [a]\n    - identifier: c\n",
                ),
                "cycle among a, b",
            ),
            (
                Some("batch:\n  build-list:\n    - identifier: a\n      ignore-failure: maybe\n"),
                "not a boolean",
            ),
            (
                Some(
                    "batch:\n  build-list:\n    - identifier: a\n      env:\n        variables:\n          A: [1, 2]\n",
                ),
                "single value",
            ),
        ];
        for (src, wanted) in cases {
            let err = read(src).err().unwrap_or_default();
            assert!(err.contains(wanted), "{src:?}: {err}");
        }
    }
}
