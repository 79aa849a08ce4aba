//! AWS JSON 1.1 wire details: operation names, typed errors, access key extraction.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const TARGET_PREFIX: &str = "CodeBuild_20161006.";
/// CloudWatch Logs' `X-Amz-Target` prefix; served on the same port as CodeBuild.
pub const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The CodeBuild operations the simulator implements.
pub const OPERATIONS: [&str; 14] = [
    "CreateProject",
    "DeleteProject",
    "BatchGetProjects",
    "StartBuild",
    "BatchGetBuilds",
    "StopBuild",
    "ListBuildsForProject",
    "BatchGetReports",
    "StartBuildBatch",
    "BatchGetBuildBatches",
    "StopBuildBatch",
    "RetryBuildBatch",
    "ListBuildBatchesForProject",
    "ListBuildBatches",
];

/// The CloudWatch Logs operations the simulator implements.
pub const LOGS_OPERATIONS: [&str; 2] = ["GetLogEvents", "FilterLogEvents"];

/// The AWS service a request is addressed to (by its `X-Amz-Target` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    CodeBuild,
    Logs,
}

/// A request's `X-Amz-Target`: the service and the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub service: Service,
    pub operation: String,
}

/// Error `__type`s the simulator returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    ResourceNotFound,
    ResourceAlreadyExists,
    AccountLimitExceeded,
    Throttling,
    UnknownOperation,
    Serialization,
    InternalFailure,
    ServiceUnavailable,
    /// CloudWatch Logs' validation error.
    InvalidParameter,
    /// CloudWatch Logs' declared server fault (HTTP 500).
    LogsServiceUnavailable,
}

impl ErrorKind {
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "InvalidInputException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceAlreadyExists => "ResourceAlreadyExistsException",
            ErrorKind::AccountLimitExceeded => "AccountLimitExceededException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::InternalFailure => "InternalFailure",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
            ErrorKind::InvalidParameter => "InvalidParameterException",
            ErrorKind::LogsServiceUnavailable => "ServiceUnavailableException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InternalFailure | ErrorKind::LogsServiceUnavailable => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A typed CodeBuild error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    /// CloudWatch Logs' InvalidParameterException.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    /// The service's "1 validation error detected" shape for a null required member.
    pub fn null_member(member: &str) -> Self {
        Self::invalid(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }

    /// The service's "1 validation error detected" shape for a constraint violation.
    pub fn constraint(value: &str, member: &str, constraint: &str) -> Self {
        Self::invalid(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    pub fn body(&self) -> Value {
        json!({ "__type": self.kind.type_name(), "message": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.kind.status(), &self.body())
    }
}

/// A JSON 1.1 response with the content type and a request id.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&uuid_like_request_id()) {
        headers.insert("x-amzn-RequestId", v);
    }
    resp
}

fn uuid_like_request_id() -> String {
    let b: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// The CodeBuild operation named by `X-Amz-Target`, if the header has the CodeBuild prefix.
pub fn operation(headers: &HeaderMap) -> Option<String> {
    target(headers)
        .filter(|t| t.service == Service::CodeBuild)
        .map(|t| t.operation)
}

/// The service and operation named by `X-Amz-Target` (CodeBuild or CloudWatch Logs prefix).
pub fn target(headers: &HeaderMap) -> Option<Target> {
    let value = headers.get("x-amz-target")?.to_str().ok()?;
    [
        (TARGET_PREFIX, Service::CodeBuild),
        (LOGS_TARGET_PREFIX, Service::Logs),
    ]
    .into_iter()
    .find_map(|(prefix, service)| {
        value.strip_prefix(prefix).map(|op| Target {
            service,
            operation: op.to_string(),
        })
    })
}

/// The access key id from a SigV4 `Authorization` header (`Credential=AKID/...`).
/// Signatures are not verified.
pub fn access_key_id(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let akid = cred.split('/').next()?.trim();
    (!akid.is_empty()).then(|| akid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_target_and_credential() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("CodeBuild_20161006.StartBuild"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/codebuild/aws4_request, SignedHeaders=host, Signature=abc",
            ),
        );
        assert_eq!(operation(&h).as_deref(), Some("StartBuild"));
        assert_eq!(access_key_id(&h).as_deref(), Some("AKIDEXAMPLE"));
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("Logs_20140328.GetLogEvents"),
        );
        assert_eq!(operation(&h), None);
        assert_eq!(
            target(&h),
            Some(Target {
                service: Service::Logs,
                operation: "GetLogEvents".into()
            })
        );
        h.insert("x-amz-target", HeaderValue::from_static("Other_1.X"));
        assert_eq!(target(&h), None);
    }

    #[test]
    fn error_body_shape() {
        let e = ApiError::invalid("Invalid build ID provided");
        assert_eq!(
            e.body(),
            json!({"__type": "InvalidInputException", "message": "Invalid build ID provided"})
        );
        assert_eq!(
            ApiError::new(ErrorKind::ServiceUnavailable, "x")
                .kind
                .status(),
            503
        );
    }
}
