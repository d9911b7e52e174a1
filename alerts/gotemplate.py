"""The named templates of a Go-template file, and which ones a set of calls needs.

Alertmanager and Grafana read the same notification templates, but Grafana uses
only some of them; :func:`needed` picks those (and what they call in turn) so
Grafana is not provisioned templates nothing of its own calls.

    >>> text = '{{ define "a" }}{{ if .X }}{{ template "b" . }}{{ end }}{{ end }}'
    >>> text += '{{ define "b" }}b{{ end }}{{ define "c" }}c{{ end }}'
    >>> [d.name for d in needed(defines(text), ['{{ template "a" . }}'])]
    ['a', 'b']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# One action: {{ ... }} with optional trim markers. A comment is one action up to its
# */}}, whatever braces it quotes ({{/* like {{ this }} */}}).
_ACTION = re.compile(r"\{\{-?\s*(?P<body>/\*.*?\*/|.*?)\s*-?\}\}", re.S)
_CALL = re.compile(r'\btemplate\s+"(?P<name>[^"]+)"')
_DEFINE = re.compile(r'^define\s+"(?P<name>[^"]+)"$')
# Actions that open a block closed by {{ end }}.
_OPENERS = ("if", "range", "with", "block", "define")


@dataclass(frozen=True)
class Define:
    """One ``{{ define "name" }}...{{ end }}`` block: its text and the templates it calls."""

    name: str
    text: str
    calls: tuple[str, ...]


def calls(text: str) -> list[str]:
    """Names of the templates ``text`` calls with ``{{ template "name" . }}``."""
    return [
        m["name"]
        for a in _ACTION.finditer(text)
        if not a["body"].startswith("/*")
        for m in _CALL.finditer(a["body"])
    ]


def defines(text: str) -> dict[str, Define]:
    """Every top-level define block of ``text``, by name, in file order."""
    found: dict[str, Define] = {}
    depth = 0
    name, start = "", 0
    for action in _ACTION.finditer(text):
        body = action["body"]
        if body.startswith("/*"):
            continue
        word = body.split(maxsplit=1)[0] if body else ""
        if word in _OPENERS:
            if depth == 0:
                match = _DEFINE.match(body)
                if match is None:
                    raise ValueError(f"{body!r} outside a define block")
                name, start = match["name"], action.start()
            depth += 1
        elif word == "end":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{{{{ end }}}} without a block at offset {action.start()}")
            if depth == 0:
                block = text[start : action.end()]
                found[name] = Define(name, block, tuple(dict.fromkeys(calls(block))))
    if depth:
        raise ValueError(f"define {name!r} is never closed")
    return found


def needed(blocks: Mapping[str, Define], users: Iterable[str]) -> list[Define]:
    """The blocks the ``users`` texts call, directly or through each other, in file order."""
    wanted: set[str] = set()
    todo = [name for text in users for name in calls(text)]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in blocks:
            raise ValueError(f"template {name!r} is called but never defined")
        wanted.add(name)
        todo.extend(blocks[name].calls)
    return [block for name, block in blocks.items() if name in wanted]
