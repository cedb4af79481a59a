"""What every upload (a slice, a series) shares before its feature takes it."""
from __future__ import annotations

import os


def clean_filename(name: str) -> str:
    """The user's file name made safe to display and log: no path, no control characters, bounded length."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    name = name.lstrip(".") or "upload"
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext[:10])] + ext[:10]
    return name
