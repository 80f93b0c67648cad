"""Checks Kubernetes manifests against KServe's own schema as its PyPI package carries it.

The `kserve` SDK's model classes are generated from KServe's OpenAPI document: each holds
`openapi_types` (field -> type) and `attribute_map` (field -> JSON key), and its constructor refuses
a missing required field. Core types (V1Container, V1ObjectMeta, ...) come from the `kubernetes`
client the same way. This walks every document strictly: an unknown key, a wrong type or a missing
required field is an error naming its path. (The SDK writes container types as `list[X]` and
`dict(str, X)`, the kubernetes client as `List[X]` and `Dict[str, X]`.)

Called by test_kserve_manifests.py with the interpreter of the kserve venv. Prints one JSON line:
{"PATH#INDEX": ["error", ...]} (an empty list when the document is valid).
"""
import json
import re
import sys

import kserve.models
import kubernetes.client.models
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PRIMITIVES = {"str": str, "int": int, "float": (int, float), "bool": bool, "bytes": str}


def model_class(name):
    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name, None)


def check(value, type_name, path, errors):
    """Appends to errors what is wrong with value as an instance of the OpenAPI type type_name."""
    if type_name == "object":
        return
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: {value!r} is not a {type_name}")
        return
    if type_name in ("datetime", "date"):
        if not isinstance(value, str):
            errors.append(f"{path}: {value!r} is not a date-time string")
        return
    if m := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]", errors)
        return
    if m := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        for k, item in value.items():
            check(item, m.group(1) or m.group(2), f"{path}.{k}", errors)
        return
    check_object(value, type_name, path, errors)


def check_object(value, type_name, path, errors):
    cls = model_class(type_name)
    if cls is None:
        errors.append(f"{path}: the schema names type {type_name}, which neither package defines")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name})")
        return
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_key.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: not a field of {type_name}")
            continue
        check(item, cls.openapi_types[attr], f"{path}.{key}", errors)
        kwargs[attr] = item
    try:
        cls(**kwargs)  # the generated constructor refuses missing required fields and bad enum values
    except (ValueError, TypeError) as e:
        errors.append(f"{path} ({type_name}): {e}")


def check_document(doc):
    kind = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if kind is None:
        return [f"apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r} is not a KServe resource this checks"]
    errors = []
    check_object(doc, kind, doc["kind"], errors)
    return errors


def main(paths):
    report = {}
    for path in paths:
        with open(path) as f:
            for i, doc in enumerate(d for d in yaml.safe_load_all(f) if d):
                report[f"{path}#{i}"] = check_document(doc)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
