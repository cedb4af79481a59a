"""PACS work: search CT series (QIDO-RS), retrieve one into a queued series job (WADO-RS), and send a
finished job's, or a single DICOM slice's, SEG, SR and key image back (STOW-RS).  Every retrieve and
send is audited; a send is also kept as a `PacsTransfer` row, so a failed one is shown with a retry,
never lost.
"""
from __future__ import annotations

import io
import logging
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pydicom
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from TumorApp.analyses import selectors
from TumorApp.audit import record_event
from TumorApp.analysis.errors import InputError
from TumorApp.models import Analysis, AuditEvent, PacsTransfer, SeriesJob
from TumorApp.series import services as series_services

from .client import CALL_ERRORS, PacsError, PacsNotConfigured, as_pacs_error, get_client, read_json, retrieve_files
from .forms import UID

log = logging.getLogger("TumorApp.pacs")

# QIDO-RS attributes a search shows; keyword -> the key in our result rows.
SEARCH_FIELDS = {
    "StudyInstanceUID": "study_uid", "SeriesInstanceUID": "series_uid", "PatientID": "patient_id",
    "PatientName": "patient_name", "StudyDate": "study_date", "AccessionNumber": "accession_number",
    "StudyDescription": "study_description", "SeriesDescription": "series_description",
    "SeriesNumber": "series_number", "Modality": "modality", "NumberOfSeriesRelatedInstances": "instances",
}
SEARCH_LIMIT = 100
INCOMING = (PacsTransfer.Direction.RETRIEVE, PacsTransfer.Direction.RECEIVE)  # series that came from a PACS


# --- search ------------------------------------------------------------------------------------

def search_series(*, patient_id: str = "", patient_name: str = "", study_date: str = "",
                  accession_number: str = "") -> list[dict]:
    """CT series matching every filter given (DICOM matching: `*` wildcards, dates as YYYYMMDD or a
    YYYYMMDD-YYYYMMDD range).  Raises `PacsError` when the PACS cannot be asked."""
    filters = {"Modality": "CT"}
    # The name's component separator travels as %5E, which some PACS (Orthanc 1.10) do not decode; the
    # one-character wildcard matches it everywhere.
    patient_name = patient_name.replace("^", "?")
    for key, value in (("PatientID", patient_id), ("PatientName", patient_name), ("StudyDate", study_date),
                       ("AccessionNumber", accession_number)):
        if value:
            filters[key] = value
    try:
        found = read_json("/series", {**filters, "includefield": list(SEARCH_FIELDS), "limit": str(SEARCH_LIMIT)})
        rows = [_row(pydicom.Dataset.from_json(item)) for item in found]
    except CALL_ERRORS as exc:
        raise as_pacs_error(exc) from exc
    return sorted(rows, key=lambda r: (r["study_date"], r["patient_id"], r["series_number"] or 0), reverse=True)


def _row(ds: pydicom.Dataset) -> dict:
    """One search result; numbers as int (None when the PACS left them out), the rest as text."""
    row = {}
    for keyword, key in SEARCH_FIELDS.items():
        value = ds.get(keyword)
        if keyword in ("SeriesNumber", "NumberOfSeriesRelatedInstances"):
            row[key] = int(value) if value not in (None, "") else None
        else:
            row[key] = str(value) if value is not None else ""
    return row


# --- retrieve ----------------------------------------------------------------------------------

def study_of(series_uid: str) -> str:
    """The Study Instance UID of a series, asked of the PACS (WADO-RS needs both)."""
    try:
        found = read_json("/series", {"SeriesInstanceUID": series_uid, "includefield": "StudyInstanceUID",
                                      "limit": "2"})
        study = str(pydicom.Dataset.from_json(found[0]).StudyInstanceUID) if found else None
    except CALL_ERRORS as exc:
        raise as_pacs_error(exc) from exc
    if study is None:
        raise PacsError(f"The PACS has no series {series_uid}.")
    if not (len(study) <= 64 and UID.fullmatch(study)):
        raise PacsError("The PACS answered a Study Instance UID that is not a UID.")
    return study


