"""Django settings for Imagery.

Every value comes from the environment (see `.env.example` and the README's configuration table) with a
default that is safe for a local run: SQLite and files under `data/`.
"""

import logging
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.caches import default_cache_from_env, redis_from_env
from config.databases import default_database_from_env
from config.env import BASE_DIR, env
from config.logs import log_format, log_level, logging_config
from config.networks import parse_networks
from config.storages import default_storage_from_env
from config.tasks import tasks_from_env

logger = logging.getLogger(__name__)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))

# production (the default: a server, the container) or development (what `make run`, `make test` and
# `make bench` set). They differ only where a server's safe default would stand in a developer's way.
IMAGERY_ENV = env.str("IMAGERY_ENV", default="production")
if IMAGERY_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"IMAGERY_ENV must be development or production, not {IMAGERY_ENV!r}.")
DEVELOPMENT = IMAGERY_ENV == "development"

DEBUG = env.bool("DEBUG", default=False)
if DEBUG and not DEVELOPMENT:
    raise ImproperlyConfigured(
        "DEBUG=true shows settings and tracebacks to anyone: only with IMAGERY_ENV=development."
    )

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEVELOPMENT:
        raise ImproperlyConfigured(
            "SECRET_KEY is required in production: set it in the environment, e.g. to the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(50))'`. For a local run, set "
            "IMAGERY_ENV=development instead (make run does)."
        )
    # A made-up key per process: nothing a local run signs needs to outlive it.
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins (scheme://host[:port]) whose form posts are trusted, e.g. https://images.example.com behind a proxy.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "django_prometheus",
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
    "images",
    "uploads",
    "events",
    "gallery",
]

