//! The CloudWatch Logs operations as JSON: request checks, the service's errors
//! (InvalidParameterException, ResourceNotFoundException with the service's messages) and the
//! response shapes of botocore's `logs` model. The streams themselves come from a
//! [`LogGroups`] (the simulator's builds).

use super::filter::{self, Key, Pattern, Query, StreamEvents};
use super::paging::{self, Start, Window};
use super::{MAX_EVENTS, script::LogScript};
use crate::protocol::{ApiError, ErrorKind};
use serde_json::{Value, json};

pub const GROUP_NOT_FOUND: &str = "The specified log group does not exist.";
pub const STREAM_NOT_FOUND: &str = "The specified log stream does not exist.";
pub const INVALID_TOKEN: &str = "The specified nextToken is invalid.";

/// Log groups and streams as they exist now.
pub trait LogGroups {
    /// The streams of `group` that exist now, sorted by name; None when the group does not
    /// exist (no stream was ever created in it).
    fn streams(&self, group: &str) -> Option<Vec<StreamEvents<'_>>>;

    /// One stream; ResourceNotFoundException (group or stream) when it does not exist now.
    fn stream(&self, group: &str, stream: &str) -> Result<StreamEvents<'_>, ApiError>;
}

fn serialization(member: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Serialization,
        format!("{member} must be {expected}"),
    )
}

fn constraint(value: impl std::fmt::Display, member: &str, constraint: &str) -> ApiError {
    ApiError::invalid_parameter(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// A string member, if present.
fn opt_str<'v>(req: &'v Value, member: &str) -> Result<Option<&'v str>, ApiError> {
    match req.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(serialization(member, "a string")),
    }
}

/// A string member with the model's min length 1.
fn nonempty_str<'v>(req: &'v Value, member: &str) -> Result<Option<&'v str>, ApiError> {
    match opt_str(req, member)? {
        Some("") => Err(constraint(
            "",
            member,
            "Member must have length greater than or equal to 1",
        )),
        other => Ok(other),
    }
}

/// The log group a request names: `logGroupName`, or `logGroupIdentifier` (a name or a log
/// group ARN, with or without the `:*` suffix). Exactly one must be given.
pub fn group_name(req: &Value) -> Result<String, ApiError> {
    let name = nonempty_str(req, "logGroupName")?;
    let identifier = nonempty_str(req, "logGroupIdentifier")?;
    match (name, identifier) {
        (Some(n), None) => Ok(n.to_string()),
        (None, Some(id)) => {
            let name = match id.split_once(":log-group:") {
                Some((_, rest)) if id.starts_with("arn:") => rest.trim_end_matches(":*"),
                _ => id,
            };
            Ok(name.to_string())
        }
        _ => Err(ApiError::invalid_parameter(
            "Exactly one of logGroupName and logGroupIdentifier must be specified",
        )),
    }
}

/// `limit`: 1..=10,000; the default is 10,000.
fn limit(req: &Value) -> Result<usize, ApiError> {
    let Some(v) = req.get("limit").filter(|v| !v.is_null()) else {
        return Ok(MAX_EVENTS);
    };
    let n = v
        .as_i64()
        .ok_or_else(|| serialization("limit", "an integer"))?;
    if n < 1 {
        return Err(constraint(
            n,
            "limit",
            "Member must have value greater than or equal to 1",
        ));
    }
    if n > MAX_EVENTS as i64 {
        return Err(constraint(
            n,
            "limit",
            "Member must have value less than or equal to 10000",
        ));
    }
    Ok(n as usize)
}

/// A timestamp member (epoch ms, >= 0).
fn millis(req: &Value, member: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.get(member).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = v
        .as_i64()
        .ok_or_else(|| serialization(member, "an integer"))?;
    if n < 0 {
        return Err(constraint(
            n,
            member,
            "Member must have value greater than or equal to 0",
        ));
    }
    Ok(Some(n))
}

