//! Timestamps between the AWS SDK (`aws_smithy_types::DateTime`) and Kubernetes (`Time`).
//!
//! Kubernetes serializes `Time` with whole seconds. Converting at second precision keeps
//! what the operator computes equal to what it reads back, so an unchanged build never
//! causes a status write.

use aws_smithy_types::DateTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// An AWS timestamp as a Kubernetes `Time`, truncated to the second; None when out of range.
pub fn from_aws_time(t: &DateTime) -> Option<Time> {
    Timestamp::from_second(t.secs()).ok().map(Time)
}

/// The type `now` returns.
pub type NowTime = Time;

/// The current time, truncated to the second.
pub fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_whole_seconds_as_kubernetes_stores_them() {
        let aws = DateTime::from_secs_and_nanos(1_764_000_000, 923_000_000);
        let k8s = from_aws_time(&aws).expect("in range");
        assert_eq!(
            serde_json::to_string(&k8s).unwrap(),
            "\"2025-11-24T16:00:00Z\""
        );
        let back: Time = serde_json::from_str(&serde_json::to_string(&k8s).unwrap()).unwrap();
        assert_eq!(back, k8s);
        assert_eq!(now().0.subsec_nanosecond(), 0);
    }
}