def retrieve_series(*, series_uid: str, into: Path, study_uid: str = "") -> list[Path]:
    """Stream the series' instances (WADO-RS) into files in `into` as they arrive, within the series
    upload limits (slices, bytes per image and in all) and DICOMWEB_RETRIEVE_TIMEOUT; returns the
    files, undecoded (the upload reader checks each).  Raises `PacsError` or `InputError`."""
    from TumorApp.analysis.io.series_input import MAX_FILE_BYTES, MAX_SERIES_BYTES, MAX_SLICES

    study_uid = study_uid or study_of(series_uid)
    if not all(len(uid) <= 64 and UID.fullmatch(uid) for uid in (study_uid, series_uid)):
        raise InputError("A Study or Series Instance UID is not a UID (digits and dots).")
    try:
        paths = retrieve_files(f"/studies/{study_uid}/series/{series_uid}", into, max_files=MAX_SLICES,
                               max_file_bytes=MAX_FILE_BYTES,
                               max_bytes=min(MAX_SERIES_BYTES, settings.MAX_SERIES_UPLOAD_BYTES),
                               seconds=settings.DICOMWEB_RETRIEVE_TIMEOUT)
    except InputError:  # over our limits (an InputError is a ValueError: keep it apart from the PACS's)
        raise
    except CALL_ERRORS as exc:
        raise as_pacs_error(exc) from exc
    if not paths:
        raise PacsError(f"The PACS returned no images for series {series_uid}.")
    return paths


class _Upload(io.BytesIO):
    """A retrieved file in the shape `submit_series` takes an upload (a name, read/seek)."""

    def __init__(self, path: Path):
        super().__init__(path.read_bytes())
        self.name = path.name


def import_series(*, user, series_uid: str, study_uid: str = "", ip: str | None = None) -> SeriesJob:
    """Queue a PACS series for the series worker to retrieve (WADO-RS) and analyse.

    Only the study lookup (QIDO-RS, bounded by DICOMWEB_TIMEOUT) happens here, so an unknown series
    or an unreachable PACS is said at once with nothing stored; the transfer itself runs in the
    worker (`fetch_retrieve`), so a slow PACS never holds a web request.  Audited either way."""
    try:
        study_uid = study_uid or study_of(series_uid)
        if not all(len(uid) <= 64 and UID.fullmatch(uid) for uid in (study_uid, series_uid)):
            raise InputError("A Study or Series Instance UID is not a UID (digits and dots).")
    except (PacsError, InputError) as exc:
        record_event(action=AuditEvent.Action.PACS_RETRIEVE_FAILED, user=user, ip=ip, detail=f"{series_uid}: {exc}")
        raise
    with transaction.atomic():
        job = SeriesJob.objects.create(owner=user, name=f"PACS series {series_uid}"[:255], kind="dicom",
                                       folder=f"series/{uuid.uuid4().hex}",
                                       files={"pacs": {"study_uid": study_uid, "series_uid": series_uid}})
        PacsTransfer.objects.create(job=job, user=user, direction=PacsTransfer.Direction.RETRIEVE,
                                    status=PacsTransfer.Status.DONE, study_instance_uid=study_uid,
                                    series_instance_uid=series_uid)
        record_event(action=AuditEvent.Action.PACS_RETRIEVE, user=user, ip=ip,
                     detail=f"series {job.pk} <- {series_uid} (queued)")
        if settings.SERIES_QUEUE == "celery":
            transaction.on_commit(lambda: series_services._send(job.pk))
    return job


