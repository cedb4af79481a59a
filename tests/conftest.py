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


@pytest.fixture(autouse=True)
def _shared_sqlite_connection_left_in_autocommit():
    """On SQLite the in-memory test database is one connection shared by every thread of a test
    (the DICOM listener's, live servers'); a thread that ends inside a transaction can leave that
    connection out of autocommit with no atomic block open, and then every later `on_commit`
    fails.  That state never happens otherwise: put autocommit back before and after each test
    (MySQL gives each thread its own connection and never needs this)."""
    from django.db import connection

    def repair():
        if (connection.vendor == "sqlite" and connection.connection is not None
                and not connection.in_atomic_block and not connection.get_autocommit()):
            connection.connection.rollback()
            connection.set_autocommit(True)

    repair()
    yield
    repair()