/// Where a GetLogEvents call starts: its token, or the head or tail of the stream.
fn start_of(req: &Value) -> Result<Start, ApiError> {
    let head = match req.get("startFromHead") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(serialization("startFromHead", "a boolean")),
    };
    match nonempty_str(req, "nextToken")? {
        Some(token) => {
            paging::parse_token(token).ok_or_else(|| ApiError::invalid_parameter(INVALID_TOKEN))
        }
        None if head => Ok(Start::Head),
        None => Ok(Start::Tail),
    }
}

/// The events of `script` a request may see: readable ones with `start <= timestamp < end`.
fn window(s: &StreamEvents, start_time: Option<i64>, end_time: Option<i64>) -> Window {
    let end = end_time.map_or(s.readable, |t| {
        s.script.first_at_or_after(t).min(s.readable)
    });
    let start = start_time
        .map_or(0, |t| s.script.first_at_or_after(t))
        .min(end);
    Window { start, end }
}

fn output_event(script: &LogScript, i: usize, message: String) -> Value {
    json!({
        "timestamp": script.timestamp(i),
        "message": message,
        "ingestionTime": script.ingestion(i),
    })
}

/// GetLogEvents. Returns the response and the number of events in it.
pub fn get_log_events(groups: &impl LogGroups, req: &Value) -> Result<(Value, usize), ApiError> {
    let group = group_name(req)?;
    let stream = nonempty_str(req, "logStreamName")?.ok_or_else(|| {
        ApiError::invalid_parameter(
            "1 validation error detected: Value null at 'logStreamName' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let limit = limit(req)?;
    let (start_time, end_time) = (millis(req, "startTime")?, millis(req, "endTime")?);
    let start = start_of(req)?;
    let s = groups.stream(&group, stream)?;
    if start.position().is_some_and(|p| p > s.readable) {
        return Err(ApiError::invalid_parameter(INVALID_TOKEN));
    }
    let w = window(&s, start_time, end_time);
    let page = paging::page(start, w, limit, |i| s.script.message(i));
    let count = page.messages.len();
    let events: Vec<Value> = page
        .messages
        .into_iter()
        .enumerate()
        .map(|(j, m)| output_event(s.script, page.first + j, m))
        .collect();
    Ok((
        json!({
            "events": events,
            "nextForwardToken": paging::forward_token(page.forward),
            "nextBackwardToken": paging::backward_token(page.backward),
        }),
        count,
    ))
}

/// The streams a FilterLogEvents request searches.
fn selected_streams<'a>(
    all: Vec<StreamEvents<'a>>,
    req: &Value,
) -> Result<Vec<StreamEvents<'a>>, ApiError> {
    let prefix = nonempty_str(req, "logStreamNamePrefix")?;
    let names = match req.get("logStreamNames") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            if list.is_empty() || list.len() > 100 {
                let shown = format!("{list:?}");
                let rule = if list.is_empty() {
                    "Member must have length greater than or equal to 1"
                } else {
                    "Member must have length less than or equal to 100"
                };
                return Err(constraint(shown, "logStreamNames", rule));
            }
            let names: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
            Some(names.ok_or_else(|| serialization("logStreamNames", "a list of strings"))?)
        }
        Some(_) => return Err(serialization("logStreamNames", "a list of strings")),
    };
    if names.is_some() && prefix.is_some() {
        return Err(ApiError::invalid_parameter(
            "logStreamNames and logStreamNamePrefix cannot both be specified",
        ));
    }
    Ok(all
        .into_iter()
        .filter(|s| names.as_ref().is_none_or(|n| n.contains(&s.name)))
        .filter(|s| prefix.is_none_or(|p| s.name.starts_with(p)))
        .collect())
}

