//! The tracker polls what the watched runs record: every build that is not final, batched
//! into BatchGetBuilds calls of at most 100 ids per region; it triggers runs only when their
//! build changes, stops polling finished or unknown builds, and forgets builds whose runs no
//! longer need them. Triggers are paced by the reconciles reported back. Batch runs' batches
//! the same way, with BatchGetBuildBatches.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_codebuild::types::StatusType;
use codebuild_operator::api::{CodeBuildBatchRun, CodeBuildRun};
use codebuild_operator::tracker::{BatchTracker, Observation, Tracker, paced};
use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use support::fake::{FakeCodeBuild, run_with_build};
use support::fake_batch::batch;

fn owner(i: usize) -> ObjectRef<CodeBuildRun> {
    ObjectRef::new(&format!("run-{i}")).within("ns")
}

/// A tracker following one watch cache, with a fake that answers every id IN_PROGRESS.
fn tracker() -> (
    Arc<FakeCodeBuild>,
    Tracker<FakeCodeBuild>,
    Writer<CodeBuildRun>,
) {
    let fake = Arc::new(FakeCodeBuild::default());
    *fake.answer_any.lock().unwrap() = Some(StatusType::InProgress);
    let tracker = Tracker::new(fake.clone(), "us-east-1");
    let (store, writer) = reflector::store();
    tracker.follow(store);
    (fake, tracker, writer)
}

fn watched(writer: &mut Writer<CodeBuildRun>, run: CodeBuildRun) {
    writer.apply_watcher_event(&watcher::Event::Apply(run));
}

/// Run `run-<i>` in `ns` with build `id`, recorded as just submitted (no phase yet).
fn submitted(i: usize, id: &str, region: &str) -> CodeBuildRun {
    run_with_build(&format!("run-{i}"), "ns", id, "IN_PROGRESS", region)
}

#[tokio::test]
async fn one_round_polls_every_build_in_calls_of_at_most_100_per_region() {
    let (fake, tracker, mut writer) = tracker();
    for i in 0..250 {
        watched(&mut writer, submitted(i, &format!("p:{i}"), "us-east-1"));
    }
    for i in 0..30 {
        watched(
            &mut writer,
            submitted(1000 + i, &format!("q:{i}"), "eu-west-1"),
        );
    }
    let stats = tracker.round().await;
    assert_eq!(stats.builds, 280);
    assert_eq!(stats.calls, 4);
    let mut calls = fake.batch_calls.lock().unwrap().clone();
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
    let (fake, tracker, mut writer) = tracker();
    let mut triggers = tracker.triggers(Some("ns".into()));
    watched(&mut writer, submitted(1, "p:1", "us-east-1"));
    assert_eq!(
        tracker.round().await.changed,
        1,
        "the build entered phase BUILD"
    );
    assert_eq!(triggers.next().await, Some(owner(1)));
    assert_eq!(tracker.round().await.changed, 0, "same build, no trigger");
    *fake.answer_any.lock().unwrap() = Some(StatusType::Succeeded);
    assert_eq!(tracker.round().await.changed, 1);
    assert_eq!(triggers.next().await, Some(owner(1)));
    // Finished builds cost nothing: no more calls.
    let before = fake.batch_calls.lock().unwrap().len();
    let stats = tracker.round().await;
    assert_eq!((stats.builds, stats.calls), (0, 0));
    assert_eq!(fake.batch_calls.lock().unwrap().len(), before);
    assert_eq!(tracker.in_flight(), 0);
    assert!(
        matches!(tracker.observation("p:1"), Some(Observation::Build(_))),
        "kept until the run records it"
    );
    // The run mirrors the final build: it leaves the polling set, and the cache.
    watched(
        &mut writer,
        run_with_build("run-1", "ns", "p:1", "SUCCEEDED", "us-east-1"),
    );
    tracker.round().await;
    assert_eq!(tracker.observation("p:1"), None);
}

