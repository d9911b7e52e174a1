"""The metrics middleware: route labels, statuses, exceptions, in-progress, faults, request ids."""

from __future__ import annotations

import asyncio
import logging
import random
import string
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import PlainTextResponse
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

import genonaut_monitoring.exporters
from benchmarks.asgi import AsgiDriver
from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue, context, instrument
from genonaut_monitoring.exporters.catalogue import OTHER, UNMATCHED_ROUTE
from tests.apps.driver import get, request, websocket_echo


def requests_total(
    registry: CollectorRegistry, method: str, route: str, status: str
) -> float | None:
    labels = {"method": method, "route": route, "status": status}
    return registry.get_sample_value("http_requests_total", labels)


def series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


def items_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 404:
            raise HTTPException(404, "no such item")
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("broken handler")

    return app


def test_requests_are_labelled_by_route_template_and_timed(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    responses = get(app, "/items/1", "/items/2", "/items/3")
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 3
    duration = {"method": "GET", "route": "/items/{item_id}"}
    assert registry.get_sample_value("http_request_duration_seconds_count", duration) == 3
    bucket = {**duration, "le": "+Inf"}
    assert registry.get_sample_value("http_request_duration_seconds_bucket", bucket) == 3
    # In-process requests take far less than ten seconds: all three sit in the 10s bucket.
    assert (
        registry.get_sample_value(
            "http_request_duration_seconds_bucket", {**duration, "le": "10.0"}
        )
        == 3
    )
    assert (registry.get_sample_value("http_request_duration_seconds_sum", duration) or 0) > 0
    assert [labels["route"] for labels in series(registry, "http_requests_total")] == [
        "/items/{item_id}"
    ]


def test_handler_http_errors_keep_their_route(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    assert get(app, "/items/404")[0].status_code == 404
    assert get(app, "/items/abc")[0].status_code == 422
    assert requests_total(registry, "GET", "/items/{item_id}", "404") == 1
    assert requests_total(registry, "GET", "/items/{item_id}", "422") == 1


def test_included_router_prefix_is_part_of_the_template(registry: CollectorRegistry) -> None:
    app = FastAPI()
    inner = APIRouter()

    @inner.get("/content/{item_id}")
    def content(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(inner, prefix="/api/v1")
    app.include_router(inner, prefix="/api/v2")
    instrument(app, registry=registry)
    get(app, "/api/v1/content/7", "/api/v2/content/8", "/api/v2/content/9")
    assert requests_total(registry, "GET", "/api/v1/content/{item_id}", "200") == 1
    assert requests_total(registry, "GET", "/api/v2/content/{item_id}", "200") == 2


def test_mounted_app_routes_carry_the_mount_prefix(registry: CollectorRegistry) -> None:
    app = FastAPI()
    sub = FastAPI()

    @sub.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    app.mount("/admin", sub)
    instrument(app, registry=registry)
    responses = get(app, "/admin/things/a", "/admin/things/b", "/admin/nothing-here")
    assert [r.status_code for r in responses] == [200, 200, 404]
    assert requests_total(registry, "GET", "/admin/things/{name}", "200") == 2
    assert requests_total(registry, "GET", UNMATCHED_ROUTE, "404") == 1


def test_server_root_path_is_not_taken_for_a_mount(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    # Behind a proxy that strips /prefix, the server passes root_path="/prefix".
    assert get(app, "/prefix/items/5", root_path="/prefix")[0].status_code == 200
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 1


def test_ten_thousand_random_paths_add_no_series(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    rng = random.Random(7)
    paths = [
        "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=rng.randint(1, 30)))
        for _ in range(10_000)
    ]
    paths = [p.rstrip("/") + "x" for p in paths]  # no trailing slash: no redirect
    responses = get(app, *paths)
    assert {r.status_code for r in responses} == {404}
    assert series(registry, "http_requests_total") == [
        {"method": "GET", "route": UNMATCHED_ROUTE, "status": "404"}
    ]
    assert requests_total(registry, "GET", UNMATCHED_ROUTE, "404") == 10_000
    assert len(series(registry, "http_request_duration_seconds_count")) == 1


def test_slash_redirects_fold_into_unmatched(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    response = get(app, "/items/3/", follow_redirects=False)[0]
    assert response.status_code == 307
    assert requests_total(registry, "GET", UNMATCHED_ROUTE, "307") == 1


def test_unknown_methods_fold_into_other(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    assert request(app, "BREW", "/items/1").status_code == 405
    assert request(app, "DELETE", "/items/1").status_code == 405
    assert requests_total(registry, OTHER, "/items/{item_id}", "405") == 1
    assert requests_total(registry, "DELETE", "/items/{item_id}", "405") == 1


def test_unhandled_exception_counts_as_500_and_still_answers_500(
    registry: CollectorRegistry,
) -> None:
    app = items_app()
    instrument(app, registry=registry)
    response = get(app, "/boom")[0]
    assert response.status_code == 500
    assert requests_total(registry, "GET", "/boom", "500") == 1
    labels = {"method": "GET", "route": "/boom", "exception": "ValueError"}
    assert registry.get_sample_value("http_exceptions_total", labels) == 1
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0
    # A server running the app sees the exception too (it logs it and answers 500).
    with pytest.raises(ValueError, match="broken handler"):
        get(app, "/boom", raise_app_exceptions=True)
    assert requests_total(registry, "GET", "/boom", "500") == 2


def test_in_progress_counts_the_running_request_and_returns_to_zero(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    seen: list[float | None] = []

    @app.get("/inside")
    async def inside() -> dict[str, bool]:
        seen.append(registry.get_sample_value("http_requests_in_progress", {"method": "GET"}))
        return {"ok": True}

    instrument(app, registry=registry)
    get(app, "/inside", "/inside")
    assert seen == [1.0, 1.0]
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


def test_metrics_endpoint_serves_the_registry_and_is_not_measured(
    registry: CollectorRegistry,
) -> None:
    app = items_app()
    instrument(app, registry=registry)
    get(app, "/items/1")
    responses = get(app, "/metrics", "/metrics", "/metrics")
    body = responses[-1].text
    assert responses[-1].headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 1.0' in body
    assert "/metrics" not in body
    assert "_created" not in body
    assert "process_cpu_seconds_total" in body
    assert series(registry, "http_requests_total") == [
        {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    ]
    # The registry itself still has its created samples: only the endpoint drops them.
    assert registry.get_sample_value(
        "http_requests_created", {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    )


def test_excluded_paths_are_not_measured(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry, excluded_paths=("/items/1",))
    get(app, "/items/1", "/items/2")
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 1


def test_websocket_scopes_pass_through_unmeasured(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    instrument(app, registry=registry)
    sent = asyncio.run(websocket_echo(app, "/ws", "ping"))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "ping"
    assert series(registry, "http_requests_total") == []


def test_a_failing_metric_never_fails_the_request(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = items_app()
    instrumentation = instrument(app, registry=registry)
    monkeypatch.setattr(context, "_last_fault", -context.FAULT_LOG_INTERVAL)

    def broken(self: object, amount: float = 1.0) -> None:
        raise RuntimeError("collector is broken")

    histogram = instrumentation.metrics[catalogue.HTTP_REQUEST_DURATION]
    child_class = type(histogram.labels("GET", "/items/{item_id}"))
    monkeypatch.setattr(child_class, "observe", broken)
    with caplog.at_level(logging.ERROR, logger="genonaut_monitoring.exporters"):
        responses = get(app, "/items/1", "/items/2", "/items/3")
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.json() for r in responses] == [{"id": 1}, {"id": 2}, {"id": 3}]
    faults = [r for r in caplog.records if r.name == "genonaut_monitoring.exporters"]
    assert len(faults) == 1  # rate-limited: one line, not one per request
    assert "metrics recording failed in MetricsMiddleware" in faults[0].getMessage()
    assert faults[0].exc_info is not None
    assert "collector is broken" in str(faults[0].exc_info[1])
    # The counter ran before the failing histogram; the gauge came back down.
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 3
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


def test_a_failing_gauge_at_request_start_never_fails_the_request(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = items_app()
    instrumentation = instrument(app, registry=registry)
    monkeypatch.setattr(context, "_last_fault", -context.FAULT_LOG_INTERVAL)
    gauge = instrumentation.metrics[catalogue.HTTP_REQUESTS_IN_PROGRESS]

    def broken(self: object, amount: float = 1.0) -> None:
        raise RuntimeError("gauge is broken")

    monkeypatch.setattr(type(gauge.labels("GET")), "inc", broken)
    with caplog.at_level(logging.ERROR, logger="genonaut_monitoring.exporters"):
        response = get(app, "/items/1")[0]
    assert (response.status_code, response.json()) == (200, {"id": 1})
    faults = [r.getMessage() for r in caplog.records if r.name == "genonaut_monitoring.exporters"]
    assert len(faults) == 1
    assert faults[0].startswith("metrics recording failed in MetricsMiddleware (start);")
    # The rest of the request is still recorded, and the gauge is not decremented
    # for an increment that never happened.
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 1
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


def test_request_id_is_echoed_when_safe_and_generated_otherwise(
    registry: CollectorRegistry,
) -> None:
    app = items_app()
    instrument(app, registry=registry)
    given = get(app, "/items/1", headers={"X-Request-ID": "abc-123.def:9_Z"})[0]
    assert given.headers["x-request-id"] == "abc-123.def:9_Z"
    for bad in (b"x" * 129, b"has space", b"semi;colon", "ünicode".encode(), b""):
        echoed = get(app, "/items/1", headers={"X-Request-ID": bad})[0].headers["x-request-id"]
        assert echoed.encode() != bad
        assert len(echoed) == 32 and set(echoed) <= set("0123456789abcdef")
    first, second = get(app, "/items/1", "/nowhere")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert len(second.headers.get_list("x-request-id")) == 1


def test_one_registry_shared_by_two_apps_reuses_its_collectors(
    registry: CollectorRegistry,
) -> None:
    first, second = items_app(), items_app()
    one = instrument(first, registry=registry)
    two = instrument(second, registry=registry)
    assert one.metrics is two.metrics
    get(first, "/items/1")
    get(second, "/items/1")
    assert requests_total(registry, "GET", "/items/{item_id}", "200") == 2


def test_default_registry_can_be_instrumented_twice() -> None:
    one, two = instrument(items_app()), instrument(items_app())
    assert one.registry is REGISTRY and two.registry is REGISTRY
    assert one.metrics is two.metrics


def test_instrumenting_one_app_twice_is_refused(registry: CollectorRegistry) -> None:
    app = items_app()
    instrument(app, registry=registry)
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument(app, registry=registry)


def test_custom_registry_gets_process_metrics(registry: CollectorRegistry) -> None:
    instrument(items_app(), registry=registry)
    # This process has run the test suite so far: it has used CPU and holds memory.
    assert (registry.get_sample_value("process_cpu_seconds_total") or 0) > 0
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 1_000_000


def test_engine_is_handed_to_the_database_listeners(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    calls: list[tuple[object, float, str | None]] = []
    fake_db = types.ModuleType("genonaut_monitoring.exporters.db")

    tagged: list[bool] = []

    def instrument_engine(
        engine: object,
        *,
        metrics: object,
        slow_query_seconds: float,
        name: str | None = None,
        sql_comments: bool = False,
    ) -> None:
        calls.append((engine, slow_query_seconds, name))
        tagged.append(sql_comments)

    fake_db.instrument_engine = instrument_engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "genonaut_monitoring.exporters.db", fake_db)
    monkeypatch.setattr(genonaut_monitoring.exporters, "db", fake_db, raising=False)
    instrument(items_app(), registry=registry, engine="engine-a", slow_query_seconds=0.5)
    instrument(items_app(), registry=registry, engine=["b", "c"])
    instrument(items_app(), registry=registry, engine={"reads": "d"})
    default = config.CONFIG.thresholds.slow_query_seconds
    assert calls == [
        ("engine-a", 0.5, None),
        ("b", default, None),
        ("c", default, None),
        ("d", default, "reads"),
    ]
    # Statement tagging is off unless asked for.
    assert tagged == [False] * 4
    instrument(items_app(), registry=registry, engine="e", sql_comments=True)
    assert tagged[-1] is True


# --- Labels are templates, series are capped ------------------------------------------


def org_app(tmp_path: Path) -> FastAPI:
    """A sub-app mounted under a path parameter, StaticFiles, and a plain Starlette route."""
    app = FastAPI()
    sub = FastAPI()

    @sub.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        return {"hello": name}

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("plain")

    app.mount("/orgs/{org}/api", sub)
    (tmp_path / "logo.txt").write_text("logo")
    app.mount("/static", StaticFiles(directory=tmp_path))
    app.add_route("/plain", plain)
    return app


def test_mounted_apps_are_labelled_by_their_templates(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    app = org_app(tmp_path)
    instrument(app, registry=registry)
    responses = get(
        app,
        "/orgs/acme/api/hello/bob",
        "/orgs/globex/api/hello/alice",
        "/orgs/acme/api/nothing-here",
        "/static/logo.txt",
        "/static/missing.txt",
        "/plain",
    )
    assert [r.status_code for r in responses] == [200, 200, 404, 200, 404, 200]
    assert requests_total(registry, "GET", "/orgs/{org}/api/hello/{name}", "200") == 2
    assert requests_total(registry, "GET", UNMATCHED_ROUTE, "404") == 1
    assert requests_total(registry, "GET", "/static", "200") == 1
    assert requests_total(registry, "GET", "/static", "404") == 1
    assert requests_total(registry, "GET", "/plain", "200") == 1


def test_one_sub_app_mounted_twice_gets_each_mounts_template(registry: CollectorRegistry) -> None:
    app = FastAPI()
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    app.mount("/v1", sub)
    app.mount("/v2/{tenant}", sub)
    instrument(app, registry=registry)
    get(app, "/v1/items/1", "/v2/acme/items/2", "/v2/globex/items/3")
    assert requests_total(registry, "GET", "/v1/items/{item_id}", "200") == 1
    assert requests_total(registry, "GET", "/v2/{tenant}/items/{item_id}", "200") == 2


def exposed_series(registry: CollectorRegistry) -> int:
    return sum(
        1
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    )


def test_twenty_thousand_orgs_add_no_series(registry: CollectorRegistry, tmp_path: Path) -> None:
    app = org_app(tmp_path)
    instrument(app, registry=registry)
    get(app, "/orgs/first/api/hello/x")
    before = exposed_series(registry)

    async def hostile() -> set[int]:
        # The raw in-process driver: 20,000 requests through httpx would take half a minute.
        driver = AsgiDriver(app)
        return {(await driver.get(f"/orgs/org-{n}/api/hello/n{n}"))[0] for n in range(20_000)}

    assert asyncio.run(hostile()) == {200}
    assert exposed_series(registry) == before
    assert requests_total(registry, "GET", "/orgs/{org}/api/hello/{name}", "200") == 20_001


def test_past_its_series_cap_a_metric_folds_new_routes_into_other_and_counts_them(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    for n in range(6):
        app.add_api_route(f"/r{n}", lambda: {"ok": True}, methods=["GET"], name=f"r{n}")
    duration = catalogue.HTTP_REQUEST_DURATION
    # Room for exactly three duration children: the fourth route and later fold.
    instrument(app, registry=registry, max_series_per_metric=3 * duration.series_per_child)
    get(app, *(f"/r{n}" for n in range(6)), "/r5")
    routes = {labels["route"] for labels in series(registry, "http_request_duration_seconds_count")}
    assert routes == {"/r0", "/r1", "/r2", OTHER}
    assert (
        registry.get_sample_value(
            "http_request_duration_seconds_count", {"method": "GET", "route": OTHER}
        )
        == 4
    )
    folded = {"metric": duration.name}
    assert registry.get_sample_value("metrics_folded_samples_total", folded) == 4
    # The counter has room for many more series: nothing of it folded.
    assert requests_total(registry, "GET", "/r5", "200") == 2
    assert (
        registry.get_sample_value(
            "metrics_folded_samples_total", {"metric": catalogue.HTTP_REQUESTS.name}
        )
        == 0
    )


# --- A client that leaves -----------------------------------------------------------------


class Report(BaseModel):
    hits: int


def half_a_body(app: FastAPI, path: str) -> list[MutableMapping[str, Any]]:
    """Send ``{`` of a 50-byte body, then disconnect; what the app sent back."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"content-length", b"50"), (b"content-type", b"application/json"),
                    (b"host", b"t")],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_that_leaves_before_the_response_is_499_and_no_exception(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/reports")
    async def reports(report: Report) -> int:
        return report.hits

    instrument(app, registry=registry)
    # At the access logger itself: configure_logging() elsewhere may have set its level.
    with caplog.at_level(logging.DEBUG, logger="genonaut_monitoring.access"):
        # The handler reads the body itself: ClientDisconnect reaches the middleware.
        assert half_a_body(app, "/upload") == []
        # FastAPI reads the body: it answers 400 to a client that is gone.
        assert [m["type"] for m in half_a_body(app, "/reports")][:1] == ["http.response.start"]
    assert requests_total(registry, "POST", "/upload", "499") == 1
    assert requests_total(registry, "POST", "/reports", "499") == 1
    assert {labels["status"] for labels in series(registry, "http_requests_total")} == {"499"}
    assert series(registry, "http_exceptions_total") == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("client disconnected" in r.getMessage() for r in caplog.records)


def test_routes_added_after_the_first_request_get_their_full_template(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()
    sub = FastAPI()

    @sub.get("/a")
    async def a() -> str:
        return "a"

    app.mount("/orgs/{org}", sub)
    instrument(app, registry=registry)
    get(app, "/orgs/x/a")

    @sub.get("/b/{n}")
    async def b(n: int) -> int:
        return n

    assert [r.status_code for r in get(app, "/orgs/y/b/1", "/orgs/z/b/2")] == [200, 200]
    assert requests_total(registry, "GET", "/orgs/{org}/b/{n}", "200") == 2
