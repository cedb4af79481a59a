"""`manage.py check --deploy` in production mode (DEBUG off): only the HTTPS-only warnings the README explains remain."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HTTP_ONLY = {"security.W004", "security.W008", "security.W012", "security.W016"}  # HSTS, SSL redirect, secure cookies
HSTS_OPT_IN = {"security.W005", "security.W021"}  # HSTS for subdomains, preload list


def _deploy_check(**extra) -> set:
    env = {k: v for k, v in os.environ.items() if k not in {"HTTPS", "HSTS_INCLUDE_SUBDOMAINS", "HSTS_PRELOAD"}}
    env.update(DEBUG="0", SECRET_KEY="x" * 20 + os.urandom(24).hex(), DJANGO_SETTINGS_MODULE="Tumor.settings", **extra)
    run = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return set(re.findall(r"\((\w+\.\w+)\)", run.stdout + run.stderr))


@pytest.mark.parametrize("extra, expected", [
    ({}, HTTP_ONLY),
    ({"HTTPS": "1"}, HSTS_OPT_IN),
    ({"HTTPS": "1", "HSTS_INCLUDE_SUBDOMAINS": "1", "HSTS_PRELOAD": "1"}, set()),
], ids=["http", "https", "https+hsts-opt-in"])
def test_check_deploy_leaves_only_the_https_warnings(extra, expected):
    assert _deploy_check(**extra) == expected
