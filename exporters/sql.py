"""SQL statements without their values: fingerprints and classification, per dialect.

:func:`fingerprint` replaces every literal and bound parameter of a statement
with ``?``, so a fingerprint can be logged and grouped without leaking data.
Literal forms handled: strings (``'...'`` with ``''``), PostgreSQL escape
strings (``E'...'`` with backslashes), Unicode strings (``U&'...'``), bit, hex
and national strings (``B'..'``, ``X'..'``, ``N'..'``), dollar quoting
(``$$...$$``, ``$tag$...$tag$``), numbers of every notation (``1_000``,
``1.5e3``, ``.5``, ``0x1F``, ``0b101``, ``0o17``), ``TRUE``/``FALSE``, and the
parameters of every DBAPI paramstyle (``?``, ``?1``, ``:name``, ``@name``,
``$1``, ``%s``, ``%(name)s``); comments go, lists collapse (``IN (?)``).

Double quotes depend on the dialect. PostgreSQL (and the SQL standard) quote
identifiers with them, and SQLAlchemy uses them for reserved or mixed-case
names everywhere: there they are kept. MySQL/MariaDB quote strings with them
(SQLAlchemy quotes identifiers with backticks there): there they are values.
SQLite accepts both, taking ``"x"`` as a string when no column is called x:
there a double-quoted token is a value where a value stands (after a
comparison or arithmetic operator, ``LIKE``, ``IS``, ``BETWEEN ... AND``,
``THEN``/``ELSE``/``WHEN``, ``DEFAULT``, inside ``IN (...)`` and ``VALUES
(...)``) and an identifier elsewhere (after ``FROM``, ``SET``, ``AS``, in a
column list, qualified with a dot, ...). A column compared the wrong way round
(``"x" = col``) loses its name in the fingerprint; a value never survives.

    >>> fingerprint('SELECT * FROM t WHERE name = "ssn-123" AND id IN (1, 2)', "sqlite")
    'SELECT * FROM t WHERE name = ? AND id IN (?)'
"""

from __future__ import annotations

import re

OPERATIONS = ("SELECT", "INSERT", "UPDATE", "DELETE", "OTHER")
# Table label of statements without one (``SELECT 1``, ``BEGIN``, DDL, ``PRAGMA``).
NO_TABLE = "none"
# Fingerprints longer than this are cut, so one log line stays readable.
MAX_FINGERPRINT = 2_000
# Dialects (SQLAlchemy's dialect.name) that read "..." as a string, always or by position.
STRING_QUOTE_DIALECTS = frozenset({"mysql", "mariadb"})
POSITIONAL_QUOTE_DIALECTS = frozenset({"sqlite"})

