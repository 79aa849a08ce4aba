"""A strict validator of raw AWS JSON 1.1 responses against botocore's service models
(`codebuild` by default, `logs` for the CloudWatch Logs endpoint).

botocore's parser silently ignores unknown members and does not check enums, so the
simulator's raw JSON is walked against the operation's output shape: every key must be a
member, types and enum values must match, required members must be present, nulls are not
allowed, and string/list/number constraints from the model are honoured.

`service_values` names values the service itself answers outside an enum of the model, by
(structure, member): `{("BuildSummary", "buildStatus"): {"PENDING"}}`. Nothing else is let
through.
"""

import botocore.session

_SESSION = botocore.session.get_session()
_MODELS = {}


def service_model(service: str = "codebuild"):
    if service not in _MODELS:
        _MODELS[service] = _SESSION.get_service_model(service)
    return _MODELS[service]


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(value, shape, path, errors, service_values, extra=frozenset()):
    t = shape.type_name
    meta = shape.metadata
    if value is None:
        errors.append(f"{path}: null is not allowed ({shape.name})")
        return
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object for {shape.name}, got {type(value).__name__}")
            return
        for key, v in value.items():
            member = shape.members.get(key)
            if member is None:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                allowed = service_values.get((shape.name, key), frozenset())
                _check(v, member, f"{path}.{key}", errors, service_values, allowed)
        for req in shape.required_members:
            if req not in value:
                errors.append(f"{path}.{req}: required member of {shape.name} missing")
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected list for {shape.name}")
            return
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: list shorter than {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: list longer than {meta['max']}")
        for i, item in enumerate(value):
            _check(item, shape.member, f"{path}[{i}]", errors, service_values, extra)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected map for {shape.name}")
            return
        for k, v in value.items():
            _check(k, shape.key, f"{path}<key {k}>", errors, service_values)
            _check(v, shape.value, f"{path}.{k}", errors, service_values)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected string for {shape.name}, got {value!r}")
            return
        if shape.enum and value not in shape.enum and value not in extra:
            errors.append(f"{path}: {value!r} not in enum {shape.name}")
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: {value!r} shorter than min {meta['min']} ({shape.name})")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: longer than max {meta['max']} ({shape.name})")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected integer for {shape.name}, got {value!r}")
            return
        if "min" in meta and value < meta["min"]:
            errors.append(f"{path}: {value} below min {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} above max {meta['max']}")
    elif t in ("float", "double"):
        if not _is_number(value):
            errors.append(f"{path}: expected number for {shape.name}, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected boolean for {shape.name}, got {value!r}")
    elif t == "timestamp":
        # AWS JSON 1.1 encodes timestamps as epoch seconds (a JSON number).
        if not _is_number(value):
            errors.append(f"{path}: expected epoch-seconds number for {shape.name}, got {value!r}")
    elif t == "blob":
        if not isinstance(value, str):
            errors.append(f"{path}: expected base64 string for {shape.name}")
    else:
        errors.append(f"{path}: unhandled shape type {t}")


def violations(operation: str, body: dict, service: str = "codebuild", service_values=None) -> list:
    """All violations of `operation`'s output shape in the raw response `body`."""
    shape = service_model(service).operation_model(operation).output_shape
    errors = []
    if shape is None:
        if body not in ({}, None):
            errors.append(f"{operation}: expected an empty body, got {body!r}")
        return errors
    _check(body, shape, operation, errors, service_values or {})
    return errors


def error_violations(operation: str, body: dict, service: str = "codebuild") -> list:
    """The raw error body must name an error the operation declares (or a common one)."""
    declared = {e.name for e in service_model(service).operation_model(operation).error_shapes}
    common = {"ThrottlingException", "InternalFailure", "ServiceUnavailable"}
    errors = []
    if set(body) != {"__type", "message"}:
        errors.append(f"{operation}: error body keys {sorted(body)}")
    if body.get("__type") not in declared | common:
        errors.append(f"{operation}: error {body.get('__type')} not declared ({sorted(declared)})")
    return errors
