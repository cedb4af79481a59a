#!/usr/bin/env bash
# Set up (first run) and serve Liver Tumor Detection and Analysis on http://127.0.0.1:8000 with waitress.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt

# A secret key generated once and kept outside git (.secret_key is gitignored).
if [ -z "${SECRET_KEY:-}" ] && [ ! -s .secret_key ]; then
  .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(50))" > .secret_key
  chmod 600 .secret_key
fi
export DEBUG="${DEBUG:-0}"

.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput -v0
.venv/bin/python manage.py ensure_admin

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
# The background worker for whole-series analyses (the database is the queue).  SERIES_WORKER=0
# when workers run elsewhere (e.g. on other machines sharing the database).
if [ "${SERIES_WORKER:-1}" != "0" ]; then
  .venv/bin/python manage.py series_worker &
  WORKER_PID=$!
  trap 'kill "$WORKER_PID" 2>/dev/null; wait "$WORKER_PID" 2>/dev/null' EXIT
  trap 'exit 130' INT TERM
fi
# Series uploads (up to MAX_SERIES_UPLOAD_MB) need a larger request body than single slices.
BODY_MB=$(( ${MAX_SERIES_UPLOAD_MB:-600} + 5 ))
echo "Serving on http://$HOST:$PORT/ (Ctrl+C to stop)"
.venv/bin/waitress-serve --host="$HOST" --port="$PORT" --threads="${THREADS:-8}" \
  --max-request-body-size=$(( BODY_MB * 1024 * 1024 )) --channel-timeout=120 Tumor.wsgi:application
