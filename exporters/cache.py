"""Cache metrics: a server-side hit/miss recorder and the frontend report endpoint.

Browsers report their cache and prefetch counts in batches:

    POST /api/v1/telemetry/frontend
    {"caches": [{"cache": "content-pages", "hits": 3, "misses": 1}],
     "prefetch": [{"cache": "content-pages", "used": 2, "wasted": 1}]}

The body is validated strictly before anything is counted (a report is
counted whole or not at all): anything that could grow the series count
(an unknown cache name) or skew it (a huge count) is rejected with a 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import CACHE_RESULTS, OTHER, PREFETCH_OUTCOMES

# Distinct server-side cache names; more fold into "other" so a bug cannot explode the series.
MAX_SERVER_CACHES = 32
# Frontend report limits.
MAX_REPORT_BYTES = 16 * 1024
MAX_ENTRIES = 32  # entries per list in one report
MAX_COUNT = 10_000  # any single count in one report
# navigator.sendBeacon() posts a string as text/plain; fetch() sends application/json.
CONTENT_TYPES = ("application/json", "text/plain")
_SECTIONS = {
    "caches": ("hits", "misses"),
    "prefetch": ("used", "wasted"),
}


class CacheRecorder:
    """Counts lookups of one server-side cache into ``cache_requests_total``.

    >>> from prometheus_client import CollectorRegistry
    >>> recorder = CacheRecorder(catalogue.Metrics(CollectorRegistry()), "content-pages")
    >>> recorder.hit(); recorder.miss(2)
    """

    def __init__(self, metrics: catalogue.Metrics, name: str) -> None:
        self.name = name
        counter = metrics[catalogue.CACHE_REQUESTS]
        # Both results exist from the start, so a hit ratio is 0/n rather than absent.
        self._hit = counter.labels(name, "hit")
        self._miss = counter.labels(name, "miss")

    def hit(self, n: int = 1) -> None:
        """Count ``n`` cache hits."""
        self._hit.inc(n)

    def miss(self, n: int = 1) -> None:
        """Count ``n`` cache misses."""
        self._miss.inc(n)


class CacheRecorders:
    """One recorder per cache name, at most MAX_SERVER_CACHES names (then "other")."""

    def __init__(self, metrics: catalogue.Metrics) -> None:
        self._metrics = metrics
        self._recorders: dict[str, CacheRecorder] = {}

    def get(self, name: str) -> CacheRecorder:
        """The recorder of cache ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"cache name must be a non-empty string, not {name!r}")
        recorder = self._recorders.get(name)
        if recorder is None:
            if len(self._recorders) >= MAX_SERVER_CACHES:
                name = OTHER
                recorder = self._recorders.get(name)
            if recorder is None:
                recorder = self._recorders[name] = CacheRecorder(self._metrics, name)
        return recorder


class ReportError(Exception):
    """A frontend report that must be rejected; carries the HTTP status and where."""

    def __init__(self, status: int, loc: list[str | int], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.loc = loc
        self.message = message

    def response(self) -> JSONResponse:
        """FastAPI's error shape, so the frontend handles it like any other 4xx."""
        detail = [{"loc": ["body", *self.loc], "msg": self.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=self.status)


def parse_report(body: bytes, allowed: Collection[str]) -> list[tuple[str, str, str, int]]:
    """Validate one report; returns ``(section, cache, key, count)`` for every count."""
    try:
        report = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit;
        # RecursionError deeply nested arrays. Both fit in a report under the size cap.
        raise ReportError(422, [], f"body is not valid JSON: {exc}") from None
    if not isinstance(report, dict):
        raise ReportError(422, [], "body must be a JSON object with 'caches' and/or 'prefetch'")
    unknown = sorted(set(report) - set(_SECTIONS))
    if unknown:
        raise ReportError(
            422, [unknown[0]], f"unknown key {unknown[0]!r}: allowed keys are caches, prefetch"
        )
    counts: list[tuple[str, str, str, int]] = []
    for section, keys in _SECTIONS.items():
        entries = report.get(section, [])
        if not isinstance(entries, list):
            raise ReportError(422, [section], f"{section} must be a list")
        if len(entries) > MAX_ENTRIES:
            raise ReportError(422, [section], f"{section} has more than {MAX_ENTRIES} entries")
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            where: list[str | int] = [section, index]
            if not isinstance(entry, dict) or set(entry) != {"cache", *keys}:
                raise ReportError(
                    422,
                    where,
                    f"each {section} entry must be an object with keys cache, " + ", ".join(keys),
                )
            name = entry["cache"]
            if not isinstance(name, str) or name not in allowed:
                raise ReportError(
                    422,
                    [*where, "cache"],
                    f"unknown cache {name!r}: allowed values are {', '.join(sorted(allowed))}",
                )
            if name in seen:
                raise ReportError(422, [*where, "cache"], f"cache {name!r} appears twice")
            seen.add(name)
            for key in keys:
                count = entry[key]
                if type(count) is not int or not 0 <= count <= MAX_COUNT:
                    raise ReportError(
                        422,
                        [*where, key],
                        f"{key} must be an integer from 0 to {MAX_COUNT}, not {count!r}",
                    )
                counts.append((section, name, key, count))
    return counts


# Report key -> label value of the counter it feeds.
_LABEL = {"hits": "hit", "misses": "miss", "used": "used", "wasted": "wasted"}
assert set(_LABEL.values()) == set(CACHE_RESULTS) | set(PREFETCH_OUTCOMES)


def frontend_endpoint(
    metrics: catalogue.Metrics, allowed: Collection[str]
) -> Callable[[Request], Awaitable[Response]]:
    """The ``POST`` endpoint that counts frontend cache reports; 204 when counted."""
    allowed = frozenset(allowed)
    counters = {
        "caches": metrics[catalogue.FRONTEND_CACHE_REQUESTS],
        "prefetch": metrics[catalogue.FRONTEND_PREFETCHES],
    }
    children: dict[tuple[str, str, str], Any] = {}
    for name in sorted(allowed):
        # Zeros from the start, so ratios and alerts see series before the first report.
        for section, keys in _SECTIONS.items():
            for key in keys:
                children[section, name, key] = counters[section].labels(name, _LABEL[key])

    async def report_frontend_caches(request: Request) -> Response:
        try:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in CONTENT_TYPES:
                raise ReportError(
                    415, [], f"content type must be one of {', '.join(CONTENT_TYPES)}"
                )
            body = await _read_capped(request)
            counts = parse_report(body, allowed)
        except ReportError as error:
            return error.response()
        for section, name, key, count in counts:
            if count:
                children[section, name, key].inc(count)
        return Response(status_code=204)

    return report_frontend_caches


async def _read_capped(request: Request) -> bytes:
    """The request body, or a 413 as soon as it exceeds MAX_REPORT_BYTES."""
    too_large = ReportError(413, [], f"report larger than {MAX_REPORT_BYTES} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REPORT_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REPORT_BYTES:
            raise too_large
    return bytes(body)
