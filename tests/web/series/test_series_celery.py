"""SERIES_QUEUE=celery (TumorApp/series/tasks.py, Tumor/celery.py) against a real redis-server and a real
Celery worker (Celery's embedded test worker, in a thread of this process, so it sees the test
database): an API upload gives the database worker's result; a message delivered twice runs its job
once; jobs left without a message (broker down at upload, no worker running, a dead worker) run
when a worker starts; and `celery -A Tumor worker` as a process, whose pool process is killed
mid-job."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.signals import task_postrun
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from TumorApp.series import services as series_services
from TumorApp.models import SeriesJob
from tests.analysis.series_fixtures import dicom_series

from ..helpers import REPO, series_row, submit_series_folder, subprocess_env, wait_until_mid_run

pytestmark = pytest.mark.django_db(transaction=True)  # the worker thread has its own connection
URL = "/api/series/"


class RedisServer:
    """A throw-away redis-server on a free loopback port that keeps nothing on disk, so a restart
    loses its messages (as a broker that lost its data would)."""

    def __init__(self, binary: str, folder):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.binary, self.folder, self.proc = binary, folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self, line: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(line + b"\r\n")
            return s.recv(64)

    def start(self) -> None:
        if self.proc is not None:
            return
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.command(b"PING").startswith(b"+PONG"):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server): the Celery queue tests need a "
                    "real broker")
    from Tumor.celery import app

    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    # The app reads its settings once, and opens its connection pools at first use: set the URL before.
    app.conf.broker_url = server.url
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server, settings):
    """The broker, running and empty (no message of an earlier test's job ids), in celery mode."""
    redis_server.start()
    assert redis_server.command(b"FLUSHALL").startswith(b"+OK")
    settings.SERIES_QUEUE = "celery"
    return redis_server


@contextmanager
def celery_worker():
    """A real Celery worker (solo pool, the worker's bootsteps and sweep included) in a thread."""
    from celery.contrib.testing.worker import start_worker

    from Tumor.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=120):
        yield


@contextmanager
def deliveries():
    """The return value of each run_series_job the worker handles (True: it ran the job)."""
    seen: list[bool] = []

    def record(sender=None, retval=None, **_):
        if sender is not None and sender.name == "TumorApp.run_series_job":
            seen.append(retval)

    task_postrun.connect(record, weak=False)
    try:
        yield seen
    finally:
        task_postrun.disconnect(record)


def files(items) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in items]


def finished(job_id: int, timeout: float = 240) -> SeriesJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = SeriesJob.objects.get(pk=job_id)
        if job.status in (SeriesJob.Status.DONE, SeriesJob.Status.FAILED):
            return job
        time.sleep(0.1)
    pytest.fail(f"series job {job_id} is still {job.status} after {timeout} s")


def test_api_upload_runs_in_celery_with_the_database_workers_result(auth_client, settings, redis):
    items = dicom_series(3)
    settings.SERIES_QUEUE = "database"
    reference = auth_client.post(URL, {"file": files(items)}).json()["id"]
    assert series_services.work(once=True) == 1
    expected = auth_client.get(f"{URL}{reference}/").json()
    assert expected["status"] == "done"

    settings.SERIES_QUEUE = "celery"
    with celery_worker():
        response = auth_client.post(URL, {"file": files(items)})
        assert response.status_code == 202 and response.json()["status"] == "queued"
        job = finished(response.json()["id"])
    assert job.status == "done" and job.attempts == 1, job.error

    body = auth_client.get(f"{URL}{job.pk}/").json()
    per_job = {"id", "created_at", "export_url", "versions"}  # versions: when this job's version 0 was made
    assert [v["number"] for v in body["versions"]] == [v["number"] for v in expected["versions"]] == [0]
    assert {k: v for k, v in body.items() if k not in per_job} == {k: v for k, v in expected.items() if k not in per_job}
    export = auth_client.get(body["export_url"])
    assert export.status_code == 200 and "segmentation.dcm" in export["Content-Disposition"]
    assert auth_client.get(f"/series/{job.pk}/slices/1.png").status_code == 200


def test_a_message_delivered_twice_runs_the_job_once(user, redis):
    from TumorApp.series.tasks import run_series_job

    job = series_services.submit_series(user=user, uploads=files(dicom_series(2)))  # the first message
    run_series_job.delay(job.pk)  # the same message again, as a broker redelivers it
    with deliveries() as seen, celery_worker():
        finished(job.pk)
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(seen) >= 2 and seen.count(True) == 1, seen
    job.refresh_from_db()
    assert job.status == "done" and job.attempts == 1 and job.result["slices"] == 2


