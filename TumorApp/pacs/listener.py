"""The DICOM listener: a pynetdicom C-STORE SCP that accepts CT images from allowed AE titles, keeps
each association's series in a temporary folder, and when the sender releases the association queues
every complete series for analysis (`services.queue_files`: the upload's reader and limits), owned by
one user.

Bounded at every step (`ListenerLimits`): only the listed calling AE titles, and our own called
title, may associate; received data is streamed to disk by pynetdicom (never decoded whole in
memory) and counted as it arrives, so an association over its byte budget, or all associations
together over the disk budget, is aborted while it sends; each image is checked against the
per-file budget (its size, and what a deflated one inflates to) before its header is read, and
refused at once with a failure status; the images of one association and the series queued per
hour are capped.  Every refusal is audited (once per association and reason).  An aborted
association, or a series over a limit, is dropped; nothing half-received is queued."""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from pydicom.uid import CTImageStorage
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt

from TumorApp.analysis.errors import InputError
from TumorApp.models import AuditEvent, PacsTransfer
from TumorApp.audit import record_event

from . import services
from .forms import UID

log = logging.getLogger("TumorApp.pacs.listener")

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


def _mib(n: int) -> str:
    return f"{n / 2**20:,.3g} MiB"


@dataclass
class ListenerLimits:
    """What one listener accepts; the defaults come from settings (DICOM_LISTENER_*) and the series
    upload budgets."""

    calling_aets: tuple[str, ...] = ()  # senders allowed to associate (required: no default)
    max_files: int = 0                  # images per series (MAX_SLICES)
    max_bytes: int = 0                  # bytes per series (the series upload budget)
    max_file_bytes: int = 0             # bytes per image, and what a deflated one may inflate to
    max_instances: int = 0              # images per association, all series together
    max_association_bytes: int = 0      # bytes received per association
    max_disk_bytes: int = 0             # bytes held by all open associations together
    series_per_hour: int = 0            # series queued per hour for the owner

    @classmethod
    def from_settings(cls, calling_aets=None) -> "ListenerLimits":
        from TumorApp.analysis.io.series_input import MAX_FILE_BYTES, MAX_SERIES_BYTES, MAX_SLICES

        series_bytes = min(MAX_SERIES_BYTES, settings.MAX_SERIES_UPLOAD_BYTES)
        aets = settings.DICOM_LISTENER_CALLING_AETS if calling_aets is None else calling_aets
        return cls(calling_aets=tuple(a.strip() for a in aets if a.strip()), max_files=MAX_SLICES,
                   max_bytes=series_bytes, max_file_bytes=MAX_FILE_BYTES,
                   max_instances=settings.DICOM_LISTENER_MAX_INSTANCES,
                   max_association_bytes=settings.DICOM_LISTENER_MAX_ASSOCIATION_MB * 2**20,
                   max_disk_bytes=settings.DICOM_LISTENER_DISK_MB * 2**20,
                   series_per_hour=settings.DICOM_LISTENER_SERIES_PER_HOUR)


@dataclass
class _Association:
    """What one open association has sent: its folder, per-series [files, bytes], its counts."""

    folder: Path | None
    assoc: object
    series: dict = field(default_factory=dict)
    instances: int = 0
    received: int = 0  # bytes of PDUs received, counted as they arrive
    refused: set = field(default_factory=set)  # reasons already audited

    @property
    def peer(self) -> str:
        """The sender's AE title and address (known once the association request is decoded)."""
        requestor = self.assoc.requestor
        return f"{requestor.ae_title} ({requestor.address})"


