//! Label selectors, as Kubernetes evaluates them (`matchLabels` and `matchExpressions`
//! with In, NotIn, Exists, DoesNotExist; all terms must hold; `{}` selects everything).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` selects an object with `labels`. A term with an unknown operator
/// selects nothing: an invalid policy grants nothing.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_hold = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_hold && expressions_hold
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
