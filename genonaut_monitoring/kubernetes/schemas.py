"""Validate generated Kubernetes resources against the schemas the API server uses.

The Prometheus Operator's resources are checked against the ``openAPIV3Schema`` of
its CRDs (``crds.json``: the pinned release's schemas without their descriptions,
made by ``python -m scripts.refresh_crds`` from the CRD files vendored under
``tests/data/prometheus-operator-crd/``). ``ConfigMap``, ``Secret`` and the
kustomization are checked against schemas in :mod:`.core`, written from the
Kubernetes API reference.

An OpenAPI v3 schema is not quite JSON Schema, so :func:`json_schema` translates it
the way the API server reads it with ``kubectl apply``'s strict field validation:

- an object with ``properties`` takes no other field (the server rejects an unknown
  field: a misspelt key fails) unless ``x-kubernetes-preserve-unknown-fields``;
- ``nullable: true`` admits null;
- ``x-kubernetes-list-type: set`` lists hold unique items, ``map`` lists unique keys
  (``x-kubernetes-list-map-keys``);
- ``x-kubernetes-validations`` (CEL rules) cannot be evaluated here: a resource that
  sets a field carrying one fails, rather than passing unchecked;
- ``x-kubernetes-int-or-string`` comes with its own ``anyOf``; ``format`` is not checked.

    >>> problems = validate_resource(resource)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from genonaut_monitoring.kubernetes import core

CRDS_FILE = Path(__file__).with_name("crds.json")


# libyaml's parser when PyYAML has it: the vendored CRDs are large.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_SafeLoader):
    """YAML as Kubernetes reads it: a plain ``=`` is a string, not PyYAML's 1.1 "value" tag.

    (The CRDs' matchType enum lists ``- =`` unquoted.)
    """


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes) -> Any:
    return yaml.load(text, Loader=Loader)  # a safe loader


# --- the CRDs, compacted ------------------------------------------------------------


def _strip(node: Any) -> Any:
    """``node`` without its prose: ``description`` keys go, everything that checks stays."""
    if isinstance(node, dict):
        return {
            k: _strip(v)
            for k, v in node.items()
            # A property may itself be called "description": keep those.
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def compact(crd: Mapping[str, Any]) -> dict[str, Any]:
    """One CRD document reduced to what validation needs: group, version, kind, schema."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return {
        "apiVersion": f"{crd['spec']['group']}/{version['name']}",
        "kind": crd["spec"]["names"]["kind"],
        "schema": _strip(version["schema"]["openAPIV3Schema"]),
    }


def crds_document(release: str, source: str, crds: Sequence[Mapping[str, Any]]) -> str:
    """The text of crds.json: the compacted CRDs with the release they come from."""
    kinds = {c["kind"]: c for c in (compact(crd) for crd in crds)}
    data = {"release": release, "source": source, "kinds": dict(sorted(kinds.items()))}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


@functools.cache
def crds() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CRDS_FILE.read_text(encoding="utf-8"))
    return data


def operator_release() -> str:
    """The prometheus-operator release whose CRD schemas the build validates against."""
    return str(crds()["release"])


# --- OpenAPI v3 (structural schemas) to JSON Schema ------------------------------------

_STRUCTURAL_OBJECT_KEYS = ("properties", "additionalProperties")


