"""The Celery app for SERIES_QUEUE=celery: `celery -A Tumor worker` runs series jobs (TumorApp/tasks.py).

Nothing imports this module in the default database mode: Tumor/__init__.py leaves it alone (unlike
Celery's Django recipe) and series_services imports the task only to send one.
"""
from __future__ import annotations

import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")

app = Celery("Tumor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["TumorApp.series"])  # TumorApp/series/tasks.py


class SeriesSweep(bootsteps.StartStopStep):
    """Runs TumorApp.series.tasks.sweep when the worker starts and then every SERIES_STALE_SECONDS, on the
    worker's own timer: recovery needs no extra process (no celery beat) and any number of workers
    may sweep, as a job sent twice still runs once."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        from django.conf import settings

        from TumorApp.series.tasks import sweep_logged

        sweep_logged()
        self.tref = worker.timer.call_repeatedly(settings.SERIES_STALE_SECONDS, sweep_logged)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(SeriesSweep)
