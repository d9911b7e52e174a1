"""``genonaut-monitoring``: build the generated files, or run the stack on this machine.

    genonaut-monitoring build --config monitoring.toml --out monitoring/out
    genonaut-monitoring build --check            # exit 1 when the output is stale
    genonaut-monitoring build --target kubernetes --out k8s   # then: kubectl apply -k k8s
    genonaut-monitoring up --config monitoring.toml --no-demo
    genonaut-monitoring record --start -24h --out day.om.xz   # history from a Prometheus
    genonaut-monitoring backtest day.om.xz        # what the rules would have fired on it

``python build.py`` in the project's repository runs the same ``build``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genonaut_monitoring.builder import TARGETS

if TYPE_CHECKING:
    # Imported when needed: a broken config.py is reported by guarded(), not a traceback.
    from genonaut_monitoring import config

BUILD_DESCRIPTION = (
    "Generate Grafana dashboards and provisioning, Prometheus rules and configs, and the "
    "Alertmanager config (or, with --target kubernetes, the same as Prometheus Operator "
    "resources), then validate them. Nothing is written unless all of it is valid."
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--profile NAME``, shared by ``build`` and ``up``."""
    from genonaut_monitoring import config

    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file overriding the shipped settings (default: none, the demo's settings)",
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=sorted(config.PROFILES),
        help="settings profile to start from (default: default)",
    )


def add_build_options(parser: argparse.ArgumentParser, default_out: Path) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        help=f"output folder (default: {default_out}, or {target_out(default_out, 'kubernetes')} "
        "for --target kubernetes)",
    )
    parser.set_defaults(default_out=default_out)
    add_config_options(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate a fresh build and compare it with --out; exit 1 if they differ",
    )
    parser.add_argument(
        "--target",
        default="files",
        choices=TARGETS,
        help="files: configs, rules and dashboards for one host (compose, the local stack); "
        "kubernetes: PrometheusRules, ServiceMonitors, an AlertmanagerConfig and dashboard "
        "ConfigMaps for the Prometheus Operator, with a kustomization.yaml (default: files)",
    )


def target_out(default_out: Path, target: str) -> Path:
    """The default output folder of ``target``: ``out`` for files, ``out-kubernetes``..."""
    return (
        default_out if target == "files" else default_out.with_name(f"{default_out.name}-{target}")
    )


def load_config(path: Path | None, profile: str) -> config.Config:
    """The profile, with the adopter's file applied when one is given."""
    from genonaut_monitoring import config

    if path is None:
        return config.profile(profile)
    from genonaut_monitoring import settings

    return settings.load(path, profile)


def run_build(args: argparse.Namespace) -> int:
    """The ``build`` command: problems go to stderr, one per line, and nothing is written."""
    from genonaut_monitoring import builder, settings

    out = (args.out or target_out(args.default_out, args.target)).resolve()
    rerun = args.rerun if args.target == "files" else f"{args.rerun} --target {args.target}"
    try:
        cfg = load_config(args.config, args.profile)
    except settings.SettingsError as exc:
        print(f"build failed; {out} was left as it was:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    try:
        if args.check:
            differences = builder.check(cfg, out, args.target)
            if differences:
                print(f"{out} is out of date; run `{rerun}`:", file=sys.stderr)
                for line in differences:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"{out} is up to date")
            return 0
        outputs = builder.build(cfg, out, args.target)
    except builder.BuildError as exc:
        print(f"build failed; {out} was left as it was:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(builder.summary(outputs, out))
    return 0


def build_parser(prog: str, default_out: Path) -> argparse.ArgumentParser:
    """The parser of ``python build.py``: the ``build`` command's options alone."""
    parser = argparse.ArgumentParser(prog=prog, description=BUILD_DESCRIPTION)
    add_build_options(parser, default_out)
    parser.set_defaults(rerun=f"python {prog}")
    return parser


def add_up_parser(commands: Any) -> None:
    """The ``up`` command of ``genonaut-monitoring``."""
    parser = commands.add_parser(
        "up",
        help="run Prometheus, Alertmanager and the alert catchers here (no Docker)",
        description="Run Prometheus, Alertmanager, an SMTP catcher, a Slack stand-in and the "
        "demo API on loopback, with configs built for them. Grafana needs Docker "
        "(`docker compose up` runs the whole stack with it). With --no-demo, Prometheus "
        "scrapes the services' own targets from --config: your app, already running.",
    )
    add_config_options(parser)
    parser.add_argument(
        "--workdir", type=Path, default=Path(".run"), help="state and logs (default .run/)"
    )
    parser.add_argument(
        "--no-demo", action="store_true", help="do not start the demo API; scrape your own app"
    )
    parser.add_argument(
        "--seed-rows", type=int, default=100_000, help="demo catalogue size (default 100000)"
    )
    parser.add_argument(
        "--faults", action="store_true", help="enable the demo's /debug/faults routes"
    )
    parser.add_argument("--workers", type=int, default=1, help="demo API workers (default 1)")
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="no PostgreSQL nor postgres_exporter (default: the exporter on DATA_SOURCE_NAME's "
        "database, else the demo on a throwaway PostgreSQL when installed)",
    )
    parser.set_defaults(run=_run_up)


