//! The CodeBuildRunPolicies as a ValidatingAdmissionPolicy: `kubectl apply` of a run that no
//! policy allows is refused by the apiserver itself, with the words the controller would
//! write in the run's condition, and without a webhook server.
//!
//! Policies add up (a run is allowed when at least one policy allows all of it), which
//! admission policy params cannot express (several params are ANDed). So the operator
//! renders one ValidatingAdmissionPolicy from the current policies, each policy's rules
//! compiled into CEL literals, and applies it whenever they change ([`render`], pure;
//! [`apply`], I/O). The Helm chart installs only the binding (`validationActions: [Deny]`)
//! that names it.
//!
//! The CEL mirrors [`evaluate::evaluate`] step by step, and every message is built from the
//! same functions (`evaluate::no_policy_for_namespace` and the others), called with
//! placeholders that become CEL expressions, so the words cannot drift apart:
//!
//! - `variables.region`: `spec.operator.region`, else the operator's Region (inlined);
//! - `variables.labels`: the namespace's labels (`{}` when it has none);
//! - `variables.used`: the StartBuild members the run sets (not null), in member order;
//! - `variables.<member>_<rule>`: the values of a member a value rule reads (the
//!   `rules::Constraint::subjects_cel` of each rule some policy sets), rendered once for
//!   all policies and only evaluated when a check reads them;
//! - per policy `p<i>` (policies sorted by name): `p<i>_selects` (its namespace selector),
//!   `p<i>_covers` (selects, and names the project in the Region),
//!   `p<i>_refused_<member>_<rule>` (the values of a member one of its rules refuses),
//!   `p<i>_gaps` (what it refuses of the overrides, in member order);
//! - `variables.allowed`: some policy covers the run with no gap; otherwise the message is
//!   the first that applies of: no policy for the namespace, none for the project and
//!   Region, the gaps of every covering policy.
//!
//! UPDATEs are only checked when they change what the decision depends on (the match
//! condition [`UPDATE_CONDITION`]), so an operator's finalizer patch, a label, or
//! `spec.operator.stop` on a run that was allowed when it was created is never refused
//! because a policy changed since.
//!
//! A second validation refuses any CREATE or UPDATE that sets or changes the start-attempt
//! annotation earlier versions of the operator wrote ([`START_ATTEMPT_ANNOTATION`]): the
//! operator keeps attempts in status now, and nobody may plant one the operator might read
//! (it never trusts one for more than a reason to search, but it says so loudly).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, Patch, PatchParams};
use kube::core::Expression;
use serde_json::Value;

use super::evaluate;
use super::glob;
use super::rules::{CONSTRAINTS, Check, Constraint, DOT_SEGMENT_REGEX};
use crate::api::FIELD_MANAGER;
use crate::api::{CodeBuildRunPolicy, GROUP, START_ATTEMPT_ANNOTATION, override_members};

/// The version and resources the admission policy checks (in [`GROUP`]): runs and batch
/// runs, whose specs share the members' names.
const VERSION: &str = "v1alpha1";
/// See [`VERSION`].
const RESOURCES: &[&str] = &["codebuildruns", "codebuildbatchruns"];

/// The name of the match condition that lets UPDATEs through when they change nothing the
/// decision depends on.
pub const UPDATE_CONDITION: &str = "create-or-checked-fields-changed";

/// The message of a refused start-attempt annotation.
pub const ANNOTATION_MESSAGE: &str = "the annotation codebuild.operator.dev/start-attempt \
                                      belongs to the operator: a CodeBuildRun may not set or \
                                      change it";

/// The message when the CEL message cannot be used (the apiserver falls back to it when the
/// computed message fails, is longer than it allows, or holds a line break).
pub const FALLBACK_MESSAGE: &str = "no CodeBuildRunPolicy allows this CodeBuildRun in this \
                                    namespace (kubectl describe codebuildrunpolicies)";

// Placeholders passed to the message functions of `evaluate`; each becomes a CEL
// expression. NUL cannot occur in policy names, member names or Regions, and the
// placeholders are replaced left to right before any value is known.
const NAMESPACE_HOLE: &str = "\u{0}namespace\u{0}";
const PROJECT_HOLE: &str = "\u{0}project\u{0}";
const REGION_HOLE: &str = "\u{0}region\u{0}";
const POLICIES_HOLE: &str = "\u{0}policies\u{0}";
const GAPS_HOLE: &str = "\u{0}gaps\u{0}";
const MEMBER_HOLE: &str = "\u{0}member\u{0}";
const VALUE_HOLE: &str = "\u{0}value\u{0}";

