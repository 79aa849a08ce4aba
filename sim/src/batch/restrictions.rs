//! Batch restrictions (`buildBatchConfig.restrictions`, or the override): how many builds a
//! batch may run and which compute types and fleets they may use. The batchspec is only known
//! once it has been downloaded, so the service checks them then; a batch that breaks one
//! fails in DOWNLOAD_BATCHSPEC (statusCode CLIENT_ERROR) before any of its builds starts. The
//! messages are the simulator's: the service's wording is not documented.

use super::spec::Entry;
use serde_json::Value;

/// The most builds a batch runs when `maximumBuildsAllowed` is not set (the service's quota
/// of builds per batch).
pub const DEFAULT_MAXIMUM_BUILDS: u64 = 100;

/// What each entry runs on when its `env` does not say.
#[derive(Clone, Debug, Default)]
pub struct Defaults<'a> {
    /// The batch's compute type (its `computeTypeOverride`, else the project's).
    pub compute_type: &'a str,
    /// The project's fleet ARN, if it runs on one.
    pub fleet: Option<&'a str>,
}

/// The first restriction the batch's entries break, as the batch's failure message.
pub fn check(config: Option<&Value>, entries: &[Entry], defaults: &Defaults) -> Result<(), String> {
    let restrictions = config.and_then(|c| c.get("restrictions"));
    let maximum = restrictions
        .and_then(|r| r.get("maximumBuildsAllowed"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAXIMUM_BUILDS);
    if entries.len() as u64 > maximum {
        return Err(format!(
            "Batch build has {} builds, more than the maximum builds allowed ({maximum})",
            entries.len()
        ));
    }
    if let Some(allowed) = strings(restrictions, "computeTypesAllowed") {
        for e in entries {
            let compute = e
                .env
                .compute_type
                .as_deref()
                .unwrap_or(defaults.compute_type);
            if !allowed.iter().any(|a| a == compute) {
                return Err(format!(
                    "Build {} uses compute type {compute}, which is not in the compute types allowed ({})",
                    e.identifier,
                    allowed.join(", ")
                ));
            }
        }
    }
    if let Some(allowed) = strings(restrictions, "fleetsAllowed") {
        for e in entries {
            let Some(fleet) = e.env.fleet.as_deref().or(defaults.fleet) else {
                continue;
            };
            if !allowed
                .iter()
                .any(|a| a == fleet || fleet.ends_with(&format!("/{a}")))
            {
                return Err(format!(
                    "Build {} uses fleet {fleet}, which is not in the fleets allowed ({})",
                    e.identifier,
                    allowed.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// A non-empty list of strings (an empty or absent list restricts nothing).
fn strings(restrictions: Option<&Value>, key: &str) -> Option<Vec<String>> {
    let list: Vec<String> = restrictions?
        .get(key)?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::spec::EntryEnv;
    use serde_json::json;

    fn entry(id: &str, compute: Option<&str>, fleet: Option<&str>) -> Entry {
        Entry {
            identifier: id.into(),
            env: EntryEnv {
                compute_type: compute.map(str::to_string),
                fleet: fleet.map(str::to_string),
                ..EntryEnv::default()
            },
            ..Entry::default()
        }
    }

    const SMALL: Defaults = Defaults {
        compute_type: "BUILD_GENERAL1_SMALL",
        fleet: None,
    };

    #[test]
    fn maximum_builds() {
        let entries: Vec<Entry> = (0..3)
            .map(|i| entry(&format!("b{i}"), None, None))
            .collect();
        let config = json!({"restrictions": {"maximumBuildsAllowed": 3}});
        assert_eq!(check(Some(&config), &entries, &SMALL), Ok(()));
        let config = json!({"restrictions": {"maximumBuildsAllowed": 2}});
        assert_eq!(
            check(Some(&config), &entries, &SMALL),
            Err("Batch build has 3 builds, more than the maximum builds allowed (2)".into())
        );
        let many: Vec<Entry> = (0..101)
            .map(|i| entry(&format!("b{i}"), None, None))
            .collect();
        assert!(check(None, &many, &SMALL).is_err(), "100 by default");
        assert_eq!(check(None, &many[..100], &SMALL), Ok(()));
    }

    #[test]
    fn compute_types_use_the_batch_default() {
        let config = json!({"restrictions": {"computeTypesAllowed": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM"]}});
        let fine = [
            entry("a", None, None),
            entry("b", Some("BUILD_GENERAL1_MEDIUM"), None),
        ];
        assert_eq!(check(Some(&config), &fine, &SMALL), Ok(()));
        let large = [
            entry("a", None, None),
            entry("big", Some("BUILD_GENERAL1_LARGE"), None),
        ];
        let err = check(Some(&config), &large, &SMALL)
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("Build big uses compute type BUILD_GENERAL1_LARGE"),
            "{err}"
        );
        let large_default = Defaults {
            compute_type: "BUILD_GENERAL1_LARGE",
            fleet: None,
        };
        assert!(check(Some(&config), &fine[..1], &large_default).is_err());
        let empty = json!({"restrictions": {"computeTypesAllowed": []}});
        assert_eq!(check(Some(&empty), &large, &SMALL), Ok(()));
    }

    #[test]
    fn fleets_by_arn_or_name() {
        let config = json!({"restrictions": {"fleetsAllowed": ["linux-fleet"]}});
        let arn = "arn:aws:codebuild:us-east-1:123456789012:fleet/linux-fleet";
        assert_eq!(
            check(Some(&config), &[entry("a", None, Some(arn))], &SMALL),
            Ok(())
        );
        assert_eq!(
            check(Some(&config), &[entry("a", None, None)], &SMALL),
            Ok(())
        );
        let other = [entry("a", None, Some("other-fleet"))];
        assert!(check(Some(&config), &other, &SMALL).is_err());
    }
}
