//! Warnings about how a run is set up (pure): things that work, but not as the user hopes.

use std::collections::BTreeMap;

use crate::api::RunOptions;

/// Metadata that says a GitOps tool manages the object: (key, tool). Argo CD hooks are left
/// out: Argo CD deletes them itself and does not recreate them.
const GITOPS_LABELS: &[(&str, &str)] = &[
    ("kustomize.toolkit.fluxcd.io/name", "Flux"),
    ("helm.toolkit.fluxcd.io/name", "Flux"),
    ("argocd.argoproj.io/instance", "Argo CD"),
];
const GITOPS_ANNOTATIONS: &[(&str, &str)] = &[("argocd.argoproj.io/tracking-id", "Argo CD")];
const ARGO_HOOK: &str = "argocd.argoproj.io/hook";

/// The warning for a run that carries a GitOps tool's ownership label (or annotation) and
/// `ttlSecondsAfterFinished`: deleting it after its build makes the tool create it again on
/// its next sync, which is a new build every interval.
pub fn ttl_under_gitops(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    options: &RunOptions,
) -> Option<String> {
    options.ttl_seconds_after_finished?;
    if annotations.contains_key(ARGO_HOOK) {
        return None;
    }
    let (key, tool) = GITOPS_LABELS
        .iter()
        .find(|(k, _)| labels.contains_key(*k))
        .or_else(|| {
            GITOPS_ANNOTATIONS
                .iter()
                .find(|(k, _)| annotations.contains_key(*k))
        })?;
    Some(format!(
        "ttlSecondsAfterFinished deletes this run after its build, but {tool} manages it \
         ({key}) and will create it again on its next sync: a new build every sync. Name one \
         run per revision (for example <app>-<commit>) and let {tool} prune the old ones, or \
         drop ttlSecondsAfterFinished"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ttl(seconds: Option<i64>) -> RunOptions {
        RunOptions {
            ttl_seconds_after_finished: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn a_ttl_on_a_run_flux_or_argo_manages_is_a_recreate_loop() {
        let flux = map(&[("kustomize.toolkit.fluxcd.io/name", "builds")]);
        let warning = ttl_under_gitops(&flux, &map(&[]), &ttl(Some(60))).unwrap();
        assert!(warning.contains("Flux manages it"), "{warning}");
        let argo = map(&[(
            "argocd.argoproj.io/tracking-id",
            "app:codebuild.operator.dev/CodeBuildRun:ci/r",
        )]);
        let warning = ttl_under_gitops(&map(&[]), &argo, &ttl(Some(60))).unwrap();
        assert!(warning.contains("Argo CD"), "{warning}");
    }

    #[test]
    fn no_warning_without_a_ttl_a_gitops_owner_or_for_an_argo_hook() {
        let flux = map(&[("kustomize.toolkit.fluxcd.io/name", "builds")]);
        assert_eq!(ttl_under_gitops(&flux, &map(&[]), &ttl(None)), None);
        assert_eq!(ttl_under_gitops(&map(&[]), &map(&[]), &ttl(Some(60))), None);
        let hook = map(&[
            ("argocd.argoproj.io/tracking-id", "x"),
            ("argocd.argoproj.io/hook", "PostSync"),
        ]);
        assert_eq!(ttl_under_gitops(&map(&[]), &hook, &ttl(Some(60))), None);
    }
}
