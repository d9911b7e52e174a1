"""What the multiprocess modules share: the directory's file names and format, fault reports.

The format is prometheus_client's (``mmap_dict``): a 4-byte used size and 4
bytes of padding, then entries of a 4-byte key length, the UTF-8 key padded to
8 bytes, and two doubles (value, timestamp). Upstream readers
(``MultiProcessCollector``) read every file written here.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import time
from collections.abc import Iterator
from typing import Any

from genonaut_monitoring import config

ENV = "PROMETHEUS_MULTIPROC_DIR"
MERGE_LOCK = ".merge.lock"
JOURNAL = ".merge.journal"
MERGED = "merged"
_HEADER = struct.Struct("ii")  # bytes used, padding
LENGTH = struct.Struct("i")
VALUE = struct.Struct("dd")  # value, timestamp

_log = logging.getLogger("genonaut_monitoring.exporters")

# cause: (what is wrong with the directory, what happens meanwhile, the fix)
_CAUSES = {
    "missing": (
        "does not exist",
        "its metrics wait in its memory",
        "create it, empty, before the workers start (or unset PROMETHEUS_MULTIPROC_DIR "
        "to serve one process's metrics)",
    ),
    "read_only": (
        "is not writable",
        "its metrics wait in its memory",
        "make it writable by the user the workers run as",
    ),
    "full": (
        "is full",
        "its new series wait in its memory, their writes counted in "
        'metrics_writes_dropped_total{reason="full"}',
        "give it more space (a larger tmpfs or volume)",
    ),
    "corrupt": (
        "holds a damaged file",
        "the file is left out of the scrape",
        "delete the file named here (a dead worker's is renamed to *.corrupt)",
    ),
    "busy": (
        "is locked by a worker that does not let go",
        "this scrape skips pruning dead workers' files",
        f"restart the worker that holds {MERGE_LOCK} (fuser -v on it names it)",
    ),
    "error": (
        "cannot be used",
        "its metrics wait in its memory",
        "check the directory against the error above",
    ),
}
_last_report: dict[str, float] = {}


def cause_of(error: OSError) -> str:
    """The report cause of a failed file operation."""
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "read_only"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    return "error"


def report(cause: str, directory: str, detail: object) -> None:
    """Log one ERROR line for ``cause``, at most once per ``error_log_seconds`` in a process."""
    interval = config.CONFIG.multiprocess.error_log_seconds
    now = time.monotonic()
    last = _last_report.get(cause)
    if last is not None and now - last < interval:
        return
    _last_report[cause] = now
    what, meanwhile, fix = _CAUSES[cause]
    _log.error(
        "metrics directory %s=%s %s (%s): worker %d serves requests as usual; %s; "
        "fix: %s (logged at most every %.0f s per cause)",
        ENV,
        directory,
        what,
        detail,
        os.getpid(),
        meanwhile,
        fix,
        interval,
    )


# --- the file format (prometheus_client.mmap_dict) ------------------------------


def encode(key: str, value: float, timestamp: float) -> bytes:
    """One entry: key length, key padded to 8 bytes, value, timestamp."""
    encoded = key.encode("utf-8")
    padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
    return LENGTH.pack(len(encoded)) + padded + VALUE.pack(value, timestamp)


def entries(data: Any, used: int) -> Iterator[tuple[str, float, float, int]]:
    """(key, value, timestamp, position of the value) of each entry; ValueError if damaged."""
    if used < _HEADER.size or used > len(data):
        raise ValueError(f"header says {used} bytes are used, the file has {len(data)}")
    pos = _HEADER.size
    while pos < used:
        length = LENGTH.unpack_from(data, pos)[0]
        pos += LENGTH.size
        padded = length + 8 - (length + 4) % 8
        if length <= 0 or pos + padded + VALUE.size > used:
            raise ValueError(f"an entry at byte {pos - LENGTH.size} runs past the used bytes")
        key = bytes(data[pos : pos + length]).decode("utf-8")
        pos += padded
        value, timestamp = VALUE.unpack_from(data, pos)
        yield key, value, timestamp, pos
        pos += VALUE.size


def read_entries(path: str) -> list[tuple[str, float, float]]:
    """Every entry of a file, checked; ValueError if it is damaged."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < _HEADER.size:
        raise ValueError("shorter than its header")
    rows = []
    for key, value, timestamp, _ in entries(data, _HEADER.unpack_from(data)[0]):
        parsed = json.loads(key)
        if not (isinstance(parsed, list) and len(parsed) == 4):
            raise ValueError(f"key {key[:80]!r} is not [metric, sample, labels, help]")
        rows.append((key, value, timestamp))
    return rows


def write_file(path: str, items: dict[str, tuple[float, float]]) -> None:
    """A file holding exactly ``items`` (key: (value, timestamp)), as a merge writes it."""
    body = b"".join(encode(key, *items[key]) for key in sorted(items))
    with open(path, "wb") as file:
        file.write(_HEADER.pack(_HEADER.size + len(body), 0) + body)
