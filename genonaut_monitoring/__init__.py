"""Monitoring as code for FastAPI services: metrics, dashboards, alerts and their stack.

An application imports only the runtime part, which needs nothing the build needs::

    from genonaut_monitoring.exporters import configure_logging, instrument

    configure_logging()
    instrument(app, engine=engine)

``genonaut-monitoring build --config monitoring.toml`` (the ``[build]`` extra)
turns :mod:`~genonaut_monitoring.config`, :mod:`~genonaut_monitoring.dashboards`
and :mod:`~genonaut_monitoring.alerts` into Grafana, Prometheus and Alertmanager
files; ``genonaut-monitoring up`` (the ``[stack]`` extra) runs them on this machine.
"""

from pathlib import Path

# Not resolved: in a source checkout the subpackages are links to the repository's
# top-level folders, and data files are found through this folder either way.
PACKAGE_DIR = Path(__file__).parent

__all__ = ["PACKAGE_DIR"]
