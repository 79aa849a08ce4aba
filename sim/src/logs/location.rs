//! A build's `logs` member over time. Since a 2022 service change, StartBuild and early
//! BatchGetBuilds answers for a project without a configured log group carry no `groupName` /
//! `streamName` and a deepLink and ARN that name group and stream "null" until PROVISIONING
//! has finished (aws-actions/aws-codebuild-run-build#98, dark-mechanicum/aws-codebuild#39;
//! moto 5.2's StartBuild answers the same). With a configured group the names were there
//! from the start (the latter report).

use serde_json::{Value, json};

/// The CloudWatch group and stream a build writes, from its final `logs` member; None when
/// CloudWatch logs are disabled.
pub fn stream_of(logs: &Value) -> Option<(String, String)> {
    let group = logs.get("groupName")?.as_str()?;
    let stream = logs.get("streamName")?.as_str()?;
    Some((group.to_string(), stream.to_string()))
}

/// The default log group of a project's builds.
pub fn default_group(project: &str) -> String {
    format!("/aws/codebuild/{project}")
}

/// `logs` as shown while PROVISIONING runs for a build writing to its project's default group.
pub fn while_provisioning(logs: &Value, region: &str, account: &str) -> Value {
    let mut out = logs.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("groupName");
        m.remove("streamName");
        m.insert(
            "deepLink".into(),
            json!(format!(
                "https://console.aws.amazon.com/cloudwatch/home?region={region}#logEvent:group=null;stream=null"
            )),
        );
        m.insert(
            "cloudWatchLogsArn".into(),
            json!(format!(
                "arn:aws:logs:{region}:{account}:log-group:null:log-stream:null"
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_hidden_while_provisioning() {
        let logs = json!({
            "groupName": "/aws/codebuild/p", "streamName": "u",
            "deepLink": "x", "cloudWatchLogsArn": "y",
            "cloudWatchLogs": {"status": "ENABLED"},
            "s3Logs": {"status": "DISABLED", "encryptionDisabled": false}
        });
        assert_eq!(
            stream_of(&logs),
            Some(("/aws/codebuild/p".into(), "u".into()))
        );
        let early = while_provisioning(&logs, "eu-west-1", "111122223333");
        assert_eq!(
            early,
            json!({
                "deepLink": "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=null;stream=null",
                "cloudWatchLogsArn": "arn:aws:logs:eu-west-1:111122223333:log-group:null:log-stream:null",
                "cloudWatchLogs": {"status": "ENABLED"},
                "s3Logs": {"status": "DISABLED", "encryptionDisabled": false}
            })
        );
        assert_eq!(stream_of(&early), None);
    }
}
