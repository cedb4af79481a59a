"""Corrected series (issue 20): save a corrected label volume as a new version and make the figures
recomputed from it (`analysis/series/correct.py`, the network's own measurement) the job's result.

Storage, beside the series' other files:
* version 0 is the network's: its labels are the job's `files["labels"]` (.npy), its record the
  job's result before the first correction; its row is written with the first correction;
* version n >= 1: `versions/v<n>-labels.npz` (compressed uint8 0/1/2), one row each;
* `files["corrected"]`: the latest correction as .npy too, memory-mapped by the viewer.
At most `MASK_VERSIONS_KEPT` versions are kept (version 0 and the newest corrections), as for slices.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.labels import decode_png

from ..models import AuditEvent, SeriesJob, SeriesVersion
from ..audit import record_event
from ..uploads import remove_paths, remove_paths_on_commit

log = logging.getLogger("TumorApp.series")


class SeriesNotDone(Exception):
    """The job has no result to correct yet (409)."""


# --- reads -------------------------------------------------------------------------------------

def current_version(job: SeriesJob) -> int:
    return int(job.result.get("version", 0))


def stored_volume(job: SeriesJob):
    """The stored CT (memory-mapped) and the job's exact spacing: all `measure_volume` needs."""
    from TumorApp.analysis.series.volume import SeriesVolume

    ct = np.load(default_storage.path(job.files["ct"]), mmap_mode="r", allow_pickle=False)
    spacing = job.spacing_mm or job.result.get("spacing_mm")  # older jobs: the rounded one
    return SeriesVolume(hu=ct, spacing_mm=tuple(float(v) for v in spacing), kind=job.kind)


def labels_path(job: SeriesJob, version: int | None = None) -> str:
    """Storage path of a version's labels (None: the current); SeriesVersion.DoesNotExist if pruned."""
    current = current_version(job)
    version = current if version is None else version
    if version == 0:
        return job.files["labels"]
    if version == current and job.files.get("corrected"):
        return job.files["corrected"]
    return SeriesVersion.objects.get(job=job, number=version).labels


def read_labels(path: str, *, mmap: bool = True) -> np.ndarray:
    """uint8 (z, y, x) labels from a .npy (memory-mapped) or .npz version file."""
    full = default_storage.path(path)
    if path.endswith(".npz"):
        with np.load(full, allow_pickle=False) as data:
            return data["labels"]
    return np.load(full, mmap_mode="r" if mmap else None, allow_pickle=False)


def version_record(job: SeriesJob, version: int | None = None) -> dict:
    """The result record a version carries (the current one is the job's)."""
    if version is None or version == current_version(job):
        return job.result
    return SeriesVersion.objects.get(job=job, number=version).result


def versions_for(job: SeriesJob) -> list[dict]:
    """Every kept version, oldest first; an uncorrected job lists only the network's."""
    rows = list(job.versions.order_by("number"))
    if not rows:
        return [{"number": 0, "created_at": (job.finished_at or job.created_at).isoformat(), "created_by": ""}]
    return [{"number": v.number, "created_at": v.created_at.isoformat(), "created_by": v.created_by_name}
            for v in rows]


# --- edits -------------------------------------------------------------------------------------

