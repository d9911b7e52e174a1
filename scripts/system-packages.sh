#!/usr/bin/env bash
# Install the Debian packages the build's validators and the tests use, where missing:
# Prometheus and promtool, Alertmanager and amtool, docker-compose, PostgreSQL,
# postgres_exporter, node with npm (the dashboards' type check), and python3-venv where
# python3 cannot make a virtualenv. Nothing to do when all are present. Runs apt-get as
# root, or through sudo when that needs no password.
# Where it cannot install, it prints the command to run; under CI=true that is a failure.
set -euo pipefail

packages=(prometheus prometheus-alertmanager docker-compose postgresql prometheus-postgres-exporter)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(nodejs npm)
# Debian's python3 makes virtualenvs only with python3-venv.
"${PYTHON:-python3}" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

command="apt-get install -y --no-install-recommends ${missing[*]}"
cannot() {
  echo "system packages missing: ${missing[*]}; $1. Install them with: sudo $command" >&2
  # Outside CI the build still works; the tests that need a missing tool say so and skip.
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
}
command -v apt-get >/dev/null || cannot "this is not a Debian machine (no apt-get)"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cannot "installing them needs root"
fi

echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
# Installing a package may start its service; the tests start their own, on free ports.
for svc in prometheus prometheus-alertmanager postgresql prometheus-postgres-exporter; do
  "${as_root[@]}" service "$svc" stop >/dev/null 2>&1 || true
done
