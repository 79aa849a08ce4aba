//! What builds write, read through the simulator's operations (no HTTP): log streams over
//! time, GetLogEvents tokens and caps, FilterLogEvents, logs configuration, reports.
//!
//! Phases last 10 s at time scale 1: PROVISIONING ends 30 s after the start, DOWNLOAD_SOURCE
//! 30..40, INSTALL 40..50, PRE_BUILD 50..60, BUILD 60..70, POST_BUILD 70..80,
//! UPLOAD_ARTIFACTS 80..90, FINALIZING 90..100; a line is readable 0.2..1.2 s after it is
//! written. The clock is moved with `advance_clock`.

use codebuild_sim::{ApiError, ErrorKind, SimConfig, SimState};
use serde_json::{Value, json};

const GROUP: &str = "/aws/codebuild/app";

fn sim() -> SimState {
    SimState::new(SimConfig {
        seed: Some(3),
        projects: vec!["app".into()],
        phase_seconds: 10.0,
        ..SimConfig::default()
    })
}

fn env(vars: &[(&str, &str)]) -> Value {
    json!(
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect::<Vec<_>>()
    )
}

fn start(s: &SimState, extra: Value) -> Value {
    let mut req = json!({"projectName": "app"});
    if let (Some(r), Value::Object(e)) = (req.as_object_mut(), extra) {
        r.extend(e);
    }
    s.call("StartBuild", &req, None)
        .map(|v| v["build"].clone())
        .unwrap_or_else(|e| panic!("StartBuild: {e}"))
}

fn uuid(build: &Value) -> String {
    let id = build["id"].as_str().unwrap_or_default();
    id.split_once(':')
        .map(|(_, u)| u.to_string())
        .unwrap_or_default()
}

fn build(s: &SimState, b: &Value) -> Value {
    s.build(b["id"].as_str().unwrap_or_default())
        .unwrap_or_default()
}

fn get(s: &SimState, stream: &str, extra: Value) -> Result<Value, ApiError> {
    let mut req = json!({"logGroupName": GROUP, "logStreamName": stream});
    if let (Some(r), Value::Object(e)) = (req.as_object_mut(), extra) {
        r.extend(e);
    }
    s.call_logs("GetLogEvents", &req)
}

fn messages(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Reads forward from `token` (or the head) until the forward token stops changing.
fn follow(s: &SimState, stream: &str, token: Option<String>) -> (Vec<String>, String) {
    let mut token = token;
    let mut lines = Vec::new();
    loop {
        let mut req = json!({"startFromHead": true});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = get(s, stream, req).unwrap_or_else(|e| panic!("GetLogEvents: {e}"));
        lines.extend(messages(&page));
        let next = page["nextForwardToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.as_deref() == Some(next.as_str()) {
            return (lines, next);
        }
        token = Some(next);
    }
}

fn kind(r: Result<Value, ApiError>) -> (ErrorKind, String) {
    let e = r.err().unwrap_or_else(|| panic!("expected an error"));
    (e.kind, e.message)
}

#[test]
fn the_stream_appears_after_provisioning_and_grows_as_phases_run() {
    let s = sim();
    let b = start(&s, json!({}));
    let stream = uuid(&b);
    // While PROVISIONING runs: no names, links to "null", no stream (nor group) yet.
    assert!(b["logs"].get("groupName").is_none(), "{}", b["logs"]);
    assert!(
        b["logs"]["deepLink"]
            .as_str()
            .unwrap_or_default()
            .ends_with("group=null;stream=null")
    );
    assert_eq!(
        kind(get(&s, &stream, json!({}))),
        (
            ErrorKind::ResourceNotFound,
            "The specified log group does not exist.".into()
        )
    );
    assert_eq!(
        s.log_events(b["id"].as_str().unwrap_or_default()),
        Some(vec![])
    );

    s.advance_clock(30.0);
    let shown = build(&s, &b);
    assert_eq!(shown["logs"]["groupName"], GROUP);
    assert_eq!(shown["logs"]["streamName"], json!(stream));
    assert_eq!(
        shown["logs"]["cloudWatchLogsArn"],
        json!(format!(
            "arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:log-stream:{stream}"
        ))
    );
    // The stream exists but nothing has been delivered yet: an empty stream.
    let empty = get(&s, &stream, json!({"startFromHead": true})).unwrap_or_default();
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["nextForwardToken"], json!(format!("f/{:056}", 0)));

    s.advance_clock(1.5);
    let (first, token) = follow(&s, &stream, None);
    assert!(
        first[0].contains(" Running on CodeBuild On-demand\n"),
        "{first:?}"
    );
    assert!(!first.iter().any(|m| m.contains("Entering phase INSTALL")));

    s.advance_clock(30.0);
    let (more, token2) = follow(&s, &stream, Some(token.clone()));
    assert_ne!(token, token2);
    assert!(
        more.iter().any(|m| m.contains("Entering phase BUILD")),
        "{more:?}"
    );
    assert!(!more.iter().any(|m| m.contains("Entering phase POST_BUILD")));

    s.advance_clock(100.0);
    let (rest, token3) = follow(&s, &stream, Some(token2));
    let all: Vec<String> = first.into_iter().chain(more).chain(rest).collect();
    let id = b["id"].as_str().unwrap_or_default();
    let recorded: Vec<String> = s
        .log_events(id)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(all, recorded, "every line once, in order");
    assert!(
        all.last()
            .is_some_and(|m| m.contains("Phase context status code:  Message: "))
    );
    let info = s.log_stream(id).unwrap_or_else(|| panic!("no stream info"));
    assert!(info.complete);
    assert_eq!(info.readable_events, all.len());
    assert_eq!(token3, format!("f/{:056}", all.len()));
}

