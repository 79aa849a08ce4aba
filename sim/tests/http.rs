//! Integration tests over HTTP against an in-process server.

use codebuild_sim::{Faults, Server, Service, SimConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    body: Value,
}

async fn send(
    sim: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, hyper::Error> {
    let stream = TcpStream::connect(sim.addr()).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", sim.addr().to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Reply { status, body })
}

async fn call(sim: &Server, op: &str, body: Value) -> Reply {
    let target = format!("CodeBuild_20161006.{op}");
    send(
        sim,
        "POST",
        "/",
        &[
            ("x-amz-target", &target),
            ("content-type", "application/x-amz-json-1.1"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/codebuild/aws4_request, SignedHeaders=host, Signature=00",
            ),
        ],
        &body.to_string(),
    )
    .await
    .expect("call")
}

async fn sim() -> Server {
    Server::start(SimConfig {
        time_scale: 0.001,
        phase_seconds: 1.0,
        projects: vec!["demo".into()],
        seed: Some(7),
        ..SimConfig::default()
    })
    .await
    .expect("start")
}

#[tokio::test]
async fn start_poll_until_complete() {
    let sim = sim().await;
    assert!(sim.endpoint().starts_with("http://127.0.0.1:"));
    let r = call(&sim, "StartBuild", json!({"projectName": "demo"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["build"]["id"].as_str().expect("id").to_string();
    assert!(r.body["build"]["startTime"].is_f64());
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let r = call(&sim, "BatchGetBuilds", json!({"ids": [id]})).await;
    let b = &r.body["builds"][0];
    assert_eq!(b["buildStatus"], "SUCCEEDED");
    assert_eq!(b["buildComplete"], true);
    assert_eq!(b["phases"].as_array().map(Vec::len), Some(11));
    let starts = sim.state().starts();
    assert_eq!(starts[0].access_key_id.as_deref(), Some("AKIDTEST"));
    let c = sim.state().counters();
    assert_eq!(c.calls.get("StartBuild"), Some(&1));
    assert_eq!(c.batch_get_builds_ids, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_the_json_shape() {
    let sim = sim().await;
    let r = call(&sim, "StartBuild", json!({"projectName": "nope"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["__type"], "ResourceNotFoundException");
    let r = call(&sim, "Frobnicate", json!({})).await;
    assert_eq!(r.body["__type"], "UnknownOperationException");
    let r = call(&sim, "BatchGetBuilds", json!({"ids": ["bad"]})).await;
    assert_eq!(
        r.body,
        json!({"__type": "InvalidInputException", "message": "Invalid build ID provided"})
    );
}

#[tokio::test]
async fn faults_throttle_5xx_and_drop() {
    let sim = sim().await;
    sim.state().set_faults(Faults {
        throttle_fraction: 1.0,
        operation: Some("BatchGetBuilds".into()),
        ..Faults::default()
    });
    let r = call(&sim, "BatchGetBuilds", json!({"ids": ["a:b"]})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["__type"], "ThrottlingException");
    assert_eq!(r.body["message"], "Rate exceeded");
    let r = call(&sim, "StartBuild", json!({"projectName": "demo"})).await;
    assert_eq!(r.status, 200);

    sim.state().set_faults(Faults {
        server_error_fraction: 1.0,
        server_error_status: Some(503),
        ..Faults::default()
    });
    let r = call(&sim, "BatchGetBuilds", json!({"ids": ["a:b"]})).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["__type"], "ServiceUnavailable");

    sim.state().set_faults(Faults {
        drop_fraction: 1.0,
        ..Faults::default()
    });
    let target = "CodeBuild_20161006.BatchGetBuilds";
    let dropped = send(
        &sim,
        "POST",
        "/",
        &[("x-amz-target", target)],
        r#"{"ids":["a:b"]}"#,
    )
    .await;
    let err = dropped.err().expect("connection must be dropped");
    assert!(
        err.is_incomplete_message() || err.is_closed() || err.to_string().contains("closed"),
        "{err}"
    );
    let c = sim.state().counters();
    assert_eq!((c.throttled, c.server_errors, c.dropped), (1, 1, 1));
    assert_eq!(c.calls.get("BatchGetBuilds"), Some(&3));
}

#[tokio::test]
async fn admin_api() {
    let sim = sim().await;
    let r = send(&sim, "GET", "/_sim/healthz", &[], "")
        .await
        .expect("healthz");
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = send(
        &sim,
        "POST",
        "/_sim/projects",
        &[],
        r#"{"name":"other","autoRetryLimit":1}"#,
    )
    .await
    .expect("projects");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["project"]["autoRetryLimit"], 1);
    let r = send(
        &sim,
        "POST",
        "/_sim/faults",
        &[],
        r#"{"throttleFraction":1.0,"seed":3}"#,
    )
    .await
    .expect("faults");
    assert_eq!(r.body["throttleFraction"], 1.0);
    let r = call(&sim, "StartBuild", json!({"projectName": "other"})).await;
    assert_eq!(r.body["__type"], "ThrottlingException");
    let r = send(&sim, "POST", "/_sim/faults", &[], r#"{"bogus":1}"#)
        .await
        .expect("faults");
    assert_eq!(r.status, 400);
    send(&sim, "POST", "/_sim/faults", &[], "{}")
        .await
        .expect("clear");
    let r = call(
        &sim,
        "StartBuild",
        json!({"projectName": "other", "idempotencyToken": "t"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(&sim, "GET", "/_sim/starts", &[], "")
        .await
        .expect("starts");
    assert_eq!(r.body["starts"][0]["idempotencyToken"], "t");
    assert_eq!(r.body["starts"][0]["accessKeyId"], "AKIDTEST");
    let r = send(&sim, "GET", "/_sim/counters", &[], "")
        .await
        .expect("counters");
    assert_eq!(r.body["calls"]["StartBuild"], 2);
    assert_eq!(r.body["throttled"], 1);
    let r = send(&sim, "GET", "/_sim/builds", &[], "")
        .await
        .expect("builds");
    assert_eq!(r.body["builds"].as_array().map(Vec::len), Some(1));
    let r = send(&sim, "POST", "/_sim/clock", &[], r#"{"advanceSeconds": 5}"#)
        .await
        .expect("clock");
    assert!(r.body["now"].as_f64().is_some());
    send(&sim, "POST", "/_sim/reset", &[], "")
        .await
        .expect("reset");
    let r = send(&sim, "GET", "/_sim/builds", &[], "")
        .await
        .expect("builds");
    assert_eq!(r.body["builds"], json!([]));
    assert_eq!(sim.state().projects().len(), 2);
}

#[tokio::test]
async fn drop_releases_the_port() {
    let sim = sim().await;
    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

async fn logs_call(sim: &Server, op: &str, body: Value) -> Reply {
    let target = format!("Logs_20140328.{op}");
    send(
        sim,
        "POST",
        "/",
        &[
            ("x-amz-target", &target),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        &body.to_string(),
    )
    .await
    .expect("logs call")
}

/// Starts a build and waits until it is over; returns (group, stream).
async fn finished_build(sim: &Server) -> (String, String) {
    let r = call(sim, "StartBuild", json!({"projectName": "demo"})).await;
    let id = r.body["build"]["id"].as_str().expect("id").to_string();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let info = sim.state().log_stream(&id).expect("stream info");
        if info.complete {
            return (info.group_name, info.stream_name);
        }
    }
    panic!("build {id} did not finish writing its log");
}

#[tokio::test]
async fn logs_endpoint_shares_the_port() {
    let sim = sim().await;
    let (group, stream) = finished_build(&sim).await;
    assert_eq!(group, "/aws/codebuild/demo");
    let read = json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true});
    let r = logs_call(&sim, "GetLogEvents", read.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.body["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        events.len(),
        sim.state()
            .log_events(&format!("demo:{stream}"))
            .map_or(0, |e| e.len())
    );
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("[Container] "))
    );
    let token = r.body["nextForwardToken"].clone();
    let mut again = read.clone();
    again["nextToken"] = token.clone();
    let r = logs_call(&sim, "GetLogEvents", again).await;
    assert_eq!(r.body["events"], json!([]));
    assert_eq!(r.body["nextForwardToken"], token);

    let r = logs_call(&sim, "PutLogEvents", json!({})).await;
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let r = logs_call(
        &sim,
        "GetLogEvents",
        json!({"logGroupName": group, "logStreamName": "nope"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!({"__type": "ResourceNotFoundException", "message": "The specified log stream does not exist."})
        )
    );
    let r = logs_call(
        &sim,
        "GetLogEvents",
        json!({"logGroupName": group, "logStreamName": stream, "limit": 0}),
    )
    .await;
    assert_eq!(r.body["__type"], "InvalidParameterException");
    let r = logs_call(
        &sim,
        "FilterLogEvents",
        json!({"logGroupName": group, "filterPattern": "\"Phase complete: BUILD\""}),
    )
    .await;
    assert_eq!(
        r.body["events"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    let c = sim.state().counters();
    assert_eq!(c.calls.get("GetLogEvents"), Some(&4));
    assert_eq!(c.calls.get("FilterLogEvents"), Some(&1));
    assert_eq!(c.calls.get("PutLogEvents"), Some(&1));
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_the_logs_endpoint() {
    let sim = sim().await;
    let (group, stream) = finished_build(&sim).await;
    let read = json!({"logGroupName": group, "logStreamName": stream, "limit": 1});
    let logs_only = |f: Faults| Faults {
        service: Some(Service::Logs),
        ..f
    };
    sim.state().set_faults(logs_only(Faults {
        throttle_fraction: 1.0,
        ..Faults::default()
    }));
    let r = logs_call(&sim, "GetLogEvents", read.clone()).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
        )
    );
    let r = call(
        &sim,
        "BatchGetBuilds",
        json!({"ids": [format!("demo:{stream}")]}),
    )
    .await;
    assert_eq!(r.status, 200, "CodeBuild is not throttled");

    sim.state().set_faults(logs_only(Faults {
        server_error_fraction: 1.0,
        ..Faults::default()
    }));
    let r = logs_call(&sim, "FilterLogEvents", json!({"logGroupName": group})).await;
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (500, Some("ServiceUnavailableException"))
    );
    sim.state().set_faults(Faults {
        server_error_fraction: 1.0,
        server_error_status: Some(503),
        operation: Some("GetLogEvents".into()),
        ..Faults::default()
    });
    let r = logs_call(&sim, "GetLogEvents", read.clone()).await;
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    let r = logs_call(
        &sim,
        "FilterLogEvents",
        json!({"logGroupName": group, "limit": 1}),
    )
    .await;
    assert_eq!(r.status, 200, "only GetLogEvents is faulted");

    sim.state().set_faults(logs_only(Faults {
        latency_ms: 150,
        ..Faults::default()
    }));
    let started = std::time::Instant::now();
    let r = logs_call(&sim, "GetLogEvents", read.clone()).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    let started = std::time::Instant::now();
    call(&sim, "ListBuildsForProject", json!({"projectName": "demo"})).await;
    assert!(started.elapsed() < std::time::Duration::from_millis(150));

    sim.state().set_faults(logs_only(Faults {
        drop_fraction: 1.0,
        ..Faults::default()
    }));
    let dropped = send(
        &sim,
        "POST",
        "/",
        &[("x-amz-target", "Logs_20140328.GetLogEvents")],
        &read.to_string(),
    )
    .await;
    assert!(dropped.is_err(), "connection must be dropped");
    let c = sim.state().counters();
    assert_eq!((c.throttled, c.server_errors, c.dropped), (1, 2, 1));
    sim.shutdown().await;
}

/// A faulted answer reads the request first, so the connection stays usable: botocore sends
/// headers and body in two writes, and a server that answers and closes with the body unread
/// gets the connection reset under the client, which then loses the answer.
#[tokio::test]
async fn a_faulted_answer_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim().await;
    sim.state().set_faults(Faults {
        throttle_fraction: 1.0,
        ..Faults::default()
    });
    let body = br#"{"ids": ["demo:x"]}"#;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: sim\r\nX-Amz-Target: CodeBuild_20161006.BatchGetBuilds\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
    for attempt in 0..2 {
        stream.write_all(head.as_bytes()).await.expect("headers");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        stream.write_all(body).await.expect("body");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "attempt {attempt}: {text:?}"
        );
        assert!(
            text.contains("ThrottlingException"),
            "attempt {attempt}: {text:?}"
        );
    }
    sim.shutdown().await;
}
