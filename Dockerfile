# The demo content API, as `docker compose up` runs it.
#
#   docker build -t genonaut-monitoring-demo .
#   docker run -p 127.0.0.1:8000:8000 genonaut-monitoring-demo   # SQLite in the home folder
#
# Pinned by version so a rebuild gets the same interpreter; bump it on purpose.
FROM python:3.11.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs: genonaut_monitoring/ (whose subpackages link to the
# top-level folders), those folders, and the files pyproject.toml names. The project is
# installed as a wheel with the demo's extras, so nothing of the source tree stays.
WORKDIR /src
COPY pyproject.toml README.md RUNBOOK.md ./
COPY genonaut_monitoring/ genonaut_monitoring/
COPY exporters/ exporters/
COPY dashboards/ dashboards/
COPY alerts/ alerts/
COPY provisioning/ provisioning/
RUN pip install ".[demo,postgres]" && rm -rf /src

RUN useradd --system --uid 10001 --create-home --home-dir /home/genonaut genonaut
USER genonaut
# Writable, for the SQLite fallback when DATABASE_URL is not set.
WORKDIR /home/genonaut

EXPOSE 8000
# python:slim has no curl; the interpreter is there anyway.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]
# The API writes its own JSON access line per request; uvicorn's would repeat it as text.
CMD ["uvicorn", "genonaut_monitoring.exporters.demo:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
