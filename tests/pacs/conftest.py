"""A real Orthanc PACS (Debian's `orthanc` + `orthanc-dicomweb`) for the PACS tests, started once per
session on free loopback ports with a throw-away storage folder and a known user, stopped afterwards.

Skipped, saying why, where Orthanc or its DICOMweb plugin is not installed (`apt-get install orthanc
orthanc-dicomweb`; `.ci/run` does)."""
from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "tumorapp", "pacs-test-password"


@dataclass
class OrthancServer:
    http_port: int
    dicom_port: int
    aet: str
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str):
        """Orthanc's own REST API (to count what it holds)."""
        response = requests.get(self.url + path, auth=(USER, PASSWORD), timeout=10)
        response.raise_for_status()
        return response.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    if not ORTHANC.is_file() or not DICOMWEB_PLUGIN.is_file():
        pytest.skip(f"Orthanc is not installed ({ORTHANC}, {DICOMWEB_PLUGIN}): "
                    "apt-get install orthanc orthanc-dicomweb")
    folder = tmp_path_factory.mktemp("orthanc")
    server = OrthancServer(http_port=free_port(), dicom_port=free_port(), aet="TESTPACS", folder=folder)
    config = {
        "Name": "TumorAppTestPACS",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": server.http_port,
        "DicomPort": server.dicom_port,
        "DicomAet": server.aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpCompressionEnabled": False,
        "DicomCheckCalledAet": False,
        "UnknownSopClassAccepted": True,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([str(ORTHANC), str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited ({process.returncode}): {(folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                if requests.get(server.dicomweb_url + "/studies", auth=(USER, PASSWORD), timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not answer in 60 s: {(folder / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def pacs_settings(settings, orthanc):
    """The app pointed at the test Orthanc."""
    settings.DICOMWEB_URL = orthanc.dicomweb_url
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = USER, PASSWORD
    settings.DICOMWEB_CA_FILE = ""
    settings.DICOMWEB_TIMEOUT = 30
    settings.PACS_AUTO_SEND = False
    return settings


def store_in_orthanc(orthanc: OrthancServer, items) -> None:
    """STOW-RS the (name, bytes) items into the test Orthanc, as a modality would have stored them."""
    import io

    import pydicom
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    client = DICOMwebClient(orthanc.dicomweb_url, session=create_session_from_user_pass(USER, PASSWORD))
    client.store_instances([pydicom.dcmread(io.BytesIO(data)) for _, data in items])


from tests.web.conftest import auth_client, user  # noqa: E402,F401  (logged-in client fixtures)


@pytest.fixture
def broken_pacs():
    """A 'PACS' that answers HTTP 500 to everything (after reading the request), on a free port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _fail(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            elif self.headers.get("Transfer-Encoding") == "chunked":
                while True:  # drain a chunked STOW body
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    self.rfile.read(size + 2)
                    if size == 0:
                        break
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"boom\n")

        do_GET = do_POST = _fail

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()
    server.server_close()
