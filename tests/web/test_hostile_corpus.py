"""The hostile corpus (tests/fixtures/bad/make_hostile.py) through the form, the API and the CLI.

Small files that declare huge or inconsistent images: each is refused with a 400 naming the
problem, from the declared sizes (so with bounded memory), and stores nothing.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import stored_files

BAD_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
sys.path.insert(0, str(BAD_DIR))
from make_hostile import CASES  # noqa: E402

pytestmark = pytest.mark.django_db

BAD = [c for c in CASES if c.kind == "bad"]
ODD = [c for c in CASES if c.kind == "odd"]


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    from make_hostile import build

    return build(tmp_path_factory.mktemp("hostile-corpus"))


def _upload(corpus, case) -> SimpleUploadedFile:
    return SimpleUploadedFile(case.sent_name, (corpus / case.file).read_bytes(),
                              content_type="application/octet-stream")


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_hostile_file_via_api_is_a_400_naming_the_problem(auth_client, hostile, case, media_root):
    response = auth_client.post(reverse("api-analyses"), {"file": _upload(hostile, case)})
    assert response.status_code == 400, response.content[:500]
    assert case.message.lower() in response.json()["error"].lower()
    assert Analysis.objects.count() == 0 and stored_files(media_root) == []


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_hostile_file_via_form_is_a_400_naming_the_problem(auth_client, hostile, case, media_root):
    response = auth_client.post(reverse("detect"), {"file": _upload(hostile, case)})
    assert response.status_code == 400
    text = response.content.decode()
    from django.utils.html import escape

    assert escape(case.message).lower() in text.lower() and "Traceback" not in text
    assert Analysis.objects.count() == 0 and stored_files(media_root) == []


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_hostile_file_via_cli_is_an_error_object(hostile, case):
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("analyze", str(hostile / case.file), "--json", stdout=out, stderr=io.StringIO())
    record = json.loads(out.getvalue())[0]
    assert case.message.lower() in record["error"].lower()


@pytest.mark.parametrize("case", ODD, ids=lambda c: c.file)
def test_png_named_dcm_is_analysed_as_the_png_it_is(auth_client, hostile, case):
    response = auth_client.post(reverse("api-analyses"), {"file": _upload(hostile, case)})
    assert response.status_code == 201, response.content[:500]
    assert Analysis.objects.get(pk=response.json()["id"]).original_name == case.sent_name


def test_whole_hostile_corpus_loads_in_bounded_memory(hostile):
    """Every hostile file is refused by one fresh process whose peak RSS stays far below what
    decoding any of them would take (each would need 256 MiB to several GiB)."""
    script = (
        "import sys, pathlib\n"
        "from TumorApp.analysis.io.loading import load\n"
        "from TumorApp.analysis.errors import InputError\n"
        "refused = 0\n"
        "for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):\n"
        "    try:\n"
        "        load(path.read_bytes(), filename=path.name)\n"
        "    except InputError:\n"
        "        refused += 1\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(refused, int(hwm) // 1024)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script, str(hostile)], cwd=repo, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    refused, peak_mib = int(out[0]), int(out[1])
    assert refused == len(BAD)
    assert peak_mib < 250, f"peak RSS {peak_mib} MiB"
