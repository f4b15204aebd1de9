#!/usr/bin/env bash
# Container entrypoint of the ComfyUI Web Service image: wait for the services this role needs, then run it.
#
#   comfyws-start comfyws api --host 0.0.0.0      any command: run as given (the compose files' `command:`)
#   comfyws-start backup > backup.tar.gz          data (SQLite copied online), outputs and uploads as a tar.gz
#
# COMFYWS_WAIT_FOR="host:port ..." names TCP services to wait for (COMFYWS_WAIT_SECONDS each, default 120),
# so a role started before its database or Prefect server is up does not fail on its first connection.
set -euo pipefail

wait_for() {
  local target=$1 host=${1%:*} port=${1##*:} deadline=$((SECONDS + ${COMFYWS_WAIT_SECONDS:-120}))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "comfyws-start: $target did not accept connections within ${COMFYWS_WAIT_SECONDS:-120} s" >&2
      exit 1
    fi
    sleep 1
  done
}

backup() {
  # SQLite files (ours and a local Prefect server's) are copied with the online backup API, so a running
  # service still yields consistent copies; outputs and uploads are archived as they are.
  local staging outputs=${COMFYWS_OUTPUTS_DIR:-/app/outputs} uploads=${COMFYWS_UPLOADS_DIR:-/app/uploads}
  staging=$(mktemp -d)
  python - "${COMFYWS_DATA_DIR:-/app/data}" "$staging/data" <<'PY'
import pathlib, sqlite3, sys
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for db in sorted(source.rglob("*.db")):
    copy_path = target / db.relative_to(source)
    copy_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as live, sqlite3.connect(copy_path) as copy:
        live.backup(copy)
PY
  tar -czf - -C "$staging" data -C "$(dirname "$outputs")" "$(basename "$outputs")" \
    -C "$(dirname "$uploads")" "$(basename "$uploads")"
  rm -rf "$staging"
}

for target in ${COMFYWS_WAIT_FOR:-}; do
  wait_for "$target"
done

if [ "${1:-}" = "backup" ]; then
  backup
  exit 0
fi
if [ $# -eq 0 ]; then
  set -- comfyws api --host 0.0.0.0 --port 8000
fi
exec "$@"
