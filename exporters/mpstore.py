"""A worker's metric files in multiprocess mode, written so that they never take it down.

prometheus_client keeps each worker's values in mmapped files in
PROMETHEUS_MULTIPROC_DIR. Its ``MmapedDict`` grows a file with ``truncate``
(which allocates nothing) and then writes through the map: on a full
filesystem the kernel has no page for that write and kills the worker with
SIGBUS. A missing or read-only directory raises ``OSError`` from whichever
metric is created first, at import or inside a request.

:class:`SafeMmapedDict` takes its place (:func:`install`, run when
``genonaut_monitoring.exporters`` is imported):

- every page of a file is allocated with ``posix_fallocate`` before it is
  mapped, so a write through the map always has its page, and every
  ``OSError`` is caught;
- a series whose file cannot be opened or grown keeps its value in the
  worker's memory (prometheus_client keeps every value there too) and is
  written, whole, once the directory has room: tried again at most every
  ``retry_seconds``, so a full disk costs no system call per request;
- each write that cannot reach its file is counted in
  ``metrics_writes_dropped_total{reason}``, whose series sit at the head of
  the worker's counter file, allocated when it is created (at
  ``instrument()``), so counting a failure never needs space;
- each cause logs one ERROR line naming the directory and the fix
  (:func:`~genonaut_monitoring.exporters.mpfile.report`).

Import ``genonaut_monitoring.exporters`` before creating metrics of your own,
so that their files are made here too.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
import time

import prometheus_client.values
from prometheus_client.mmap_dict import mmap_key

from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue, mpdir, mpfile

INITIAL_SIZE = 1 << 16  # prometheus_client's first file size
_HEADER_USED = 8
_pack_value = mpfile.VALUE.pack  # bound once: write_value is on every request's path


def _ledger_key(cause: str) -> str:
    spec = catalogue.METRICS_WRITES_DROPPED
    base = spec.name.removesuffix("_total")
    # The key prometheus_client's Counter child uses for this series, so both name one value.
    return mmap_key(base, spec.name, list(spec.labels), [cause], spec.help)


_LEDGER_KEYS = {cause: _ledger_key(cause) for cause in catalogue.WRITE_DROP_REASONS}


class _Ledger:
    """Failed writes, per cause: in memory, and in the worker's counter file when it has one.

    Only the ledger writes these series; the catalogue's Counter for them is never
    incremented, so the two never disagree.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.counts = dict.fromkeys(catalogue.WRITE_DROP_REASONS, 0)
        self.file: SafeMmapedDict | None = None

    def attach(self, file: SafeMmapedDict) -> None:
        self.file = file
        for cause, count in self.counts.items():
            file.store(_LEDGER_KEYS[cause], float(count))

    def detach(self, file: SafeMmapedDict) -> None:
        if self.file is file:
            self.file = None

    def dropped(self, cause: str) -> None:
        self.counts[cause] += 1
        if self.file is not None:
            self.file.store(_LEDGER_KEYS[cause], float(self.counts[cause]))


LEDGER = _Ledger()
_ledger_lock = threading.Lock()
_ZEROS = bytes(INITIAL_SIZE)


def _allocate(fd: int, offset: int, length: int, may_zero: bool = True) -> None:
    """Give the file real blocks for ``[offset, offset + length)``; OSError if there is no room.

    A write through a map into a page the filesystem has no block for is a SIGBUS when
    the filesystem is full; after this, every page has its block. Where posix_fallocate
    is missing (macOS) or unsupported, zeros are written instead, never over data.
    """
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, offset, length)
            return
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
    if not may_zero:
        return
    end = offset + length
    while offset < end:
        offset += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), end - offset)], offset)


