"""The DICOMweb client for the configured PACS (DICOMWEB_* settings), and one error type for every way
a PACS call can fail, so pages and commands say what went wrong instead of showing a traceback.

What the PACS answers is read here, not by dicomweb-client: searches (QIDO-RS JSON) and retrieves
(WADO-RS multipart) are streamed and counted against byte budgets, each call has a wall-clock
deadline (a PACS trickling one byte at a time cannot hold a thread past it), no call is retried,
at most PACS_MAX_CALLS run at once in a process (the others are refused at once, not queued), and a
retrieved instance is written to a file as it arrives, undecoded, for the upload reader to check.
dicomweb-client is kept for sending (STOW-RS), whose answer is small."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from functools import lru_cache
from pathlib import Path

import requests
from django.conf import settings
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import add_certs_to_session


class PacsError(Exception):
    """The PACS could not be used: not configured, unreachable, refused, or answered something broken."""


class PacsNotConfigured(PacsError):
    pass


class _Session(requests.Session):
    """Sends the QIDO-RS wildcards `*` and `?` in query strings as themselves, not percent-encoded:
    both are legal there (RFC 3986), and Orthanc 1.10's DICOMweb plugin does not decode %2A/%3F, so an
    encoded wildcard would match nothing."""

    def send(self, request, **kwargs):
        base, mark, query = request.url.partition("?")
        if mark:
            request.url = base + "?" + query.replace("%2A", "*").replace("%3F", "?")
        return super().send(request, **kwargs)


def configured() -> bool:
    return bool(settings.DICOMWEB_URL)


def _session() -> requests.Session:
    """A session for DICOMWEB_URL with the configured credentials and CA bundle."""
    if not configured():
        raise PacsNotConfigured("No PACS is configured: set DICOMWEB_URL (see docs/pacs.md).")
    session = _Session()
    if settings.DICOMWEB_USERNAME:
        session.auth = (settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD)
    if settings.DICOMWEB_CA_FILE:
        try:
            add_certs_to_session(session, ca_bundle=settings.DICOMWEB_CA_FILE)
        except OSError as exc:
            raise PacsError(f"DICOMWEB_CA_FILE: {exc}") from exc
    return session


def get_client(timeout: float | None = None) -> DICOMwebClient:
    """A dicomweb-client for DICOMWEB_URL (used to send), with the configured timeout (seconds), no retry."""
    try:
        client = DICOMwebClient(settings.DICOMWEB_URL, session=_session(),
                                timeout=timeout or settings.DICOMWEB_TIMEOUT)
    except ValueError as exc:  # a malformed URL
        raise PacsError(f"DICOMWEB_URL is not a usable URL ({exc}).") from exc
    client.set_http_retry_params(retry=False)
    return client


# --- bounded reads ------------------------------------------------------------------------------

SEARCH_MAX_BYTES = 8 * 2**20   # a QIDO-RS answer of at most 100 results is some hundred KB
MULTIPART_HEADER_MAX = 16 * 1024
DICOM_JSON_DEPTH = 16  # list, object, attribute, value list, person name or sequence item, nested sequences
CHUNK = 64 * 1024


@lru_cache(maxsize=1)
def _call_slots() -> threading.BoundedSemaphore:
    """The process's PACS call slots (PACS_MAX_CALLS), made on first use."""
    return threading.BoundedSemaphore(max(1, settings.PACS_MAX_CALLS))


def _timed_out(seconds: float) -> PacsError:
    return PacsError(f"The PACS at {settings.DICOMWEB_URL} did not answer within {seconds:g} s.")


def _within(seconds: float, call):
    """`call(deadline)` in a thread of its own holding one of the process's call slots, waited for at
    most `seconds`: the caller (a request thread) is free at the deadline whatever the PACS does; a
    PACS still trickling keeps only the slot, so at most PACS_MAX_CALLS such calls exist, and the
    rest are refused at once."""
    slots = _call_slots()
    if not slots.acquire(blocking=False):
        raise PacsError(f"The PACS is busy with {settings.PACS_MAX_CALLS} other requests from this server; "
                        "try again in a moment.")
    outcome: Future = Future()
    deadline = time.monotonic() + seconds

    def run():
        try:
            outcome.set_result(call(deadline))
        except BaseException as exc:  # handed to the caller
            outcome.set_exception(exc)
        finally:
            slots.release()

    threading.Thread(target=run, name="pacs-call", daemon=True).start()
    try:
        return outcome.result(timeout=seconds + 0.5)
    except FutureTimeout:
        raise _timed_out(seconds) from None


