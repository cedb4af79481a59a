"""Series jobs: submit an upload (validate, store, queue), the worker's claim/run/recover cycle,
and the reads the pages and the API share.  The database is the queue: no broker to run.  With
SERIES_QUEUE=celery a Celery message also says "job N is queued" (series/tasks.py); the worker
that gets it claims and runs the job through the same functions, so the row stays the truth.

Guarantees (tests/web/series/test_series_worker.py):
* a queued job waits in the database until a worker claims it, across restarts;
* a claim is one conditional UPDATE (queued -> running), so one job runs in one worker at a time;
* a job whose worker died goes back to the queue: at once when that worker ran on this host and
  its process is gone, else when its heartbeat is older than `SERIES_STALE_SECONDS`;
* a worker stores its result only while it still holds the claim, so a job re-queued from under
  a stalled worker is finished exactly once.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from TumorApp.analysis.errors import InputError

from ..models import AuditEvent, SeriesJob
from ..uploads import clean_filename, remove_paths
from ..audit import record_event

log = logging.getLogger("TumorApp.series")

HEARTBEAT_SECONDS = 5.0
# Sent by the worker once a job's result is stored (job=): features that follow a series, like the
# PACS's auto-send, listen here rather than being called from this module.
series_done = Signal()
# Sent by the worker before a job is analysed (job=): a job whose input is fetched first (a PACS
# retrieve) gets it here; a receiver raises InputError to fail the job with its message.
series_starting = Signal()


def stale_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "SERIES_STALE_SECONDS", 60)))


# --- submit ------------------------------------------------------------------------------------

def submit_series(*, user, uploads, ip: str | None = None) -> SeriesJob:
    """Validate the uploaded files as one series, store them, audit and queue the job (with
    SERIES_QUEUE=celery, also send it to the Celery workers once committed).

    Raises `InputError` (nothing stored) when the files are not one analysable series.  The upload
    is checked here from its headers and a few decoded slices (`check_series`: every budget, the
    geometry, the slice input check), one file in memory at a time, so bad input is refused at
    upload, not minutes later, and no series is decoded whole in the request.
    """
    from TumorApp.analysis.series.volume import check_series

    if not uploads:
        raise InputError("Choose the files of one CT series (DICOM files or a zip), or one NIfTI volume.")
    items = [(clean_filename(getattr(upload, "name", "") or ""), upload) for upload in uploads]
    found = check_series(items)  # InputError for anything we cannot analyse
    names = [name for name, _ in items]
    display = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"

    folder = f"series/{uuid.uuid4().hex}"
    saved: list[str] = []
    try:
        with transaction.atomic():
            for k, (name, upload) in enumerate(items):
                upload.seek(0)  # copied in chunks, never read whole
                saved.append(default_storage.save(f"{folder}/input/{k:04d}_{name}", upload))
            job = SeriesJob.objects.create(owner=user, name=display[:255], kind=found.kind, folder=folder,
                                           progress_total=found.slices)
            record_event(action=AuditEvent.Action.SERIES_SUBMIT, user=user, ip=ip, detail=f"series {job.pk}")
            if settings.SERIES_QUEUE == "celery":
                # After the commit, so that no worker looks for a row it cannot see yet.
                transaction.on_commit(lambda: _send(job.pk))
    except BaseException:
        remove_paths(saved, "after a failed series upload")
        raise
    return job


def _send(job_id: int) -> None:
    """Hand a committed job to Celery.  A broker that is down leaves the job queued: the upload has
    succeeded, and the Celery workers' sweep (series/tasks.py) sends it once they can."""
    from kombu.exceptions import OperationalError

    from Tumor.celery import app

    try:
        # By name: the task module imports this one, and the web process needs only the app to send.
        app.send_task("TumorApp.run_series_job", args=[job_id])
    except OperationalError as exc:
        log.warning("series job %s: the Celery broker is unreachable (%s); left queued for the workers' sweep",
                    job_id, exc)


