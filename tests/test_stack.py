"""The local stack runner (`make up`): starts, serves, and stops leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from genonaut_monitoring.stack import SlackStandIn, SmtpCatcher, Stack, StackError, free_port
from tests.conftest import ROOT, require_tool


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (e.g. a work folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_smtp_catcher_keeps_every_message() -> None:
    catcher = SmtpCatcher(free_port())
    catcher.start()
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@localhost", "b@localhost", "hi"
        message.set_content("body text")
        with smtplib.SMTP("127.0.0.1", catcher.port, timeout=5) as client:
            client.send_message(message)
    finally:
        catcher.stop()
    assert [m["Subject"] for m in catcher.messages] == ["hi"]
    assert catcher.messages[0].get_content().strip() == "body text"


def test_slack_stand_in_fails_as_told_then_accepts_json() -> None:
    slack = SlackStandIn(free_port())
    slack.start()
    try:
        slack.fail_next(2)
        codes = [
            requests.post(slack.url, json={"text": f"try {i}"}, timeout=5).status_code
            for i in range(3)
        ]
        not_json = requests.post(slack.url, data=b"text", timeout=5).status_code
    finally:
        slack.stop()
    assert codes == [500, 500, 200]
    assert not_json == 500
    assert slack.requests == [{"text": "try 2"}]
    assert slack.attempts == 4


def test_slack_stand_in_writes_each_accepted_payload_to_a_numbered_file(tmp_path: Path) -> None:
    folder = tmp_path / "slack"
    for run, texts in enumerate((["first", "second"], ["third"])):
        slack = SlackStandIn(free_port(), folder)
        slack.start()
        try:
            if run == 0:
                slack.fail_next(1)
                assert (
                    requests.post(slack.url, json={"text": "refused"}, timeout=5).status_code == 500
                )
            for text in texts:
                payload = {"text": text, "attachments": [{"title": f"[FIRING:1] {text} é"}]}
                assert requests.post(slack.url, json=payload, timeout=5).status_code == 200
        finally:
            slack.stop()
        # A second run continues the numbering: nothing of the first is overwritten.
        assert [p.name for p in slack.paths] == (
            ["0001.json", "0002.json"] if run == 0 else ["0003.json"]
        )
    written = {p.name: json.loads(p.read_text()) for p in sorted(folder.iterdir())}
    assert list(written) == ["0001.json", "0002.json", "0003.json"]  # no partial file left
    assert [w["text"] for w in written.values()] == ["first", "second", "third"]
    assert written["0003.json"]["attachments"][0]["title"] == "[FIRING:1] third é"


def test_stack_runs_prometheus_scraping_the_api_and_stops_cleanly(tmp_path: Path) -> None:
    require_tool("prometheus")
    with Stack(
        tmp_path, components={"api", "prometheus"}, api_env={"DEMO_SEED_ROWS": "200"}
    ) as stack:
        assert requests.get(f"{stack.api_url}/api/v1/content?page=1&page_size=5", timeout=5).ok
        up = stack.wait_for(
            lambda: stack.query(f'up{{job="{stack.cfg.jobs[0]}"}} == 1'), 30, "a scrape"
        )
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{stack.ports.api}"
        ports = [stack.ports.api, stack.ports.prometheus]
    assert not any(_listening(port) for port in ports)
    assert _processes_mentioning(str(tmp_path)) == []


def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    require_tool("prometheus")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        stack = Stack(tmp_path, components={"prometheus"})
        stack.ports = replace(stack.ports, prometheus=busy.getsockname()[1])
        port = busy.getsockname()[1]
        with pytest.raises(StackError) as raised, stack:
            pass
    finally:
        busy.close()
    message = str(raised.value)
    assert message.startswith(
        f"prometheus exited at start; its log ({tmp_path / 'logs' / 'prometheus.log'}):\n"
    )
    # The quoted log gives the reason.
    assert f"listen tcp 127.0.0.1:{port}: bind: address already in use" in message
    assert _processes_mentioning(str(tmp_path)) == []


def _in_session(session: int) -> list[str]:
    """Live processes of a session: what a stack started there and did not stop."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, _ppid, _group, sid = stat.rsplit(")", 1)[1].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def _left_in_session(session: int, grace: float = 5.0) -> list[str]:
    deadline = time.monotonic() + grace
    while (left := _in_session(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _up(workdir: Path, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """``genonaut-monitoring up`` in a session of its own, as a terminal would start it.

    ``sigint_ignored``: started the way a shell starts a background job (``make test &``),
    with SIGINT ignored, which a child inherits.
    """
    for tool in ("prometheus", "prometheus-alertmanager"):
        require_tool(tool)
    command = [
        *[sys.executable, "-m", "genonaut_monitoring", "up"],
        *["--workdir", str(workdir), "--seed-rows", "500"],
    ]
    if sigint_ignored:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SLACK_WEBHOOK_URL": ""},
        start_new_session=True,
    )


def _read_until(process: subprocess.Popen[str], text: str, timeout: float = 120) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith(text):
            return lines
    raise AssertionError(f"no line starting {text!r}:\n" + "\n".join(lines))


@pytest.mark.e2e
@pytest.mark.parametrize("sigint", ["as inherited", "ignored by the shell"])
def test_make_up_prints_urls_and_leaves_no_process_behind_on_ctrl_c(
    tmp_path: Path, sigint: str
) -> None:
    workdir = tmp_path / "run"
    process = _up(workdir, sigint_ignored=sigint == "ignored by the shell")
    try:
        lines = _read_until(process, "Ctrl-C stops everything")
        output = "\n".join(lines)
        for name in ("Demo API", "Prometheus", "Alertmanager", "SMTP catcher", "Slack stand-in"):
            assert f"  {name}" in output
        assert f"(messages in {workdir / 'mail'})" in output
        assert f"(payloads in {workdir / 'slack'})" in output
        assert "Grafana needs Docker" in output
        urls = {
            line.split()[0] + line.split()[1]: line.split()[-1]
            for line in lines
            if line.startswith("  Prometheus") or line.startswith("  Alertmanager")
        }
        for url in urls.values():
            assert requests.get(f"{url}/-/ready", timeout=5).status_code == 200
        assert len(_in_session(process.pid)) > 3  # the stack's processes share its session
        # A Slack post (a warning goes nowhere else) is written where `up` said, and named.
        (slack_line,) = [line for line in lines if line.startswith("  Slack stand-in")]
        payload = {"attachments": [{"title": "[FIRING:1] ApiHighLatency (warning)"}]}
        assert requests.post(slack_line.split()[2], json=payload, timeout=5).status_code == 200
        assert process.stdout is not None
        received = process.stdout.readline().rstrip()
        assert received == (
            "Slack message received: [FIRING:1] ApiHighLatency (warning) "
            f"({workdir / 'slack' / '0001.json'})"
        )
        assert json.loads((workdir / "slack" / "0001.json").read_text()) == payload
    finally:
        # Ctrl-C at a terminal: SIGINT to the foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "stopping" in rest
    assert _left_in_session(process.pid) == []
    assert _processes_mentioning(str(workdir)) == []


@pytest.mark.e2e
def test_up_stops_everything_when_its_stdout_closes_then_sigterm(tmp_path: Path) -> None:
    """``genonaut-monitoring up | head -2``, then SIGTERM."""
    workdir = tmp_path / "run"
    process = _up(workdir)
    try:
        assert process.stdout is not None
        head = [process.stdout.readline() for _ in range(2)]
        assert head[0].startswith("starting"), head
        process.stdout.close()
        _wait_for(lambda: len(_in_session(process.pid)) > 3, "the stack to start")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode in (0, 1)
    assert _left_in_session(process.pid) == []
    assert _processes_mentioning(str(workdir)) == []


@pytest.mark.e2e
def test_up_stops_everything_when_a_component_dies(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    process = _up(workdir)
    try:
        _read_until(process, "Ctrl-C stops everything")
        [prometheus] = [
            int(line.split(":")[0])
            for line in _in_session(process.pid)
            if "--storage.tsdb.path" in line
        ]
        os.kill(prometheus, signal.SIGKILL)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1
    assert f"prometheus stopped; see {workdir.resolve() / 'logs'}" in rest
    assert _left_in_session(process.pid) == []
    assert _processes_mentioning(str(workdir)) == []


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.2)