class SafeMmapedDict:
    """prometheus_client's ``MmapedDict`` (same file format and methods) that never fails.

    prometheus_client calls it under its one multiprocess lock, as it does its own.
    """

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        self._fname = filename
        self.directory = os.path.dirname(filename) or "."
        self._fd = -1
        self._m: mmap.mmap | None = None
        self._capacity = 0
        self._used = 0
        self._positions: dict[str, int] = {}
        self._retry_at = 0.0
        self._cause = "error"
        self._holds_ledger = os.path.basename(filename).startswith("counter_")
        self._open()

    # --- prometheus_client's interface ---

    def read_value(self, key: str) -> tuple[float, float]:
        pos = self._position(key)
        if pos is None or self._m is None:
            return 0.0, 0.0
        value, timestamp = mpfile.VALUE.unpack_from(self._m, pos)
        return value, timestamp

    def write_value(self, key: str, value: float, timestamp: float) -> None:
        pos = self._positions.get(key)
        if pos is None:
            pos = self._position(key)
            if pos is None:
                with _ledger_lock:
                    LEDGER.dropped(self._cause)
                return
        self._m[pos : pos + 16] = _pack_value(value, timestamp)  # type: ignore[index]

    def read_all_values(self) -> list[tuple[str, float, float]]:
        if self._m is None:
            return []
        return [(k, v, t) for k, v, t, _ in mpfile.entries(self._m, self._used)]

    def close(self) -> None:
        LEDGER.detach(self)
        if self._m is not None:
            self._m.close()
            self._m = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # --- the rest ---

    def store(self, key: str, value: float) -> None:
        """Write ``value`` under ``key`` if the file has room (for the ledger: no counting)."""
        pos = self._position(key)
        if pos is not None:
            self._m[pos : pos + 16] = mpfile.VALUE.pack(value, 0.0)  # type: ignore[index]

    def _failed(self, error: OSError) -> None:
        self._cause = mpfile.cause_of(error)
        self._retry_at = time.monotonic() + config.CONFIG.multiprocess.retry_seconds
        mpfile.report(self._cause, self.directory, f"{os.path.basename(self._fname)}: {error}")

    def _open(self) -> bool:
        self._retry_at = 0.0
        fd, size = -1, 0
        try:
            if not mpdir.is_registered(self.directory):
                mpdir.register(self.directory)
            fd = os.open(self._fname, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            size = os.fstat(fd).st_size
            capacity = size or INITIAL_SIZE
            # Every page now (a no-op for pages that have blocks), so that no write through
            # the map ever meets a page without one: the SIGBUS of a full filesystem.
            _allocate(fd, 0, capacity, may_zero=size == 0)
            m = mmap.mmap(fd, capacity, access=mmap.ACCESS_WRITE)
        except OSError as error:
            if fd >= 0:
                os.close(fd)
                if size == 0:
                    # Not even a header: readers would take the empty file for a damaged one.
                    with contextlib.suppress(OSError):
                        os.unlink(self._fname)
            self._failed(error)
            return False
        used = mpfile.LENGTH.unpack_from(m, 0)[0]
        positions = {}
        if used == 0:
            used = _HEADER_USED
            m[0:4] = mpfile.LENGTH.pack(used)
        else:
            try:
                positions = {key: pos for key, _, _, pos in mpfile.entries(m, used)}
            except ValueError as error:
                # An earlier process's damaged file under this pid: start it afresh.
                mpfile.report("corrupt", self.directory, f"{self._fname}: {error}")
                used = _HEADER_USED
                m[0:4] = mpfile.LENGTH.pack(used)
        self._fd, self._m, self._capacity, self._used = fd, m, capacity, used
        self._positions = positions
        if self._holds_ledger:
            # First in a new file: space for counting failures is taken while there is some.
            with _ledger_lock:
                LEDGER.attach(self)
        return True

    def _position(self, key: str) -> int | None:
        """Where ``key``'s value sits, adding the entry if needed; None if it cannot be written."""
        pos = self._positions.get(key)
        if pos is not None:
            return pos
        if self._retry_at and time.monotonic() < self._retry_at:
            return None
        if self._m is None and not self._open():
            return None
        pos = self._positions.get(key)
        return pos if pos is not None else self._add(key)

    def _add(self, key: str) -> int | None:
        entry = mpfile.encode(key, 0.0, 0.0)
        end = self._used + len(entry)
        if end > self._capacity:
            capacity = self._capacity
            while capacity < end:
                capacity *= 2
            try:
                _allocate(self._fd, self._capacity, capacity - self._capacity)
                grown = mmap.mmap(self._fd, capacity, access=mmap.ACCESS_WRITE)
            except OSError as error:
                self._failed(error)
                return None
            assert self._m is not None
            self._m.close()
            self._m, self._capacity = grown, capacity
        assert self._m is not None
        self._retry_at = 0.0
        self._m[self._used : end] = entry
        self._used = end
        # The entry is whole before the used size counts it: a reader never sees half of one.
        self._m[0:4] = mpfile.LENGTH.pack(end)
        pos = end - 16
        self._positions[key] = pos
        return pos


def install() -> None:
    """Make prometheus_client create multiprocess files with :class:`SafeMmapedDict`."""
    prometheus_client.values.MmapedDict = SafeMmapedDict  # type: ignore[assignment,misc]
