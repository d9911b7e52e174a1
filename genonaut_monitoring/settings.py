"""An adopter's config file: TOML that overrides the shipped settings, checked key by key.

Every section and key of :class:`~genonaut_monitoring.config.Config` can be
set; anything left out keeps the value of the profile the build starts from.
``[profiles.<name>]`` holds overrides that apply to that profile only (say, the
compose-network address of the app)::

    [[services]]
    name = "genonaut-api"          # the Prometheus job
    targets = ["localhost:8001"]
    [thresholds]
    error_ratio = 0.02
    [kubernetes]
    release_labels = { release = "prom" }   # a table of labels replaces the shipped one
    [profiles.compose]
    services = [{ name = "genonaut-api", targets = ["host.docker.internal:8001"] }]

    >>> cfg = load(Path("monitoring.toml"), "default")  # doctest: +SKIP

A wrong file raises :class:`SettingsError` with one line per problem, each
naming the file, the key and what is allowed, before anything is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genonaut_monitoring import config
from genonaut_monitoring.config import Config, Rule

PROFILES_KEY = "profiles"


class SettingsError(ValueError):
    """The config file cannot be used; ``problems`` says where and what to do, one per line."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = [f"{path}: {problem}" for problem in problems]
        super().__init__("\n".join(self.problems))


def load(path: Path, profile: str = "default") -> Config:
    """The ``profile`` with ``path``'s settings applied; raise SettingsError if any is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(path, [f"is not UTF-8 text: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, [f"is not valid TOML: {exc}"]) from None
    return apply(config.profile(profile), data, path, profile)


def apply(base: Config, data: Mapping[str, Any], path: Path, profile: str) -> Config:
    """``base`` overridden by ``data`` (a parsed file), then by ``data["profiles"][profile]``."""
    problems: list[str] = []
    overrides = dict(data)
    per_profile = overrides.pop(PROFILES_KEY, {})
    if not isinstance(per_profile, Mapping):
        problems.append(
            f"{PROFILES_KEY}: must be a table of profile tables, such as [profiles.compose]"
        )
        per_profile = {}
    unknown = sorted(set(per_profile) - set(config.PROFILES))
    for name in unknown:
        problems.append(
            f"{PROFILES_KEY}.{name}: unknown profile{_nearest(name, config.PROFILES)}; "
            f"profiles: {', '.join(sorted(config.PROFILES))}"
        )
    cfg = _merge(base, overrides, "", problems)
    extra = per_profile.get(profile)
    if extra is not None:
        if isinstance(extra, Mapping):
            cfg = _merge(cfg, extra, f"{PROFILES_KEY}.{profile}.", problems)
        else:
            problems.append(f"{PROFILES_KEY}.{profile}: must be a table")
    problems.extend(_whole_config_problems(cfg))
    if problems:
        raise SettingsError(path, problems)
    return cfg


# --- one dataclass at a time ---------------------------------------------------------


def _merge(current: Any, table: Any, where: str, problems: list[str]) -> Any:
    """A copy of dataclass ``current`` with ``table``'s keys converted and checked."""
    changes = _fields(type(current), table, where, problems, current)
    return dataclasses.replace(current, **changes) if changes else current


def _new(cls: Any, table: Any, where: str, problems: list[str]) -> Any:
    """A dataclass (a service) made from a table: every required key present, none unknown."""
    count = len(problems)
    values = _fields(cls, table, f"{where}.", problems, None)
    for f in dataclasses.fields(cls):
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        # A key given with a bad value is reported as bad already, not also as missing.
        if no_default and isinstance(table, Mapping) and f.name not in table:
            problems.append(f"{where}.{f.name}: required")
    return _INVALID if len(problems) > count else cls(**values)


def _fields(
    cls: Any, table: Any, where: str, problems: list[str], current: Any | None
) -> dict[str, Any]:
    """``table``'s keys as values for dataclass ``cls``; ``current`` fills nested sections."""
    if not isinstance(table, Mapping):
        problems.append(f"{where.rstrip('.')}: must be a table, not {_show(table)}")
        return {}
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "profile"]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            problems.append(
                f"{where}{key}: unknown key{_nearest(key, names)}; "
                f"{where.rstrip('.') or 'the top level'} takes {', '.join(names)}"
            )
            continue
        old = getattr(current, key) if current is not None else None
        if dataclasses.is_dataclass(old) and not isinstance(old, type):
            values[key] = _merge(old, value, f"{where}{key}.", problems)
        elif isinstance(old, dict) and not _is_table_type(hints[key]):
            values[key] = _merge_dict(old, value, f"{where}{key}", problems)
        else:
            converted = _convert(value, hints[key], f"{where}{key}", problems)
            if converted is not _INVALID:
                values[key] = converted
    return values


