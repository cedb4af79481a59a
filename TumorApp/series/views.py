"""Whole-series pages (issue 11): upload, progress, result, slice viewer, export, delete, and the
editor's reads (issue 20); the JSON API is series/api.py.

Views validate (a form), call one service, render; the work happens in the worker.
"""
from __future__ import annotations

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.labels import as_json as label_registry
from TumorApp.analysis.labels import encode_png
from TumorApp.analysis.series.slice_view import WINDOWS, render_slice

from . import corrections as series_corrections, services as series_services
from .. import audit
from ..models import AuditEvent, SeriesJob, SeriesVersion
from .forms import SeriesUploadForm
from ..pacs import client as pacs_client
from ..pacs import services as pacs_services


def _owned(request, pk: int) -> SeriesJob:
    return get_object_or_404(series_services.jobs_for(request.user), pk=pk)


def _audit(request, job: SeriesJob, action: str) -> None:
    """Record who saw or took a series' result, as analysis views are (detail "series <id>")."""
    audit.record_event(action=action, user=request.user, ip=audit.client_ip(request), detail=f"series {job.pk}")


# --- pages ---------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def series_new(request):
    form = SeriesUploadForm(request.POST, request.FILES) if request.method == "POST" else SeriesUploadForm()
    if request.method == "POST" and form.is_valid():
        try:
            job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                                ip=audit.client_ip(request))
        except InputError as e:
            form.add_error("file", str(e))
        else:
            return redirect("series", pk=job.pk)
    return render(request, "series/new.html",
                  {"form": form, "jobs": series_services.jobs_for(request.user)[:20]},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_GET
def series_detail(request, pk: int):
    job = _owned(request, pk)
    _audit(request, job, AuditEvent.Action.SERIES_VIEW)
    context = {"job": job, "windows": list(WINDOWS), "payload": series_services.payload(job),
               "pacs_configured": pacs_client.configured(), "pacs_send": pacs_services.last_send(job)}
    if job.status == SeriesJob.Status.DONE:
        context["lesions"] = [dict(lesion, number=n) for n, lesion in enumerate(job.result.get("lesions", []), 1)]
        context["inference"] = job.result.get("inference", "")  # the footer names the backend that ran
        context["corrected_at"] = _corrected_at(job)
        context["label_registry"] = label_registry()  # the editor's colours and windows
        context["versions"] = [dict(v, created_at=parse_datetime(v["created_at"]))
                               for v in context["payload"]["versions"]]
    return render(request, "series/detail.html", context)


@login_required
@require_GET
def series_report(request, pk: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        return redirect("series", pk=job.pk)
    _audit(request, job, AuditEvent.Action.SERIES_VIEW)
    lesions = [dict(lesion, number=n) for n, lesion in enumerate(job.result.get("lesions", []), 1)]
    return render(request, "series/report.html", {"job": job, "lesions": lesions, "corrected_at": _corrected_at(job)})


def _corrected_at(job: SeriesJob):
    """When the current correction was saved, as a datetime for the templates (None if uncorrected)."""
    value = job.result.get("corrected_at")
    return parse_datetime(value) if value else None


@login_required
@require_GET
def series_slice(request, pk: int, index: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:  # ?version=0: the network's outline, for the compare switch
        ct, labels = series_services.volume_arrays(job, _version_param(request))
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    if not 0 <= index < ct.shape[0]:
        raise Http404("No such slice.")
    overlay = request.GET.get("overlay", "1") != "0"
    png = render_slice(ct[index], labels[index] if overlay else None, request.GET.get("window", "abdomen"))
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def series_delete(request, pk: int):
    job = _owned(request, pk)
    if request.method == "POST":
        try:
            series_services.delete_series(job=job, ip=audit.client_ip(request))
        except series_services.SeriesRunning as e:
            return render(request, "series/confirm_delete.html", {"job": job, "refused": str(e)}, status=409)
        messages.success(request, f"Deleted the series {job.name}.")
        return redirect("series-new")
    return render(request, "series/confirm_delete.html", {"job": job})


def _download(request, job: SeriesJob, action: str) -> HttpResponse:
    """A version's export (`?version=N`, default the latest) as an attachment, audited with its
    version; `SeriesJob.DoesNotExist` when the series was deleted meanwhile, Http404 for a version
    that is not kept."""
    from .corrections import current_version

    version = _version_param(request)
    version = current_version(job) if version is None else version
    try:  # ?format=nifti: NIfTI labels in patient space for a DICOM series too
        data, name, content_type = series_services.export_file(job, version,
                                                               nifti=request.GET.get("format") == "nifti")
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    audit.record_event(action=action, user=request.user, ip=audit.client_ip(request),
                          detail=f"series {job.pk}" + (f" version {version}" if version else ""))
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Labels-Version"] = str(version)
    return response


@login_required
@require_GET
def series_export(request, pk: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:
        return _download(request, job, AuditEvent.Action.SERIES_EXPORT)
    except SeriesJob.DoesNotExist:
        raise Http404("The series was deleted.")


# --- corrections (issue 20) ----------------------------------------------------------------------

def _version_param(request) -> int | None:
    """`?version=N` (None when absent); Http404 for anything but a whole number."""
    value = request.GET.get("version")
    if value is None or value == "":
        return None
    number = series_corrections.whole_number(value)
    if number is None:
        raise Http404("No such version.")
    return number


@login_required
@require_GET
def series_slice_labels(request, pk: int, index: int):
    """One slice's label map for the editor (`labels.encode_png`: pixel = label value; `?version=N`,
    default current)."""
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:
        _, labels = series_services.volume_arrays(job, _version_param(request))
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    if not 0 <= index < labels.shape[0]:
        raise Http404("No such slice.")
    response = HttpResponse(encode_png(labels[index]), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def series_slice_hu(request, pk: int, index: int):
    """One slice in HU for the editor: little-endian int16, row-major; X-Width / X-Height give the shape."""
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    ct, _ = series_services.volume_arrays(job)
    if not 0 <= index < ct.shape[0]:
        raise Http404("No such slice.")
    plane = np.ascontiguousarray(ct[index], dtype="<i2")
    response = HttpResponse(plane.tobytes(), content_type="application/octet-stream")
    response["X-Height"], response["X-Width"] = str(plane.shape[0]), str(plane.shape[1])
    response["Cache-Control"] = "private, max-age=3600"
    return response


