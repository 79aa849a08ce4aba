//! Schema transforms that plain attributes cannot express.

use schemars::Schema;
use serde_json::{Map, Value, json};

/// The part of `spec` that is not sent to CodeBuild.
pub(crate) const OPERATOR_FIELD: &str = "operator";

/// The words a kind's immutability rules use: its name, what one object starts, and the
/// request its spec is.
pub(crate) struct Words {
    /// The kind, e.g. `CodeBuildRun`.
    pub kind: &'static str,
    /// What one object starts, e.g. `build`.
    pub thing: &'static str,
    /// The CodeBuild request the spec is, e.g. `StartBuild`.
    pub request: &'static str,
}

/// The words of `CodeBuildRun`.
pub(crate) const RUN: Words = Words {
    kind: "CodeBuildRun",
    thing: "build",
    request: "StartBuild",
};

/// The words of `CodeBuildBatchRun`.
pub(crate) const BATCH_RUN: Words = Words {
    kind: "CodeBuildBatchRun",
    thing: "build batch",
    request: "StartBuildBatch",
};

impl Words {
    /// How the refusal to add or remove a member ends, after naming the member.
    fn one(&self) -> String {
        let Words { kind, thing, .. } = self;
        format!("a {kind} is one {thing}; create a new {kind} to start another {thing}")
    }
}

/// Makes every StartBuild member of the spec immutable, and `spec.operator.region` too.
///
/// - On each member, `self == oldSelf` (a transition rule): it cannot change. The error is
///   on the member's path (`spec.sourceVersion: Forbidden: spec.sourceVersion cannot change
///   ...`).
/// - On the spec, ONE rule: no member (nor `operator.region`) was added or removed. Its
///   `messageExpression` names the first one that was (`spec: Forbidden: spec.imageOverride
///   cannot be added or removed ...`).
/// - On the spec, `stop` may go from false to true, never back.
///
/// Cost: the apiserver evaluates every rule that uses `oldSelf` on every write of the
/// object, status writes included, and each field lookup on the spec object rebuilds its
/// table of all ~35 property schemas (k8s 1.36). So the presence rule starts with
/// `self == oldSelf` (it compares only the members that are set, and its estimated cost is
/// constant), which is true on every status write; the `has()` comparisons run only when the
/// spec changed. The former one `has()` rule per member made the CEL part of a status write
/// about 4 times as expensive for a two-member spec. The member list is read from the schema
/// itself, so a member added to the Rust type is covered without touching this function.
pub(crate) fn immutable_start_build(schema: &mut Schema) {
    immutable_request(schema, &RUN);
}

/// [`immutable_start_build`] for a kind with other `words`.
pub(crate) fn immutable_request(schema: &mut Schema, words: &Words) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let mut names = Vec::new();
    // Sorted, so the rule order does not depend on serde_json's map implementation.
    let mut members: Vec<(&String, &mut Value)> = properties.iter_mut().collect();
    members.sort_by(|a, b| a.0.cmp(b.0));
    for (name, member) in members {
        if name == OPERATOR_FIELD {
            if let Some(region) = member.pointer_mut("/properties/region") {
                push_rule(
                    region,
                    immutable_rule(words, "spec.operator.region", "to build in another region"),
                );
            }
            continue;
        }
        let another = format!("to start another {}", words.thing);
        push_rule(
            member,
            immutable_rule(words, &format!("spec.{name}"), &another),
        );
        names.push(name.clone());
    }
    let rules = vec![
        presence_rule(words, &names),
        json!({
            "rule": "!oldSelf.?operator.?stop.orValue(false) || self.?operator.?stop.orValue(false)",
            "message": "spec.operator.stop cannot be set back to false once a stop was requested",
            "fieldPath": ".operator.stop",
            "reason": "FieldValueForbidden",
        }),
    ];
    schema.insert("x-kubernetes-validations".to_owned(), Value::Array(rules));
}

/// The spec-level rule: `members` (and `operator.region`) are set after the change exactly
/// when they were set before it.
fn presence_rule(words: &Words, members: &[String]) -> Value {
    let (kind, request, one) = (words.kind, words.request, words.one());
    let region = |x: &str| format!("{x}.?{OPERATOR_FIELD}.?region.hasValue()");
    let same: Vec<String> = members
        .iter()
        .map(|m| format!("has(self.{m}) == has(oldSelf.{m})"))
        .chain([format!("{} == {}", region("self"), region("oldSelf"))])
        .collect();
    // The first member whose presence differs (the rule failed, so one does).
    let mut first = format!("'a {request} member of spec'");
    for m in members.iter().rev() {
        first = format!("has(self.{m}) != has(oldSelf.{m}) ? 'spec.{m}' : {first}");
    }
    json!({
        "rule": format!("self == oldSelf || ({})", same.join(" && ")),
        "messageExpression": format!(
            "{} != {} ? 'spec.operator.region cannot be added or removed after creation: create \
             a new {kind} to build in another region' : ({first}) + ' cannot be added or \
             removed after creation: {one}'",
            region("self"),
            region("oldSelf"),
        ),
        "message": format!(
            "a {request} member of spec cannot be added or removed after creation: {one}"
        ),
        "reason": "FieldValueForbidden",
    })
}

fn immutable_rule(words: &Words, path: &str, what_for: &str) -> Value {
    let Words { kind, thing, .. } = words;
    json!({
        "rule": "self == oldSelf",
        "message": format!(
            "{path} cannot change after creation: a {kind} is one {thing}; create a new \
             {kind} {what_for}"
        ),
        "reason": "FieldValueForbidden",
    })
}

fn push_rule(member: &mut Value, rule: Value) {
    let Some(object) = member.as_object_mut() else {
        return;
    };
    let rules = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = rules {
        list.push(rule);
    } else {
        *rules = Value::Array(vec![rule]);
    }
    let _: &mut Map<String, Value> = object;
}
