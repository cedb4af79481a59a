"""clean_media removes files without a row (a kill between file writes and commit) and keeps every stored analysis."""
import io

import pytest
from django.core.management import call_command

from .helpers import make_analysis, stored_files

pytestmark = pytest.mark.django_db


def test_orphans_are_removed_and_analyses_kept(user, media_root):
    analysis = make_analysis(user)
    kept = stored_files(media_root)
    orphan = media_root / "results" / str(user.pk) / "deadbeef" / "original.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    (media_root / "uploads" / str(user.pk) / "deadbeef.png").write_bytes(b"half")
    out = io.StringIO()
    call_command("clean_media", "--min-age-minutes", "0", stdout=out)
    assert "removed 2 orphan" in out.getvalue()
    assert stored_files(media_root) == kept and not orphan.parent.exists()
    assert (media_root / analysis.upload.name).is_file()


def test_young_orphans_are_kept(user, media_root):
    make_analysis(user)
    young = media_root / "uploads" / str(user.pk) / "inflight.png"
    young.write_bytes(b"x")
    call_command("clean_media", stdout=io.StringIO())
    assert young.is_file()


@pytest.mark.django_db(transaction=True)
def test_background_sweeper_removes_old_orphans_and_keeps_young_files(user, media_root):
    """What the serving process runs at start and then periodically (Tumor/wsgi.py)."""
    import os
    import threading
    import time

    from TumorApp.analyses.services import sweep_orphans

    analysis = make_analysis(user)
    old = media_root / "uploads" / str(user.pk) / "killed.png"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    young = media_root / "uploads" / str(user.pk) / "inflight.png"
    young.write_bytes(b"x")
    stop = threading.Event()
    sweeper = threading.Thread(target=sweep_orphans, kwargs={"interval_s": 0.05, "grace_s": 3600, "stop": stop})
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sweeper.join(5)
    assert not old.exists() and young.is_file()
    assert (media_root / analysis.upload.name).is_file() and not sweeper.is_alive()
