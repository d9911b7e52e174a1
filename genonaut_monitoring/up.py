"""``genonaut-monitoring up``: run the stack here, print where, stop it all at the end.

    genonaut-monitoring up                                # the demo API and everything else
    genonaut-monitoring up --config monitoring.toml --no-demo   # scrape your own running app
    make up                                               # the first, from this repository

What runs is :class:`genonaut_monitoring.stack.Stack`; the command's options are
:func:`genonaut_monitoring.cli.add_up_parser`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from genonaut_monitoring import builder, pgstack
from genonaut_monitoring.processes import StackError
from genonaut_monitoring.stack import COMPONENTS, Stack


def _report_slack(stack: Stack, seen: int) -> int:
    """Name the Slack payloads the stand-in wrote since ``seen``."""
    if stack.slack is None:
        return seen
    for path, payload in list(zip(stack.slack.paths, stack.slack.requests, strict=False))[seen:]:
        title = (payload.get("attachments") or [{}])[0].get("title") or payload.get("text", "")
        _say(f"Slack message received: {title} ({path})")
    return len(stack.slack.paths)


def _save_mail(stack: Stack, seen: int) -> int:
    """Write messages received since ``seen`` to workdir/mail as .eml files."""
    if stack.smtp is None:
        return seen
    folder = stack.workdir / "mail"
    folder.mkdir(exist_ok=True)
    messages = stack.smtp.messages[seen:]
    for offset, message in enumerate(messages, start=seen + 1):
        (folder / f"{offset:04d}.eml").write_bytes(bytes(message))
        _say(f"email received: {message['Subject']}")
    return seen + len(messages)


class _Stop(BaseException):
    """SIGINT or SIGTERM arrived: leave whatever the stack was doing, and stop it."""


_stopping = False


def _stop_on(signum: int, frame: object) -> None:
    # Once: a second Ctrl-C must not cut the clean-up short and leave processes behind.
    global _stopping
    if not _stopping:
        _stopping = True
        raise _Stop(signal.Signals(signum).name)


def _say(*lines: str, err: bool = False) -> None:
    """Print and flush; a closed stdout raises BrokenPipeError, for run() to stop on."""
    stream = sys.stderr if err else sys.stdout
    for line in lines:
        print(line, file=stream)
    stream.flush()


def _serve(stack: Stack) -> int:
    _say(f"starting (logs in {stack.workdir / 'logs'}) ...")
    stack.start()
    _say(
        *(f"  {name:<15} {url}" for name, url in stack.urls().items()),
        "Grafana needs Docker and is not started here: `docker compose up` runs the whole"
        " stack with it; in this repository `make preview` renders the panels without it.",
        "Ctrl-C stops everything.",
    )
    seen = slack_seen = 0
    while True:
        time.sleep(1.0)
        seen = _save_mail(stack, seen)
        slack_seen = _report_slack(stack, slack_seen)
        dead = [n for n, p in stack.processes.items() if not p.alive()]
        if dead:
            _say(f"{', '.join(dead)} stopped; see {stack.workdir / 'logs'}", err=True)
            return 1


def run(args: argparse.Namespace) -> int:
    """The ``up`` command: start everything, print the URLs, stop everything at the end.

    Whatever ends it (Ctrl-C, SIGTERM, a closed stdout, a component that dies, an
    error), everything it started is stopped before it returns. SIGINT gets a handler
    of its own: a shell starts background jobs with SIGINT ignored, and Ctrl-C (or a
    test's SIGINT) must stop the stack all the same.
    """
    from genonaut_monitoring import cli, settings

    try:
        cfg = cli.load_config(args.config, args.profile)
    except settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    components = COMPONENTS - ({"api"} if args.no_demo else set())
    postgres, note = pgstack.components_for_up(args.no_postgres, demo=not args.no_demo)
    if note:
        print(f"note: {note}", flush=True)
    stack = Stack(
        args.workdir,
        cfg=cfg,
        components=components | postgres,
        api_env={"DEMO_SEED_ROWS": str(args.seed_rows), "DEMO_FAULTS": "1" if args.faults else "0"},
        api_workers=args.workers,
        preferred_ports=True,
        slack_webhook_url=os.environ.get("SLACK_WEBHOOK_URL") or None,
        own_targets=args.no_demo,
    )
    global _stopping
    _stopping = False
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_on)
    try:
        return _run(stack)
    except _Stop:  # in the instant before _run's clean-up began
        stack.stop()
        return 0


def _run(stack: Stack) -> int:
    global _stopping
    code = 1
    try:
        code = _serve(stack)
    except _Stop:
        code = 0
    except BrokenPipeError:
        _stdout_gone()
        with contextlib.suppress(OSError):
            _say("stdout was closed; stopping everything", err=True)
    except (StackError, builder.BuildError) as exc:
        with contextlib.suppress(OSError):
            _say(f"error: {exc}", err=True)
    finally:
        _stopping = True
        try:
            _say("stopping ...")
        except OSError:
            _stdout_gone()
        stack.stop()
    return code


def _stdout_gone() -> None:
    """Whoever read stdout went away (``up | head -2``): write the rest to /dev/null.

    Else the flush at exit fails again, with a second error and exit status 120.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