def test_jobs_left_without_a_message_run_when_a_worker_starts(auth_client, user, redis, caplog):
    redis.stop()
    response = auth_client.post(URL, {"file": files(dicom_series(2))})
    assert response.status_code == 202  # stored and queued: the upload does not depend on the broker
    broker_was_down = response.json()["id"]
    assert "broker is unreachable" in caplog.text
    redis.start()  # empty: as after a broker that lost its data
    # A job whose worker, on another machine, died mid-way: recover_jobs re-queues it (stale heartbeat).
    worker_died = series_services.submit_series(user=user, uploads=files(dicom_series(2))).pk
    series_services.claim(worker_died, "elsewhere:1:dead")
    SeriesJob.objects.filter(pk=worker_died).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    redis.command(b"FLUSHALL")  # the dead worker had taken its message
    no_worker_yet = auth_client.post(URL, {"file": files(dicom_series(2))}).json()["id"]  # its message waits

    with celery_worker():  # its start-up sweep sends the jobs that have no message
        jobs = [finished(pk) for pk in (broker_was_down, worker_died, no_worker_yet)]
    assert [(j.status, j.attempts) for j in jobs] == [("done", 1), ("done", 2), ("done", 1)], [j.error for j in jobs]
    assert all(auth_client.get(f"{URL}{j.pk}/").json()["slices"] == 2 for j in jobs)


def test_done_failed_and_live_jobs_are_skipped_a_dead_workers_job_is_run(user, settings):
    """The task itself, called directly (no broker needed): it skips what it must not run."""
    from TumorApp.series.tasks import run_series_job

    settings.SERIES_QUEUE = "database"  # submit without sending
    done, failed, live, dead = (series_services.submit_series(user=user, uploads=files(dicom_series(2)))
                                for _ in range(4))
    SeriesJob.objects.filter(pk=done.pk).update(status="done")
    SeriesJob.objects.filter(pk=failed.pk).update(status="failed")
    series_services.claim(live.pk, "elsewhere:1:live")  # fresh heartbeat: a live worker holds it
    series_services.claim(dead.pk, "elsewhere:2:dead")
    SeriesJob.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))

    assert [run_series_job(job.pk) for job in (done, failed, live)] == [False, False, False]
    assert [SeriesJob.objects.get(pk=j.pk).status for j in (done, failed, live)] == ["done", "failed", "running"]
    assert SeriesJob.objects.get(pk=live.pk).claimed_by == "elsewhere:1:live"
    assert run_series_job(dead.pk) is True
    assert SeriesJob.objects.get(pk=dead.pk).status == "done"


@pytest.mark.slow
def test_a_killed_pool_process_s_job_is_finished_once_by_the_celery_worker(redis, tmp_path):
    """`celery -A Tumor worker` as README starts it; its pool process is SIGKILLed mid-series (as the
    OOM killer would): the message comes back (reject_on_worker_lost), the job is recovered and run
    again from its first slice, and finished once."""
    env = subprocess_env(tmp_path, SERIES_QUEUE="celery", CELERY_BROKER_URL=redis.url)
    series = tmp_path / "series"
    series.mkdir()
    for name, data in dicom_series(24):
        (series / name).write_bytes(data)
    submit_series_folder(env, series)  # queued, and its message sent
    db = tmp_path / "db.sqlite3"
    assert series_row(db) == ("queued", 0, 24, 0)

    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "Tumor", "worker", "--concurrency", "1",
                                   "--loglevel", "INFO"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_mid_run(db, worker, log)
        (claimed_by,) = series_row(db, "claimed_by")
        os.kill(int(claimed_by.split(":")[1]), signal.SIGKILL)  # the pool process, not the worker

        deadline = time.monotonic() + 300
        while series_row(db)[0] != "done" and time.monotonic() < deadline:
            assert series_row(db)[0] in ("queued", "running"), log.read_text()
            time.sleep(0.2)
        assert series_row(db) == ("done", 24, 24, 2), log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert '"slices": 24' in series_row(db, "result")[0]
    assert redis.command(b"LLEN celery").startswith(b":0")  # no message left to run it again
