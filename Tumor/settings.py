"""Settings for the Tumor project: one module, everything that differs per machine comes from the environment."""
from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state (database, uploads, generated images, collected static) lives here, outside git.
VAR_DIR = Path(os.environ.get("TUMOR_VAR_DIR", BASE_DIR / "var"))


def _env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """SECRET_KEY from the environment, else from `.secret_key` (generated once, never committed)."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = Path(os.environ.get("SECRET_KEY_FILE", BASE_DIR / ".secret_key"))
    if path.is_file():
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    try:
        path.write_text(key)
        path.chmod(0o600)
    except OSError:
        pass  # read-only checkout: the key then lasts for this process only
    return key


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "TumorApp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "TumorApp.middleware.UploadSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "TumorApp.middleware.SecurityHeadersMiddleware",
    "TumorApp.middleware.ServiceErrorMiddleware",
    "TumorApp.middleware.ForcePasswordChangeMiddleware",
    # Axes wants to be last so it sees the final response of the login view.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "Tumor.urls"
WSGI_APPLICATION = "Tumor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL (sqlite:///..., mysql://user:pass@host:3306/name); default embedded SQLite.
# var/ holds the database (password hashes, sessions) and the uploads: owner-only.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES["default"].setdefault("OPTIONS", {}).update({"charset": "utf8mb4"})
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TEST_DATABASE_NAME", f"test_{DATABASES['default']['NAME']}"),
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_unicode_ci",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several waitress threads write: wait up to 20 s for the lock instead of failing at once. A
    # transaction takes the write lock when it begins (IMMEDIATE): one that read first and then
    # wrote would get "database is locked" at once, as SQLite cannot wait there without deadlock.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The test database is a file too (in memory-backed /dev/shm where there is one): with SQLite's
    # in-memory default every thread of a test's live server shares one connection, where the
    # real server gives each thread its own, so two requests at once could break each other's
    # statements there and nowhere else.  Named after this checkout, so two checkouts do not meet.
    _shm = Path("/dev/shm")
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or str(
        (_shm if _shm.is_dir() and os.access(_shm, os.W_OK) else Path(tempfile.gettempdir()))
        / f"tumor-test-{hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:12]}.sqlite3")}
    _sqlite = DATABASES["default"]["NAME"]
    if _sqlite and _sqlite != ":memory:" and not str(_sqlite).startswith("file:"):
        # Create the file owner-only before SQLite does (it would use the umask, often 0644);
        # its journal and WAL files copy these permissions.
        try:
            os.close(os.open(_sqlite, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(_sqlite, 0o600)
        except OSError:
            pass  # read-only or foreign file: SQLite reports what matters when it opens it

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "TumorApp.accounts.validators.PasswordWithoutUsernameValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "detect"
LOGOUT_REDIRECT_URL = "home"

# Login throttling: lock a username+IP pair after 5 failures for 15 minutes, and a whole address
# after 20 failures across any usernames (TumorApp/accounts/lockout.py).
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = "TumorApp.accounts.lockout.lockout_parameters"
AXES_USERNAME_CALLABLE = "TumorApp.accounts.lockout.client_username"
LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "20"))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Our lockout page says when the lockout ends and names `manage.py unlock`.
AXES_LOCKOUT_CALLABLE = "TumorApp.accounts.lockout.lockout_response"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from static/ too, so the app works before (or without) collectstatic.
WHITENOISE_USE_FINDERS = True

# Uploads and result images: outside static/, generated names, served only through owner-checked views.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
try:
    MEDIA_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    MEDIA_ROOT.chmod(0o700)  # uploads are patient data: owner-only, also on older installations
except OSError:
    pass  # storage reports it on the first upload

# Upload limit, enforced from Content-Length before the body is read (middleware) and again by the form.
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_MB", "20")) * 1024 * 1024
# Room for the multipart envelope around the file (waitress, configured in serve.py, allows the same).
from Tumor import serve as _serve  # noqa: E402

MULTIPART_OVERHEAD_BYTES = _serve.MULTIPART_OVERHEAD
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 1 * 1024 * 1024  # non-file form fields
# Owner-only: uploads are patient data.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# Analyses running at once per process (each needs up to ~0.7 GiB at the pixel limit, bench/memory.py);
# a request waits this long for a slot, then gets a 503.
MAX_CONCURRENT_ANALYSES = int(os.environ.get("MAX_CONCURRENT_ANALYSES", "2"))
ANALYSIS_QUEUE_SECONDS = float(os.environ.get("ANALYSIS_QUEUE_SECONDS", "60"))
# Saved outlines kept per analysis, the network's version 0 included: a new correction removes
# the oldest ones beyond this (services._prune_versions), never version 0 nor the current one.
MASK_VERSIONS_KEPT = int(os.environ.get("MASK_VERSIONS_KEPT", "20"))
# Orphan files (a server killed between writing files and committing) are removed at start and
# then every ORPHAN_SWEEP_MINUTES by the serving process; files younger than the grace period are
# left alone, as they may belong to a request in flight.
ORPHAN_SWEEP_MINUTES = float(os.environ.get("ORPHAN_SWEEP_MINUTES", "60"))
ORPHAN_GRACE_MINUTES = float(os.environ.get("ORPHAN_GRACE_MINUTES", "60"))
# Whole CT series (issue 11): one request may carry up to 1000 slices or one zip/NIfTI.
MAX_SERIES_UPLOAD_BYTES = int(os.environ.get("MAX_SERIES_UPLOAD_MB", "600")) * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1001
# A running series job whose worker has not beaten for this long is re-queued.
SERIES_STALE_SECONDS = float(os.environ.get("SERIES_STALE_SECONDS", "60"))
# A job whose worker died on this many attempts fails instead of being re-queued again.
SERIES_MAX_ATTEMPTS = int(os.environ.get("SERIES_MAX_ATTEMPTS", "3"))
# Where series jobs wait: "database" (the default: `manage.py series_worker`, started by run.sh, polls
# the SeriesJob table) or "celery" (Celery workers on any number of machines, through the broker at
# CELERY_BROKER_URL; Tumor/celery.py, docs/series.md).
SERIES_QUEUE = os.environ.get("SERIES_QUEUE", "database").strip().lower()
if SERIES_QUEUE not in {"database", "celery"}:
    raise ImproperlyConfigured(f"SERIES_QUEUE must be 'database' or 'celery', not {SERIES_QUEUE!r}")
# Read by Tumor/celery.py only (namespace CELERY_), so unused in the database mode.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Redis hands a message that is not yet acknowledged (its job still running) to another worker after
# this long: above the longest job (1000 slices), so that only a dead worker's message comes back.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "7200"))}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One job at a time per worker process, and no message waits behind a running job in that worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # the SeriesJob row holds status, progress and result
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # LOGGING below applies to the worker too

# PACS over DICOMweb (issue 19, TumorApp/pacs/): unset DICOMWEB_URL means no PACS (the pages say so).
DICOMWEB_URL = os.environ.get("DICOMWEB_URL", "").strip().rstrip("/")
DICOMWEB_USERNAME = os.environ.get("DICOMWEB_USERNAME", "")
DICOMWEB_PASSWORD = os.environ.get("DICOMWEB_PASSWORD", "")
DICOMWEB_CA_FILE = os.environ.get("DICOMWEB_CA_FILE", "").strip()  # a PEM bundle for a private CA
DICOMWEB_TIMEOUT = float(os.environ.get("DICOMWEB_TIMEOUT", "30"))  # seconds a search may take, in all
DICOMWEB_RETRIEVE_TIMEOUT = float(os.environ.get("DICOMWEB_RETRIEVE_TIMEOUT", "600"))  # seconds a retrieve may take
PACS_MAX_CALLS = int(os.environ.get("PACS_MAX_CALLS", "4"))  # PACS calls at once per process; more are refused
# Send SEG, SR and key image back to the PACS when a series that came from it is analysed.
PACS_AUTO_SEND = _env_bool("PACS_AUTO_SEND")
# The optional DICOM listener (`manage.py dicom_listener`, off unless started): a C-STORE SCP whose received
# CT series are queued for DICOM_LISTENER_USER.  127.0.0.1 by default; 0.0.0.0 to let modalities reach it.
DICOM_LISTENER_AET = os.environ.get("DICOM_LISTENER_AET", "TUMORAPP")
DICOM_LISTENER_HOST = os.environ.get("DICOM_LISTENER_HOST", "127.0.0.1")
DICOM_LISTENER_PORT = int(os.environ.get("DICOM_LISTENER_PORT", "11112"))
DICOM_LISTENER_USER = os.environ.get("DICOM_LISTENER_USER", "admin")
# Who may send: the calling AE titles allowed (comma-separated); the listener will not start without.
DICOM_LISTENER_CALLING_AETS = [a for a in os.environ.get("DICOM_LISTENER_CALLING_AETS", "").split(",") if a.strip()]
# Budgets: images per association, MiB per association and for all open associations together,
# series queued per hour (each image is also held to the upload's per-file budget).
DICOM_LISTENER_MAX_INSTANCES = int(os.environ.get("DICOM_LISTENER_MAX_INSTANCES", "2000"))
DICOM_LISTENER_MAX_ASSOCIATION_MB = int(os.environ.get("DICOM_LISTENER_MAX_ASSOCIATION_MB", "2048"))
DICOM_LISTENER_DISK_MB = int(os.environ.get("DICOM_LISTENER_DISK_MB", "4096"))
DICOM_LISTENER_SERIES_PER_HOUR = int(os.environ.get("DICOM_LISTENER_SERIES_PER_HOUR", "60"))

# Security: cookies, headers. HTTPS-only settings switch on with HTTPS=1 (behind a TLS proxy).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_HOURS", "10")) * 3600  # about one working day
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "TumorApp.error_views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
if _env_bool("HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Opt-in only: they bind every subdomain (and, for preload, browsers for months) to HTTPS.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = _env_bool("HSTS_PRELOAD", False)

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "axes": {"level": "WARNING"},
                # highdicom logs every attribute it copies into a DICOM-SEG at INFO.
                "highdicom": {"level": "WARNING"}},
}