def correct_series(*, job: SeriesJob, user, labels: np.ndarray | None = None,
                   slices: dict[int, np.ndarray] | None = None, remove_lesion: int | None = None,
                   interpolate: tuple[int, int] | None = None,
                   ip: str | None = None, action: str = AuditEvent.Action.SERIES_CORRECT) -> SeriesVersion:
    """Save a corrected series as a new version and make its recomputed figures the job's result.

    One of: `labels` (a whole uint8 volume, checked), `slices` ({index: (y, x) labels}: replaces
    those slices of the current labels), `remove_lesion` (a 3-D lesion's number in the current
    result: its voxels become liver through every slice it spans), `interpolate` ((first, last):
    the slices between them follow those two, `series_correct.interpolate`).  The current labels are read
    and the figures recomputed inside the transaction that holds the job row, so concurrent saves
    queue and none loses another's slices.  InputError (nothing stored) for bad labels,
    SeriesNotDone while the job has no result.  Files written are removed if anything fails.
    """
    from TumorApp.analysis.series import correct as series_correct

    saved: list[str] = []

    def save(path: str, array: np.ndarray, compressed: bool) -> str:
        buf = io.BytesIO()
        if compressed:
            np.savez_compressed(buf, labels=array)
        else:
            np.save(buf, array, allow_pickle=False)
        stored = default_storage.save(path, ContentFile(buf.getvalue()))
        saved.append(stored)
        return stored

    try:
        with transaction.atomic():
            locked = SeriesJob.objects.select_for_update().filter(pk=job.pk).first()
            if locked is None:
                raise SeriesJob.DoesNotExist(f"series {job.pk} was deleted")
            if locked.status != SeriesJob.Status.DONE:
                raise SeriesNotDone(f"The series is {locked.status}; it can be corrected once it is done.")
            volume = stored_volume(locked)
            if labels is None:
                labels = np.array(read_labels(labels_path(locked)), dtype=np.uint8)
                if slices:
                    for index, plane in slices.items():
                        if not 0 <= index < labels.shape[0]:
                            raise InputError(f"There is no slice {index} (the series has {labels.shape[0]}, from 0).")
                        labels[index] = series_correct.check_labels(plane, labels.shape[1:])
                if interpolate is not None:
                    labels = series_correct.interpolate(labels, *interpolate)
                if remove_lesion is not None:
                    before = series_correct.recompute_series(volume, labels)
                    labels = series_correct.remove_lesion(before, labels, remove_lesion)
            result = series_correct.recompute_series(volume, labels)
            labels = result.label_volume()

            model = locked.versions.filter(number=0).first()
            if model is None:
                model = SeriesVersion.objects.create(job=locked, number=0, labels=locked.files["labels"],
                                                     result=locked.result,
                                                     created_at=locked.finished_at or locked.created_at)
            number = locked.versions.order_by("-number").values_list("number", flat=True).first() + 1
            now = timezone.now()
            record = result.to_dict()
            record.update({
                "notes": model.result.get("notes", []),
                "stage_label": result.stage_label,
                "inference": model.result.get("inference", ""),  # the network that drew version 0
                "version": number, "corrected": True, "corrected_by": user.get_username(),
                "corrected_at": now.isoformat(),
            })
            folder = f"{locked.folder}/versions"
            version = SeriesVersion.objects.create(
                job=locked, number=number, created_at=now, created_by=user,
                created_by_name=user.get_username()[:150], labels=save(f"{folder}/v{number}-labels.npz", labels, True),
                result=record)
            previous = locked.files.get("corrected")
            locked.result = record
            locked.files = {**locked.files, "corrected": save(f"{folder}/v{number}-current.npy", labels, False)}
            pruned = _prune(locked)
            locked.save(update_fields=["result", "files"])
            if previous:
                remove_paths_on_commit([previous])
            detail = f"series {locked.pk} version {number}"
            if pruned:
                detail += f"; removed version(s) {', '.join(map(str, pruned))}"
            record_event(action=action, user=user, ip=ip, detail=detail[:255])
    except BaseException:
        remove_paths(saved, "after a failed series correction")
        raise
    job.result, job.files = locked.result, locked.files
    log.info("user=%s corrected series %s: version %s", user.get_username(), job.pk, number)
    return version


