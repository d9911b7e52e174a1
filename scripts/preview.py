#!/usr/bin/env python3
"""Render every dashboard's panels from a running Prometheus into PNGs and one HTML page.

    python -m scripts.preview                          # out/grafana/dashboards -> out-preview
    python -m scripts.preview --start -15m --out /tmp/preview --dashboards my-board.json

A dashboard change can be looked at without Grafana: open ``index.html``. Each
panel becomes ``<dashboard uid>-panel-<panel id>.png``; the page lists every
dashboard with its panels in grid order, titles, units and threshold steps.
The output folder is replaced as a whole, only once every image is drawn.
Exit status: 0 drawn; 1 a query failed (its panel shows the error) or a
dashboard could not be read; 2 Prometheus unreachable or bad arguments.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file (python scripts/preview.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genonaut_monitoring.builder import swap_into_place
from scripts import _alert_list as alert_list
from scripts import _grafana_json as gj
from scripts import _panel_render as pr
from scripts._promapi import (
    Prometheus,
    PrometheusUnreachable,
    QueryFailed,
    Window,
    add_range_options,
    join_time_options,
    parse_duration,
    rfc3339,
    scrape_interval_of,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "out-preview"


def image_name(uid: str, panel_id: int) -> str:
    """The PNG file name of a panel: stable across runs, safe on every file system."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", uid)
    return f"{safe}-panel-{panel_id}.png"


@dataclass
class PanelResult:
    """One drawn panel, for the page."""

    panel: gj.Panel
    image: str
    rendered: pr.Rendered
    exprs: list[str]
    series: int


@dataclass
class BoardResult:
    """One dashboard's drawn panels and how long they took."""

    board: gj.Dashboard
    panels: list[PanelResult] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def render_board(
    prom: Prometheus,
    board: gj.Dashboard,
    window: Window,
    scrape_interval: float,
    overrides: dict[str, list[str]],
    folder: Path,
) -> BoardResult:
    """Query and draw every panel of ``board`` into ``folder``."""
    began = time.monotonic()
    result = BoardResult(board)
    try:
        variables = gj.resolve_variables(board, prom, window, overrides)
    except QueryFailed as exc:
        result.problems.append(exc.error)
        variables = {}
    queries = gj.panel_queries(board, variables, window, scrape_interval)
    by_panel: dict[int, list[gj.PanelQuery]] = {}
    for query in queries:
        by_panel.setdefault(query.panel.id, []).append(query)
    for panel in board.panels:
        lines: list[pr.Line] = []
        error = None
        if panel.type == "alertlist":
            try:
                lines.extend(alert_list.fetch(prom, window))
            except QueryFailed as exc:
                error = f"{exc.error}\nexpression: {exc.expr}"
                result.problems.append(error)
        for query in by_panel.get(panel.id, []):
            try:
                found = gj.run(prom, query, window)
            except QueryFailed as exc:
                error = f"{exc.error}\nexpression: {query.expr}"
                result.problems.append(error)
                break
            lines.extend(
                pr.Line(query.target, s, gj.legend(query.target.legend_format, s.labels))
                for s in found
            )
        data = pr.PanelData(panel, tuple(lines), error)
        image = image_name(board.uid, panel.id)
        rendered = pr.render(data, window, folder / image)
        if rendered.kind == "error" and error is None:
            result.problems.append(
                f"dashboard {board.uid}, panel {panel.title!r} (id {panel.id}): "
                + "; ".join(rendered.notes)
            )
        exprs = [q.expr for q in by_panel.get(panel.id, [])]
        result.panels.append(PanelResult(panel, image, rendered, exprs, len(lines)))
    result.seconds = time.monotonic() - began
    return result