#[tokio::test]
async fn a_build_recorded_in_status_is_polled_without_being_registered() {
    // After a restart or a leader change: whatever the runs record is polled again, and a
    // build that did not change since it was recorded triggers nothing.
    let (fake, tracker, mut writer) = tracker();
    *fake.answer_any.lock().unwrap() = None;
    let mut run = submitted(1, "p:1", "us-east-1");
    let recorded = support::fake::build("p:1", StatusType::InProgress, "BUILD", "uid-run-1");
    run.status.as_mut().unwrap().build = codebuild_operator::convert::build_info(&recorded);
    fake.builds.lock().unwrap().push(recorded);
    watched(&mut writer, run);
    let stats = tracker.round().await;
    assert_eq!((stats.builds, stats.calls, stats.changed), (1, 1, 0));
}

#[tokio::test]
async fn unknown_builds_are_reported_and_not_polled_again() {
    let (fake, tracker, mut writer) = tracker();
    fake.missing.lock().unwrap().push("p:gone".into());
    watched(&mut writer, submitted(1, "p:gone", "us-east-1"));
    tracker.round().await;
    assert_eq!(tracker.observation("p:gone"), Some(Observation::NotFound));
    assert_eq!(tracker.round().await.calls, 0);
}

#[tokio::test]
async fn triggers_are_routed_by_namespace() {
    let (_fake, tracker, mut writer) = tracker();
    let mut a = tracker.triggers(Some("a".into()));
    let mut all = tracker.triggers(None);
    watched(
        &mut writer,
        run_with_build("x", "b", "p:1", "IN_PROGRESS", "us-east-1"),
    );
    tracker.round().await;
    assert_eq!(all.next().await.unwrap().namespace.as_deref(), Some("b"));
    assert!(
        a.try_recv().is_err(),
        "namespace a must not be woken for namespace b"
    );
}

/// The next item, if one comes within 100 ms.
async fn next_soon<S: futures::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    tokio::time::timeout(Duration::from_millis(100), s.next())
        .await
        .ok()
        .flatten()
}

/// Paced, at most that many owners are triggered and not yet reconciled; each reported
/// reconcile lets the next waiting owner through, oldest first.
#[tokio::test]
async fn triggers_are_paced_by_reported_reconciles() {
    let (_fake, tracker, mut writer) = tracker();
    let (triggers, pace) = paced(tracker.triggers(None), 3, Duration::from_secs(30));
    let mut triggers = Box::pin(triggers);
    for i in 0..10 {
        watched(&mut writer, submitted(i, &format!("p:{i}"), "us-east-1"));
    }
    assert_eq!(tracker.round().await.changed, 10);
    let mut first = Vec::new();
    while let Some(o) = next_soon(&mut triggers).await {
        first.push(o);
    }
    assert_eq!(first.len(), 3, "{first:?}");
    pace.done(&first[0]);
    let one_more = next_soon(&mut triggers).await.expect("one more trigger");
    assert!(!first.contains(&one_more));
    assert!(
        next_soon(&mut triggers).await.is_none(),
        "only one slot was freed"
    );
    for o in first.iter().skip(1).chain([&one_more]) {
        pace.done(o);
    }
    let mut rest = Vec::new();
    while let Some(o) = next_soon(&mut triggers).await {
        rest.push(o);
    }
    assert_eq!(rest.len(), 3, "{rest:?}");
}

