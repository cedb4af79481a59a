"""The series queue: exclusive claims, recovery of jobs whose worker died, and a real worker process
killed mid-job whose job is finished, once, by the next worker."""
from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from TumorApp.series import services as series_services
from TumorApp.models import SeriesJob
from tests.analysis.series_fixtures import dicom_series

from ..helpers import REPO, manage, series_row, submit_series_folder, subprocess_env, wait_until_mid_run

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(user, n=2) -> SeriesJob:
    uploads = [SimpleUploadedFile(name, data) for name, data in dicom_series(n)]
    return series_services.submit_series(user=user, uploads=uploads)


def test_a_job_is_claimed_by_one_worker_only(user):
    job = _submit(user)
    first = series_services.claim_next("hostA:1:aaaa")
    second = series_services.claim_next("hostB:2:bbbb")
    assert first.pk == job.pk and first.status == "running" and first.attempts == 1
    assert second is None


def test_stale_or_dead_workers_jobs_are_requeued_live_ones_kept(user):
    stale, alive, dead_here = _submit(user), _submit(user), _submit(user)
    now = timezone.now()
    SeriesJob.objects.filter(pk=stale.pk).update(status="running", claimed_by="elsewhere:1:x",
                                                 heartbeat_at=now - timedelta(minutes=5))
    SeriesJob.objects.filter(pk=alive.pk).update(status="running", claimed_by="elsewhere:2:y", heartbeat_at=now)
    # A worker on this host whose process is gone: re-queued at once, however fresh its heartbeat.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    SeriesJob.objects.filter(pk=dead_here.pk).update(
        status="running", claimed_by=f"{series_services.socket.gethostname()}:{gone.pid}:z", heartbeat_at=now)

    assert sorted(series_services.recover_jobs()) == sorted([stale.pk, dead_here.pk])
    assert SeriesJob.objects.get(pk=alive.pk).status == "running"
    assert SeriesJob.objects.get(pk=stale.pk).status == "queued"


def test_a_job_whose_worker_died_on_every_attempt_fails_saying_why(user, auth_client, settings):
    settings.SERIES_MAX_ATTEMPTS = 2
    job = _submit(user)
    old = timezone.now() - timedelta(minutes=5)
    for attempt in (1, 2):
        assert series_services.claim_next(f"elsewhere:{attempt}:w").attempts == attempt
        SeriesJob.objects.filter(pk=job.pk).update(heartbeat_at=old)  # that worker died
        recovered = series_services.recover_jobs()
        assert recovered == ([job.pk] if attempt == 1 else [])
    body = auth_client.get(f"/api/series/{job.pk}/").json()
    assert body["status"] == "failed" and "stopped its worker 2 times" in body["error"]
    assert series_services.claim_next("elsewhere:3:w") is None  # not run a third time


def test_a_worker_that_lost_its_claim_stores_nothing(user):
    job = _submit(user)
    slow = series_services.claim_next("hostA:1:slow")
    SeriesJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert series_services.recover_jobs() == [job.pk]
    fast = series_services.claim_next("hostB:2:fast")
    assert fast.attempts == 2

    assert series_services.run_job(slow, "hostA:1:slow") is False  # the claim moved on: result dropped
    assert SeriesJob.objects.get(pk=job.pk).status == "running"
    assert series_services.run_job(fast, "hostB:2:fast") is True
    done = SeriesJob.objects.get(pk=job.pk)
    assert done.status == "done" and done.result["slices"] == 2
    assert all("fast" in path for path in done.files.values())


@pytest.mark.slow
def test_killed_worker_job_is_resumed_after_restart(tmp_path):
    """A real `series_worker` process is SIGKILLed mid-series; the next one finishes that job, once."""
    env = subprocess_env(tmp_path)
    series = tmp_path / "series"
    series.mkdir()
    for name, data in dicom_series(24):
        (series / name).write_bytes(data)
    submit_series_folder(env, series)
    db = tmp_path / "db.sqlite3"
    assert series_row(db) == ("queued", 0, 24, 0)

    worker = subprocess.Popen([sys.executable, "manage.py", "series_worker", "--batch-size", "2", "--poll", "0.2"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_mid_run(db, worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    status, done, total, attempts = series_row(db)
    assert status == "running" and done < total and attempts == 1  # the dead worker left it mid-way

    proc = manage(env, "series_worker", "--once")  # the restart: recovers, runs, exits when idle
    assert "1 job(s) run" in proc.stdout
    assert series_row(db) == ("done", 24, 24, 2)
    (result,) = series_row(db, "result")
    assert '"slices": 24' in result
    # A further restart finds nothing to do: the job is not run twice.
    assert "0 job(s) run" in manage(env, "series_worker", "--once").stdout


def test_labels_written_slice_by_slice_read_back_as_the_volume(settings, tmp_path):
    import numpy as np
    from django.core.files.storage import default_storage

    settings.MEDIA_ROOT = tmp_path
    labels = np.random.default_rng(0).integers(0, 3, (4, 5, 6), dtype=np.uint8)
    path = series_services._save_npy("series/x/labels.npy", iter(labels), shape=labels.shape, dtype=np.uint8)
    stored = np.load(default_storage.path(path), allow_pickle=False)
    assert stored.dtype == np.uint8 and np.array_equal(stored, labels)