def _prune(job: SeriesJob) -> list[int]:
    """Keep version 0 and the newest MASK_VERSIONS_KEPT - 1 corrections; the older rows go now,
    their label files (and cached exports) once committed.  Returns the numbers removed."""
    keep = max(settings.MASK_VERSIONS_KEPT, 2) - 1
    old = list(job.versions.filter(number__gt=0).order_by("-number")[keep:])
    if not old:
        return []
    paths = [v.labels for v in old]
    cached = {f"{kind}-v{v.number}" for v in old for kind in ("export", "export-nifti")}  # their exports
    paths += [p for k, p in job.files.items() if k in cached]
    job.files = {k: p for k, p in job.files.items() if k not in cached}
    SeriesVersion.objects.filter(pk__in=[v.pk for v in old]).delete()
    remove_paths_on_commit(paths)
    return sorted(v.number for v in old)


# The editor's JSON: a handful of keys, never nested deeper than this; and a body no larger than
# every slice's label map as an uncompressed PNG in base64 (`slices_body_limit`).
MAX_JSON_DEPTH = 4
SMALL_JSON_BYTES = 4096


def whole_number(text) -> int | None:
    """`text` as a non-negative int when it is ASCII digits only (at most 9), else None: `"²"` and
    `"١"` pass str.isdigit() yet are no index."""
    if isinstance(text, str) and 0 < len(text) <= 9 and text.isascii() and text.isdigit():
        return int(text)
    return None


def load_json(body: bytes, limit: int, usage: str, max_depth: int = MAX_JSON_DEPTH):
    """`body` parsed as JSON within `limit` bytes and `max_depth` levels; InputError saying
    `usage` (what to send) otherwise, never a parser's or the interpreter's error."""
    import json

    if len(body) > limit:
        raise InputError(f"The request body is {len(body):,} bytes; at most {limit:,} are accepted. {usage}")
    if _depth(body) > max_depth:
        raise InputError(f"The JSON is nested too deeply. {usage}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(usage) from exc


def _depth(body: bytes) -> int:
    """Deepest nesting of [ and { outside strings, counted without parsing (so without recursion)."""
    import re

    text = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', body)  # strings cannot open or close anything
    depth = deepest = 0
    for byte in text.translate(None, delete=bytes(b for b in range(256) if b not in b"[]{}")):
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def interpolation_from_json(body: bytes) -> tuple[int, int]:
    """The editor's interpolate body, JSON {"from": <0-based slice>, "to": <0-based slice>}."""
    usage = 'Send JSON {"from": <slice index>, "to": <slice index>} (0-based).'
    data = load_json(body, SMALL_JSON_BYTES, usage)
    try:
        first, last = data["from"], data["to"]
    except (TypeError, KeyError, IndexError) as exc:
        raise InputError(usage) from exc
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
        raise InputError('"from" and "to" must be whole slice indices (0-based).')
    return first, last


def slices_body_limit(shape: tuple[int, int, int]) -> int:
    """The largest sensible editor save for a series of `shape`: every slice's label map as an
    uncompressed PNG (a byte a pixel and some headers), in base64, with its key."""
    z, y, x = shape
    return z * ((y * x + 1024) * 4 // 3 + 64) + SMALL_JSON_BYTES


def slices_from_json(body: bytes, shape: tuple[int, int, int]) -> dict[int, np.ndarray]:
    """The editor's save body, JSON {"slices": {"<index>": "<base64 PNG>"}} -> {index: labels}."""
    import base64
    import binascii

    usage = 'Send JSON {"slices": {"<slice index>": "<base64 PNG>"}}.'
    data = load_json(body, slices_body_limit(shape), usage)
    items = data.get("slices") if isinstance(data, dict) else None
    if not isinstance(items, dict) or not items:
        raise InputError('Send at least one changed slice as {"slices": {"<slice index>": "<base64 PNG>"}}.')
    slices = {}
    for key, value in items.items():
        index = whole_number(key)
        if index is None or index >= shape[0]:
            raise InputError(f"There is no slice {key[:20]!r}: indices run from 0 to {shape[0] - 1}.")
        try:
            png = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"Slice {index}'s picture is not base64.") from exc
        slices[index] = decode_png(png, shape[1:], f"label map of slice {index + 1}")
    return slices
