"""manage.py make_calibration: the slices that calibrate the int8 graph, from training patients only.

    manage.py make_calibration [--data ../shared/data] [--out model/calibration.npz]

Writes `inputs` (N, 128, 128) uint8 = network input x 255, and per slice its `patients`,
`slices` (index in that patient's data) and `views`, so the file says where every slice came
from.  Only the weights' `trained_on` patients are used (model/cnn_weights.json), never the
held-out one: calibrating on it would tune the int8 ranges to the patient the figures come from.

What the network sees in the product, prepared by the product's own code:
  seed (8-bit display PNGs, mirrored on disk): read by the upload loader, the whole slice as
    uploaded and mirrored into radiological orientation (the first pass runs both), and the
    square liver crop of the second pass (the ground-truth liver's box, with the product's
    margin), each through `to_network_input`;
  lits-117 (HU, a 128^3 crop around the liver, axis 2 axial): the network's window, as the product windows
    HU, i.e. liver-crop views like the second pass's;
  ircadb-07 (a whole HU patient without tumour) and msd-slices (HU clipped to 0..255): whole
    slices, the full-field HU look most DICOM uploads have;
  ircadb-01: none — the tests' DICOM and PNG fixtures are its slices.
Slices are picked evenly over each patient's liver slices, plus a few seed slices beyond the
liver (heart, spleen, pelvis), so the choice is the same on every run.  The seed slices the
tests use (tests/fixtures) and their neighbours are left out.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from TumorApp.analysis.config import DEFAULT_WEIGHTS, REPO_ROOT
from TumorApp.analysis.model.network import metadata_path, weights_metadata
from TumorApp.analysis.model.quantize import CALIBRATION

FIXTURES = REPO_ROOT / "tests" / "fixtures"

SEED_WHOLE = 20  # radiological whole slices (the view the first pass keeps)
SEED_AS_UPLOADED = 8  # the mirrored-on-disk view the first pass also runs
SEED_CROPS = 16  # second-pass liver crops
SEED_OUTSIDE = 4  # slices beyond the liver, within OUTSIDE_REACH of it
OUTSIDE_REACH = 40
LITS = 16
# The tests' seed slices (tests/fixtures/*seed_<n>.png) and their neighbours, which are
# near-duplicates, stay out: the int8 graph is checked on them.
FIXTURE_NEIGHBOURS = 3


def _evenly(indices: np.ndarray, count: int) -> np.ndarray:
    return indices[np.unique(np.round(np.linspace(0, len(indices) - 1, count)).astype(int))]


def seed_inputs(root: Path) -> list[tuple[str, int, str, np.ndarray]]:
    import cv2

    from TumorApp.analysis.config import CONTRACT
    from TumorApp.analysis.io.loading import load
    from TumorApp.analysis.slice.preprocess import network_unit, to_network_input
    from TumorApp.analysis.slice.segment import _crop_box, _extract

    fixtures = {int(m.group(1)) for p in FIXTURES.glob("*seed_*.png")
                if (m := re.search(r"seed_(\d+)\.png$", p.name))}
    numbers = sorted(n for n in (int(p.stem) for p in (root / "images").glob("*.png"))
                     if all(abs(n - f) > FIXTURE_NEIGHBOURS for f in fixtures))
    masks = {n: cv2.imread(str(root / "mask" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) for n in numbers}
    liver = np.array([n for n in numbers if masks[n].any()])
    outside = np.array([n for n in numbers if not masks[n].any()])
    above = outside[(outside < liver.min()) & (outside >= liver.min() - OUTSIDE_REACH)]
    below = outside[(outside > liver.max()) & (outside <= liver.max() + OUTSIDE_REACH)]
    picks = ([(n, "whole") for n in _evenly(liver, SEED_WHOLE)]
             + [(n, "as-uploaded") for n in _evenly(liver[1::2], SEED_AS_UPLOADED)]
             + [(n, "crop") for n in _evenly(liver[1::3], SEED_CROPS)]
             # Beyond the liver (heart and spleen above, bowel and pelvis below): negatives.
             + [(n, "whole") for n in np.concatenate([_evenly(above, SEED_OUTSIDE // 2),
                                                      _evenly(below, SEED_OUTSIDE // 2)])])
    out = []
    for n, view in picks:
        unit = network_unit(load(root / "images" / f"{n}.png"))  # as uploaded: mirrored
        oriented = np.ascontiguousarray(unit[:, ::-1])
        if view == "as-uploaded":
            x = to_network_input(unit)
        elif view == "whole":
            x = to_network_input(oriented)
        else:
            box = _crop_box(masks[n][:, ::-1] > 0, oriented.shape)
            x = to_network_input(_extract(oriented, box))
        assert x.shape == (CONTRACT.input_size, CONTRACT.input_size)
        out.append(("seed", int(n), view, x))
    return out


def _hu_inputs(patient, view: str, indices: np.ndarray) -> list[tuple[str, int, str, np.ndarray]]:
    """Slices `indices` of an HU patient as the network sees them (its window, resized)."""
    from TumorApp.analysis.slice.preprocess import to_network_input, window_hu

    return [(patient.name, int(k), view, to_network_input(window_hu(patient.images[k]))) for k in indices]


def _liver_slices(patient) -> np.ndarray:
    return np.flatnonzero((patient.labels > 0).any(axis=(1, 2)))


# Each source through the training reader at its own size: what training reads is what is calibrated.
def lits_inputs(root: Path) -> list[tuple[str, int, str, np.ndarray]]:
    from TumorApp.training.dataset import read_lits

    patient = read_lits(root, size=None)  # transposed into (slice, y, x)
    return _hu_inputs(patient, "crop", _evenly(_liver_slices(patient), LITS))


IRCADB_WHOLE = 12
MSD_WHOLE = 12


def ircadb_inputs(root: Path) -> list[tuple[str, int, str, np.ndarray]]:
    from TumorApp.training.dataset import read_ircadb

    patient = read_ircadb(root, size=None)
    return _hu_inputs(patient, "whole", _evenly(_liver_slices(patient), IRCADB_WHOLE))


def msd_inputs(root: Path) -> list[tuple[str, int, str, np.ndarray]]:
    from TumorApp.training.dataset import read_msd

    patient = read_msd(root, size=None)
    return _hu_inputs(patient, "whole", _evenly(np.arange(len(patient.images)), MSD_WHOLE))


def no_inputs(root: Path) -> list:
    return []


READERS = {"seed": seed_inputs, "lits-117": lits_inputs, "ircadb-07": ircadb_inputs,
           "msd-slices": msd_inputs, "ircadb-01": no_inputs}


class Command(BaseCommand):
    help = "Build the int8 calibration slices (model/calibration.npz) from the training patients only."

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
        parser.add_argument("--out", default=str(CALIBRATION))
        parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                            help="its .json metadata says which patients are training patients")

    def handle(self, *args, **o):
        meta = weights_metadata(o["weights"])
        if not meta:
            raise CommandError(f"{metadata_path(o['weights'])} missing: cannot tell training from held-out patients")
        # ircadb-png's 28 slices (patients also in msd-slices) add nothing the other readers lack
        patients = [p for p in meta.get("trained_on", []) if p not in meta.get("held_out", []) and p != "ircadb-png"]
        unknown = [p for p in patients if p not in READERS]
        if unknown or not patients:
            raise CommandError(f"no calibration reader for training patients {unknown or patients}")
        rows = []
        for name in patients:
            rows += READERS[name](Path(o["data"]) / name)
        inputs = np.stack([np.round(np.clip(x, 0, 1) * 255) for *_, x in rows]).astype(np.uint8)
        out = Path(o["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, inputs=inputs, patients=np.array([r[0] for r in rows]),
                            slices=np.array([r[1] for r in rows]), views=np.array([r[2] for r in rows]))
        counts = {p: int(sum(r[0] == p for r in rows)) for p in patients}
        self.stdout.write(f"wrote {out}: {len(rows)} slices {counts}, held out: {meta.get('held_out', [])}")
