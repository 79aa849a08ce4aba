//! The GitOps tools' own judgement of live or fixture objects: `gitops-status` (kstatus from
//! sigs.k8s.io/cli-utils and Flux's CEL health checks with gitops/flux/kustomization.yaml),
//! a Go program in tests/gitops-status built and cached by hack/go-tools.sh, as promtool is.
//! Fails, never skips, when a tool cannot be built.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::{repo_root, run_bounded};

/// A cold build of a tool (hack/go-tools.sh) takes minutes on 2 shared cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// One run of a built tool.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The shipped Flux Kustomization whose `healthCheckExprs` gitops-status evaluates.
pub fn flux_kustomization() -> PathBuf {
    repo_root().join("gitops/flux/kustomization.yaml")
}

/// Runs a built tool to completion (bounded), feeding it `stdin`.
pub fn run_tool(cmd: &mut Command, stdin: Option<&str>) -> Output {
    run_bounded(cmd, stdin, RUN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// The path of a Go tool, built by hack/go-tools.sh when it is not cached. Panics (the test
/// fails) when it cannot be built.
pub fn go_tool(name: &str) -> PathBuf {
    let script = repo_root().join("hack/go-tools.sh");
    let out = run_bounded(
        Command::new(script).args(["path", name]),
        None,
        BUILD_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && path.is_file(),
        "`hack/go-tools.sh path {name}` failed ({}): it needs Go 1.26 and the Go module proxy \
         the first time.\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Runs gitops-status with the shipped Flux Kustomization; returns one JSON value per
/// object, in input order.
pub fn gitops_status(args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let tool = go_tool("gitops-status");
    let out = run_tool(
        Command::new(&tool)
            .arg("--flux-kustomization")
            .arg(flux_kustomization())
            .args(args),
        stdin,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gitops-status failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// How kstatus and Flux's CEL check judge `object`: (kstatus status, Flux status).
pub fn judge(object: &Value) -> (String, String) {
    let lines = gitops_status(&[], Some(&object.to_string()));
    let line = lines.first().expect("one judgement per object");
    let status = |tool: &str| line[tool]["status"].as_str().unwrap_or_default().to_owned();
    (status("kstatus"), status("flux"))
}
