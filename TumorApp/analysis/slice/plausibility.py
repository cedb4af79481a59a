"""Is this an axial CT slice with a body in it?  Simple image statistics, checked before the network.

Refused (`InputError`, a 400 on the form and the API, an error object in the CLI): a blank or
uniform image, random noise, a colour photo or colour-mapped picture, HU data with almost no soft
tissue, an image with no body in it.  Non-CT DICOM modalities are refused earlier, by
`loading.py`.  Accepted with a warning: an odd but possible slice (no air around the body, i.e. a
cropped or tiny field of view; upside down).

Each rule is one statistic and one threshold, declared below; all were measured on every slice of
`../shared/data` and on noise, blanks and photos (`bench/plausibility.py`, figures in
`bench/README.md`).  Refusing a real CT slice is worse than accepting noise, so the refusal
thresholds sit far outside what real slices show.

* colour: the share of clearly coloured pixels (`loading.coloured_share`: HSV saturation above
  0.25, not near black) above `MAX_COLOURED_SHARE`.  CT saved as RGB is grey; overlays are small.
* blank: the spread of intensities (1st to 99th percentile) of the [0, 1] image (HU through the
  W400/L40 window) below `MIN_SPREAD`.
* noise: neighbouring pixels of CT are strongly correlated (smooth organs), those of random noise
  are not: the lag-1 correlation (mean of horizontal and vertical) below `MIN_NEIGHBOUR_CORR`.
* HU histogram (HU input only): a body has soft tissue (-100..300 HU); less than
  `MIN_SOFT_TISSUE_SHARE` of the slice means it is not a CT slice of a body.
* body: air is the median intensity of the image border when that is dark (windowed CT) or white
  (the original app's wrapped exports).  The body is the largest region clearly different from
  air (after a 5x5 median against speckle, and a closing that rejoins organs where fat is clipped
  to the air's value); less than `MIN_BODY_SHARE` of the image is no body.  A mid-grey border, or
  less than `MIN_AIR_BORDER_SHARE` of the border being air, means the field of view cuts through
  the body: a warning, never a refusal (the LiTS-117 crops are real CT).
* upside down (full field of view, dark air only): in the middle third of the body's width, bone
  (HU > 300, or the window's saturated top for display images) lies mostly in the posterior
  (bottom) `SPINE_BAND` of the body's height (the vertebra) rather than the anterior one (the
  thin sternum).  A posterior share below `MIN_POSTERIOR_BONE` is a warning.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..io.loading import CTSlice
from .preprocess import DISPLAY_WINDOW, window_hu

# Refusals.
MAX_COLOURED_SHARE = 0.10
MIN_SPREAD = 0.04
MIN_NEIGHBOUR_CORR = 0.5
MIN_SOFT_TISSUE_SHARE = 0.02
MIN_BODY_SHARE = 0.03
# Warnings.
MIN_AIR_BORDER_SHARE = 0.5
MIN_POSTERIOR_BONE = 0.2
SPINE_BAND = 0.3

# A border pixel is air when within this of the border's median intensity; the body differs from
# air by more ([0, 1] scale).
AIR_TOLERANCE = 0.1
# Air is dark (windowed CT) or white (wrapped exports): a border median within this of 0 or 1.
AIR_LEVEL = 0.25
# Statistics on at most this many pixels a side (not outlines: 256 is plenty, and fast); the
# neighbour correlation is measured at full size, where noise is still noise.
WORK_SIDE = 256

CROPPED_WARNING = ("Little or no air around the body: the field of view looks cropped or very small. "
                   "The network was trained on full-field slices; check the outlines.")
UPSIDE_DOWN_WARNING = ("The slice looks upside down (the spine is at the top). The network expects "
                       "the patient's front at the top of the image; check the outlines.")


@dataclass(frozen=True)
class Plausibility:
    """What the check measured, and the warnings it raised (user-facing sentences)."""

    coloured_share: float
    spread: float
    neighbour_corr: float
    soft_tissue_share: float | None  # HU input only
    air_border_share: float
    body_share: float
    posterior_bone: float | None  # None where not measured (cropped, white air, no bone)
    warnings: tuple[str, ...]


def measure(ct: CTSlice) -> Plausibility:
    """The statistics and warnings, refusing nothing (`check` refuses; the bench reports these)."""
    unit = window_hu(ct.pixels, *DISPLAY_WINDOW) if ct.is_hu else np.clip(ct.pixels, 0, 1).astype(np.float32)
    small = _shrink(unit)
    low, high = np.percentile(small, [1, 99])
    air_share, body, dark_air = _body(small)
    full_field = air_share >= MIN_AIR_BORDER_SHARE
    posterior = None
    if full_field and dark_air and body.any():
        bone = (_shrink(ct.pixels.astype(np.float32)) > 300) if ct.is_hu else small > 0.97
        posterior = _posterior_bone(bone, body)

    warnings = []
    if not full_field:
        warnings.append(CROPPED_WARNING)
    if posterior is not None and posterior < MIN_POSTERIOR_BONE:
        warnings.append(UPSIDE_DOWN_WARNING)
    soft = float(((ct.pixels > -100) & (ct.pixels < 300)).mean()) if ct.is_hu else None
    return Plausibility(float(ct.coloured_share), float(high - low), neighbour_correlation(unit), soft,
                        air_share, float(body.mean()), posterior, tuple(warnings))


def check(ct: CTSlice) -> Plausibility:
    """Refuse (InputError) what is not an axial CT slice with a body; return warnings otherwise."""
    found = measure(ct)
    if found.coloured_share > MAX_COLOURED_SHARE:
        raise InputError(f"This looks like a colour photo or picture ({found.coloured_share:.0%} of "
                         "its pixels are clearly coloured), not a CT slice. Upload a greyscale "
                         "axial CT slice.")
    if found.spread < MIN_SPREAD:
        raise InputError("The image is blank (almost uniform): there is no CT slice in it.")
    if found.neighbour_corr < MIN_NEIGHBOUR_CORR:
        raise InputError("The image looks like random noise (neighbouring pixels are unrelated), "
                         "not a CT slice.")
    if found.soft_tissue_share is not None and found.soft_tissue_share < MIN_SOFT_TISSUE_SHARE:
        raise InputError("The Hounsfield units of this image do not look like a CT slice of a body "
                         "(almost no soft tissue).")
    if found.air_border_share >= MIN_AIR_BORDER_SHARE and found.body_share < MIN_BODY_SHARE:
        raise InputError("No body was found in the image: it is mostly empty background.")
    return found


def neighbour_correlation(unit: np.ndarray) -> float:
    """Lag-1 autocorrelation, horizontal and vertical pooled (1 = smooth, 0 = noise)."""
    x = unit.astype(np.float32) - np.float32(unit.mean())
    variance = float(np.mean(x * x))
    if variance == 0:
        return 0.0
    across = float(np.mean(x[:, :-1] * x[:, 1:]))
    down = float(np.mean(x[:-1] * x[1:]))
    return (across + down) / (2 * variance)


def _shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    scale = WORK_SIDE / max(h, w)
    if scale >= 1:
        return image.astype(np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def _body(small: np.ndarray) -> tuple[float, np.ndarray, bool]:
    """(share of the border that is air, the body mask, whether air is dark).

    Air is the border's median intensity when that is dark or white; a mid-grey border is tissue
    (the body runs off the image), and then the whole image is taken as body."""
    smooth = cv2.medianBlur(np.round(small * 255).astype(np.uint8), 5).astype(np.float32) / 255.0
    border = _border(smooth)
    air = float(np.median(border))
    dark = air <= AIR_LEVEL
    if not dark and air < 1 - AIR_LEVEL:
        return 0.0, np.ones_like(small, bool), False
    air_share = float((np.abs(border - air) <= AIR_TOLERANCE).mean())
    different = (np.abs(smooth - air) > AIR_TOLERANCE).astype(np.uint8)
    # Close small gaps first: where fat is clipped to the air's value (0..255-HU exports) the body
    # falls apart into organs and muscles.
    closed = cv2.morphologyEx(different, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if count <= 1:
        return air_share, np.zeros_like(small, bool), dark
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return air_share, labels == largest, dark


def _posterior_bone(bone: np.ndarray, body: np.ndarray) -> float | None:
    """Share of the bone in the middle third of the body's width that lies in its posterior
    (bottom) band rather than its anterior (top) band, each `SPINE_BAND` of the body's height."""
    ys, xs = np.nonzero(body)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    height, third = bottom - top + 1, (right - left) / 3.0
    middle = bone & body
    middle[:, : int(left + third)] = False
    middle[:, int(right - third) + 1:] = False
    band = max(1, int(round(SPINE_BAND * height)))
    front = int(middle[top:top + band].sum())
    back = int(middle[bottom + 1 - band:bottom + 1].sum())
    if front + back < 10:  # too little bone to tell
        return None
    return back / (front + back)
