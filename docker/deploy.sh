#!/usr/bin/env bash
# Manage the ComfyUI Web Service's Docker stacks (the seed's deploy.sh commands).
#
#   ./deploy.sh [-p] build              build the image
#   ./deploy.sh [-p] start [-d]         start every service (-d: in the background)
#   ./deploy.sh [-p] stop               stop and remove the containers (volumes are kept)
#   ./deploy.sh [-p] status             list the services and their state
#   ./deploy.sh [-p] logs [SERVICE]     follow the logs
#   ./deploy.sh [-p] migrate            apply the database migrations
#   ./deploy.sh [-p] backup DIR         write the databases, outputs and uploads under DIR
#   ./deploy.sh [-p] update             pull the code, rebuild, migrate and restart
#
# -p uses docker-compose.prod.yml (MySQL, PostgreSQL, Redis, real nodes) instead of docker-compose.yml.
# Settings come from .env.local when it exists, else .env (the template).
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

compose_file=docker-compose.yml
if [ "${1:-}" = "-p" ] || [ "${1:-}" = "--prod" ]; then
  compose_file=docker-compose.prod.yml
  shift
fi
env_file=.env
[ -f .env.local ] && env_file=.env.local

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$compose_file" --env-file "$env_file" "$@"
  else
    docker-compose -f "$compose_file" --env-file "$env_file" "$@"
  fi
}

is_prod() { [ "$compose_file" = docker-compose.prod.yml ]; }

backup() {
  local dir=${1:?usage: deploy.sh backup DIR} stamp
  stamp=$(date +%Y%m%d-%H%M%S)
  mkdir -p "$dir"
  if is_prod; then
    # MySQL and PostgreSQL dump themselves consistently while running; outputs and uploads are archived.
    compose exec -T mysql sh -c 'exec mysqldump -uroot -p"$MYSQL_ROOT_PASSWORD" --single-transaction \
      --databases comfyui_client comfyui_admin comfyui_shared' | gzip > "$dir/mysql-$stamp.sql.gz"
    compose exec -T postgres pg_dump -U prefect prefect | gzip > "$dir/prefect-$stamp.sql.gz"
    compose exec -T api tar -czf - -C /app outputs uploads > "$dir/files-$stamp.tar.gz"
  else
    compose exec -T api comfyws-start backup > "$dir/comfyws-$stamp.tar.gz"
  fi
  echo "backup written to $dir ($stamp)"
}

command=${1:-}
[ -n "$command" ] || usage
shift
case "$command" in
  build) compose build "$@" ;;
  start)
    if [ "${1:-}" = "-d" ]; then compose up -d; else compose up; fi ;;
  stop) compose down ;;
  status) compose ps ;;
  logs) compose logs -f --tail=200 "$@" ;;
  migrate) compose run --rm migrate ;;
  backup) backup "$@" ;;
  update)
    git -C .. pull --ff-only
    compose build
    compose run --rm migrate
    compose up -d ;;
  -h|--help|help) usage 0 ;;
  *) echo "unknown command: $command" >&2; usage ;;
esac
