"""PACS pages: search (QIDO-RS), retrieve a series into the analysis queue, send a result back.

Thin: a form, one service call, a page.  A PACS that is not configured or not reachable gets a page
that says so (503), never a traceback."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from TumorApp.analyses import selectors
from TumorApp.series import services as series_services
from TumorApp.analysis.errors import InputError
from TumorApp.audit import client_ip

from . import services
from .client import PacsError, PacsNotConfigured, configured
from .forms import RetrieveForm, SearchForm


def _unavailable(request, exc: PacsError):
    title = "No PACS configured" if isinstance(exc, PacsNotConfigured) else "PACS unavailable"
    return render(request, "pacs/unavailable.html", {"title": title, "message": str(exc)}, status=503)


@login_required
@require_GET
def search(request):
    if not configured():
        return _unavailable(request, PacsNotConfigured(
            "No PACS is configured: set DICOMWEB_URL (see docs/pacs.md)."))
    form = SearchForm(request.GET) if request.GET else SearchForm()
    rows = None
    if request.GET and form.is_valid():
        try:
            rows = services.search_series(**form.cleaned_data)
        except PacsError as exc:
            return _unavailable(request, exc)
    return render(request, "pacs/search.html", {"form": form, "rows": rows},
                  status=400 if request.GET and not form.is_valid() else 200)


@login_required
@require_POST
def retrieve(request):
    form = RetrieveForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return redirect("pacs-search")
    try:
        job = services.import_series(user=request.user, ip=client_ip(request), **form.cleaned_data)
    except PacsError as exc:
        return _unavailable(request, exc)
    except InputError as exc:
        messages.error(request, f"That series cannot be analysed: {exc}")
        return redirect("pacs-search")
    return redirect("series", pk=job.pk)


def _sent(request, send) -> None:
    """Run one send (series or slice) and say how it went on the page it redirects to."""
    try:
        transfer = send()
    except (InputError, PacsError) as exc:
        messages.error(request, str(exc))
    else:
        if transfer.status == transfer.Status.DONE:
            messages.success(request, "Sent to the PACS: segmentation, measurement report and key image.")
        else:
            messages.error(request, f"Sending to the PACS failed: {transfer.error} Nothing is lost: retry below.")


@login_required
@require_POST
def send(request, pk: int):
    """The series page's "Send to PACS" (and "Retry") button."""
    job = get_object_or_404(series_services.jobs_for(request.user), pk=pk)
    _sent(request, lambda: services.send_results(job=job, user=request.user, ip=client_ip(request)))
    return redirect("series", pk=job.pk)


@login_required
@require_POST
def send_analysis(request, pk: int):
    """The single-slice result page's "Send to PACS" (and "Retry") button."""
    analysis = get_object_or_404(selectors.analyses_for(request.user), pk=pk)
    _sent(request, lambda: services.send_analysis(analysis=analysis, user=request.user, ip=client_ip(request)))
    return redirect("analysis", pk=analysis.pk)
