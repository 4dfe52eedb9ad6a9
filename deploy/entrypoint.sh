#!/bin/sh
# The image's entrypoint, and what CI runs outside Docker (.ci/deploy-check), so both take the same path:
# wait for the database, apply migrations, then replace this shell with gunicorn (deploy/gunicorn.conf.py) so
# that SIGTERM reaches gunicorn itself, which lets requests in flight finish (GUNICORN_GRACEFUL_TIMEOUT).
#
# With arguments it runs them instead, in the same environment:
#   docker compose run --rm app python manage.py apikey create my-client
set -eu

cd "$(dirname "$0")/.."

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  # gunicorn's workers share their metrics through files here: a previous run's would add to this one's.
  rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
fi

python manage.py wait_for_database --timeout "${DATABASE_WAIT_TIMEOUT:-60}"
if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
  python manage.py migrate --noinput
fi
exec gunicorn config.wsgi --config deploy/gunicorn.conf.py
