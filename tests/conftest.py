"""Fixtures for every test folder: a throw-away media root so no test writes into var/media."""
import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads and rendered images go to a per-test folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
