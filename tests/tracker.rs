//! The tracker batches every in-flight build into BatchGetBuilds calls of at most 100 ids
//! per region, triggers owners only on change, and stops polling finished or unknown builds.

use std::sync::{Arc, Mutex};

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::{Build, StatusType};
use codebuild_operator::api::CodeBuildRun;
use codebuild_operator::codebuild::{
    ApiError, BuildApi, BuildBatch, BuildIdPage, ErrorKind, Target,
};
use codebuild_operator::tracker::{Observation, Tracker};
use futures::StreamExt;
use kube::runtime::reflector::ObjectRef;

struct Fake {
    calls: Mutex<Vec<(String, usize)>>,
    status: Mutex<StatusType>,
    missing: Mutex<Vec<String>>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            calls: Mutex::default(),
            status: Mutex::new(StatusType::InProgress),
            missing: Mutex::default(),
        }
    }
}

impl BuildApi for Fake {
    async fn start_build(&self, _: &Target, _: StartBuildInput) -> Result<Build, ApiError> {
        Err(ApiError::new(ErrorKind::Other, None, "not used"))
    }
    async fn batch_get_builds(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> Result<BuildBatch, ApiError> {
        assert!(ids.len() <= 100, "more than 100 ids in one call");
        self.calls
            .lock()
            .unwrap()
            .push((target.region.clone(), ids.len()));
        let missing = self.missing.lock().unwrap().clone();
        let status = self.status.lock().unwrap().clone();
        Ok(BuildBatch {
            builds: ids
                .iter()
                .filter(|id| !missing.contains(id))
                .map(|id| {
                    Build::builder()
                        .id(id)
                        .build_status(status.clone())
                        .current_phase("BUILD")
                        .build()
                })
                .collect(),
            not_found: ids.into_iter().filter(|id| missing.contains(id)).collect(),
        })
    }
    async fn stop_build(&self, _: &Target, _: &str) -> Result<Build, ApiError> {
        Err(ApiError::new(ErrorKind::Other, None, "not used"))
    }
    async fn list_builds_for_project(
        &self,
        _: &Target,
        _: &str,
        _: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        Err(ApiError::new(ErrorKind::Other, None, "not used"))
    }
}

fn owner(i: usize) -> ObjectRef<CodeBuildRun> {
    ObjectRef::new(&format!("run-{i}")).within("ns")
}

#[tokio::test]
async fn one_round_polls_every_build_in_calls_of_at_most_100_per_region() {
    let fake = Arc::new(Fake::default());
    let tracker = Tracker::new(fake.clone());
    for i in 0..250 {
        tracker.track(&Target::region("us-east-1"), &format!("p:{i}"), owner(i));
    }
    for i in 0..30 {
        tracker.track(
            &Target::region("eu-west-1"),
            &format!("q:{i}"),
            owner(1000 + i),
        );
    }
    let stats = tracker.round().await;
    assert_eq!(stats.builds, 280);
    assert_eq!(stats.calls, 4);
    let mut calls = fake.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        vec![
            ("eu-west-1".into(), 30),
            ("us-east-1".into(), 50),
            ("us-east-1".into(), 100),
            ("us-east-1".into(), 100)
        ]
    );
}

#[tokio::test]
async fn owners_are_triggered_only_when_their_build_changes() {
    let fake = Arc::new(Fake::default());
    let tracker = Tracker::new(fake.clone());
    let mut triggers = tracker.triggers(Some("ns".into()));
    tracker.track(&Target::region("us-east-1"), "p:1", owner(1));
    assert_eq!(tracker.round().await.changed, 1);
    assert_eq!(triggers.next().await, Some(owner(1)));
    assert_eq!(tracker.round().await.changed, 0, "same build, no trigger");
    *fake.status.lock().unwrap() = StatusType::Succeeded;
    assert_eq!(tracker.round().await.changed, 1);
    assert_eq!(triggers.next().await, Some(owner(1)));
    // Finished builds cost nothing: no more calls.
    let before = fake.calls.lock().unwrap().len();
    let stats = tracker.round().await;
    assert_eq!((stats.builds, stats.calls), (0, 0));
    assert_eq!(fake.calls.lock().unwrap().len(), before);
    assert_eq!(tracker.in_flight(), 0);
    assert!(
        matches!(tracker.observation("p:1"), Some(Observation::Build(_))),
        "kept until forgotten"
    );
    tracker.forget("p:1");
    assert_eq!(tracker.observation("p:1"), None);
}

#[tokio::test]
async fn unknown_builds_are_reported_and_not_polled_again() {
    let fake = Arc::new(Fake::default());
    fake.missing.lock().unwrap().push("p:gone".into());
    let tracker = Tracker::new(fake.clone());
    tracker.track(&Target::region("us-east-1"), "p:gone", owner(1));
    tracker.round().await;
    assert_eq!(tracker.observation("p:gone"), Some(Observation::NotFound));
    assert_eq!(tracker.round().await.calls, 0);
}

#[tokio::test]
async fn triggers_are_routed_by_namespace() {
    let fake = Arc::new(Fake::default());
    let tracker = Tracker::new(fake.clone());
    let mut a = tracker.triggers(Some("a".into()));
    let mut all = tracker.triggers(None);
    tracker.track(
        &Target::region("us-east-1"),
        "p:1",
        ObjectRef::new("x").within("b"),
    );
    tracker.round().await;
    assert_eq!(all.next().await.unwrap().namespace.as_deref(), Some("b"));
    assert!(
        a.try_recv().is_err(),
        "namespace a must not be woken for namespace b"
    );
}

/// With a trigger limit, at most that many owners are triggered and not yet reconciled; each
/// reported reconcile lets the next waiting owner through, oldest first.
#[tokio::test]
async fn triggers_are_paced_by_reported_reconciles() {
    let fake = Arc::new(Fake::default());
    let tracker = Tracker::new(fake.clone()).with_trigger_limit(3);
    let mut triggers = tracker.triggers(None);
    for i in 0..10 {
        tracker.track(&Target::region("us-east-1"), &format!("p:{i}"), owner(i));
    }
    assert_eq!(tracker.round().await.changed, 10);
    let mut first = Vec::new();
    while let Ok(o) = triggers.try_recv() {
        first.push(o);
    }
    assert_eq!(first.len(), 3, "{first:?}");
    tracker.reconciled(&first[0]);
    let next = triggers.try_recv().expect("one more trigger");
    assert!(!first.contains(&next));
    assert!(triggers.try_recv().is_err(), "only one slot was freed");
    for o in first.iter().skip(1).chain([&next]) {
        tracker.reconciled(o);
    }
    let mut rest = Vec::new();
    while let Ok(o) = triggers.try_recv() {
        rest.push(o);
    }
    assert_eq!(rest.len(), 3, "{rest:?}");
}
