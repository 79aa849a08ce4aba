//! Is a run allowed? Pure: the run, its namespace's labels and the policies in, a decision
//! out. The admission policy (`admission`) renders the same rules as CEL and words its
//! refusals with the same functions' formats, so `kubectl apply` and the run's condition
//! say the same thing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{glob, selector};
use crate::api::{ALL_MEMBERS, CodeBuildRunPolicy, CodeBuildRunSpec, NOT_OVERRIDES, OverrideRules};

/// The members whose values a policy can constrain, with the `overrides` field that holds
/// the allowed values and the name of what is constrained (for messages).
pub const VALUE_RULES: &[(&str, ValueRule)] = &[
    ("imageOverride", ValueRule::Images),
    ("secondarySourcesOverride", ValueRule::SourceLocations),
    ("serviceRoleOverride", ValueRule::ServiceRoles),
    ("sourceLocationOverride", ValueRule::SourceLocations),
];

/// A value constraint of [`OverrideRules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRule {
    /// `overrides.images`.
    Images,
    /// `overrides.serviceRoles`.
    ServiceRoles,
    /// `overrides.sourceLocations`.
    SourceLocations,
}

impl ValueRule {
    /// The allowed values of this rule in `rules`, if constrained.
    pub fn patterns(self, rules: &OverrideRules) -> Option<&[String]> {
        match self {
            ValueRule::Images => rules.images.as_deref(),
            ValueRule::ServiceRoles => rules.service_roles.as_deref(),
            ValueRule::SourceLocations => rules.source_locations.as_deref(),
        }
    }
}

/// What a run asks for, as far as policies care.
#[derive(Clone, Debug)]
pub struct RunRequest<'a> {
    /// The run's namespace.
    pub namespace: &'a str,
    /// The Region the build would start in.
    pub region: &'a str,
    /// The run's spec.
    pub spec: &'a CodeBuildRunSpec,
}

/// The outcome of checking a run against the policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A policy allows the run (the first by name when several do).
    Allowed {
        /// The policy's name.
        policy: String,
        /// The role the policy says to assume, if any.
        role_arn: Option<String>,
    },
    /// No policy allows the run; the message names the gap.
    Denied {
        /// What is missing: no policy for the namespace, none for the project and Region,
        /// or the overrides each covering policy refuses.
        message: String,
    },
}

/// Checks `request` against `policies`. Policies add up: the run is allowed when at least
/// one policy selects its namespace, covers its project and Region, and allows every
/// override it sets.
pub fn evaluate(
    request: &RunRequest<'_>,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[&CodeBuildRunPolicy],
) -> Decision {
    let mut sorted: Vec<&CodeBuildRunPolicy> = policies.to_vec();
    sorted.sort_by_key(|p| policy_name(p));
    let selecting: Vec<&CodeBuildRunPolicy> = sorted
        .into_iter()
        .filter(|p| selector::selects(&p.spec.namespace_selector, namespace_labels))
        .collect();
    if selecting.is_empty() {
        return Decision::Denied {
            message: no_policy_for_namespace(request.namespace),
        };
    }
    let project = request.spec.project_name.as_str();
    let covering: Vec<&CodeBuildRunPolicy> = selecting
        .iter()
        .copied()
        .filter(|p| covers_project(p, project, request.region))
        .collect();
    if covering.is_empty() {
        let names: Vec<&str> = selecting.iter().map(|p| policy_name(p)).collect();
        return Decision::Denied {
            message: no_policy_for_project(request.namespace, project, request.region, &names),
        };
    }
    let spec = serde_json::to_value(request.spec).unwrap_or(Value::Null);
    let mut all_gaps = Vec::new();
    for policy in covering {
        let gaps = override_gaps(policy_name(policy), policy.spec.overrides.as_ref(), &spec);
        if gaps.is_empty() {
            return Decision::Allowed {
                policy: policy_name(policy).to_owned(),
                role_arn: policy.spec.role_arn.clone(),
            };
        }
        all_gaps.extend(gaps);
    }
    Decision::Denied {
        message: overrides_refused(request.namespace, project, request.region, &all_gaps),
    }
}

/// Whether `policy` names `project` in `region`.
pub fn covers_project(policy: &CodeBuildRunPolicy, project: &str, region: &str) -> bool {
    glob::any_matches(&policy.spec.projects, project)
        && policy
            .spec
            .regions
            .as_deref()
            .is_none_or(|regions| glob::any_matches(regions, region))
}

/// The StartBuild members `spec` sets that policies rule on, sorted.
pub fn used_overrides(spec: &Value) -> Vec<&str> {
    let mut members: Vec<&str> = spec
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    members.retain(|m| !NOT_OVERRIDES.contains(m));
    members.sort_unstable();
    members
}

/// Whether `rules` lets a run set `member` at all.
pub fn member_allowed(rules: Option<&OverrideRules>, member: &str) -> bool {
    let Some(rules) = rules else {
        return false;
    };
    let listed = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .any(|m| m == member || m == ALL_MEMBERS)
    };
    listed(&rules.allowed) && !listed(&rules.denied)
}

