"""The DICOMweb client for the configured PACS (DICOMWEB_* settings), and one error type for every way
a PACS call can fail, so pages and commands say what went wrong instead of showing a traceback."""
from __future__ import annotations

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


def get_client(timeout: float | None = None) -> DICOMwebClient:
    """A client for DICOMWEB_URL with the configured credentials, CA bundle and timeout (seconds)."""
    if not configured():
        raise PacsNotConfigured("No PACS is configured: set DICOMWEB_URL (see the README's PACS section).")
    session = _Session()
    if settings.DICOMWEB_USERNAME:
        session.auth = (settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD)
    if settings.DICOMWEB_CA_FILE:
        try:
            add_certs_to_session(session, ca_bundle=settings.DICOMWEB_CA_FILE)
        except OSError as exc:
            raise PacsError(f"DICOMWEB_CA_FILE: {exc}") from exc
    try:
        client = DICOMwebClient(settings.DICOMWEB_URL, session=session, timeout=timeout or settings.DICOMWEB_TIMEOUT)
    except ValueError as exc:  # a malformed URL
        raise PacsError(f"DICOMWEB_URL is not a usable URL ({exc}).") from exc
    # One quick retry of a busy PACS (429/503/504), not the library's five with back-off: a person waits.
    client.set_http_retry_params(retry=True, max_attempts=2, wait_exponential_multiplier=500)
    return client


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
CALL_ERRORS = (PacsError, requests.exceptions.RequestException, ValueError, KeyError)


def check_connection(timeout: float | None = None) -> str | None:
    """None when the PACS answers a QIDO-RS search, else why not (for the system check and the pages)."""
    try:
        get_client(timeout).search_for_studies(limit=1, fields=["StudyInstanceUID"])
    except CALL_ERRORS as exc:
        return describe(exc)
    return None
