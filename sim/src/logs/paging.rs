//! GetLogEvents paging, as the service does it: `f/<56 digits>` and `b/<56 digits>` tokens,
//! pages of at most `limit` events and 1 MB, and at the end of the stream the very token that
//! was passed in (a reader knows it has caught up when the token stops changing).
//!
//! A token names a position in the stream (an event index; events are never removed, so a
//! position stays valid as the stream grows): `f/N` reads forward from event N, `b/N` reads
//! backward from just before event N. moto's forward token names the last event returned
//! instead (one less) and is `f/-0…01` for an empty stream read from the head; its backward
//! tokens are the same as these.

use super::{MAX_RESPONSE_BYTES, event_size};

/// Digits in a token, as both the service and moto write them.
pub const TOKEN_DIGITS: usize = 56;

/// Where a GetLogEvents call starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No token, `startFromHead: true`: the oldest events first.
    Head,
    /// No token, `startFromHead` false or absent: the newest events.
    Tail,
    /// `nextForwardToken` from an earlier call.
    Forward(usize),
    /// `nextBackwardToken` from an earlier call.
    Backward(usize),
}

impl Start {
    /// The stream position a token names, if the call has one.
    pub fn position(self) -> Option<usize> {
        match self {
            Start::Forward(p) | Start::Backward(p) => Some(p),
            Start::Head | Start::Tail => None,
        }
    }
}

pub fn forward_token(position: usize) -> String {
    format!("f/{position:0TOKEN_DIGITS$}")
}

pub fn backward_token(position: usize) -> String {
    format!("b/{position:0TOKEN_DIGITS$}")
}

/// Parses `f/<digits>` or `b/<digits>`; None when malformed.
pub fn parse_token(token: &str) -> Option<Start> {
    let (direction, digits) = token.split_once('/')?;
    if digits.is_empty()
        || digits.len() > TOKEN_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    let position = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    match direction {
        "f" => Some(Start::Forward(position)),
        "b" => Some(Start::Backward(position)),
        _ => None,
    }
}

/// The events a call may return: indices `start..end` of the stream (its readable events in
/// the call's time range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
}

/// One GetLogEvents answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Index of the first event returned.
    pub first: usize,
    /// Messages of the events returned, oldest first.
    pub messages: Vec<String>,
    pub forward: usize,
    pub backward: usize,
}

/// Takes events while they fit: at most `limit` and 1 MB (always at least one).
fn take(
    indices: impl Iterator<Item = usize>,
    limit: usize,
    message: &mut impl FnMut(usize) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for i in indices {
        if out.len() >= limit {
            break;
        }
        let m = message(i);
        let size = event_size(&m);
        if !out.is_empty() && bytes + size > MAX_RESPONSE_BYTES {
            break;
        }
        bytes += size;
        out.push(m);
    }
    out
}

/// The page a call starting at `start` gets from `window`; `message(i)` renders event `i`.
pub fn page(
    start: Start,
    window: Window,
    limit: usize,
    mut message: impl FnMut(usize) -> String,
) -> Page {
    match start {
        Start::Head | Start::Forward(_) => {
            let from = start.position().unwrap_or(window.start);
            let begin = from.max(window.start);
            let messages = take(begin..window.end, limit, &mut message);
            let n = messages.len();
            Page {
                first: begin,
                messages,
                forward: if n == 0 { from } else { begin + n },
                backward: if n == 0 { from } else { begin },
            }
        }
        Start::Tail | Start::Backward(_) => {
            let from = start.position().unwrap_or(window.end);
            let stop = from.min(window.end);
            let mut messages = take((window.start..stop).rev(), limit, &mut message);
            messages.reverse();
            let n = messages.len();
            Page {
                first: stop - n,
                messages,
                forward: if n == 0 { from } else { stop },
                backward: if n == 0 { from } else { stop - n },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize) -> Window {
        Window { start: 0, end: n }
    }

    fn short(i: usize) -> String {
        format!("line {i}\n")
    }

    fn read(start: Start, window: Window, limit: usize) -> (Vec<String>, usize, usize) {
        let p = page(start, window, limit, short);
        (p.messages, p.forward, p.backward)
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(forward_token(7).len(), 2 + 56);
        assert_eq!(parse_token(&forward_token(7)), Some(Start::Forward(7)));
        assert_eq!(parse_token(&backward_token(0)), Some(Start::Backward(0)));
        for bad in [
            "",
            "f/",
            "x/1",
            "f/-1",
            "f/1a",
            "f/00000000000000000000000000000000000000000000000000000000000",
            "garbage",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn forward_from_the_head_until_the_token_stops_changing() {
        let w = all(5);
        let (m, f, b) = read(Start::Head, w, 2);
        assert_eq!((m, f, b), (vec![short(0), short(1)], 2, 0));
        let (m, f, b) = read(Start::Forward(2), w, 2);
        assert_eq!((m.len(), f, b), (2, 4, 2));
        let (m, f, b) = read(Start::Forward(4), w, 2);
        assert_eq!((m, f, b), (vec![short(4)], 5, 4));
        // The end: the same token comes back, and again later.
        assert_eq!(read(Start::Forward(5), w, 2), (vec![], 5, 5));
        // New events continue from there.
        assert_eq!(read(Start::Forward(5), all(6), 2), (vec![short(5)], 6, 5));
    }

    #[test]
    fn tail_then_backward_to_the_start() {
        let w = all(5);
        assert_eq!(read(Start::Tail, w, 2), (vec![short(3), short(4)], 5, 3));
        assert_eq!(
            read(Start::Backward(3), w, 2),
            (vec![short(1), short(2)], 3, 1)
        );
        assert_eq!(read(Start::Backward(1), w, 2), (vec![short(0)], 1, 0));
        assert_eq!(read(Start::Backward(0), w, 2), (vec![], 0, 0));
        // Without a limit the whole stream, oldest first.
        assert_eq!(read(Start::Tail, w, 10_000).0.len(), 5);
    }

    #[test]
    fn empty_streams_and_windows() {
        assert_eq!(read(Start::Head, all(0), 10), (vec![], 0, 0));
        assert_eq!(read(Start::Tail, all(0), 10), (vec![], 0, 0));
        let w = Window { start: 3, end: 3 };
        assert_eq!(read(Start::Head, w, 10), (vec![], 3, 3));
        assert_eq!(read(Start::Forward(1), w, 10), (vec![], 1, 1));
        // A token before the window jumps to the window.
        let w = Window { start: 2, end: 4 };
        assert_eq!(
            read(Start::Forward(0), w, 10),
            (vec![short(2), short(3)], 4, 2)
        );
        assert_eq!(
            read(Start::Backward(5), w, 10),
            (vec![short(2), short(3)], 4, 2)
        );
    }

    #[test]
    fn one_megabyte_per_page() {
        let big = |_: usize| "x".repeat(262_117) + "\n";
        let p = page(Start::Head, all(10), 10_000, big);
        // Four 256 KiB events (262,144 bytes each with overhead) fit in 1,048,576 bytes.
        assert_eq!(p.messages.len(), 4);
        assert_eq!(p.forward, 4);
        let p = page(Start::Tail, all(10), 10_000, big);
        assert_eq!(
            (p.first, p.messages.len(), p.backward, p.forward),
            (6, 4, 6, 10)
        );
        let many = page(Start::Head, all(20_000), 10_000, short);
        assert_eq!(many.messages.len(), 10_000);
    }
}
