"""`manage.py analyze_pacs_series SERIES_INSTANCE_UID [--send] [--json]`: a CT series from the PACS
(DICOMWEB_URL) analysed in the foreground, as `analyze_series` analyses a folder.

The series is streamed (WADO-RS) into a temporary folder under var/tmp, within the series limits, and
read by the same `analyze_series` entry point; --send stores the SEG, the SR and the key image
(STOW-RS).  --json prints `analyze_series --json`'s object, plus `stored_sop_instance_uids` with
--send; any error prints `{"error": ...}` (or one line on stderr) and exits 1.  Retrieve and send
are audited under the name "manage.py".
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand

from TumorApp.analysis.errors import InputError
from TumorApp.models import AuditEvent
from TumorApp.pacs.client import PacsError
from TumorApp.audit import record_event

ACTOR = "manage.py"


class Command(BaseCommand):
    help = "Retrieve a CT series from the PACS (DICOMWEB_URL), analyse it, and optionally send the results back."

    def add_arguments(self, parser):
        parser.add_argument("series_uid", metavar="SERIES_INSTANCE_UID")
        parser.add_argument("--study-uid", default="", help="its Study Instance UID (else asked of the PACS)")
        parser.add_argument("--send", action="store_true", help="store the DICOM-SEG, SR and key image in the PACS")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")

    def handle(self, *args, **options):
        try:
            record = self._run(options)
        except (InputError, PacsError) as exc:
            self._fail(options, str(exc))
        except Exception as exc:  # a bug: still one line, never a traceback, for scripts that parse us
            self._fail(options, f"unexpected {type(exc).__name__}: {exc}")
        if options["json"]:
            self.stdout.write(json.dumps(record, indent=2))
            return
        self.stdout.write(f"{record['slices']} slices, liver {record['liver_volume_ml']} mL, tumour "
                          f"{record['tumor_volume_ml']} mL ({record['tumor_burden_percent']} %), "
                          f"stage {record['stage'] or '-'}, {len(record['lesions'])} lesion(s)")
        for name, uid in record.get("stored_sop_instance_uids", {}).items():
            self.stdout.write(f"stored {name}: {uid}")

    def _run(self, options) -> dict:
        from TumorApp.analysis.series.export import export_for
        from TumorApp.analysis.series.volume import analyze_series
        from TumorApp.pacs import services

        uid = options["series_uid"].strip()
        with tempfile.TemporaryDirectory(prefix="pacs-", dir=services._tmp_root()) as tmp:
            try:
                services.retrieve_series(series_uid=uid, study_uid=options["study_uid"], into=Path(tmp))
            except (InputError, PacsError) as exc:
                record_event(action=AuditEvent.Action.PACS_RETRIEVE_FAILED, username=ACTOR, detail=f"{uid}: {exc}")
                raise
            record_event(action=AuditEvent.Action.PACS_RETRIEVE, username=ACTOR, detail=f"analyze_pacs_series <- {uid}")
            result = analyze_series(Path(tmp), batch_size=max(1, options["batch_size"]),
                                    progress=None if options["json"] else self._progress)
        record = result.to_dict()
        if options["send"]:
            labels = result.label_volume()
            seg_bytes, _ = export_for(result.volume, labels)
            # The SR also names the backend that ran (the series page's "inference"), not printed here.
            instances = services.result_instances(volume=result.volume, record={**record, "inference": result.inference},
                                                  ct=result.volume.hu, labels=labels, seg_bytes=seg_bytes)
            try:
                record["stored_sop_instance_uids"] = services.store(instances)
            except PacsError as exc:
                record_event(action=AuditEvent.Action.PACS_SEND_FAILED, username=ACTOR, detail=f"{uid}: {exc}")
                raise
            record_event(action=AuditEvent.Action.PACS_SEND, username=ACTOR,
                         detail=f"{uid}: {record['stored_sop_instance_uids']['sr']}")
        return record

    def _fail(self, options, message: str):
        if options["json"]:
            self.stdout.write(json.dumps({"error": message}))
        else:
            self.stderr.write(f"error: {message}")
        sys.exit(1)

    def _progress(self, done: int, total: int) -> None:
        self.stderr.write(f"\r{done}/{total} slices", ending="" if done < total else "\n")