#[test]
fn timestamps_fall_in_their_phases_and_ingestion_follows() {
    let s = sim();
    let b = start(&s, json!({}));
    s.advance_clock(200.0);
    let done = build(&s, &b);
    let events = s
        .log_events(b["id"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let phase = |name: &str| {
        let p = done["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["phaseType"] == name)
            .cloned()
            .unwrap_or_default();
        let ms = |k: &str| (p[k].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
        (ms("startTime"), ms("endTime"))
    };
    // A line belongs to the phase whose "Phase complete" line closes it (the context line
    // after it too).
    let closes = |m: &str| {
        m.split("Phase complete: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .map(str::to_string)
    };
    let phase_of = |i: usize| {
        let from = if events[i].message.contains("Phase context status code") {
            i - 1
        } else {
            i
        };
        events[from..]
            .iter()
            .find_map(|e| closes(&e.message))
            .unwrap_or_default()
    };
    for (i, e) in events.iter().enumerate() {
        let current = phase_of(i);
        let (start, end) = phase(&current);
        assert!((start..=end).contains(&e.timestamp), "{i} {current}: {e:?}");
        assert!(e.ingestion_time >= e.timestamp);
        if i > 0 {
            assert!(e.timestamp >= events[i - 1].timestamp);
        }
        // The agent's prefix time is the event's time.
        if e.message.starts_with("[Container] ") {
            let secs = e.timestamp / 1000;
            let hms = format!(
                "{:02}:{:02}:{:02}.{:03}",
                secs % 86_400 / 3600,
                secs % 3600 / 60,
                secs % 60,
                e.timestamp % 1000
            );
            assert!(e.message.contains(&hms), "{e:?} {hms}");
        }
    }
}

#[test]
fn tokens_at_the_end_backward_paging_and_the_tail() {
    let s = sim();
    let b = start(&s, json!({}));
    let stream = uuid(&b);
    s.advance_clock(200.0);
    let (all, end) = follow(&s, &stream, None);
    let n = all.len();
    // At the end the same token comes back, every time.
    for _ in 0..2 {
        let again = get(
            &s,
            &stream,
            json!({"startFromHead": true, "nextToken": end}),
        )
        .unwrap_or_default();
        assert_eq!(again["events"], json!([]));
        assert_eq!(again["nextForwardToken"], json!(end));
    }
    // No token, no startFromHead: the newest events.
    let tail = get(&s, &stream, json!({"limit": 3})).unwrap_or_default();
    assert_eq!(messages(&tail), all[n - 3..]);
    assert_eq!(tail["nextForwardToken"], json!(format!("f/{n:056}")));
    // Backward to the start, then the same backward token.
    let mut token = tail["nextBackwardToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut back = messages(&tail);
    loop {
        let page = get(&s, &stream, json!({"nextToken": token, "limit": 7})).unwrap_or_default();
        let next = page["nextBackwardToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut older = messages(&page);
        older.extend(back);
        back = older;
        if next == token {
            break;
        }
        token = next;
    }
    assert_eq!(back, all);
    assert_eq!(token, format!("b/{:056}", 0));
}

#[test]
fn time_ranges_limits_and_bad_requests() {
    let s = sim();
    let b = start(&s, json!({}));
    let stream = uuid(&b);
    s.advance_clock(200.0);
    let events = s
        .log_events(b["id"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let (t0, t1) = (events[5].timestamp, events[20].timestamp);
    let page = get(
        &s,
        &stream,
        json!({"startFromHead": true, "startTime": t0, "endTime": t1}),
    )
    .unwrap_or_default();
    let got: Vec<i64> = page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["timestamp"].as_i64())
        .collect();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|t| *t >= t0 && *t < t1),
        "endTime is exclusive: {got:?}"
    );
    let expected = events
        .iter()
        .filter(|e| e.timestamp >= t0 && e.timestamp < t1)
        .count();
    assert_eq!(got.len(), expected);

    let bad = [
        (
            json!({"limit": 0}),
            "Member must have value greater than or equal to 1",
        ),
        (
            json!({"limit": 10_001}),
            "Member must have value less than or equal to 10000",
        ),
        (
            json!({"nextToken": "garbage"}),
            "The specified nextToken is invalid.",
        ),
        (
            json!({"nextToken": format!("f/{:056}", 10_000_000)}),
            "The specified nextToken is invalid.",
        ),
        (
            json!({"startTime": -5}),
            "Member must have value greater than or equal to 0",
        ),
    ];
    for (req, message) in bad {
        let (k, m) = kind(get(&s, &stream, req.clone()));
        assert_eq!(k, ErrorKind::InvalidParameter, "{req}");
        assert!(m.contains(message), "{req}: {m}");
    }
    assert_eq!(
        kind(get(&s, "no-such-stream", json!({}))),
        (
            ErrorKind::ResourceNotFound,
            "The specified log stream does not exist.".into()
        )
    );
    let no_group = s.call_logs(
        "GetLogEvents",
        &json!({"logGroupName": "/nope", "logStreamName": stream}),
    );
    assert_eq!(kind(no_group).1, "The specified log group does not exist.");
    let by_arn = s.call_logs(
        "GetLogEvents",
        &json!({"logGroupIdentifier": format!("arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"), "logStreamName": stream, "limit": 1}),
    );
    assert_eq!(messages(&by_arn.unwrap_or_default()).len(), 1);
    assert_eq!(
        kind(s.call_logs("PutLogEvents", &json!({}))).0,
        ErrorKind::UnknownOperation
    );
}

#[test]
fn ten_thousand_events_or_one_megabyte_per_page() {
    let s = sim();
    // Four command phases x 3,000 output lines, plus the agent's lines.
    let b = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_LOG_LINES", "3000")]), "buildspecOverride": "buildspec.yml"}),
    );
    let stream = uuid(&b);
    s.advance_clock(200.0);
    let head = get(&s, &stream, json!({"startFromHead": true})).unwrap_or_default();
    assert_eq!(head["events"].as_array().map(Vec::len), Some(10_000));
    let (rest, _) = follow(
        &s,
        &stream,
        head["nextForwardToken"].as_str().map(str::to_string),
    );
    assert!(rest.len() > 2_000, "{}", rest.len());

    let long = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_LOG_LINES", "20"), ("CODEBUILD_SIM_LOG_LINE_BYTES", "262118")])}),
    );
    let stream = uuid(&long);
    s.advance_clock(200.0);
    let events = s
        .log_events(long["id"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let output: Vec<_> = events
        .iter()
        .filter(|e| !e.message.starts_with("[Container]"))
        .collect();
    assert_eq!(output.len(), 20);
    assert!(output.iter().all(|e| e.message.len() == 262_118));
    let mut token: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut req = json!({"startFromHead": true});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = get(&s, &stream, req).unwrap_or_default();
        let sizes: Vec<usize> = messages(&page).iter().map(|m| m.len() + 26).collect();
        let bytes: usize = sizes.iter().sum();
        assert!(bytes <= 1_048_576, "{bytes}");
        seen += sizes.len();
        if seen < events.len() && !sizes.is_empty() {
            // The next event would not have fitted.
            assert!(
                bytes + events[seen].message.len() + 26 > 1_048_576,
                "{bytes} at {seen}"
            );
        }
        let next = page["nextForwardToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.as_deref() == Some(next.as_str()) {
            break;
        }
        token = Some(next);
    }
    assert_eq!(seen, events.len());
}

#[test]
fn unicode_lines_and_invalid_variables() {
    let s = sim();
    let b = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_LOG_UNICODE", "true")])}),
    );
    s.advance_clock(200.0);
    let events = s
        .log_events(b["id"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let output: Vec<_> = events
        .iter()
        .filter(|e| !e.message.starts_with("[Container]"))
        .collect();
    assert!(!output.is_empty());
    assert!(
        output
            .iter()
            .all(|e| !e.message.is_ascii() && e.message.contains('\u{1b}'))
    );

    for (name, value) in [
        ("CODEBUILD_SIM_LOG_LINES", "lots"),
        ("CODEBUILD_SIM_LOG_LINE_BYTES", "300000"),
        ("CODEBUILD_SIM_LOG_UNICODE", "perhaps"),
        ("CODEBUILD_SIM_REPORTS", "unit:BENCH"),
    ] {
        let r = s.call(
            "StartBuild",
            &json!({"projectName": "app", "environmentVariablesOverride": env(&[(name, value)])}),
            None,
        );
        assert_eq!(kind(r).0, ErrorKind::InvalidInput, "{name}={value}");
    }
    // Rejected starts used no build number.
    assert_eq!(start(&s, json!({}))["buildNumber"], 2);
}

#[test]
fn a_failing_phase_ends_with_the_failing_command_and_its_exit_status() {
    let s = sim();
    let lines_of = |b: &Value| -> Vec<String> {
        let id = b["id"].as_str().unwrap_or_default();
        s.log_events(id)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.message)
            .collect()
    };
    // By default the phase's last command fails, with exit status 2.
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n      - make test\n";
    let b = start(
        &s,
        json!({"buildspecOverride": spec, "environmentVariablesOverride": env(&[("CODEBUILD_SIM_FAIL_PHASE", "BUILD")])}),
    );
    // A message naming a command makes that command fail; later commands do not run.
    let spec3 = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n      - make test\n      - make docs\n";
    let named = "Error while executing command: make test. Reason: exit status 127";
    let c = start(
        &s,
        json!({"buildspecOverride": spec3, "environmentVariablesOverride": env(&[("CODEBUILD_SIM_FAIL_PHASE", "BUILD"), ("CODEBUILD_SIM_MESSAGE", named)])}),
    );
    s.advance_clock(200.0);
    let message = "Error while executing command: make test. Reason: exit status 2";
    for (b, message, status) in [(&b, message, 2), (&c, named, 127)] {
        let done = build(&s, b);
        let phase = done["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["phaseType"] == "BUILD")
            .cloned()
            .unwrap_or_default();
        assert_eq!(phase["contexts"][0]["message"], message);
        let lines = lines_of(b);
        let at = lines
            .iter()
            .position(|m| m.contains("Phase complete: BUILD State: FAILED"))
            .unwrap_or_else(|| panic!("{lines:#?}"));
        assert!(
            lines[at - 1].ends_with(&format!(
                " Command did not exit successfully make test exit status {status}\n"
            )),
            "{}",
            lines[at - 1]
        );
        assert!(lines[at + 1].ends_with(&format!(
            " Phase context status code: COMMAND_EXECUTION_ERROR Message: {message}\n"
        )));
        assert!(lines.iter().any(|m| m.ends_with(" Running command make\n")));
        assert!(!lines.iter().any(|m| m.contains("make docs")));
        assert!(
            lines[at + 2].ends_with(" Entering phase POST_BUILD\n"),
            "POST_BUILD still runs"
        );
    }
}

#[test]
fn the_same_build_id_always_has_the_same_lines() {
    let lines = || {
        let s = sim();
        let b = start(&s, json!({}));
        s.advance_clock(200.0);
        let id = b["id"].as_str().unwrap_or_default().to_string();
        (id.clone(), s.log_events(&id).unwrap_or_default())
    };
    let (a, b) = (lines(), lines());
    assert_eq!(a.0, b.0);
    let text =
        |v: &[codebuild_sim::LogEvent]| v.iter().map(|e| e.message.clone()).collect::<Vec<_>>();
    // Times differ (the wall clock moved), the lines do not... except their time prefixes.
    let strip = |m: &String| m.get(39..).map_or(m.clone(), str::to_string);
    assert_eq!(
        text(&a.1).iter().map(strip).collect::<Vec<_>>(),
        text(&b.1).iter().map(strip).collect::<Vec<_>>()
    );
}

#[test]
fn a_stopped_build_stops_writing() {
    let s = sim();
    let b = start(&s, json!({}));
    let id = b["id"].as_str().unwrap_or_default();
    s.advance_clock(65.0);
    assert!(s.call("StopBuild", &json!({"id": id}), None).is_ok());
    s.advance_clock(200.0);
    let events = s.log_events(id).unwrap_or_default();
    let last = events.last().map(|e| e.timestamp).unwrap_or_default();
    let stopped = build(&s, &b)["endTime"].as_f64().unwrap_or_default();
    assert!(last as f64 <= stopped * 1000.0 + 1.0);
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("Entering phase BUILD"))
    );
    assert!(!events.iter().any(|e| e.message.contains("POST_BUILD")));
    assert!(s.log_stream(id).is_some_and(|i| i.complete));

    // Stopped before PROVISIONING ended: no stream ever, names never shown.
    let early = start(&s, json!({}));
    let early_id = early["id"].as_str().unwrap_or_default();
    assert!(s.call("StopBuild", &json!({"id": early_id}), None).is_ok());
    s.advance_clock(200.0);
    assert!(build(&s, &early)["logs"].get("groupName").is_none());
    assert_eq!(s.log_events(early_id), Some(vec![]));
    assert_eq!(
        kind(get(&s, &uuid(&early), json!({}))).1,
        "The specified log stream does not exist."
    );
}

#[test]
fn disabled_and_s3_only_logs_write_no_stream() {
    let s = sim();
    let b = start(
        &s,
        json!({"logsConfigOverride": {
            "cloudWatchLogs": {"status": "DISABLED"},
            "s3Logs": {"status": "ENABLED", "location": "log-bucket/builds"}
        }}),
    );
    let expect = |logs: &Value| {
        for absent in ["groupName", "streamName", "deepLink", "cloudWatchLogsArn"] {
            assert!(logs.get(absent).is_none(), "{absent}: {logs}");
        }
        assert_eq!(
            logs["s3LogsArn"],
            json!(format!("arn:aws:s3:::log-bucket/builds/{}.gz", uuid(&b)))
        );
        assert!(
            logs["s3DeepLink"]
                .as_str()
                .is_some_and(|l| l.starts_with("https://s3.console.aws.amazon.com/"))
        );
        assert_eq!(logs["cloudWatchLogs"]["status"], "DISABLED");
    };
    expect(&b["logs"]);
    s.advance_clock(200.0);
    expect(&build(&s, &b)["logs"]);
    let id = b["id"].as_str().unwrap_or_default();
    assert_eq!(s.log_events(id), None);
    assert_eq!(s.log_stream(id), None);
    assert_eq!(
        kind(get(&s, &uuid(&b), json!({}))).1,
        "The specified log group does not exist."
    );

    let off = start(
        &s,
        json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "DISABLED"}}}),
    );
    s.advance_clock(200.0);
    let logs = build(&s, &off)["logs"].clone();
    assert_eq!(
        logs,
        json!({"cloudWatchLogs": {"status": "DISABLED"}, "s3Logs": {"status": "DISABLED", "encryptionDisabled": false}})
    );
}