/// One id CodeBuild refuses fails a whole BatchGetBuilds call: the tracker splits the call
/// until only that id is left, sets it aside, and polls every other build the same round.
#[tokio::test]
async fn a_refused_id_is_isolated_and_every_other_build_is_polled() {
    let (fake, tracker, mut writer) = tracker();
    let mut triggers = tracker.triggers(None);
    for i in 0..99 {
        watched(&mut writer, submitted(i, &format!("p:{i}"), "us-east-1"));
    }
    watched(&mut writer, submitted(99, "p:poison", "us-east-1"));
    fake.rejected.lock().unwrap().push("p:poison".into());
    let stats = tracker.round().await;
    assert_eq!(
        stats.changed, 100,
        "99 builds in BUILD, one set aside: {stats:?}"
    );
    for i in 0..99 {
        assert!(
            matches!(
                tracker.observation(&format!("p:{i}")),
                Some(Observation::Build(_))
            ),
            "p:{i}"
        );
    }
    assert!(matches!(
        tracker.observation("p:poison"),
        Some(Observation::Invalid(why)) if why.contains("Invalid build ID")
    ));
    let calls = fake.batch_calls.lock().unwrap().len();
    assert!(
        calls <= 1 + 2 * 7,
        "{calls} calls to isolate one id among 100"
    );
    let mut woken = 0;
    while next_soon(&mut triggers).await.is_some() {
        woken += 1;
    }
    assert_eq!(woken, 100);
    // The next round polls the 99 without it, in one call.
    fake.batch_calls.lock().unwrap().clear();
    let stats = tracker.round().await;
    assert_eq!((stats.builds, stats.calls, stats.failed_calls), (99, 1, 0));
}

/// An id not of the service's form is never sent.
#[tokio::test]
async fn a_malformed_id_is_set_aside_without_a_call() {
    let (fake, tracker, mut writer) = tracker();
    watched(&mut writer, submitted(1, "not a build id", "us-east-1"));
    let stats = tracker.round().await;
    assert_eq!((stats.calls, stats.changed), (0, 1));
    assert!(fake.batch_calls.lock().unwrap().is_empty());
    assert!(matches!(
        tracker.observation("not a build id"),
        Some(Observation::Invalid(_))
    ));
    assert_eq!(tracker.round().await.changed, 0, "set aside once");
}

// === batches ===

/// Batch run `b-<i>` in `ns` whose status records batch `id` (status `status`), started in
/// `region`.
fn batch_run(i: usize, id: &str, status: &str, region: &str) -> CodeBuildBatchRun {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildBatchRun",
        "metadata": {"name": format!("b-{i}"), "namespace": "ns", "uid": format!("uid-b-{i}")},
        "spec": {"projectName": "p"},
        "status": {"id": id, "buildBatchStatus": status,
                   "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                                    "region": region}},
    }))
    .unwrap()
}

