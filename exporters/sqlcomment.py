"""Statements tagged with the route that ran them, in the sqlcommenter format.

With ``instrument(app, engine=engine, sql_comments=True)`` every statement run
inside a request ends in a comment such as::

    SELECT ... FROM content_items ... /*request_id='4bf92f35',route='%2Fapi%2Fv1%2Fcontent'*/

so ``pg_stat_activity`` (and the server log, and ``pg_stat_statements``' first
text of a statement) shows which route and which request a blocking or
long-running session belongs to. The format follows the sqlcommenter
specification: keys sorted, keys and values URL-encoded and then single-quoted
(a ``'`` left after encoding is escaped as ``\\'``), pairs joined by commas,
the comment appended to the statement. The route is the route template
(``/api/v1/content/{item_id}``), never the path or anything from the query
string; the request id is the one the access log carries.

Statements are left alone outside a request, and, as the specification asks,
when they already hold a comment (``--`` or ``/*`` anywhere in them). For
drivers that interpolate parameters with ``%`` (psycopg2, psycopg, pg8000), the
comment's ``%`` signs are doubled whenever the driver will interpolate, so the
server receives them single.
PostgreSQL's statistics ignore comments (``pg_stat_statements`` identifies a
statement by its parse tree), and the exporter's own statement cache, slow-query
log and fingerprints drop the comment with :func:`without_comment`, so no series or
fingerprint multiplies per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from genonaut_monitoring.exporters.context import current, report_fault

# Drivers whose paramstyle makes them read % in the statement as a placeholder.
_PERCENT_STYLES = frozenset({"format", "pyformat"})
# Comments cached per (route, request id): a request runs several statements.
MAX_CACHED = 256


def _encode(text: str) -> str:
    """URL-encode (every reserved character, ``/`` included), then escape a quote."""
    return quote(text, safe="").replace("'", "\\'")


def serialize(values: Mapping[str, str]) -> str:
    """The sqlcommenter comment for ``values``; empty values are left out.

    >>> serialize({"route": "/api/v1/content", "request_id": "r-1"})
    "/*request_id='r-1',route='%2Fapi%2Fv1%2Fcontent'*/"
    """
    pairs = [f"{_encode(key)}='{_encode(value)}'" for key, value in sorted(values.items()) if value]
    return f"/*{','.join(pairs)}*/" if pairs else ""


def without_comment(statement: str) -> str:
    """``statement`` without a trailing `` /*...*/`` such as :class:`Tagger` appends."""
    if not statement.endswith("*/"):
        return statement
    start = statement.rfind(" /*")
    if start < 0 or "*/" in statement[start + 3 : -2]:
        return statement
    return statement[:start]


class Tagger:
    """A ``before_cursor_execute`` listener (``retval=True``) that appends the comment."""

    def __init__(self) -> None:
        self._comments: dict[tuple[str, str], str] = {}

    def comment(self) -> str:
        """The comment for the request being served, or "" outside a request."""
        state = current()
        if state is None:
            return ""
        key = (state.route, state.request_id)
        found = self._comments.get(key)
        if found is None:
            if len(self._comments) >= MAX_CACHED:
                self._comments.clear()
            found = self._comments[key] = serialize({"route": key[0], "request_id": key[1]})
        return found

    def __call__(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        try:
            comment = self.comment()
            if not comment or "/*" in statement or "--" in statement:
                return statement, parameters
            if conn.dialect.paramstyle in _PERCENT_STYLES and not (
                not parameters and context is not None and context.no_parameters
            ):
                # The driver will run "statement % parameters": "%%" reaches the server as "%".
                comment = comment.replace("%", "%%")
            return f"{statement} {comment}", parameters
        except Exception:
            report_fault("sql comments (before_cursor_execute)")
            return statement, parameters
