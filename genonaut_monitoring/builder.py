"""The build pipeline: render every part in memory, validate it staged, swap it into place.

Each part of the project contributes files as ``{relative path: bytes}``:
``dashboards.outputs``, the ``provision`` templates, ``pgexporter.outputs`` (the
postgres_exporter queries and compose's role script) and ``alerts.outputs``.
Everything is rendered in memory, written to a staging folder beside the
output folder, validated there (PromQL contract, promtool, amtool), and only
then swapped into place. A failed build leaves the previous output untouched;
a Python error in a definition is reported as one problem naming its file and
line (:func:`python_error`), never as a traceback.

    >>> from genonaut_monitoring import builder, config
    >>> builder.build(config.CONFIG, Path("out"))  # doctest: +SKIP

The swap is one system call, ``renameat2(RENAME_EXCHANGE)``: the staged folder
and ``out`` trade names in one step, so at every instant ``out`` is the whole
previous tree or the whole new one, and a build killed at any point leaves one
of the two. (A symlink switched by a rename would be atomic too, but ``out``
would then be a link, which ``cp -r``, Docker's ``COPY`` and bind mounts each
treat differently from a folder; with the exchange, ``out`` stays a folder.)
Where the exchange does not exist (not Linux, or a filesystem without it), two
renames do the swap, and ``out`` is missing for the moment between them.

What docker compose sees: it bind-mounts folders under ``out-compose/``, and a
bind mount holds the folder that was in place when its container started. A
build puts new folders in place, so containers see it once restarted
(``docker compose restart prometheus alertmanager grafana``); until then they
read the tree they started with, which the build keeps whole as
``.out-compose.previous`` (the build after replaces it), so Grafana's provider,
which polls its folder, never finds its dashboards gone.

One build at a time per output folder's parent (a lock on that folder), so the
next build can tell a killed build's ``.<out>.staging-*`` leftovers from a live
one's, and removes them.

The command (``genonaut-monitoring build``, or ``python build.py`` in this
repository) lives in :mod:`genonaut_monitoring.cli`; the parts import only this
module, so the dependencies point one way.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Annotations only: the command reports a broken config.py through this module.
    from genonaut_monitoring import config

Outputs = dict[str, bytes]
PACKAGE = Path(__file__).resolve().parent


class BuildError(Exception):
    """A definition or a generated file is wrong; the message says where and what to do."""

    def __init__(self, problems: Iterable[str]) -> None:
        # Once each: two parts may both render a broken definition (alerts link dashboards).
        self.problems = list(dict.fromkeys(problems))
        super().__init__("\n".join(self.problems))


def _shown(filename: str) -> str:
    """A source file as its author knows it: the real path, relative to here if inside."""
    real = Path(os.path.realpath(filename))
    with contextlib.suppress(ValueError):
        return real.relative_to(Path.cwd().resolve()).as_posix()
    return str(real)


def _ours(filename: str) -> bool:
    real = os.path.realpath(filename)
    # The package's subpackages may be links to folders beside it (this repository).
    roots = [PACKAGE, *(path.resolve() for path in PACKAGE.iterdir() if path.is_symlink())]
    return any(real.startswith(f"{root}{os.sep}") for root in roots)


def _reraise_missing_dependency(error: Exception) -> None:
    """Let a library that is not installed through: the command names the extra to install."""
    if isinstance(error, ModuleNotFoundError) and not (error.name or "").startswith(
        "genonaut_monitoring"
    ):
        raise error


def python_error(error: BaseException) -> str:
    """One line for a Python error in a definition: the file and line it comes from, and what.

    The line is the innermost one in this package, so an error raised inside a library
    names the definition that called it. Two parts that hit the same error (the alerts
    render the dashboards too) give the same line, which BuildError then prints once.
    """
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{_shown(error.filename)}:{error.lineno}"
        message = f"{type(error).__name__}: {error.msg}"
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if _ours(f.filename)]
        where = f"{_shown(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
        message = f"{type(error).__name__}: {error}"
    return f"{where}: {message} (a Python error in a definition; fix it and build again)"


@dataclass(frozen=True)
class Part:
    """One contributor to the build: what it renders and how its output is checked."""

    name: str
    render: Callable[[config.Config], Outputs]
    # Checks run on the staged folder; each returns problems as sentences.
    validate: Callable[[Path, config.Config], list[str]]


# What the build can produce: files for one host (compose or the local stack), or the
# same definitions as Kubernetes resources for the Prometheus Operator.
TARGETS = ("files", "kubernetes")


def parts(target: str = "files") -> list[Part]:
    """The parts of ``target``'s build, in the order they render and validate."""
    if target == "kubernetes":
        from genonaut_monitoring import kubernetes

        return [Part("kubernetes", kubernetes.outputs, kubernetes.validate)]
    if target != "files":
        raise ValueError(f"unknown build target {target!r}: choose one of {', '.join(TARGETS)}")
    from genonaut_monitoring import alerts, dashboards, pgexporter, provision

    return [
        Part("dashboards", dashboards.outputs, dashboards.validate),
        Part("provisioning", provision.outputs, provision.validate),
        Part("postgres-exporter", pgexporter.outputs, pgexporter.validate),
        Part("alerts", alerts.outputs, alerts.validate),
    ]


# --- external validators ---------------------------------------------------------

