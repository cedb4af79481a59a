"""Shared fixtures for the analysis tests: real slices, their ground truth, and fake segmenters.

The fake segmenters stand in for the network so that everything downstream of it (orientation
choice, mapping back, post-processing, measurement, staging, rendering, CLI) is tested
deterministically on real labels.  Accuracy of the trained network is tested elsewhere.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from TumorApp.analysis.config import CONTRACT  # noqa: E402
from TumorApp.analysis.io.loading import load  # noqa: E402
from TumorApp.analysis.slice.preprocess import network_unit, to_network_input  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
DICOM_66 = FIXTURES / "analysis_ircadb01_066.dcm"
PNG16_57 = FIXTURES / "analysis_ircadb01_057_hu1024.png"
JPEG_103 = FIXTURES / "analysis_ircadb01_103_w400l40_rgb.jpg"
FREE_105 = FIXTURES / "analysis_ircadb01_105_w400l40.png"
SEED_440 = FIXTURES / "analysis_seed_440.png"


def read_label(name: str) -> np.ndarray:
    """A ground-truth label PNG: 0 background, 1 liver, 2 tumour."""
    label = cv2.imread(str(FIXTURES / name), cv2.IMREAD_UNCHANGED)
    assert label is not None, name
    return label


def seed_label() -> np.ndarray:
    """The seed mask decoded: 255 liver -> 1, 254 tumour -> 2."""
    mask = read_label("analysis_seed_440_mask.png")
    return np.select([mask == 254, mask == 255], [2, 1], 0).astype(np.uint8)


class GroundTruthSegmenter:
    """Answers like a good network whose output is the ground truth.

    It recognises the full slice as given and mirrored (the two first-pass inputs) and returns
    the ground truth for the orientation in which the slice is radiological, and a weak (x0.3)
    mirrored copy for the other one, as a network trained without left-right flips would.
    Any other input (e.g. a second-pass crop) is a test error: use `second_pass=False`.
    """

    def __init__(self, path: Path, label: np.ndarray, *, radiological: bool = True):
        unit = network_unit(load(path))
        assert unit.shape == label.shape
        self.refs = [to_network_input(unit), to_network_input(unit[:, ::-1])]
        as_is, mirrored = self._probs(label), self._probs(label[:, ::-1])
        self.outputs = [as_is * (1.0 if radiological else 0.3),
                        mirrored * (0.3 if radiological else 1.0)]
        self.calls = 0

    @staticmethod
    def _probs(label: np.ndarray) -> np.ndarray:
        liver = to_network_input((label > 0).astype(np.float32))
        tumor = to_network_input((label == 2).astype(np.float32))
        return np.stack([liver, tumor], -1)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = []
        for x in np.asarray(batch):
            errors = [float(np.abs(x - ref).mean()) for ref in self.refs]
            best = int(np.argmin(errors))
            assert errors[best] < 1e-6, "unexpected input (second pass?) for GroundTruthSegmenter"
            out.append(self.outputs[best])
        return np.stack(out).astype(np.float32)


def hu_band(low: float, high: float) -> tuple[float, float]:
    """An HU range as values of the network's input window."""
    bottom = CONTRACT.window_center - CONTRACT.window_width / 2
    return ((low - bottom) / CONTRACT.window_width, (high - bottom) / CONTRACT.window_width)


class IntensitySegmenter:
    """A pixel-wise fake: 'liver' is a soft-tissue intensity band, 'tumour' a darker band.

    Being pixel-wise it commutes with mirroring, cropping and resizing, which makes it the right
    tool for testing the segment stage's geometry (second pass, paste-back, mirroring).
    """

    def __init__(self, liver=None, tumor=None):
        # Bands in the network's window: liver 40..120 HU, tumour 20..40 HU (pictures are read as
        # W400/L40 HU before the window, so the same tissue falls in the same band either way).
        self.liver = liver or hu_band(40.0, 120.0)
        self.tumor = tumor or hu_band(20.0, 40.0)
        self.batches: list[np.ndarray] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        self.batches.append(x)
        tumor = ((x > self.tumor[0]) & (x < self.tumor[1])).astype(np.float32)
        liver = np.maximum(((x > self.liver[0]) & (x < self.liver[1])).astype(np.float32), tumor)
        return np.stack([liver, tumor], -1)


class EmptySegmenter:
    """Sees nothing at all."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        return np.zeros((n, CONTRACT.input_size, CONTRACT.input_size, 2), np.float32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


@pytest.fixture
def gt_66() -> np.ndarray:
    return read_label("analysis_ircadb01_066_label.png")
