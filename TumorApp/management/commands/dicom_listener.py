"""`manage.py dicom_listener [--aet] [--host] [--port] [--user]`: receive CT series over DICOM (C-STORE)
and queue them for analysis; with PACS_AUTO_SEND the results go back to DICOMWEB_URL when done.
Off unless started; the series worker (`manage.py series_worker`) runs the jobs."""
from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from TumorApp.pacs.listener import Listener


class Command(BaseCommand):
    help = "Accept CT series sent by a modality or PACS (DICOM C-STORE) and queue them for analysis."

    def add_arguments(self, parser):
        parser.add_argument("--aet", default=settings.DICOM_LISTENER_AET, help="our AE title (DICOM_LISTENER_AET)")
        parser.add_argument("--host", default=settings.DICOM_LISTENER_HOST, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.DICOM_LISTENER_PORT, help="TCP port (11112)")
        parser.add_argument("--user", default=settings.DICOM_LISTENER_USER,
                            help="the account that owns received series (DICOM_LISTENER_USER)")
        parser.add_argument("--calling-aet", action="append", default=None,
                            help="a sender's AE title allowed to store (repeatable; default "
                                 "DICOM_LISTENER_CALLING_AETS)")

    def handle(self, *args, **options):
        try:
            owner = get_user_model().objects.get_by_natural_key(options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {options['user']!r}: set --user or DICOM_LISTENER_USER to an existing account.")
        try:
            listener = Listener(owner=owner, aet=options["aet"], host=options["host"], port=options["port"],
                                calling_aets=options["calling_aet"]).start()
        except ValueError as exc:
            raise CommandError(str(exc))
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"DICOM listener {options['aet']} on {listener.address[0]}:{listener.address[1]}; "
                          f"series queued for {owner.get_username()}. Ctrl-C stops it.")
        while not stop.wait(1.0):  # a timeout, so that the signal handler gets to run promptly
            pass
        listener.stop()
