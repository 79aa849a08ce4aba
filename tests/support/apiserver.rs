//! A fake apiserver for reconcile tests (tower-test): it answers every request plausibly,
//! keeps one object whose status and metadata the writes change, and logs each request as
//! `k8s METHOD PATH` (Events as `k8s event`) into a log it may share with the fake
//! CodeBuild, so the two interleave in call order.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// The fake, its log, the bodies of its writes, and how many writes to refuse.
pub struct FakeApiserver {
    /// A client talking to it.
    pub client: Client,
    /// Every request, in order.
    pub log: Arc<Mutex<Vec<String>>>,
    /// The body of every write (Events included), in order.
    pub bodies: Arc<Mutex<Vec<Value>>>,
    /// Answer this many writes (not Events) with 409 Conflict.
    pub conflicts: Arc<Mutex<u32>>,
    /// The object as the writes left it.
    pub object: Arc<Mutex<Value>>,
}

impl FakeApiserver {
    /// The status bodies written, in order.
    pub fn statuses(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| b.get("status").cloned())
            .collect()
    }

    /// The Events published, in order.
    pub fn events(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.get("reason").is_some() && b.get("status").is_none())
            .cloned()
            .collect()
    }
}

/// Starts the fake with `object`, logging into `log`.
pub fn fake_apiserver(object: Value, log: Arc<Mutex<Vec<String>>>) -> FakeApiserver {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let fake = FakeApiserver {
        client: Client::new(service, "default"),
        log,
        bodies: Arc::default(),
        conflicts: Arc::default(),
        object: Arc::new(Mutex::new(object)),
    };
    let (log, bodies, conflicts, object) = (
        fake.log.clone(),
        fake.bodies.clone(),
        fake.conflicts.clone(),
        fake.object.clone(),
    );
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let event = path.contains("/events");
            log.lock().unwrap().push(if event {
                "k8s event".to_owned()
            } else {
                format!("k8s {method} {path}")
            });
            if method != "GET" {
                bodies.lock().unwrap().push(body.clone());
            }
            let conflict = {
                let mut left = conflicts.lock().unwrap();
                let hit = method != "GET" && !event && *left > 0;
                if hit {
                    *left -= 1;
                }
                hit
            };
            let (code, answer) = if conflict {
                (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
                )
            } else if event {
                (200, body)
            } else {
                (200, apply(&mut object.lock().unwrap(), &path, &body))
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    fake
}

/// Applies a write to the object and returns the object.
fn apply(obj: &mut Value, path: &str, body: &Value) -> Value {
    if path.ends_with("/status") {
        obj["status"] = body["status"].clone();
    } else if let Some(ops) = body.as_array() {
        for op in ops {
            if op["op"] == "remove" {
                obj["metadata"]["finalizers"] = json!([]);
            }
        }
    } else if let Some(metadata) = body["metadata"].as_object() {
        for (key, value) in metadata {
            obj["metadata"][key] = value.clone();
        }
    }
    obj.clone()
}
