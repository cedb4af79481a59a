"""Whole-series pages and JSON API (issue 11): upload -> 202/redirect, progress, result, slice viewer, export,
delete.

Views validate (a form), call one service, render; the work happens in the worker.
"""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.slice_view import WINDOWS, render_slice

from . import series_services, services
from .api import allow, api_login_required, error
from .models import AuditEvent, SeriesJob
from .pacs import client as pacs_client
from .pacs import services as pacs_services


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A list of uploaded files (Django's documented pattern for <input multiple>)."""

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)) and data:
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class SeriesUploadForm(forms.Form):
    """The files of one series (DICOM files, or a zip of them) or one NIfTI volume."""

    file = MultipleFileField(
        label="CT series",
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ".dcm,.zip,.nii,.gz,application/dicom"}),
        help_text="All DICOM files of one axial CT series (select them all, or one .zip), or one NIfTI "
                  "volume (.nii or .nii.gz). Up to 1000 slices (about 850 of 512 x 512).",
        error_messages={"required": "Choose the files of one CT series, a zip, or a NIfTI volume."},
    )

    def clean_file(self):
        uploads = self.cleaned_data["file"]
        total = sum(u.size for u in uploads)
        limit = settings.MAX_SERIES_UPLOAD_BYTES
        if total > limit:
            raise forms.ValidationError(f"The upload is {filesizeformat(total)}; the limit is {filesizeformat(limit)}.",
                                        code="too_large")
        if any(u.size == 0 for u in uploads):
            raise forms.ValidationError("One of the files is empty.", code="empty")
        return uploads


def _owned(request, pk: int) -> SeriesJob:
    return get_object_or_404(series_services.jobs_for(request.user), pk=pk)


def _audit(request, job: SeriesJob, action: str) -> None:
    """Record who saw or took a series' result, as analysis views are (detail "series <id>")."""
    services.record_event(action=action, user=request.user, ip=services.client_ip(request), detail=f"series {job.pk}")


# --- pages ---------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def series_new(request):
    form = SeriesUploadForm(request.POST, request.FILES) if request.method == "POST" else SeriesUploadForm()
    if request.method == "POST" and form.is_valid():
        try:
            job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                                ip=services.client_ip(request))
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
    return render(request, "series/detail.html", context)


@login_required
@require_GET
def series_report(request, pk: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        return redirect("series", pk=job.pk)
    _audit(request, job, AuditEvent.Action.SERIES_VIEW)
    lesions = [dict(lesion, number=n) for n, lesion in enumerate(job.result.get("lesions", []), 1)]
    return render(request, "series/report.html", {"job": job, "lesions": lesions})


@login_required
@require_GET
def series_slice(request, pk: int, index: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    ct, labels = series_services.volume_arrays(job)
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
            series_services.delete_series(job=job, ip=services.client_ip(request))
        except series_services.SeriesRunning as e:
            return render(request, "series/confirm_delete.html", {"job": job, "refused": str(e)}, status=409)
        messages.success(request, f"Deleted the series {job.name}.")
        return redirect("series-new")
    return render(request, "series/confirm_delete.html", {"job": job})


def _download(request, job: SeriesJob, action: str) -> HttpResponse:
    """The export as an attachment, audited; `SeriesJob.DoesNotExist` when the series was deleted meanwhile."""
    data, name, content_type = series_services.export_file(job)
    _audit(request, job, action)
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
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


# --- JSON API ------------------------------------------------------------------------------------

@api_login_required
@allow("GET", "POST")
def api_series_list(request):
    if request.method == "GET":
        return JsonResponse({"results": [
            {"id": j.pk, "status": j.status, "progress": [j.progress_done, j.progress_total], "name": j.name,
             "url": reverse("api-series", args=[j.pk])} for j in series_services.jobs_for(request.user)[:50]]})
    form = SeriesUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = {f: [e["message"] for e in errs] for f, errs in form.errors.get_json_data().items()}
        too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
        return error(413 if too_large else 400, " ".join(m for ms in errors.values() for m in ms), fields=errors)
    try:
        job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                            ip=services.client_ip(request))
    except InputError as e:
        return error(400, str(e), fields={"file": [str(e)]})
    response = JsonResponse({"id": job.pk, "status": job.status}, status=202)
    response["Location"] = reverse("api-series", args=[job.pk])
    return response


@api_login_required
@allow("GET", "DELETE")
def api_series(request, pk: int):
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return error(404, "No such series.")
    if request.method == "DELETE":
        try:
            series_services.delete_series(job=job, ip=services.client_ip(request))
        except series_services.SeriesRunning as e:
            return error(409, str(e))
        return HttpResponse(status=204)
    if job.status == SeriesJob.Status.DONE:  # the result; progress polls while it runs are not audited
        _audit(request, job, AuditEvent.Action.API_SERIES_VIEW)
    return JsonResponse(series_services.payload(job))


@api_login_required
@allow("GET")
def api_series_export(request, pk: int):
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return error(404, "No such series.")
    if job.status != SeriesJob.Status.DONE:
        return error(409, f"The series is {job.status}; the export exists once it is done.")
    try:
        return _download(request, job, AuditEvent.Action.API_SERIES_EXPORT)
    except SeriesJob.DoesNotExist:
        return error(404, "No such series (it was deleted).")
