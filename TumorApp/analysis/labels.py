"""The one registry of label values, their colours and the display windows, and the one label-map
encoding that the server and the editor exchange.

Python (render.py, slice_view.py) and the browser editor (static/js/editor/registry.js, through
`as_json` in the page) read these; nothing else declares a label colour, a window or a label value.
A label map travels as an 8-bit single-channel PNG whose pixel values are the label values
(`encode_png` / `decode_png`), for slices and for series slices alike.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Label:
    value: int               # in label maps: 0 background, 1 liver, 2 tumour
    name: str
    rgb: tuple[int, int, int]

    @property
    def bgr(self) -> tuple[int, int, int]:  # OpenCV's order
        return self.rgb[::-1]


BACKGROUND = Label(0, "background", (0, 0, 0))
LIVER = Label(1, "liver", (60, 200, 60))      # green
TUMOR = Label(2, "tumour", (235, 40, 40))     # red
LABELS = (BACKGROUND, LIVER, TUMOR)
VALUES = tuple(label.value for label in LABELS)
assert VALUES == tuple(range(len(LABELS))), "label values run 0..n: label volumes are checked by bounds"
BOX_RGB = (255, 220, 0)                       # lesion boxes and numbers: yellow


@dataclass(frozen=True)
class Window:
    name: str
    level: float  # centre, HU
    width: float  # HU


# Display presets of the slice viewers and the editor; "abdomen" is the default display.
WINDOWS = {w.name: w for w in (Window("abdomen", 40.0, 400.0), Window("liver", 80.0, 150.0),
                               Window("bone", 400.0, 1800.0), Window("lung", -600.0, 1500.0))}


def as_json() -> dict:
    """What the browser reads: {"labels": {value: {name, rgb}}, "value_of": {name: value},
    "windows": {name: {level, width}}, "box_rgb"}."""
    return {"labels": {str(label.value): {"name": label.name, "rgb": list(label.rgb)} for label in LABELS},
            "value_of": {label.name: label.value for label in LABELS},
            "windows": {w.name: {"level": w.level, "width": w.width} for w in WINDOWS.values()},
            "box_rgb": list(BOX_RGB)}




def describe_values() -> str:
    """'0 (background), 1 (liver) and 2 (tumour)', for messages."""
    parts = [f"{label.value} ({label.name})" for label in LABELS]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def encode_png(labels: np.ndarray) -> bytes:
    """A label map (H, W) of registry values as the exchanged PNG: 8-bit grey, pixel = label value."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.isin(labels, VALUES).all():
        raise ValueError("a label map is 2-D and holds only the registry's label values")
    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), "L").save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes, shape: tuple[int, int], name: str = "label map") -> np.ndarray:
    """The exchanged PNG -> uint8 label map (H, W); InputError unless every pixel is a label value.

    Grey PNGs are read as they are; RGB(A), grey+alpha and palette PNGs (what a browser canvas
    writes) only where every pixel is opaque grey, its value the label.  No threshold: a value that
    is not a label is refused, never rounded to one.
    """
    def exact(img) -> np.ndarray:
        if img.mode == "L":
            return np.array(img)  # a writable copy
        rgba = np.asarray(img.convert("RGBA"))
        if not ((rgba[..., 3] == 255).all() and (rgba[..., 0] == rgba[..., 1]).all()
                and (rgba[..., 1] == rgba[..., 2]).all()):
            raise InputError(f"The {name} must be grey and opaque: each pixel's value is its label, "
                             f"{describe_values()}.")
        return rgba[..., 0].copy()

    labels = read_png(data, shape, name, exact)
    foreign = np.setdiff1d(np.unique(labels), VALUES)
    if foreign.size:
        shown = ", ".join(map(str, foreign[:5].tolist())) + (", ..." if foreign.size > 5 else "")
        raise InputError(f"The {name} holds the value(s) {shown}; a label map holds only {describe_values()}.")
    return labels


def read_png(data: bytes, shape: tuple[int, int], name: str, pixels: Callable) -> np.ndarray:
    """An uploaded PNG of exactly `shape`, 8 bits per sample, decoded by `pixels(image)` -> array.

    The size comes from the header and is checked before decoding, and PIL's decompression-bomb
    limits are errors here: an upload the slice's size cannot be a bomb.  16-bit and float images
    are refused so that no value is silently rescaled.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(f"The {name} is empty.")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputError(f"The {name} must be a PNG image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if (img.height, img.width) != tuple(shape):
                    raise InputError(f"The {name} is {img.width}x{img.height} pixels; it must be the "
                                     f"image's own size, {shape[1]}x{shape[0]}.")
                if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                    raise InputError(f"The {name} must be an 8-bit PNG (it is {img.mode}).")
                img.load()
                return pixels(img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"The {name} declares far more pixels than the image has; it must be the "
                         f"image's own size, {shape[1]}x{shape[0]}.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"The {name} is not a readable PNG image.") from exc