/// The admission policy `name` that refuses a CodeBuildRun (CREATE, and UPDATEs that change
/// the StartBuild request) exactly when [`evaluate::evaluate`] with `policies` would, with
/// the same message, and refuses the start-attempt annotation. Runs that name no Region are
/// checked against `default_region`. Deterministic: the same policies, in any order, give
/// the same object.
pub fn render(
    name: &str,
    policies: &[&CodeBuildRunPolicy],
    default_region: &str,
) -> ValidatingAdmissionPolicy {
    let mut sorted: Vec<&CodeBuildRunPolicy> = policies.to_vec();
    sorted.sort_by(|a, b| policy_name(a).cmp(policy_name(b)));
    let request_changed = update_condition(&override_members(), default_region);
    let annotation_changed = annotation_changed();
    let mut variables = run_variables(&request_changed, default_region);
    variables.extend(subject_variables(&sorted));
    for (i, policy) in sorted.iter().enumerate() {
        variables.extend(policy_variables(i, policy));
    }
    variables.extend(combined_variables(&sorted));
    let validations = vec![
        Validation {
            expression: "!variables.requestChanged || variables.allowed".into(),
            message: Some(FALLBACK_MESSAGE.into()),
            message_expression: Some(refusal_message(sorted.is_empty())),
            reason: Some("Forbidden".into()),
        },
        Validation {
            expression: format!("!({annotation_changed})"),
            message: Some(ANNOTATION_MESSAGE.into()),
            message_expression: None,
            reason: Some("Forbidden".into()),
        },
    ];
    let matching = MatchCondition {
        name: UPDATE_CONDITION.into(),
        expression: format!("({request_changed}) || ({annotation_changed})"),
    };
    admission_policy(name, matching, variables, validations)
}

/// The object around the rendered CEL: CodeBuildRun CREATEs and UPDATEs (never status).
fn admission_policy(
    name: &str,
    matching: MatchCondition,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
) -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        // No labels: the object may be the Helm chart's (whose labels say so), and the
        // operator only keeps its rules in step.
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![GROUP.into()]),
                    api_versions: Some(vec![VERSION.into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    // The main resource only: status writes are never checked.
                    resources: Some(RESOURCES.iter().map(|r| (*r).to_owned()).collect()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            match_conditions: Some(vec![matching]),
            variables: Some(variables),
            validations: Some(validations),
            ..Default::default()
        }),
        status: None,
    }
}

/// What every decision reads of the request: whether it changed what the decision depends
/// on, the Region, the namespace's labels, the members set.
fn run_variables(request_changed: &str, default_region: &str) -> Vec<Variable> {
    vec![
        variable("requestChanged", request_changed.to_owned()),
        variable("region", region_of("object", default_region)),
        variable(
            "labels",
            "has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}".into(),
        ),
        variable(
            "used",
            format!(
                "{}.filter(m, m in object.spec && object.spec[m] != null)",
                list(override_members().iter().map(|m| cel_string(m)))
            ),
        ),
    ]
}

/// The verdict over all (sorted) policies: which select the namespace, whether any covers
/// the project and Region, whether one allows the whole run, and the gaps of the others.
fn combined_variables(sorted: &[&CodeBuildRunPolicy]) -> Vec<Variable> {
    let selecting = list(sorted.iter().enumerate().map(|(i, p)| {
        format!(
            "variables.p{i}_selects ? {} : \"\"",
            cel_string(policy_name(p))
        )
    }));
    // The gaps of every covering policy: each is refused (else the run is allowed), so
    // each text is non-empty. A flat list, not a chain of `+`: no deep nesting however
    // many policies there are.
    let gaps = list(
        (0..sorted.len())
            .map(|i| format!("variables.p{i}_covers ? variables.p{i}_gaps.join(\"; \") : \"\"")),
    );
    vec![
        variable("selecting", format!("{selecting}.filter(n, n != \"\")")),
        variable(
            "anyCovers",
            any((0..sorted.len()).map(|i| format!("variables.p{i}_covers"))),
        ),
        variable(
            "allowed",
            any((0..sorted.len())
                .map(|i| format!("(variables.p{i}_covers && size(variables.p{i}_gaps) == 0)"))),
        ),
        variable(
            "gapText",
            if sorted.is_empty() {
                "\"\"".into()
            } else {
                format!("{gaps}.filter(g, g != \"\").join(\"; \")")
            },
        ),
    ]
}

/// The refusal, in `evaluate`'s words: no policy for the namespace, none for the project
/// and Region, or the gaps of every covering policy.
fn refusal_message(no_policies: bool) -> String {
    let holes = |extra: Option<(&'static str, &str)>| {
        let mut h = vec![
            (NAMESPACE_HOLE, "request.namespace".to_owned()),
            (PROJECT_HOLE, "object.spec.projectName".to_owned()),
            (REGION_HOLE, "variables.region".to_owned()),
        ];
        h.extend(extra.map(|(k, v)| (k, v.to_owned())));
        h
    };
    let no_namespace = template(
        &evaluate::no_policy_for_namespace(NAMESPACE_HOLE),
        &holes(None),
    );
    let selecting = if no_policies {
        "\"\""
    } else {
        "variables.selecting.join(\", \")"
    };
    let no_project = template(
        &evaluate::no_policy_for_project(
            NAMESPACE_HOLE,
            PROJECT_HOLE,
            REGION_HOLE,
            &[POLICIES_HOLE],
        ),
        &holes(Some((POLICIES_HOLE, selecting))),
    );
    let refused = template(
        &evaluate::overrides_refused(
            NAMESPACE_HOLE,
            PROJECT_HOLE,
            REGION_HOLE,
            &[GAPS_HOLE.to_owned()],
        ),
        &holes(Some((GAPS_HOLE, "variables.gapText"))),
    );
    format!(
        "size(variables.selecting) == 0 ? {no_namespace} : (!variables.anyCovers ? {no_project} \
         : {refused})"
    )
}

