"""The multiprocess directory: which workers live, what the dead leave behind, the scrape.

prometheus_client keeps each worker's values in PROMETHEUS_MULTIPROC_DIR and
never removes the files of a worker that exited: its live gauges (requests in
progress, connection pools) go on counting unless ``mark_process_dead`` ran,
which a killed worker never does, and every worker start adds files. Here:

- Each worker holds an exclusive ``flock`` on ``.worker-<pid>.lock`` for its
  whole life. The kernel drops the lock when the process ends, however it ends
  (SIGKILL included), so a lock that can be taken means its owner is dead, even
  once the pid is reused. Files of a pid without a lock file (written by code
  that does not use this module) belong to a live worker while the pid exists.
- :func:`prune`, at each worker's start and before each scrape, deletes the
  live-gauge files of dead workers and merges their counters, histograms,
  summaries and sum/min/max/mostrecent gauges into one ``<type>_merged.db``
  per type: totals never go back, and the directory holds the live workers'
  files plus a fixed remainder. ``gauge_all`` files stay (that mode promises a
  series per process, dead or alive).
- A merge commits through a journal (``.merge.journal``), so a worker killed in
  the middle of one leaves the old files or a journal the next prune finishes:
  nothing is counted twice or lost. Pruning and scraping hold ``.merge.lock``,
  so a scrape never sees half a merge.
- Nothing here raises into a request or a scrape: each cause (missing,
  read_only, full, corrupt, busy, error) logs one ERROR line naming the
  directory and the fix, at most every ``error_log_seconds``.

The directory belongs to the workers of one host or container: pids, and the
files named after them, mean nothing across pid namespaces.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.multiprocess import MultiProcessCollector

from genonaut_monitoring import config
from genonaut_monitoring.exporters.mpfile import (
    JOURNAL,
    MERGE_LOCK,
    MERGED,
    cause_of,
    read_entries,
    report,
    write_file,
)

# Dead workers' files of these types are added into <type>_merged.db; live gauges are deleted.
_MERGEABLE = frozenset(
    {"counter", "histogram", "summary", "gauge_sum", "gauge_min", "gauge_max", "gauge_mostrecent"}
)

# --- live workers -------------------------------------------------------------

# directory -> (pid, fd of its worker lock); a forked child registers anew.
_registered: dict[str, tuple[int, int]] = {}


def _try_lock(fd: int) -> None:
    """An exclusive flock on ``fd`` now, or BlockingIOError."""
    # Imported here: every app imports this module, on any platform; only workers in
    # multiprocess mode (POSIX) take locks.
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _worker_lock(pid: int) -> str:
    return f".worker-{pid}.lock"


def is_registered(directory: str) -> bool:
    """True when this process holds its worker lock in ``directory``."""
    held = _registered.get(directory)
    return held is not None and held[0] == os.getpid()


def register(directory: str) -> None:
    """Prune the dead (this pid's old files included), then hold this worker's lock.

    Raises OSError when the directory cannot hold the lock (missing, read-only, full).
    """
    pid = os.getpid()
    inherited = _registered.pop(directory, None)
    if inherited is not None:
        if inherited[0] == pid:
            _registered[directory] = inherited
            return
        # A forked child: the parent's lock must not keep the parent "alive" after it exits.
        os.close(inherited[1])
    with merge_lock(directory) as held:
        pruned = held and prune_reporting(directory, me_dead=True)
    if not pruned:
        # Files of an earlier process with this pid: its live gauges would otherwise be
        # read back as this worker's starting values.
        for path in glob.glob(os.path.join(directory, f"gauge_live*_{pid}.db")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    # Locked before it is renamed into place, so no pruner ever sees it unlocked.
    final = os.path.join(directory, _worker_lock(pid))
    temporary = final + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        _try_lock(fd)
        os.replace(temporary, final)
    except OSError:
        os.close(fd)
        raise
    _registered[directory] = (pid, fd)


def _alive(directory: str, pid: int, lock_files: set[str], me_dead: bool) -> bool:
    if pid == os.getpid():
        return not me_dead
    name = _worker_lock(pid)
    if name in lock_files:
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            _try_lock(fd)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also lets go of the lock just taken
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def merge_lock(directory: str, timeout: float | None = None) -> Iterator[bool]:
    """Hold ``.merge.lock``; yields False (and reports) if another worker keeps it past timeout."""
    if timeout is None:
        timeout = config.CONFIG.multiprocess.lock_timeout_seconds
    path = os.path.join(directory, MERGE_LOCK)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _try_lock(fd)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    report("busy", directory, f"{MERGE_LOCK} held for more than {timeout:g} s")
                    yield False
                    return
                time.sleep(0.005)
        yield True
    finally:
        os.close(fd)


# --- pruning ------------------------------------------------------------------


def _owner(name: str) -> tuple[str, int] | None:
    """("counter", 12) for counter_12.db, ("gauge_livesum", 12) for gauge_livesum_12.db."""
    if not name.endswith(".db"):
        return None
    prefix, _, pid = name[:-3].rpartition("_")
    if not (prefix and pid.isdigit()):
        return None
    return prefix, int(pid)


def _combine(prefix: str, old: tuple[float, float] | None, new: tuple[float, float]) -> Any:
    if old is None:
        return new
    if prefix == "gauge_min":
        return min(old, new)
    if prefix == "gauge_max":
        return max(old, new)
    if prefix == "gauge_mostrecent":
        return new if new[1] > old[1] else old
    return (old[0] + new[0], 0.0)


def prune(directory: str, me_dead: bool = False) -> None:
    """Finish an interrupted merge, then retire dead workers' files. Hold :func:`merge_lock`.

    ``me_dead``: files carrying this process's pid are an earlier process's (at start).
    """
    _recover(directory)
    names = os.listdir(directory)
    lock_files = {name for name in names if name.startswith(".worker-") and name.endswith(".lock")}
    owned: dict[int, list[tuple[str, str]]] = {}
    for name in names:
        owner = _owner(name)
        if owner is not None:
            owned.setdefault(owner[1], []).append((owner[0], name))
    for name in lock_files:
        digits = name.removeprefix(".worker-").removesuffix(".lock")
        if digits.isdigit():
            owned.setdefault(int(digits), [])
    to_merge: dict[str, list[str]] = {}
    retired: list[str] = []
    for pid, files in sorted(owned.items()):
        if _alive(directory, pid, lock_files, me_dead):
            continue
        for prefix, name in files:
            if prefix.startswith("gauge_live"):
                # First, and outright: it frees space a merge may need on a full disk.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))
            elif prefix in _MERGEABLE:
                to_merge.setdefault(prefix, []).append(name)
        if _worker_lock(pid) in lock_files:
            retired.append(_worker_lock(pid))
    if to_merge or retired:
        _merge(directory, to_merge, retired)


def prune_reporting(directory: str, me_dead: bool = False) -> bool:
    """:func:`prune`, its failures reported rather than raised; True if it completed."""
    try:
        prune(directory, me_dead)
    except OSError as error:
        report(cause_of(error), directory, f"pruning dead workers' files: {error}")
    except Exception as error:
        report("error", directory, f"pruning dead workers' files failed: {error!r}")
    else:
        return True
    return False


def _merge(directory: str, to_merge: dict[str, list[str]], retired: list[str]) -> None:
    join = os.path.join
    installs: list[tuple[str, str]] = []
    removals: list[str] = []
    try:
        for prefix, names in sorted(to_merge.items()):
            target = f"{prefix}_{MERGED}.db"
            items: dict[str, tuple[float, float]] = {}
            if os.path.exists(join(directory, target)):
                for key, value, timestamp in read_entries(join(directory, target)):
                    items[key] = (value, timestamp)
            for name in names:
                try:
                    rows = read_entries(join(directory, name))
                except ValueError as error:
                    os.replace(join(directory, name), join(directory, name + ".corrupt"))
                    report("corrupt", directory, f"{name}: {error}")
                    continue
                for key, value, timestamp in rows:
                    items[key] = _combine(prefix, items.get(key), (value, timestamp))
                removals.append(name)
            temporary = f".{target}.tmp"
            write_file(join(directory, temporary), items)
            installs.append((temporary, target))
        journal = json.dumps({"install": installs, "remove": removals + retired})
        with open(join(directory, JOURNAL + ".tmp"), "w", encoding="utf-8") as file:
            file.write(journal)
        os.replace(join(directory, JOURNAL + ".tmp"), join(directory, JOURNAL))
    except BaseException:
        # Not committed: the dead workers' files stay and count as they are.
        for name in [JOURNAL + ".tmp", *(temporary for temporary, _ in installs)]:
            with contextlib.suppress(OSError):
                os.unlink(join(directory, name))
        raise
    _apply(directory, installs, removals + retired)


def _apply(directory: str, installs: Iterable[Iterable[str]], removals: Iterable[str]) -> None:
    """Carry out a committed journal; every step may already be done."""
    for temporary, target in installs:
        with contextlib.suppress(FileNotFoundError):
            os.replace(os.path.join(directory, temporary), os.path.join(directory, target))
    for name in removals:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, JOURNAL))


def _recover(directory: str) -> None:
    """Finish a committed merge a killed worker left, and drop an uncommitted one's files."""
    try:
        with open(os.path.join(directory, JOURNAL), encoding="utf-8") as file:
            journal = json.load(file)
        _apply(directory, journal["install"], journal["remove"])
    except FileNotFoundError:
        pass
    for name in os.listdir(directory):
        if name == JOURNAL + ".tmp" or (name.startswith(".") and name.endswith(".db.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


# --- the scrape ----------------------------------------------------------------


class DirectoryCollector:
    """Every worker's values in ``directory``, dead workers pruned first; it never raises.

    >>> registry.register(DirectoryCollector(os.environ[ENV]))  # doctest: +SKIP
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> list[Any]:
        directory = self.directory
        if not os.path.isdir(directory):
            report("missing", directory, "no such directory")
            return []
        try:
            with merge_lock(directory) as held:
                if held:
                    prune_reporting(directory)
                return self._read()
        except OSError as error:
            # No lock (a read-only directory): nobody can merge there either.
            report(cause_of(error), directory, error)
            return self._read()

    def _read(self) -> list[Any]:
        files = sorted(glob.glob(os.path.join(self.directory, "*.db")))
        try:
            return list(MultiProcessCollector.merge(files, accumulate=True))
        except Exception:
            good = []
            for path in files:
                try:
                    read_entries(path)
                except FileNotFoundError:
                    continue
                except (OSError, ValueError) as error:
                    report("corrupt", self.directory, f"{os.path.basename(path)}: {error}")
                    continue
                good.append(path)
        try:
            return list(MultiProcessCollector.merge(good, accumulate=True))
        except Exception as error:
            report("error", self.directory, f"reading the files failed: {error!r}")
            return []
