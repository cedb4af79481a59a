"""The hostile series corpus (tests/fixtures/bad/make_series_hostile.py) through the API, the page
and `manage.py analyze_series`: each a clear refusal within seconds, nothing stored, bounded memory.

Memory is measured two ways: the API requests under tracemalloc (Python and numpy allocations,
which is where decoded pixels and unpacked bytes live), and the whole corpus through the upload
check and the CLI in fresh processes, by their peak resident size (VmHWM / ru_maxrss).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from TumorApp.models import SeriesJob

from ..helpers import REPO, stored_files

BAD_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "bad"
sys.path.insert(0, str(BAD_DIR))
from make_series_hostile import CASES, build  # noqa: E402

pytestmark = pytest.mark.django_db
BY_NAME = {case.name: case for case in CASES}
# Sent through the page and the CLI as well: one of each way in (budgets, inflation, NIfTI header,
# gzip, zip, the slice input check).
FEW = ["blank_rle_120x4096", "deflated_private_2gib", "nifti_claims_huge", "gzip_bomb", "zip_2x700mib",
       "blank_20"]
SECONDS = 30  # generous: the suite may share two cores with a training run
TRACED_PEAK_MIB = 256


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("series-hostile"))


def _uploads(folder: Path) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(p.name, p.read_bytes(), content_type="application/octet-stream")
            for p in sorted(folder.iterdir())]


def _post(client, url, uploads):
    """The response, its seconds, and the traced peak of the request in MiB."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        response = client.post(url, {"file": uploads})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, time.perf_counter() - started, peak / 2**20


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_hostile_series_via_api_is_a_quick_400_storing_nothing(auth_client, corpus, media_root, name):
    case = BY_NAME[name]
    response, seconds, peak_mib = _post(auth_client, "/api/series/", _uploads(corpus[name]))
    assert response.status_code == 400, response.content[:500]
    assert case.message.lower() in response.json()["error"].lower()
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert peak_mib < TRACED_PEAK_MIB, f"traced peak {peak_mib:.0f} MiB"
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []


@pytest.mark.parametrize("name", FEW)
def test_hostile_series_via_page_is_a_form_error(auth_client, corpus, media_root, name):
    case = BY_NAME[name]
    response, seconds, peak_mib = _post(auth_client, "/series/new/", _uploads(corpus[name]))
    assert response.status_code == 400
    text = response.content.decode()
    assert escape(case.message).lower() in text.lower() and "Traceback" not in text
    assert seconds < SECONDS and peak_mib < TRACED_PEAK_MIB
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []


def _cli_path(folder: Path) -> Path:
    files = sorted(folder.iterdir())
    return files[0] if len(files) == 1 else folder


# The CLI in a fresh process, started by a small parent that then reports its child's peak RSS.
CLI_PEAK = (
    "import resource, subprocess, sys\n"
    "proc = subprocess.run([sys.executable, 'manage.py', 'analyze_series', sys.argv[1], '--json'],"
    " capture_output=True, text=True)\n"
    "print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    "print(proc.stdout.strip().replace('\\n', ' '))\n"
    "print(proc.stderr)\n"
)


@pytest.mark.parametrize("name", FEW)
def test_hostile_series_via_cli_is_an_error_object_and_exit_1(corpus, name):
    case = BY_NAME[name]
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CLI_PEAK, str(_cli_path(corpus[name]))], cwd=REPO,
                         capture_output=True, text=True, timeout=300).stdout
    seconds = time.perf_counter() - started
    status, record, stderr = out.split("\n", 2)
    code, peak_mib = (int(v) for v in status.split())
    assert code == 1, out
    assert set(json.loads(record)) == {"error"}
    assert case.message.lower() in json.loads(record)["error"].lower()
    assert "Traceback" not in stderr
    assert peak_mib < 512, f"CLI peak RSS {peak_mib} MiB"
    assert seconds < 2 * SECONDS  # the process's own start-up included


# Every case through the upload check and the loader in one fresh process: its peak RSS.
CHECK_ALL = (
    "import sys, pathlib\n"
    "sys.path.insert(0, sys.argv[2])\n"
    "from make_series_hostile import CASES\n"
    "from TumorApp.analysis.errors import InputError\n"
    "from TumorApp.analysis.series.volume import check_series\n"
    "def hwm():\n"
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
    "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]) // 1024\n"
    "base, refused = hwm(), 0\n"
    "for case in CASES:\n"
    "    folder = pathlib.Path(sys.argv[1]) / case.name\n"
    "    try:\n"
    "        check_series([(p.name, p) for p in sorted(folder.iterdir())])\n"
    "    except InputError as exc:\n"
    "        refused += case.message.lower() in str(exc).lower()\n"
    "print(refused, base, hwm())\n"
)


def test_whole_series_corpus_is_refused_in_bounded_memory(corpus):
    """Each file would need from 256 MiB to tens of GiB decoded; the check stays far below."""
    root = next(iter(corpus.values())).parent
    out = subprocess.run([sys.executable, "-c", CHECK_ALL, str(root), str(BAD_DIR)], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=600).stdout.split()
    refused, base_mib, peak_mib = (int(v) for v in out)
    assert refused == len(CASES)
    assert peak_mib - base_mib < 256, f"peak RSS grew {peak_mib - base_mib} MiB (from {base_mib} to {peak_mib})"