class Listener:
    """One C-STORE SCP; `start()` serves in background threads, `stop()` ends it."""

    def __init__(self, *, owner, aet: str, host: str, port: int, limits: ListenerLimits | None = None,
                 calling_aets=None):
        self.owner, self.aet, self.address = owner, aet, (host, port)
        self.limits = limits or ListenerLimits.from_settings(calling_aets)
        if not self.limits.calling_aets:
            raise ValueError("No calling AE title is allowed to send: set DICOM_LISTENER_CALLING_AETS "
                             "(comma-separated) to the modalities' and PACS' AE titles.")
        self.open: dict[int, _Association] = {}
        self.aborted = weakref.WeakSet()  # associations we aborted: what they still send is ignored
        self.lock = threading.Lock()
        self.server = None

    # Kept as attributes for the tests' and the command's convenience.
    @property
    def max_files(self) -> int:
        return self.limits.max_files

    @max_files.setter
    def max_files(self, value: int) -> None:
        self.limits.max_files = value

    def start(self):
        # Received data sets go to a file as they arrive (pynetdicom's chunked mode), not to memory.
        _config.STORE_RECV_CHUNKED_DATASET = True
        ae = AE(ae_title=self.aet)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.limits.calling_aets)
        ae.add_supported_context(CTImageStorage, ALL_TRANSFER_SYNTAXES)  # CT only: others are refused
        # Released: queue, then clean up; aborted (a dropped connection too): clean up only.  Not on
        # EVT_CONN_CLOSE: that comes from another thread and may run before EVT_RELEASED.
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_RELEASED, self._released),
                    (evt.EVT_ABORTED, self._aborted), (evt.EVT_REJECTED, self._rejected),
                    (evt.EVT_DATA_RECV, self._data)]
        self.server = ae.start_server(self.address, block=False, evt_handlers=handlers)
        self.address = self.server.server_address[:2]  # the real port when 0 was asked for
        log.info("DICOM listener %s on %s:%s, series queued for %s, senders %s", self.aet, *self.address,
                 self.owner.get_username(), ", ".join(self.limits.calling_aets))
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()

    # --- bookkeeping ---------------------------------------------------------------------------

    def _state(self, assoc) -> _Association:
        with self.lock:
            key = id(assoc)
            if key not in self.open:
                self.open[key] = _Association(folder=None, assoc=assoc)
            return self.open[key]

    def _folder(self, state: _Association) -> Path:
        """The association's temporary folder, made with its first image."""
        with self.lock:
            if state.folder is None:
                state.folder = Path(tempfile.mkdtemp(prefix="dicom-in-", dir=services._tmp_root()))
            return state.folder

    def _drop(self, state: _Association | None) -> None:
        if state is not None and state.folder is not None:
            shutil.rmtree(state.folder, ignore_errors=True)

    def _take(self, assoc) -> _Association | None:
        """The association's state, now ours alone."""
        with self.lock:
            return self.open.pop(id(assoc), None)

    def _refuse(self, state: _Association, why: str, status: int = OUT_OF_RESOURCES) -> int:
        """Audit `why` once per association; the failure status to answer."""
        with self.lock:
            first = why not in state.refused
            state.refused.add(why)
        if first:
            self._audit(f"from {state.peer}: {why}")
        return status

    def _audit(self, detail: str) -> None:
        log.warning("DICOM listener refused: %s", detail)
        try:
            record_event(action=AuditEvent.Action.DICOM_RECEIVE_FAILED, user=self.owner, detail=detail[:255])
        finally:
            close_old_connections()

    # --- events --------------------------------------------------------------------------------

    def _rejected(self, event):
        """An association refused (calling or called AE title not allowed): audited."""
        requestor = event.assoc.requestor
        self._audit(f"association from {requestor.ae_title} ({requestor.address}) to "
                    f"{event.assoc.acceptor.ae_title} rejected: AE title not allowed")

    def _data(self, event):
        """Each PDU as it arrives: the association's and every association's bytes against their
        budgets, so a sender over them is aborted while it sends, not after."""
        if event.assoc in self.aborted:
            return
        state = self._state(event.assoc)
        with self.lock:
            state.received += len(event.data)
            total = sum(s.received for s in self.open.values())
        if state.received > self.limits.max_association_bytes:
            self._abort(event.assoc, f"more than {_mib(self.limits.max_association_bytes)} in one association")
        elif total > self.limits.max_disk_bytes:
            self._abort(event.assoc, f"the listener's disk budget ({_mib(self.limits.max_disk_bytes)}) is full")

    def _abort(self, assoc, why: str) -> None:
        """Abort a sender over a budget and drop what it sent (our own abort raises no EVT_ABORTED)."""
        self._refuse(self._state(assoc), why)
        self.aborted.add(assoc)
        assoc.abort()
        self._drop(self._take(assoc))

    def _store(self, event):
        """One image: checked against the per-file budget, then moved under its series' folder."""
        import pydicom

        from TumorApp.analysis.io.loading import check_inflated_size

        if event.assoc in self.aborted:
            return OUT_OF_RESOURCES
        state = self._state(event.assoc)
        path = Path(event.dataset_path)
        size = path.stat().st_size
        with self.lock:
            state.instances += 1
            too_many = state.instances > self.limits.max_instances
        if too_many:
            return self._refuse(state, f"more than {self.limits.max_instances} images in one association")
        if size > self.limits.max_file_bytes:
            return self._refuse(state, f"an image of more than {_mib(self.limits.max_file_bytes)}")
        try:
            check_inflated_size(path.read_bytes(), self.limits.max_file_bytes)
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            series_uid = str(ds.SeriesInstanceUID)
            sop_uid = str(ds.SOPInstanceUID)
        except InputError as exc:
            return self._refuse(state, str(exc))
        except Exception:  # an undecodable data set
            return self._refuse(state, "an image that could not be read", CANNOT_UNDERSTAND)
        if not all(len(uid) <= 64 and UID.fullmatch(uid) for uid in (series_uid, sop_uid)):
            # the UIDs name files: nothing but digits and dots (no "../")
            return self._refuse(state, "an image whose UIDs are not UIDs", CANNOT_UNDERSTAND)
        with self.lock:
            count = state.series.setdefault(series_uid, [0, 0])
            over = count[0] + 1 > self.limits.max_files or count[1] + size > self.limits.max_bytes
            if not over:
                count[0] += 1
                count[1] += size
            else:
                count[0] = self.limits.max_files + 1  # the series is refused at release
        if over:
            return self._refuse(state, f"series {series_uid}: more than {self.limits.max_files} images or "
                                       f"{_mib(self.limits.max_bytes)}")
        folder = self._folder(state) / series_uid
        folder.mkdir(exist_ok=True)
        shutil.move(path, folder / f"{sop_uid}.dcm")  # pynetdicom's own removal then finds nothing
        return SUCCESS

    def _released(self, event):
        """The sender is done: queue each series it sent (each one like an upload), then clean up."""
        state = self._take(event.assoc)
        if state is None or state.folder is None:
            return
        try:
            for series_dir in sorted(p for p in state.folder.iterdir() if p.is_dir()):
                files, _ = state.series.get(series_dir.name, (0, 0))
                if files > self.limits.max_files:
                    self._refused(series_dir.name, state.peer, f"more than {self.limits.max_files} images")
                    continue
                if self._queued_last_hour() >= self.limits.series_per_hour:
                    self._refused(series_dir.name, state.peer,
                                  f"more than {self.limits.series_per_hour} series received in the last hour")
                    continue
                self._queue(series_dir, state.peer)
        finally:
            self._drop(state)
            close_old_connections()

    def _aborted(self, event):
        """Aborted or dropped: whatever arrived is incomplete, so nothing is queued."""
        self._drop(self._take(event.assoc))

    def _queued_last_hour(self) -> int:
        since = timezone.now() - timedelta(hours=1)
        return PacsTransfer.objects.filter(user=self.owner, direction=PacsTransfer.Direction.RECEIVE,
                                           created_at__gte=since).count()

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
        self._audit(f"{series_uid} from {peer}: {why}")