def _get(path: str, params: dict | None, accept: str, deadline: float) -> requests.Response:
    """GET DICOMWEB_URL + path, streamed: the headers now, the body left to read."""
    timeout = max(0.1, min(settings.DICOMWEB_TIMEOUT, deadline - time.monotonic()))
    response = _session().get(settings.DICOMWEB_URL + path, params=params, headers={"Accept": accept},
                              stream=True, timeout=(timeout, timeout))
    response.raise_for_status()
    return response


def _chunks(response: requests.Response, deadline: float):
    """The body a chunk at a time; the connection is closed at the deadline, ending a blocked read."""
    closer = threading.Timer(max(0.0, deadline - time.monotonic()), response.close)
    closer.daemon = True
    closer.start()
    late = PacsError(f"The PACS at {settings.DICOMWEB_URL} was still answering at the deadline.")
    try:
        while True:
            try:
                chunk = response.raw.read(CHUNK, decode_content=True)
            except Exception:  # the closer's doing when past the deadline, else the PACS's
                if time.monotonic() >= deadline:
                    raise late from None
                raise
            if time.monotonic() >= deadline:
                raise late
            if not chunk:
                return
            yield chunk
    finally:
        closer.cancel()


def read_json(path: str, params: dict | None = None, *, max_bytes: int = SEARCH_MAX_BYTES,
              seconds: float | None = None) -> list[dict]:
    """A QIDO-RS answer: a JSON list of DICOM JSON objects, read within `max_bytes` and the deadline."""
    from TumorApp.series.corrections import load_json

    def call(deadline: float) -> bytes:
        response = _get(path, params, "application/dicom+json", deadline)
        body = bytearray()
        with response:
            if response.status_code == 204:
                return b"[]"
            for chunk in _chunks(response, deadline):
                body += chunk
                if len(body) > max_bytes:
                    raise PacsError(f"The PACS at {settings.DICOMWEB_URL} answered more than "
                                    f"{max_bytes // 2**20} MiB to a search; narrow the search.")
        return bytes(body)

    body = _within(seconds or settings.DICOMWEB_TIMEOUT, call)
    try:
        data = load_json(body, max_bytes, "", max_depth=DICOM_JSON_DEPTH)
    except Exception as exc:  # InputError: not JSON, or nested too deeply
        raise PacsError(f"The PACS at {settings.DICOMWEB_URL} answered a search with something that is not "
                        "DICOM JSON.") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise PacsError(f"The PACS at {settings.DICOMWEB_URL} answered a search with JSON of the wrong shape "
                        "(not a list of DICOM objects).")
    return data


def retrieve_files(path: str, into: Path, *, max_files: int, max_file_bytes: int, max_bytes: int,
                   seconds: float) -> list[Path]:
    """A WADO-RS retrieve (multipart/related of application/dicom): each part written to a file in
    `into` as it arrives, undecoded, within the part, file-count and total budgets and the deadline.
    PacsError for a broken answer, InputError past a budget (our limits, not the PACS's fault)."""
    from TumorApp.analysis.errors import InputError

    def call(deadline: float) -> list[Path]:
        response = _get(path, None, 'multipart/related; type="application/dicom"', deadline)
        with response:
            boundary = _boundary(response.headers.get("Content-Type", ""))
            parts = _MultipartFiles(boundary, into, max_files, max_file_bytes, max_bytes, InputError)
            try:
                for chunk in _chunks(response, deadline):
                    parts.feed(chunk)
                return parts.finish()
            finally:
                parts.close()

    return _within(seconds, call)


def _boundary(content_type: str) -> bytes:
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/related":
        raise PacsError(f"The PACS answered a retrieve with {kind.strip() or 'no content type'}, not "
                        "multipart/related.")
    for param in rest.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value.strip('"'):
            boundary = value.strip('"')
            if len(boundary) <= 70:
                return boundary.encode("latin-1")
    raise PacsError("The PACS answered a retrieve without a usable multipart boundary.")


