//! Per-operation request rate limits: one token bucket per operation name, refilled at
//! `ratePerSecond` up to `burst` tokens. A call that finds its bucket empty is answered with
//! ThrottlingException, as the service answers calls over its (unpublished) request quotas.
//!
//! Buckets run on real (monotonic) time, not the simulator clock: a rate limit is about how
//! fast clients call, so neither `--time-scale` nor `POST /_sim/clock` changes it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The key whose limit applies to every operation without one of its own (each operation
/// still gets its own bucket).
pub const ANY_OPERATION: &str = "*";

/// One operation's limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained calls per second (tokens added per second); 0 never refills.
    pub rate_per_second: f64,
    /// Calls accepted at once from a full bucket; default: the rate rounded up, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The bucket's capacity.
    pub fn capacity(&self) -> f64 {
        match self.burst {
            Some(b) => f64::from(b),
            None => self.rate_per_second.ceil().max(1.0),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.rate_per_second.is_finite() && self.rate_per_second >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "rate must be a non-negative number, got {}",
                self.rate_per_second
            ))
        }
    }
}

/// Limits by operation name (CodeBuild or CloudWatch Logs), `*` for every other operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateLimits(pub BTreeMap<String, RateLimit>);

impl RateLimits {
    /// The limit of `operation`: its own, else the `*` one.
    pub fn get(&self, operation: &str) -> Option<&RateLimit> {
        self.0.get(operation).or_else(|| self.0.get(ANY_OPERATION))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every limit is usable (rates finite and non-negative).
    pub fn validate(&self) -> Result<(), String> {
        for (op, limit) in &self.0 {
            limit.check().map_err(|e| format!("{op}: {e}"))?;
        }
        Ok(())
    }

    /// Parses `--rate-limit` values (see [`parse_spec`]); a later value for the same
    /// operation replaces an earlier one.
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<RateLimits, String> {
        let mut limits = RateLimits::default();
        for spec in specs
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| !s.trim().is_empty())
        {
            let (op, limit) = parse_spec(spec)?;
            limits.0.insert(op, limit);
        }
        Ok(limits)
    }
}

/// Parses `OPERATION=RATE[,burst=N]` where RATE is a number of calls per second, or
/// `N/s`, `N/m` (per minute) or `N/h` (per hour): `StartBuild=10/s,burst=20`,
/// `BatchGetBuilds=120/m`, `*=50`.
pub fn parse_spec(spec: &str) -> Result<(String, RateLimit), String> {
    let bad = |why: &str| {
        format!("rate limit '{spec}': {why} (expected OPERATION=RATE[/s|/m|/h][,burst=N])")
    };
    let (op, rest) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let op = op.trim();
    if op.is_empty() {
        return Err(bad("no operation"));
    }
    let mut parts = rest.split(',').map(str::trim);
    let rate_text = parts.next().unwrap_or_default();
    let (number, per) = match rate_text.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (rate_text, "s"),
    };
    let seconds = match per {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(bad(&format!("unknown unit '{other}'"))),
    };
    let count: f64 = number.parse().map_err(|_| bad("rate is not a number"))?;
    let mut limit = RateLimit {
        rate_per_second: count / seconds,
        burst: None,
    };
    for part in parts {
        let Some(value) = part.strip_prefix("burst=") else {
            return Err(bad(&format!("unknown setting '{part}'")));
        };
        limit.burst = Some(
            value
                .trim()
                .parse()
                .map_err(|_| bad("burst is not a whole number"))?,
        );
    }
    limit.check().map_err(|e| bad(&e))?;
    Ok((op.to_string(), limit))
}