/// What `policy` refuses of the overrides in `spec` (the spec as JSON), in member order.
pub fn override_gaps(policy: &str, rules: Option<&OverrideRules>, spec: &Value) -> Vec<String> {
    let mut gaps = Vec::new();
    for member in used_overrides(spec) {
        if !member_allowed(rules, member) {
            gaps.push(member_not_allowed(policy, member));
            continue;
        }
        let Some(rules) = rules else { continue };
        let Some(rule) = VALUE_RULES
            .iter()
            .find(|(m, _)| *m == member)
            .map(|(_, r)| *r)
        else {
            continue;
        };
        let Some(patterns) = rule.patterns(rules) else {
            continue;
        };
        let refused = values_of(member, &spec[member])
            .into_iter()
            .find(|v| !glob::any_matches(patterns, v));
        if let Some(value) = refused {
            gaps.push(value_not_allowed(policy, member, &value, patterns));
        }
    }
    gaps
}

/// The constrained values a member carries: the string itself, or each secondary source's
/// `location`.
fn values_of(member: &str, value: &Value) -> Vec<String> {
    if member == "secondarySourcesOverride" {
        return value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("location").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
    }
    value.as_str().map(str::to_owned).into_iter().collect()
}

fn policy_name(policy: &CodeBuildRunPolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}

// === messages (the admission policy renders the same words in CEL) ===

/// No policy selects the namespace.
pub fn no_policy_for_namespace(namespace: &str) -> String {
    format!("no CodeBuildRunPolicy grants namespace \"{namespace}\"")
}

/// Policies select the namespace, but none names the project in the Region.
pub fn no_policy_for_project(
    namespace: &str,
    project: &str,
    region: &str,
    policies: &[&str],
) -> String {
    format!(
        "no CodeBuildRunPolicy lets namespace \"{namespace}\" start project \"{project}\" in \
         region \"{region}\" (policies for this namespace: {})",
        policies.join(", ")
    )
}

/// Policies cover the project, but each refuses some override.
pub fn overrides_refused(namespace: &str, project: &str, region: &str, gaps: &[String]) -> String {
    format!(
        "namespace \"{namespace}\" may not use these overrides for project \"{project}\" in \
         region \"{region}\": {}",
        gaps.join("; ")
    )
}

/// A member the policy does not allow.
pub fn member_not_allowed(policy: &str, member: &str) -> String {
    format!("policy \"{policy}\" does not allow {member}")
}

