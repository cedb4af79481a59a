#!/usr/bin/env bash
# Set up (first run) and serve Liver Tumor Detection and Analysis on http://127.0.0.1:8000 with waitress.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PYTHON" -m venv .venv
fi
# pip only when requirements.txt changed since the last install (its check alone takes ~9 s).
STAMP=.venv/.requirements.sha256
WANT="$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("requirements.txt","rb").read()).hexdigest())')"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
  echo "$WANT" > "$STAMP"
fi

# A secret key generated once and kept outside git (.secret_key is gitignored).
if [ -z "${SECRET_KEY:-}" ] && [ ! -s .secret_key ]; then
  .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(50))" > .secret_key
  chmod 600 .secret_key
fi
export DEBUG="${DEBUG:-0}"

.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput -v0
.venv/bin/python manage.py ensure_admin
# The one-off ONNX export and int8 quantisation happen here, not during the first upload.
.venv/bin/python manage.py prepare_model

# The web server and the background worker for whole-series analyses (the database is the queue),
# each restarted if it dies (Tumor/supervise.py).  SERIES_WORKER=0 when workers run elsewhere (e.g.
# on other machines sharing the database); none with SERIES_QUEUE=celery, where `celery -A Tumor
# worker` runs them (docs/deployment.md).  Waitress's options (body limits from MAX_UPLOAD_MB /
# MAX_SERIES_UPLOAD_MB, timeouts, connection limit) are in Tumor/serve.py.
echo "Starting waitress on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (Ctrl+C to stop) ..."
exec .venv/bin/python -m Tumor.supervise