/// The variables of the policy at index `i`: selects, covers, the subjects each of its
/// value rules refuses, gaps.
fn policy_variables(i: usize, policy: &CodeBuildRunPolicy) -> Vec<Variable> {
    let spec = &policy.spec;
    let mut covers = format!(
        "variables.p{i}_selects && {}",
        any_matches(&spec.projects, "object.spec.projectName")
    );
    // Regions unset: every Region.
    if let Some(regions) = spec.regions.as_deref() {
        let _ = write!(covers, " && {}", any_matches(regions, "variables.region"));
    }
    let mut out = vec![
        variable(&format!("p{i}_selects"), selector(&spec.namespace_selector)),
        variable(&format!("p{i}_covers"), covers),
    ];
    out.extend(gaps_variables(i, policy));
    out
}

/// What the policy at index `i` says of each member, in member order (as
/// `evaluate::override_gaps`): a member it does not allow is a gap; a member it allows
/// whose values it constrains is a gap when one of its rules refuses. The refused subjects
/// come first, in their own variables.
fn gaps_variables(i: usize, policy: &CodeBuildRunPolicy) -> Vec<Variable> {
    let name = policy_name(policy);
    let rules = policy.spec.overrides.as_ref();
    let members = override_members();
    let (allowed, not_allowed): (Vec<&str>, Vec<&str>) = members
        .iter()
        .map(String::as_str)
        .partition(|m| evaluate::member_allowed(rules, m));
    let is_not_allowed = if allowed.is_empty() {
        "true".to_owned()
    } else if not_allowed.is_empty() {
        "false".to_owned()
    } else if not_allowed.len() <= allowed.len() {
        format!("m in {}", list(not_allowed.iter().map(|m| cel_string(m))))
    } else {
        format!("!(m in {})", list(allowed.iter().map(|m| cel_string(m))))
    };
    let not_allowed_message = template(
        &evaluate::member_not_allowed(name, MEMBER_HOLE),
        &[(MEMBER_HOLE, "m".to_owned())],
    );
    let (mut out, value_checks) = value_checks(i, policy, &allowed);
    // `m` is in `variables.used`, so set and not null; the value checks only run for the
    // member they are about.
    let mut per_member = "\"\"".to_owned();
    for (member, check) in value_checks.iter().rev() {
        per_member = format!("m == {} ? ({check}) : ({per_member})", cel_string(member));
    }
    let gaps = if not_allowed.is_empty() && value_checks.is_empty() {
        "[]".to_owned()
    } else if allowed.is_empty() {
        // Nothing allowed (so nothing constrained): every member set is a gap.
        format!("variables.used.map(m, {not_allowed_message})")
    } else {
        format!(
            "variables.used.map(m, {is_not_allowed} ? {not_allowed_message} : ({per_member}))\
             .filter(g, g != \"\")"
        )
    };
    out.push(variable(&format!("p{i}_gaps"), gaps));
    out
}

/// One constraint of one policy in CEL: when it refuses, the refusal, and the variable that
/// holds the refused subjects (for the checks over subjects).
struct Branch {
    refuses: String,
    message: String,
    helper: Option<Variable>,
}

