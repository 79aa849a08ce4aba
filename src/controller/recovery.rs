//! Finding a build whose StartBuild answer was lost (a crash between StartBuild and the
//! status write, past the idempotency token's window).
//!
//! Every build the operator starts carries the marker variable with the object's uid.
//! ListBuildsForProject lists ids newest first; each page is fetched with BatchGetBuilds and
//! searched for the marker. The search ends at the first page that reaches builds started
//! before the attempt (everything after it is older still), or fails after a bounded number
//! of pages rather than risk starting a second build.

use aws_sdk_codebuild::types::Build;
use k8s_openapi::jiff::Timestamp;

use super::Error;
use crate::api::MARKER_ENV_VAR;
use crate::codebuild::{BATCH_GET_BUILDS_MAX_IDS, BuildApi, Target};

/// Most ListBuildsForProject pages searched (100 ids each).
const MAX_PAGES: usize = 20;
/// Clock skew tolerated between this machine and CodeBuild.
const CLOCK_SLACK_SECS: i64 = 120;

/// The project name in a `projectName` that may be a project ARN
/// (`arn:aws:codebuild:<region>:<account>:project/<name>`).
pub fn project_name(name_or_arn: &str) -> &str {
    match name_or_arn.strip_prefix("arn:") {
        Some(rest) => rest
            .rsplit_once(":project/")
            .map_or(name_or_arn, |(_, name)| name),
        None => name_or_arn,
    }
}

/// Whether `build` carries the marker of the object `uid`.
pub fn has_marker(build: &Build, uid: &str) -> bool {
    build
        .environment
        .as_ref()
        .and_then(|e| e.environment_variables.as_ref())
        .is_some_and(|vars| {
            vars.iter()
                .any(|v| v.name == MARKER_ENV_VAR && v.value == uid)
        })
}

/// Searches `project` for the build of object `uid` started at or after `since`.
pub async fn find_build<B: BuildApi>(
    api: &B,
    target: &Target,
    project: &str,
    uid: &str,
    since: Timestamp,
) -> Result<Option<Build>, Error> {
    let project = project_name(project);
    let horizon = since.as_second() - CLOCK_SLACK_SECS;
    let mut next_token = None;
    for _ in 0..MAX_PAGES {
        let page = api
            .list_builds_for_project(target, project, next_token)
            .await?;
        let mut reached_older = false;
        for chunk in page.ids.chunks(BATCH_GET_BUILDS_MAX_IDS) {
            let batch = api.batch_get_builds(target, chunk.to_vec()).await?;
            for build in batch.builds {
                if has_marker(&build, uid) {
                    return Ok(Some(build));
                }
                if build.start_time.is_some_and(|t| t.secs() < horizon) {
                    reached_older = true;
                }
            }
        }
        match page.next_token {
            Some(token) if !reached_older && !page.ids.is_empty() => next_token = Some(token),
            _ => return Ok(None),
        }
    }
    Err(Error::SearchIncomplete(format!(
        "searched {} builds of project {project} without reaching the start attempt; \
         not starting another build until the search completes",
        MAX_PAGES * 100
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_arn_gives_the_name() {
        assert_eq!(project_name("my-app"), "my-app");
        assert_eq!(
            project_name("arn:aws:codebuild:eu-west-1:123456789012:project/my-app"),
            "my-app"
        );
    }
}
