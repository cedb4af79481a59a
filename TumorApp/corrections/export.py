"""`export_corrections`: every corrected analysis as a training slice, every corrected series as its
corrected slices (layout in training/corrections.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from django.core.files.storage import default_storage

from ..models import Analysis, SeriesJob


def export_corrections(out_dir: Path | str) -> list[dict]:
    """Write each corrected analysis's slice (HU where the upload had HU) and its latest corrected
    labels to `out_dir`, plus `manifest.json`; returns the manifest entries."""
    from TumorApp.analysis.slice.correct import label_map, mask_from_png
    from TumorApp.analysis.io.loading import load
    from TumorApp.training.corrections import write_slice

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    corrected = Analysis.objects.filter(mask_versions__number__gt=0).distinct().order_by("pk")
    for analysis in corrected.iterator():
        latest = analysis.mask_versions.order_by("-number").first()
        model = analysis.mask_versions.get(number=0)
        with default_storage.open(analysis.upload.name, "rb") as f:
            ct = load(f.read(), filename=analysis.original_name)
        masks = []
        for path, name in ((latest.liver_mask, "liver"), (latest.tumor_mask, "tumor")):
            with default_storage.open(path, "rb") as f:
                masks.append(mask_from_png(f.read(), ct.shape, name))
        spacing = latest.result.get("pixel_spacing_mm") or [0.75, 0.75]
        name = f"analysis-{analysis.pk}.npz"
        mirrored = bool(model.result.get("mirrored"))
        write_slice(out / name, image=ct.pixels, label=label_map(*masks), is_hu=ct.is_hu,
                    spacing_mm=(spacing[0], spacing[1]), source_id=analysis.pk, version=latest.number,
                    mirrored=mirrored)
        manifest.append({"file": name, "source_id": analysis.pk, "version": latest.number,
                         "corrected_by": latest.created_by_name, "corrected_at": latest.created_at.isoformat(),
                         "original_name": analysis.original_name, "is_hu": ct.is_hu,
                         "spacing_mm": spacing, "spacing_source": analysis.spacing_source,
                         "shape": list(ct.shape), "mirrored": mirrored})
    manifest += _export_series(out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _export_series(out: Path) -> list[dict]:
    """Each corrected series' slices whose latest labels differ from the network's, with their HU."""
    from TumorApp.series.corrections import labels_path, read_labels
    from TumorApp.training.corrections import write_series

    from ..series.services import volume_arrays

    entries = []
    for job in SeriesJob.objects.filter(versions__number__gt=0).distinct().order_by("pk").iterator():
        latest = job.versions.order_by("-number").first()
        ct, labels = volume_arrays(job, latest.number)
        network = read_labels(labels_path(job, 0))
        changed = [k for k in range(labels.shape[0]) if not np.array_equal(labels[k], network[k])]
        if not changed:  # saved without a change: nothing to learn from
            continue
        spacing = job.spacing_mm or job.result.get("spacing_mm")
        name = f"series-{job.pk}.npz"
        write_series(out / name, images=np.asarray(ct[changed]), labels=np.asarray(labels[changed]),
                     slices=changed, spacing_mm=(spacing[1], spacing[2]), source_id=job.pk, version=latest.number)
        entries.append({"file": name, "kind": "series", "source_id": job.pk, "version": latest.number,
                        "corrected_by": latest.created_by_name, "corrected_at": latest.created_at.isoformat(),
                        "original_name": job.name, "is_hu": True, "spacing_mm": list(spacing),
                        "slices": changed, "shape": [len(changed), *labels.shape[1:]], "mirrored": False})
    return entries
