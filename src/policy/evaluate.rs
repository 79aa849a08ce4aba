//! Is a run allowed? Pure: the run, its namespace's labels and the policies in, a decision
//! out. The admission policy (`admission`) renders the same rules as CEL and words its
//! refusals with the same functions' formats, so `kubectl apply` and the run's condition
//! say the same thing.
//!
//! A policy allows a run when it selects the namespace, names the project and Region, lets
//! the run set every member it sets (`overrides.allowed`, `.denied`), and every value rule
//! of those members holds (`rules::CONSTRAINTS`; for one member the first rule that refuses
//! names the gap).

use std::collections::BTreeMap;

use serde_json::Value;

use super::rules::{CONSTRAINTS, Check, Constraint, Overrides, Refused};
use super::{glob, selector};
use crate::api::{
    ALL_MEMBERS, CodeBuildRunPolicy, CodeBuildRunPolicyStatus, CodeBuildRunSpec, NOT_OVERRIDES,
    OverrideRules,
};

/// What a run asks for, as far as policies care: a CodeBuildRun's spec (the default), or a
/// CodeBuildBatchRun's.
#[derive(Clone, Debug)]
pub struct RunRequest<'a, S = CodeBuildRunSpec> {
    /// The run's namespace.
    pub namespace: &'a str,
    /// The Region the build (or batch) would start in.
    pub region: &'a str,
    /// The run's spec.
    pub spec: &'a S,
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
pub fn evaluate<S: Overrides>(
    request: &RunRequest<'_, S>,
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
    let project = request.spec.project_name();
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
    let mut all_gaps = Vec::new();
    for policy in covering {
        let gaps = override_gaps(
            policy_name(policy),
            policy.spec.overrides.as_ref(),
            request.spec,
        );
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

/// What `policy` refuses of the overrides in `spec`, in member order: each member it does
/// not allow, and each allowed member whose value one of its rules refuses.
pub fn override_gaps<S: Overrides + ?Sized>(
    policy: &str,
    rules: Option<&OverrideRules>,
    spec: &S,
) -> Vec<String> {
    let json = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut gaps = Vec::new();
    for member in used_overrides(&json) {
        if !member_allowed(rules, member) {
            gaps.push(member_not_allowed(policy, member));
            continue;
        }
        let Some(rules) = rules else { continue };
        let gap = CONSTRAINTS
            .iter()
            .filter(|c| c.member() == member)
            .find_map(|c| constraint_gap(policy, *c, rules, spec));
        gaps.extend(gap);
    }
    gaps
}

/// What `rules` refuses of `spec` by `constraint`, if anything.
pub fn constraint_gap<S: Overrides + ?Sized>(
    policy: &str,
    constraint: Constraint,
    rules: &OverrideRules,
    spec: &S,
) -> Option<String> {
    let check = constraint.check(rules)?;
    let member = constraint.member();
    match &check {
        Check::AtMost(max) => spec
            .number(constraint)
            .filter(|n| n > &i64::from(*max))
            .map(|n| above_maximum(policy, constraint.what(), &n.to_string(), *max)),
        Check::NotTrue => (spec.flag(constraint) == Some(true))
            .then(|| flag_not_allowed(policy, member, constraint.rule())),
        Check::Patterns(patterns) | Check::Paths(patterns) => {
            refusal(policy, constraint, &check, spec, patterns)
        }
        Check::OneOf(values) => refusal(policy, constraint, &check, spec, values),
    }
}

fn refusal<S: AsRef<str>, O: Overrides + ?Sized>(
    policy: &str,
    constraint: Constraint,
    check: &Check<'_>,
    spec: &O,
    allowed: &[S],
) -> Option<String> {
    let what = constraint.what();
    Some(match constraint.refused_subject(check, spec)? {
        Refused::Value(value) => value_not_allowed(policy, what, &value, allowed),
        Refused::DotSegment(value) => dot_segment_not_allowed(policy, what, &value),
    })
}

/// The members `rules` allows that name a resource, a secret or (variable names) what
/// runs, without all of the rules that constrain them: each with the missing rules
/// (`spec.overrides` fields), in member order.
pub fn unconstrained_overrides(
    rules: Option<&OverrideRules>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let Some(rules) = rules else {
        return Vec::new();
    };
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for c in CONSTRAINTS {
        if !member_allowed(Some(rules), c.member())
            || !c.expected(rules)
            || c.check(rules).is_some()
        {
            continue;
        }
        match out.last_mut() {
            Some((member, missing)) if *member == c.member() => {
                if !missing.contains(&c.rule()) {
                    missing.push(c.rule());
                }
            }
            _ => out.push((c.member(), vec![c.rule()])),
        }
    }
    out
}

/// The status the operator writes on `policy`: its generation, and the members it allows
/// that name resources without their value rules.
pub fn policy_status(policy: &CodeBuildRunPolicy) -> CodeBuildRunPolicyStatus {
    let unconstrained = unconstrained_overrides(policy.spec.overrides.as_ref());
    CodeBuildRunPolicyStatus {
        observed_generation: policy.metadata.generation,
        unconstrained_overrides: unconstrained.iter().map(|(m, _)| (*m).to_owned()).collect(),
        warning: unconstrained_warning(&unconstrained),
    }
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

/// A value a rule of the policy refuses: `what` names the member (and the part of it),
/// `allowed` the rule's patterns or values.
pub fn value_not_allowed<S: AsRef<str>>(
    policy: &str,
    what: &str,
    value: &str,
    allowed: &[S],
) -> String {
    let allowed = if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("policy \"{policy}\" does not allow {what} \"{value}\" (allowed: {allowed})")
}

/// An S3 location with a `..` segment, where a location rule applies.
pub fn dot_segment_not_allowed(policy: &str, what: &str, value: &str) -> String {
    format!(
        "policy \"{policy}\" does not allow {what} \"{value}\" (a location may not hold a \"..\" \
         segment)"
    )
}

/// A number above the policy's cap (`value` as the run wrote it).
pub fn above_maximum(policy: &str, member: &str, value: &str, max: i32) -> String {
    format!("policy \"{policy}\" does not allow {member} {value} (at most {max})")
}

/// `true` where the policy's flag (`rule`) is false.
pub fn flag_not_allowed(policy: &str, member: &str, rule: &str) -> String {
    format!("policy \"{policy}\" does not allow {member} true ({rule} is false)")
}

/// The warning of a policy that allows members naming resources without their rules (from
/// [`unconstrained_overrides`]); None when there are none.
pub fn unconstrained_warning(unconstrained: &[(&str, Vec<&str>)]) -> Option<String> {
    if unconstrained.is_empty() {
        return None;
    }
    let items: Vec<String> = unconstrained
        .iter()
        .map(|(member, rules)| {
            let rules: Vec<String> = rules.iter().map(|r| format!("overrides.{r}")).collect();
            format!("{member} (set {})", rules.join(", "))
        })
        .collect();
    Some(format!(
        "allows overrides that name resources or secrets without a value rule, so runs may \
         name any the build's roles reach: {}",
        items.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CodeBuildRunPolicySpec, ProjectSource};
    use crate::policy::rules::Constraint;
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

    fn decide<S: Overrides>(spec: &S, team: &str, policies: &[&CodeBuildRunPolicy]) -> Decision {
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

    /// One policy `p` that allows every member, with `rules` added to its overrides.
    fn ruled(rules: Value) -> CodeBuildRunPolicy {
        let mut overrides = serde_json::json!({"allowed": ["*"]});
        overrides
            .as_object_mut()
            .unwrap()
            .extend(rules.as_object().unwrap().clone());
        let mut p = policy("p", None, &["app"]);
        p.spec.overrides = Some(serde_json::from_value(overrides).unwrap());
        p
    }

    fn with(overrides: Value) -> CodeBuildRunSpec {
        let mut spec = serde_json::json!({"projectName": "app"});
        spec.as_object_mut()
            .unwrap()
            .extend(overrides.as_object().unwrap().clone());
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("{overrides}: {e}"))
    }

    /// Whether every member of `overrides` is a member of the spec `S`.
    fn members_of<S: schemars::JsonSchema>(overrides: &Value) -> bool {
        let schema = schemars::schema_for!(S);
        let members = schema.get("properties").and_then(Value::as_object).unwrap();
        let set = overrides.as_object().unwrap();
        set.keys().all(|m| members.contains_key(m))
    }

    /// A batch run's spec with `overrides`.
    fn with_batch(overrides: &Value) -> crate::api::CodeBuildBatchRunSpec {
        let mut spec = serde_json::json!({"projectName": "app"});
        spec.as_object_mut()
            .unwrap()
            .extend(overrides.as_object().unwrap().clone());
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("{overrides}: {e}"))
    }

    /// The decisions on `overrides` as a CodeBuildRun's spec (when StartBuild has every
    /// member) and as a CodeBuildBatchRun's (when StartBuildBatch has).
    fn decisions(overrides: &Value, policies: &[&CodeBuildRunPolicy]) -> Vec<Decision> {
        let mut out = Vec::new();
        if members_of::<CodeBuildRunSpec>(overrides) {
            out.push(decide(&with(overrides.clone()), "x", policies));
        }
        if members_of::<crate::api::CodeBuildBatchRunSpec>(overrides) {
            out.push(decide(&with_batch(overrides), "x", policies));
        }
        out
    }

    fn refusal(gap: &str) -> String {
        overrides_refused("ns", "app", "us-east-1", &[gap.to_owned()])
    }

    /// Per constraint: the rule, overrides it allows, overrides it refuses, the gap.
    type RuleCase = (Constraint, Value, Vec<Value>, Value, &'static str);

    fn rule_cases() -> Vec<RuleCase> {
        use Constraint as C;
        use serde_json::json;
        let s3 =
            |location: &str, path: &str| json!({"type": "S3", "location": location, "path": path});
        let var =
            |name: &str, value: &str, t: &str| json!([{"name": name, "value": value, "type": t}]);
        vec![
            (
                C::ArtifactsLocation,
                json!({"artifactLocations": ["team-a-artifacts/*", "shared/team-a/*"]}),
                vec![
                    json!({"artifactsOverride": s3("shared", "team-a/web")}),
                    json!({"artifactsOverride": s3("team-a-artifacts", "")}),
                    json!({"artifactsOverride": {"type": "NO_ARTIFACTS"}}),
                ],
                json!({"artifactsOverride": s3("team-b-artifacts", "x")}),
                r#"policy "p" does not allow artifactsOverride location "team-b-artifacts/x/" (allowed: team-a-artifacts/*, shared/team-a/*)"#,
            ),
            (
                C::AutoRetryLimit,
                json!({"maxAutoRetryLimit": 1}),
                vec![
                    json!({"autoRetryLimitOverride": 1}),
                    json!({"autoRetryLimitOverride": 0}),
                ],
                json!({"autoRetryLimitOverride": 5}),
                r#"policy "p" does not allow autoRetryLimitOverride 5 (at most 1)"#,
            ),
            (
                C::BatchComputeTypes,
                json!({"computeTypes": ["BUILD_GENERAL1_SMALL"]}),
                vec![
                    json!({"buildBatchConfigOverride": {"restrictions": {"computeTypesAllowed": ["BUILD_GENERAL1_SMALL"]}}}),
                    json!({"buildBatchConfigOverride": {"restrictions": {"maximumBuildsAllowed": 5}}}),
                ],
                json!({"buildBatchConfigOverride": {"restrictions": {"computeTypesAllowed": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_2XLARGE"]}}}),
                r#"policy "p" does not allow buildBatchConfigOverride computeTypesAllowed "BUILD_GENERAL1_2XLARGE" (allowed: BUILD_GENERAL1_SMALL)"#,
            ),
            (
                C::BatchFleets,
                json!({"fleets": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*"]}),
                vec![
                    json!({"buildBatchConfigOverride": {"restrictions": {"fleetsAllowed": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-big"]}}}),
                    json!({"buildBatchConfigOverride": {"combineArtifacts": true}}),
                ],
                json!({"buildBatchConfigOverride": {"restrictions": {"fleetsAllowed": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-b-big"]}}}),
                r#"policy "p" does not allow buildBatchConfigOverride fleetsAllowed "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b-big" (allowed: arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*)"#,
            ),
            (
                C::BatchServiceRole,
                json!({"serviceRoles": ["arn:aws:iam::111111111111:role/team-a-*"]}),
                vec![
                    json!({"buildBatchConfigOverride": {"serviceRole": "arn:aws:iam::111111111111:role/team-a-batch"}}),
                    json!({"buildBatchConfigOverride": {"timeoutInMins": 30}}),
                ],
                json!({"buildBatchConfigOverride": {"serviceRole": "arn:aws:iam::111111111111:role/admin"}}),
                r#"policy "p" does not allow buildBatchConfigOverride serviceRole "arn:aws:iam::111111111111:role/admin" (allowed: arn:aws:iam::111111111111:role/team-a-*)"#,
            ),
            (
                C::BatchTimeout,
                json!({"maxTimeoutInMinutes": 60}),
                vec![
                    json!({"buildBatchConfigOverride": {"timeoutInMins": 60}}),
                    json!({"buildBatchConfigOverride": {"combineArtifacts": false}}),
                ],
                json!({"buildBatchConfigOverride": {"timeoutInMins": 600}}),
                r#"policy "p" does not allow buildBatchConfigOverride timeoutInMins 600 (at most 60)"#,
            ),
            (
                C::BuildTimeout,
                json!({"maxTimeoutInMinutes": 60}),
                vec![json!({"buildTimeoutInMinutesOverride": 60})],
                json!({"buildTimeoutInMinutesOverride": 600}),
                r#"policy "p" does not allow buildTimeoutInMinutesOverride 600 (at most 60)"#,
            ),
            (
                C::CacheLocation,
                json!({"cacheLocations": ["build-cache/team-a/*"]}),
                vec![
                    json!({"cacheOverride": {"type": "S3", "location": "build-cache/team-a"}}),
                    json!({"cacheOverride": {"type": "LOCAL", "modes": ["LOCAL_SOURCE_CACHE"]}}),
                ],
                json!({"cacheOverride": {"type": "S3", "location": "build-cache/team-b"}}),
                r#"policy "p" does not allow cacheOverride location "build-cache/team-b/" (allowed: build-cache/team-a/*)"#,
            ),
            (
                C::Certificate,
                json!({"certificates": ["team-a-certs/*"]}),
                vec![json!({"certificateOverride": "team-a-certs/ca.pem"})],
                json!({"certificateOverride": "team-b-certs/ca.pem"}),
                r#"policy "p" does not allow certificateOverride "team-b-certs/ca.pem" (allowed: team-a-certs/*)"#,
            ),
            (
                C::ComputeType,
                json!({"computeTypes": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM"]}),
                vec![json!({"computeTypeOverride": "BUILD_GENERAL1_MEDIUM"})],
                json!({"computeTypeOverride": "BUILD_GENERAL1_2XLARGE"}),
                r#"policy "p" does not allow computeTypeOverride "BUILD_GENERAL1_2XLARGE" (allowed: BUILD_GENERAL1_SMALL, BUILD_GENERAL1_MEDIUM)"#,
            ),
            (
                C::DebugSession,
                json!({"debugSessions": false}),
                vec![json!({"debugSessionEnabled": false})],
                json!({"debugSessionEnabled": true}),
                r#"policy "p" does not allow debugSessionEnabled true (debugSessions is false)"#,
            ),
            (
                C::EncryptionKey,
                json!({"encryptionKeys": ["arn:aws:kms:us-east-1:111111111111:alias/team-a-*"]}),
                vec![
                    json!({"encryptionKeyOverride": "arn:aws:kms:us-east-1:111111111111:alias/team-a-build"}),
                ],
                json!({"encryptionKeyOverride": "alias/aws/s3"}),
                r#"policy "p" does not allow encryptionKeyOverride "alias/aws/s3" (allowed: arn:aws:kms:us-east-1:111111111111:alias/team-a-*)"#,
            ),
            (
                C::EnvironmentType,
                json!({"environmentTypes": ["LINUX_CONTAINER"]}),
                vec![json!({"environmentTypeOverride": "LINUX_CONTAINER"})],
                json!({"environmentTypeOverride": "LINUX_GPU_CONTAINER"}),
                r#"policy "p" does not allow environmentTypeOverride "LINUX_GPU_CONTAINER" (allowed: LINUX_CONTAINER)"#,
            ),
            (
                C::VariableNames,
                json!({"environmentVariableNames": ["STAGE", "APP_*"]}),
                vec![
                    json!({"environmentVariablesOverride": [{"name": "STAGE", "value": "x"}, {"name": "APP_X", "value": "y"}]}),
                ],
                json!({"environmentVariablesOverride": [{"name": "STAGE", "value": "x"}, {"name": "BASH_ENV", "value": "$(id)"}]}),
                r#"policy "p" does not allow environmentVariablesOverride name "BASH_ENV" (allowed: STAGE, APP_*)"#,
            ),
            (
                C::VariableTypes,
                json!({"environmentVariableTypes": ["PLAINTEXT"]}),
                vec![
                    json!({"environmentVariablesOverride": [{"name": "A", "value": "x"}]}),
                    json!({"environmentVariablesOverride": var("A", "x", "PLAINTEXT")}),
                ],
                json!({"environmentVariablesOverride": var("A", "team-b/db:password::", "SECRETS_MANAGER")}),
                r#"policy "p" does not allow environmentVariablesOverride type "SECRETS_MANAGER" (allowed: PLAINTEXT)"#,
            ),
            (
                C::VariableParameters,
                json!({"parameterNames": ["/team-a/*"]}),
                vec![
                    json!({"environmentVariablesOverride": var("A", "/team-a/db", "PARAMETER_STORE")}),
                    json!({"environmentVariablesOverride": var("A", "/team-b/db", "PLAINTEXT")}),
                ],
                json!({"environmentVariablesOverride": var("A", "/team-b/db", "PARAMETER_STORE")}),
                r#"policy "p" does not allow environmentVariablesOverride parameter "/team-b/db" (allowed: /team-a/*)"#,
            ),
            (
                C::VariableSecrets,
                json!({"secrets": ["team-a/*"]}),
                vec![
                    json!({"environmentVariablesOverride": var("A", "team-a/db:password::", "SECRETS_MANAGER")}),
                ],
                json!({"environmentVariablesOverride": var("A", "team-b/db:password::", "SECRETS_MANAGER")}),
                r#"policy "p" does not allow environmentVariablesOverride secret "team-b/db:password::" (allowed: team-a/*)"#,
            ),
            (
                C::Fleet,
                json!({"fleets": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*"]}),
                vec![
                    json!({"fleetOverride": {"fleetArn": "arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-big"}}),
                    json!({"fleetOverride": {}}),
                ],
                json!({"fleetOverride": {"fleetArn": "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b-big"}}),
                r#"policy "p" does not allow fleetOverride "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b-big" (allowed: arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-*)"#,
            ),
            (
                C::Image,
                json!({"images": ["aws/codebuild/standard:*"]}),
                vec![json!({"imageOverride": "aws/codebuild/standard:7.0"})],
                json!({"imageOverride": "evil/miner:latest"}),
                r#"policy "p" does not allow imageOverride "evil/miner:latest" (allowed: aws/codebuild/standard:*)"#,
            ),
            (
                C::LogGroup,
                json!({"logGroups": ["/codebuild/team-a/*"]}),
                vec![
                    json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": "/codebuild/team-a/web"}}}),
                    json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "DISABLED"}}}),
                ],
                json!({"logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": "/codebuild/team-b/web"}}}),
                r#"policy "p" does not allow logsConfigOverride log group "/codebuild/team-b/web" (allowed: /codebuild/team-a/*)"#,
            ),
            (
                C::LogLocation,
                json!({"logLocations": ["build-logs/team-a/*"]}),
                vec![
                    json!({"logsConfigOverride": {"s3Logs": {"status": "ENABLED", "location": "build-logs/team-a"}}}),
                    json!({"logsConfigOverride": {"s3Logs": {"status": "DISABLED"}}}),
                ],
                json!({"logsConfigOverride": {"s3Logs": {"status": "ENABLED", "location": "team-b-logs/x"}}}),
                r#"policy "p" does not allow logsConfigOverride S3 location "team-b-logs/x/" (allowed: build-logs/team-a/*)"#,
            ),
            (
                C::PrivilegedMode,
                json!({"privilegedMode": false}),
                vec![json!({"privilegedModeOverride": false})],
                json!({"privilegedModeOverride": true}),
                r#"policy "p" does not allow privilegedModeOverride true (privilegedMode is false)"#,
            ),
            (
                C::QueuedTimeout,
                json!({"maxQueuedTimeoutInMinutes": 60}),
                vec![json!({"queuedTimeoutInMinutesOverride": 60})],
                json!({"queuedTimeoutInMinutesOverride": 120}),
                r#"policy "p" does not allow queuedTimeoutInMinutesOverride 120 (at most 60)"#,
            ),
            (
                C::RegistryCredential,
                json!({"registryCredentials": ["arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/*"]}),
                vec![
                    json!({"registryCredentialOverride": {"credential": "arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/hub", "credentialProvider": "SECRETS_MANAGER"}}),
                ],
                json!({"registryCredentialOverride": {"credential": "team-b/hub", "credentialProvider": "SECRETS_MANAGER"}}),
                r#"policy "p" does not allow registryCredentialOverride "team-b/hub" (allowed: arn:aws:secretsmanager:us-east-1:111111111111:secret:team-a/*)"#,
            ),
            (
                C::SecondaryArtifactsLocation,
                json!({"artifactLocations": ["team-a-artifacts/*"]}),
                vec![
                    json!({"secondaryArtifactsOverride": [s3("team-a-artifacts", "a"), {"type": "NO_ARTIFACTS"}]}),
                ],
                json!({"secondaryArtifactsOverride": [s3("team-a-artifacts", "a"), {"type": "S3", "path": "x"}]}),
                r#"policy "p" does not allow secondaryArtifactsOverride location "/x/" (allowed: team-a-artifacts/*)"#,
            ),
            (
                C::SecondarySourceLocation,
                json!({"sourceLocations": ["https://github.com/team-a/*"]}),
                vec![
                    json!({"secondarySourcesOverride": [{"type": "GITHUB", "location": "https://github.com/team-a/lib"}]}),
                ],
                json!({"secondarySourcesOverride": [{"type": "GITHUB", "location": "https://github.com/team-b/lib"}]}),
                r#"policy "p" does not allow secondarySourcesOverride "https://github.com/team-b/lib" (allowed: https://github.com/team-a/*)"#,
            ),
            (
                C::SecondarySourceAuth,
                json!({"sourceAuthResources": ["arn:aws:codeconnections:us-east-1:111111111111:connection/a-*"]}),
                vec![
                    json!({"secondarySourcesOverride": [{"type": "GITHUB", "auth": {"type": "CODECONNECTIONS", "resource": "arn:aws:codeconnections:us-east-1:111111111111:connection/a-1"}}]}),
                ],
                json!({"secondarySourcesOverride": [{"type": "GITHUB", "auth": {"type": "OAUTH"}}]}),
                r#"policy "p" does not allow secondarySourcesOverride auth "OAUTH" (allowed: arn:aws:codeconnections:us-east-1:111111111111:connection/a-*)"#,
            ),
            (
                C::ServiceRole,
                json!({"serviceRoles": ["arn:aws:iam::1:role/ci-*"]}),
                vec![json!({"serviceRoleOverride": "arn:aws:iam::1:role/ci-web"})],
                json!({"serviceRoleOverride": "arn:aws:iam::1:role/admin"}),
                r#"policy "p" does not allow serviceRoleOverride "arn:aws:iam::1:role/admin" (allowed: arn:aws:iam::1:role/ci-*)"#,
            ),
            (
                C::SourceAuth,
                json!({"sourceAuthResources": ["OAUTH"]}),
                vec![json!({"sourceAuthOverride": {"type": "OAUTH"}})],
                json!({"sourceAuthOverride": {"type": "SECRETS_MANAGER", "resource": "arn:aws:secretsmanager:us-east-1:1:secret:team-b/gh"}}),
                r#"policy "p" does not allow sourceAuthOverride "arn:aws:secretsmanager:us-east-1:1:secret:team-b/gh" (allowed: OAUTH)"#,
            ),
            (
                C::SourceLocation,
                json!({"sourceLocations": ["https://github.com/team-a/*"]}),
                vec![json!({"sourceLocationOverride": "https://github.com/team-a/web"})],
                json!({"sourceLocationOverride": "https://github.com/team-b/web"}),
                r#"policy "p" does not allow sourceLocationOverride "https://github.com/team-b/web" (allowed: https://github.com/team-a/*)"#,
            ),
            (
                C::Timeout,
                json!({"maxTimeoutInMinutes": 60}),
                vec![json!({"timeoutInMinutesOverride": 60})],
                json!({"timeoutInMinutesOverride": 600}),
                r#"policy "p" does not allow timeoutInMinutesOverride 600 (at most 60)"#,
            ),
        ]
    }

    #[test]
    fn every_value_rule_allows_refuses_and_says_why() {
        let cases = rule_cases();
        for c in CONSTRAINTS {
            assert!(cases.iter().any(|case| case.0 == *c), "no case for {c:?}");
        }
        for (constraint, rules, allowed, refused, gap) in cases {
            let p = ruled(rules.clone());
            let mut closed = p.clone();
            closed.spec.overrides.as_mut().unwrap().allowed = Some(vec!["sourceVersion".into()]);
            let open = ruled(serde_json::json!({}));
            // Every case as a CodeBuildRun's spec when StartBuild has the member, and as a
            // CodeBuildBatchRun's when StartBuildBatch has it: the same words either way.
            let kinds = decisions(&refused, &[&p]).len();
            assert!(kinds > 0, "{constraint:?}: the case fits neither kind");
            for ok in &allowed {
                let decided = decisions(ok, &[&p]);
                assert_eq!(decided.len(), kinds, "{constraint:?} {ok}");
                for decision in decided {
                    assert!(
                        matches!(decision, Decision::Allowed { .. }),
                        "{constraint:?} {ok}: {decision:?}"
                    );
                }
            }
            for decision in decisions(&refused, &[&p]) {
                assert_eq!(denied(decision), refusal(gap), "{constraint:?}");
            }
            // Without the rule, the allowed member takes any value (today's meaning).
            for decision in decisions(&refused, &[&open]) {
                assert!(
                    matches!(decision, Decision::Allowed { .. }),
                    "{constraint:?}"
                );
            }
            // A rule never allows a member the policy does not allow.
            for decision in decisions(&refused, &[&closed]) {
                assert_eq!(
                    denied(decision),
                    refusal(&member_not_allowed("p", constraint.member())),
                );
            }
        }
    }

    #[test]
    fn locations_refuse_dot_segments() {
        use serde_json::json;
        let p = ruled(
            json!({"artifactLocations": ["shared/team-a/*"], "cacheLocations": ["c/*"],
                             "logLocations": ["l/*"], "certificates": ["certs/*"]}),
        );
        let cases = [
            (
                json!({"artifactsOverride": {"type": "S3", "location": "shared", "path": "team-a/../team-b"}}),
                "artifactsOverride location",
                "shared/team-a/../team-b/",
            ),
            (
                json!({"cacheOverride": {"type": "S3", "location": "c/../d"}}),
                "cacheOverride location",
                "c/../d/",
            ),
            (
                json!({"logsConfigOverride": {"s3Logs": {"status": "ENABLED", "location": "l/.."}}}),
                "logsConfigOverride S3 location",
                "l/../",
            ),
            (
                json!({"certificateOverride": "certs/../other/ca.pem"}),
                "certificateOverride",
                "certs/../other/ca.pem",
            ),
        ];
        for (overrides, what, value) in cases {
            assert_eq!(
                denied(decide(&with(overrides), "x", &[&p])),
                refusal(&dot_segment_not_allowed("p", what, value))
            );
        }
        assert_eq!(
            dot_segment_not_allowed("p", "cacheOverride location", "c/../d/"),
            r#"policy "p" does not allow cacheOverride location "c/../d/" (a location may not hold a ".." segment)"#
        );
        // Dots that are not a `..` segment are plain characters.
        let ok = json!({"artifactsOverride": {"type": "S3", "location": "shared", "path": "team-a/v1..2"}});
        assert!(matches!(
            decide(&with(ok), "x", &[&p]),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn the_first_refusing_rule_of_a_member_names_its_gap() {
        use serde_json::json;
        let p = ruled(
            json!({"environmentVariableNames": ["A*"], "environmentVariableTypes": ["PLAINTEXT", "PARAMETER_STORE"],
                             "parameterNames": ["/a/*"]}),
        );
        let spec = with(json!({
            "environmentVariablesOverride": [
                {"name": "A1", "value": "/b/x", "type": "PARAMETER_STORE"},
                {"name": "A2", "value": "s", "type": "SECRETS_MANAGER"},
                {"name": "B", "value": "v"},
            ],
            "timeoutInMinutesOverride": 600,
        }));
        // Names before types before parameters; one gap per member.
        assert_eq!(
            denied(decide(&spec, "x", &[&p])),
            refusal(
                r#"policy "p" does not allow environmentVariablesOverride name "B" (allowed: A*)"#
            )
        );
    }

    #[test]
    fn unconstrained_members_are_named_with_the_rules_they_lack() {
        use serde_json::json;
        let rules = |v: Value| -> OverrideRules { serde_json::from_value(v).unwrap() };
        assert!(unconstrained_overrides(None).is_empty());
        assert!(
            unconstrained_overrides(Some(&rules(
                json!({"allowed": ["sourceVersion", "timeoutInMinutesOverride"]})
            )))
            .is_empty()
        );
        let everything = unconstrained_overrides(Some(&rules(json!({"allowed": ["*"]}))));
        let members: Vec<&str> = everything.iter().map(|(m, _)| *m).collect();
        assert_eq!(
            members,
            [
                "artifactsOverride",
                "buildBatchConfigOverride",
                "cacheOverride",
                "certificateOverride",
                "encryptionKeyOverride",
                "environmentVariablesOverride",
                "fleetOverride",
                "imageOverride",
                "logsConfigOverride",
                "registryCredentialOverride",
                "secondaryArtifactsOverride",
                "secondarySourcesOverride",
                "serviceRoleOverride",
                "sourceAuthOverride",
                "sourceLocationOverride",
            ]
        );
        // PLAINTEXT only: parameters and secrets need no rule, names still do.
        let plain = rules(
            json!({"allowed": ["environmentVariablesOverride", "logsConfigOverride"],
                                 "environmentVariableTypes": ["PLAINTEXT"], "logGroups": ["/a/*"]}),
        );
        let found = unconstrained_overrides(Some(&plain));
        assert_eq!(
            found,
            vec![
                (
                    "environmentVariablesOverride",
                    vec!["environmentVariableNames"]
                ),
                ("logsConfigOverride", vec!["logLocations"]),
            ]
        );
        assert_eq!(
            unconstrained_warning(&found).unwrap(),
            "allows overrides that name resources or secrets without a value rule, so runs may \
             name any the build's roles reach: environmentVariablesOverride (set \
             overrides.environmentVariableNames); logsConfigOverride (set overrides.logLocations)"
        );
        // Denied members are not allowed, so not unconstrained.
        let denied = rules(
            json!({"allowed": ["*"], "denied": ["environmentVariablesOverride"],
                                  "artifactLocations": ["a/*"]}),
        );
        let found = unconstrained_overrides(Some(&denied));
        assert!(
            found
                .iter()
                .all(|(m, _)| *m != "environmentVariablesOverride"
                    && *m != "artifactsOverride"
                    && *m != "secondaryArtifactsOverride"),
            "{found:?}"
        );
        let mut p = policy("p", None, &["app"]);
        p.metadata.generation = Some(3);
        p.spec.overrides = Some(plain);
        let status = policy_status(&p);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            status.unconstrained_overrides,
            ["environmentVariablesOverride", "logsConfigOverride"]
        );
        assert!(status.warning.is_some());
        p.spec.overrides = None;
        assert_eq!(
            policy_status(&p),
            CodeBuildRunPolicyStatus {
                observed_generation: Some(3),
                ..Default::default()
            }
        );
    }
}
