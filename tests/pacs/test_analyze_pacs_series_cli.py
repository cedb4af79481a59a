"""`manage.py analyze_pacs_series`: the series JSON of analyze_series plus the stored UIDs; errors as JSON, exit 1."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import highdicom as hd
import pydicom
import pytest
from django.core.management import call_command

from TumorApp.models import AuditEvent
from tests.analysis.conftest import REPO, IntensitySegmenter
from tests.analysis.test_analyze_series_cli import CONTRACT_KEYS  # the same keys as analyze_series

from .conftest import free_port, store_in_orthanc
from .test_roundtrip import check_series_report, ct_series, read_back

pytestmark = pytest.mark.django_db


def run_command(*args) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("analyze_pacs_series", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_retrieve_analyse_and_send(pacs_settings, orthanc, monkeypatch):
    monkeypatch.setattr("TumorApp.analysis.model.runtime.get_segmenter", lambda **kw: IntensitySegmenter())
    items, study = ct_series("PACS-CLI-000005", n=3)
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)

    code, plain = run_command(series_uid, "--json")
    assert code == 0 and set(plain) == CONTRACT_KEYS and plain["slices"] == 3

    code, sent = run_command(series_uid, "--json", "--send")
    assert code == 0 and set(sent) == CONTRACT_KEYS | {"stored_sop_instance_uids"}
    assert {k: v for k, v in sent.items() if k != "stored_sop_instance_uids"} == plain
    uids = sent["stored_sop_instance_uids"]
    sr = hd.sr.Comprehensive3DSR.from_dataset(read_back(orthanc, study, uids["sr"]))
    check_series_report(sr, plain, uids["seg"])  # every figure the command prints
    assert read_back(orthanc, study, uids["seg"]).Modality == "SEG"
    assert AuditEvent.objects.filter(action="pacs_send", username="manage.py").count() == 1
    assert AuditEvent.objects.filter(action="pacs_retrieve", username="manage.py").count() == 2


def test_unknown_series_is_a_json_error(pacs_settings, orthanc):
    code, body = run_command("1.2.3.999", "--json")
    assert code == 1 and body == {"error": "The PACS has no series 1.2.3.999."}


def test_unreachable_pacs_exits_1_with_json_and_no_traceback(tmp_path):
    env = {"DICOMWEB_URL": f"http://127.0.0.1:{free_port()}/dicom-web", "TUMOR_VAR_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "WARM_UP": "0"}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env=env)
    assert migrate.returncode == 0, migrate.stderr
    proc = subprocess.run([sys.executable, "manage.py", "analyze_pacs_series", "1.2.3.4", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "cannot be reached" in json.loads(proc.stdout)["error"]
    assert "Traceback" not in proc.stderr and "TumorApp.W002" in proc.stderr  # the start-up check said so too
