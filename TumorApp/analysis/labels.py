"""The one registry of label values, their colours and the display windows.

Python (render.py, slice_view.py) and the browser editor (static/js/editor/view.js, through
`as_json` in the page) read these; nothing else declares a label colour or a window.
"""
from __future__ import annotations

from dataclasses import dataclass


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
    """What the browser reads: {"labels": {value: {name, rgb}}, "windows": {name: {level, width}}}."""
    return {"labels": {str(label.value): {"name": label.name, "rgb": list(label.rgb)} for label in LABELS},
            "windows": {w.name: {"level": w.level, "width": w.width} for w in WINDOWS.values()},
            "box_rgb": list(BOX_RGB)}


