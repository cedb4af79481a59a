"""What every upload (a slice, a series) shares: its file name made safe, its stored files removed."""
from __future__ import annotations

import logging
import os

from django.core.files.storage import default_storage
from django.db import transaction

log = logging.getLogger(__name__)


def clean_filename(name: str) -> str:
    """The user's file name made safe to display and log: no path, no control characters, bounded length."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    name = name.lstrip(".") or "upload"
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext[:10])] + ext[:10]
    return name


def remove_paths(paths, why: str = "") -> None:
    """Delete these stored files now (missing ones are fine).  A file that cannot be removed is
    logged, not raised: on a failed upload the error being handled is the one to report."""
    for path in paths:
        if not path:
            continue
        try:
            default_storage.delete(path)
        except OSError:
            log.exception("could not remove %s%s", path, f" {why}" if why else "")


def remove_paths_on_commit(paths) -> None:
    """Delete these stored files once the current transaction commits (missing ones are fine)."""
    paths = [p for p in paths if p]
    transaction.on_commit(lambda: remove_paths(paths))
