//! Artifact members of the StartBuild request (`ProjectArtifacts`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::api_enum;

api_enum! {
    /// Where the build's output goes: CODEPIPELINE, S3 or NO_ARTIFACTS.
    ArtifactsType {
        Codepipeline = "CODEPIPELINE",
        S3 = "S3",
        NoArtifacts = "NO_ARTIFACTS",
    }
}

api_enum! {
    /// Whether the build id is part of the S3 key: NONE or BUILD_ID
    /// (`<path>/<build-id>/<name>`).
    ArtifactNamespace {
        None = "NONE",
        BuildId = "BUILD_ID",
    }
}

api_enum! {
    /// How S3 artifacts are packaged: NONE (files as they are) or ZIP.
    ArtifactPackaging {
        None = "NONE",
        Zip = "ZIP",
    }
}

api_enum! {
    /// Access the bucket owner gets to objects the build writes into a bucket of another
    /// account: NONE, READ_ONLY or FULL.
    BucketOwnerAccess {
        None = "NONE",
        ReadOnly = "READ_ONLY",
        Full = "FULL",
    }
}

/// Where and how a build stores its output artifacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectArtifacts {
    /// Where the artifacts go. Required.
    #[serde(rename = "type")]
    pub type_: ArtifactsType,
    /// For S3: the bucket name. Ignored for CODEPIPELINE and NO_ARTIFACTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For S3: the key prefix under the bucket. Empty means the bucket root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For S3: whether the build id becomes part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_type: Option<ArtifactNamespace>,
    /// For S3: the object or folder name. With `overrideArtifactName`, the buildspec's
    /// `artifacts.name` (which may use shell variables) replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For S3: how the artifacts are packaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packaging: Option<ArtifactPackaging>,
    /// Let the buildspec's `artifacts.name` override `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_artifact_name: Option<bool>,
    /// Store the artifacts unencrypted (only for static websites and similar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_disabled: Option<bool>,
    /// Names a secondary artifact so the buildspec's `secondary-artifacts` can refer to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_identifier: Option<String>,
    /// Access the bucket owner gets when the bucket belongs to another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_owner_access: Option<BucketOwnerAccess>,
}
