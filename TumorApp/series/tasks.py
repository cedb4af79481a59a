"""Celery tasks for SERIES_QUEUE=celery (Tumor/celery.py), and the worker's sweep step.

A message only says "job N is queued": the worker claims the row with the database worker's
conditional UPDATE and runs the same `run_job`, so a message delivered twice, or a job also seen by
`manage.py series_worker`, runs once, and the row keeps status, progress and result for the pages
and the API.
"""
from __future__ import annotations

import logging

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections

from Tumor.celery import app

from . import services as series_services
from ..models import SeriesJob

log = logging.getLogger("TumorApp.series")


# acks_late: the message is acknowledged when the job has finished, so a worker killed mid-job leaves
# it with the broker; reject_on_worker_lost: a killed pool process gives it back at once.  services.py
# sends it by this name (app.send_task), so this module is imported by the worker only.
@app.task(name="TumorApp.run_series_job", acks_late=True, reject_on_worker_lost=True)
def run_series_job(job_id: int) -> bool:
    """Run series job `job_id` unless it is done, failed or held by a live worker; True if this
    delivery stored its result."""
    # A redelivered message of a killed worker's job finds it still running: recover it first.
    series_services.recover_jobs()
    worker = series_services.worker_id()
    job = series_services.claim(job_id, worker)
    if job is None:
        log.info("series job %s: not queued, message skipped", job_id)
        return False
    return series_services.run_job(job, worker)  # the process's series network (SERIES_INFERENCE_BACKEND)


def waiting_messages() -> int:
    """Messages waiting in the broker's series queue (not those a worker has taken)."""
    queue = app.amqp.queues[app.conf.task_default_queue]
    with app.connection_for_read() as conn:
        return queue(conn.default_channel).queue_declare().message_count


def sweep() -> list[int]:
    """Give the queued jobs a message again when some may have none; returns the ids sent.

    The database keeps a job whose message went missing: the broker was down at upload (the
    upload still succeeds), the broker lost its data, or `recover_jobs` re-queued a job whose
    message a dead worker still holds (Redis hands it back only after its visibility timeout).
    So, after recovering, if the broker holds fewer waiting messages than there are queued jobs,
    every queued job is sent again, oldest first; the claim runs a duplicate's job only once.
    """
    series_services.recover_jobs()
    queued = list(SeriesJob.objects.filter(status=SeriesJob.Status.QUEUED).order_by("created_at", "id")
                  .values_list("pk", flat=True))
    if not queued or waiting_messages() >= len(queued):
        return []
    for pk in queued:
        run_series_job.delay(pk)
    log.info("series jobs %s sent again by the sweep", queued)
    return queued


def sweep_logged() -> None:
    """`sweep` for the worker's timer: a database or broker outage is logged and tried again next time."""
    close_old_connections()
    try:
        sweep()
    except Exception:
        log.exception("series sweep failed; trying again at the next one")
    finally:
        close_old_connections()


class SeriesSweep(bootsteps.StartStopStep):
    """Runs `sweep` when the worker starts and then every SERIES_STALE_SECONDS, on the worker's own
    timer: recovery needs no extra process (no celery beat) and any number of workers may sweep, as a
    job sent twice still runs once.  The worker imports this module (autodiscovery) before it builds
    its steps."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        sweep_logged()
        self.tref = worker.timer.call_repeatedly(settings.SERIES_STALE_SECONDS, sweep_logged)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(SeriesSweep)