def input_items(job: SeriesJob) -> list[tuple[str, Path]]:
    """The stored upload as (name, path) items: the reader opens one file at a time."""
    _, files = default_storage.listdir(f"{job.folder}/input")
    return [(stored.split("_", 1)[-1], Path(default_storage.path(f"{job.folder}/input/{stored}")))
            for stored in sorted(files)]


# --- delete ------------------------------------------------------------------------------------

class SeriesRunning(Exception):
    """The job is being analysed: deleting it now would pull its folder from under the worker (409)."""


# What submit_series names a folder; anything else (a blank one is the whole media root) is never removed.
SERIES_FOLDER = re.compile(r"^series/[0-9a-f]{32}$")


def delete_series(*, job: SeriesJob, actor=None, ip: str | None = None) -> None:
    """Delete the job's row and, once committed, its folder (input, ct/labels arrays, export); audited
    under `actor` (an admin), else the owner.

    A running job is refused (`SeriesRunning`): its worker would go on writing into the deleted
    folder.  The row is locked first, so a worker claiming the job at this moment either claims it
    before (refused) or finds it gone.  A worker that still writes for a deleted job (one
    re-queued from under it, or deleted with its owner) stores nothing: run_job keeps its files
    only under a live claim.
    """
    owner = job.owner
    with transaction.atomic():
        current = SeriesJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:
            return  # deleted meanwhile (a double click): the folder went with it
        if current.status == SeriesJob.Status.RUNNING:
            raise SeriesRunning(f"Series {job.pk} is being analysed; wait until it finishes, then delete it.")
        current._audited = True  # this event replaces the generic one the post_delete receiver writes
        current.delete()  # the folder goes on commit (signals.py), also for a cascade or the admin
        record_event(action=AuditEvent.Action.SERIES_DELETE, user=actor or owner, ip=ip, detail=f"series {job.pk}")
    log.info("user=%s deleted series %s of user=%s", (actor or owner).get_username(), job.pk, owner.get_username())


def remove_folder_on_commit(job: SeriesJob) -> None:
    """Delete the job's whole folder once the current transaction commits."""
    if not SERIES_FOLDER.match(job.folder or ""):
        log.error("series %s: not removing unexpected folder %r", job.pk, job.folder)
        return
    path = default_storage.path(job.folder)

    def remove():
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("could not remove %s", path)

    transaction.on_commit(remove)


# --- worker ------------------------------------------------------------------------------------

def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def max_attempts() -> int:
    return max(1, int(getattr(settings, "SERIES_MAX_ATTEMPTS", 3)))


def recover_jobs(now=None) -> list[int]:
    """Put running jobs whose worker is gone back in the queue; returns their ids.

    A job whose worker died on each of its `SERIES_MAX_ATTEMPTS` attempts fails instead, saying so:
    a series that kills its worker (memory, a crash in a library) would otherwise hold the queue
    for ever."""
    now = now or timezone.now()
    host = socket.gethostname()
    requeued = []
    for job in SeriesJob.objects.filter(status=SeriesJob.Status.RUNNING).only("pk", "claimed_by", "heartbeat_at",
                                                                                "attempts"):
        owner_host, _, rest = job.claimed_by.partition(":")
        pid = rest.partition(":")[0]
        dead_here = owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
        stale = job.heartbeat_at is None or now - job.heartbeat_at > stale_after()
        if not (dead_here or stale):
            continue
        # Conditional on the same claim: a worker that is merely slow and beats now keeps it.
        mine = SeriesJob.objects.filter(pk=job.pk, status=SeriesJob.Status.RUNNING, claimed_by=job.claimed_by)
        if job.attempts >= max_attempts():
            if mine.update(status=SeriesJob.Status.FAILED, finished_at=now, error=(
                    f"The analysis stopped its worker {job.attempts} times (out of memory, or a crash), so it "
                    "was given up; please report this series.")):
                log.error("series job %s failed: its worker died on all %s attempts", job.pk, job.attempts)
        elif mine.update(status=SeriesJob.Status.QUEUED, claimed_by="", progress_done=0):
            requeued.append(job.pk)
            log.warning("series job %s re-queued (worker %s gone)", job.pk, job.claimed_by)
    return requeued


