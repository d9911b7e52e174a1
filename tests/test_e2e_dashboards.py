"""Every query of every dashboard panel returns data from a real Prometheus scraping the demo API
and postgres_exporter.

The demo API runs with fault routes and every query counted as slow; a short,
bounded load on 127.0.0.1 exercises each series the panels read. Template
variables are resolved the way Grafana does it: label_values() against the
same Prometheus, "All" as a regex of every value.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from genonaut_monitoring import config, pgstack
from genonaut_monitoring.dashboards.checks import BUILTIN_VARIABLES
from genonaut_monitoring.stack import Stack
from tests.conftest import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

CFG = config.TEST_CONFIG
LOAD_SECONDS = 12.0
# Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval).
STEP_SECONDS = 1
SCRAPE_SECONDS = 1
RATE_INTERVAL = f"{max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"
CONTENT = "/api/v1/content"
TELEMETRY = {
    "caches": [{"cache": "content-pages", "hits": 3, "misses": 1}],
    "prefetch": [{"cache": "content-pages", "used": 2, "wasted": 1}],
}


def one_round(client: httpx.Client, round_no: int) -> None:
    """One pass over everything the panels need; asserts each response's status."""

    def get(path: str, expected: int = 200, **params: Any) -> httpx.Response:
        response = client.get(path, params=params)
        assert response.status_code == expected, (path, params, response.text[:200])
        return response

    for page in (1, 2, 5):
        for size in (10, 25, 50, 100, 200):
            get(CONTENT, page=page, page_size=size)
    # Offsets across the ranges, including deep ones (the seed has 20000 rows).
    for skip in (0, 150, 5_000, 15_000):
        get(CONTENT, skip=skip, limit=50)
    cursor = None
    for _ in range(4):
        body = get(f"{CONTENT}/cursor", limit=50, **({"cursor": cursor} if cursor else {})).json()
        cursor = body["pagination"]["next_cursor"]
    for item in range(1, 11):
        get(f"{CONTENT}/{item + 10 * (round_no % 3)}")  # repeats: item cache hits and misses
    get(f"{CONTENT}/1999999999", expected=404)
    response = client.post("/api/v1/telemetry/frontend", json=TELEMETRY)
    assert response.status_code == 204, response.text


def faulty_round(client: httpx.Client) -> None:
    """Requests while the fault routes fail about half of them with 500 (some by raising)."""
    settings = {
        "error_rate": 0.4,
        "exception_rate": 0.3,
        "latency_seconds": 0.0,
        "route_prefix": CONTENT,
    }
    assert client.put("/debug/faults", json=settings).status_code == 200
    try:
        # uvicorn closes a connection whose request raised: one connection per request.
        close = {"Connection": "close"}
        statuses = {
            client.get(CONTENT, params={"page": 1}, headers=close).status_code for _ in range(20)
        }
    finally:
        assert client.delete("/debug/faults").status_code == 200
    assert 500 in statuses


def run_load(api_url: str) -> None:
    """LOAD_SECONDS of traffic, bounded: at most 40 rounds of about 60 requests."""
    deadline = time.monotonic() + LOAD_SECONDS
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for round_no in range(40):
            one_round(client, round_no)
            if round_no % 3 == 0:
                faulty_round(client)
            if time.monotonic() > deadline:
                return


# --- Grafana's side: variables and queries ------------------------------------------


def prom(stack: Stack, path: str, **params: Any) -> Any:
    response = requests.get(f"{stack.prometheus_url}{path}", params=params, timeout=30)
    assert response.status_code == 200, (path, params, response.text[:300])
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def regex_escape(value: str) -> str:
    """Grafana's escaping of a value inside a Prometheus regex (within a PromQL string)."""
    return re.sub(r"[\\^$*+?.()|{}\[\]]", lambda m: "\\\\" + m.group(0), value)


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(filter(None, match.groups()))
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, text)


def resolve_variables(
    stack: Stack, board: dict[str, Any], start: float, end: float
) -> dict[str, str]:
    """Each variable's value as Grafana would substitute it, from label_values queries."""
    values = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": f"{STEP_SECONDS}s",
        "__range": f"{math.ceil(end - start)}s",
    }
    assert set(values) <= set(BUILTIN_VARIABLES)
    for variable in board["templating"]["list"]:
        name = variable["name"]
        if variable["type"] == "datasource":
            values[name] = CFG.grafana.prometheus_uid
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = substitute(match[1], values), match[2]
        found = prom(
            stack, f"/api/v1/label/{label}/values", **{"match[]": selector}, start=start, end=end
        )
        assert found, f"{board['uid']}: variable ${name} ({variable['query']}) has no values"
        if variable.get("includeAll"):
            values[name] = "(" + "|".join(regex_escape(v) for v in found) + ")"
        else:
            assert variable["current"]["value"] in found, (name, found)
            values[name] = variable["current"]["value"]
    return values


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one finite sample: what Grafana needs to draw something but "No data"."""
    samples = [v for series in result for v in series.get("values", [series.get("value")])]
    return any(math.isfinite(float(value)) for _, value in samples)


def panel_queries(stack: Stack, start: float, end: float) -> list[tuple[str, str, str, bool]]:
    """Every (dashboard, panel, expression with variables resolved, instant) to run."""
    queries = []
    for path in sorted((stack.out / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        values = resolve_variables(stack, board, start, end)
        for panel in board["panels"]:
            targets = panel.get("targets", [])
            if not targets:
                assert panel["type"] == "alertlist", f"{panel['title']} has no queries"
                continue
            for target in targets:
                expr = substitute(target["expr"], values)
                queries.append((board["uid"], panel["title"], expr, target["instant"]))
    return queries


def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    for tool in ("prometheus", "prometheus-postgres-exporter", "initdb"):
        require_tool(tool)
    api_env = {"DEMO_FAULTS": "1", "SLOW_QUERY_SECONDS": "0", "DEMO_SEED_ROWS": "20000"}
    # The demo on the stack's own PostgreSQL, which postgres_exporter watches: the
    # PostgreSQL dashboard's panels need data as much as the others.
    components = {"api", "prometheus", *pgstack.COMPONENTS}
    with Stack(tmp_path, cfg=CFG, components=components, api_env=api_env) as stack:
        start = time.time()
        stack.wait_for(lambda: stack.query('up{job="genonaut-api"} == 1'), 30, "first API scrape")
        run_load(stack.api_url)
        loaded = stack.query(f"sum(http_requests_total{{job={json.dumps(CFG.jobs[0])}}})")
        total = float(loaded[0]["value"][1]) if loaded else 0.0
        # Two more scrapes, so the last requests are in Prometheus too.
        time.sleep(3 * SCRAPE_SECONDS)
        end = time.time()
        assert total > 100, f"the load reached Prometheus with only {total} requests"

        queries = panel_queries(stack, start, end)
        assert len(queries) >= 40
        empty = []
        for uid, title, expr, instant in queries:
            if instant:
                data = prom(stack, "/api/v1/query", query=expr, time=end)
            else:
                data = prom(
                    stack,
                    "/api/v1/query_range",
                    query=expr,
                    start=start,
                    end=end,
                    step=STEP_SECONDS,
                )
            if not has_data(data["result"]):
                empty.append(f"{uid} / {title}: No data for {expr}")
        assert empty == [], "panels without data:\n" + "\n".join(empty)
