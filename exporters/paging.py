"""How a route paginates, read once from the route itself; the page of one request.

:func:`route_paging` reads the query parameters a FastAPI route declares (its
endpoint's and every sub-dependency's, query-parameter models included) and
their defaults, and matches their names against :class:`PaginationParams`:

- a cursor parameter makes a cursor route: every request without a cursor is
  its first page;
- a page number, or an offset with its limit, makes an offset route;
- a size alone (``limit``) is a top-N list, not pagination;
- a :class:`Paginated` declaration (``@paginated(...)`` on the endpoint, or by
  template in ``pagination_routes``) overrides all of that.

Per request, :meth:`RoutePaging.parse` reads only the names the route declared
from the query string, and fills what the request leaves out from the route's
defaults. Parameters the route does not declare are never read.

    >>> paging = RoutePaging("offset", page=("page", 1, "page_size", 50))
    >>> paging.parse(b"page=3").offset
    100
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus

from genonaut_monitoring.exporters.pagination import (
    DECLARATION_ATTR,
    Page,
    Paginated,
    PaginationParams,
)

# Longer numbers are garbage for a page, a size or an offset; int() on them would only cost time.
_MAX_DIGITS = 12
# Parsed query strings each route keeps (emptied when full), and the longest it keeps:
# most requests repeat a few (page=2&page_size=20), and parsing is most of a page's cost.
_KEPT_QUERIES = 256
_KEPT_QUERY_LENGTH = 200

# (name, default): a parameter the route declares and the value it takes when absent.
Param = tuple[str, int | None]


class _Invalid(Exception):
    """A pagination parameter the application would reject."""


def _number(values: Mapping[str, str], name: str, minimum: int, default: int | None) -> int | None:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_DIGITS:
        raise _Invalid(name)
    number = int(raw)
    if number < minimum:
        raise _Invalid(name)
    return number


def _values(query: str, wanted: frozenset[str]) -> dict[str, str]:
    """The wanted parameters of a query string; the last value wins, as in FastAPI.

    Cheaper than ``parse_qsl``: other parameters are skipped without decoding them.
    """
    values: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in wanted:
            values[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return values


class RoutePaging:
    """The pagination parameters one route declares, with their defaults.

    ``page`` is ``(page name, default, size name, default)``; ``offsets`` are
    ``(offset name, default, limit name, default)``; ``cursor`` and
    ``cursor_sizes`` are the cursor parameter and its size parameters.
    ``mode`` is what a request that names no position gets.
    """

    __slots__ = (
        "_parsed",
        "cursor",
        "cursor_sizes",
        "default_size",
        "mode",
        "offsets",
        "page",
        "wanted",
    )

    def __init__(
        self,
        mode: str,
        *,
        page: tuple[str, int | None, str, int | None] | None = None,
        offsets: tuple[tuple[str | None, int | None, str, int | None], ...] = (),
        cursor: str | None = None,
        cursor_sizes: tuple[Param, ...] = (),
        default_size: int | None = None,
    ) -> None:
        self.mode = mode
        self.page = page
        self.offsets = offsets
        self.cursor = cursor
        self.cursor_sizes = cursor_sizes
        self.default_size = default_size
        names: set[str] = {name for name, _ in cursor_sizes}
        if cursor:
            names.add(cursor)
        if page:
            names.update((page[0], page[2]))
        for offset, _, limit, _ in offsets:
            names.update((offset, limit) if offset is not None else (limit,))
        self.wanted = frozenset(names)
        # Query string -> the arguments of its Page, () when rejected (see parse()).
        self._parsed: dict[bytes, tuple[Any, ...]] = {}

    @property
    def modes(self) -> tuple[str, ...]:
        """Every mode a request of this route can take."""
        found = ["cursor"] if self.cursor or self.mode == "cursor" else []
        if self.page or self.offsets or self.mode == "offset":
            found.append("offset")
        return tuple(found)

    @property
    def size(self) -> int | None:
        """The page size of a request that gives none (the first page's)."""
        if self.mode == "cursor":
            return next((d for _, d in self.cursor_sizes if d is not None), self.default_size)
        if self.page and self.page[3] is not None:
            return self.page[3]
        for pair in self.offsets:
            if pair[3] is not None:
                return pair[3]
        return self.default_size

    def page_of(self, values: Mapping[str, str]) -> Page:
        """The page that parameter values ask for; :class:`_Invalid` for a rejected value."""
        if self.cursor and values.get(self.cursor):
            return Page("cursor", self._cursor_size(values), None, None)
        page = self.page
        if page and (page[0] in values or page[2] in values):
            return self._numbered(values, page)
        # A pair whose offset is present wins; a limit alone belongs to the first pair.
        for pair in self.offsets:
            if pair[0] is not None and pair[0] in values:
                return self._offset(values, pair)
        if self.mode != "cursor":
            for pair in self.offsets:
                if pair[2] in values:
                    return self._offset(values, pair)
        if self.mode == "cursor":
            return Page("cursor", self._cursor_size(values), None, None)
        if page:
            return self._numbered(values, page)
        if self.offsets:
            return self._offset(values, self.offsets[0])
        return Page("offset", self.default_size, 0, 1 if self.default_size else None)

    def parse(self, query_string: bytes) -> Page | None:
        """This request's page, or None when a value is one the application rejects.

        A query string seen before is not parsed again: its page's arguments are
        kept, unless it holds a cursor (never the same twice) or is long.
        """
        kept = self._parsed.get(query_string)
        if kept is not None:
            return Page(*kept) if kept else None
        values = _values(query_string.decode("latin-1"), self.wanted) if query_string else {}
        try:
            page: Page | None = self.page_of(values)
        except _Invalid:
            page = None
        if len(query_string) <= _KEPT_QUERY_LENGTH and not (self.cursor and self.cursor in values):
            parsed = self._parsed
            if len(parsed) >= _KEPT_QUERIES:
                parsed.clear()
            parsed[query_string] = () if page is None else page.arguments
        return page

    def _size(self, values: Mapping[str, str], name: str, default: int | None) -> int | None:
        return _number(values, name, 1, default if default is not None else self.default_size)

    def _cursor_size(self, values: Mapping[str, str]) -> int | None:
        for name, default in self.cursor_sizes:
            if name in values:
                return self._size(values, name, default)
        return self.size

    def _numbered(self, values: Mapping[str, str], page: tuple[str, Any, str, Any]) -> Page:
        number = _number(values, page[0], 1, page[1] if page[1] is not None else 1)
        size = self._size(values, page[2], page[3])
        assert number is not None
        offset = (number - 1) * size if size is not None else None
        return Page("offset", size, offset, number)

    def _offset(self, values: Mapping[str, str], pair: tuple[str | None, Any, str, Any]) -> Page:
        offset = 0 if pair[0] is None else _number(values, pair[0], 0, pair[1] or 0)
        size = self._size(values, pair[2], pair[3])
        assert offset is not None
        return Page("offset", size, offset, offset // size + 1 if size else None)


# --- Reading a route --------------------------------------------------------------


def _default(field_info: Any) -> int | None:
    """A field's default when it is a plain integer (None: required, None, or not a number)."""
    try:
        if field_info.is_required():
            return None
        value = field_info.get_default(call_default_factory=False)
    except Exception:
        return None
    return value if type(value) is int else None


def _query_fields(dependant: Any) -> Iterator[tuple[str, Any]]:
    """``(name, FieldInfo)`` of every query parameter of a FastAPI dependant tree."""
    stack, seen = [dependant], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for field in getattr(node, "query_params", None) or ():
            info = field.field_info
            model_fields = getattr(info.annotation, "model_fields", None)
            if isinstance(model_fields, dict):
                # A query-parameter model (Annotated[Model, Query()]): its fields are the params.
                for name, sub in model_fields.items():
                    yield (sub.alias or name), sub
            else:
                yield field.alias, info
        stack.extend(reversed(getattr(node, "dependencies", None) or ()))


def declared_params(dependant: Any) -> dict[str, int | None]:
    """Query parameter name -> its integer default (None when it has none), first one wins."""
    found: dict[str, int | None] = {}
    for name, info in _query_fields(dependant):
        found.setdefault(name, _default(info))
    return found


def declaration(endpoint: Any) -> Paginated | None:
    """The :func:`paginated` declaration on an endpoint (or its wrapped function), if any."""
    while endpoint is not None:
        found = getattr(endpoint, DECLARATION_ATTR, None)
        if isinstance(found, Paginated):
            return found
        endpoint = getattr(endpoint, "__wrapped__", None)
    return None


def route_paging(
    declared: Mapping[str, int | None] | None,
    params: PaginationParams,
    decl: Paginated | None = None,
) -> RoutePaging | None:
    """How a route paginates, from its query parameters and defaults, and a declaration.

    ``declared`` maps the route's query parameter names to their defaults (None
    when the route's parameters cannot be read). Returns None for a route that
    does not paginate.
    """
    if decl is not None and decl.mode is None:
        return None
    known = dict(declared or {})
    cursor_names = [params.cursor] if params.cursor else []
    offset_names = [*(params.page or ()), *(n for pair in params.offset for n in pair)]
    if decl is not None:
        # Declared: the declared mode's names; all of them when the route shows none.
        names = cursor_names + list(params.cursor_size) if decl.mode == "cursor" else offset_names
        known = {name: known[name] for name in names if name in known} or dict.fromkeys(names)
    page = None
    if params.page and params.page[0] in known:
        number, size = params.page
        page = (number, known[number], size, known.get(size))
    offsets: tuple[tuple[str | None, int | None, str, int | None], ...] = tuple(
        (offset, known[offset], limit, known.get(limit))
        for offset, limit in params.offset
        if offset in known
    )
    cursor = params.cursor if params.cursor and params.cursor in known else None
    cursor_sizes = tuple((name, known[name]) for name in params.cursor_size if name in known)
    default_size = (decl.page_size if decl is not None else None) or params.default_page_size
    if decl is not None:
        mode = decl.mode
        if mode == "offset" and not (page or offsets):
            # A declared top-N list: offset 0, the size from whichever limit it has.
            limits = [limit for _, limit in params.offset] + list(params.page or ())[1:]
            limit = next((name for name in limits if name in known), limits[0] if limits else "")
            offsets = ((None, 0, limit, known.get(limit)),)
    elif cursor:
        mode = "cursor"
    elif page or offsets:
        mode = "offset"
    else:
        # Only a size, or nothing: a top-N list, or no list at all.
        return None
    assert mode is not None
    return RoutePaging(
        mode,
        page=page,
        offsets=offsets,
        cursor=cursor,
        cursor_sizes=cursor_sizes,
        default_size=default_size,
    )
