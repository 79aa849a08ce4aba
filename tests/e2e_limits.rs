//! End to end, starts paced by the service: under an account's concurrent build limit runs
//! wait in one queue, in creation order, with their place in their conditions, and only the
//! queue's head probes (at most one refused StartBuild per poll interval); under a request
//! rate limit the SDK's adaptive mode keeps throttled StartBuild calls few. The simulator
//! plays both limits.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use codebuild_sim::{Faults, SimConfig};
use kube::api::ListParams;
use serde_json::json;
use support::condition;
use support::world::World;

/// Creates `n` runs `<prefix>-NN` of project `app` whose phases take `phase` seconds.
async fn create_runs(world: &World, prefix: &str, n: usize, phase: f64) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i:02}");
        let spec = json!({"projectName": "app", "environmentVariablesOverride": [
            {"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": phase.to_string()}]});
        world.create(&name, spec).await;
        names.push(name);
    }
    names
}

/// Polls until every run succeeded; returns the queue messages seen on the way.
async fn wait_all_succeeded(world: &World, n: usize, timeout: Duration) -> BTreeSet<String> {
    let deadline = Instant::now() + timeout;
    let mut queued = BTreeSet::new();
    loop {
        let runs = world
            .runs
            .list(&ListParams::default())
            .await
            .expect("listing runs");
        for run in &runs.items {
            if let Some(c) = condition(run, "Reconciling")
                && c.reason == "AccountLimitExceeded"
            {
                queued.insert(c.message.clone());
            }
        }
        let done = runs
            .items
            .iter()
            .filter(|r| condition(r, "Succeeded").is_some_and(|c| c.status == "True"))
            .count();
        if done == n {
            return queued;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {n} succeeded in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_account_limit_runs_queue_and_only_the_head_probes() {
    let mut world = World::start_with("limit", SimConfig::default(), &["app"], &[]).await;
    world.state().set_faults(Faults {
        max_concurrent_builds: Some(3),
        ..Faults::default()
    });
    world.restart_operator(&[]);
    let began = Instant::now();
    create_runs(&world, "q", 12, 0.15).await;
    let queued = wait_all_succeeded(&world, 12, Duration::from_secs(120)).await;
    let took = began.elapsed();
    let counters = world.state().counters();
    let refused = counters.account_limit_exceeded;
    // The operator reconciles up to 16 runs at once: the first refusals come from the starts
    // already under way when the limit was first met. After that, one probe per poll
    // interval (500 ms here) at most.
    let intervals = (took.as_secs_f64() / 0.5).ceil() as u64;
    println!("12 runs at a limit of 3: {took:?}, {refused} refused StartBuild calls");
    assert!(
        refused <= 12 + intervals,
        "{refused} refused StartBuild calls in {took:?}"
    );
    assert!(
        queued.iter().any(|m| m.contains("position 1 of")),
        "no queue position seen: {queued:?}"
    );
    assert_eq!(world.builds_per_uid().len(), 12, "one build per run");
    assert!(world.builds_per_uid().values().all(|b| b.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_request_rate_limit_starts_are_paced() {
    let config = SimConfig::default();
    let mut world = World::start_with("rate", config, &["app"], &[]).await;
    let limit = codebuild_sim::RateLimit {
        rate_per_second: 5.0,
        burst: Some(5),
    };
    world.state().set_rate_limits(codebuild_sim::RateLimits(
        [("StartBuild".to_owned(), limit)].into_iter().collect(),
    ));
    world.restart_operator(&[]);
    let began = Instant::now();
    create_runs(&world, "r", 40, 0.05).await;
    wait_all_succeeded(&world, 40, Duration::from_secs(120)).await;
    let counters = world.state().counters();
    let calls = counters.calls.get("StartBuild").copied().unwrap_or(0);
    let throttled = counters
        .rate_limited
        .get("StartBuild")
        .copied()
        .unwrap_or(0);
    println!(
        "40 runs at 5 StartBuild/s: {:?}, {calls} StartBuild requests, {throttled} throttled",
        began.elapsed()
    );
    assert_eq!(world.builds_per_uid().len(), 40, "one build per run");
    assert!(world.builds_per_uid().values().all(|b| b.len() == 1));
    assert!(
        throttled * 4 <= calls,
        "{throttled} of {calls} StartBuild requests throttled"
    );
}
