"""Error pages for every feature (settings.CSRF_FAILURE_VIEW, Tumor/urls.py's handlers): HTML, or JSON for
API requests."""
from __future__ import annotations

import sys

from django.db import DatabaseError
from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader

from .middleware import wants_json


def _error(request, status: int, title: str, message: str):
    if wants_json(request):
        return JsonResponse({"error": message, "status": status}, status=status)
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def csrf_failure(request, reason=""):
    if wants_json(request):
        return _error(request, 403, "Request refused",
                      "CSRF check failed for a session-authenticated request: send the csrftoken cookie's value "
                      "as the X-CSRFToken header (and a Referer on HTTPS), or authenticate with "
                      "'Authorization: Bearer <token>' instead, which needs no CSRF token.")
    return _error(request, 403, "Request refused",
                  "The form's security token was missing or expired. Reload the page and try again.")


def bad_request(request, exception=None):
    return _error(request, 400, "Bad request", "The request could not be understood.")


def permission_denied(request, exception=None):
    what = "resource" if wants_json(request) else "page"
    return _error(request, 403, "Not allowed", f"You do not have access to this {what}.")


def page_not_found(request, exception=None):
    return _error(request, 404, "Not found", "There is nothing here, or it belongs to another account.")


def server_error(request):
    # Rendered without the request's context (user, session): those may be what failed.
    status, title, message = 500, "Something went wrong", "The server could not finish this request. Please try again."
    if isinstance(sys.exc_info()[1], DatabaseError):
        status, title = 503, "Database unavailable"
        message = "The database cannot be reached right now. Nothing was lost; please try again in a minute."
    if wants_json(request):
        return JsonResponse({"error": message, "status": status}, status=status)
    html = loader.get_template("500.html").render({"title": title, "message": message})
    response = HttpResponseServerError(html, status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response
