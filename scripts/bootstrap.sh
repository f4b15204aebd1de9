#!/usr/bin/env bash
# Install everything the service and its tests need, idempotently: Python venv + packages, the admin
# dashboard's npm packages, and (for the browser tests, as root) Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_browser=${1:-}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

if [ -f frontend/admin/package.json ]; then
  lock_stamp=frontend/admin/node_modules/.installed-$(cat frontend/admin/package*.json | sha256sum | cut -c1-16)
  if [ ! -f "$lock_stamp" ]; then
    if [ -f frontend/admin/package-lock.json ]; then
      (cd frontend/admin && npm ci --no-audit --no-fund --loglevel=error)
    else
      (cd frontend/admin && npm install --no-audit --no-fund --loglevel=error)
    fi
    touch "$lock_stamp"
  fi
fi

if [ "$want_browser" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "browser tests need Debian's chromium: sudo apt-get install chromium" >&2
  fi
fi

# tests/test_docker.py renders the compose files with `docker-compose config` (no Docker daemon needed).
if [ "$want_browser" = "--browser" ] && ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  else
    echo "the docker tests need docker-compose: sudo apt-get install docker-compose" >&2
  fi
fi
