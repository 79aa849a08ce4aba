//! Label selectors, parsed once by kube-core (`Selector: TryFrom<LabelSelector>`) and used
//! both to decide (`SelectorExt::matches`) and to render the admission policy's CEL
//! (`admission`), so the two cannot mean different things.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// The selector as kube-core reads it; None when it is invalid (an unknown operator, `In`
/// or `NotIn` without values): an invalid policy selects, and so grants, nothing.
pub fn parse(selector: &LabelSelector) -> Option<Selector> {
    Selector::try_from(selector.clone()).ok()
}

/// Whether `selector` selects an object with `labels` (`matchLabels` and
/// `matchExpressions`, all terms holding; `{}` selects everything).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    parse(selector).is_some_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selects_everything() {
        assert!(selects(&LabelSelector::default(), &labels(&[])));
        assert!(selects(&LabelSelector::default(), &labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
            match_expressions: Some(vec![
                expr("env", "In", &["dev", "prod"]),
                expr("frozen", "DoesNotExist", &[]),
                expr("tier", "NotIn", &["legacy"]),
                expr("owner", "Exists", &[]),
            ]),
        };
        let ok = labels(&[("team", "a"), ("env", "dev"), ("owner", "x")]);
        assert!(selects(&sel, &ok));
        let mut l = ok.clone();
        l.insert("team".into(), "b".into());
        assert!(!selects(&sel, &l), "matchLabels");
        let mut l = ok.clone();
        l.insert("env".into(), "qa".into());
        assert!(!selects(&sel, &l), "In");
        let mut l = ok.clone();
        l.insert("frozen".into(), "".into());
        assert!(!selects(&sel, &l), "DoesNotExist");
        let mut l = ok.clone();
        l.insert("tier".into(), "legacy".into());
        assert!(!selects(&sel, &l), "NotIn");
        let mut l = ok.clone();
        l.remove("owner");
        assert!(!selects(&sel, &l), "Exists");
    }

    #[test]
    fn unknown_operator_selects_nothing() {
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("a", "Matches", &["x"])]),
            ..Default::default()
        };
        assert!(!selects(&sel, &labels(&[("a", "x")])));
    }
}
