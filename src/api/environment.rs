//! Build environment members of the StartBuild request: variables, image, compute and
//! registry credentials, fleet.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::api_enum;

api_enum! {
    /// How an environment variable's `value` is read: PLAINTEXT (the value itself),
    /// PARAMETER_STORE (the name of a Systems Manager parameter) or SECRETS_MANAGER (a
    /// Secrets Manager reference `secret-id:json-key:version-stage:version-id`).
    EnvironmentVariableType {
        Plaintext = "PLAINTEXT",
        ParameterStore = "PARAMETER_STORE",
        SecretsManager = "SECRETS_MANAGER",
    }
}

api_enum! {
    /// The kind of build environment: WINDOWS_CONTAINER, LINUX_CONTAINER,
    /// LINUX_GPU_CONTAINER, ARM_CONTAINER, WINDOWS_SERVER_2019_CONTAINER,
    /// WINDOWS_SERVER_2022_CONTAINER, LINUX_LAMBDA_CONTAINER, ARM_LAMBDA_CONTAINER, LINUX_EC2,
    /// ARM_EC2, WINDOWS_EC2 or MAC_ARM.
    EnvironmentType {
        WindowsContainer = "WINDOWS_CONTAINER",
        LinuxContainer = "LINUX_CONTAINER",
        LinuxGpuContainer = "LINUX_GPU_CONTAINER",
        ArmContainer = "ARM_CONTAINER",
        WindowsServer2019Container = "WINDOWS_SERVER_2019_CONTAINER",
        WindowsServer2022Container = "WINDOWS_SERVER_2022_CONTAINER",
        LinuxLambdaContainer = "LINUX_LAMBDA_CONTAINER",
        ArmLambdaContainer = "ARM_LAMBDA_CONTAINER",
        LinuxEc2 = "LINUX_EC2",
        ArmEc2 = "ARM_EC2",
        WindowsEc2 = "WINDOWS_EC2",
        MacArm = "MAC_ARM",
    }
}

api_enum! {
    /// The size of the build machine: BUILD_GENERAL1_SMALL, _MEDIUM, _LARGE, _XLARGE,
    /// _2XLARGE, BUILD_LAMBDA_1GB, _2GB, _4GB, _8GB, _10GB, ATTRIBUTE_BASED_COMPUTE or
    /// CUSTOM_INSTANCE_TYPE. Which ones are valid depends on the environment type.
    ComputeType {
        BuildGeneral1Small = "BUILD_GENERAL1_SMALL",
        BuildGeneral1Medium = "BUILD_GENERAL1_MEDIUM",
        BuildGeneral1Large = "BUILD_GENERAL1_LARGE",
        BuildGeneral1Xlarge = "BUILD_GENERAL1_XLARGE",
        BuildGeneral12xlarge = "BUILD_GENERAL1_2XLARGE",
        BuildLambda1gb = "BUILD_LAMBDA_1GB",
        BuildLambda2gb = "BUILD_LAMBDA_2GB",
        BuildLambda4gb = "BUILD_LAMBDA_4GB",
        BuildLambda8gb = "BUILD_LAMBDA_8GB",
        BuildLambda10gb = "BUILD_LAMBDA_10GB",
        AttributeBasedCompute = "ATTRIBUTE_BASED_COMPUTE",
        CustomInstanceType = "CUSTOM_INSTANCE_TYPE",
    }
}

api_enum! {
    /// Which credentials pull the build image: CODEBUILD (CodeBuild's own, for curated
    /// images) or SERVICE_ROLE (the project's service role, for images in your registries).
    ImagePullCredentialsType {
        Codebuild = "CODEBUILD",
        ServiceRole = "SERVICE_ROLE",
    }
}

api_enum! {
    /// Where a private registry credential is stored: SECRETS_MANAGER.
    CredentialProviderType {
        SecretsManager = "SECRETS_MANAGER",
    }
}

api_enum! {
    /// The host kernel of EC2 compute: LINUX_KERNEL_4, LINUX_KERNEL_6 or LINUX_KERNEL_LATEST.
    HostKernelType {
        LinuxKernel4 = "LINUX_KERNEL_4",
        LinuxKernel6 = "LINUX_KERNEL_6",
        LinuxKernelLatest = "LINUX_KERNEL_LATEST",
    }
}

/// An environment variable of the build. Never put secrets in PLAINTEXT values: they are
/// visible to anyone who can read this object or the build in the AWS console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentVariable {
    /// The variable's name. Required, non-empty.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The value, or for PARAMETER_STORE and SECRETS_MANAGER the reference to it. Required.
    pub value: String,
    /// How `value` is read. PLAINTEXT when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<EnvironmentVariableType>,
}

/// Credentials for pulling the build image from a private registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryCredential {
    /// The ARN or name of the Secrets Manager secret holding the registry credentials.
    /// Required, non-empty.
    #[schemars(length(min = 1))]
    pub credential: String,
    /// Where the credential is stored. Required.
    pub credential_provider: CredentialProviderType,
}

/// A reserved-capacity fleet to run the build on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectFleet {
    /// The ARN of the compute fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_arn: Option<String>,
}