def _merge_dict(old: dict[str, str], table: Any, where: str, problems: list[str]) -> dict[str, str]:
    """A string table such as dashboard uids: the keys given replace those values only."""
    if not isinstance(table, Mapping):
        problems.append(f"{where}: must be a table, not {_show(table)}")
        return old
    merged = dict(old)
    for key, value in table.items():
        if key not in old:
            problems.append(
                f"{where}.{key}: unknown key{_nearest(key, old)}; {where} takes {', '.join(old)}"
            )
        elif not isinstance(value, str):
            problems.append(f"{where}.{key}: must be a string, not {_show(value)}")
        else:
            merged[key] = value
    return merged


_INVALID: Any = object()


def _convert(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """``value`` from TOML as the type ``hint`` says, or _INVALID with a problem recorded."""
    rule: Rule | None = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        rule = next((e for e in extras if isinstance(e, Rule)), None)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None: None is spelt by leaving it out
        hint = next(a for a in args if a is not type(None))
        return _convert(value, hint, where, problems)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{where}: must be a list, not {_show(value)}")
            return _INVALID
        items = [_convert(v, args[0], f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return _INVALID if any(item is _INVALID for item in items) else tuple(items)
    if dataclasses.is_dataclass(hint):
        return _new(hint, value, where, problems)
    if origin is dict:  # a free table such as Kubernetes labels: the file's replaces ours
        if not isinstance(value, Mapping):
            problems.append(f"{where}: must be a table, not {_show(value)}")
            return _INVALID
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        for key in bad:
            problems.append(f"{where}.{key}: must be a string, not {_show(value[key])}")
        if bad:
            return _INVALID
        if rule is not None and not rule.accepts(dict(value)):
            problems.append(f"{where}: {_show_table(value)} is not {rule.allowed}")
            return _INVALID
        return dict(value)
    if not _is_instance(value, hint):
        problems.append(f"{where}: must be {_TYPE_WORDS[hint]}, not {_show(value)}")
        return _INVALID
    if rule is not None and not rule.accepts(value):
        problems.append(f"{where}: {_show(value)} is not {rule.allowed}")
        return _INVALID
    return float(value) if hint is float else value


def _is_table_type(hint: Any) -> bool:
    """Whether ``hint`` is a free table (a rule-checked ``dict``), not one with fixed keys."""
    if typing.get_origin(hint) is not typing.Annotated:
        return False
    inner = typing.get_args(hint)[0]
    return typing.get_origin(inner) is dict


def _show_table(table: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k!r} = {v!r}" for k, v in table.items()) + "}"


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is float:  # TOML 1 and 1.0 are both numbers here; true is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


_TYPE_WORDS = {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _nearest(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- the whole, once merged --------------------------------------------------------


def _whole_config_problems(cfg: Config) -> list[str]:
    """Rules that span keys: unique service names, one service at least, SLOs, uid lengths."""
    problems = []
    if not cfg.services:
        problems.append("services: needs at least one [[services]] entry (name, targets)")
    seen: dict[str, int] = {}
    for index, service in enumerate(cfg.services):
        if service.name in seen:
            problems.append(
                f"services[{index}].name: {service.name!r} is also services[{seen[service.name]}]"
                ".name; each service is its own Prometheus job and needs its own name"
            )
        seen.setdefault(service.name, index)
        if not service.targets:
            problems.append(f"services[{index}].targets: needs at least one host:port")
    # SLOs: services that exist, thresholds on bucket boundaries, windows that fit.
    from genonaut_monitoring.alerts import slo

    problems.extend(slo.problems(cfg))
    for key, uid in sorted(cfg.grafana.dashboard_uids.items()):
        if not 0 < len(uid) <= 40:
            problems.append(
                f"grafana.dashboard_uids.{key}: {uid!r} must be 1 to 40 characters long"
            )
    return problems