/// A value the policy does not allow for a member it allows.
pub fn value_not_allowed(policy: &str, member: &str, value: &str, patterns: &[String]) -> String {
    let allowed = if patterns.is_empty() {
        "none".to_owned()
    } else {
        patterns.join(", ")
    };
    format!("policy \"{policy}\" does not allow {member} \"{value}\" (allowed: {allowed})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CodeBuildRunPolicySpec, ProjectSource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn policy(name: &str, team: Option<&str>, projects: &[&str]) -> CodeBuildRunPolicy {
        let selector = LabelSelector {
            match_labels: team.map(|t| BTreeMap::from([("team".to_string(), t.to_string())])),
            ..Default::default()
        };
        let mut p = CodeBuildRunPolicy::new(
            name,
            CodeBuildRunPolicySpec {
                namespace_selector: selector,
                projects: projects.iter().map(|p| p.to_string()).collect(),
                regions: None,
                overrides: None,
                role_arn: None,
            },
        );
        p.metadata.name = Some(name.into());
        p
    }

    fn spec(project: &str) -> CodeBuildRunSpec {
        serde_json::from_value(serde_json::json!({ "projectName": project })).unwrap()
    }

    fn labels(team: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("team".to_string(), team.to_string())])
    }

    fn decide(spec: &CodeBuildRunSpec, team: &str, policies: &[&CodeBuildRunPolicy]) -> Decision {
        let req = RunRequest {
            namespace: "ns",
            region: "us-east-1",
            spec,
        };
        evaluate(&req, &labels(team), policies)
    }

    fn denied(d: Decision) -> String {
        match d {
            Decision::Denied { message } => message,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn no_policy_for_the_namespace() {
        let a = policy("a", Some("a"), &["*"]);
        assert_eq!(
            denied(decide(&spec("app"), "b", &[&a])),
            "no CodeBuildRunPolicy grants namespace \"ns\""
        );
        assert_eq!(
            denied(decide(&spec("app"), "b", &[])),
            "no CodeBuildRunPolicy grants namespace \"ns\""
        );
    }

    #[test]
    fn project_and_region() {
        let mut a = policy("a", Some("a"), &["team-a-*"]);
        let b = policy("b", None, &["shared"]);
        assert_eq!(
            decide(&spec("team-a-web"), "a", &[&a, &b]),
            Decision::Allowed {
                policy: "a".into(),
                role_arn: None
            }
        );
        assert_eq!(
            denied(decide(&spec("team-b-web"), "a", &[&b, &a])),
            "no CodeBuildRunPolicy lets namespace \"ns\" start project \"team-b-web\" in region \
             \"us-east-1\" (policies for this namespace: a, b)"
        );
        a.spec.regions = Some(vec!["eu-*".into()]);
        assert!(matches!(
            decide(&spec("team-a-web"), "a", &[&a]),
            Decision::Denied { .. }
        ));
    }

    #[test]
    fn overrides_need_allowing() {
        let mut a = policy("a", None, &["app"]);
        let s: CodeBuildRunSpec = serde_json::from_value(serde_json::json!({
            "projectName": "app", "sourceVersion": "main", "buildspecOverride": "x",
            "idempotencyToken": "t", "operator": {"stop": false}
        }))
        .unwrap();
        assert_eq!(
            denied(decide(&s, "a", &[&a])),
            "namespace \"ns\" may not use these overrides for project \"app\" in region \
             \"us-east-1\": policy \"a\" does not allow buildspecOverride; policy \"a\" does not \
             allow sourceVersion"
        );
        a.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["sourceVersion".into(), "buildspecOverride".into()]),
            ..Default::default()
        });
        assert!(matches!(decide(&s, "a", &[&a]), Decision::Allowed { .. }));
        a.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["*".into()]),
            denied: Some(vec!["buildspecOverride".into()]),
            ..Default::default()
        });
        assert_eq!(
            denied(decide(&s, "a", &[&a])),
            "namespace \"ns\" may not use these overrides for project \"app\" in region \
             \"us-east-1\": policy \"a\" does not allow buildspecOverride"
        );
    }

    #[test]
    fn policies_add_up() {
        let mut strict = policy("a-strict", None, &["app"]);
        strict.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["sourceVersion".into()]),
            ..Default::default()
        });
        let mut images = policy("b-images", None, &["app"]);
        images.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["imageOverride".into()]),
            images: Some(vec!["aws/codebuild/*".into()]),
            ..Default::default()
        });
        images.spec.role_arn = Some("arn:aws:iam::123456789012:role/b".into());
        let s: CodeBuildRunSpec = serde_json::from_value(serde_json::json!({
            "projectName": "app", "imageOverride": "aws/codebuild/standard:7.0"
        }))
        .unwrap();
        assert_eq!(
            decide(&s, "x", &[&strict, &images]),
            Decision::Allowed {
                policy: "b-images".into(),
                role_arn: Some("arn:aws:iam::123456789012:role/b".into())
            }
        );
        let bad: CodeBuildRunSpec = serde_json::from_value(serde_json::json!({
            "projectName": "app", "imageOverride": "evil/miner:latest"
        }))
        .unwrap();
        assert_eq!(
            denied(decide(&bad, "x", &[&strict, &images])),
            "namespace \"ns\" may not use these overrides for project \"app\" in region \
             \"us-east-1\": policy \"a-strict\" does not allow imageOverride; policy \"b-images\" \
             does not allow imageOverride \"evil/miner:latest\" (allowed: aws/codebuild/*)"
        );
    }

    #[test]
    fn value_rules() {
        let mut a = policy("a", None, &["app"]);
        a.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["*".into()]),
            service_roles: Some(vec!["arn:aws:iam::1:role/ci-*".into()]),
            source_locations: Some(vec!["https://github.com/org/*".into()]),
            images: Some(vec![]),
            ..Default::default()
        });
        let ok = CodeBuildRunSpec {
            service_role_override: Some("arn:aws:iam::1:role/ci-web".into()),
            source_location_override: Some("https://github.com/org/web".into()),
            secondary_sources_override: Some(vec![ProjectSource {
                location: Some("https://github.com/org/lib".into()),
                ..serde_json::from_value(serde_json::json!({"type": "GITHUB"})).unwrap()
            }]),
            ..spec("app")
        };
        assert!(matches!(decide(&ok, "x", &[&a]), Decision::Allowed { .. }));
        let bad = CodeBuildRunSpec {
            secondary_sources_override: Some(vec![ProjectSource {
                location: Some("https://evil.example/x".into()),
                ..ok.secondary_sources_override.clone().unwrap()[0].clone()
            }]),
            service_role_override: Some("arn:aws:iam::1:role/admin".into()),
            image_override: Some("any".into()),
            ..ok.clone()
        };
        assert_eq!(
            denied(decide(&bad, "x", &[&a])),
            "namespace \"ns\" may not use these overrides for project \"app\" in region \
             \"us-east-1\": policy \"a\" does not allow imageOverride \"any\" (allowed: none); \
             policy \"a\" does not allow secondarySourcesOverride \"https://evil.example/x\" \
             (allowed: https://github.com/org/*); policy \"a\" does not allow \
             serviceRoleOverride \"arn:aws:iam::1:role/admin\" (allowed: arn:aws:iam::1:role/ci-*)"
        );
    }
}
