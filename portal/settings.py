"""Lanyard settings: every knob from the environment (docs/architecture.md §4, documented in
.env.example).

With ENTRA_TENANT_ID unset the portal runs in demo mode: SQLite, an embedded Celery broker and
graphsim's demo tenant, with no configuration at all. Production sets the Entra and service
variables. Both run the same code path; only these values differ.

Values are read by small strict helpers. A value that cannot be read (a boolean that is neither
true nor false, a number that is not a number) does not crash the import: it is recorded in
CONFIG_PROBLEMS and reported by the system check `lanyard.E001` with the variable's name, like every
other misconfiguration (portal/checks.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

from graphsim import demo

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LANYARD_VAR_DIR") or BASE_DIR / "var")

# (variable, problem) pairs found while reading the environment; see portal/checks.py.
CONFIG_PROBLEMS: list[tuple[str, str]] = []

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """NAME, or the contents of the file named by NAME_FILE (for secrets mounted as files)."""
    value = os.environ.get(name)
    if value is not None:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            CONFIG_PROBLEMS.append((f"{name}_FILE", f"cannot read {path}: {exc.strerror}"))
    return default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    CONFIG_PROBLEMS.append((name, f"{value!r} is neither true nor false (use 1/0, true/false)"))
    return default


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        CONFIG_PROBLEMS.append((name, f"{value!r} is not a whole number"))
        return default
    if minimum is not None and number < minimum:
        CONFIG_PROBLEMS.append((name, f"{number} is below the minimum of {minimum}"))
        return default
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# --- Mode ------------------------------------------------------------------------------------

ENTRA_TENANT_ID = env_str("ENTRA_TENANT_ID")
DEMO_MODE = not ENTRA_TENANT_ID
if DEMO_MODE:
    ENTRA_TENANT_ID = demo.DEMO_TENANT_ID

DEBUG = env_bool("DEBUG", False)

# Demo mode has fixed, public, non-secret defaults so it boots with no .env; production must set
# SECRET_KEY and VAULT_KEYS (checked by lanyard.E002 / lanyard.E003).
_DEMO_SECRET_KEY = "demo-only-insecure-secret-key-set-SECRET_KEY-in-production"
_DEMO_VAULT_KEY = "ZGVtby1vbmx5LXZhdWx0LWtleS1ub3QtZm9yLXByb2Q="
# Django refuses to start with an empty SECRET_KEY, before any check could name the problem; a
# placeholder lets lanyard.E002 report it instead (and portal/wsgi.py refuses to serve with it).
SECRET_KEY_MISSING = "unset-SECRET_KEY-lanyard-refuses-to-serve-with-this-placeholder"
SECRET_KEY = env_str("SECRET_KEY", _DEMO_SECRET_KEY if DEMO_MODE else SECRET_KEY_MISSING)
VAULT_KEYS = env_list("VAULT_KEYS", _DEMO_VAULT_KEY if DEMO_MODE else "")

# How long the vault keeps a QR payload for printing, and an unrevealed PIN (docs/architecture.md
# §5).
VAULT_QR_PAYLOAD_DAYS = env_int("VAULT_QR_PAYLOAD_DAYS", 7, minimum=1)
VAULT_PIN_HOURS = env_int("VAULT_PIN_HOURS", 72, minimum=1)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Entra and Graph -------------------------------------------------------------------------

# In demo mode graphsim is both: `make run` starts it on GRAPHSIM_PORT (default 8443).
_DEMO_GRAPHSIM_URL = (
    demo.demo_graphsim_url(env_int("GRAPHSIM_PORT", demo.DEMO_GRAPHSIM_PORT, minimum=1))
    if DEMO_MODE
    else ""
)
ENTRA_AUTHORITY_HOST = env_str(
    "ENTRA_AUTHORITY_HOST",
    _DEMO_GRAPHSIM_URL if DEMO_MODE else "https://login.microsoftonline.com",
).rstrip("/")
GRAPH_ENDPOINT = env_str(
    "GRAPH_ENDPOINT", _DEMO_GRAPHSIM_URL if DEMO_MODE else "https://graph.microsoft.com"
).rstrip("/")
ENTRA_CLIENT_ID = env_str("ENTRA_CLIENT_ID", demo.DEMO_CLIENT_ID if DEMO_MODE else "")
ENTRA_CLIENT_SECRET = env_str("ENTRA_CLIENT_SECRET", demo.DEMO_CLIENT_SECRET if DEMO_MODE else "")
ENTRA_CLIENT_CERTIFICATE = env_str("ENTRA_CLIENT_CERTIFICATE")
LANYARD_ADMIN_GROUP_ID = env_str(
    "LANYARD_ADMIN_GROUP_ID", demo.DEMO_ADMIN_GROUP_ID if DEMO_MODE else ""
)
GRAPH_WRITES_PER_SECOND = env_int("GRAPH_WRITES_PER_SECOND", 20, minimum=1)
GRAPH_TIMEOUT_SECONDS = env_int("GRAPH_TIMEOUT_SECONDS", 30, minimum=1)
# The resource Graph tokens are issued for. graphsim issues tokens for the global Graph resource, as
# Entra does, so the demo asks for the same scopes as production in the global cloud.
GRAPH_RESOURCE = "https://graph.microsoft.com" if DEMO_MODE else GRAPH_ENDPOINT
# Delegated scopes a manager consents to at sign-in: the delegated column of README.md's permission
# table (docs/graph-contract.md §11, §12).
ENTRA_DELEGATED_SCOPES = [
    f"{GRAPH_RESOURCE}/{scope}"
    for scope in (
        "User.Read",
        "AdministrativeUnit.Read.All",
        "RoleManagement.Read.Directory",
        "UserAuthMethod-QR.ReadWrite.All",
        "UserAuthMethod-Phone.ReadWrite.All",
        "UserAuthenticationMethod.Read.All",
    )
]
LANYARD_DEFAULT_REGION = env_str("LANYARD_DEFAULT_REGION", "US").upper()

# --- Services --------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'lanyard.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    CONFIG_PROBLEMS.append(("DATABASE_URL", str(exc)))
    DATABASES = {"default": dj_database_url.parse(f"sqlite:///{VAR_DIR / 'lanyard.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and scheduler share the SQLite file in demo mode: wait on locks, don't fail.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
BROKER_FOLDER = VAR_DIR / "broker"
if BROKER_IS_FILESYSTEM:
    # kombu's filesystem transport: an embedded broker with no server, for the demo.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_FOLDER / "messages"),
        "data_folder_out": str(BROKER_FOLDER / "messages"),
        "control_folder": str(BROKER_FOLDER / "control"),
        "store_processed": False,
    }
else:
    # Must exceed the longest task (CELERY_TASK_TIME_LIMIT) so Redis never re-delivers a task that
    # is still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "sync-directory": {"task": "provisioning.sync_directory", "schedule": 3600.0},
    "vault-purge-expired": {"task": "provisioning.vault_purge_expired", "schedule": 600.0},
}

# One Graph write budget shared by every worker: Redis when the broker is Redis, else a file.
GRAPH_RATE_LIMITER_URL = env_str(
    "GRAPH_RATE_LIMITER_URL",
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'graph-rate-limit'}",
)

# --- Django ----------------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "portal",
    "provisioning",
    "badges",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "portal:sign-in"

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
                "django.template.context_processors.csp",
                "portal.context_processors.lanyard",
            ],
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the source folders when collectstatic has not run (demo and tests).
WHITENOISE_USE_FINDERS = DEMO_MODE or DEBUG

# --- Security (docs/architecture.md §5 "Web")
# --------------------------------------------------------------

SESSION_COOKIE_AGE = 8 * 3600  # one shift
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
# Production is served over HTTPS behind the company's proxy; the demo on http://127.0.0.1.
HTTPS = env_bool("HTTPS", not DEMO_MODE)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload commits the company's whole domain to HTTPS in browsers' built-in lists: that is
    # the company's decision for its domain, not this application's.
    "security.W021",
]
# No inline script or style anywhere: htmx and every script are served from static/.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF, ENTRA_AUTHORITY_HOST],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # urllib3 logs full URLs at DEBUG; keep it quiet so nothing request-shaped leaks.
        "urllib3": {"level": "WARNING"},
        "msal": {"level": "WARNING"},
    },
}

# --- Badges and kiosks ---------------------------------------------------------------------------

# A kiosk pairing code works once, for this many minutes (badges/kiosks.py).
KIOSK_PAIRING_MINUTES = env_int("KIOSK_PAIRING_MINUTES", 15, minimum=1)
# How long a kiosk's device credential (its cookie) lasts before it must be paired again.
KIOSK_CREDENTIAL_DAYS = env_int("KIOSK_CREDENTIAL_DAYS", 365, minimum=1)
KIOSK_COOKIE_NAME = "lanyard_kiosk"
# Close sheets not printed in time and destroy their QR payloads.
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "badges-print-jobs-expire": {"task": "badges.print_jobs_expire", "schedule": 600.0},
}

# --- Bulk jobs ---
# Limits of an upload, and how the engine works rows (provisioning/bulk/engine.py): chunk = one
# $batch; a claimed row's lease, after which the sweeper gives it to another task; a job with no
# progress for BULK_STALL_SECONDS gets new tasks.
BULK_MAX_UPLOAD_BYTES = env_int("BULK_MAX_UPLOAD_BYTES", 5 * 1024 * 1024, minimum=1024)
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", 50_000, minimum=1)
BULK_CHUNK_ROWS = env_int("BULK_CHUNK_ROWS", 20, minimum=1)
BULK_PARALLEL_TASKS = env_int("BULK_PARALLEL_TASKS", 4, minimum=1)
BULK_LEASE_SECONDS = env_int("BULK_LEASE_SECONDS", 180, minimum=5)
BULK_STALL_SECONDS = env_int("BULK_STALL_SECONDS", 240, minimum=5)
BULK_TASK_SECONDS = env_int("BULK_TASK_SECONDS", 60, minimum=1)
BULK_MAX_ATTEMPTS = env_int("BULK_MAX_ATTEMPTS", 12, minimum=1)
BULK_BACKOFF_MAX_SECONDS = env_int("BULK_BACKOFF_MAX_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "bulk-jobs-sweep": {"task": "provisioning.bulk_jobs_sweep", "schedule": 30.0},
}
