"""Proving Ground settings, read from the environment (django-environ).

Every variable the code reads is listed in `.env.example`. With nothing set, the platform
runs on its embedded default: an SQLite file and local files under `var/`, debug on.
Production sets `DJANGO_DEBUG=false`, and then `DJANGO_SECRET_KEY` has no default: a missing
one fails loudly at start-up instead of running with a known key.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PG_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)  # optional; the real environment wins

DEBUG = env.bool("DJANGO_DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-not-for-production")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: ImproperlyConfigured when missing

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "core",
    "teleop",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "core.middleware.RejectNulBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"
ASGI_APPLICATION = "core.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
# A PostgreSQL restart must not turn pooled connections into 500s (design.md, known traps).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serializes writers; wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Files ----------------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("PG_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = Path(env.str("PG_STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_URL = "/static/"
# Filled by the set-up (make): npm assets (scripts/vendor_assets.sh) and Rerun's web viewer
# copied out of the pinned rerun-sdk wheel (scripts/install_rerun_viewer.py).
# They are build outputs of the checkout, so they stay under its own var/ whatever PG_VAR_DIR
# says (a deployment that moved its state elsewhere collected no htmx, and every page was a
# 500); `manage.py check` says when they are missing (core/checks.py).
VENDOR_DIR = BASE_DIR / "var" / "vendor"
RERUN_VIEWER_ROOT = BASE_DIR / "var" / "rerun_viewer"
STATICFILES_DIRS = [VENDOR_DIR, RERUN_VIEWER_ROOT]
for _directory in STATICFILES_DIRS:
    _directory.mkdir(parents=True, exist_ok=True)
# Episode files, `.rrd` recordings and exports: local files under MEDIA_ROOT, or an
# S3-compatible object store (docs/storage.md). On S3 the pages and the API answer downloads
# and replays with a short-lived presigned URL, so the bytes never pass through Django.
FILE_STORAGE_BACKEND = env.str(
    "PG_FILE_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
)
FILE_STORAGE_OPTIONS = {}
if FILE_STORAGE_BACKEND.startswith("storages.backends.s3"):
    FILE_STORAGE_OPTIONS = {
        "bucket_name": env.str("PG_S3_BUCKET"),  # no default: required on S3
        "endpoint_url": env.str("PG_S3_ENDPOINT_URL", default="") or None,  # None: AWS
        "region_name": env.str("PG_S3_REGION", default="") or None,
        # "path" for most self-hosted stores (MinIO, Ceph); None lets boto3 choose.
        "addressing_style": env.str("PG_S3_ADDRESSING_STYLE", default="") or None,
        "signature_version": "s3v4",
        "querystring_auth": True,  # url() signs: objects stay private
        "querystring_expire": env.int("PG_S3_URL_EXPIRY_S", default=300),
        "default_acl": None,  # the bucket's own policy decides; objects are never public
        "file_overwrite": False,  # a taken key gets a new name instead of being replaced
    }
    from boto3.s3.transfer import TransferConfig

    # An upload chunk (at most 16 MiB) goes up as one PUT streamed from its scratch file:
    # boto3's default multipart above 8 MiB held two 8 MiB parts in memory per chunk, which
    # took a web process past 300 MiB (bench/bench_upload.py --storage s3). Episode files and
    # exports above 64 MiB still go in 16 MiB parts, four at a time.
    FILE_STORAGE_OPTIONS["transfer_config"] = TransferConfig(
        multipart_threshold=64 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4
    )
    # Without keys, boto3 finds credentials itself (AWS_* variables, an instance role).
    if env.str("PG_S3_ACCESS_KEY_ID", default=""):
        FILE_STORAGE_OPTIONS["access_key"] = env.str("PG_S3_ACCESS_KEY_ID")
        FILE_STORAGE_OPTIONS["secret_key"] = env.str("PG_S3_SECRET_ACCESS_KEY")
STORAGES = {
    "default": {"BACKEND": FILE_STORAGE_BACKEND, "OPTIONS": FILE_STORAGE_OPTIONS},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}
# JSON bodies above this are refused with 413 before they are parsed (uploads have their own
# endpoint and limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("PG_MAX_JSON_BODY_BYTES", default=1 * 1024 * 1024)

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes counts failed sign-ins (the sign-in page and the admin's) in the database, so
# every process sees the same count: after PG_LOGIN_FAILURE_LIMIT failures for one username
# from one address, that pair is locked out for PG_LOGIN_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("PG_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("PG_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# Behind the TLS proxy the client's address is the proxy's unless it is read from
# X-Forwarded-For: set PG_TRUSTED_PROXY_COUNT to the number of proxies in front of Django.
AXES_IPWARE_PROXY_COUNT = env.int("PG_TRUSTED_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if AXES_IPWARE_PROXY_COUNT else ("REMOTE_ADDR",)
)

# --- E-mail (password reset) ----------------------------------------------------------------
# EMAIL_URL as django-environ reads it: smtp+tls://user:password@smtp.example.org:587,
# smtps://..., consolemail:// (print to the console: the default with DEBUG on).
# An empty value (a copied .env.example) counts as unset.
_email_url = env.str("EMAIL_URL", default="") or (
    "consolemail://" if DEBUG else "smtp://localhost:25"
)
# Lowercase, so no debug page lists it with its password; EMAIL_HOST_PASSWORD is masked.
vars().update(env.email_url_config(_email_url))
DEFAULT_FROM_EMAIL = (
    env.str("DEFAULT_FROM_EMAIL", default="") or "Proving Ground <noreply@localhost>"
)
SERVER_EMAIL = env.str("SERVER_EMAIL", default="") or DEFAULT_FROM_EMAIL

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
FORMAT_MODULE_PATH = ["core.formats"]  # dates and times written one way on every page
USE_I18N = True
USE_TZ = True

# --- Security (production values unless debug) ----------------------------------------------
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz/"]  # load balancers probe over plain HTTP
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.authentication.RobotAPIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Default deny: every view states who may use it.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.ErrorDocumentingAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.api.throttling.PrincipalRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "robot": env.str("PG_THROTTLE_ROBOT", default="6000/min"),
        "user": env.str("PG_THROTTLE_USER", default="3000/min"),
        "anon": env.str("PG_THROTTLE_ANON", default="120/min"),
        "keys": env.str("PG_THROTTLE_KEYS", default="60/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Proving Ground API",
    "DESCRIPTION": (
        "Robot evaluation and teleoperation data platform. Robots authenticate with "
        "`Authorization: Api-Key <key>`; people with a session cookie and CSRF token."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",  # tags operations by resource, not "v1"
    # Error answers are documented by core.api.schema.ErrorDocumentingAutoSchema.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.exclusive_blank_strings",
    ],
    # One name per choice set, so clients get stable enum names.
    "ENUM_NAME_OVERRIDES": {
        "RobotStatusEnum": "core.models.Robot.Status",
        "SessionStatusEnum": "teleop.models.Session.Status",
        "SessionKindEnum": "teleop.models.Session.Kind",
        "EpisodeStateEnum": "teleop.models.Episode.State",
        "LabelOutcomeEnum": "teleop.models.Label.Outcome",
        "ExportStateEnum": "teleop.models.DatasetExport.State",
        "TrialStateEnum": "evaluation.models.Trial.State",
        "TrialOutcomeEnum": "evaluation.models.Outcome",
        "OutcomeSourceEnum": "evaluation.models.OutcomeSource",
        "CampaignStatusEnum": "evaluation.models.Campaign.Status",
    },
}

# --- Background jobs ------------------------------------------------------------------------
# Django's task framework (the django-tasks backport) with its database backend: jobs are rows,
# `manage.py worker` runs them, so the embedded default needs no broker. Faults (docs/jobs.md):
# workers write a heartbeat; a job whose worker has been silent longer than DEAD_AFTER is
# queued again by the live workers, at most MAX_ATTEMPTS claims in all.
TASKS = {
    "default": {
        "BACKEND": env.str("PG_TASK_BACKEND", default="django_tasks_db.DatabaseBackend"),
    }
}
JOB_WORKER_HEARTBEAT_S = env.float("PG_WORKER_HEARTBEAT_S", default=5.0)
JOB_WORKER_DEAD_AFTER_S = env.float("PG_WORKER_DEAD_AFTER_S", default=60.0)
JOB_REAP_INTERVAL_S = env.float("PG_JOB_REAP_INTERVAL_S", default=15.0)
JOB_MAX_ATTEMPTS = env.int("PG_JOB_MAX_ATTEMPTS", default=5)
JOB_RECONNECT_MAX_S = env.float("PG_WORKER_RECONNECT_MAX_S", default=30.0)

# --- Recording ------------------------------------------------------------------------------
# Uploads are stateless: each chunk is stored as its own object in the default storage and the
# file's SHA-256 state travels on the upload row (docs/deploy.md). A chunk leases its upload
# for this long, renewed while bytes keep arriving; a web process that died mid-chunk blocks
# the upload for at most this long.
UPLOAD_CHUNK_LEASE_S = env.int("PG_UPLOAD_CHUNK_LEASE_S", default=30)
# Releases before stateless uploads staged files here; read only for episodes that completed
# their upload before the upgrade.
UPLOAD_STAGING_DIR = Path(env.str("PG_UPLOAD_STAGING_DIR", default=str(VAR_DIR / "uploads")))
MAX_EPISODE_BYTES = env.int("PG_MAX_EPISODE_BYTES", default=20 * 1024**3)
MAX_UPLOAD_CHUNK_BYTES = 16 * 1024**2
UPLOAD_EXPIRY_HOURS = env.int("PG_UPLOAD_EXPIRY_HOURS", default=72)
# The validator runs in a child process with these limits.
VALIDATOR_MEMORY_MB = env.int("PG_VALIDATOR_MEMORY_MB", default=1024)
VALIDATOR_TIMEOUT_S = env.int("PG_VALIDATOR_TIMEOUT_S", default=600)

# An operator's access archive (docs/privacy.md) is deleted this long after it was asked for,
# downloaded or not.
ACCESS_ARCHIVE_TTL_HOURS = env.int("PG_ACCESS_ARCHIVE_TTL_HOURS", default=7 * 24)

IDEMPOTENCY_KEY_TTL_HOURS = env.int("PG_IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# A request holds its Idempotency-Key this long at most: past it, the claim is taken to have
# died with its request (a killed worker, a database outage) and a retry runs it again.
IDEMPOTENCY_IN_FLIGHT_LEASE_S = env.int("PG_IDEMPOTENCY_IN_FLIGHT_LEASE_S", default=30)

# Throttle counters live here, so it must be one cache for every process and machine: by
# default the database's (a table made by `createcachetable`, which `migrate` runs too), or
# Redis with PG_CACHE_URL=redis://host:6379/0. A per-process cache (locmemcache://) would let
# each gunicorn worker count on its own.
CACHES = {
    "default": env.cache_url("PG_CACHE_URL", default="dbcache://pg_cache"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # Our loggers and Django's at PG_LOG_LEVEL; the root logger (third-party code that logs
    # through it, like scipy's optimizer chatter at INFO) at WARNING.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"level": env.str("PG_LOG_LEVEL", default="INFO")}
        for name in ("core", "teleop", "evaluation", "django", "django_tasks", "django_tasks_db")
    },
}