def claim(job_id: int, worker: str) -> SeriesJob | None:
    """Job `job_id`, now running under `worker`; None unless it was queued (done, failed or running)."""
    now = timezone.now()
    if SeriesJob.objects.filter(pk=job_id, status=SeriesJob.Status.QUEUED).update(
            status=SeriesJob.Status.RUNNING, claimed_by=worker, heartbeat_at=now, started_at=now, progress_done=0,
            attempts=F("attempts") + 1):
        return SeriesJob.objects.get(pk=job_id)
    return None


def claim_next(worker: str) -> SeriesJob | None:
    """The oldest queued job, now running under `worker`; None when the queue is empty."""
    for pk in SeriesJob.objects.filter(status=SeriesJob.Status.QUEUED).order_by("created_at", "id") \
            .values_list("pk", flat=True)[:10]:
        job = claim(pk, worker)
        if job is not None:
            return job
    return None


def _mine(job: SeriesJob, worker: str):
    return SeriesJob.objects.filter(pk=job.pk, status=SeriesJob.Status.RUNNING, claimed_by=worker)


class _Heartbeat(threading.Thread):
    """Beats `heartbeat_at` every few seconds while a job runs (loading can take a while)."""

    def __init__(self, job: SeriesJob, worker: str):
        super().__init__(daemon=True, name=f"heartbeat-{job.pk}")
        self.job, self.worker, self.stop = job, worker, threading.Event()

    def run(self):
        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                _mine(self.job, self.worker).update(heartbeat_at=timezone.now())
        finally:
            connection.close()


def run_job(job: SeriesJob, worker: str, *, segmenter=None, batch_size: int = 8) -> bool:
    """Analyse one claimed job and store its result; False if the claim was lost meanwhile."""
    from TumorApp.analysis.series.volume import analyze_series

    beat = _Heartbeat(job, worker)
    beat.start()
    try:
        def progress(done: int, total: int) -> None:
            _mine(job, worker).update(progress_done=done, progress_total=total, heartbeat_at=timezone.now())

        try:
            series_starting.send(sender=SeriesJob, job=job)  # e.g. a PACS retrieve (TumorApp/signals.py)
            result = analyze_series(input_items(job), segmenter=segmenter, batch_size=batch_size,
                                    progress=progress)
        except InputError as exc:
            return bool(_mine(job, worker).update(status=SeriesJob.Status.FAILED, error=str(exc),
                                                  finished_at=timezone.now()))
        except Exception as exc:  # a bug or a broken model: the job says so, the worker carries on
            log.exception("series job %s failed", job.pk)
            return bool(_mine(job, worker).update(
                status=SeriesJob.Status.FAILED, finished_at=timezone.now(),
                error=f"The analysis failed unexpectedly ({type(exc).__name__}); please report this."))

        # Each attempt writes under its own name: a lost claim never overwrites the winner's files.
        # The DICOM-SEG / NIfTI export is made on first download (`export_file`), not here: the
        # result shows sooner, and a series nobody exports costs nothing.
        attempt = worker.rsplit(":", 1)[-1]
        files = {
            "ct": _save_npy(f"{job.folder}/{attempt}-ct.npy", result.volume.hu),
            "labels": _save_npy(f"{job.folder}/{attempt}-labels.npy",
                                (result.label_slice(k) for k in range(result.volume.slices)),
                                shape=result.volume.hu.shape, dtype=np.uint8),
        }
        record = result.to_dict()
        record["notes"] = result.volume.notes
        record["stage_label"] = result.stage_label  # what the pages show, from the one staging rule
        record["inference"] = result.inference  # shown on the result page: which backend ran
        done = _mine(job, worker).update(status=SeriesJob.Status.DONE, result=record, files=files,
                                         spacing_mm=[float(v) for v in result.volume.spacing_mm],
                                         progress_done=result.volume.slices, finished_at=timezone.now())
        if done:
            series_done.send(sender=SeriesJob, job=job)  # e.g. PACS_AUTO_SEND (TumorApp/signals.py)
        if not done:
            for path in files.values():
                default_storage.delete(path)
            if not SeriesJob.objects.filter(pk=job.pk).exists():
                remove_folder_on_commit(job)  # deleted under us: saving re-created its folder
        return bool(done)
    finally:
        beat.stop.set()
        beat.join()


