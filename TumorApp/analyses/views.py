"""HTML pages: validate with a form, call one service or selector, render. No image work here."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from TumorApp.analysis import labels
from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.errors import InputError

from .. import audit
from . import selectors, services
from .forms import AnalysisUploadForm
from ..models import AuditEvent

HISTORY_PAGE_SIZE = 12
SPACING_LABELS = {"dicom": "from DICOM", "user": "entered", "assumed": "assumed"}


def _owned(request, pk: int):
    return get_object_or_404(selectors.analyses_for(request.user), pk=pk)


def _viewed(request, pk: int):
    analysis = _owned(request, pk)
    audit.record_event(action=AuditEvent.Action.VIEW, user=request.user, analysis_id=analysis.pk,
                          ip=audit.client_ip(request))
    return analysis


@require_GET
def home(request):
    return render(request, "home.html")


@login_required
@require_http_methods(["GET", "POST"])
def detect(request):
    form = AnalysisUploadForm(request.POST, request.FILES) if request.method == "POST" else AnalysisUploadForm()
    if request.method == "POST" and form.is_valid():
        try:
            analysis = services.create_analysis(
                user=request.user, upload=form.cleaned_data["file"],
                pixel_spacing=form.cleaned_data["pixel_spacing"], ip=audit.client_ip(request))
        except InputError as e:
            form.add_error("file", str(e))
        else:
            return redirect("analysis", pk=analysis.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "analyses/detect.html", {"form": form}, status=status)


def _result_context(analysis):
    correction, _ = selectors.correction_of(analysis)
    return {
        "analysis": analysis,
        "correction": correction,
        "compare": selectors.compare_panels(analysis) if correction else None,
        "result": analysis.result,
        "lesions": analysis.lesions,
        "images": selectors.embedded_images(analysis),
        "spacing_label": SPACING_LABELS.get(analysis.spacing_source, analysis.spacing_source),
        "low_confidence": CONTRACT.low_confidence,
        "label_registry": labels.as_json(),  # the editor's colours and windows
        # What ran this result's network; results stored before it was recorded show the server's.
        "inference": analysis.result.get("inference") or _slice_inference(),
    }


def _slice_inference() -> str:
    """The footer's "Inference: onnx-int8 on CPU": the backend this server runs single slices on."""
    from TumorApp.analysis.model.runtime import slice_inference

    try:
        return slice_inference()
    except Exception:  # the page must not fail over a footer line
        return ""


@login_required
@require_GET
def analysis_detail(request, pk: int):
    from TumorApp.pacs import client as pacs_client
    from TumorApp.pacs import services as pacs_services

    analysis = _viewed(request, pk)
    context = _result_context(analysis)
    # "Send to PACS" only where a PACS is configured and the upload was a DICOM slice.
    context["pacs_send_offered"] = pacs_client.configured() and pacs_services.has_dicom_source(analysis)
    context["pacs_send"] = pacs_services.last_send(analysis) if context["pacs_send_offered"] else None
    return render(request, "analyses/result.html", context)


@login_required
@require_GET
def analysis_report(request, pk: int):
    return render(request, "analyses/report.html", _result_context(_viewed(request, pk)))


@login_required
@require_GET
def analysis_image(request, pk: int, name: str):
    data = selectors.image_bytes(_owned(request, pk), name)
    if data is None:
        raise Http404("No such image.")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "no-store, private"  # patient data: not kept after logout
    return response


@login_required
@require_http_methods(["GET", "POST"])
def analysis_delete(request, pk: int):
    analysis = _owned(request, pk)
    if request.method == "POST":
        name = analysis.original_name
        services.delete_analysis(analysis=analysis, ip=audit.client_ip(request))
        messages.success(request, f"Deleted the analysis of {name}.")
        return redirect("history")
    return render(request, "analyses/confirm_delete.html", {"analysis": analysis})


@login_required
@require_GET
def history(request):
    page = Paginator(selectors.analyses_for(request.user), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "analyses/history.html", {"page": page})