/// The value rules of the policy at index `i` for the `allowed` members it constrains,
/// member by member (in member order): the CEL giving the member's refusal, or "" when
/// every rule holds, and the helper variables it reads. As `evaluate::override_gaps`, the
/// first rule of a member that refuses names the gap.
fn value_checks(
    i: usize,
    policy: &CodeBuildRunPolicy,
    allowed: &[&str],
) -> (Vec<Variable>, Vec<(&'static str, String)>) {
    let name = policy_name(policy);
    let mut helpers = Vec::new();
    let mut per_member: Vec<(&'static str, Vec<(String, String)>)> = Vec::new();
    for (constraint, check) in checked(policy, allowed) {
        let branch = check_cel(i, name, constraint, &check);
        helpers.extend(branch.helper);
        let branch = (branch.refuses, branch.message);
        match per_member.last_mut() {
            Some((member, branches)) if *member == constraint.member() => branches.push(branch),
            _ => per_member.push((constraint.member(), vec![branch])),
        }
    }
    let checks = per_member
        .into_iter()
        .map(|(member, branches)| {
            let mut cel = "\"\"".to_owned();
            for (refuses, message) in branches.iter().rev() {
                // CEL allows no unparenthesised conditional between `?` and `:`.
                cel = format!("{refuses} ? ({message}) : ({cel})");
            }
            (member, cel)
        })
        .collect();
    (helpers, checks)
}

/// The constraints `policy` checks among the `allowed` members, in `CONSTRAINTS` order.
fn checked<'p>(policy: &'p CodeBuildRunPolicy, allowed: &[&str]) -> Vec<(Constraint, Check<'p>)> {
    let Some(rules) = policy.spec.overrides.as_ref() else {
        return Vec::new();
    };
    CONSTRAINTS
        .iter()
        .filter(|c| allowed.contains(&c.member()))
        .filter_map(|c| c.check(rules).map(|check| (*c, check)))
        .collect()
}

/// One constraint of the policy at index `i` as CEL (the member is set and not null).
fn check_cel(i: usize, policy: &str, constraint: Constraint, check: &Check<'_>) -> Branch {
    let member = constraint.member();
    let value = format!("object.spec.{member}");
    match check {
        Check::AtMost(max) => {
            let number = constraint.value_cel();
            Branch {
                refuses: format!("{number} > {max}"),
                message: template(
                    &evaluate::above_maximum(policy, constraint.what(), VALUE_HOLE, *max),
                    &[(VALUE_HOLE, format!("string({number})"))],
                ),
                helper: None,
            }
        }
        Check::NotTrue => Branch {
            refuses: format!("{value} == true"),
            message: template(
                &evaluate::flag_not_allowed(policy, member, constraint.rule()),
                &[],
            ),
            helper: None,
        },
        Check::Patterns(patterns) => {
            let ok = any_matches(patterns, "s");
            subject_check(i, policy, constraint, &ok, patterns, false)
        }
        Check::Paths(patterns) => {
            let ok = any_matches(patterns, "s");
            subject_check(i, policy, constraint, &ok, patterns, true)
        }
        Check::OneOf(values) => {
            let one_of = format!("(s in {})", list(values.iter().map(|v| cel_string(v))));
            subject_check(i, policy, constraint, &one_of, values, false)
        }
    }
}

/// A check over the constraint's subjects (`variables.<member>_<rule>`): the subjects it
/// refuses (not `ok`, CEL over `s`; or with `paths`, with a `..` segment) are kept in the
/// variable `p<i>_refused_<member>_<rule>`, and the refusal names the first.
fn subject_check<S: AsRef<str>>(
    i: usize,
    policy: &str,
    constraint: Constraint,
    ok: &str,
    allowed: &[S],
    paths: bool,
) -> Branch {
    let dot = |s: &str| format!("{s}.matches({})", cel_string(DOT_SEGMENT_REGEX));
    let bad = if paths {
        format!("{} || !{ok}", dot("s"))
    } else {
        format!("!{ok}")
    };
    let refused = format!("p{i}_refused_{}", subjects_variable(constraint));
    let helper = variable(
        &refused,
        format!(
            "variables.{}.filter(s, {bad})",
            subjects_variable(constraint)
        ),
    );
    let first = format!("variables.{refused}[0]");
    let what = constraint.what();
    let not_allowed = template(
        &evaluate::value_not_allowed(policy, what, VALUE_HOLE, allowed),
        &[(VALUE_HOLE, first.clone())],
    );
    let message = if paths {
        let dotted = template(
            &evaluate::dot_segment_not_allowed(policy, what, VALUE_HOLE),
            &[(VALUE_HOLE, first.clone())],
        );
        format!("{} ? {dotted} : {not_allowed}", dot(&first))
    } else {
        not_allowed
    };
    Branch {
        refuses: format!("size(variables.{refused}) > 0"),
        message,
        helper: Some(helper),
    }
}

/// The variable holding the subjects of `constraint`.
fn subjects_variable(constraint: Constraint) -> String {
    format!("{}_{}", constraint.member(), constraint.rule())
}

/// The subjects the policies' checks read, each rendered once (variables are lazy: a list
/// is only built when a check of a member the run sets reads it).
fn subject_variables(sorted: &[&CodeBuildRunPolicy]) -> Vec<Variable> {
    let members = override_members();
    let needed: BTreeSet<Constraint> = sorted
        .iter()
        .flat_map(|p| {
            let rules = p.spec.overrides.as_ref();
            let allowed: Vec<&str> = (members.iter().map(String::as_str))
                .filter(|m| evaluate::member_allowed(rules, m))
                .collect();
            checked(p, &allowed)
        })
        .filter(|(_, check)| !matches!(check, Check::AtMost(_) | Check::NotTrue))
        .map(|(c, _)| c)
        .collect();
    needed
        .into_iter()
        .map(|c| variable(&subjects_variable(c), c.subjects_cel()))
        .collect()
}

/// The label selector as CEL over `variables.labels`, term by term as kube-core parsed it
/// (`selector::parse`); an invalid selector is `false` (it grants nothing).
fn selector(selector: &LabelSelector) -> String {
    let Some(parsed) = super::selector::parse(selector) else {
        return "false".to_owned();
    };
    let has = |k: &str| format!("{k} in variables.labels");
    let terms: Vec<String> = parsed
        .into_iter()
        .map(|e| match e {
            Expression::Equal(key, value) => {
                let k = cel_string(&key);
                format!(
                    "({} && variables.labels[{k}] == {})",
                    has(&k),
                    cel_string(&value)
                )
            }
            Expression::NotEqual(key, value) => {
                let k = cel_string(&key);
                format!(
                    "(!({}) || variables.labels[{k}] != {})",
                    has(&k),
                    cel_string(&value)
                )
            }
            Expression::In(key, values) => {
                let k = cel_string(&key);
                let values = list(values.iter().map(|v| cel_string(v)));
                format!("({} && variables.labels[{k}] in {values})", has(&k))
            }
            Expression::NotIn(key, values) => {
                let k = cel_string(&key);
                let values = list(values.iter().map(|v| cel_string(v)));
                format!("(!({}) || !(variables.labels[{k}] in {values}))", has(&k))
            }
            Expression::Exists(key) => format!("({})", has(&cel_string(&key))),
            Expression::DoesNotExist(key) => format!("!({})", has(&cel_string(&key))),
        })
        .collect();
    if terms.is_empty() {
        "true".to_owned()
    } else {
        terms.join(" && ")
    }
}

/// The Region a run builds in, from `obj` (`object` or `oldObject`).
fn region_of(obj: &str, default_region: &str) -> String {
    format!(
        "has({obj}.spec.operator) && {obj}.spec.operator != null && \
         has({obj}.spec.operator.region) && {obj}.spec.operator.region != null ? \
         {obj}.spec.operator.region : {}",
        cel_string(default_region)
    )
}

/// CREATE, or an UPDATE that changes something the decision depends on: the project, the
/// Region, which members are set, or a constrained value. All of these are immutable in the
/// CRD (and validating admission runs after the schema's rules), so no UPDATE that reaches
/// this policy changes them; the condition keeps the policy correct on its own, costs a
/// few dozen map lookups, and never compares whole specs.
fn update_condition(members: &[String], default_region: &str) -> String {
    let presence = |obj: &str| format!("(m in {obj}.spec && {obj}.spec[m] != null)");
    let constrained: BTreeSet<&str> = CONSTRAINTS.iter().map(|c| c.member()).collect();
    let values = list(constrained.iter().map(|m| cel_string(m)));
    format!(
        "request.operation != \"UPDATE\" || \
         object.spec.projectName != oldObject.spec.projectName || \
         ({}) != ({}) || \
         {}.exists(m, {} != {}) || \
         {values}.exists(m, m in object.spec && m in oldObject.spec && \
         object.spec[m] != oldObject.spec[m])",
        region_of("object", default_region),
        region_of("oldObject", default_region),
        list(members.iter().map(|m| cel_string(m))),
        presence("object"),
        presence("oldObject"),
    )
}

/// Whether a CREATE sets, or an UPDATE changes, the start-attempt annotation.
fn annotation_changed() -> String {
    let key = cel_string(START_ATTEMPT_ANNOTATION);
    let value = |obj: &str| {
        format!(
            "(has({obj}.metadata.annotations) && {key} in {obj}.metadata.annotations ? \
             {obj}.metadata.annotations[{key}] : \"\")"
        )
    };
    format!(
        "request.operation == \"CREATE\" ? {} != \"\" : {} != {}",
        value("object"),
        value("object"),
        value("oldObject")
    )
}

/// Whether `subject` (a CEL string expression) matches any of the glob `patterns`.
fn any_matches(patterns: &[String], subject: &str) -> String {
    if patterns.is_empty() {
        return "false".to_owned();
    }
    let terms: Vec<String> = patterns
        .iter()
        .map(|p| format!("{subject}.matches({})", cel_string(&glob::to_regex(p))))
        .collect();
    format!("({})", terms.join(" || "))
}

/// `a || b || ...`, or `false` for none.
fn any(terms: impl Iterator<Item = String>) -> String {
    let terms: Vec<String> = terms.collect();
    if terms.is_empty() {
        "false".to_owned()
    } else {
        terms.join(" || ")
    }
}

/// A CEL list literal of the (already rendered) items.
fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

/// `text` as a CEL string concatenation, each placeholder of `holes` replaced by its CEL
/// expression (left to right).
fn template(text: &str, holes: &[(&str, String)]) -> String {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let next = holes
            .iter()
            .filter_map(|(hole, expr)| rest.find(hole).map(|at| (at, *hole, expr)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, hole, expr)) = next else {
            break;
        };
        if at > 0 {
            parts.push(cel_string(&rest[..at]));
        }
        parts.push(format!("({expr})"));
        rest = &rest[at + hole.len()..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(cel_string(rest));
    }
    parts.join(" + ")
}

/// `s` as a CEL string literal: double quotes, with `\`, `"`, and every control character
/// (newlines included) escaped, so any text (a policy name, a label, a pattern) is read back
/// as itself.
pub fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every control character is below U+10000: `\u` takes exactly four digits.
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn variable(name: &str, expression: String) -> Variable {
    Variable {
        name: name.to_owned(),
        expression,
    }
}

fn policy_name(policy: &CodeBuildRunPolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}

/// Server-side applies `vap` (field manager `codebuild-operator`, forced), unless the
/// admission policy already holds every field `vap` sets, with the same values (one GET;
/// the fields the apiserver defaults and those of other managers are ignored, so an
/// unchanged rendering costs no write, and a hand edit of a rendered field is undone).
/// Returns whether it wrote.
pub async fn apply(
    client: &kube::Client,
    vap: &ValidatingAdmissionPolicy,
) -> Result<bool, kube::Error> {
    let name = vap.metadata.name.as_deref().unwrap_or_default();
    let api: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    if let Some(current) = api.get_opt(name).await?
        && up_to_date(vap, &current)
    {
        return Ok(false);
    }
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(vap),
    )
    .await?;
    Ok(true)
}

