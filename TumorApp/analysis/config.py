"""The model's contract: every constant that defines input, thresholds and staging, declared once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = REPO_ROOT / "model" / "cnn_weights.hdf5"
# The training recipe's fine-tuning start: the weights shipped before, at this commit. Only their
# metadata (.json) is committed here; `training.train.ensure_base_weights` restores the 31 MB file
# from the repository's own history when it is missing.
BASE_WEIGHTS = REPO_ROOT / "model" / "base" / "cnn_weights.hdf5"
BASE_WEIGHTS_COMMIT = "c9c2f36bfbd82f4b663a5ea4adfd5a3fd1458956"


@dataclass(frozen=True)
class Contract:
    # Network input: one channel, square, values in [0, 1].
    input_size: int = 128
    # Window applied to Hounsfield units before the network: 0..255 HU, the look the 118 patients
    # of msd-slices come in, so every HU source looks alike to it.  Chosen by the patient-grouped
    # CV: the same fine-tuning in W400/L40 lost on every figure (model card).
    window_center: float = 127.5
    window_width: float = 255.0
    # The window HU slices are shown in, and that 8-bit pictures are assumed to show (abdominal
    # W400/L40): a picture's grey is read as HU through it before the network's window.
    display_window_center: float = 40.0
    display_window_width: float = 400.0
    # Output channels of the network, in order.
    channels: tuple[str, ...] = ("liver", "tumor")
    # Probability above which a pixel belongs to the liver / a tumour.
    liver_threshold: float = 0.5
    tumor_threshold: float = 0.5
    # Second pass: crop around the first-pass liver with this margin (fraction of its box).
    crop_margin: float = 0.15
    # The second pass may only outline tumours where the first (whole-slice) pass already saw
    # tumour probability above this: the crop sharpens outlines, the whole slice decides whether
    # there is a tumour (held-out: ungated crops tripled false-positive slices).
    first_pass_gate: float = 0.3
    # Post-processing: tumours must lie inside the liver dilated by this many mm.
    liver_dilation_mm: float = 5.0
    # Components smaller than this are noise, not lesions (about a 3 mm disc).
    min_lesion_area_mm2: float = 7.0
    # A liver smaller than this on the slice is treated as "no liver on this slice".
    min_liver_area_mm2: float = 300.0
    # Pixel spacing assumed when neither the file nor the user gives one (typical abdominal CT).
    assumed_spacing_mm: float = 0.75
    # Pixel spacing (from the file or the user) outside this range is refused: no CT slice has it
    # (0.05 mm is a micro-CT; 5 mm a 2.5 m field of view at 512 px).
    spacing_limits_mm: tuple[float, float] = (0.05, 5.0)
    # Outside this range the spacing is accepted but flagged: abdominal CT is about 0.5-1 mm
    # (fields of view of about 15-77 cm at 512 px).
    spacing_plausible_mm: tuple[float, float] = (0.3, 1.5)
    # Size stage from the largest lesion's longest diameter (AJCC T-category size cut-offs).
    stage_cutoffs_mm: tuple[float, float] = (20.0, 50.0)
    # A lesion or slice verdict whose confidence (confidence.py, in [0, 1]) is below this is
    # marked "low confidence" (held-out patients, bench/confidence.py: below 0.7 are 159 of 281
    # false lesions and 11 of 57 true ones).
    low_confidence: float = 0.7


CONTRACT = Contract()
