//! HTTP helpers shared by the integration tests: raw requests to an in-process server.

#![allow(dead_code)]

use codebuild_sim::Server;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// The SigV4 header the SDKs send (signatures are not checked; the key id is recorded).
pub const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/codebuild/aws4_request, SignedHeaders=host, Signature=00";

pub async fn send(
    sim: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let stream = TcpStream::connect(sim.addr()).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
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
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, body }
}

/// A CodeBuild call (`X-Amz-Target: CodeBuild_20161006.<op>`), signed by AKIDTEST.
pub async fn call(sim: &Server, op: &str, body: Value) -> Reply {
    let target = format!("CodeBuild_20161006.{op}");
    let headers = [
        ("x-amz-target", target.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("authorization", AUTHORIZATION),
    ];
    send(sim, "POST", "/", &headers, &body.to_string()).await
}

/// A CloudWatch Logs call on the same port.
pub async fn call_logs(sim: &Server, op: &str, body: Value) -> Reply {
    let target = format!("Logs_20140328.{op}");
    let headers = [
        ("x-amz-target", target.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("authorization", AUTHORIZATION),
    ];
    send(sim, "POST", "/", &headers, &body.to_string()).await
}

pub async fn admin_get(sim: &Server, path: &str) -> Reply {
    send(sim, "GET", path, &[], "").await
}

pub async fn admin_post(sim: &Server, path: &str, body: Value) -> Reply {
    send(
        sim,
        "POST",
        path,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await
}