#[test]
fn a_configured_group_is_shown_from_the_start() {
    let s = sim();
    let b = start(
        &s,
        json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": "ci-logs", "streamName": "runs"}}}),
    );
    let stream = format!("runs/{}", uuid(&b));
    assert_eq!(b["logs"]["groupName"], "ci-logs");
    assert_eq!(b["logs"]["streamName"], json!(stream));
    s.advance_clock(200.0);
    let page = s.call_logs("GetLogEvents", &json!({"logGroupName": "ci-logs", "logStreamName": stream, "startFromHead": true, "limit": 2}));
    assert_eq!(messages(&page.unwrap_or_default()).len(), 2);
}

#[test]
fn filter_log_events_merges_the_group_in_time_order() {
    let s = sim();
    let a = start(&s, json!({}));
    s.advance_clock(5.0);
    let b = start(&s, json!({}));
    s.advance_clock(200.0);
    let filter = |extra: Value| {
        let mut req = json!({"logGroupName": GROUP});
        if let (Some(r), Value::Object(e)) = (req.as_object_mut(), extra) {
            r.extend(e);
        }
        s.call_logs("FilterLogEvents", &req)
            .unwrap_or_else(|e| panic!("FilterLogEvents: {e}"))
    };
    let all = filter(json!({"filterPattern": "\"Phase complete\""}));
    let events = all["events"].as_array().cloned().unwrap_or_default();
    // Six phases end in each build's log (DOWNLOAD_SOURCE..UPLOAD_ARTIFACTS; FINALIZING
    // writes nothing).
    assert_eq!(events.len(), 12);
    assert_eq!(all["searchedLogStreams"], json!([]));
    assert!(all.get("nextToken").is_none());
    let times: Vec<i64> = events
        .iter()
        .filter_map(|e| e["timestamp"].as_i64())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let streams: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["logStreamName"].as_str())
        .collect();
    assert_eq!(streams.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e["eventId"].as_str().is_some_and(|id| id.len() == 56))
    );

    // Paging by two gives the same events.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"filterPattern": "\"Phase complete\"", "limit": 2});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = filter(req);
        paged.extend(page["events"].as_array().cloned().unwrap_or_default());
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, events);

    let one = filter(
        json!({"logStreamNames": [uuid(&b)], "filterPattern": "?FAILED ?SUCCEEDED -DOWNLOAD_SOURCE"}),
    );
    let one_events = one["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(one_events.len(), 5);
    assert!(
        one_events
            .iter()
            .all(|e| e["logStreamName"] == json!(uuid(&b)))
    );
    let prefixed = filter(json!({"logStreamNamePrefix": &uuid(&a)[..8], "limit": 1}));
    assert_eq!(prefixed["events"][0]["logStreamName"], json!(uuid(&a)));
    assert_eq!(
        filter(json!({"nextToken": "not-a-token"}))["events"],
        json!([])
    );
    let bad = s.call_logs(
        "FilterLogEvents",
        &json!({"logGroupName": GROUP, "filterPattern": "{ $.x = 1 }"}),
    );
    assert_eq!(kind(bad).0, ErrorKind::InvalidParameter);
    let nothing = s.call_logs(
        "FilterLogEvents",
        &json!({"logGroupName": "/aws/codebuild/other"}),
    );
    assert_eq!(kind(nothing).1, "The specified log group does not exist.");
}