# Debian package that provides each validator and each program the stack runs.
TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
}


def run_tool(args: list[str], what: str, cwd: Path | None = None) -> list[str]:
    """Run a validator such as promtool; return its complaint as problems, or none.

    A missing tool is a problem under CI (``CI=true``) and a warning otherwise,
    so a developer without Prometheus installed can still build.
    """
    tool = shutil.which(args[0])
    if tool is None:
        hint = TOOL_PACKAGES.get(args[0], args[0])
        message = f"{what}: {args[0]} not found; install it (Debian: apt-get install {hint})"
        if os.environ.get("CI", "").lower() == "true":
            return [message]
        print(f"warning: {message}; skipped", file=sys.stderr)
        return []
    result = subprocess.run(
        [tool, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).strip()
    return [f"{what}: {' '.join(args)} failed:\n{output}"]


# --- render, stage, swap ------------------------------------------------------------


def _parts(target: str) -> list[Part]:
    if target not in TARGETS:
        return parts(target)  # a ValueError naming the targets there are
    try:
        return parts(target)
    except Exception as exc:
        _reraise_missing_dependency(exc)
        raise BuildError([python_error(exc)]) from None


def render(cfg: config.Config, target: str = "files") -> Outputs:
    """Render every part in memory; raise BuildError if two parts claim one path."""
    outputs: Outputs = {}
    problems: list[str] = []
    for part in _parts(target):
        try:
            produced = part.render(cfg)
        except BuildError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:
            _reraise_missing_dependency(exc)
            problems.append(python_error(exc))
            continue
        for path, content in produced.items():
            if path in outputs:
                problems.append(f"{part.name}: {path} is also written by another part")
            outputs[path] = content
    if problems:
        raise BuildError(problems)
    return dict(sorted(outputs.items()))


def write_tree(folder: Path, outputs: Mapping[str, bytes]) -> None:
    """Write ``outputs`` under ``folder``."""
    for relative, content in outputs.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def validate(folder: Path, cfg: config.Config, target: str = "files") -> None:
    """Run every part's checks on a written tree; raise BuildError with all problems."""
    problems: list[str] = []
    for part in _parts(target):
        try:
            problems.extend(part.validate(folder, cfg))
        except Exception as exc:
            _reraise_missing_dependency(exc)
            problems.append(python_error(exc))
    if problems:
        raise BuildError(problems)


def stage(cfg: config.Config, out: Path, target: str = "files") -> tuple[Path, Outputs]:
    """Render and validate into a fresh folder beside ``out``; return it and the outputs."""
    outputs = render(cfg, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp makes a private folder; the output is read by other users too (Grafana's
    # and Prometheus' containers mount it), so give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        write_tree(staging, outputs)
        validate(staging, cfg, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, outputs


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Trade the names of ``a`` and ``b`` in one step; False where that is not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(a), None, str(b))


def swap_into_place(staging: Path, out: Path, keep_previous: bool = False) -> None:
    """Put ``staging`` in ``out``'s place in one atomic step (see the module docstring).

    ``keep_previous``: keep the replaced tree whole as ``.<out>.previous`` until the next
    swap, for readers that still hold it (compose's bind mounts).
    """
    if not out.exists() and not out.is_symlink():
        staging.rename(out)
        return
    if _exchange(staging, out):
        replaced = staging
    else:
        replaced = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(replaced)
        out.rename(replaced)
        staging.rename(out)
    previous = out.parent / f".{out.name}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if keep_previous:
        with contextlib.suppress(OSError):
            replaced.rename(previous)
            return
    shutil.rmtree(replaced, ignore_errors=True)


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One build at a time beside ``out``: a lock on its parent folder, released at exit."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_leftovers(out: Path) -> list[Path]:
    """Remove what killed builds left beside ``out``; hold :func:`exclusive`. Returns them."""
    found = [
        *out.parent.glob(f".{out.name}.staging-*"),
        *out.parent.glob(f".{out.name}.old-*"),
    ]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found


def read_tree(folder: Path) -> Outputs:
    """Every file under ``folder`` as ``{relative path: bytes}``."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def drift(expected: Mapping[str, bytes], actual: Mapping[str, bytes]) -> list[str]:
    """Describe how the files on disk differ from a fresh build."""
    lines = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            lines.append(f"missing: {path}")
        elif path not in expected:
            lines.append(f"not generated by this build: {path}")
        elif expected[path] != actual[path]:
            lines.append(f"differs: {path}")
    return lines


def build(cfg: config.Config, out: Path, target: str = "files") -> Outputs:
    """Render, validate and atomically write ``out``; return what was written."""
    with exclusive(out):
        remove_leftovers(out)
        staging, outputs = stage(cfg, out, target)
        swap_into_place(staging, out, keep_previous=True)
    return outputs


def check(cfg: config.Config, out: Path, target: str = "files") -> list[str]:
    """Validate a fresh build and compare it with ``out``; return the drift found."""
    with exclusive(out):
        staging, outputs = stage(cfg, out, target)
        shutil.rmtree(staging, ignore_errors=True)
    return drift(outputs, read_tree(out))


def summary(outputs: Mapping[str, bytes], out: Path) -> str:
    """One line saying what was written where."""
    counts: dict[str, int] = {}
    for path in outputs:
        top = path.split("/", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    parts_text = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"wrote {len(outputs)} files to {out} ({parts_text})"
