//! The `CodeBuildRun` and `CodeBuildBatchRun` APIs (`codebuild.operator.dev/v1alpha1`).
//!
//! The spec IS an AWS CodeBuild `StartBuild` request: the same member names, the same nesting,
//! every member of the current service model. A StartBuild JSON pasted under `spec:` means
//! the same thing. The few fields that belong to the operator rather than to AWS live under
//! `spec.operator`, a name the API does not use, so they can never collide with a member.
//!
//! This module holds types and schema only; it does no I/O.

mod artifacts;
mod batch;
mod build_state;
mod cache_logs;
mod environment;
pub mod names;
mod options;
mod policy;
mod schema;
mod source;
mod spec;
mod started;
mod status;

pub use artifacts::*;
pub use batch::*;
pub use build_state::FINAL_BUILD_STATUSES;
#[cfg(test)]
pub(crate) use build_state::sample_build;
pub use cache_logs::*;
pub use environment::*;
pub use names::{FIELD_MANAGER, FINALIZER, MARKER_ENV_VAR, START_ATTEMPT_ANNOTATION};
pub use options::*;
pub use policy::*;
pub use source::*;
pub use spec::*;
pub use started::{RunStatus, Started};
pub use status::*;

/// The API group of every kind this operator serves.
pub const GROUP: &str = "codebuild.operator.dev";

/// Declares a string enumeration of the CodeBuild API: serde names and the schema's `enum`
/// are the API's values, and `as_str` gives the wire value for the SDK.
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        pub enum $name {
            $(#[serde(rename = $value)] $variant,)+
        }

        impl $name {
            /// Every value, in the service model's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value on the wire, as the CodeBuild API spells it.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use api_enum;
