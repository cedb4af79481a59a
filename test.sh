#!/usr/bin/env bash
# Run the whole test suite on SQLite, then again on MySQL/MariaDB when one is configured or reachable.
#   TEST_DATABASE_URL=mysql://user:pass@127.0.0.1:3306/tumor ./test.sh   (MySQL run required)
#   ./test.sh -k api                                                      (extra pytest arguments)
# Exits non-zero if any run fails or collects no tests.
set -uo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || exit 1
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt || exit 1

DEFAULT_MYSQL_URL="mysql://tumor:tumor@127.0.0.1:3306/tumor"
status=0

run_suite() {  # run_suite LABEL DATABASE_URL [pytest args...]
  local label="$1" url="$2"; shift 2
  echo "=== Test suite on $label ==="
  DATABASE_URL="$url" TEST_ARTIFACTS_DIR="test-artifacts/$label" .venv/bin/python -m pytest -p no:cacheprovider "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "!!! $label: no tests were collected; treating as a failure"
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "!!! $label: FAILED (exit $rc)"
    status=1
  else
    echo "=== $label: passed ==="
  fi
}

mysql_reachable() {  # mysql_reachable URL
  .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, dj_database_url, pymysql
c = dj_database_url.parse(sys.argv[1])
pymysql.connect(host=c["HOST"] or "127.0.0.1", port=int(c["PORT"] or 3306), user=c["USER"],
                password=c["PASSWORD"], database=c["NAME"], connect_timeout=3).close()
PY
}

run_suite sqlite "sqlite:///$(pwd)/var/test-unused.sqlite3" "$@"

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  if mysql_reachable "$TEST_DATABASE_URL"; then
    run_suite mysql "$TEST_DATABASE_URL" "$@"
  else
    echo "!!! TEST_DATABASE_URL is set but the database is not reachable"
    status=1
  fi
elif mysql_reachable "$DEFAULT_MYSQL_URL"; then
  run_suite mysql "$DEFAULT_MYSQL_URL" "$@"
else
  echo "--- MySQL/MariaDB not configured or not reachable: skipped the MySQL run (see docs/deployment.md, sql/create_database.sql)"
fi

[ "$status" -eq 0 ] && echo "ALL TEST RUNS PASSED" || echo "SOME TEST RUNS FAILED"
exit "$status"