def fetch_retrieve(job: SeriesJob) -> None:
    """In the series worker: retrieve a queued PACS series (`import_series`) into the job's input
    folder, checked as an upload is (`check_series`), before it is analysed.  Raises `InputError`
    with the PACS's or the reader's message (the worker fails the job with it; the retrieve row
    says so, audited)."""
    from django.core.files import File

    from TumorApp.analysis.series.volume import check_series

    source = job.files["pacs"]
    tmp = Path(tempfile.mkdtemp(prefix="pacs-", dir=_tmp_root()))
    try:
        try:
            paths = retrieve_series(series_uid=source["series_uid"], study_uid=source["study_uid"], into=tmp)
            found = check_series([(p.name, p) for p in paths])
        except (PacsError, InputError) as exc:
            PacsTransfer.objects.filter(job=job, direction=PacsTransfer.Direction.RETRIEVE).update(
                status=PacsTransfer.Status.FAILED, error=str(exc))
            record_event(action=AuditEvent.Action.PACS_RETRIEVE_FAILED, user=job.owner,
                         detail=f"series {job.pk} <- {source['series_uid']}: {exc}")
            raise InputError(str(exc)) from exc  # the worker fails the job with this message
        folder = f"{job.folder}/input"
        if default_storage.exists(folder):  # a retry after a killed worker: start again
            shutil.rmtree(default_storage.path(folder), ignore_errors=True)
        for k, path in enumerate(paths):
            with open(path, "rb") as f:
                default_storage.save(f"{folder}/{k:04d}_{path.name}", File(f))
        SeriesJob.objects.filter(pk=job.pk).update(progress_total=found.slices)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def queue_files(*, user, paths: list[Path], series_uid: str, study_uid: str, direction: str,
                ip: str | None = None) -> SeriesJob:
    """Queue DICOM files that came from the PACS or a C-STORE like an upload (`submit_series`), marked
    with a `PacsTransfer` (so PACS_AUTO_SEND knows where the series came from) and audited.
    Raises `InputError` (nothing stored) for a series the reader refuses."""
    job = series_services.submit_series(user=user, uploads=[_Upload(p) for p in paths], ip=ip)
    came = "PACS" if direction == PacsTransfer.Direction.RETRIEVE else "DICOM"
    job.name = f"{came} series {series_uid}"[:255]
    job.save(update_fields=["name"])
    PacsTransfer.objects.create(job=job, user=user, direction=direction, status=PacsTransfer.Status.DONE,
                                study_instance_uid=study_uid or "", series_instance_uid=series_uid)
    action = AuditEvent.Action.PACS_RETRIEVE if direction == PacsTransfer.Direction.RETRIEVE \
        else AuditEvent.Action.DICOM_RECEIVE
    record_event(action=action, user=user, ip=ip, detail=f"series {job.pk} <- {series_uid}")
    return job


def _tmp_root() -> str:
    """Retrieved series wait under var/tmp (patient data: owner-only, next to the media), not /tmp."""
    root = Path(settings.MEDIA_ROOT).parent / "tmp"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(root)


def remove_stale_tmp(*, older_than_s: float) -> list[str]:
    """Remove retrieve (`pacs-*`) and listener (`dicom-in-*`) folders under var/tmp in which nothing
    changed for `older_than_s`: what a killed retrieve or listener leaves.  Returns their names."""
    import time

    root = Path(settings.MEDIA_ROOT).parent / "tmp"
    cutoff = time.time() - older_than_s
    removed = []
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        if not folder.is_dir() or not folder.name.startswith(("pacs-", "dicom-in-")):
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if max(newest, folder.stat().st_mtime) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("removed %d stale temporary folder(s) from %s", len(removed), root)
    return removed


# --- send --------------------------------------------------------------------------------------

def result_instances(*, volume, record: dict, ct, labels, seg_bytes: bytes) -> list[pydicom.Dataset]:
    """[SEG, SR, key image] for one analysed series (the SEG as the export makes it)."""
    import highdicom as hd

    from TumorApp.analysis.series.pacs_objects import key_image, structured_report

    seg = hd.seg.segread(io.BytesIO(seg_bytes))
    return [seg, structured_report(volume, record, seg), key_image(volume, record, ct, labels, str(seg.SOPInstanceUID))]


def store(instances: list[pydicom.Dataset]) -> dict:
    """STOW-RS the instances in one request; {"seg", "sr", "key_image"} SOP Instance UIDs stored.

    Raises `PacsError` when the request fails or the PACS reports any instance as failed (the UIDs
    are fixed per result, so a retry stores the same instances again, not copies)."""
    try:
        answer = get_client().store_instances(instances)
    except CALL_ERRORS as exc:
        raise as_pacs_error(exc) from exc
    failed = answer.get("FailedSOPSequence") or []
    if failed:
        reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
        raise PacsError(f"The PACS refused {len(failed)} of the {len(instances)} objects "
                        f"(failure reason {', '.join(reasons)}).")
    return {name: str(ds.SOPInstanceUID) for name, ds in zip(("seg", "sr", "key_image"), instances)}


