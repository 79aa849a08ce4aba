//! The reconcile error: every failure has a fixed category (condition reason, Event reason,
//! metric label) and a retry class. `reconcile::failure` is the one place that turns an
//! error into what the user sees.

use crate::api::names::reason;
use crate::codebuild::{ApiError, ErrorKind};
use crate::convert::ConvertError;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (conflicts, timeouts, ...): retried with backoff.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A CodeBuild call failed.
    #[error("CodeBuild call failed: {0}")]
    Aws(#[from] ApiError),
    /// The spec could not be turned into a StartBuild request.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// No CodeBuildRunPolicy allows the run (the message says which rule refused it).
    #[error("{0}")]
    PolicyDenied(String),
    /// CodeBuild does not know the build recorded in status.
    #[error(
        "CodeBuild does not know build {0} (BatchGetBuilds listed it in buildsNotFound); it is no longer tracked"
    )]
    BuildNotFound(String),
    /// The build id recorded in status is not one CodeBuild can look up (a status edit, a
    /// build of another Region): it is set aside so it cannot hold up other builds.
    #[error(
        "status.buildId {id:?} cannot be looked up in CodeBuild: {why}; it is no longer tracked"
    )]
    InvalidBuildId {
        /// The id.
        id: String,
        /// Why.
        why: String,
    },
    /// CodeBuild does not know the batch recorded in status.
    #[error(
        "CodeBuild does not know build batch {0} (BatchGetBuildBatches listed it in buildBatchesNotFound); it is no longer tracked"
    )]
    BatchNotFound(String),
    /// The batch id recorded in status is not one CodeBuild can look up.
    #[error("status.id {id:?} cannot be looked up in CodeBuild: {why}; it is no longer tracked")]
    InvalidBatchId {
        /// The id.
        id: String,
        /// Why.
        why: String,
    },
    /// CodeBuild refused the run's idempotency token: it was first used with other
    /// parameters (another run with the same token, or a build started elsewhere).
    #[error("{aws}: idempotencyToken {token:?} {}", used_by(others))]
    TokenInUse {
        /// The token.
        token: String,
        /// Other runs of the namespace with the same token.
        others: Vec<String>,
        /// CodeBuild's refusal.
        aws: ApiError,
    },
    /// The object lacks something the apiserver always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// The build of a lost StartBuild answer could not be searched to the end.
    #[error("{0}")]
    SearchIncomplete(String),
}

/// Who else holds a token, in words.
fn used_by(others: &[String]) -> String {
    if others.is_empty() {
        "was first used with other parameters (a token belongs to one run: remove it, or \
         give this run its own)"
            .to_owned()
    } else {
        format!(
            "is already used by {} (a token belongs to one run: remove it, or give this run \
             its own)",
            others.join(", ")
        )
    }
}

impl Error {
    /// The category: condition and Event reason, log field and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => reason::CONFLICT,
            Error::Kube(_) => reason::KUBERNETES_ERROR,
            Error::Aws(e) => e.kind.category(),
            Error::Convert(_) => reason::INVALID_SPEC,
            Error::PolicyDenied(_) => reason::POLICY_DENIED,
            Error::BuildNotFound(_) => reason::BUILD_NOT_FOUND,
            Error::InvalidBuildId { .. } => reason::INVALID_BUILD_ID,
            Error::BatchNotFound(_) => reason::BUILD_BATCH_NOT_FOUND,
            Error::InvalidBatchId { .. } => reason::INVALID_BUILD_BATCH_ID,
            Error::TokenInUse { .. } => reason::TOKEN_IN_USE,
            Error::MissingField(_) => reason::INVALID_OBJECT,
            Error::SearchIncomplete(_) => reason::BUILD_SEARCH_INCOMPLETE,
        }
    }

    /// Whether retrying cannot help until the object (or, for a refusal, a policy) changes:
    /// the run is then Stalled and waits. Everything else is retried with backoff.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Aws(e) => e.kind.is_permanent(),
            Error::Kube(kube::Error::Api(s)) => matches!(s.code, 400 | 413 | 422),
            Error::Convert(_)
            | Error::PolicyDenied(_)
            | Error::BuildNotFound(_)
            | Error::InvalidBuildId { .. }
            | Error::BatchNotFound(_)
            | Error::InvalidBatchId { .. }
            | Error::TokenInUse { .. }
            | Error::MissingField(_) => true,
            Error::Kube(_) | Error::SearchIncomplete(_) => false,
        }
    }

    /// Whether the user should see this failure at its first occurrence. Kubernetes API
    /// failures other than refusals (a conflict with a concurrent write, a timeout) are
    /// normal once and are retried quietly; they show once they persist.
    pub fn shows_at_once(&self) -> bool {
        !matches!(self, Error::Kube(_)) || self.is_permanent()
    }

    /// The AWS error kind, when this is (or wraps) an AWS error.
    pub fn aws_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Aws(e) => Some(e.kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("refused", "Invalid")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn categories_are_the_reasons() {
        assert_eq!(Error::Kube(api_status(409)).category(), "Conflict");
        assert_eq!(Error::Kube(api_status(500)).category(), "KubernetesError");
        assert_eq!(Error::PolicyDenied("no".into()).category(), "PolicyDenied");
        assert_eq!(
            Error::BuildNotFound("p:1".into()).category(),
            "BuildNotFound"
        );
        assert_eq!(
            Error::SearchIncomplete("x".into()).category(),
            "BuildSearchIncomplete"
        );
    }

    #[test]
    fn refusals_stall_and_hiccups_retry_quietly() {
        assert!(Error::Kube(api_status(422)).is_permanent());
        assert!(Error::Kube(api_status(422)).shows_at_once());
        assert!(!Error::Kube(api_status(409)).is_permanent());
        assert!(!Error::Kube(api_status(409)).shows_at_once());
        assert!(!Error::SearchIncomplete("x".into()).is_permanent());
        assert!(Error::SearchIncomplete("x".into()).shows_at_once());
        assert!(Error::Aws(ApiError::new(ErrorKind::InvalidInput, None, "bad")).is_permanent());
        assert!(!Error::Aws(ApiError::new(ErrorKind::Throttled, None, "slow")).is_permanent());
    }
}