#[tokio::test]
async fn batches_are_polled_in_calls_of_at_most_100_and_finished_ones_cost_nothing() {
    let fake = Arc::new(FakeCodeBuild::default());
    let tracker = BatchTracker::new(fake.clone(), "us-east-1");
    let (store, mut writer) = reflector::store::<CodeBuildBatchRun>();
    tracker.follow(store);
    let mut triggers = tracker.triggers(None);
    for i in 0..250 {
        let id = format!("p:{i}");
        fake.batches
            .lock()
            .unwrap()
            .push(batch(&id, StatusType::InProgress, "IN_PROGRESS", "u"));
        let run = batch_run(i, &id, "IN_PROGRESS", "us-east-1");
        writer.apply_watcher_event(&watcher::Event::Apply(run));
    }
    for i in 0..30 {
        let id = format!("q:{i}");
        fake.batches
            .lock()
            .unwrap()
            .push(batch(&id, StatusType::InProgress, "IN_PROGRESS", "u"));
        let run = batch_run(1000 + i, &id, "IN_PROGRESS", "eu-west-1");
        writer.apply_watcher_event(&watcher::Event::Apply(run));
    }
    // A final batch and an id not of the service's form are never sent.
    let done = batch_run(2000, "p:done", "SUCCEEDED", "us-east-1");
    writer.apply_watcher_event(&watcher::Event::Apply(done));
    let odd = batch_run(2001, "not-an-id", "IN_PROGRESS", "us-east-1");
    writer.apply_watcher_event(&watcher::Event::Apply(odd));

    let stats = tracker.round().await;
    assert_eq!((stats.builds, stats.calls), (280, 4));
    let mut calls = fake.batch_batch_calls.lock().unwrap().clone();
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
    assert!(matches!(
        tracker.cache().get("not-an-id"),
        Some(Observation::Invalid(_))
    ));
    // Every batch changed (its phase), and the odd id was set aside: each run is woken.
    assert_eq!(stats.changed, 281);
    let mut woken = 0;
    while woken < 281 {
        triggers.next().await.expect("a trigger");
        woken += 1;
    }
    // Nothing changed: no trigger. One batch ends: only its run is woken.
    assert_eq!(tracker.round().await.changed, 0);
    fake.set_batch_status("p:7", StatusType::Succeeded, "SUCCEEDED");
    assert_eq!(tracker.round().await.changed, 1);
    assert_eq!(
        triggers.next().await,
        Some(ObjectRef::new("b-7").within("ns"))
    );
    // Once the run records the final batch, it costs nothing.
    let before = fake.batch_batch_calls.lock().unwrap().len();
    for i in 0..250 {
        let run = batch_run(i, &format!("p:{i}"), "FAILED", "us-east-1");
        writer.apply_watcher_event(&watcher::Event::Apply(run));
    }
    let stats = tracker.round().await;
    assert_eq!(
        (stats.builds, stats.calls),
        (30, 1),
        "only eu-west-1's are live"
    );
    assert_eq!(fake.batch_batch_calls.lock().unwrap().len(), before + 1);
}

#[tokio::test]
async fn while_runs_wait_for_the_build_limit_their_targets_builds_are_polled_between_rounds() {
    use codebuild_operator::codebuild::Target;
    use codebuild_operator::tracker::{Capacity, RunKey};
    use std::collections::BTreeSet;
    let fake = Arc::new(FakeCodeBuild::default());
    *fake.answer_any.lock().unwrap() = Some(StatusType::InProgress);
    let capacity = Capacity::new(Duration::from_secs(5));
    let tracker = Tracker::new(fake.clone(), "us-east-1").with_capacity(capacity.clone());
    let (store, mut writer) = reflector::store();
    tracker.follow(store);
    let mut triggers = tracker.triggers(Some("ns".into()));
    watched(&mut writer, submitted(1, "p:1", "us-east-1"));
    watched(&mut writer, submitted(2, "q:1", "eu-west-1"));
    tracker.round().await;
    let mut first = [triggers.next().await, triggers.next().await].map(|o| o.unwrap().name);
    first.sort();
    assert_eq!(first, ["run-1", "run-2"]);
    // A run waits in us-east-1's queue.
    let east = Target {
        region: "us-east-1".into(),
        role: None,
    };
    let waiting = RunKey {
        created: 0,
        namespace: "ns".into(),
        name: "run-9".into(),
    };
    capacity.refused(&east, &waiting, std::time::Instant::now());
    assert_eq!(capacity.queued_targets(), BTreeSet::from([east.clone()]));
    // The build of that target ends: a queued round sees it, frees a slot and wakes the
    // head; the other Region's build is not polled.
    *fake.answer_any.lock().unwrap() = Some(StatusType::Succeeded);
    let calls = fake.batch_calls.lock().unwrap().len();
    let stats = tracker.queued_round(&capacity.queued_targets()).await;
    assert_eq!((stats.builds, stats.calls, stats.changed), (1, 1, 1));
    assert_eq!(
        fake.batch_calls.lock().unwrap()[calls..],
        [("us-east-1".to_string(), 1)]
    );
    let mut woken = [triggers.next().await, triggers.next().await].map(|o| o.unwrap().name);
    woken.sort();
    assert_eq!(
        woken,
        ["run-1", "run-9"],
        "the build's run, and the head of the queue"
    );
}
