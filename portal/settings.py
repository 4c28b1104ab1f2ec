"""Lanyard settings: every knob from the environment (docs/architecture.md §4, documented in
.env.example).

Demo mode is an explicit choice, LANYARD_DEMO=true (`make run` without ENTRA_TENANT_ID, and the test
suite, set it): SQLite, an embedded Celery broker and graphsim's demo tenant, with no other
configuration. Production sets the Entra and service variables; outside demo mode the system
checks refuse to start with DEBUG on, the published demo SECRET_KEY or VAULT_KEYS, no
ENTRA_TENANT_ID, or HTTPS off (unless HTTPS_ALLOW_OFF=true) — portal/checks.py. Both run the same
code path; only these values differ.

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
from kombu import Queue

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

DEMO_MODE = env_bool("LANYARD_DEMO", False)
ENTRA_TENANT_ID = env_str("ENTRA_TENANT_ID")
if DEMO_MODE:
    if ENTRA_TENANT_ID:
        CONFIG_PROBLEMS.append(
            ("LANYARD_DEMO", "is true while ENTRA_TENANT_ID is set: unset one of them")
        )
    ENTRA_TENANT_ID = demo.DEMO_TENANT_ID

DEBUG = env_bool("DEBUG", False)

# Demo mode has fixed, public, non-secret defaults so it boots with no .env; production must set
# SECRET_KEY and VAULT_KEYS (checked by lanyard.E002 / lanyard.E003), and never to these published
# values (lanyard.E011 / lanyard.E012).
DEMO_SECRET_KEY = "demo-only-insecure-secret-key-set-SECRET_KEY-in-production"
DEMO_VAULT_KEY = "ZGVtby1vbmx5LXZhdWx0LWtleS1ub3QtZm9yLXByb2Q="
# Django refuses to start with an empty SECRET_KEY, before any check could name the problem; a
# placeholder lets lanyard.E002 report it instead (and portal/wsgi.py refuses to serve with it).
SECRET_KEY_MISSING = "unset-SECRET_KEY-lanyard-refuses-to-serve-with-this-placeholder"
SECRET_KEY = env_str("SECRET_KEY", DEMO_SECRET_KEY if DEMO_MODE else SECRET_KEY_MISSING)
VAULT_KEYS = env_list("VAULT_KEYS", DEMO_VAULT_KEY if DEMO_MODE else "")

# How long the vault keeps a QR payload for printing, and an unrevealed PIN (docs/architecture.md
# §5).
VAULT_QR_PAYLOAD_DAYS = env_int("VAULT_QR_PAYLOAD_DAYS", 7, minimum=1)
VAULT_PIN_HOURS = env_int("VAULT_PIN_HOURS", 72, minimum=1)
# Who may draw a QR code from its payload, and for how long (docs/architecture.md §5, "QR
# payloads"): a manager reads only payloads they created, for this many minutes after creating
# them (preview, badge PDF, putting it on a sheet); a sheet then lives until printed once.
QR_PAYLOAD_VIEW_MINUTES = env_int("QR_PAYLOAD_VIEW_MINUTES", 60, minimum=1)

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
# Graph's resource units per 10 s for this app and tenant (docs/graph-contract.md §7.3): 3,500 for
# a tenant under 50 users, 5,000 up to 500, 8,000 above. Graph does not say which tier a tenant is
# in, so the default is the smallest (never throttled); set 8,000 for a large tenant.
GRAPH_READ_UNITS_PER_10S = env_int("GRAPH_READ_UNITS_PER_10S", 3500, minimum=1000)
GRAPH_TIMEOUT_SECONDS = env_int("GRAPH_TIMEOUT_SECONDS", 30, minimum=1)
# The Graph resource of this cloud: the audience of Lanyard's tokens and the prefix of every scope,
# app and delegated (docs/graph-contract.md §8.4). Unset, it is derived from ENTRA_AUTHORITY_HOST
# (and GRAPH_ENDPOINT for GCC High vs DoD); set it when both are reached through a proxy. graphsim
# issues tokens for the global Graph resource, as Entra does, so the demo names it.
GRAPH_RESOURCE = env_str("GRAPH_RESOURCE", demo.DEMO_GRAPH_RESOURCE if DEMO_MODE else "").rstrip(
    "/"
)
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
# Store managers' work — single actions (operation_run) and their jobs — has its own queue, so a
# long IT admin bulk job queued first does not make a manager wait. A worker started without -Q
# consumes both queues; `-Q manager` starts one reserved for managers (docker-compose.yml's
# `worker-manager`), so a manager is not kept waiting while every other process works on bulk.
MANAGER_JOBS_QUEUE = env_str("MANAGER_JOBS_QUEUE", "manager")
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue(MANAGER_JOBS_QUEUE))
CELERY_TASK_ROUTES = {"provisioning.operation_run": {"queue": MANAGER_JOBS_QUEUE}}
CELERY_BEAT_SCHEDULE = {
    "sync-directory": {"task": "provisioning.sync_directory", "schedule": 3600.0},
    "vault-purge-expired": {"task": "provisioning.vault_purge_expired", "schedule": 600.0},
    # Expired sessions and the token caches of people no longer signed in (portal/tasks.py).
    "sessions-clear": {"task": "portal.sessions_clear", "schedule": 3600.0},
    # MFA coverage for the insights page, once a day (the report has low limits).
    "mfa-coverage-snapshot": {"task": "provisioning.mfa_coverage_snapshot", "schedule": 86400.0},
}

# One Graph write budget shared by every worker: Redis when the broker is Redis, else a file.
GRAPH_RATE_LIMITER_URL = env_str(
    "GRAPH_RATE_LIMITER_URL",
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'graph-rate-limit'}",
)

# Throttle counters (portal/http.py) must be shared by every web process: the "shared" cache is
# Redis when the broker is Redis, else a table in the database (created by migration portal 0004,
# so `migrate` is enough). "default" stays per process: what it holds (the QR policy) may be a
# little stale, and reading it costs no query.
CACHE_TABLE = "lanyard_cache"
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _SHARED_CACHE = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CELERY_BROKER_URL,
    }
else:
    _SHARED_CACHE = {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": CACHE_TABLE,
    }
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": _SHARED_CACHE,
}
# How many reverse proxies in front of Lanyard append to X-Forwarded-For. The client address is the
# entry that many places from the right; 0 means REMOTE_ADDR (no proxy). Entries further left were
# written by the client and are never trusted (portal/http.py `client_address`).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

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
    "portal.middleware.SessionLifetimeMiddleware",
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

SESSION_COOKIE_AGE = 8 * 3600  # one shift after the session was last written (sliding)
# Hours after sign-in when a session ends however active it was (portal/middleware.py).
SESSION_ABSOLUTE_HOURS = env_int("SESSION_ABSOLUTE_HOURS", 12, minimum=1)
# Minutes after which an IT admin's group membership is re-read for their next request.
ROLES_RECHECK_MINUTES = env_int("ROLES_RECHECK_MINUTES", 5, minimum=1)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
# Production is served over HTTPS behind the company's proxy; the demo on http://127.0.0.1.
HTTPS = env_bool("HTTPS", not DEMO_MODE)
# HTTPS=false outside demo mode is refused (lanyard.E013) unless this says it is on purpose (e.g. a
# proxy that terminates TLS and cannot send X-Forwarded-Proto; cookies are then not Secure).
HTTPS_ALLOW_OFF = env_bool("HTTPS_ALLOW_OFF", False)
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
    # Sign-out posts a form whose answer redirects to Entra's end_session_endpoint: the browser
    # checks that redirect against form-action. In demo mode graphsim's pages are on a plain-HTTP
    # port of their own (scripts/run-demo).
    "form-action": [CSP.SELF, ENTRA_AUTHORITY_HOST]
    + (
        [f"http://127.0.0.1:{env_int('GRAPHSIM_BROWSER_PORT', 8444, minimum=1)}"]
        if DEMO_MODE
        else []
    ),
}

# Error reports (DEBUG pages, mailed 500s) hide connection URLs and secrets
# (portal/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.error_reports.SecretsHidingExceptionReporterFilter"

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

# Progress polling (docs/architecture.md §11.1): a manager's action polls its status fragment
# every 150 ms while it is young, backing off to once a second (portal/templatetags/polling.py);
# OPERATION_POLL_FIXED restores the fixed 1 s poll (the baseline of bench/click_to_pin.py).
OPERATION_POLL_FIXED = env_bool("OPERATION_POLL_FIXED", False)
# How often a kiosk's print queue polls for new sheets, in seconds: a manager standing at the
# printer sees a sheet within about this long.
KIOSK_POLL_SECONDS = env_int("KIOSK_POLL_SECONDS", 1, minimum=1)

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
# $batch; a claimed row's lease, renewed by its live task every BULK_HEARTBEAT_SECONDS, after which
# another task takes the row over (its holder died); a job whose tasks have not reported for three
# heartbeats gets new tasks (the sweep runs every two heartbeats).
BULK_MAX_UPLOAD_BYTES = env_int("BULK_MAX_UPLOAD_BYTES", 5 * 1024 * 1024, minimum=1024)
# Request bodies: form fields (not files) at most Django's default 2.5 MB; an accepted upload is
# kept in memory (never spooled to disk). The upload view caps the body before reading it
# (portal/http.py CappedUploadHandler); the proxy in front should cap it too (README).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = BULK_MAX_UPLOAD_BYTES
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", 50_000, minimum=1)
BULK_CHUNK_ROWS = env_int("BULK_CHUNK_ROWS", 20, minimum=1)
BULK_PARALLEL_TASKS = env_int("BULK_PARALLEL_TASKS", 4, minimum=1)
BULK_LEASE_SECONDS = env_int("BULK_LEASE_SECONDS", 15, minimum=5)
BULK_HEARTBEAT_SECONDS = env_int("BULK_HEARTBEAT_SECONDS", 1, minimum=1)
BULK_TASK_SECONDS = env_int("BULK_TASK_SECONDS", 60, minimum=1)
# A task hands over early when another job's rows have waited this long for a worker process, so
# jobs started together take turns (provisioning/bulk/engine.py `_another_job_waits`).
BULK_SHARE_SECONDS = env_int("BULK_SHARE_SECONDS", 5, minimum=1)
BULK_MAX_ATTEMPTS = env_int("BULK_MAX_ATTEMPTS", 12, minimum=1)
BULK_BACKOFF_MAX_SECONDS = env_int("BULK_BACKOFF_MAX_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "bulk-jobs-sweep": {
        "task": "provisioning.bulk_jobs_sweep",
        "schedule": 2.0 * BULK_HEARTBEAT_SECONDS,
        # A sweep not run in time is replaced by the next one: never let them pile up.
        "options": {"expires": 2.0 * BULK_HEARTBEAT_SECONDS},
    },
    # Phone pre-population: the task checks the schedule an IT admin sets (off by default) and
    # runs once a day at its hour (provisioning/bulk/prepopulation.py).
    "prepopulation-scheduled": {"task": "provisioning.prepopulation_scheduled", "schedule": 3600.0},
}