/// Whether `current` holds every field of `desired` with the same value (lists: the same
/// length, item by item). Fields `desired` does not set are ignored.
pub fn up_to_date(
    desired: &ValidatingAdmissionPolicy,
    current: &ValidatingAdmissionPolicy,
) -> bool {
    let desired = serde_json::to_value(desired).unwrap_or(Value::Null);
    let current = serde_json::to_value(current).unwrap_or(Value::Null);
    contains(&desired, &current)
}

fn contains(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => d
            .iter()
            .all(|(k, v)| c.get(k).is_some_and(|cv| contains(v, cv))),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(dv, cv)| contains(dv, cv))
        }
        (d, c) => d == c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CodeBuildRunPolicySpec, OverrideRules};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn policy(name: &str, projects: &[&str]) -> CodeBuildRunPolicy {
        CodeBuildRunPolicy::new(
            name,
            CodeBuildRunPolicySpec {
                namespace_selector: LabelSelector::default(),
                projects: projects.iter().map(|p| p.to_string()).collect(),
                regions: None,
                overrides: None,
                role_arn: None,
            },
        )
    }

    fn spec(vap: &ValidatingAdmissionPolicy) -> &ValidatingAdmissionPolicySpec {
        vap.spec.as_ref().unwrap()
    }

    fn var<'a>(vap: &'a ValidatingAdmissionPolicy, name: &str) -> &'a str {
        &spec(vap)
            .variables
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
            .expression
    }

    #[test]
    fn cel_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(cel_string("plain"), "\"plain\"");
        assert_eq!(cel_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(cel_string("x\ny\r\tz"), r#""x\ny\r\tz""#);
        assert_eq!(cel_string("nul\u{0}del\u{7f}"), r#""nul\u0000del\u007f""#);
        assert_eq!(cel_string("'single' ü ☃"), "\"'single' ü ☃\"");
        // The escapes used are also JSON's: JSON reads every literal back as the text.
        for text in [
            "",
            r#"a"b\c"#,
            "\\\"\\\\\"",
            "line\nbreak\r\n",
            "\u{1}\u{1f}\u{85}\u{2028}",
            "^(?s)a\\.b.*$",
            "ünï\"cödé\\",
        ] {
            let literal = cel_string(text);
            assert!(
                !literal.contains('\n') && !literal.contains('\r'),
                "{literal}"
            );
            assert_eq!(
                serde_json::from_str::<String>(&literal).unwrap(),
                text,
                "{literal}"
            );
        }
    }

    #[test]
    fn templates_become_concatenations() {
        let holes = [(NAMESPACE_HOLE, "request.namespace".to_owned())];
        assert_eq!(
            template(&evaluate::no_policy_for_namespace(NAMESPACE_HOLE), &holes),
            r#""no CodeBuildRunPolicy grants namespace \"" + (request.namespace) + "\"""#
        );
        assert_eq!(template("static", &holes), r#""static""#);
        assert_eq!(template("", &holes), r#""""#);
        assert_eq!(
            template(&format!("{NAMESPACE_HOLE}{NAMESPACE_HOLE}"), &holes),
            "(request.namespace) + (request.namespace)"
        );
    }

    #[test]
    fn rendering_is_deterministic_and_ignores_policy_order() {
        let mut a = policy("a", &["team-a-*"]);
        a.spec.regions = Some(vec!["eu-*".into()]);
        a.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["*".into()]),
            denied: Some(vec!["privilegedModeOverride".into()]),
            images: Some(vec!["aws/*".into()]),
            source_locations: Some(vec!["https://github.com/org/*".into()]),
            ..Default::default()
        });
        a.spec.namespace_selector.match_labels = Some(BTreeMap::from([
            ("z".into(), "1".into()),
            ("a".into(), "2".into()),
        ]));
        let b = policy("b", &["shared"]);
        let one = render("vap", &[&a, &b], "us-east-1");
        let two = render("vap", &[&b, &a], "us-east-1");
        assert_eq!(one, two);
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            serde_json::to_string(&render("vap", &[&a, &b], "us-east-1")).unwrap()
        );
        // Index 0 is the first by name.
        assert!(var(&one, "p0_covers").contains("team-a-"));
        assert!(var(&one, "p1_covers").contains("^(?s)shared$"));
        assert_ne!(one, render("vap", &[&a, &b], "eu-west-1"));
    }

    #[test]
    fn structure() {
        let vap = render("cbr-policies", &[], "us-east-1");
        assert_eq!(vap.metadata.name.as_deref(), Some("cbr-policies"));
        let s = spec(&vap);
        assert_eq!(s.failure_policy.as_deref(), Some("Fail"));
        let rules = s
            .match_constraints
            .as_ref()
            .unwrap()
            .resource_rules
            .as_ref()
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups, Some(vec![GROUP.to_owned()]));
        assert_eq!(rules[0].api_versions, Some(vec![VERSION.to_owned()]));
        assert_eq!(
            rules[0].operations,
            Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()])
        );
        assert_eq!(
            rules[0].resources,
            Some(vec![
                "codebuildruns".to_owned(),
                "codebuildbatchruns".to_owned()
            ])
        );
        let conditions = s.match_conditions.as_ref().unwrap();
        assert_eq!(conditions[0].name, UPDATE_CONDITION);
        assert!(
            conditions[0]
                .expression
                .starts_with("(request.operation != \"UPDATE\" || ")
        );
        assert!(
            conditions[0]
                .expression
                .ends_with(&format!("({})", annotation_changed()))
        );
        assert!(var(&vap, "requestChanged").starts_with("request.operation != \"UPDATE\" || "));
        let v = &s.validations.as_ref().unwrap()[0];
        assert_eq!(
            v.expression,
            "!variables.requestChanged || variables.allowed"
        );
        let annotation = &s.validations.as_ref().unwrap()[1];
        assert_eq!(
            annotation.expression,
            format!("!({})", annotation_changed())
        );
        assert_eq!(annotation.message.as_deref(), Some(ANNOTATION_MESSAGE));
        assert_eq!(v.reason.as_deref(), Some("Forbidden"));
        assert!(!v.message.as_ref().unwrap().contains('\n'));
        // No policy: nothing is allowed, and the message is the namespace's.
        assert_eq!(var(&vap, "allowed"), "false");
        assert_eq!(var(&vap, "selecting"), "[].filter(n, n != \"\")");
        assert!(
            v.message_expression
                .as_ref()
                .unwrap()
                .starts_with(r#"size(variables.selecting) == 0 ? "no CodeBuildRunPolicy grants namespace \"" + (request.namespace) + "\"" : "#),
            "{:?}",
            v.message_expression
        );
        assert!(var(&vap, "region").ends_with(": \"us-east-1\""));
        // Every variable name is a CEL identifier, unique.
        let names: Vec<&str> = s
            .variables
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn override_members_are_cel_identifiers() {
        // `has(object.spec.<member>)` and `object.spec.<member>` need plain identifiers.
        const RESERVED: &[&str] = &[
            "as",
            "break",
            "const",
            "continue",
            "else",
            "false",
            "for",
            "function",
            "if",
            "import",
            "in",
            "let",
            "loop",
            "package",
            "namespace",
            "null",
            "return",
            "true",
            "var",
            "void",
            "while",
        ];
        for m in override_members() {
            assert!(
                m.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && m.chars().all(|c| c.is_ascii_alphanumeric()),
                "{m}"
            );
            assert!(!RESERVED.contains(&m.as_str()), "{m}");
        }
        for c in CONSTRAINTS {
            assert!(override_members().iter().any(|o| o == c.member()), "{c:?}");
        }
    }

    #[test]
    fn selectors_and_patterns_are_escaped() {
        let mut p = policy("we-ird", &[r#"a"b\c*"#]);
        p.spec.namespace_selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("team".into(), "a".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["dev".into(), "prod".into()]),
                },
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["legacy".into()]),
                },
                LabelSelectorRequirement {
                    key: "owner".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "frozen".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let vap = render("v", &[&p], "us-east-1");
        assert_eq!(
            var(&vap, "p0_selects"),
            r#"("team" in variables.labels && variables.labels["team"] == "a") && ("env" in variables.labels && variables.labels["env"] in ["dev", "prod"]) && (!("tier" in variables.labels) || !(variables.labels["tier"] in ["legacy"])) && ("owner" in variables.labels) && !("frozen" in variables.labels)"#
        );
        // A selector kube-core refuses (an unknown operator, NotIn without values) selects
        // nothing, here as in `selector::selects`.
        for (operator, values) in [("Matches", Some(vec!["x".to_owned()])), ("NotIn", None)] {
            let mut q = p.clone();
            q.spec.namespace_selector.match_expressions = Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: operator.into(),
                values,
            }]);
            assert_eq!(var(&render("v", &[&q], "us-east-1"), "p0_selects"), "false");
        }
        assert_eq!(
            var(&vap, "p0_covers"),
            r#"variables.p0_selects && (object.spec.projectName.matches("^(?s)a\"b\\\\c.*$"))"#
        );
        // No override allowed: every member set is a gap.
        assert_eq!(
            var(&vap, "p0_gaps"),
            r#"variables.used.map(m, "policy \"we-ird\" does not allow " + (m))"#
        );
    }

    #[test]
    fn value_rules_in_member_order() {
        let mut p = policy("a", &["*"]);
        p.spec.overrides = Some(OverrideRules {
            allowed: Some(vec![
                "secondarySourcesOverride".into(),
                "imageOverride".into(),
                "sourceVersion".into(),
            ]),
            images: Some(vec![]),
            source_locations: Some(vec!["https://x/*".into()]),
            service_roles: Some(vec!["ignored: not allowed".into()]),
            ..Default::default()
        });
        let vap = render("v", &[&p], "us-east-1");
        let gaps = var(&vap, "p0_gaps");
        let image = gaps.find("m == \"imageOverride\"").unwrap();
        let secondary = gaps.find("m == \"secondarySourcesOverride\"").unwrap();
        assert!(image < secondary, "{gaps}");
        assert!(!gaps.contains("m == \"serviceRoleOverride\""), "{gaps}");
        assert!(
            gaps.contains(
                r#"m == "imageOverride" ? (size(variables.p0_refused_imageOverride_images) > 0 ? ("policy \"a\" does not allow imageOverride \"" + (variables.p0_refused_imageOverride_images[0]) + "\" (allowed: none)") : ("")) : "#
            ),
            "{gaps}"
        );
        assert!(
            gaps.contains(
                r#"!(m in ["imageOverride", "secondarySourcesOverride", "sourceVersion"])"#
            ),
            "{gaps}"
        );
        // The subjects each check reads, once, and only those of checked members; the ones
        // each policy refuses.
        assert_eq!(
            var(&vap, "p0_refused_imageOverride_images"),
            "variables.imageOverride_images.filter(s, !false)"
        );
        assert_eq!(
            var(&vap, "imageOverride_images"),
            "[object.spec.imageOverride]"
        );
        assert_eq!(
            var(&vap, "secondarySourcesOverride_sourceLocations"),
            r#"object.spec.secondarySourcesOverride.filter(s, (has(s.location) && s.location != null)).map(s, s.location)"#
        );
        let names: Vec<&str> = (spec(&vap).variables.iter().flatten())
            .map(|v| v.name.as_str())
            .collect();
        assert!(
            !names.contains(&"serviceRoleOverride_serviceRoles"),
            "{names:?}"
        );
        // Everything allowed, nothing constrained: no gap can arise.
        p.spec.overrides = Some(OverrideRules {
            allowed: Some(vec!["*".into()]),
            ..Default::default()
        });
        assert_eq!(var(&render("v", &[&p], "us-east-1"), "p0_gaps"), "[]");
    }

    #[test]
    fn caps_flags_enumerations_and_locations() {
        let mut p = policy("a", &["*"]);
        p.spec.overrides = Some(
            serde_json::from_value(serde_json::json!({
                "allowed": ["*"],
                "maxTimeoutInMinutes": 60,
                "privilegedMode": false,
                "debugSessions": true,
                "computeTypes": ["BUILD_GENERAL1_SMALL"],
                "cacheLocations": ["c/*"],
                "environmentVariableNames": ["A"],
                "environmentVariableTypes": ["PLAINTEXT"],
            }))
            .unwrap(),
        );
        let vap = render("v", &[&p], "us-east-1");
        let gaps = var(&vap, "p0_gaps");
        assert!(
            gaps.contains(r#"m == "timeoutInMinutesOverride" ? (object.spec.timeoutInMinutesOverride > 60 ? ("policy \"a\" does not allow timeoutInMinutesOverride " + (string(object.spec.timeoutInMinutesOverride)) + " (at most 60)") : ("")) : "#),
            "{gaps}"
        );
        assert!(
            gaps.contains(r#"m == "privilegedModeOverride" ? (object.spec.privilegedModeOverride == true ? ("policy \"a\" does not allow privilegedModeOverride true (privilegedMode is false)") : ("")) : "#),
            "{gaps}"
        );
        // debugSessions: true allows both values: no check.
        assert!(!gaps.contains("debugSessionEnabled"), "{gaps}");
        assert_eq!(
            var(&vap, "p0_refused_computeTypeOverride_computeTypes"),
            r#"variables.computeTypeOverride_computeTypes.filter(s, !(s in ["BUILD_GENERAL1_SMALL"]))"#
        );
        // Locations: a `..` segment or no match; the message says which.
        assert_eq!(
            var(&vap, "p0_refused_cacheOverride_cacheLocations"),
            r#"variables.cacheOverride_cacheLocations.filter(s, s.matches("(^|/)\\.\\.(/|$)") || !(s.matches("^(?s)c/.*$")))"#
        );
        assert!(gaps.contains("(a location may not hold a"), "{gaps}");
        // Two rules of one member: names first, then types.
        let names = gaps
            .find("p0_refused_environmentVariablesOverride_environmentVariableNames) > 0")
            .unwrap();
        let types = gaps
            .find("p0_refused_environmentVariablesOverride_environmentVariableTypes) > 0")
            .unwrap();
        assert!(names < types, "{gaps}");
        // Caps and flags read the member itself: no subject variables.
        let variables: Vec<&str> = (spec(&vap).variables.iter().flatten())
            .map(|v| v.name.as_str())
            .collect();
        assert!(
            !variables
                .iter()
                .any(|v| v.starts_with("timeoutInMinutesOverride_")
                    || v.starts_with("privilegedModeOverride_")),
            "{variables:?}"
        );
        // Every member with a rule is in the UPDATE condition's list of compared members.
        let condition = &spec(&vap).match_conditions.as_ref().unwrap()[0].expression;
        for c in CONSTRAINTS {
            assert!(condition.contains(&cel_string(c.member())), "{c:?}");
        }
    }

    #[test]
    fn up_to_date_ignores_defaulted_fields_only() {
        let desired = render("v", &[&policy("a", &["x"])], "us-east-1");
        let mut current = serde_json::to_value(&desired).unwrap();
        current["metadata"]["resourceVersion"] = "7".into();
        current["spec"]["matchConstraints"]["matchPolicy"] = "Equivalent".into();
        current["spec"]["matchConstraints"]["resourceRules"][0]["scope"] = "*".into();
        let current: ValidatingAdmissionPolicy = serde_json::from_value(current).unwrap();
        assert!(up_to_date(&desired, &current));
        let changed = render("v", &[&policy("a", &["y"])], "us-east-1");
        assert!(!up_to_date(&changed, &current));
        let more = render(
            "v",
            &[&policy("a", &["x"]), &policy("b", &["x"])],
            "us-east-1",
        );
        assert!(!up_to_date(&more, &current));
    }
}
