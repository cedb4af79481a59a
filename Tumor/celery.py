"""The Celery app for SERIES_QUEUE=celery: `celery -A Tumor worker` runs series jobs (TumorApp/series/tasks.py).

Nothing imports this module in the default database mode: Tumor/__init__.py leaves it alone (unlike
Celery's Django recipe) and series/services.py imports it only to send a task, by name.  It imports
nothing of TumorApp: the tasks and the worker's sweep step register themselves from series/tasks.py.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")

app = Celery("Tumor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["TumorApp.series"])  # TumorApp/series/tasks.py
