//! Per-operation rate limits over HTTP: configured at start, changed at runtime through the
//! admin API and SimState, answered as ThrottlingException and counted per operation.

mod common;

use codebuild_sim::{RateLimit, RateLimits, Server, SimConfig};
use common::{admin_get, admin_post, call, call_logs};
use serde_json::json;
use std::collections::BTreeMap;

async fn sim(limits: RateLimits) -> Server {
    Server::start(SimConfig {
        time_scale: 0.001,
        projects: vec!["demo".into()],
        seed: Some(3),
        rate_limits: limits,
        ..SimConfig::default()
    })
    .await
    .expect("start")
}

/// A limit that does not refill during a test: exactly `burst` calls pass.
fn fixed(burst: u32) -> RateLimit {
    RateLimit {
        rate_per_second: 0.0001,
        burst: Some(burst),
    }
}

#[tokio::test]
async fn configured_limit_throttles_one_operation() {
    let limits = RateLimits(BTreeMap::from([("StartBuild".to_string(), fixed(2))]));
    let sim = sim(limits).await;
    for _ in 0..2 {
        let r = call(&sim, "StartBuild", json!({"projectName": "demo"})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = call(&sim, "StartBuild", json!({"projectName": "demo"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
    );
    let r = call(&sim, "ListBuildsForProject", json!({"projectName": "demo"})).await;
    assert_eq!(r.status, 200, "other operations have no limit");
    let c = sim.state().counters();
    assert_eq!(c.calls.get("StartBuild"), Some(&3));
    assert_eq!(c.rate_limited.get("StartBuild"), Some(&1));
    assert_eq!(c.throttled_by_operation.get("StartBuild"), Some(&1));
    assert_eq!(c.throttled, 1);
    assert_eq!(sim.state().starts().len(), 2);
    let r = admin_get(&sim, "/_sim/counters").await;
    assert_eq!(r.body["rateLimited"], json!({"StartBuild": 1}));
    assert_eq!(r.body["throttledByOperation"], json!({"StartBuild": 1}));
    sim.shutdown().await;
}

#[tokio::test]
async fn limits_change_at_runtime_and_cover_the_logs_endpoint() {
    let sim = sim(RateLimits::default()).await;
    let r = admin_get(&sim, "/_sim/rate-limits").await;
    assert_eq!(r.body, json!({}));
    let r = admin_post(
        &sim,
        "/_sim/rate-limits",
        json!({"*": {"ratePerSecond": 0.0001, "burst": 1}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"*": {"ratePerSecond": 0.0001, "burst": 1}}));
    // Each operation has its own bucket under the `*` limit.
    assert_eq!(
        call(&sim, "BatchGetBuilds", json!({"ids": ["demo:x"]}))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&sim, "BatchGetBuilds", json!({"ids": ["demo:x"]}))
            .await
            .status,
        400
    );
    let get = json!({"logGroupName": "/aws/codebuild/demo", "logStreamName": "x"});
    assert_eq!(
        call_logs(&sim, "GetLogEvents", get.clone()).await.status,
        400,
        "not found"
    );
    let r = call_logs(&sim, "GetLogEvents", get).await;
    assert_eq!(r.body["__type"], "ThrottlingException");
    let c = sim.state().counters();
    assert_eq!(
        c.rate_limited,
        BTreeMap::from([
            ("BatchGetBuilds".to_string(), 1),
            ("GetLogEvents".to_string(), 1)
        ])
    );

    sim.state().set_rate_limits(RateLimits::default());
    assert_eq!(
        call(&sim, "BatchGetBuilds", json!({"ids": ["demo:x"]}))
            .await
            .status,
        200
    );

    let r = admin_post(
        &sim,
        "/_sim/rate-limits",
        json!({"X": {"ratePerSecond": -1}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = admin_post(&sim, "/_sim/rate-limits", json!({"X": {"perSecond": 1}})).await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refilling_bucket_admits_the_rate() {
    // 5 calls per second, burst 1: after a refusal, 250 ms is enough for the next token.
    let limits = RateLimits::from_specs(&["BatchGetBuilds=5/s,burst=1"]).expect("spec");
    let sim = sim(limits).await;
    let ids = json!({"ids": ["demo:x"]});
    assert_eq!(call(&sim, "BatchGetBuilds", ids.clone()).await.status, 200);
    let mut refused = 0;
    for _ in 0..20 {
        if call(&sim, "BatchGetBuilds", ids.clone()).await.status == 400 {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "back-to-back calls outrun 5/s");
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(call(&sim, "BatchGetBuilds", ids).await.status, 200);
    sim.shutdown().await;
}