#[test]
fn reports_appear_after_post_build_and_settle_after_the_build() {
    let s = sim();
    let spec = "unit:TEST:succeeded=40,failed=2,skipped=1,durationMs=1520;cov:CODE_COVERAGE:lines=812/1000,branches=120/200";
    let b = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_REPORTS", spec)])}),
    );
    let id = b["id"].as_str().unwrap_or_default();
    assert!(b.get("reportArns").is_none());
    s.advance_clock(75.0);
    assert!(
        build(&s, &b).get("reportArns").is_none(),
        "not before POST_BUILD has ended"
    );
    assert_eq!(s.reports_of(id), Some(vec![]));
    s.advance_clock(10.0);
    let arns: Vec<String> = build(&s, &b)["reportArns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(arns.len(), 2);
    assert!(arns[0].starts_with("arn:aws:codebuild:us-east-1:123456789012:report/app-unit:"));
    assert!(arns[1].starts_with("arn:aws:codebuild:us-east-1:123456789012:report/app-cov:"));
    let got = s
        .call("BatchGetReports", &json!({"reportArns": arns}), None)
        .unwrap_or_default();
    assert_eq!(got["reports"][0]["status"], "GENERATING");
    assert!(got["reports"][0].get("testSummary").is_none());
    assert!(got.get("reportsNotFound").is_none());

    // The build ends at 100 s; reports settle one phase (10 s) later.
    s.advance_clock(20.0);
    let got = s
        .call("BatchGetReports", &json!({"reportArns": arns}), None)
        .unwrap_or_default();
    assert_eq!(got["reports"][1]["status"], "GENERATING");
    s.advance_clock(10.0);
    let got = s
        .call("BatchGetReports", &json!({"reportArns": arns}), None)
        .unwrap_or_default();
    let (unit, cov) = (&got["reports"][0], &got["reports"][1]);
    assert_eq!(unit["type"], "TEST");
    assert_eq!(unit["status"], "FAILED");
    assert_eq!(
        unit["reportGroupArn"],
        "arn:aws:codebuild:us-east-1:123456789012:report-group/app-unit"
    );
    assert_eq!(unit["executionId"], b["arn"]);
    assert_eq!(
        unit["testSummary"],
        json!({"total": 43, "statusCounts": {"SUCCEEDED": 40, "FAILED": 2, "SKIPPED": 1, "ERROR": 0, "UNKNOWN": 0}, "durationInNanoSeconds": 1_520_000_000u64})
    );
    assert_eq!(cov["type"], "CODE_COVERAGE");
    assert_eq!(cov["status"], "SUCCEEDED");
    assert_eq!(cov["codeCoverageSummary"]["lineCoveragePercentage"], 81.2);
    assert_eq!(cov["codeCoverageSummary"]["branchesMissed"], 80);
    assert_eq!(s.reports_of(id).map(|r| r.len()), Some(2));
    assert_eq!(s.counters().batch_get_reports_arns, 6);
}

