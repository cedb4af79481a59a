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
