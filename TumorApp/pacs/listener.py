"""The DICOM listener: a pynetdicom C-STORE SCP that accepts CT images, keeps each association's
series in a temporary folder, and when the sender releases the association queues every complete
series for analysis (`services.queue_files`: the upload's reader and limits), owned by one user.

An aborted association, or a series over the slice or size limits, is dropped (the sender is told
"out of resources" for the image that went over); nothing half-received is queued."""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from pydicom.uid import CTImageStorage
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from TumorApp.analysis.errors import InputError
from TumorApp.models import AuditEvent, PacsTransfer
from TumorApp.audit import record_event

from . import services
from .forms import UID

log = logging.getLogger("TumorApp.pacs.listener")

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


class Listener:
    """One C-STORE SCP; `start()` serves in background threads, `stop()` ends it."""

    def __init__(self, *, owner, aet: str, host: str, port: int):
        self.owner, self.aet, self.address = owner, aet, (host, port)
        self.folders: dict[int, Path] = {}  # association -> its temporary folder
        self.sizes: dict[int, dict[str, list[int]]] = {}  # association -> series -> [files, bytes]
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        from TumorApp.analysis.io.series_input import MAX_SERIES_BYTES, MAX_SLICES

        self.max_files = MAX_SLICES
        self.max_bytes = min(MAX_SERIES_BYTES, settings.MAX_SERIES_UPLOAD_BYTES)
        ae = AE(ae_title=self.aet)
        ae.add_supported_context(CTImageStorage, ALL_TRANSFER_SYNTAXES)  # CT only: others are refused
        # Released: queue, then clean up; aborted (a dropped connection too): clean up only.  Not on
        # EVT_CONN_CLOSE: that comes from another thread and may run before EVT_RELEASED.
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_RELEASED, self._released),
                    (evt.EVT_ABORTED, self._aborted)]
        self.server = ae.start_server(self.address, block=False, evt_handlers=handlers)
        self.address = self.server.server_address[:2]  # the real port when 0 was asked for
        log.info("DICOM listener %s on %s:%s, series queued for %s", self.aet, *self.address,
                 self.owner.get_username())
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()

    def _folder(self, assoc) -> Path:
        with self.lock:
            key = id(assoc)
            if key not in self.folders:
                self.folders[key] = Path(tempfile.mkdtemp(prefix="dicom-in-", dir=services._tmp_root()))
                self.sizes[key] = {}
            return self.folders[key]

    def _store(self, event):
        """One image: written under its series' folder; refused past the limits."""
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            series_uid = str(ds.SeriesInstanceUID)
            sop_uid = str(ds.SOPInstanceUID)
        except Exception:  # an undecodable data set
            return CANNOT_UNDERSTAND
        if not all(len(uid) <= 64 and UID.match(uid) for uid in (series_uid, sop_uid)):
            return CANNOT_UNDERSTAND  # the UIDs name files: nothing but digits and dots (no "../")
        folder = self._folder(event.assoc) / series_uid
        folder.mkdir(exist_ok=True)
        path = folder / f"{sop_uid}.dcm"
        ds.save_as(path, enforce_file_format=True)
        with self.lock:
            count = self.sizes[id(event.assoc)].setdefault(series_uid, [0, 0])
            count[0] += 1
            count[1] += path.stat().st_size
            over = count[0] > self.max_files or count[1] > self.max_bytes
        if over:
            path.unlink(missing_ok=True)
            return OUT_OF_RESOURCES
        return SUCCESS

    def _take(self, assoc) -> tuple[Path | None, dict]:
        """The association's folder and counts, now ours alone."""
        with self.lock:
            return self.folders.pop(id(assoc), None), self.sizes.pop(id(assoc), {})

    def _released(self, event):
        """The sender is done: queue each series it sent (each one like an upload), then clean up."""
        folder, sizes = self._take(event.assoc)
        if folder is None:
            return
        peer = event.assoc.requestor.ae_title
        try:
            for series_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                files, _ = sizes.get(series_dir.name, (0, 0))
                if files > self.max_files:
                    self._refused(series_dir.name, peer, f"more than {self.max_files} images")
                    continue
                self._queue(series_dir, peer)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            close_old_connections()

    def _aborted(self, event):
        """Aborted or dropped: whatever arrived is incomplete, so nothing is queued."""
        folder, _ = self._take(event.assoc)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _queue(self, series_dir: Path, peer: str):
        import pydicom

        paths = sorted(series_dir.glob("*.dcm"))
        if not paths:
            return
        study_uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).get("StudyInstanceUID", ""))
        try:
            job = services.queue_files(user=self.owner, paths=paths, series_uid=series_dir.name, study_uid=study_uid,
                                       direction=PacsTransfer.Direction.RECEIVE)
        except InputError as exc:
            self._refused(series_dir.name, peer, str(exc))
            return
        log.info("queued series %s (%s images from %s) as job %s", series_dir.name, len(paths), peer, job.pk)

    def _refused(self, series_uid: str, peer: str, why: str):
        log.warning("refused series %s from %s: %s", series_uid, peer, why)
        record_event(action=AuditEvent.Action.DICOM_RECEIVE_FAILED, user=self.owner,
                     detail=f"{series_uid} from {peer}: {why}")
