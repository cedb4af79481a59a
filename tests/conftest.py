"""Fixtures for every test folder: a throw-away media root so no test writes into var/media, and no
recorded inference choice (var/inference-choice.json) so every test sees the default backends."""
import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads and rendered images go to a per-test folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def no_recorded_inference_choice(monkeypatch, tmp_path):
    """Point the backend record at a file that does not exist: a machine's measured choice in var/
    must not change which backend a test runs."""
    path = tmp_path / "inference-choice.json"
    monkeypatch.setenv("INFERENCE_CHOICE_FILE", str(path))
    return path