/// A token bucket; times are seconds on any monotonic clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: f64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(limit: &RateLimit, now: f64) -> Bucket {
        Bucket {
            tokens: limit.capacity(),
            last: now,
        }
    }

    /// Refills for the time since the last call and takes one token if there is one.
    pub fn take(&mut self, limit: &RateLimit, now: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.tokens = (self.tokens + elapsed * limit.rate_per_second).min(limit.capacity());
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limits in force and a bucket per operation that has been called.
#[derive(Clone, Debug, Default)]
pub struct Limiter {
    limits: RateLimits,
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            buckets: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Replaces the limits; every bucket starts full again.
    pub fn set(&mut self, limits: RateLimits) {
        self.limits = limits;
        self.buckets.clear();
    }

    /// Whether a call to `operation` at `now` is within its limit (always, without one).
    pub fn admit(&mut self, operation: &str, now: f64) -> bool {
        let Some(limit) = self.limits.get(operation).copied() else {
            return true;
        };
        self.buckets
            .entry(operation.to_string())
            .or_insert_with(|| Bucket::full(&limit, now))
            .take(&limit, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: f64, burst: Option<u32>) -> RateLimit {
        RateLimit {
            rate_per_second: rate,
            burst,
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse_spec("StartBuild=10/s,burst=20"),
            Ok(("StartBuild".into(), limit(10.0, Some(20))))
        );
        assert_eq!(
            parse_spec(" BatchGetBuilds = 120/m "),
            Ok(("BatchGetBuilds".into(), limit(2.0, None)))
        );
        assert_eq!(parse_spec("*=0.5"), Ok(("*".into(), limit(0.5, None))));
        assert_eq!(
            parse_spec("X=36/h,burst=0"),
            Ok(("X".into(), limit(0.01, Some(0))))
        );
        for bad in [
            "StartBuild",
            "=1/s",
            "A=x/s",
            "A=1/d",
            "A=1,burst=-1",
            "A=1,size=2",
            "A=-1",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
        let all = RateLimits::from_specs(&["A=1", "", "A=2,burst=3", "*=5"]).unwrap_or_default();
        assert_eq!(all.get("A"), Some(&limit(2.0, Some(3))));
        assert_eq!(all.get("B"), Some(&limit(5.0, None)));
    }

    #[test]
    fn json_shape() {
        let limits: RateLimits =
            serde_json::from_str(r#"{"StartBuild": {"ratePerSecond": 10, "burst": 20}}"#)
                .unwrap_or_default();
        assert_eq!(limits.get("StartBuild"), Some(&limit(10.0, Some(20))));
        assert_eq!(limits.get("Other"), None);
        assert!(serde_json::from_str::<RateLimits>(r#"{"A": {"rate": 1}}"#).is_err());
        let bad: RateLimits =
            serde_json::from_str(r#"{"A": {"ratePerSecond": -1}}"#).unwrap_or_default();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let l = limit(2.0, Some(3));
        let mut b = Bucket::full(&l, 0.0);
        let at_once: Vec<bool> = (0..4).map(|_| b.take(&l, 0.0)).collect();
        assert_eq!(at_once, [true, true, true, false]);
        assert!(!b.take(&l, 0.25), "half a token");
        assert!(b.take(&l, 0.5), "one token after 0.5 s at 2/s");
        assert!(!b.take(&l, 0.5));
        // A long pause refills to the burst, no further.
        let later: Vec<bool> = (0..4).map(|_| b.take(&l, 100.0)).collect();
        assert_eq!(later, [true, true, true, false]);
        // Time going backwards does not mint tokens.
        assert!(!b.take(&l, 50.0));
    }

    #[test]
    fn default_burst_is_the_rate_rounded_up() {
        assert_eq!(limit(0.2, None).capacity(), 1.0);
        assert_eq!(limit(2.5, None).capacity(), 3.0);
        assert_eq!(limit(0.0, Some(0)).capacity(), 0.0);
    }

    #[test]
    fn the_limiter_keeps_a_bucket_per_operation() {
        let limits =
            RateLimits::from_specs(&["StartBuild=0,burst=1", "*=0,burst=2"]).unwrap_or_default();
        let mut lim = Limiter::new(limits.clone());
        assert!(lim.admit("StartBuild", 0.0));
        assert!(!lim.admit("StartBuild", 1.0));
        assert!(lim.admit("BatchGetBuilds", 1.0));
        assert!(lim.admit("BatchGetBuilds", 1.0));
        assert!(!lim.admit("BatchGetBuilds", 1.0));
        assert!(lim.admit("GetLogEvents", 1.0), "its own bucket");
        lim.set(limits);
        assert!(lim.admit("StartBuild", 2.0), "set refills");
        lim.set(RateLimits::default());
        assert!((0..100).all(|_| lim.admit("StartBuild", 3.0)));
    }
}