def _run_up(args: argparse.Namespace) -> int:
    from genonaut_monitoring import up

    return up.run(args)


# The extra that brings the modules each command needs (pip install 'genonaut-monitoring[X]').
EXTRAS = {"build": "build", "up": "stack", "record": "stack", "backtest": "stack"}
EXTRA_MODULES = frozenset(
    {
        "grafanalib",
        "attr",
        "jinja2",
        "jsonschema",
        "promql_parser",
        "yaml",
        "requests",
        "aiosmtpd",
        "uvicorn",
    }
)


def _broken_config() -> bool:
    """True (and said in one line) when config.py does not import: nothing can run."""
    from genonaut_monitoring import builder

    try:
        from genonaut_monitoring import config  # noqa: F401
    except Exception as exc:
        print(
            "nothing was built or started; the previous output was left as it was:\n  "
            + builder.python_error(exc),
            file=sys.stderr,
        )
        return True
    return False


def guarded(command: str, run: Callable[[], int]) -> int:
    """Run ``command``; a module that is not installed is one line, not a trace.

    Python errors in the definitions are the build's to report (builder.python_error).
    """
    from genonaut_monitoring import builder

    try:
        return run()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_MODULES:
            # Imported by a definition, and by nothing this package needs.
            print(f"genonaut-monitoring {command}: {builder.python_error(exc)}", file=sys.stderr)
            return 1
        # The runtime install has no build or stack dependencies: say which extra brings them.
        print(
            f"genonaut-monitoring {command}: {exc.name} is not installed; "
            f"install the extra: pip install 'genonaut-monitoring[{EXTRAS[command]}]'",
            file=sys.stderr,
        )
        return 2


def build_main(prog: str, default_out: Path, argv: Sequence[str] | None = None) -> int:
    """``python build.py``: the ``build`` command with the repository's default folder."""
    if _broken_config():
        return 1
    return guarded("build", lambda: run_build(build_parser(prog, default_out).parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    if _broken_config():
        return 1
    parser = argparse.ArgumentParser(
        prog="genonaut-monitoring",
        description="Monitoring as code for FastAPI services: build the files, run the stack.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build", help="generate and validate the files", description=BUILD_DESCRIPTION
    )
    add_build_options(build, Path("out"))
    build.set_defaults(run=run_build, rerun="genonaut-monitoring build")
    add_up_parser(commands)
    from genonaut_monitoring import backtest_report, record

    record.add_parser(commands)
    backtest_report.add_parser(commands)
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(record.join_time_options(args_list))
    return guarded(args.command, lambda: int(args.run(args)))


if __name__ == "__main__":
    sys.exit(main())
