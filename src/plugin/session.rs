//! The plugin's connections: the user's kubeconfig for the runs, the user's AWS credentials
//! for a build's log, with errors that name what is missing.

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use super::PluginError;
use super::cli::Global;
use crate::api::CodeBuildRun;
use crate::codebuild::{AwsBuildApi, AwsSettings, Target};

/// The field manager of the plugin's writes.
pub const FIELD_MANAGER: &str = "kubectl-codebuild";

/// The runs of one namespace, as the user may see them.
pub struct Session {
    runs: Api<CodeBuildRun>,
    namespace: String,
    cluster: String,
    region: Option<String>,
}

impl Session {
    /// Connects as the kubeconfig (and the flags) say.
    pub async fn connect(global: &Global) -> Result<Session, PluginError> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &global.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    PluginError::failed(format!("reading kubeconfig {}: {e}", path.display()))
                })?;
                Config::from_custom_kubeconfig(file, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| {
            PluginError::failed(format!(
                "no usable kubeconfig (KUBECONFIG, --kubeconfig, ~/.kube/config{}): {e}",
                global
                    .context
                    .as_deref()
                    .map(|c| format!(", context {c:?}"))
                    .unwrap_or_default()
            ))
        })?;
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let cluster = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .map_err(|e| PluginError::failed(format!("connecting to {cluster}: {e}")))?;
        Ok(Session {
            runs: Api::namespaced(client, &namespace),
            namespace,
            cluster,
            region: global.region.clone(),
        })
    }

    /// The namespace the commands work in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Run `name`, as the apiserver has it now.
    pub async fn get(&self, name: &str) -> Result<CodeBuildRun, PluginError> {
        self.runs
            .get(name)
            .await
            .map_err(|e| self.explain(e, "get", name))
    }

    /// Creates the run `manifest` describes.
    pub async fn create(&self, manifest: &Value) -> Result<CodeBuildRun, PluginError> {
        let run: CodeBuildRun = serde_json::from_value(manifest.clone())
            .map_err(|e| PluginError::usage(format!("not a valid CodeBuildRun: {e}")))?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        self.runs
            .create(&params, &run)
            .await
            .map_err(|e| self.explain(e, "create", "(new run)"))
    }

    /// Sets `spec.operator.stop` on run `name`.
    pub async fn stop(&self, name: &str) -> Result<CodeBuildRun, PluginError> {
        let name = bare(name);
        let patch = json!({"spec": {"operator": {"stop": true}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.runs
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| self.explain(e, "patch", name))
    }

    /// A Kubernetes API error in words that name what is missing.
    fn explain(&self, error: kube::Error, verb: &str, name: &str) -> PluginError {
        let ns = &self.namespace;
        match &error {
            kube::Error::Api(s) if s.code == 404 => PluginError::failed(format!(
                "codebuildrun {name:?} not found in namespace {ns:?} (kubectl get cbr -n {ns})"
            )),
            kube::Error::Api(s) if s.code == 403 => PluginError::failed(format!(
                "forbidden: you may not {verb} codebuildruns in namespace {ns:?}: {}",
                s.message
            )),
            kube::Error::Api(s) if s.code == 401 => PluginError::failed(format!(
                "the Kubernetes API at {} does not accept your kubeconfig's credentials: {}",
                self.cluster, s.message
            )),
            kube::Error::Api(s) => PluginError::failed(format!("{verb} {name}: {}", s.message)),
            _ => PluginError::failed(format!(
                "cannot reach the Kubernetes API at {}: {error}",
                self.cluster
            )),
        }
    }

    /// CloudWatch Logs with the user's AWS credentials, in the Region of `run`: its recorded
    /// start attempt's, else `spec.operator.region`, else `--region`, else the AWS
    /// configuration's.
    pub async fn aws(&self, run: &CodeBuildRun) -> Result<(AwsBuildApi, Target), PluginError> {
        let recorded = run
            .status
            .as_ref()
            .and_then(|s| s.start_attempt.as_ref())
            .map(|a| a.region.clone())
            .or_else(|| run.spec.options().region)
            .or_else(|| self.region.clone());
        let api = AwsBuildApi::load(recorded.clone(), AwsSettings::default()).await;
        let region = recorded.or_else(|| api.default_region()).ok_or_else(|| {
            PluginError::failed(format!(
                "no AWS Region for cbr/{}: the run records none (status.startAttempt.region, \
                 spec.operator.region) and neither --region nor the AWS configuration \
                 (AWS_REGION, a profile's region) names one",
                run.metadata.name.as_deref().unwrap_or("?")
            ))
        })?;
        Ok((api, Target::region(region)))
    }
}

/// `NAME` of `NAME`, `cbr/NAME` or `codebuildrun.codebuild.operator.dev/NAME`.
pub fn bare(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}