def _save_npy(name: str, array, *, shape=None, dtype=None) -> str:
    """An array, or its slices along the first axis (`shape` and `dtype` given), as a .npy file.

    Through a temporary file copied to storage in chunks: an in-memory .npy of a series at the
    voxel limit would hold another copy of the volume (two, with BytesIO.getvalue()), and the
    slices are never stacked into one."""
    with tempfile.TemporaryFile() as tmp:
        if shape is None:
            np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
        else:
            dtype = np.dtype(dtype)
            np.lib.format.write_array_header_1_0(tmp, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                       "fortran_order": False, "shape": tuple(shape)})
            for plane in array:
                tmp.write(np.ascontiguousarray(plane, dtype=dtype).tobytes())
        tmp.seek(0)
        return default_storage.save(name, File(tmp))


def work(*, once: bool = False, poll_seconds: float = 1.0, segmenter=None, stop: threading.Event | None = None,
         batch_size: int = 8) -> int:
    """The worker loop: recover, claim, run; `once` returns when the queue is empty.  Returns jobs run."""
    worker = worker_id()
    ran = 0
    log.info("series worker %s started", worker)
    while stop is None or not stop.is_set():
        close_old_connections()
        recover_jobs()
        job = claim_next(worker)
        if job is None:
            if once:
                break
            time.sleep(poll_seconds)
            continue
        # segmenter None: analyze_series takes the process's series network (SERIES_INFERENCE_BACKEND).
        run_job(job, worker, segmenter=segmenter, batch_size=batch_size)
        ran += 1
    return ran


# --- reads -------------------------------------------------------------------------------------

def jobs_for(user):
    return SeriesJob.objects.filter(owner=user).order_by("-created_at", "-id")


def eta_seconds(job: SeriesJob) -> float | None:
    """Time left from the rate so far (None until a batch is done)."""
    if job.status != SeriesJob.Status.RUNNING or not job.started_at or not job.progress_done:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return max(0.0, elapsed / job.progress_done * (job.progress_total - job.progress_done))


def payload(job: SeriesJob) -> dict:
    """`GET /api/series/<id>/`: status, progress, and when done the CLI's JSON object."""
    from django.urls import reverse

    data = {"id": job.pk, "status": job.status, "progress": [job.progress_done, job.progress_total],
            "name": job.name, "kind": job.kind, "created_at": job.created_at.isoformat()}
    eta = eta_seconds(job)
    if eta is not None:
        data["eta_seconds"] = round(eta, 1)
    if job.status == SeriesJob.Status.FAILED:
        data["error"] = job.error
    if job.status == SeriesJob.Status.DONE:
        data.update({k: v for k, v in job.result.items() if k != "notes"})
        data["notes"] = job.result.get("notes", [])
        data["export_url"] = reverse("api-series-export", args=[job.pk])
        # Corrections (issue 20): which version these figures are, and every kept version.
        from .corrections import versions_for

        data.setdefault("version", 0)
        data.setdefault("corrected", False)
        data["versions"] = versions_for(job)
    return data


