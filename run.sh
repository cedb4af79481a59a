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

# Waitress's options (body limit from MAX_UPLOAD_MB, timeouts, connection limit) are in Tumor/serve.py.
exec .venv/bin/python -m Tumor.serve
