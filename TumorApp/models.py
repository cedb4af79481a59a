"""Stored analyses (one row + its files per upload) and the per-account first-login flag."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Analysis(models.Model):
    """One uploaded CT slice and its current result; deleted only by its owner.

    The result fields hold the network's result until the outline is corrected, then the latest
    correction's; every version, the network's included, is kept in `MaskVersion`.
    """

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

    @property
    def warnings(self) -> list[str]:
        return self.result.get("warnings", [])


class AccountFlags(models.Model):
    """Per-account state Django's User lacks: the default admin must change its password first."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flags")
    must_change_password = models.BooleanField(default=False)

    class Meta:
        verbose_name = "account flags"
        verbose_name_plural = "account flags"

    def __str__(self) -> str:
        return f"{self.user}: must_change_password={self.must_change_password}"


class AuditEvent(models.Model):
    """Who logged in (or failed), analysed, viewed or deleted which analysis or series, when; append-only.

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
        CORRECT = "correct", "corrected the outline"
        PASSWORD_CHANGE = "password_change", "changed password"
        USERNAME_CHANGE = "username_change", "changed username"
        LOCKOUT = "lockout", "locked out (too many failed log-ins)"
        UNLOCK = "unlock", "unlocked"
        TOKEN_CREATE = "token_create", "created API token"
        TOKEN_REVOKE = "token_revoke", "revoked API token"
        TOKEN_REVOKED_USE = "token_revoked", "used a revoked API token"
        # Whole-series jobs: `detail` names the series ("series 7"); `analysis_id` is for slices only.
        SERIES_SUBMIT = "series_submit", "submitted a series"
        SERIES_DELETE = "series_delete", "deleted a series"
        SERIES_VIEW = "series_view", "viewed a series"
        API_SERIES_VIEW = "api_series_view", "viewed a series (API)"
        SERIES_EXPORT = "series_export", "downloaded a series export"
        API_SERIES_EXPORT = "api_series_export", "downloaded a series export (API)"
        # PACS (issue 19): `detail` names the series and the PACS series UID, or the error.
        PACS_RETRIEVE = "pacs_retrieve", "retrieved a series from the PACS"
        PACS_RETRIEVE_FAILED = "pacs_retrieve_failed", "failed to retrieve a series from the PACS"
        PACS_SEND = "pacs_send", "sent results to the PACS"
        PACS_SEND_FAILED = "pacs_send_failed", "failed to send results to the PACS"
        DICOM_RECEIVE = "dicom_receive", "received a series over DICOM (C-STORE)"
        DICOM_RECEIVE_FAILED = "dicom_receive_failed", "refused a series received over DICOM"
        # Series corrections (issue 20): `detail` names the series and the version ("series 7 version 2").
        SERIES_CORRECT = "series_correct", "corrected a series"
        API_SERIES_CORRECT = "api_series_correct", "corrected a series (API)"

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="audit_events")
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    analysis_id = models.BigIntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # What changed or who acted, e.g. "old -> new" for a username, a token's name, "by admin".
    detail = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        target = f" analysis {self.analysis_id}" if self.analysis_id else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.get_action_display()}{target}{detail}"


class MaskVersion(models.Model):
    """One saved outline of an analysis and the result recomputed from it; append-only.

    Number 0 is the network's own outline (written when the first correction is saved), 1, 2, ...
    the corrections; the highest number is the analysis's current result. Masks are stored as
    0/255 PNGs of the image's own size; `images` maps picture names to storage paths.
    """

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="mask_versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="mask_versions")
    # Kept as text so the version survives its author's renaming or deletion; "" for the network.
    created_by_name = models.CharField(max_length=150, blank=True)
    liver_mask = models.CharField(max_length=255)
    tumor_mask = models.CharField(max_length=255)
    result = models.JSONField(default=dict)
    notes = models.JSONField(default=list)
    images = models.JSONField(default=dict)

    class Meta:
        ordering = ["analysis", "number"]
        constraints = [models.UniqueConstraint(fields=["analysis", "number"], name="mask_version_unique_number")]

    def __str__(self) -> str:
        who = self.created_by_name or "network"
        return f"analysis {self.analysis_id} v{self.number} ({who}, {self.created_at:%Y-%m-%d %H:%M})"

    @property
    def is_model(self) -> bool:
        return self.number == 0

    def paths(self) -> list[str]:
        return [self.liver_mask, self.tumor_mask, *self.images.values()]



class ApiToken(models.Model):
    """A personal API token for scripts: only its SHA-256 is stored; the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # sha256 hex of the whole token; tokens are 256 random bits, so a plain hash cannot be brute-forced.
    key_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the token, to tell tokens apart in lists (not enough to use one).
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None



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
    # {"ct": ..., "labels": (the network's), "corrected": (the latest correction's), "export", "export-v2"}: paths
    files = models.JSONField(default=dict, blank=True)
    # The exact spacing (z, y, x) mm the job measured with (the result's is rounded): corrections
    # are measured with it too.  Empty for jobs finished before it was stored.
    spacing_mm = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"series {self.pk} {self.name} ({self.status})"


class SeriesVersion(models.Model):
    """One saved label volume of a series and the figures recomputed from it; append-only.

    Number 0 is the network's (written when the first correction is saved; its labels are the
    job's own `files["labels"]`), 1, 2, ... the corrections, stored as compressed .npz beside the
    series' files; the highest number is the job's current result."""

    job = models.ForeignKey(SeriesJob, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="series_versions")
    created_by_name = models.CharField(max_length=150, blank=True)  # "" for the network
    labels = models.CharField(max_length=255)  # storage path: .npy (v0) or .npz (corrections)
    result = models.JSONField(default=dict)  # the job's result record for this version

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="series_version_unique_number")]

    def __str__(self) -> str:
        return f"series {self.job_id} v{self.number} ({self.created_by_name or 'network'})"


class PacsTransfer(models.Model):
    """One retrieve from or send to the PACS for a series job, or one send of a single-slice analysis
    (exactly one of `job` and `analysis` is set); a failed send stays here to be retried.

    `sop_instance_uids` are what the PACS confirmed storing (send) or what was fetched (retrieve)."""

    class Direction(models.TextChoices):
        RETRIEVE = "retrieve", "retrieved from the PACS"
        RECEIVE = "receive", "received over DICOM (C-STORE)"
        SEND = "send", "sent to the PACS"

    class Status(models.TextChoices):
        DONE = "done", "done"
        FAILED = "failed", "failed"

    job = models.ForeignKey(SeriesJob, null=True, blank=True, on_delete=models.CASCADE, related_name="pacs_transfers")
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="pacs_transfers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="pacs_transfers")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    status = models.CharField(max_length=8, choices=Status.choices)
    study_instance_uid = models.CharField(max_length=64, blank=True, default="")
    series_instance_uid = models.CharField(max_length=64, blank=True, default="")  # the source CT series
    sop_instance_uids = models.JSONField(default=dict, blank=True)  # {"seg": ..., "sr": ..., "key_image": ...} on send
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(
            condition=models.Q(job__isnull=False, analysis__isnull=True) | models.Q(job__isnull=True,
                                                                                 analysis__isnull=False),
            name="pacs_transfer_job_or_analysis")]

    def __str__(self) -> str:
        what = f"series {self.job_id}" if self.job_id else f"analysis {self.analysis_id}"
        return f"{what} {self.direction} {self.status}"