def _export_key(version: int, nifti: bool = False) -> str:
    """files[] key of a cached export: "export" (v0, the upload's own format), "export-v2",
    "export-nifti" / "export-nifti-v2" (NIfTI labels of a DICOM series)."""
    return ("export-nifti" if nifti else "export") + (f"-v{version}" if version else "")


def _make_export(job: SeriesJob, version: int, nifti: bool = False) -> str:
    """Build a version's export from the stored upload (its DICOM headers / NIfTI affine) and that
    version's labels, keep it under `files["export"]` (version 0) or `files["export-v<n>"]`.

    Two first downloads at once may both build one; the first to record its file wins and the
    other's file is removed, so the job keeps exactly one per version."""
    from TumorApp.analysis.series.export import export_for

    from .corrections import labels_path, read_labels, version_record

    from TumorApp.analysis.series.correct import labels_to_nifti

    key = _export_key(version, nifti)
    try:
        record = version_record(job, version)
        labels = np.asarray(read_labels(labels_path(job, version)))
        volume = geometry(job)
        if nifti:  # in the series' patient space: what PUT /api/series/<id>/labels/ takes back
            blob, name = labels_to_nifti(volume, labels), "labels.nii.gz"
        else:
            blob, name = export_for(volume, labels, version=version, corrected_by=record.get("corrected_by", ""))
    except FileNotFoundError as exc:  # deleted meanwhile
        raise SeriesJob.DoesNotExist(f"series {job.pk} was deleted") from exc
    path = default_storage.save(f"{job.folder}/{key}-{name}", ContentFile(blob))
    with transaction.atomic():
        current = SeriesJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:  # deleted while the export was being built: leave nothing behind
            default_storage.delete(path)
            raise SeriesJob.DoesNotExist(f"series {job.pk} was deleted")
        if current.files.get(key):
            default_storage.delete(path)
            path = current.files[key]
        else:
            current.files = {**current.files, key: path}
            current.save(update_fields=["files"])
    job.files = {**job.files, key: path}
    return path


def geometry(job: SeriesJob):
    """The series as a `SeriesVolume` for what needs its geometry and headers (exports, label
    uploads, PACS sends): the stored CT memory-mapped, the upload's headers read again, no pixel
    decoded."""
    from TumorApp.analysis.series.volume import load_series

    ct = np.load(default_storage.path(job.files["ct"]), mmap_mode="r", allow_pickle=False)
    return load_series(input_items(job), hu=ct)


def volume_arrays(job: SeriesJob, version: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ct int16, labels uint8) of a version (None: the current one, corrected or the network's),
    memory-mapped where stored as .npy: the viewer reads one slice per request."""
    from .corrections import labels_path, read_labels

    ct = np.load(default_storage.path(job.files["ct"]), mmap_mode="r", allow_pickle=False)
    return ct, read_labels(labels_path(job, version))


def export_file(job: SeriesJob, version: int | None = None, *, nifti: bool = False) -> tuple[bytes, str, str]:
    """(bytes, download name, content type) of a version's DICOM-SEG or NIfTI labels (None: the
    current version; `nifti`: NIfTI labels in patient space whatever the upload was), made on first call.

    Raises `SeriesJob.DoesNotExist` when the series is deleted meanwhile, `SeriesVersion.DoesNotExist`
    for a version that is not kept."""
    from .corrections import current_version

    version = current_version(job) if version is None else version
    nifti = nifti and job.kind == "dicom"  # a NIfTI upload's export is NIfTI already
    path = job.files.get(_export_key(version, nifti)) or _make_export(job, version, nifti)
    try:
        with default_storage.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:  # deleted since the row was read
        raise SeriesJob.DoesNotExist(f"series {job.pk} was deleted") from exc
    if job.kind == "dicom" and not nifti:
        return data, f"series-{job.pk}-v{version}-segmentation.dcm", "application/dicom"
    return data, f"series-{job.pk}-v{version}-labels.nii.gz", "application/gzip"
