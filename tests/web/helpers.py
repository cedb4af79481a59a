"""Helpers for the web tests: real CT slice uploads, the JSON contract's keys, and the app run in
subprocesses on a database file of their own (series workers)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

# The JSON contract's keys, declared once with the pipeline's tests.
from tests.analysis.slice.test_pipeline import LESION_KEYS, RESULT_KEYS  # noqa: F401

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]

PNG_TUMOR = "web_seed_440.png"
PNG_PLAIN = "web_seed_380.png"
DICOM = "web_ircadb01_image_84.dcm"
PASSWORD = "Liver-Scan-Review-42"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def upload(fixture: str = PNG_TUMOR, *, name: str | None = None, data: bytes | None = None,
           content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name or fixture, fixture_bytes(fixture) if data is None else data,
                              content_type=content_type)


def make_analysis(user, fixture: str = PNG_TUMOR, **kwargs):
    from TumorApp.analyses.services import create_analysis

    return create_analysis(user=user, upload=upload(fixture), **kwargs)


def stored_files(media_root) -> list:
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


# --- the app in subprocesses: pytest-django's SQLite test database is in memory, so a worker
# process gets a database file (and media folder) of its own under `tmp`.

def subprocess_env(tmp: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}", MEDIA_ROOT=str(tmp / "media"),
               ONNX_CACHE_DIR=env.get("ONNX_CACHE_DIR") or str(REPO / "var" / "cache" / "onnx"),
               PYTHONPATH=str(REPO), DEBUG="0", **extra)
    return env


def manage(env, *args, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def submit_series_folder(env, folder: Path) -> None:
    """Migrate, then submit the files in `folder` as one series of a new user, as the web app would."""
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", (
        "from pathlib import Path; from django.contrib.auth.models import User;"
        "from django.core.files.uploadedfile import SimpleUploadedFile as F;"
        "from TumorApp.series.services import submit_series;"
        "u = User.objects.create_user('w', password='Liver-Scan-Review-42');"
        f"submit_series(user=u, uploads=[F(p.name, p.read_bytes()) for p in sorted(Path('{folder}').iterdir())])"))


def series_row(db: Path, columns: str = "status, progress_done, progress_total, attempts") -> tuple:
    with sqlite3.connect(db, timeout=20) as con:
        return con.execute(f"SELECT {columns} FROM TumorApp_seriesjob").fetchone()


def wait_until_mid_run(db: Path, worker: subprocess.Popen, log: Path | None = None, timeout: float = 240) -> None:
    """Poll the job row until its worker is part-way through the series; fail if it ends or dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, done, total, _ = series_row(db)
        if status == "running" and 0 < done < total:
            return
        assert status in ("queued", "running") and worker.poll() is None, log.read_text() if log else status
        time.sleep(0.05)
    raise AssertionError("the worker never got going" + (":\n" + log.read_text() if log else ""))
