"""Stored analyses (one row + its files per upload) and the per-account first-login flag."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Analysis(models.Model):
    """One uploaded CT slice and what the pipeline found in it; never overwritten, only deleted."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="analyses")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The user's file name, sanitised, for display only; the stored file has a generated name.
    original_name = models.CharField(max_length=255)
    upload = models.FileField(max_length=255)
    # {"original": "results/<uuid>/original.png", ...}: storage-relative paths of the rendered PNGs.
    images = models.JSONField(default=dict)
    # AnalysisResult.to_dict(): exactly what `manage.py analyze --json` prints (minus "file").
    result = models.JSONField(default=dict)
    notes = models.JSONField(default=list)
    tumor_detected = models.BooleanField()
    stage = models.CharField(max_length=8, blank=True, default="")
    affected_percent = models.FloatField(default=0.0)
    spacing_source = models.CharField(max_length=16)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return f"{self.original_name} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def lesions(self) -> list[dict]:
        return self.result.get("tumors", [])


class AccountFlags(models.Model):
    """Per-account state Django's User lacks: the default admin must change its password first."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flags")
    must_change_password = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user}: must_change_password={self.must_change_password}"


class AuditEvent(models.Model):
    """Who logged in (or failed), analysed, viewed or deleted which analysis, when; append-only.

    `username` is kept as text so the trail survives the user's deletion or renaming, and so failed
    logins for unknown names are recorded; `analysis_id` is a plain number so deletions stay visible.
    """

    class Action(models.TextChoices):
        LOGIN = "login", "logged in"
        LOGIN_FAILED = "login_failed", "failed to log in"
        LOGOUT = "logout", "logged out"
        ANALYSE = "analyse", "analysed (web)"
        API_ANALYSE = "api_analyse", "analysed (API)"
        VIEW = "view", "viewed"
        API_VIEW = "api_view", "viewed (API)"
        DELETE = "delete", "deleted"

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="audit_events")
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices, db_index=True)
    analysis_id = models.BigIntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        target = f" analysis {self.analysis_id}" if self.analysis_id else ""
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.get_action_display()}{target}"


class SeriesJob(models.Model):
    """One uploaded CT series and its background analysis (the database is the job queue).

    A worker claims a queued job with one conditional UPDATE (so no two workers run it), beats
    `heartbeat_at` while it runs, and finishes only if it still holds the claim.  A running job
    whose worker died (its process is gone, or its heartbeat is stale) goes back to the queue.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="series_jobs")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    name = models.CharField(max_length=255)  # what the user uploaded, for display
    kind = models.CharField(max_length=8)  # "dicom" / "nifti"
    folder = models.CharField(max_length=255)  # storage-relative folder: input/, results
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=128, blank=True, default="")  # host:pid:token of the worker
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)  # SeriesResult.to_dict() when done
    files = models.JSONField(default=dict, blank=True)  # {"ct": ..., "labels": ..., "export": ...} paths
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"series {self.pk} {self.name} ({self.status})"
