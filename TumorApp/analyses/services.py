"""Writes: create and delete analyses, update accounts, seed the first admin. Views call these, nothing else writes."""
from __future__ import annotations

import errno
import functools
import io
import logging
import os
import re
import threading
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from ..audit import record_event
from ..uploads import clean_filename, remove_paths, remove_paths_on_commit
from ..models import Analysis, AuditEvent, MaskVersion

log = logging.getLogger("TumorApp.audit")

# Only these extensions survive into stored names; everything else is stored as ".bin".
STORED_EXTENSIONS = {".png", ".jpg", ".jpeg", ".dcm"}
IMAGE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
THUMBNAIL_SIZE = 128
class ServerBusy(Exception):
    """Every analysis slot stayed busy for the whole queue wait (answered 503)."""


class StorageFull(Exception):
    """The disk (or quota) is full: nothing was stored (answered 507)."""


@functools.lru_cache(maxsize=None)
def _analysis_slots(count: int) -> threading.BoundedSemaphore:
    """One semaphore per process bounding concurrent analyses, so memory is bounded too
    (peak per analysis x slots, bench/memory.py)."""
    return threading.BoundedSemaphore(count)


def _thumbnail(png: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
        im.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out = io.BytesIO()
        im.save(out, format="PNG")  # optimize=True cost ~4 ms per upload for ~3 % smaller thumbnails
    return out.getvalue()


def create_analysis(*, user, upload, pixel_spacing: float | None = None, ip: str | None = None,
                    action: str = AuditEvent.Action.ANALYSE) -> Analysis:
    """Analyse one uploaded slice, then store its file, images, row and audit event together.

    The analysis runs first, so bad input (InputError) writes nothing. The files and the row
    are written in one transaction; on any failure the files written so far (a partly written
    one too) are removed. Raises ServerBusy when no analysis slot frees up in time, StorageFull
    when the disk is full.
    """
    # The slot is held until the result (full-size masks and images) is stored and dropped, so
    # that memory is bounded by slots x the peak of one analysis.
    slots = _analysis_slots(settings.MAX_CONCURRENT_ANALYSES)
    if not slots.acquire(timeout=settings.ANALYSIS_QUEUE_SECONDS):
        raise ServerBusy("Every analysis slot is busy; please try again in a minute.")
    try:
        return _analyse_and_store(user=user, upload=upload, pixel_spacing=pixel_spacing, ip=ip, action=action)
    finally:
        slots.release()


def _analyse_and_store(*, user, upload, pixel_spacing, ip, action) -> Analysis:
    from TumorApp.analysis.slice.pipeline import analyze

    display_name = clean_filename(getattr(upload, "name", "") or "")
    upload.seek(0)
    data = upload.read()
    result = analyze(data, filename=display_name, pixel_spacing=pixel_spacing)

    key = uuid.uuid4().hex
    ext = os.path.splitext(display_name)[1].lower()
    ext = ext if ext in STORED_EXTENSIONS else ".bin"
    saved: list[str] = []

    def save(path: str, content: bytes) -> str:
        # Names are fresh (uuid), so what exists at `path` after a failed write is our partial file.
        saved.append(path)
        stored = default_storage.save(path, ContentFile(content))
        saved[-1] = stored
        return stored

    try:
        with transaction.atomic():
            upload_path = save(f"uploads/{user.pk}/{key}{ext}", data)
            images = {
                name: save(f"results/{user.pk}/{key}/{name}.png", png)
                for name, png in result.images.items()
                if IMAGE_KEY.match(name)
            }
            source = result.images.get("annotated") or result.images.get("original")
            if source:
                images["thumbnail"] = save(f"results/{user.pk}/{key}/thumbnail.png", _thumbnail(source))
            analysis = Analysis.objects.create(
                owner=user,
                original_name=display_name,
                upload=upload_path,
                images=images,
                result=result.to_dict(),
                notes=list(getattr(result, "notes", []) or []),
                tumor_detected=bool(result.tumor_detected),
                stage=result.stage or "",
                affected_percent=float(result.affected_percent or 0.0),
                spacing_source=result.spacing_source,
            )
            record_event(action=action, user=user, analysis_id=analysis.pk, ip=ip)
    except BaseException as exc:
        remove_paths(saved, "after a failed analysis")
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("disk full while storing an analysis for user=%s", user.get_username())
            raise StorageFull("The server's disk is full, so the analysis could not be stored. "
                              "Nothing was saved; please tell the administrator.") from exc
        raise
    log.info("user=%s analysed id=%s file=%r", user.get_username(), analysis.pk, display_name)
    return analysis


def delete_analysis(*, analysis: Analysis, actor=None, ip: str | None = None) -> None:
    """Delete the row and record who did (the owner unless `actor` is given, e.g. an admin);
    the stored files go once the deletion is committed (signals.py, for every way of deleting)."""
    pk, owner = analysis.pk, analysis.owner
    with transaction.atomic():
        analysis._audited = True  # this event replaces the generic one the post_delete receiver writes
        analysis.delete()
        record_event(action=AuditEvent.Action.DELETE, user=actor or owner, analysis_id=pk, ip=ip)
    log.info("user=%s deleted id=%s of user=%s", (actor or owner).get_username(), pk, owner.get_username())


def remove_files_on_commit(analysis: Analysis) -> None:
    """After the transaction deleting this row commits, delete its upload and images."""
    remove_paths_on_commit([analysis.upload.name, *(analysis.images or {}).values()])


def remove_orphan_files(*, older_than_s: float = 3600.0) -> list[str]:
    """Delete stored files no analysis refers to: what a server killed between writing files and committing leaves.

    A success answer is only sent after the row is committed, so these never belong to an upload
    that was reported as stored. Files younger than `older_than_s` are kept: they may belong to a
    request still in flight.
    """
    import time
    from pathlib import Path

    root = Path(default_storage.location)
    referenced: set[str] = set()
    for upload, images in Analysis.objects.values_list("upload", "images").iterator():
        referenced.add(upload)
        referenced.update((images or {}).values())
    for liver, tumor, images in MaskVersion.objects.values_list("liver_mask", "tumor_mask", "images").iterator():
        referenced.update((liver, tumor, *(images or {}).values()))
    cutoff = time.time() - older_than_s
    removed = []
    for top in ("uploads", "results"):
        for path in sorted((root / top).rglob("*")) if (root / top).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in referenced and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(rel)
        for folder in sorted((root / top).rglob("*"), reverse=True) if (root / top).is_dir() else []:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    if removed:
        log.info("removed %d orphan file(s) from %s", len(removed), root)
    return removed


# --- corrected outlines (issue 10) ---------------------------------------------------------------


def _read_stored(path: str) -> bytes:
    with default_storage.open(path, "rb") as f:
        return f.read()


def correct_masks(*, analysis: Analysis, user, labels_png: bytes | None = None, liver_png: bytes | None = None,
                  tumor_png: bytes | None = None, ip: str | None = None) -> MaskVersion:
    """Save a corrected outline as a new version and make its recomputed result the analysis's.

    The outline is one label-map PNG (`labels_png`, `labels.decode_png`: what the editor sends), or
    the two-mask form (`liver_png` and `tumor_png`, 0/255).

    Validates and recomputes first, outside any lock (InputError writes nothing); then, in one
    transaction holding the analysis row, keeps the network's own outline as version 0 if this is
    the first correction, writes the new version's masks and pictures, updates the analysis row,
    prunes old versions (`_prune_versions`) and records the `correct` event. On any failure the
    files written so far are removed and nothing stored changes.
    """
    from TumorApp.analysis.errors import InputError
    from TumorApp.analysis.io.loading import load
    from TumorApp.analysis.labels import decode_png
    from TumorApp.analysis.slice.correct import (MASK_IMAGES, mask_from_png, mask_png, masks_from_labels,
                                                 masks_from_mask_image, recompute)
    from TumorApp.analysis.slice.pipeline import segmentation_notes

    if (labels_png is None) == (liver_png is None or tumor_png is None):
        raise InputError("Send either one label map or both the liver and the tumour mask.")
    ct = load(_read_stored(analysis.upload.name), filename=analysis.original_name)
    if labels_png is not None:
        liver, tumor = masks_from_labels(decode_png(labels_png, ct.shape, "label map"))
    else:
        liver = mask_from_png(liver_png, ct.shape, "liver")
        tumor = mask_from_png(tumor_png, ct.shape, "tumor")

    # The network's result, which every correction starts from: version 0's, else the row's. The row
    # is read first: a row that already shows a correction was committed together with version 0.
    row = Analysis.objects.get(pk=analysis.pk)
    model = row.mask_versions.filter(number=0).first() or row
    spacing = model.result.get("pixel_spacing_mm") or [0.75, 0.75]
    # Its notes about the input carry over; its notes about its own outline (no liver, mirrored)
    # give way to the corrected outline's.
    mirrored = bool(model.result.get("mirrored"))
    own = segmentation_notes(liver_found=not model.result.get("inconclusive"), mirrored=mirrored)
    result = recompute(ct, liver, tumor, spacing_mm=(spacing[0], spacing[1]),
                       spacing_source=model.result.get("spacing_source", row.spacing_source),
                       mirrored=mirrored, notes=tuple(n for n in model.notes if n not in own),
                       inference=model.result.get("inference", ""))
    pictures = {name: result.images[name] for name in MASK_IMAGES}
    pictures["thumbnail"] = _thumbnail(result.images["annotated"])
    masks = {"liver": mask_png(liver), "tumor": mask_png(tumor)}

    saved: list[str] = []

    def save(path: str, content: bytes) -> str:
        stored = default_storage.save(path, ContentFile(content))
        saved.append(stored)
        return stored

    try:
        with transaction.atomic():
            # Concurrent saves queue here: the row lock (MySQL), the database's write lock (SQLite,
            # whose transactions begin IMMEDIATE; settings.py).
            locked = Analysis.objects.select_for_update().get(pk=analysis.pk)
            folder = f"results/{locked.owner_id}/corrections/{locked.pk}"
            model = locked.mask_versions.filter(number=0).first()
            if model is None:
                model_liver, model_tumor = masks_from_mask_image(_read_stored(locked.images["mask"]))
                model = MaskVersion.objects.create(
                    analysis=locked, number=0, created_at=locked.created_at,
                    liver_mask=save(f"{folder}/v0/liver.png", mask_png(model_liver)),
                    tumor_mask=save(f"{folder}/v0/tumor.png", mask_png(model_tumor)),
                    result=locked.result, notes=locked.notes, images=locked.images)
            number = locked.mask_versions.order_by("-number").values_list("number", flat=True).first() + 1
            prefix = f"{folder}/v{number}"
            images = dict(model.images)
            images.update({name: save(f"{prefix}/{name}.png", png) for name, png in pictures.items()})
            version = MaskVersion.objects.create(
                analysis=locked, number=number, created_by=user, created_by_name=user.get_username()[:150],
                liver_mask=save(f"{prefix}/liver.png", masks["liver"]),
                tumor_mask=save(f"{prefix}/tumor.png", masks["tumor"]),
                result=result.to_dict(), notes=result.notes, images=images)
            locked.result = version.result
            locked.notes = version.notes
            locked.images = images
            locked.tumor_detected = bool(result.tumor_detected)
            locked.stage = result.stage or ""
            locked.affected_percent = float(result.affected_percent)
            locked.save(update_fields=["result", "notes", "images", "tumor_detected", "stage", "affected_percent"])
            pruned = _prune_versions(locked)
            detail = f"version {number}"
            if pruned:
                detail += f"; removed version(s) {', '.join(map(str, pruned))}"
            record_event(action=AuditEvent.Action.CORRECT, user=user, analysis_id=locked.pk, ip=ip, detail=detail)
    except BaseException:
        remove_paths(saved, "after a failed correction")
        raise
    log.info("user=%s corrected id=%s version=%s", user.get_username(), analysis.pk, version.number)
    return version


def _prune_versions(analysis: Analysis) -> list[int]:
    """Keep version 0 (the network's) and the newest MASK_VERSIONS_KEPT - 1 corrections; delete the
    older rows (and, once committed, their own files). Returns the numbers removed."""
    corrections = list(analysis.mask_versions.filter(number__gt=0).order_by("-number"))
    keep_count = max(settings.MASK_VERSIONS_KEPT, 2) - 1  # version 0 and at least the current one
    old = corrections[keep_count:]
    if not old:
        return []
    MaskVersion.objects.filter(pk__in=[v.pk for v in old]).delete()  # their files: signals.py
    return sorted(v.number for v in old)


def paths_in_use(analysis_id: int) -> set[str]:
    """The stored files an analysis row and its remaining versions name."""
    used = {p for images in Analysis.objects.filter(pk=analysis_id).values_list("images", flat=True)
            for p in images.values()}
    for version in MaskVersion.objects.filter(analysis_id=analysis_id):
        used.update(version.paths())
    return used


def sweep_orphans(*, interval_s: float, grace_s: float, stop: threading.Event) -> None:
    """Remove orphan files and stale PACS / listener temporary folders now and then every
    `interval_s` until `stop` is set (the serving process runs this in a background thread;
    wsgi.py). Files younger than `grace_s` are kept."""
    from django.db import connection

    while not stop.is_set():
        try:
            from TumorApp.pacs.services import remove_stale_tmp

            remove_orphan_files(older_than_s=grace_s)
            remove_stale_tmp(older_than_s=grace_s)
        except Exception:  # a database outage must not end the sweeper
            log.warning("orphan sweep failed; will retry", exc_info=True)
        finally:
            connection.close()
        stop.wait(interval_s)
