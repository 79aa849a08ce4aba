//! The reconcile error: every failure has a fixed category (Event reason, log field) and a
//! retry class.

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
    /// The object lacks something the apiserver always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// The lost build could not be searched to the end.
    #[error("{0}")]
    SearchIncomplete(String),
}

impl Error {
    /// The category: Event reason and log field.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(_) => "KubernetesError",
            Error::Aws(e) => e.kind.category(),
            Error::Convert(_) => "InvalidSpec",
            Error::MissingField(_) => "InvalidObject",
            Error::SearchIncomplete(_) => "BuildSearchIncomplete",
        }
    }

    /// The AWS error kind, when this is (or wraps) an AWS error.
    pub fn aws_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Aws(e) => Some(e.kind),
            _ => None,
        }
    }
}