#[test]
fn no_reports_when_post_build_never_runs() {
    let s = sim();
    let b = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_REPORTS", "unit:TEST:succeeded=1"), ("CODEBUILD_SIM_FAIL_PHASE", "DOWNLOAD_SOURCE")])}),
    );
    s.advance_clock(200.0);
    assert!(build(&s, &b).get("reportArns").is_none());
}

#[test]
fn batch_get_reports_limits() {
    let s = sim();
    let unknown: Vec<String> = (0..100)
        .map(|i| format!("arn:aws:codebuild:us-east-1:123456789012:report/app-x:{i}"))
        .collect();
    let got = s
        .call("BatchGetReports", &json!({"reportArns": unknown}), None)
        .unwrap_or_default();
    assert_eq!(got, json!({"reportsNotFound": unknown}));
    let mut many = unknown.clone();
    many.push("one-more".into());
    let (k, m) = kind(s.call("BatchGetReports", &json!({"reportArns": many}), None));
    assert_eq!(k, ErrorKind::InvalidInput);
    assert!(m.ends_with("at 'reportArns' failed to satisfy constraint: Member must have length less than or equal to 100"), "{m}");
    assert_eq!(
        kind(s.call("BatchGetReports", &json!({"reportArns": []}), None)).0,
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(s.call("BatchGetReports", &json!({}), None)).0,
        ErrorKind::InvalidInput
    );
}

