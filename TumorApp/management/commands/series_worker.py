"""`manage.py series_worker [--once]`: run queued series jobs from the database (started by ./run.sh).

Several workers (on this or other machines sharing the database) may run side by side: each job
is claimed by exactly one.  A job left running by a killed worker is re-queued and run again.
"""
from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from TumorApp.series import services as series_services


class Command(BaseCommand):
    help = "Run queued CT series analyses (the background worker)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at an empty queue")
        parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")

    def handle(self, *args, **options):
        stop = threading.Event()
        # SIGTERM/SIGINT: finish the job in hand, then stop (a hard kill is recovered by the next worker).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ran = series_services.work(once=options["once"], poll_seconds=max(0.1, options["poll"]), stop=stop,
                                   batch_size=max(1, options["batch_size"]))
        self.stdout.write(f"series worker: {ran} job(s) run")