def _send(*, transfer: PacsTransfer, build, subject: str, user=None, ip: str | None = None,
          analysis_id: int | None = None) -> PacsTransfer:
    """The one send mechanism for series and slices: `build()` makes the instances (and may fill the
    transfer's study/series UIDs), they are stored in one STOW-RS request, and the transfer row and its
    audit event are written together, done or failed (why), so a failed send is shown and retried."""
    try:
        transfer.sop_instance_uids = store(build())
        transfer.status = PacsTransfer.Status.DONE
    except (PacsError, InputError) as exc:
        transfer.status, transfer.error = PacsTransfer.Status.FAILED, str(exc)
    except Exception as exc:  # a bug building the objects: recorded as a failed send, not a lost one
        log.exception("%s: preparing the PACS objects failed", subject)
        transfer.status = PacsTransfer.Status.FAILED
        transfer.error = f"The results could not be prepared for the PACS ({type(exc).__name__}); please report this."
    done = transfer.status == PacsTransfer.Status.DONE
    with transaction.atomic():
        transfer.save()
        record_event(action=AuditEvent.Action.PACS_SEND if done else AuditEvent.Action.PACS_SEND_FAILED,
                     user=user, ip=ip, analysis_id=analysis_id,
                     detail=f"{subject}: " + (transfer.sop_instance_uids.get("sr", "") if done else transfer.error))
    if not done:
        log.warning("%s: sending to the PACS failed: %s", subject, transfer.error)
    return transfer


def _require_pacs() -> None:
    if not settings.DICOMWEB_URL:  # nothing attempted, so nothing to record
        raise PacsNotConfigured("No PACS is configured: set DICOMWEB_URL (see docs/pacs.md).")


def _sender(user):
    return user if getattr(user, "is_authenticated", False) else None


def send_results(*, job: SeriesJob, user=None, ip: str | None = None) -> PacsTransfer:
    """Send a finished DICOM series' SEG, SR and key image (its current version, corrected or the
    network's); the returned row says done or failed (why).

    Raises `InputError` when the job cannot be sent at all (not done, or a NIfTI upload), and
    `PacsNotConfigured` without DICOMWEB_URL; neither is recorded as a send."""
    _require_pacs()
    if job.status != SeriesJob.Status.DONE:
        raise InputError(f"The series is {job.status}; results can be sent once it is done.")
    if job.kind != "dicom":
        raise InputError("Only DICOM series can be sent to the PACS (a NIfTI upload has no DICOM study).")
    source = job.pacs_transfers.filter(direction__in=INCOMING).first()
    transfer = PacsTransfer(job=job, user=_sender(user), direction=PacsTransfer.Direction.SEND,
                            series_instance_uid=source.series_instance_uid if source else "")

    def build() -> list[pydicom.Dataset]:
        seg_bytes, _, _ = series_services.export_file(job)
        ct, labels = series_services.volume_arrays(job)
        volume = series_services.geometry(job)
        transfer.series_instance_uid = transfer.series_instance_uid or str(volume.datasets[0].SeriesInstanceUID)
        transfer.study_instance_uid = str(volume.datasets[0].get("StudyInstanceUID", ""))
        return result_instances(volume=volume, record=series_services.payload(job), ct=ct, labels=labels,
                                seg_bytes=seg_bytes)

    return _send(transfer=transfer, build=build, subject=f"series {job.pk}", user=user, ip=ip)


# --- a single slice ----------------------------------------------------------------------------

NOT_DICOM = ("Only an analysis of a DICOM slice can be sent to the PACS: a PNG or JPEG upload has no "
             "DICOM study to file the results under.")


