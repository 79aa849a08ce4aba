//! FilterLogEvents over a log group: events of its streams merged in timestamp order, matched
//! against a filter pattern, in pages of `limit` events and 1 MB with an opaque `nextToken`.
//!
//! Filter patterns: terms (all must occur), `"quoted phrases"`, `?term` (at least one of the
//! `?` terms must occur) and `-term` (must not occur); matching is case-sensitive, on the raw
//! message, as the service does for unstructured logs. JSON (`{ ... }`), space-delimited
//! (`[ ... ]`) and regular-expression (`%...%`) patterns are refused with an error naming the
//! simulator's limit.

use super::script::LogScript;
use super::{MAX_RESPONSE_BYTES, event_size};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A parsed filter pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pattern {
    required: Vec<String>,
    any: Vec<String>,
    excluded: Vec<String>,
}

impl Pattern {
    /// Parses `filterPattern`; errors are InvalidParameterException messages.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let t = text.trim();
        if t.starts_with('{') || t.starts_with('[') || t.starts_with('%') {
            return Err(format!(
                "Unsupported filter pattern '{text}': the simulator matches terms, \"phrases\", ?any and -excluded terms only"
            ));
        }
        let mut out = Pattern::default();
        let mut chars = t.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let list = match c {
                '?' => &mut out.any,
                '-' => &mut out.excluded,
                _ => &mut out.required,
            };
            if c == '?' || c == '-' {
                chars.next();
            }
            let term = if chars.peek() == Some(&'"') {
                chars.next();
                let phrase: String = chars.by_ref().take_while(|c| *c != '"').collect();
                phrase
            } else {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    word.push(c);
                }
                word
            };
            if !term.is_empty() {
                list.push(term);
            }
        }
        Ok(out)
    }

    pub fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
    }
}

/// A stream of the group as it is now.
#[derive(Clone, Copy, Debug)]
pub struct StreamEvents<'a> {
    pub name: &'a str,
    pub script: &'a LogScript,
    /// Events readable now (a prefix of the script).
    pub readable: usize,
}

/// The position after which a page continues: (timestamp, stream name, event index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub timestamp: i64,
    pub stream: String,
    pub index: usize,
}

impl Key {
    const PREFIX: &'static str = "sim-filter-1-";

    /// The opaque `nextToken` for this position.
    pub fn token(&self) -> String {
        let raw = format!("{}:{}:{}", self.timestamp, self.index, self.stream);
        let hex: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}{hex}", Self::PREFIX)
    }

    /// Reads a token made by [`Key::token`].
    pub fn parse(token: &str) -> Option<Key> {
        let hex = token.strip_prefix(Self::PREFIX)?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let raw = String::from_utf8(bytes?).ok()?;
        let mut parts = raw.splitn(3, ':');
        Some(Key {
            timestamp: parts.next()?.parse().ok()?,
            index: parts.next()?.parse().ok()?,
            stream: parts.next()?.to_string(),
        })
    }
}

/// What to look for.
#[derive(Clone, Debug)]
pub struct Query {
    /// Events at or after this time (ms).
    pub start_time: Option<i64>,
    /// Events at or before this time (ms).
    pub end_time: Option<i64>,
    pub pattern: Pattern,
    pub limit: usize,
    /// Continue after this position.
    pub after: Option<Key>,
}

/// An event found: its stream (index into the streams given) and its index in that stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub stream: usize,
    pub index: usize,
    pub message: String,
}

/// The first event of `s` (stream number `si` in name order) this query may return.
fn first_index(s: &StreamEvents, q: &Query) -> usize {
    let lo = q.start_time.map_or(0, |t| s.script.first_at_or_after(t));
    let after = q
        .after
        .as_ref()
        .map_or(0, |k| match s.name.cmp(k.stream.as_str()) {
            std::cmp::Ordering::Less => s.script.first_at_or_after(k.timestamp.saturating_add(1)),
            std::cmp::Ordering::Greater => s.script.first_at_or_after(k.timestamp),
            std::cmp::Ordering::Equal => k.index.saturating_add(1),
        });
    lo.max(after)
}

/// One page of matching events from `streams` (sorted by name), in (timestamp, stream,
/// index) order, and the position to continue from when more match.
pub fn filter(streams: &[StreamEvents], q: &Query) -> (Vec<Found>, Option<Key>) {
    let mut heap = BinaryHeap::new();
    let mut ends = Vec::with_capacity(streams.len());
    for (si, s) in streams.iter().enumerate() {
        let by_time = q.end_time.map_or(s.readable, |t| {
            s.script.first_at_or_after(t.saturating_add(1))
        });
        let end = s.readable.min(by_time);
        let start = first_index(s, q);
        if start < end {
            heap.push(Reverse((s.script.timestamp(start), si, start)));
        }
        ends.push(end);
    }
    let mut found: Vec<Found> = Vec::new();
    let mut bytes = 0;
    while let Some(Reverse((_, si, i))) = heap.pop() {
        let s = &streams[si];
        if i + 1 < ends[si] {
            heap.push(Reverse((s.script.timestamp(i + 1), si, i + 1)));
        }
        let message = s.script.message(i);
        if !q.pattern.matches(&message) {
            continue;
        }
        let size = event_size(&message);
        if found.len() >= q.limit || (!found.is_empty() && bytes + size > MAX_RESPONSE_BYTES) {
            let next = found.last().map(|f| Key {
                timestamp: streams[f.stream].script.timestamp(f.index),
                stream: streams[f.stream].name.to_string(),
                index: f.index,
            });
            return (found, next);
        }
        bytes += size;
        found.push(Found {
            stream: si,
            index: i,
            message,
        });
    }
    (found, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = |s: &str| Pattern::parse(s).unwrap_or_default();
        assert!(p("").matches("anything"));
        assert!(p("Phase complete").matches("x Phase y complete"));
        assert!(!p("Phase complete").matches("Phase only"));
        assert!(p("\"Phase complete\"").matches("a Phase complete: BUILD"));
        assert!(!p("\"Phase complete\"").matches("complete Phase"));
        assert!(p("?FAILED ?TIMED_OUT").matches("State: FAILED"));
        assert!(!p("?FAILED ?TIMED_OUT").matches("State: SUCCEEDED"));
        assert!(p("State -SUCCEEDED").matches("State: FAILED"));
        assert!(!p("State -SUCCEEDED").matches("State: SUCCEEDED"));
        assert!(!p("error").matches("ERROR"), "case-sensitive");
        for bad in ["{ $.level = \"x\" }", "[ip, user]", "%ERR.*%"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let k = Key {
            timestamp: 1_700_000_000_123,
            stream: "prefix/with:colon".into(),
            index: 42,
        };
        assert_eq!(Key::parse(&k.token()), Some(k));
        assert_eq!(Key::parse("junk"), None);
        assert_eq!(Key::parse("sim-filter-1-zz"), None);
    }
}
