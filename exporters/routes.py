"""Route labels and pagination, resolved once per route object, never by matching paths.

The router has already matched every request: it leaves the route object in
``scope["route"]`` (FastAPI's API routes; the effective route of an included
router in ``scope["fastapi"]``) or the matched endpoint in
``scope["endpoint"]`` (what FastAPI's own router leaves for mounts and plain
Starlette routes). A :class:`RouteTable` walks the application's route tree
once (at start-up or the first request, and again only when an unknown route
object shows up) and maps each such object to what it needs per request:

- its **label**, always a template: the templates of the mounts it sits under
  joined with its own (``/orgs/{org}/api/hello/{name}``, never
  ``/orgs/acme/...``); a mount whose app has no routes of its own (StaticFiles,
  a WSGI app) is labelled by its mount path; a mounted router that matched
  nothing is ``unmatched``;
- its **pagination** (:mod:`.paging`), read from its declared parameters.

Per request that is a dictionary lookup. Only an object reachable at several
places (one sub-app mounted twice, one endpoint on two paths) compares the
request path with its few candidate templates.

    >>> table = RouteTable(PaginationParams(), {}, lambda label, paging: None)
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from starlette.routing import Host, Mount, compile_path

from genonaut_monitoring.exporters.catalogue import OTHER, UNMATCHED_ROUTE
from genonaut_monitoring.exporters.pagination import Paginated, PaginationParams
from genonaut_monitoring.exporters.paging import (
    RoutePaging,
    declaration,
    declared_params,
    route_paging,
)

log = logging.getLogger("genonaut_monitoring.exporters")

# Deepest nesting of mounts and included routers followed.
MAX_DEPTH = 16
# Unknown route objects that trigger a new walk; past this many, they are labelled at once.
MAX_REWALKS = 1_000


class Target:
    """One place a route object is reachable: its label, pagination and full path pattern."""

    __slots__ = ("label", "paging", "pattern")

    def __init__(self, label: str, paging: RoutePaging | None, raw: str | None) -> None:
        self.label = label
        self.paging = paging
        self.pattern: re.Pattern[str] | None = compile_path(raw)[0] if raw else None


UNMATCHED = Target(UNMATCHED_ROUTE, None, None)
FOLDED = Target(OTHER, None, None)


class _Info:
    """A route object and the targets it stands for (usually exactly one)."""

    __slots__ = ("key", "targets")

    def __init__(self, key: Any, targets: tuple[Target, ...]) -> None:
        self.key = key  # held, so its id() is never reused while cached
        self.targets = targets

    def pick(self, path: str) -> Target:
        for target in self.targets:
            if target.pattern is not None and target.pattern.match(path):
                return target
        return FOLDED


class RouteTable:
    """Labels and pagination of an application's routes, keyed by route object.

    ``declared`` maps route labels to :class:`Paginated` declarations (they win
    over the route's own parameters and decorator); ``on_paging(label, paging)``
    is called once for every paginated route found, to create its series.
    """

    def __init__(
        self,
        params: PaginationParams,
        declared: Mapping[str, Paginated | None],
        on_paging: Callable[[str, RoutePaging], None],
    ) -> None:
        self.params = params
        self.declared = dict(declared)
        self.on_paging = on_paging
        self._infos: dict[int, _Info] = {}
        self._lock = threading.Lock()
        self._walked: set[int] = set()
        # The app the middleware serves: scope["app"] on entry. Inside a mounted sub-app
        # Starlette replaces scope["app"], so later walks start from this one.
        self._root: Any = None
        self._rewalks = 0
        self._announced: set[str] = set()

    # --- per request ---------------------------------------------------------------

    def lookup(self, scope: MutableMapping[str, Any], path: str, root_path: str) -> Target:
        """The target of a routed request.

        ``path`` and ``root_path`` are the request's path (without ``root_path``)
        and ``root_path`` as they were when the request entered the middleware.
        """
        route = scope.get("route")
        if route is None or isinstance(route, Mount):
            # FastAPI's router leaves mounts and plain routes out of scope["route"];
            # a Starlette router leaves the mount there when an inner one matched.
            key = scope.get("endpoint")
            if key is None:
                return UNMATCHED
        else:
            key = route
            fastapi_scope = scope.get("fastapi")
            if fastapi_scope:
                # An API route of an included router: one object, one context per inclusion.
                context = fastapi_scope.get("effective_route_context")
                if context is not None and context.original_route is route:
                    key = context
        info = self._infos.get(id(key))
        if info is None or info.key is not key:
            info = self._resolve(scope, key, root_path)
        targets = info.targets
        return targets[0] if len(targets) == 1 else info.pick(path)

    # --- resolution ----------------------------------------------------------------

    def prepare(self, app: Any) -> None:
        """Walk ``app``'s routes (once per app): labels, pagination, series at zero."""
        if app is None or id(app) in self._walked:
            return
        if self._root is None:
            self._root = app
        with self._lock:
            if id(app) not in self._walked:
                self._walk_app(app)

    def _resolve(self, scope: MutableMapping[str, Any], key: Any, root_path: str) -> _Info:
        with self._lock:
            info = self._infos.get(id(key))
            if info is not None and info.key is key:
                return info
            app = self._root if self._root is not None else scope.get("app")
            if app is not None and (id(app) not in self._walked or self._rewalks < MAX_REWALKS):
                if id(app) in self._walked:
                    self._rewalks += 1  # routes added after the first walk
                self._walk_app(app)
                info = self._infos.get(id(key))
                if info is not None and info.key is key:
                    return info
            # Not in the tree: its own template, unless a mount we cannot name grew the path.
            template = getattr(key, "path_format", None)
            grown = scope.get("root_path", "") != root_path
            target = Target(str(template), None, None) if template and not grown else FOLDED
            info = _Info(key, (target,))
            self._infos = {**self._infos, id(key): info}
            return info

    def _walk_app(self, app: Any) -> None:
        found: dict[int, tuple[Any, list[Target]]] = {}
        self._walk(getattr(app, "routes", None) or (), "", "", found, 0)
        infos = dict(self._infos)
        for key, targets in found.values():
            infos[id(key)] = _Info(key, tuple(_unique(targets)))
        self._infos = infos
        self._walked.add(id(app))
        for _, targets in found.values():
            for target in targets:
                if target.paging is not None and target.label not in self._announced:
                    self._announced.add(target.label)
                    self.on_paging(target.label, target.paging)
        labels = {t.label for _, targets in found.values() for t in targets}
        unknown = sorted(set(self.declared) - labels)
        if unknown:
            log.warning(
                "instrument(pagination_routes=...): no route has the template %s; "
                "use the route label as /metrics shows it (prefixes and mounts included)",
                ", ".join(repr(u) for u in unknown),
            )

    def _walk(
        self,
        routes: Iterable[Any],
        label: str,
        raw: str,
        found: dict[int, tuple[Any, list[Target]]],
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            return
        for node in routes:
            contexts = getattr(node, "effective_route_contexts", None)
            if callable(contexts):
                # FastAPI's included router: routes with the inclusion's prefix and dependencies.
                for context in contexts():
                    self._node(context, label, raw, found, depth)
            else:
                self._node(node, label, raw, found, depth)

    def _node(
        self,
        node: Any,
        label: str,
        raw: str,
        found: dict[int, tuple[Any, list[Target]]],
        depth: int,
    ) -> None:
        def add(key: Any, target: Target) -> None:
            if key is not None:
                found.setdefault(id(key), (key, []))[1].append(target)

        if getattr(node, "original_route", None) is not None:
            if node.starlette_route is None:
                # An API route of an included router: its context is the key.
                template = label + node.path_format
                add(node, Target(template, self._paging(template, node), raw + node.path))
                return
            node = node.starlette_route
        if isinstance(node, Mount):
            mount_label = node.path_format.removesuffix("/{path}")
            inner = getattr(node, "routes", None) or ()
            # An app without routes (StaticFiles) is named by its mount; a router that
            # matched nothing is as unmatched as a path outside every route.
            own = Target(label + mount_label, None, raw + node.path + "/{path:path}")
            add(node.app, own if not inner else UNMATCHED)
            self._walk(inner, label + mount_label, raw + node.path, found, depth + 1)
        elif isinstance(node, Host):
            self._walk(getattr(node, "routes", None) or (), label, raw, found, depth + 1)
        elif isinstance(getattr(node, "path_format", None), str):
            template = label + node.path_format
            target = Target(template, self._paging(template, node), raw + node.path)
            add(node, target)
            # FastAPI's router leaves a plain route's endpoint, not the route, in the scope.
            add(getattr(node, "endpoint", None), target)

    def _paging(self, label: str, route: Any) -> RoutePaging | None:
        if label in self.declared:
            decl = self.declared[label]
            if decl is None:
                return None
        else:
            decl = declaration(getattr(route, "endpoint", None))
        dependant = getattr(route, "dependant", None)
        params = declared_params(dependant) if dependant is not None else None
        if params is None and decl is None:
            return None
        return route_paging(params, self.params, decl)


def _unique(targets: list[Target]) -> list[Target]:
    """One target per label, in order."""
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.label, target)
    return list(seen.values())
