//! Schema transforms that plain attributes cannot express.

use schemars::Schema;
use serde_json::{Map, Value, json};

/// The part of `spec` that is not sent to CodeBuild.
pub(crate) const OPERATOR_FIELD: &str = "operator";

/// Makes every StartBuild member of the spec immutable, and `spec.operator.region` too.
///
/// Two rules per member, so the apiserver's message names the member and each rule stays
/// cheap enough for the CEL cost budget: on the spec, `has(self.m) == has(oldSelf.m)`
/// (a member cannot be added or removed), and on the member, `self == oldSelf` (a
/// transition rule: it cannot change). The member list is read from the schema itself, so
/// a member added to the Rust type is covered without touching this function. `stop` may
/// go from false to true, never back.
pub(crate) fn immutable_start_build(schema: &mut Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let mut rules = Vec::new();
    // Sorted, so the rule order does not depend on serde_json's map implementation.
    let mut members: Vec<(&String, &mut Value)> = properties.iter_mut().collect();
    members.sort_by(|a, b| a.0.cmp(b.0));
    for (name, member) in members {
        if name == OPERATOR_FIELD {
            if let Some(region) = member.pointer_mut("/properties/region") {
                push_rule(
                    region,
                    immutable_rule("spec.operator.region", "to build in another region"),
                );
            }
            continue;
        }
        push_rule(
            member,
            immutable_rule(&format!("spec.{name}"), "to start another build"),
        );
        rules.push(json!({
            "rule": format!("has(self.{name}) == has(oldSelf.{name})"),
            "message": format!(
                "spec.{name} cannot be added or removed after creation: a CodeBuildRun is one \
                 build; create a new CodeBuildRun to start another build"
            ),
            "fieldPath": format!(".{name}"),
            "reason": "FieldValueForbidden",
        }));
    }
    rules.push(json!({
        "rule": "(has(self.operator) && has(self.operator.region)) == \
                 (has(oldSelf.operator) && has(oldSelf.operator.region))",
        "message": "spec.operator.region cannot be added or removed after creation: create a new \
                    CodeBuildRun to build in another region",
        "fieldPath": ".operator.region",
        "reason": "FieldValueForbidden",
    }));
    rules.push(json!({
        "rule": "!(has(oldSelf.operator) && has(oldSelf.operator.stop) && oldSelf.operator.stop) || \
                 (has(self.operator) && has(self.operator.stop) && self.operator.stop)",
        "message": "spec.operator.stop cannot be set back to false once a stop was requested",
        "fieldPath": ".operator.stop",
        "reason": "FieldValueForbidden",
    }));
    schema.insert("x-kubernetes-validations".to_owned(), Value::Array(rules));
}

fn immutable_rule(path: &str, what_for: &str) -> Value {
    json!({
        "rule": "self == oldSelf",
        "message": format!(
            "{path} cannot change after creation: a CodeBuildRun is one build; create a new \
             CodeBuildRun {what_for}"
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