def has_dicom_source(analysis: Analysis) -> bool:
    """Whether the stored upload is a DICOM file (its preamble's DICM, or stored as .dcm): the page offers
    the send only then.  Cheap: reads 132 bytes."""
    name = analysis.upload.name or ""
    if name.lower().endswith(".dcm"):
        return True
    try:
        with default_storage.open(name, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except (OSError, ValueError):
        return False


def slice_source(analysis: Analysis) -> pydicom.Dataset:
    """The analysed DICOM slice's header, read through the same checks as an upload.  Raises
    `InputError` for a PNG/JPEG upload, a multi-frame file, or a file without the UIDs a PACS files by."""
    from TumorApp.analysis.io.loading import read_dicom

    if not has_dicom_source(analysis):
        raise InputError(NOT_DICOM)
    try:
        with default_storage.open(analysis.upload.name, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError("The analysed file is no longer stored, so nothing can be sent.") from exc
    ds, frames = read_dicom(raw, analysis.original_name)
    if frames > 1:
        raise InputError("The analysed file is a multi-frame DICOM; only single-frame slices can be sent.")
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
               if not str(ds.get(k, "") or "").strip()]
    if missing:
        raise InputError(f"The DICOM file has no {', '.join(missing)}, so the PACS cannot file results under it.")
    return ds


def slice_masks(analysis: Analysis, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(liver, tumour) bool masks of the analysis's current outline: the latest correction's, else the
    network's (read back from its stored mask picture)."""
    from TumorApp.analysis.slice.correct import mask_from_png, masks_from_mask_image

    latest = analysis.mask_versions.filter(number__gt=0).order_by("-number").first()
    if latest is None:
        return masks_from_mask_image(selectors.image_bytes(analysis, "mask") or b"")
    with default_storage.open(latest.liver_mask, "rb") as f:
        liver = mask_from_png(f.read(), shape, "liver")
    with default_storage.open(latest.tumor_mask, "rb") as f:
        tumor = mask_from_png(f.read(), shape, "tumor")
    return liver, tumor


def send_analysis(*, analysis: Analysis, user=None, ip: str | None = None) -> PacsTransfer:
    """Send a single DICOM slice's SEG, SR and annotated key image (its latest corrected outline if any,
    else the network's; the SR says who corrected it); the returned row says done or failed (why).

    Raises `InputError` when the analysis cannot be sent at all (a PNG/JPEG upload: no DICOM source),
    `PacsNotConfigured` without DICOMWEB_URL; neither is recorded as a send."""
    from TumorApp.analysis.series.pacs_objects import slice_instances

    _require_pacs()
    ds = slice_source(analysis)
    transfer = PacsTransfer(analysis=analysis, user=_sender(user), direction=PacsTransfer.Direction.SEND,
                            study_instance_uid=str(ds.StudyInstanceUID), series_instance_uid=str(ds.SeriesInstanceUID))

    def build() -> list[pydicom.Dataset]:
        liver, tumor = slice_masks(analysis, (int(ds.Rows), int(ds.Columns)))
        annotated = selectors.image_bytes(analysis, "annotated")
        if annotated is None:
            raise InputError("The analysis's annotated picture is no longer stored.")
        return slice_instances(ds, liver, tumor, annotated, selectors.api_payload(analysis), analysis_id=analysis.pk)

    return _send(transfer=transfer, build=build, subject=f"analysis {analysis.pk}", user=user, ip=ip,
                 analysis_id=analysis.pk)


def auto_send(job: SeriesJob) -> PacsTransfer | None:
    """PACS_AUTO_SEND: send a series that came from the PACS (retrieved or C-STOREd to the listener) once it
    is analysed (the worker calls this)."""
    if not settings.PACS_AUTO_SEND or not settings.DICOMWEB_URL:
        return None
    job = SeriesJob.objects.get(pk=job.pk)
    if job.status != SeriesJob.Status.DONE or not job.pacs_transfers.filter(direction__in=INCOMING).exists():
        return None
    return send_results(job=job, user=job.owner)


def last_send(subject: SeriesJob | Analysis) -> PacsTransfer | None:
    """The latest send of a series job or a slice analysis (the page shows it, failed ones with a retry)."""
    return subject.pacs_transfers.filter(direction=PacsTransfer.Direction.SEND).first()