MIDDLEWARE = [
    # First and last: django-prometheus times the whole stack between them.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # The request id, for every line logged below; then the probes, ahead of host checks and redirects.
    "api.request_log.RequestLogMiddleware",
    "api.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# /readyz answers 200 when each of these (name: a function taking nothing, returning True when it answers)
# does, 503 with each one's result otherwise (api/health.py).
READINESS_CHECKS = {
    "database": "api.health.database_ok",
    "storage": "images.storage.is_available",
}
# Told by /readyz beside the checks (name: a function taking nothing, returning what to say), without
# changing its status: a deep queue is news for an operator, not a reason to take a server out of rotation.
READINESS_REPORTS = {
    "queue": "api.task_queue.queue_report",
}

# `reconcile_storage` also runs these (label: a function taking `fix`, returning how many files it removed,
# or would remove without `fix`): what other apps keep in the file store and know how to sweep.
STORAGE_SWEEPS = {
    "partial upload chunks (expired, ended or never recorded)": "uploads.resumable.tus_partials_sweep",
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# --- Database ---------------------------------------------------------------------------------
# DATABASE_URL (default: SQLite in DATA_DIR), kept connections (CONN_MAX_AGE), and on PostgreSQL bounded
# waits (DATABASE_CONNECT_TIMEOUT, DATABASE_STATEMENT_TIMEOUT): config/databases.py.
DATABASES = {"default": default_database_from_env(DATA_DIR)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Tasks ----------------------------------------------------------------------------------------
# Work that leaves the request (Django's task API, the django-tasks backport): TASK_BACKEND=database (default;
# this database, `manage.py db_worker`), rq (TASK_REDIS_URL or REDIS_URL) or immediate (runs in the caller):
# config/tasks.py.
_tasks = tasks_from_env()
TASK_BACKEND = _tasks.backend
TASKS = _tasks.tasks
INSTALLED_APPS += _tasks.apps
RQ_QUEUES = _tasks.rq_queues
TASK_WORKER_ID = _tasks.worker_id
# `manage.py task_worker` also runs these every TASK_WORKER_SWEEP_SECONDS (0: never), in a thread of its own
# (label: a function taking no argument), so that one process serves the queue and what feeds it: the
# webhooks' relay enqueues deliveries a lost enqueue or a dead worker left (README "Webhooks").
TASK_WORKER_SWEEPS = {
    "webhook relay": "events.deliveries.relay",
}
TASK_WORKER_SWEEP_SECONDS = env.float("TASK_WORKER_SWEEP_SECONDS", default=10.0)
if not 0 <= TASK_WORKER_SWEEP_SECONDS <= 3600:
    raise ImproperlyConfigured("TASK_WORKER_SWEEP_SECONDS must be from 0 (never) to 3600 seconds.")

# --- Storage ------------------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
# Only needed for `collectstatic` (the image runs it at build time); without it, assets are served from the
# installed apps.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
STATIC_URL = "/static/"

STORAGES = {
    # STORAGE_BACKEND=filesystem (default: MEDIA_ROOT) or s3 (AWS_* variables): see config/storages.py.
    "default": default_storage_from_env(),
    # Collected (STATIC_ROOT): hashed names, precompressed, cached forever. Not collected (make run, tests):
    # served from the installed apps through the finders, with no `collectstatic` step first.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_ROOT
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
# Calls to the file store, per process (images/storage.py). A request that needs the store holds its thread
# while its call is under way and while it waits for a turn, so of a process's GUNICORN_THREADS threads at
# most STORAGE_MAX_CONCURRENCY make calls at once (default: half of them, rounded down, at least 1) and
# STORAGE_MAX_WAITING may wait for a turn (default: the rest but one). More wait only while calls keep
# beginning (the latest less than STORAGE_TURNOVER_SECONDS ago): a burst against a store that answers
# queues, and a store that hangs leaves one thread of each process for requests that need only the
# database. A request waits at most STORAGE_WAIT_SECONDS for its turn (and not at all while every call
# under way has been for longer: the store is stalled); after a failed call, every call fails at once (503)
# for STORAGE_RETRY_SECONDS. The S3 client's own timeouts: config/storages.py. GUNICORN_THREADS is
# deploy/gunicorn.conf.py's, read here with the same default.
GUNICORN_THREADS = env.int("GUNICORN_THREADS", default=4)
STORAGE_MAX_CONCURRENCY = env.int("STORAGE_MAX_CONCURRENCY", default=max(1, GUNICORN_THREADS // 2))
STORAGE_MAX_WAITING = env.int(
    "STORAGE_MAX_WAITING", default=max(0, GUNICORN_THREADS - 1 - STORAGE_MAX_CONCURRENCY)
)
STORAGE_TURNOVER_SECONDS = env.float("STORAGE_TURNOVER_SECONDS", default=0.1)
STORAGE_WAIT_SECONDS = env.float("STORAGE_WAIT_SECONDS", default=0.5)
STORAGE_RETRY_SECONDS = env.float("STORAGE_RETRY_SECONDS", default=1.0)
if (
    GUNICORN_THREADS < 1
    or STORAGE_MAX_CONCURRENCY < 1
    or STORAGE_MAX_WAITING < 0
    or STORAGE_TURNOVER_SECONDS < 0
    or STORAGE_WAIT_SECONDS < 0
    or STORAGE_RETRY_SECONDS < 0
):
    raise ImproperlyConfigured(
        "GUNICORN_THREADS and STORAGE_MAX_CONCURRENCY must be 1 or more; STORAGE_MAX_WAITING, "
        "STORAGE_TURNOVER_SECONDS, STORAGE_WAIT_SECONDS and STORAGE_RETRY_SECONDS 0 or more."
    )

# --- Uploads ------------------------------------------------------------------------------------
# Django's own limits do not bound file parts; our upload handler enforces IMAGE_MAX_UPLOAD_BYTES.
FILE_UPLOAD_HANDLERS = [
    "images.uploads.ImageUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- Images -------------------------------------------------------------------------------------
IMAGE_MAX_UPLOAD_BYTES = env.int("IMAGE_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=120_000_000)
IMAGE_MAX_DIMENSION = env.int("IMAGE_MAX_DIMENSION", default=10_000)
IMAGE_JPEG_QUALITY = env.int("IMAGE_JPEG_QUALITY", default=85)
IMAGE_WEBP_QUALITY = env.int("IMAGE_WEBP_QUALITY", default=80)
IMAGE_AVIF_QUALITY = env.int("IMAGE_AVIF_QUALITY", default=65)
# libavif's speed (0 slowest and smallest, 10 fastest): 8 encodes in under half the time of its default, 6.
IMAGE_AVIF_SPEED = env.int("IMAGE_AVIF_SPEED", default=8)
# Animations: frames, and pixels across all frames, decoded (frames x canvas) and made (frames x output).
IMAGE_MAX_FRAMES = env.int("IMAGE_MAX_FRAMES", default=500)
IMAGE_MAX_ANIMATION_PIXELS = env.int("IMAGE_MAX_ANIMATION_PIXELS", default=100_000_000)
# Pixels across all frames of an output larger than its source: enlarging makes work out of a few bytes.
IMAGE_MAX_ENLARGED_PIXELS = env.int("IMAGE_MAX_ENLARGED_PIXELS", default=16_000_000)
# Pixels of an AVIF output: its encoder needs about 30 bytes per pixel.
IMAGE_MAX_AVIF_PIXELS = env.int("IMAGE_MAX_AVIF_PIXELS", default=16_000_000)
# Decodes one process runs at once; memory peaks while decoding (see README, "Memory").
IMAGE_DECODE_CONCURRENCY = env.int("IMAGE_DECODE_CONCURRENCY", default=1)
# Stored files and renditions sent by nginx (X-Accel-Redirect to this path prefix, its `internal` locations
# in deploy/nginx.conf) instead of through the app; empty: the app sends them (images/sending.py).
FILE_ACCEL_REDIRECT = env.str("FILE_ACCEL_REDIRECT", default="")
if FILE_ACCEL_REDIRECT and not (FILE_ACCEL_REDIRECT.startswith("/") and FILE_ACCEL_REDIRECT.endswith("/")):
    raise ImproperlyConfigured(
        "FILE_ACCEL_REDIRECT must be a path that starts and ends with /, e.g. /_stored/."
    )
# How long an upload or a first render waits for a decode slot before answering 503 (Retry-After), so
# threads never pile up behind one slow decode.
IMAGE_DECODE_WAIT_SECONDS = env.float("IMAGE_DECODE_WAIT_SECONDS", default=5.0)

# --- Renditions (GET /images/{id}/file?width=…, README "Renditions") --------------------------------
# Named variants, `?preset=NAME`: JSON, name -> {"width", "height", "fit"} (fit: contain, cover or fill;
# cover and fill need both sides). Checked when the app starts (images/apps.py).
IMAGE_PRESETS = env.json(
    "IMAGE_PRESETS",
    default={
        "thumb": {"width": 200, "height": 200, "fit": "cover"},
        "small": {"width": 480},
        "large": {"width": 1600},
    },
)
# Which part a `cover` crop keeps when the request does not say (an upload's `gravity`, a preset's):
# center, attention (the most salient region) or focal (the image's focal point; the centre without one).
# An image's focal point wins over any gravity. attention by default: it keeps the subject of 97.5 % of
# bench/crops.py's pictures, where center keeps 6.7 %, for about 2 ms more per crop.
IMAGE_DEFAULT_GRAVITY = env.str("IMAGE_DEFAULT_GRAVITY", default="attention")
if IMAGE_DEFAULT_GRAVITY not in ("center", "attention", "focal"):
    raise ImproperlyConfigured(
        f"IMAGE_DEFAULT_GRAVITY must be center, attention or focal, not {IMAGE_DEFAULT_GRAVITY!r}."
    )
# Presets rendered and stored by the task worker after every upload (comma-separated names of IMAGE_PRESETS),
# in each format `format=auto` may answer, so an app's first view of them is a stored file; default none.
IMAGE_EAGER_PRESETS = env.list("IMAGE_EAGER_PRESETS", default=[])
# `format=auto` picks AVIF (when the browser takes it) only for renditions of at most this many pixels,
# WebP above: AVIF's encoder needs about 30 bytes per pixel (2560x1920: 150 MB).
IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS = env.int("IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS", default=5_000_000)

# --- Private images and signed URLs (README "Private images") -------------------------------------
# What an upload is when it does not say: public (anyone may read it) or private (its key and admin keys).
IMAGE_DEFAULT_VISIBILITY = env.str("IMAGE_DEFAULT_VISIBILITY", default="public")
if IMAGE_DEFAULT_VISIBILITY not in ("public", "private"):
    raise ImproperlyConfigured(
        f"IMAGE_DEFAULT_VISIBILITY must be public or private, not {IMAGE_DEFAULT_VISIBILITY!r}."
    )
# Seconds a signed URL stays valid: at least a minute (expiries are whole minutes), at most 7 days.
IMAGE_SIGNED_URL_TTL = env.int("IMAGE_SIGNED_URL_TTL", default=3600)
if not 60 <= IMAGE_SIGNED_URL_TTL <= 7 * 24 * 3600:
    raise ImproperlyConfigured(
        f"IMAGE_SIGNED_URL_TTL must be 60 to 604800 seconds (7 days), not {IMAGE_SIGNED_URL_TTL}."
    )
# `id:secret,id:secret`: the first signs, all verify (rotation: add a new key first, drop the old one later;
# a dropped key's URLs answer 403 at once). Empty: one key derived from SECRET_KEY. Checked at start
# (images/apps.py).
IMAGERY_SIGNING_KEYS = env.str("IMAGERY_SIGNING_KEYS", default="")
# Presets that stay unsigned (and publicly cacheable) even for private images, comma-separated names.
IMAGE_PUBLIC_PRESETS = env.list("IMAGE_PUBLIC_PRESETS", default=[])
# Which free-form renditions (`width`, `height`) need a signature: off (a private image's owner may ask
# with its key), private (every one of a private image), all (public images' too: only presets, the stored
# file and signed sizes render, against render abuse).
IMAGE_RENDITIONS_REQUIRE_SIGNATURE = env.str("IMAGE_RENDITIONS_REQUIRE_SIGNATURE", default="private")
if IMAGE_RENDITIONS_REQUIRE_SIGNATURE not in ("off", "private", "all"):
    raise ImproperlyConfigured(
        "IMAGE_RENDITIONS_REQUIRE_SIGNATURE must be off, private or all, "
        f"not {IMAGE_RENDITIONS_REQUIRE_SIGNATURE!r}."
    )

# --- Webhooks (README "Webhooks") ----------------------------------------------------------------
# Targets: https only unless WEBHOOK_ALLOW_HTTP; never an address that is not public unicast (loopback,
# private, link-local, ...) unless WEBHOOK_ALLOW_PRIVATE. Both are for development and tests.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=3.0)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=10.0)
# A failed delivery is tried again after exponential backoff with full jitter (base doubling per try, at
# most the cap), for WEBHOOK_RETRY_HOURS after the event; then it is marked failed.
WEBHOOK_RETRY_HOURS = env.float("WEBHOOK_RETRY_HOURS", default=24.0)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=5.0)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=3600.0)
# The relay enqueues pending deliveries overdue by this long (an enqueue lost after a commit, a worker that
# died mid-send); `manage.py deliver_webhooks --every N` runs it.
WEBHOOK_RELAY_SECONDS = env.float("WEBHOOK_RELAY_SECONDS", default=30.0)
# A worker's claim on the deliveries it is sending lasts this long beyond one try's timeouts: a worker that
# dies leaves them to the relay once it lapses. Lower, they come back sooner (the chaos rig: 15).
WEBHOOK_CLAIM_LEASE_SECONDS = env.float("WEBHOOK_CLAIM_LEASE_SECONDS", default=60.0)
for _name in (
    "WEBHOOK_CONNECT_TIMEOUT",
    "WEBHOOK_READ_TIMEOUT",
    "WEBHOOK_RETRY_BASE_SECONDS",
    "WEBHOOK_CLAIM_LEASE_SECONDS",
):
    if not 0 < globals()[_name] <= 3600:
        raise ImproperlyConfigured(f"{_name} must be more than 0 and at most 3600 seconds.")

# --- API ----------------------------------------------------------------------------------------
# A filtered list is counted exactly up to this many matches; past it `count` is a lower bound and the
# page says `"count_exact": false` (an exact count of a common word costs tens of ms at a million rows).
LIST_COUNT_CAP = env.int("LIST_COUNT_CAP", default=500)

# The longest an upload URL (POST /uploads) may live, in seconds: 6 hours.
UPLOAD_URL_MAX_TTL = env.int("UPLOAD_URL_MAX_TTL", default=6 * 3600)
if UPLOAD_URL_MAX_TTL < 1:
    raise ImproperlyConfigured(f"UPLOAD_URL_MAX_TTL must be 1 or more seconds, not {UPLOAD_URL_MAX_TTL}.")
# Proxies in front of the app, each appending to X-Forwarded-For. 0 (the default): the client is the socket's
# peer and the header is ignored, since any client can send one. N: the client is the Nth address from the
# header's end, the one the outermost of our proxies saw. (DRF's own default, unset, believes the header.)
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured(f"NUM_PROXIES must be 0 or more (the proxies in front), not {NUM_PROXIES}.")

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.ImageryAccess"],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.UploadsPerKey",
        "api.throttling.UploadsPerAddress",
        "api.throttling.ReadsPerKey",
        "api.throttling.ReadsPerAddress",
    ],
    # Who the client is, for the per-address limits: see NUM_PROXIES above.
    "NUM_PROXIES": NUM_PROXIES,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.exception_handler.problem_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Imagery API",
    "DESCRIPTION": (
        "Upload an image with a title and a target size; Imagery resizes and optimizes it, stores it "
        "and serves it. Every error is `application/problem+json` (RFC 9457)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # `visibility` has two sets of choices: both in objects and lists, `public` alone where an upload or an
    # edit is offered it with access open (IMAGERY_AUTH=off). Each set gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "VisibilityEnum": [("public", "public"), ("private", "private")],
        "OpenAccessVisibilityEnum": [("public", "public")],
        "WebhookEventEnum": "events.kinds.EventKind",
        "DeliveryStatusEnum": "events.models.DeliveryStatus",
        # The formats an upload may ask for, named apart from the image object's (which has `gif` too): an
        # upload URL fixes them too.
        "ImageUploadFormatEnum": [(f, f) for f in ("jpeg", "png", "webp", "avif")],
        "UploadStateEnum": "uploads.models.UploadState",
        "OnDuplicateEnum": "images.services.OnDuplicate",
    },
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH takes the same fields as its serializer says (an edit needs its title), not all optional.
    "COMPONENT_SPLIT_PATCH": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["api.schema.hide_trailing_slash_aliases"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.errors_as_problem_json",
        "api.schema.declare_every_answer",
        "api.schema.closed_objects",
    ],
}

# --- Access and abuse limits --------------------------------------------------------------------
# What needs an API key: off (nothing), write (uploads), all (reads too). Development (make run) is open.
IMAGERY_AUTH = env.str("IMAGERY_AUTH", default="off" if DEVELOPMENT else "write")
if IMAGERY_AUTH not in ("off", "write", "all"):
    raise ImproperlyConfigured(f"IMAGERY_AUTH must be off, write or all, not {IMAGERY_AUTH!r}.")
# Rates like "60/minute" (second, minute, hour, day); empty turns that limit off.
THROTTLE_UPLOADS_PER_KEY = env.str("THROTTLE_UPLOADS_PER_KEY", default="600/hour")
THROTTLE_UPLOADS_PER_ADDRESS = env.str("THROTTLE_UPLOADS_PER_ADDRESS", default="120/hour")
THROTTLE_READS_PER_KEY = env.str("THROTTLE_READS_PER_KEY", default="")
THROTTLE_READS_PER_ADDRESS = env.str("THROTTLE_READS_PER_ADDRESS", default="6000/minute")
# A resumable (tus) upload counts once as an upload (its creation); its chunks (PATCH) and its termination
# count here instead, per client address: a 50 MB file in 1 MB chunks is fifty requests.
THROTTLE_UPLOAD_CHUNKS_PER_ADDRESS = env.str("THROTTLE_UPLOAD_CHUNKS_PER_ADDRESS", default="3600/hour")
# Reads that search the whole table (`similar_to`: 15 ms at D = 8, 141 ms at D = 16 on 1M rows, against a
# millisecond for a page) count here as well as among the reads.
THROTTLE_COSTLY_READS_PER_KEY = env.str("THROTTLE_COSTLY_READS_PER_KEY", default="600/minute")
THROTTLE_COSTLY_READS_PER_ADDRESS = env.str("THROTTLE_COSTLY_READS_PER_ADDRESS", default="60/minute")
# What first renders of renditions may cost (a stored rendition is a read, counted above only): CPU
# seconds and megabytes stored, per period ("15/minute"), per API key and per address; empty: no budget.
# They slide (api.rate_store): any span of one period sees at most the amount, and one counting slot.
THROTTLE_RENDER_CPU_SECONDS_PER_KEY = env.str("THROTTLE_RENDER_CPU_SECONDS_PER_KEY", default="60/minute")
THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS = env.str(
    "THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS", default="25/minute"
)
THROTTLE_RENDER_MEGABYTES_PER_KEY = env.str("THROTTLE_RENDER_MEGABYTES_PER_KEY", default="1000/hour")
THROTTLE_RENDER_MEGABYTES_PER_ADDRESS = env.str("THROTTLE_RENDER_MEGABYTES_PER_ADDRESS", default="150/hour")
for _budget in (
    "THROTTLE_RENDER_CPU_SECONDS_PER_KEY",
    "THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS",
    "THROTTLE_RENDER_MEGABYTES_PER_KEY",
    "THROTTLE_RENDER_MEGABYTES_PER_ADDRESS",
):
    _value = globals()[_budget]
    if _value and not re.fullmatch(
        r"(?=.*[1-9])([0-9]+(\.[0-9]*)?|\.[0-9]+)/(second|minute|hour|day|[smhd])", _value
    ):
        raise ImproperlyConfigured(
            f"{_budget}: an amount per second, minute, hour or day (15/minute), not {_value!r}"
        )
# Failed API-key checks per client address: past it, every request from that address that sends a key is a 429
# until the window has room again (a correct key too, so guessing learns nothing meanwhile).
THROTTLE_AUTH_FAILURES_PER_ADDRESS = env.str("THROTTLE_AUTH_FAILURES_PER_ADDRESS", default="30/hour")

# Socket addresses /metrics answers (the peer's, never a forwarded header), comma-separated networks; empty:
# nobody. Others get the 404 of an unknown path. Default: this machine only.
METRICS_ALLOWED_NETWORKS = parse_networks(
    "METRICS_ALLOWED_NETWORKS", env.str("METRICS_ALLOWED_NETWORKS", default="127.0.0.0/8,::1/128")
)
# Likewise for /readyz, which costs a database query and a storage request: for the deployment's own load
# balancer or orchestrator (api/health.py).
READINESS_ALLOWED_NETWORKS = parse_networks(
    "READINESS_ALLOWED_NETWORKS", env.str("READINESS_ALLOWED_NETWORKS", default="127.0.0.0/8,::1/128")
)

# Redis, when REDIS_URL is set, is shared by every app server: rate limits count there, each call bounded by
# REDIS_TIMEOUT seconds (config/caches.py), and so does anything cached.
REDIS_URL, REDIS_OPTIONS = redis_from_env()
CACHES = {"default": default_cache_from_env()}
# Where rate limits count (api/rate_store.py), atomically: Redis when there is one (shared by every server),
# else a SQLite file in DATA_DIR that every process of this server shares (the cache would be each process's).
RATE_LIMIT_STORE = "redis" if REDIS_URL else "sqlite"
RATE_LIMIT_DATABASE = DATA_DIR / "rate-limits.sqlite3"

# Browsers on these origins may call the API (e.g. https://app.example.com), comma-separated.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# tus (resumable uploads on an upload URL, uploads/tus_apis.py) from a browser: its request headers, and the
# answers' headers a client must read (X-HTTP-Method-Override is not honoured: PATCH and DELETE are sent).
TUS_REQUEST_HEADERS = [
    "tus-resumable",
    "upload-length",
    "upload-defer-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
]
TUS_RESPONSE_HEADERS = [
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Imagery-Image",
]
CORS_ALLOW_HEADERS = ["authorization", "content-type", "if-none-match", "if-match", *TUS_REQUEST_HEADERS]
CORS_EXPOSE_HEADERS = ["Location", "Retry-After", "ETag", *TUS_RESPONSE_HEADERS]
# django-cors-headers' default methods, and HEAD, which a tus client sends with its own headers (a method
# CORS safelists passes a preflight anyway; named so that the answer says so).
CORS_ALLOW_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
# Not the image files (GET /images/{id}/file): an <img> loads them from any origin without CORS, and the
# `Vary: Origin` that CORS adds would split a CDN's one cached copy per URL into one per site.
CORS_URLS_REGEX = r"^(?!/images/[0-9]+/file/?$).*$"

# --- HTTP ---------------------------------------------------------------------------------------
# Paths are routed with and without the trailing slash, so no redirect ever breaks a POST.
APPEND_SLASH = False
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
# Behind a proxy that terminates TLS and overwrites X-Forwarded-Proto: believe it, so requests count as
# secure and built URLs say https. Never without such a proxy: a client could claim https itself.
USE_X_FORWARDED_PROTO = env.bool("USE_X_FORWARDED_PROTO", default=False)
if USE_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# Set (e.g. 31536000) once the service is only reached over HTTPS.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Logging ------------------------------------------------------------------------------------
# JSON lines in production, plain text in development; every line carries its request id (config/logs.py).
LOG_FORMAT = log_format()
LOGGING = logging_config(log_format=LOG_FORMAT, level=log_level())
