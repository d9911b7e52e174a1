"""Child processes of the stack, and the system tools they run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from genonaut_monitoring.builder import TOOL_PACKAGES


class StackError(RuntimeError):
    """A component could not start; the message names it and points at its log."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else any free port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise StackError("no free port on 127.0.0.1")


def find_binary(name: str) -> str:
    """Absolute path of a system tool, or a StackError saying which package brings it."""
    path = shutil.which(name)
    if path is None:
        package = TOOL_PACKAGES.get(name, name)
        raise StackError(
            f"{name} is not installed: apt-get install --no-install-recommends {package}"
        )
    return path


class Process:
    """A child process in its own process group, logging to a file, stopped with its children.

    Its own group, so a terminal's Ctrl-C reaches only the stack, which stops each part
    in turn; the stack's session still, so whoever started the stack can find (and end)
    everything it started by its session.
    """

    def __init__(
        self, name: str, args: list[str], log: Path, env: Mapping[str, str], cwd: Path
    ) -> None:
        self.name, self.args, self.log, self.env, self.cwd = name, args, log, env, cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                process_group=0,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