# --- the page ------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; background: #F4F5F5; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 4px; }
h3 { font-size: 14px; margin: 10px 0 4px; grid-column: 1 / -1; color: #555; }
.meta { color: #666; font-size: 12px; margin-bottom: 8px; }
nav a { margin-right: 12px; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); gap: 8px; grid-auto-flow: dense; }
.panel { background: white; border: 1px solid #DDD; border-radius: 3px; padding: 6px;
         min-width: 0; }
.panel h4 { margin: 0 0 2px; font-size: 13px; }
.panel .unit, .panel .facts { color: #666; font-size: 11px; }
.panel img { width: 100%; height: auto; display: block; margin-top: 4px; }
.panel details { font-size: 11px; margin-top: 4px; }
.panel code { white-space: pre-wrap; word-break: break-all; }
.error { color: #C4162A; font-size: 11px; white-space: pre-wrap; }
.swatch { display: inline-block; width: 9px; height: 9px; border-radius: 2px;
          vertical-align: middle; margin: 0 2px 0 6px; }
table.data { border-collapse: collapse; font-size: 11px; margin-top: 6px; width: 100%; }
table.data th, table.data td { border: 1px solid #DDD; padding: 2px 4px; text-align: left; }
table.data th { background: #F0F0F0; }
"""


def _thresholds_html(panel: gj.Panel) -> str:
    if not panel.steps:
        return ""
    parts = []
    for step in panel.steps:
        if step.value is None:
            at = "base"
        elif panel.threshold_mode == "percentage":
            at = f"≥ {step.value:g}%"
        else:
            at = f"≥ {pr.format_unit(step.value, panel.unit)}"
        parts.append(
            f'<span class="swatch" style="background:{pr.colour(step.color)}"></span>'
            f"{html.escape(step.color)} {html.escape(at)}"
        )
    return f'<div class="facts">thresholds:{"".join(parts)}</div>'


def _table_html(cells: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:]
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _panel_html(board: gj.Dashboard, item: PanelResult) -> str:
    panel = item.panel
    anchor = html.escape(item.image.removesuffix(".png"))
    unit = pr.unit_label(panel.unit)
    facts = f"{html.escape(panel.type)} · {item.series} series"
    notes = "".join(
        f'<div class="{"error" if item.rendered.kind == "error" else "facts"}">'
        f"{html.escape(note)}</div>"
        for note in item.rendered.notes
    )
    table = _table_html(item.rendered.table) if item.rendered.table else ""
    exprs = "".join(f"<div><code>{html.escape(e)}</code></div>" for e in item.exprs)
    title = html.escape(panel.title or "(untitled)")
    span = max(1, min(24, panel.grid.w))
    return (
        f'<div class="panel" id="{anchor}" style="grid-column: span {span}">'
        f"<h4>{title}</h4>"
        f'<div class="unit">unit: {html.escape(unit) if unit else "none"}</div>'
        f'<div class="facts">{facts}</div>'
        f"{_thresholds_html(panel)}{notes}"
        f'<img src="{html.escape(item.image)}" alt="{title}">'
        f"{table}"
        f"<details><summary>queries ({len(item.exprs)})</summary>{exprs}</details>"
        "</div>"
    )


def page(results: list[BoardResult], prometheus: str, window: Window) -> str:
    """The index.html text: every dashboard, its panels in grid order."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Dashboard preview</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Dashboard preview</h1>",
        f'<div class="meta">Prometheus {html.escape(prometheus)} · '
        f"{rfc3339(window.start)} to {rfc3339(window.end)} (UTC) · step {window.step:g}s</div>",
        "<nav>"
        + "".join(
            f'<a href="#{html.escape(r.board.uid)}">{html.escape(r.board.title)}</a>'
            for r in results
        )
        + "</nav>",
    ]
    for result in results:
        board = result.board
        out.append(f'<h2 id="{html.escape(board.uid)}">{html.escape(board.title)}</h2>')
        out.append(
            f'<div class="meta">uid {html.escape(board.uid)} · {html.escape(board.path.name)} · '
            f"{len(result.panels)} panels · rendered in {result.seconds:.2f}s</div>"
        )
        out.extend(f'<div class="error">{html.escape(p)}</div>' for p in result.problems)
        out.append('<div class="grid">')
        row = None
        for item in result.panels:
            if item.panel.row and item.panel.row != row:
                row = item.panel.row
                out.append(f"<h3>{html.escape(row)}</h3>")
            out.append(_panel_html(board, item))
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.preview",
        description="Draw every panel of every dashboard from a running Prometheus into PNG "
        "images and an index.html, so a dashboard change can be looked at without Grafana.",
        epilog="Exit status: 0 drawn; 1 a query failed (its panel shows the error) or a "
        "dashboard could not be read; 2 Prometheus unreachable or bad arguments.",
    )
    add_range_options(parser)
    parser.add_argument(
        "--dashboards",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="dashboard JSON file or folder; repeatable "
        f"(default {gj.DEFAULT_DASHBOARDS.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a dashboard variable; repeat a name for several values",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_time_options(sys.argv[1:] if argv is None else argv))
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        window = Window.parse(args.start, args.end, args.step)
        overrides = gj.parse_vars(args.var)
        scrape_option = parse_duration(args.scrape_interval) if args.scrape_interval else None
    except ValueError as exc:
        parser.error(str(exc))
    try:
        boards = gj.load_dashboards(args.dashboards or [gj.DEFAULT_DASHBOARDS])
    except gj.DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    prom = Prometheus(args.prometheus)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp makes a private folder; the preview is an ordinary one.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        version = prom.check()
        interval = scrape_interval_of(prom, scrape_option)
        say(f"Prometheus {version} at {prom.url}; {rfc3339(window.start)} .. {rfc3339(window.end)}")
        results = []
        for board in boards:
            result = render_board(prom, board, window, interval, overrides, staging)
            results.append(result)
            say(
                f"{board.uid}: {len(result.panels)} panels in {result.seconds:.2f}s"
                + (f", {len(result.problems)} failed" if result.problems else "")
            )
        (staging / "index.html").write_text(page(results, prom.url, window), encoding="utf-8")
        swap_into_place(staging, out)
    except PrometheusUnreachable as exc:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"wrote {out / 'index.html'}")
    problems = [p for r in results for p in r.problems]
    if problems:
        print(f"error: {len(problems)} queries failed (shown in their panels):", file=sys.stderr)
        for problem in problems:
            print("  " + problem.replace("\n", "\n    "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
