//! Finding a build whose StartBuild answer was lost (a crash between StartBuild and the
//! status write, past the idempotency token's window), or a batch whose StartBuildBatch
//! answer was.
//!
//! Every build (and batch) the operator starts carries the marker variable with the
//! object's uid. ListBuildsForProject (ListBuildBatchesForProject) lists ids newest first;
//! each page is fetched with BatchGetBuilds (BatchGetBuildBatches) and searched for the
//! marker. The search ends at the first page that reaches builds started before the attempt
//! (everything after it is older still), or fails after a bounded number of pages rather
//! than risk starting a second build. One search, [`find`], for both kinds ([`Search`]).

use std::future::Future;

use aws_sdk_codebuild::types::{Build, BuildBatch, EnvironmentVariable};
use aws_smithy_types::DateTime;
use k8s_openapi::jiff::Timestamp;

use super::Error;
use crate::api::MARKER_ENV_VAR;
use crate::codebuild::{
    ApiError, BATCH_GET_BUILD_BATCHES_MAX_IDS, BATCH_GET_BUILDS_MAX_IDS, BatchApi, BuildApi,
    BuildIdPage, Target,
};

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
    marked(
        build
            .environment
            .as_ref()
            .and_then(|e| e.environment_variables.as_deref()),
        uid,
    )
}

/// Whether `variables` hold the marker of the object `uid`.
fn marked(variables: Option<&[EnvironmentVariable]>, uid: &str) -> bool {
    variables.is_some_and(|vars| {
        vars.iter()
            .any(|v| v.name == MARKER_ENV_VAR && v.value == uid)
    })
}

/// What a search lists and reads: builds or batches of a project.
pub trait Search: Sync {
    /// A build or a batch.
    type Found: Send;
    /// What is searched for, in messages ("builds", "batches").
    const WHAT: &'static str;
    /// One of them ("build", "batch").
    const ONE: &'static str;
    /// Most ids one read takes.
    const MAX_IDS: usize;
    /// One page of ids, newest first.
    fn page(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<BuildIdPage, ApiError>> + Send;
    /// The builds or batches of `ids`.
    fn read(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Self::Found>, ApiError>> + Send;
    /// Whether `found` carries the marker of object `uid`.
    fn has_marker(found: &Self::Found, uid: &str) -> bool;
    /// When `found` started.
    fn started(found: &Self::Found) -> Option<DateTime>;
}

/// The builds of a project.
pub struct Builds<'a, B>(pub &'a B);

/// The batches of a project.
pub struct Batches<'a, B>(pub &'a B);

impl<B: BuildApi> Search for Builds<'_, B> {
    type Found = Build;
    const WHAT: &'static str = "builds";
    const ONE: &'static str = "build";
    const MAX_IDS: usize = BATCH_GET_BUILDS_MAX_IDS;

    async fn page(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        self.0
            .list_builds_for_project(target, project, next_token)
            .await
    }

    async fn read(&self, target: &Target, ids: Vec<String>) -> Result<Vec<Build>, ApiError> {
        Ok(self.0.batch_get_builds(target, ids).await?.builds)
    }

    fn has_marker(found: &Build, uid: &str) -> bool {
        has_marker(found, uid)
    }

    fn started(found: &Build) -> Option<DateTime> {
        found.start_time
    }
}

impl<B: BatchApi> Search for Batches<'_, B> {
    type Found = BuildBatch;
    const WHAT: &'static str = "batches";
    const ONE: &'static str = "batch";
    const MAX_IDS: usize = BATCH_GET_BUILD_BATCHES_MAX_IDS;

    async fn page(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        self.0
            .list_build_batches_for_project(target, project, next_token)
            .await
    }

    async fn read(&self, target: &Target, ids: Vec<String>) -> Result<Vec<BuildBatch>, ApiError> {
        Ok(self.0.batch_get_build_batches(target, ids).await?.batches)
    }

    fn has_marker(found: &BuildBatch, uid: &str) -> bool {
        marked(
            found
                .environment
                .as_ref()
                .and_then(|e| e.environment_variables.as_deref()),
            uid,
        )
    }

    fn started(found: &BuildBatch) -> Option<DateTime> {
        found.start_time
    }
}

/// Searches `project` for the build of object `uid` started at or after `since`.
pub async fn find_build<B: BuildApi>(
    api: &B,
    target: &Target,
    project: &str,
    uid: &str,
    since: Timestamp,
) -> Result<Option<Build>, Error> {
    find(&Builds(api), target, project, uid, since).await
}

/// Searches `project` for the build or batch of object `uid` started at or after `since`.
pub async fn find<S: Search>(
    search: &S,
    target: &Target,
    project: &str,
    uid: &str,
    since: Timestamp,
) -> Result<Option<S::Found>, Error> {
    let project = project_name(project);
    let horizon = since.as_second() - CLOCK_SLACK_SECS;
    let mut next_token = None;
    for _ in 0..MAX_PAGES {
        let page = search.page(target, project, next_token).await?;
        let mut reached_older = false;
        for chunk in page.ids.chunks(S::MAX_IDS) {
            for found in search.read(target, chunk.to_vec()).await? {
                if S::has_marker(&found, uid) {
                    return Ok(Some(found));
                }
                if S::started(&found).is_some_and(|t| t.secs() < horizon) {
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
        "searched {} {} of project {project} without reaching the start attempt; \
         not starting another {} until the search completes",
        MAX_PAGES * 100,
        S::WHAT,
        S::ONE,
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