#[test]
fn counters_count_log_calls_and_events() {
    let s = sim();
    let b = start(&s, json!({}));
    s.advance_clock(200.0);
    let page = get(&s, &uuid(&b), json!({"limit": 5})).unwrap_or_default();
    assert_eq!(messages(&page).len(), 5);
    assert!(get(&s, "nope", json!({})).is_err());
    let c = s.counters();
    assert_eq!(c.calls.get("GetLogEvents"), Some(&2));
    assert_eq!(c.log_events_returned, 5);
}

#[test]
fn a_delivery_delay_leaves_the_stream_empty_then_fills_it_after_the_build() {
    let s = sim();
    let b = start(
        &s,
        json!({"environmentVariablesOverride": env(&[("CODEBUILD_SIM_LOG_DELAY_SECONDS", "500")])}),
    );
    let (id, stream) = (b["id"].as_str().unwrap_or_default(), uuid(&b));
    s.advance_clock(200.0);
    assert_eq!(build(&s, &b)["buildStatus"], "SUCCEEDED");
    // The stream exists (its names are shown) but nothing is readable yet.
    assert_eq!(build(&s, &b)["logs"]["streamName"], json!(stream));
    let zero = (format!("f/{:056}", 0), format!("b/{:056}", 0));
    for req in [
        json!({}),
        json!({"startFromHead": true}),
        json!({"nextToken": zero.0}),
    ] {
        let page = get(&s, &stream, req.clone()).unwrap_or_default();
        assert_eq!(page["events"], json!([]), "{req}");
        assert_eq!(
            (
                page["nextForwardToken"].clone(),
                page["nextBackwardToken"].clone()
            ),
            (json!(zero.0), json!(zero.1)),
            "{req}"
        );
    }
    let info = s.log_stream(id).unwrap_or_else(|| panic!("no stream info"));
    assert!(info.created.is_some() && info.readable_events == 0 && !info.complete);
    s.advance_clock(500.0);
    let (lines, _) = follow(&s, &stream, Some(zero.0.clone()));
    assert_eq!(lines.len(), s.log_stream(id).map_or(0, |i| i.total_events));
    assert!(s.log_stream(id).is_some_and(|i| i.complete));
}
