"""Kubernetes' own shapes, written from its API reference, as strict JSON Schemas (draft 4).

Kubernetes publishes no JSON Schema of its built-in kinds in a form this build can
pin offline, so these are written by hand from the API reference (v1.33):

- ObjectMeta: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
- ConfigMap: https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/config-map-v1/
- Secret: https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/
- Kustomization (kustomize.config.k8s.io/v1beta1), the fields this build writes:
  https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/

Every field of those objects is listed and no other is allowed, so a misspelt key
fails as it does under ``kubectl apply``'s strict field validation. Names, label
keys and values, and data keys follow Kubernetes' validation rules
(k8s.io/apimachinery/pkg/util/validation), the same patterns ``config.py`` checks
settings with.
"""

from __future__ import annotations

import re
from typing import Any

from genonaut_monitoring import config


def _anchored(pattern: re.Pattern[str]) -> str:
    """A Python pattern for JSON Schema, which searches: anchor it at both ends."""
    return rf"\A(?:{pattern.pattern})\Z"


_STRING = {"type": "string"}
_NAME = {"type": "string", "pattern": _anchored(config.DNS_SUBDOMAIN)}
_NAMESPACE = {"type": "string", "pattern": _anchored(config.DNS_LABEL)}
_KEY = _anchored(config.QUALIFIED_NAME)
_DATA_KEY = _anchored(config.SECRET_KEY)
_BASE64 = {"type": "string", "pattern": r"\A[A-Za-z0-9+/]*={0,2}\Z"}

OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "namespace": _NAMESPACE,
        "labels": {
            "type": "object",
            "patternProperties": {
                _KEY: {"type": "string", "pattern": _anchored(config.LABEL_VALUE)}
            },
            "additionalProperties": False,
        },
        "annotations": {
            "type": "object",
            "patternProperties": {_KEY: _STRING},
            "additionalProperties": False,
        },
        # Set by the server or by other tools; listed so the schema is the whole ObjectMeta.
        "generateName": _STRING,
        "uid": _STRING,
        "resourceVersion": _STRING,
        "generation": {"type": "integer"},
        # `kubectl create --dry-run=client -o yaml` writes null here; the server takes it.
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": _STRING,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "finalizers": {"type": "array", "items": _STRING},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": _STRING,
    },
}


def _envelope(kind: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"type": "string", "enum": ["v1"]},
            "kind": {"type": "string", "enum": [kind]},
            "metadata": OBJECT_META,
            **properties,
        },
    }


def _data(values: dict[str, Any]) -> dict[str, Any]:
    """A map whose keys are ConfigMap/Secret keys (``[-._a-zA-Z0-9]+``)."""
    return {
        "type": "object",
        "patternProperties": {_DATA_KEY: values},
        "additionalProperties": False,
    }


CONFIG_MAP = _envelope(
    "ConfigMap",
    {
        "data": _data(_STRING),
        "binaryData": _data(_BASE64),
        "immutable": {"type": "boolean"},
    },
)

SECRET = _envelope(
    "Secret",
    {
        "data": _data(_BASE64),
        "stringData": _data(_STRING),
        "type": _STRING,
        "immutable": {"type": "boolean"},
    },
)

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"

KUSTOMIZATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "resources"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"type": "string", "enum": [KUSTOMIZE_API]},
        "kind": {"type": "string", "enum": ["Kustomization"]},
        "namespace": _NAMESPACE,
        "labels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pairs"],
                "additionalProperties": False,
                "properties": {
                    "pairs": OBJECT_META["properties"]["labels"],
                    "includeSelectors": {"type": "boolean"},
                    "includeTemplates": {"type": "boolean"},
                },
            },
        },
        "resources": {"type": "array", "items": _STRING, "uniqueItems": True},
    },
}