class _MultipartFiles:
    """A streaming multipart parser writing each part's body to its own file."""

    def __init__(self, boundary: bytes, into: Path, max_files: int, max_file_bytes: int, max_bytes: int,
                 over_budget):
        self.opening, self.delimiter = b"--" + boundary, b"\r\n--" + boundary
        self.into, self.max_files, self.max_file_bytes, self.max_bytes = into, max_files, max_file_bytes, max_bytes
        self.over_budget = over_budget
        self.buffer, self.state, self.total = b"", "preamble", 0
        self.paths: list[Path] = []
        self.file = None
        self.part_bytes = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.state == "preamble":
                at = self.buffer.find(self.opening)
                if at < 0:
                    if len(self.buffer) > MULTIPART_HEADER_MAX:
                        raise PacsError("The PACS answered a retrieve with a broken multipart body (no boundary).")
                    return
                self.buffer, self.state = self.buffer[at + len(self.opening):], "after-boundary"
            elif self.state == "after-boundary":
                if len(self.buffer) < 2:
                    return
                if self.buffer.startswith(b"--"):
                    self.state, self.buffer = "done", b""
                    return
                if not self.buffer.startswith(b"\r\n"):
                    raise PacsError("The PACS answered a retrieve with a broken multipart body.")
                self.buffer, self.state = self.buffer[2:], "headers"
            elif self.state == "headers":
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MULTIPART_HEADER_MAX:
                        raise PacsError("The PACS answered a retrieve with a multipart part whose headers never end.")
                    return
                self._open_part(self.buffer[:end])
                self.buffer, self.state = self.buffer[end + 4:], "body"
            elif self.state == "body":
                at = self.buffer.find(self.delimiter)
                if at < 0:
                    keep = len(self.delimiter) - 1  # a delimiter may be split across chunks
                    self._write(self.buffer[:-keep] if len(self.buffer) > keep else b"")
                    self.buffer = self.buffer[-keep:] if len(self.buffer) > keep else self.buffer
                    return
                self._write(self.buffer[:at])
                self.file.close()
                self.file = None
                self.buffer, self.state = self.buffer[at + len(self.delimiter):], "after-boundary"
            else:  # done: an epilogue is ignored
                self.buffer = b""
                return

    def _open_part(self, headers: bytes) -> None:
        kinds = [line.split(b":", 1)[1].strip().split(b";")[0].lower() for line in headers.split(b"\r\n")
                 if line.lower().startswith(b"content-type:")]
        if kinds and kinds[0] != b"application/dicom":
            raise PacsError(f"The PACS answered a retrieve with a {kinds[0].decode('latin-1')[:60]} part, "
                            "not application/dicom.")
        if len(self.paths) >= self.max_files:
            raise self.over_budget(f"The series has more than {self.max_files} images; at most "
                                   f"{self.max_files} slices can be analysed.")
        path = self.into / f"{len(self.paths):04d}.dcm"
        self.paths.append(path)
        self.file = open(path, "wb")
        self.part_bytes = 0

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.part_bytes += len(data)
        self.total += len(data)
        if self.part_bytes > self.max_file_bytes:
            raise self.over_budget(f"An image of the series is larger than {self.max_file_bytes // 2**20} MiB; "
                                   "that is the limit per image.")
        if self.total > self.max_bytes:
            raise self.over_budget(f"The series is larger than {self.max_bytes // 2**20} MiB; that is the limit.")
        self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self) -> list[Path]:
        self.close()
        if self.state != "done":
            raise PacsError("The PACS's answer to a retrieve ended before its multipart body did.")
        return self.paths


def describe(exc: BaseException) -> str:
    """A sentence for a failed PACS call (requests' and dicomweb-client's exceptions)."""
    where = settings.DICOMWEB_URL
    if isinstance(exc, PacsError):
        return str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"The PACS at {where} failed the TLS check ({exc}); set DICOMWEB_CA_FILE to its CA bundle."
    if isinstance(exc, requests.exceptions.Timeout):
        return f"The PACS at {where} did not answer within {settings.DICOMWEB_TIMEOUT:g} s."
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"The PACS at {where} cannot be reached (is it running, and is DICOMWEB_URL right?)."
    if isinstance(exc, requests.exceptions.HTTPError):
        status = getattr(exc.response, "status_code", "?")
        if status in (401, 403):
            return f"The PACS at {where} refused the credentials (HTTP {status}); check DICOMWEB_USERNAME/PASSWORD."
        return f"The PACS at {where} answered HTTP {status}."
    return f"The PACS at {where} answered something unexpected ({type(exc).__name__}: {exc})."


def as_pacs_error(exc: BaseException) -> PacsError:
    """`exc` itself when it is already ours (keeps PacsNotConfigured apart), else a PacsError saying why."""
    return exc if isinstance(exc, PacsError) else PacsError(describe(exc))


# What a PACS call can raise besides our own errors: network and HTTP errors, and parse errors from
# a broken answer (dicomweb-client raises ValueError/KeyError on bad multipart or JSON).
CALL_ERRORS = (PacsError, requests.exceptions.RequestException, ValueError, KeyError, TypeError,
               AttributeError, OSError)


def check_connection(timeout: float | None = None) -> str | None:
    """None when the PACS answers a QIDO-RS search, else why not (for the system check and the pages)."""
    try:
        read_json("/studies", {"limit": "1", "includefield": "StudyInstanceUID"}, seconds=timeout)
    except CALL_ERRORS as exc:
        return describe(exc)
    return None