_VERBS = frozenset(OPERATIONS[:4])

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<value>
        [Ee]'(?:[^'\\]|''|\\.)*'                  # PostgreSQL escape string: backslashes too
      | [Uu]&'(?:[^']|'')*'                       # PostgreSQL Unicode string
      | [BbXxNn]?'(?:[^']|'')*'                   # string; bit, hex, national string
      | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$  # PostgreSQL dollar quoting
    )
  | (?P<dquoted>(?:[Uu]&)?"(?:[^"]|"")*")
  | (?P<ident>`[^`]*`)
  | (?P<cast>::)
  | (?P<param>%\([^)]*\)s|%s|\?\d*|[:@][A-Za-z_]\w*|\$\d+)
  | (?P<number>
        (?<![\w$.])
        (?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
        (?![\w$])
    )
  | (?P<word>[A-Za-z_][\w$]*)
  | (?P<op><>|!=|<=|>=|==|\|\||[-+*/%=<>~])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_BOOLEANS = frozenset({"TRUE", "FALSE"})
# After these, a double-quoted SQLite token stands where a value stands.
_VALUE_AFTER = frozenset(
    {
        "=", "==", "!=", "<>", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "||", "~",
        "LIKE", "GLOB", "MATCH", "REGEXP", "IS", "NOT", "BETWEEN", "THEN", "ELSE", "WHEN",
        "DEFAULT", "ESCAPE", "LIMIT", "OFFSET",
    }
)  # fmt: skip
# A parenthesis opened right after these holds values.
_VALUE_LISTS = frozenset({"IN", "VALUES"})
_SPACE = re.compile(r"\s+")
# A parenthesised list of placeholders: IN (?, ?, ?) and VALUES (?, ?).
_PLACEHOLDER_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
# Repeated rows of a multi-row VALUES: (?), (?), (?).
_PLACEHOLDER_ROWS = re.compile(r"\(\?\)(?:\s*,\s*\(\?\))+")
_TOKENS = re.compile(r'"(?:[^"]|"")*"|`[^`]*`|[\w$]+|[().,;]')
_PUNCTUATION = frozenset("().,;")
_PAGING = frozenset({"LIMIT", "OFFSET", "FETCH"})


def _values_as_placeholders(statement: str, dialect: str) -> str:
    """The statement with comments dropped and every value a ``?`` (whitespace kept)."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(statement)]
    # Significant tokens only: what precedes and follows each one, skipping spaces.
    significant = [i for i, (kind, _) in enumerate(tokens) if kind not in ("space", "comment")]
    after = {i: (significant[n + 1] if n + 1 < len(significant) else None)
             for n, i in enumerate(significant)}  # fmt: skip
    out: list[str] = []
    previous = ""  # upper-cased previous significant token
    # Per open parenthesis: does it hold a value list, and is a BETWEEN waiting for AND?
    lists: list[bool] = []
    between = [False]
    # Set when a value list just closed: VALUES (..), (..) continues with another row.
    closed_list = False
    for i, (kind, text) in enumerate(tokens):
        if kind == "comment":
            out.append(" ")
            continue
        if kind == "space":
            out.append(text)
            continue
        word = text.upper()
        if kind == "dquoted":
            value = _double_quoted_is_value(dialect, previous, lists, tokens, after.get(i))
        else:
            value = kind in ("value", "param", "number") or (kind == "word" and word in _BOOLEANS)
        out.append("?" if value else text)
        if text == "(":
            lists.append(previous in _VALUE_LISTS or (previous == "," and closed_list))
            between.append(False)
        elif text == ")":
            if len(between) > 1:
                between.pop()
        elif word == "BETWEEN":
            between[-1] = True
        elif word == "AND" and between[-1]:
            between[-1] = False
            word = "BETWEEN"  # the bound after AND is a value too
        if text == ")":
            closed_list = lists.pop() if lists else False
        elif text != ",":
            closed_list = False
        previous = word
    return "".join(out)


def _double_quoted_is_value(
    dialect: str,
    previous: str,
    lists: list[bool],
    tokens: list[tuple[str | None, str]],
    following: int | None,
) -> bool:
    if dialect in STRING_QUOTE_DIALECTS:
        return True
    if dialect not in POSITIONAL_QUOTE_DIALECTS:
        return False
    if previous == "." or (following is not None and tokens[following][1] == "."):
        return False  # a qualified name: "t"."col"
    if previous in _VALUE_AFTER:
        return True
    return previous in ("(", ",") and bool(lists) and lists[-1]


def fingerprint(statement: str, dialect: str = "postgresql") -> str:
    """The statement with every literal and parameter replaced by ``?`` (module docstring).

    >>> fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'")
    'SELECT * FROM t WHERE id IN (?) AND name = ?'
    """
    text = _values_as_placeholders(statement, dialect)
    text = _SPACE.sub(" ", text).strip()
    text = _PLACEHOLDER_LIST.sub("(?)", text)
    text = _PLACEHOLDER_ROWS.sub("(?)", text)
    if len(text) > MAX_FINGERPRINT:
        text = text[: MAX_FINGERPRINT - 3] + "..."
    return text


def _name(token: str) -> str:
    """A table name as a label value: unquoted, lower case, bounded."""
    if token[:1] in ('"', "`"):
        token = token[1:-1]
    return token.lower()[:63]


class _Parsed:
    """Tokens of a fingerprint with their parenthesis depth."""

    def __init__(self, text: str) -> None:
        self.tokens = _TOKENS.findall(text)
        self.upper = [token.upper() for token in self.tokens]
        self.depth: list[int] = []
        depth = 0
        for token in self.tokens:
            if token == ")":
                depth -= 1
            self.depth.append(depth)
            if token == "(":
                depth += 1

    def name_at(self, i: int) -> str | None:
        """The (possibly schema-qualified) name starting at token ``i``; its last part."""
        tokens = self.tokens
        if i >= len(tokens) or tokens[i] in _PUNCTUATION:
            return None
        while i + 2 < len(tokens) and tokens[i + 1] == "." and tokens[i + 2] not in _PUNCTUATION:
            i += 2
        return _name(tokens[i])

    def table_after(self, verb: int) -> str | None:
        """Main table of the statement whose verb is token ``verb``."""
        upper, depth = self.upper, self.depth
        kind, level = upper[verb], depth[verb]
        i = verb + 1
        if kind in ("INSERT", "UPDATE"):
            # INSERT OR REPLACE INTO t, UPDATE OR IGNORE t, UPDATE ONLY t.
            while i < len(upper) and upper[i] in (
                "OR",
                "REPLACE",
                "IGNORE",
                "ROLLBACK",
                "ABORT",
                "FAIL",
                "INTO",
                "ONLY",
            ):
                i += 1
            return self.name_at(i)
        for j in range(i, len(upper)):
            if depth[j] < level:
                return None
            if depth[j] == level and upper[j] == "FROM":
                k = j + 1
                if k < len(upper) and upper[k] == "ONLY":
                    k += 1
                if k < len(upper) and upper[k] == "(":
                    # FROM (SELECT ... FROM t) AS anon: the subquery's table.
                    inner = self.first_verb(k + 1, depth[k] + 1)
                    return self.table_after(inner) if inner is not None else None
                return self.name_at(k)
        return None

    def first_verb(self, start: int, level: int) -> int | None:
        """Index of the first SELECT/INSERT/UPDATE/DELETE at ``level`` from ``start``."""
        for j in range(start, len(self.upper)):
            if self.depth[j] < level:
                return None
            if self.depth[j] == level and self.upper[j] in _VERBS:
                return j
        return None

    def tables(self) -> list[str]:
        """Every name that follows FROM, JOIN, INTO or UPDATE, in order."""
        found = []
        for j, word in enumerate(self.upper):
            if word in ("FROM", "JOIN", "INTO", "UPDATE"):
                name = self.name_at(j + 1)
                if name is not None:
                    found.append(name)
        return found


def classify(statement: str, dialect: str = "postgresql") -> tuple[str, str, str]:
    """``(operation, table, fingerprint)`` of a statement; table is uncapped here.

    >>> classify("WITH r AS (SELECT id FROM items) DELETE FROM tags WHERE id = 1")[:2]
    ('DELETE', 'tags')
    """
    text = fingerprint(statement, dialect)
    parsed = _Parsed(text)
    upper = parsed.upper
    start = 0
    while start < len(upper) and upper[start] == "(":
        start += 1
    if start >= len(upper):
        return "OTHER", NO_TABLE, text
    ctes: set[str] = set()
    if upper[start] == "WITH":
        level = parsed.depth[start]
        verb = parsed.first_verb(start + 1, level)
        if verb is None:
            return "OTHER", NO_TABLE, text
        # At the WITH's depth, between WITH and the verb, only CTE names and keywords remain.
        ctes = {
            _name(parsed.tokens[j])
            for j in range(start + 1, verb)
            if parsed.depth[j] == level
            and upper[j] not in ("RECURSIVE", "AS", "NOT", "MATERIALIZED", ",")
        }
    elif upper[start] in _VERBS:
        verb = start
    else:
        return "OTHER", NO_TABLE, text
    table = parsed.table_after(verb)
    if table is not None and table in ctes:
        # The statement reads a CTE: name the first real table the CTEs read.
        table = next((name for name in parsed.tables() if name not in ctes), None)
    return upper[verb], table or NO_TABLE, text


def pages(operation: str, text: str) -> bool:
    """Whether a classified statement fetches a page: a SELECT with LIMIT, OFFSET or FETCH.

    At any depth: ORMs put the LIMIT of an eager-loading query in a subquery.
    """
    return operation == "SELECT" and not _PAGING.isdisjoint(
        token.upper() for token in _TOKENS.findall(text)
    )
