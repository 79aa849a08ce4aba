//! Classification of CodeBuild call failures.
//!
//! Every failure gets a fixed category (used as Event reason and metric label) and a retry
//! class: permanent errors (the request is wrong) wait for the object to change; errors that
//! may heal on their own (`ErrorKind::may_heal`: a project GitOps creates later, a permission
//! granted later, an account limit) are retried on a slow capped backoff; everything else on
//! an exponential backoff with jitter.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::api::names::reason;

/// What went wrong, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is wrong (InvalidInputException): retrying it cannot help.
    InvalidInput,
    /// IAM or an organization policy denied the call.
    AccessDenied,
    /// The project (or another named resource) does not exist (yet).
    ProjectNotFound,
    /// Too many concurrent builds for the account and region.
    AccountLimitExceeded,
    /// The service throttled the call.
    Throttled,
    /// The service failed (5xx).
    ServiceUnavailable,
    /// No answer in time, or the connection broke.
    Network,
    /// Anything else, including answers that could not be parsed.
    Other,
}

impl ErrorKind {
    /// The category string: Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => reason::INVALID_INPUT,
            ErrorKind::AccessDenied => reason::ACCESS_DENIED,
            ErrorKind::ProjectNotFound => reason::PROJECT_NOT_FOUND,
            ErrorKind::AccountLimitExceeded => reason::ACCOUNT_LIMIT_EXCEEDED,
            ErrorKind::Throttled => reason::THROTTLED,
            ErrorKind::ServiceUnavailable => reason::SERVICE_UNAVAILABLE,
            ErrorKind::Network => reason::NETWORK_ERROR,
            ErrorKind::Other => reason::AWS_ERROR,
        }
    }

    /// Permanent errors are not retried until the object changes: the request itself is
    /// wrong.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ErrorKind::InvalidInput)
    }

    /// Errors that may heal without any change to the run (a project GitOps creates later,
    /// a permission granted later, builds of the account finishing): retried slowly, and
    /// shown as Stalled once they last longer than the grace period.
    pub fn may_heal(&self) -> bool {
        matches!(
            self,
            ErrorKind::ProjectNotFound | ErrorKind::AccessDenied | ErrorKind::AccountLimitExceeded
        )
    }
}

/// A failed CodeBuild call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The retry class and category.
    pub kind: ErrorKind,
    /// The service's error code (`InvalidInputException`, ...), when it sent one.
    pub code: Option<String>,
    /// The service's message, or a description of the transport failure.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, code: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Classifies an SDK error of any operation.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let status = service.raw().status().as_u16();
                classify_service(e.code(), e.message(), status)
            }
            SdkError::TimeoutError(_) => ApiError::new(
                ErrorKind::Network,
                None,
                format!("request timed out: {}", error_chain(err)),
            ),
            SdkError::DispatchFailure(_) => ApiError::new(
                ErrorKind::Network,
                None,
                format!("request could not be sent: {}", error_chain(err)),
            ),
            SdkError::ResponseError(_) => ApiError::new(
                ErrorKind::Network,
                None,
                format!("response could not be read: {}", error_chain(err)),
            ),
            SdkError::ConstructionFailure(_) => ApiError::new(
                ErrorKind::Other,
                None,
                format!("request could not be built: {}", error_chain(err)),
            ),
            _ => ApiError::new(ErrorKind::Other, None, error_chain(err)),
        }
    }
}

/// Classifies a service error by its code, falling back to the HTTP status.
pub fn classify_service(code: Option<&str>, message: Option<&str>, http_status: u16) -> ApiError {
    let kind = match code {
        Some("InvalidInputException")
        | Some("ValidationException")
        | Some("InvalidParameterException") => ErrorKind::InvalidInput,
        Some("AccessDeniedException")
        | Some("AccessDenied")
        | Some("UnrecognizedClientException")
        | Some("InvalidSignatureException") => ErrorKind::AccessDenied,
        Some("ResourceNotFoundException") => ErrorKind::ProjectNotFound,
        Some("AccountLimitExceededException") => ErrorKind::AccountLimitExceeded,
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
            | "RequestThrottled"
            | "RequestThrottledException",
        ) => ErrorKind::Throttled,
        _ if http_status == 429 => ErrorKind::Throttled,
        _ if http_status >= 500 => ErrorKind::ServiceUnavailable,
        _ => ErrorKind::Other,
    };
    let message = match (code, message) {
        (_, Some(m)) if !m.is_empty() => m.to_owned(),
        (Some(c), _) => c.to_owned(),
        (None, _) => format!("HTTP {http_status} without an error code"),
    };
    ApiError::new(kind, code, message)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_kinds() {
        let cases = [
            ("InvalidInputException", 400, ErrorKind::InvalidInput),
            ("ResourceNotFoundException", 400, ErrorKind::ProjectNotFound),
            (
                "AccountLimitExceededException",
                400,
                ErrorKind::AccountLimitExceeded,
            ),
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("InternalFailure", 500, ErrorKind::ServiceUnavailable),
            ("ServiceUnavailable", 503, ErrorKind::ServiceUnavailable),
            ("SomethingNew", 400, ErrorKind::Other),
        ];
        for (code, status, kind) in cases {
            assert_eq!(
                classify_service(Some(code), Some("m"), status).kind,
                kind,
                "{code}"
            );
        }
        assert_eq!(classify_service(None, None, 429).kind, ErrorKind::Throttled);
        assert_eq!(
            classify_service(None, None, 502).kind,
            ErrorKind::ServiceUnavailable
        );
    }

    #[test]
    fn only_input_errors_are_permanent() {
        for kind in [
            ErrorKind::AccessDenied,
            ErrorKind::ProjectNotFound,
            ErrorKind::AccountLimitExceeded,
            ErrorKind::Throttled,
            ErrorKind::ServiceUnavailable,
            ErrorKind::Network,
            ErrorKind::Other,
        ] {
            assert!(!kind.is_permanent(), "{kind:?}");
        }
        assert!(ErrorKind::InvalidInput.is_permanent());
        for kind in [
            ErrorKind::ProjectNotFound,
            ErrorKind::AccessDenied,
            ErrorKind::AccountLimitExceeded,
        ] {
            assert!(kind.may_heal(), "{kind:?}");
        }
        assert!(!ErrorKind::Throttled.may_heal());
    }

    #[test]
    fn message_keeps_the_service_words() {
        let e = classify_service(
            Some("InvalidInputException"),
            Some("Invalid build ID provided"),
            400,
        );
        assert_eq!(
            e.to_string(),
            "InvalidInputException: Invalid build ID provided"
        );
        assert_eq!(e.kind.category(), "InvalidInput");
    }
}