/// FilterLogEvents. Returns the response and the number of events in it.
pub fn filter_log_events(groups: &impl LogGroups, req: &Value) -> Result<(Value, usize), ApiError> {
    let group = group_name(req)?;
    let limit = limit(req)?;
    let (start_time, end_time) = (millis(req, "startTime")?, millis(req, "endTime")?);
    let text = opt_str(req, "filterPattern")?.unwrap_or("");
    if text.chars().count() > 1024 {
        return Err(constraint(
            text,
            "filterPattern",
            "Member must have length less than or equal to 1024",
        ));
    }
    let pattern = Pattern::parse(text).map_err(ApiError::invalid_parameter)?;
    let streams = groups
        .streams(&group)
        .ok_or_else(|| ApiError::not_found(GROUP_NOT_FOUND))?;
    let streams = selected_streams(streams, req)?;
    // moto: "AWS returns an empty list if it receives an invalid token".
    let after = match nonempty_str(req, "nextToken")? {
        None => None,
        Some(token) => match Key::parse(token) {
            Some(k) => Some(k),
            None => return Ok((json!({"events": [], "searchedLogStreams": []}), 0)),
        },
    };
    let query = Query {
        start_time,
        end_time,
        pattern,
        limit,
        after,
    };
    let (found, next) = filter::filter(&streams, &query);
    let count = found.len();
    let events: Vec<Value> = found
        .into_iter()
        .map(|f| {
            let s = &streams[f.stream];
            json!({
                "logStreamName": s.name,
                "timestamp": s.script.timestamp(f.index),
                "message": f.message,
                "ingestionTime": s.script.ingestion(f.index),
                "eventId": s.script.event_id(f.index),
            })
        })
        .collect();
    // The service has returned an empty searchedLogStreams since May 2020 (botocore's model).
    let mut out = json!({"events": events, "searchedLogStreams": []});
    if let Some(k) = next {
        out["nextToken"] = json!(k.token());
    }
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_and_identifiers() {
        assert_eq!(
            group_name(&json!({"logGroupName": "/a/b"})).ok().as_deref(),
            Some("/a/b")
        );
        let arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/codebuild/p:*";
        assert_eq!(
            group_name(&json!({"logGroupIdentifier": arn}))
                .ok()
                .as_deref(),
            Some("/aws/codebuild/p")
        );
        assert_eq!(
            group_name(&json!({"logGroupIdentifier": "/x"}))
                .ok()
                .as_deref(),
            Some("/x")
        );
        for bad in [
            json!({}),
            json!({"logGroupName": "a", "logGroupIdentifier": "a"}),
            json!({"logGroupName": ""}),
        ] {
            assert_eq!(
                group_name(&bad).err().map(|e| e.kind),
                Some(ErrorKind::InvalidParameter)
            );
        }
    }

    #[test]
    fn limits_and_times() {
        assert_eq!(limit(&json!({})).ok(), Some(10_000));
        assert_eq!(limit(&json!({"limit": 5})).ok(), Some(5));
        assert_eq!(
            limit(&json!({"limit": 10_001}))
                .err()
                .map(|e| e.message)
                .as_deref(),
            Some(
                "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000"
            )
        );
        assert_eq!(
            limit(&json!({"limit": 0})).err().map(|e| e.kind),
            Some(ErrorKind::InvalidParameter)
        );
        assert_eq!(
            limit(&json!({"limit": "x"})).err().map(|e| e.kind),
            Some(ErrorKind::Serialization)
        );
        assert_eq!(
            millis(&json!({"startTime": -1}), "startTime")
                .err()
                .map(|e| e.kind),
            Some(ErrorKind::InvalidParameter)
        );
        assert_eq!(
            start_of(&json!({"nextToken": "b/1"})).ok(),
            Some(Start::Backward(1))
        );
        assert_eq!(
            start_of(&json!({"startFromHead": true})).ok(),
            Some(Start::Head)
        );
        assert_eq!(start_of(&json!({})).ok(), Some(Start::Tail));
        assert_eq!(
            start_of(&json!({"nextToken": "nope"}))
                .err()
                .map(|e| e.message)
                .as_deref(),
            Some(INVALID_TOKEN)
        );
    }
}
