"""The built dashboards against Grafana 11.6's own published types (@grafana/schema@11.6.0).

tests/grafana_types/generate.py writes every dashboard as TypeScript in which
each panel is typed by its plugin's ``Options`` and ``FieldConfig``, and
``tsc --noEmit --strict`` checks it. The packages come from npm, pinned by
tests/grafana_types/package-lock.json (``make grafana-types``; ``make test`` runs it).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from genonaut_monitoring import config, dashboards
from genonaut_monitoring.dashboards import model
from tests.conftest import IN_CI, ROOT, require_tool
from tests.grafana_types import generate as gt

Board = dict[str, Any]


def _require_packages() -> None:
    require_tool("node")
    if not gt.TSC.exists():
        reason = f"{gt.TSC} is missing: run `make grafana-types` (npm ci)"
        if IN_CI:
            pytest.fail(f"CI must have the npm packages: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def built() -> dict[str, Board]:
    """Every dashboard of every profile, by file name (profiles differ only in values)."""
    boards: dict[str, Board] = {}
    for name, cfg in config.PROFILES.items():
        for path, content in dashboards.outputs(cfg).items():
            boards[f"{name}-{Path(path).name}"] = json.loads(content)
    return boards


def test_every_dashboard_panel_and_variable_conforms(
    built: dict[str, Board], tmp_path: Path
) -> None:
    _require_packages()
    result = gt.check(built, tmp_path)
    assert result.problems == []
    assert result.checked_panels == sum(len(b["panels"]) for b in built.values())
    # Generated files exist and really assign each panel to its plugin's type.
    main = (tmp_path / "default-genonaut-main.ts").read_text()
    assert 'Panels["timeseries"] = {' in main
    assert 'Panels["stat"] = {' in main


def test_panels_without_published_types_are_named_never_passed_silently(
    built: dict[str, Board], tmp_path: Path
) -> None:
    _require_packages()
    result = gt.check(built, tmp_path)
    untyped = [
        (board["uid"], panel["title"])
        for _name, board in sorted(built.items())
        for panel in board["panels"]
        if panel["type"] not in gt.TYPED
    ]
    assert len(result.untyped) == len(untyped)
    for (uid, title), note in zip(untyped, result.untyped, strict=True):
        assert note.startswith(f"{uid}: panel {title!r}"), note
    # Every panel type the build uses is either typed or listed with the reason it is not.
    kinds = {panel["type"] for board in built.values() for panel in board["panels"]}
    assert kinds <= gt.TYPED | set(gt.NOT_IN_PACKAGE)
    assert "no alert list panel types" in gt.NOT_IN_PACKAGE["alertlist"]


def _first(board: Board, kind: str) -> dict[str, Any]:
    return next(p for p in board["panels"] if p["type"] == kind)


def _misspelt_option(board: Board) -> str:
    legend = _first(board, "timeseries")["options"]["legend"]
    legend["placment"] = legend.pop("placement")
    return "placment"


def _wrong_enum_value(board: Board) -> str:
    _first(board, "stat")["options"]["colorMode"] = "valeu"
    return '"valeu"'


def _wrong_value_type(board: Board) -> str:
    _first(board, "timeseries")["fieldConfig"]["defaults"]["custom"]["fillOpacity"] = "10"
    return "Type 'string' is not assignable to type 'number'"


def _misspelt_variable_key(board: Board) -> str:
    variable = board["templating"]["list"][-1]
    variable["inculdeAll"] = variable.pop("includeAll")
    return "inculdeAll"


def _wrong_crosshair_mode(board: Board) -> str:
    board["graphTooltip"] = 3
    return "DashboardCursorSync"


MUTATIONS: dict[str, Callable[[Board], str]] = {
    "misspelt option": _misspelt_option,
    "wrong enum value": _wrong_enum_value,
    "wrong value type": _wrong_value_type,
    "misspelt variable key": _misspelt_variable_key,
    "crosshair mode out of range": _wrong_crosshair_mode,
}


def test_each_mutation_is_caught_and_named(built: dict[str, Board], tmp_path: Path) -> None:
    _require_packages()
    original = built["default-genonaut-main.json"]
    mutated, expected = {}, {}
    for label, mutate in MUTATIONS.items():
        name = label.replace(" ", "-") + ".json"
        board = copy.deepcopy(original)
        expected[name] = mutate(board)
        mutated[name] = board
    result = gt.check(mutated, tmp_path)
    for name, text in expected.items():
        found = [p for p in result.problems if p.startswith(f"{name}, ")]
        assert len(found) == 1, (name, result.problems)
        assert text in found[0], found[0]
    # The problem names the panel it is in.
    assert "panel 'Requests per second' (stat, id 1)" in next(
        p for p in result.problems if p.startswith("wrong-enum-value.json")
    )


def test_the_lock_file_pins_the_packages_the_check_names() -> None:
    lock = json.loads((ROOT / "tests/grafana_types/package-lock.json").read_text())
    packages = lock["packages"]
    assert packages["node_modules/@grafana/schema"]["version"] == "11.6.0"
    assert gt.SCHEMA_PACKAGE == "@grafana/schema@11.6.0"
    assert packages["node_modules/typescript"]["version"] == "5.7.3"
    for entry in packages.values():
        if "version" in entry and entry is not packages[""]:
            assert entry.get("integrity", "").startswith("sha512-"), entry


def test_the_schema_version_is_the_one_the_package_defaults_to() -> None:
    _require_packages()
    source = (
        gt.NODE_MODULES / "@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen.mjs"
    ).read_text()
    match = re.search(r"schemaVersion: (\d+),", source)
    assert match is not None
    assert int(match.group(1)) == model.SCHEMA_VERSION
    for kind in sorted(gt.TYPED):
        folder = gt.NODE_MODULES / "@grafana/schema/dist/esm/raw/composable"
        found = list(folder.glob(f"{kind.replace('-', '')}/panelcfg/x/*_types.gen.d.ts"))
        assert len(found) == 1, kind
        # The package was cut from the 11.6.0 pre-release: the same plugin versions.
        assert 'pluginVersion = "11.6.0-pre"' in found[0].read_text(), kind
        assert model.PLUGIN_VERSION == "11.6.0"
