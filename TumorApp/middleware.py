"""Request guards: upload size before the body is read, security headers, forced first password change."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from .selectors import must_change_password

# Room for the multipart envelope and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024
# Whole-series uploads (many slices, a zip or a NIfTI) get their own, larger limit.
SERIES_UPLOAD_PATHS = frozenset({"/series/new/", "/api/series/"})


def wants_json(request) -> bool:
    return request.path.startswith("/api/")


class UploadSizeLimitMiddleware:
    """Refuse bodies over the upload limit from Content-Length alone, before Django reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_UPLOAD_BYTES
        if request.path in SERIES_UPLOAD_PATHS:
            limit = settings.MAX_SERIES_UPLOAD_BYTES
        if length > limit + MULTIPART_OVERHEAD:
            message = f"The upload is larger than the {filesizeformat(limit)} limit."
            if wants_json(request):
                response = JsonResponse({"error": message, "status": 413}, status=413)
            else:
                response = render(request, "error.html", {"title": "Upload too large", "message": message},
                                  status=413)
            # The client may still be sending the body; do not keep the connection for another request.
            response["Connection"] = "close"
            return response
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy (Django 5.2 has none built in); the pages use no inline script or style."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response


class ForcePasswordChangeMiddleware:
    """Until the first-run admin changes the default password, every page leads to the profile page."""

    ALLOWED = ("profile", "logout")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not self._exempt(request) and must_change_password(user):
            if wants_json(request):
                return JsonResponse({"error": "Change the default password on the profile page first.",
                                     "status": 403}, status=403)
            messages.warning(request, "Please change the default password before using the application.")
            return redirect("profile")
        return self.get_response(request)

    def _exempt(self, request) -> bool:
        path = request.path
        if settings.STATIC_URL and path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        return path in {reverse(name) for name in self.ALLOWED}