def json_schema(node: Any) -> Any:
    """An OpenAPI v3 schema as a (draft 4) JSON Schema, read as strictly as the API server."""
    if isinstance(node, list):
        return [json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) if k != "enum" else v for k, v in node.items()}
    if "properties" in node:
        # Property names are data, not schemas: translate the values only.
        out["properties"] = {k: json_schema(v) for k, v in node["properties"].items()}
    if node.get("nullable") is True and "type" in node:
        out["type"] = [node["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if node.get("type") == "object" and "properties" in node and not preserve:
        out.setdefault("additionalProperties", False)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(instance, list):
        return
    seen: set[tuple[Any, ...]] = set()
    for item in instance:
        if isinstance(item, dict):
            key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(f"two items have the same {', '.join(keys)}")
            seen.add(key)


def _cel_rules(
    validator: Any, rules: list[Mapping[str, Any]], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    shown = "; ".join(str(rule.get("rule")) for rule in rules)
    yield jsonschema.ValidationError(
        f"carries CEL validation rules that cannot be checked here ({shown}); "
        "leave this field out or check it against a real API server"
    )


Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    {"x-kubernetes-list-map-keys": _list_map_keys, "x-kubernetes-validations": _cel_rules},
)


def _with_envelope(schema: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """``schema`` with apiVersion and kind fixed and metadata checked as Kubernetes does."""
    out = dict(schema)
    properties = dict(out.get("properties", {}))
    properties["apiVersion"] = {"type": "string", "enum": [api_version]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    properties["metadata"] = core.OBJECT_META
    out["properties"] = properties
    out["required"] = sorted({*out.get("required", []), "apiVersion", "kind", "metadata"})
    return out


@functools.cache
def validators() -> dict[tuple[str, str], Any]:
    """A validator for each (apiVersion, kind) the Kubernetes target writes."""
    schemas = {
        (c["apiVersion"], kind): _with_envelope(json_schema(c["schema"]), c["apiVersion"], kind)
        for kind, c in crds()["kinds"].items()
    }
    schemas[("v1", "ConfigMap")] = core.CONFIG_MAP
    schemas[("v1", "Secret")] = core.SECRET
    schemas[(core.KUSTOMIZE_API, "Kustomization")] = core.KUSTOMIZATION
    return {key: Validator(schema) for key, schema in schemas.items()}


def _where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def validate_resource(resource: Any) -> list[str]:
    """Schema problems of one resource, each naming the field: ``spec.groups[0].rules``..."""
    if not isinstance(resource, dict):
        return ["is not a mapping (a Kubernetes resource)"]
    key = (resource.get("apiVersion"), resource.get("kind"))
    validator = validators().get(key)  # type: ignore[arg-type]
    if validator is None:
        known = ", ".join(f"{a} {k}" for a, k in sorted(validators()))
        return [f"apiVersion {key[0]!r}, kind {key[1]!r} is not one of: {known}"]
    errors = sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.path)))
    problems = [f"{_where(e.absolute_path)}: {e.message}" for e in errors]
    if key == ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"):
        problems += _child_route_problems(resource)
    return problems


def _child_route_problems(resource: Mapping[str, Any]) -> list[str]:
    """Nested routes, which the CRD leaves open but the operator decodes strictly.

    (``Route.ChildRoutes`` in prometheus-operator decodes each with
    ``DisallowUnknownFields``: a misspelt key rejects the whole AlertmanagerConfig.)
    """
    route_schema = crds()["kinds"]["AlertmanagerConfig"]["schema"]["properties"]["spec"]
    validator = Validator(json_schema(route_schema["properties"]["route"]))
    problems = []

    def visit(route: Any, where: str) -> None:
        if not isinstance(route, dict):
            return
        for index, child in enumerate(route.get("routes") or []):
            here = f"{where}.routes[{index}]"
            for error in validator.iter_errors(child):
                inner = _where(error.absolute_path)
                problems.append(f"{here}{'' if not error.path else '.' + inner}: {error.message}")
            visit(child, here)

    visit(resource.get("spec", {}).get("route"), "spec.route")
    return problems


# --- sizes the API server enforces -------------------------------------------------------

# ConfigMap and Secret data: at most 1 MiB (core.MaxSecretSize; ValidateConfigMap sums the
# values of data and binaryData).
MAX_DATA_BYTES = 1024 * 1024
# All annotations of one object together (ValidateAnnotationsSize: 256 KiB).
MAX_ANNOTATION_BYTES = 256 * 1024


def data_bytes(resource: Mapping[str, Any]) -> int:
    """The size the API server counts against a ConfigMap's 1 MiB: its values' bytes."""
    import base64

    data = resource.get("data") or {}
    binary = resource.get("binaryData") or {}
    return sum(len(str(v).encode()) for v in data.values()) + sum(
        len(base64.b64decode(str(v))) for v in binary.values()
    )


def size_problems(resource: Mapping[str, Any]) -> list[str]:
    problems = []
    if resource.get("kind") in ("ConfigMap", "Secret"):
        size = data_bytes(resource)
        if size > MAX_DATA_BYTES:
            problems.append(
                f"data is {size:,} bytes; Kubernetes stores at most {MAX_DATA_BYTES:,} "
                "(1 MiB) in one ConfigMap: split it, or shrink what it holds"
            )
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > MAX_ANNOTATION_BYTES:
        problems.append(
            f"metadata.annotations are {size:,} bytes; Kubernetes allows {MAX_ANNOTATION_BYTES:,}"
        )
    return problems
