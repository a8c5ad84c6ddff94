"""MedAI settings, read from the environment (12-factor).

Profiles (``MEDAI_PROFILE``):
- ``local``: one machine, embedded defaults (SQLite under var/, kombu's filesystem transport,
  per-machine secrets generated into var/local-secrets.json). DEBUG is off here too, as in every
  profile: the app's own error pages show (never Django's debug page listing the URL patterns);
  ``DJANGO_DEBUG=1`` turns it on for a developer who asks. Static files are served by WhiteNoise
  from ``collectstatic``'s output, with or without DEBUG.
- ``test``: the real PostgreSQL and Redis on 127.0.0.1 (CI and developers), fixed throw-away keys.
- ``production``: everything secret must come from the environment; nothing has a default.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MEDAI_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
PROFILE = env.str("MEDAI_PROFILE", default="production")
if PROFILE not in {"local", "test", "production"}:
    raise environ.ImproperlyConfigured(
        f"MEDAI_PROFILE must be local, test or production, not {PROFILE!r}"
    )


def _local_secrets() -> dict[str, str]:
    """Per-machine development secrets, generated once; never used in production."""
    from cryptography.fernet import Fernet

    path = VAR_DIR / "local-secrets.json"
    generated = {
        "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": lambda: secrets.token_hex(32),
        "AUDIT_CHAIN_KEY": lambda: f"local1:{secrets.token_hex(32)}",
    }
    stored = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in generated.items() if name not in stored}
    if missing:  # first start, or a key added since this machine's file was written
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        stored.update(missing)
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    return stored


# Throw-away keys for the test profile only: test data is synthetic and the keys are public.
_TEST_SECRETS = {
    "DJANGO_SECRET_KEY": "test-only-secret-key-not-for-any-real-deployment-0123456789",
    "FIELD_ENCRYPTION_KEY": "rYq0O8lYbIEY1mRuHxMkTq4yAhG1Y4Pq0BqvJ1Hnj3c=",
    "BLIND_INDEX_KEY": "7465737420626c696e6420696e646578206b6579206e6f7420666f7220757365",
    "AUDIT_CHAIN_KEY": "t1:7465737420617564697420636861696e206b6579206e6f7420666f7220757365",
}
_DEFAULT_SECRETS = {"local": _local_secrets, "test": lambda: _TEST_SECRETS}.get(PROFILE)
_defaults = _DEFAULT_SECRETS() if _DEFAULT_SECRETS else {}


def _secret(name: str) -> str:
    if name in _defaults:
        return env.str(name, default=_defaults[name])
    return env.str(name)  # production: ImproperlyConfigured when missing


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = _secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]"] if PROFILE != "production" else [],
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- Encryption of PHI (see README "Data protection") -----------------------------------
# Comma-separated Fernet keys; the FIRST encrypts, all decrypt (rotation: new,old -> rotate -> new).
FIELD_ENCRYPTION_KEY = [k.strip() for k in _secret("FIELD_ENCRYPTION_KEY").split(",") if k.strip()]
# Separate HMAC key for blind indexes: search without decrypting, and a leaked index
# cannot be brute-forced without this key. Hex-encoded, at least 32 bytes.
BLIND_INDEX_KEY = _secret("BLIND_INDEX_KEY")


# --- Integrity of the audit trail (README "Audit trail") ----------------------------------
def _audit_chain_keys(value: str) -> dict[str, bytes]:
    """``id:hex,id:hex``: the FIRST key signs new audit records and anchors, every one verifies.

    Records store the id of the key that signed them, so a key is rotated by putting a new one
    first and keeping the old ones for as long as their records are retained.
    """
    keys: dict[str, bytes] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        key_id, sep, hex_key = entry.partition(":")
        if not sep or not key_id.isascii() or not key_id.replace("-", "").isalnum():
            raise environ.ImproperlyConfigured(
                "AUDIT_CHAIN_KEY entries are id:hexkey (id: letters, digits, hyphens)"
            )
        try:
            key = bytes.fromhex(hex_key)
        except ValueError:
            raise environ.ImproperlyConfigured(f"AUDIT_CHAIN_KEY {key_id!r} is not hex") from None
        if len(key) < 32 or len(key_id) > 16 or key_id in keys:
            raise environ.ImproperlyConfigured(
                f"AUDIT_CHAIN_KEY {key_id!r}: at least 32 bytes, an id of at most 16 characters, "
                "each id once"
            )
        keys[key_id] = key
    if not keys:
        raise environ.ImproperlyConfigured("AUDIT_CHAIN_KEY names no key")
    return keys


# HMAC keys of the audit hash chain, kept outside the database: someone who can rewrite the
# table (its owner, a superuser, a restored backup) cannot recompute valid hashes without them.
AUDIT_CHAIN_KEYS = _audit_chain_keys(_secret("AUDIT_CHAIN_KEY"))
# Where the head of the chain (latest hash, count, time) is anchored, signed, one JSON line per
# anchor, appended by beat and by `audit_verify`. Production names it explicitly: a directory on
# another volume (ideally append-only, e.g. `chattr +a`, or shipped off-host), never the database.
_ANCHOR_DIR_DEFAULT = (
    str(VAR_DIR / "audit-anchors") if PROFILE != "production" else environ.Env.NOTSET
)
MEDAI_AUDIT_ANCHOR_DIR = Path(env.str("MEDAI_AUDIT_ANCHOR_DIR", default=_ANCHOR_DIR_DEFAULT))
# How often beat anchors the head: records newer than the latest anchor are protected by the
# HMAC keys alone (a deleted tail younger than this goes unnoticed by someone holding them).
MEDAI_AUDIT_ANCHOR_SECONDS = env.int("MEDAI_AUDIT_ANCHOR_SECONDS", default=300)
# Independent audit hash chains ("lanes") that writers spread over (PostgreSQL; SQLite always
# uses one): a request holds one lane's lock until it commits instead of one lock for everyone,
# so up to this many audited transactions proceed at once. Each lane is a full keyed chain with
# its own anchored head (medai_site/audit.py). 16 covers web threads and workers of a node with
# room to spare; raising or lowering it later leaves every existing record verifiable.
MEDAI_AUDIT_LANES = env.int("MEDAI_AUDIT_LANES", default=16)

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
    "drf_spectacular_sidecar",  # vendored Swagger UI / Redoc assets: no CDN
    "django_prometheus",  # request/latency/status metrics for /metrics (predictions/metrics.py)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "medai_site",
    "patients",
    "visits",
    "predictions",
    "import_export",  # the admin's CSV/Excel import (predictions/interop/tabular.py)
    "predictions.interop.apps.InteropConfig",  # FHIR R4 API and import doors (label "interop")
]

# medai_site.browser_only.X is middleware X, passed over by API calls with a bearer token (no
# session or form is theirs); the others run for every request.
MIDDLEWARE = [
    # First and (nearly) last: django-prometheus times every request and counts it by view/status.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "medai_site.middleware.RequestContextMiddleware",
    # Page and admin bodies must be forms in UTF-8 (415/400 otherwise), before anything parses them.
    "medai_site.browser_only.FormBodyMiddleware",
    "medai_site.browser_only.WhiteNoiseMiddleware",
    "medai_site.browser_only.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "medai_site.browser_only.AuthenticationMiddleware",
    "medai_site.browser_only.OTPMiddleware",
    "medai_site.browser_only.MessageMiddleware",
    "medai_site.browser_only.SessionIdleMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into its lockout response.
    "medai_site.browser_only.AxesMiddleware",
]

ROOT_URLCONF = "medai_site.urls"
WSGI_APPLICATION = "medai_site.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_DATABASE_DEFAULTS = {
    "local": f"sqlite:///{VAR_DIR / 'medai.sqlite3'}",
    "test": "postgres://postgres@127.0.0.1:5432/medai",
}
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=_DATABASE_DEFAULTS.get(PROFILE, environ.Env.NOTSET)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time: wait for the worker's write instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Transactions take the write lock when they begin: a transaction that read first and then
    # wrote (a page's audit record while the worker stores advice) otherwise fails at once with
    # "database is locked" (SQLite cannot wait for a lock upgrade). WAL lets pages read while
    # the worker writes.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep connections between requests and Celery tasks (a fresh PostgreSQL connection costs
# milliseconds on every advice task); checked before reuse, so a restarted database is survived.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2id first (OWASP's recommendation); the others only verify and upgrade older hashes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
if PROFILE == "test":
    # Hashing cost is not what most tests measure; test_signin checks Argon2 with its own override.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

# Sign-in hardening: lockout after repeated failures (django-axes), per account; admins unlock
# from the admin ("Access attempts") or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("MEDAI_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("MEDAI_LOCKOUT_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = ["username"]
# Per account, deliberately not per IP: a ward's PCs share one address behind the hospital NAT,
# and an IP lockout would lock out every clinician on the ward at once.
SILENCED_SYSTEM_CHECKS = [
    "axes.W006",
    # axes looks for its middleware's exact dotted path; MIDDLEWARE names it through
    # medai_site.browser_only (a subclass, skipped only for bearer API calls, which never sign in).
    "axes.W002",
]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Two-factor (TOTP, django-otp): required for the admin site, available to doctors.
OTP_TOTP_ISSUER = "MedAI"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("MEDAI_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(env.str("MEDAI_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Model artifacts (joblib files, sha256 recorded on ModelVersion).
MODEL_ARTIFACT_DIR = Path(env.str("MEDAI_MODEL_DIR", default=str(VAR_DIR / "models")))
# Files uploaded to the admin's import doors wait here for the worker (web and trainer share it).
MEDAI_IMPORT_DIR = Path(env.str("MEDAI_IMPORT_DIR", default=str(VAR_DIR / "imports")))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

# --- Celery --------------------------------------------------------------------------------
_BROKER_DEFAULTS = {"local": "filesystem://", "test": "redis://127.0.0.1:6379/15"}
# Set on the advice worker's process only (Procfile/docker-compose "worker"): its broker options.
MEDAI_ADVICE_WORKER = env.bool("MEDAI_ADVICE_WORKER", default=False)
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=_BROKER_DEFAULTS.get(PROFILE, environ.Env.NOTSET)
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control
        "store_processed": False,
        # A worker looks for new messages every 0.1 s (kombu's default 1 s would add up to a
        # second to every advice under `make run`); a directory listing, cheap at this rate.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Must exceed the longest task's hard time limit, or Redis redelivers a running task.
        "visibility_timeout": 2 * 60 * 60,
        # A publish (a visit save's after-commit dispatch, the relay) fails at once while Redis
        # is down instead of retrying inside the request (~6 s per save): the outbox row stays
        # pending and the relay sends it later. Workers reconnect by broker_connection_* rules.
        "max_retries": 0,
    }
    if MEDAI_ADVICE_WORKER:
        # The advice worker's unacknowledged messages live in their own Redis keys, with a
        # visibility timeout that fits advice (hard limit 90 s, predictions/tasks.py) instead of
        # training's hours, swept every 5 s: a message a dead advice worker held comes back
        # within ~2 min even without the relay (which re-sends it within seconds, below).
        CELERY_BROKER_TRANSPORT_OPTIONS |= {
            "visibility_timeout": 120,
            "unacked_key": "advice_unacked",
            "unacked_index_key": "advice_unacked_index",
            "unacked_mutex_key": "advice_unacked_mutex",
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        }
    # Fetch a message only when a pool process is free: nothing waits in a worker's memory
    # (where a crash would strand it) while it could wait in Redis for any worker.
    CELERY_WORKER_DISABLE_PREFETCH = True
# Live events (medai_site/live_events.py): the worker tells the web process that advice is stored,
# and the visit page's event stream pushes it to the browser. Redis pub/sub where the broker is
# Redis (test, production); otherwise (the local profile's embedded defaults) a file per topic
# under var/, watched every 50 ms.
MEDAI_LIVE_EVENTS_URL = env.str(
    "MEDAI_LIVE_EVENTS_URL",
    default=CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'live-events'}",
)
# How long one advice event stream stays open before the browser reconnects: a stream holds a
# web worker thread (gunicorn gthread), so none is held for ever. Streams also end as soon as the
# advice they wait for is stored.
MEDAI_ADVICE_STREAM_SECONDS = env.int("MEDAI_ADVICE_STREAM_SECONDS", default=25)
# --- Cache -------------------------------------------------------------------------------------
# One cache for every web and worker process, because what it holds must hold across them: a CDS
# Hooks JWT is good once (its jti), and the API's rate limits count a token's requests in every
# worker. Django's default (process memory) would let a replayed JWT through on the other gunicorn
# worker and multiply every rate limit by the number of workers. Redis where the broker is Redis
# (production; MEDAI_CACHE_URL names another), files under var/ for the local profile's embedded
# defaults (one machine; its add() is not atomic across processes, acceptable for a demo). The
# test profile keeps process memory unless MEDAI_CACHE_URL is set, so tests stay independent.
_CACHE_DEFAULT = (
    CELERY_BROKER_URL
    if PROFILE != "test" and CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else ""
)
MEDAI_CACHE_URL = env.str("MEDAI_CACHE_URL", default=_CACHE_DEFAULT)
if MEDAI_CACHE_URL:
    CACHES = {
        "default": {
            # Django's Redis backend, one client per pool (medai_site/shared_cache.py).
            "BACKEND": "medai_site.shared_cache.RedisCache",
            "LOCATION": MEDAI_CACHE_URL,
            # Celery's queues may share this Redis database: the prefix keeps the two apart
            # (and nothing in the app calls cache.clear(), which would empty the database).
            "KEY_PREFIX": "medai-cache",
            # A Redis that does not answer fails a cache call in half a second, not a request's
            # whole time: rate limits then fail open, a CDS Hooks call fails closed (503).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
elif PROFILE == "local":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
# Results live in our own tables (Advice, TrainingJob); Celery's result store would be a second
# copy and, for advice, a place PHI could leak to.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# JSON only: no pickle on the broker, and task arguments are ids (never PHI).
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# At-least-once delivery: acknowledge after the task ran; a worker killed mid-task hands the
# message back. Tasks are idempotent (advice keyed by input hash, jobs by state).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the task's database connection after every task unless this is
# set (CONN_MAX_AGE alone does not keep it in a worker): a new PostgreSQL session per advice
# costs milliseconds. With it, a worker process reuses its connection for this many tasks
# (health-checked before reuse), then opens a fresh one.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Advice (seconds) never waits behind training (minutes): separate queues served by separate
# worker processes (Procfile/docker-compose "worker" takes advice, "trainer" training + the rest).
CELERY_TASK_ROUTES = {
    "predictions.tasks.advice_compute": {"queue": "advice"},
    "predictions.tasks.training_job_run": {"queue": "training"},
    # Batch re-scoring chunks: any worker consuming "scoring" (the trainer by default; start
    # more with --queues scoring on more machines to score faster).
    "predictions.tasks.scoring_chunk_compute": {"queue": "scoring"},
}
# Hard limit below the visibility timeout above (2 h), so Redis never redelivers a live task.
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The outbox relay is its own process (Procfile "relay"): it must keep trying while the broker
# is down, which a beat-scheduled task sent through that broker could not.
CELERY_BEAT_SCHEDULE = {
    "audit-anchor": {
        "task": "medai_site.tasks.audit_anchor_write",
        "schedule": float(MEDAI_AUDIT_ANCHOR_SECONDS),
    },
    "watch-training-jobs": {"task": "predictions.tasks.training_job_watchdog", "schedule": 60.0},
    "model-monitoring": {
        "task": "predictions.tasks.monitoring_run",
        "schedule": crontab(hour=env.int("MEDAI_MONITORING_HOUR", default=4), minute=0),
    },
    # Every task nightly; a forecast task with a model is fine-tuned (its algorithm refitted on
    # the day's data, no model search), gated on held-out patients like any other version.
    "nightly-training": {
        "task": "predictions.tasks.training_nightly_start",
        "schedule": crontab(hour=env.int("MEDAI_NIGHTLY_TRAINING_HOUR", default=2), minute=0),
    },
    # Forecast tasks: self-supervised pretraining on every timeline, CV and the CI gate, monthly.
    "forecast-monthly-pretraining": {
        "task": "predictions.tasks.training_monthly_pretrain_start",
        "schedule": crontab(
            day_of_month=env.int("MEDAI_PRETRAINING_DAY", default=1),
            hour=env.int("MEDAI_PRETRAINING_HOUR", default=3),
            minute=0,
        ),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

REST_FRAMEWORK = {
    # Integration clients send "Authorization: Bearer <token>"; the browser's own calls use the
    # session (with CSRF). The bearer class comes first so a 401 names the Bearer scheme.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "medai_site.api_auth.BearerTokenAuthentication",
        "medai_site.api_auth.VerifiedSessionAuthentication",
    ],
    # Signed in, with a clinical role (the selectors' own rule), and the operation's declared
    # scope: a view that declares none is refused (tests/api/test_scopes.py walks every route).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "medai_site.api_auth.HasClinicalRole",
        "medai_site.api_auth.HasScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["medai_site.api_auth.ClientRateThrottle"],
    # JSON in and out only: any other request content type is a 415.
    "DEFAULT_PARSER_CLASSES": ["medai_site.api_parsers.JSONParser"],  # DRF's, deep nesting = 400
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "medai_site.api_schema.MedaiAutoSchema",
    "EXCEPTION_HANDLER": "medai_site.errors.api_exception_handler",
}
# Requests per client (API token, or user for session calls) and per IP for anonymous calls.
MEDAI_API_RATE = env.str("MEDAI_API_RATE", default="600/min")
MEDAI_API_ANON_RATE = env.str("MEDAI_API_ANON_RATE", default="60/min")
# CDS Hooks: the EHRs allowed to call, by JWT issuer: {"<iss>": {"jwks": {"keys": [<public JWK>]},
# "user": "<integration-client username>"}}, from a JSON file (keys are configuration, never
# fetched from a URL a caller names). Unknown issuers are refused.
CDS_HOOKS_CLIENTS = (
    json.loads(Path(env.str("MEDAI_CDS_HOOKS_CLIENTS_FILE")).read_text())
    if env.str("MEDAI_CDS_HOOKS_CLIENTS_FILE", default="")
    else {}
)
# The public base URL the EHR calls (behind a proxy), e.g. https://medai.example.org: the JWT's
# audience and the cards' links are built on it. Empty: the request's own host.
CDS_HOOKS_BASE_URL = env.str("MEDAI_CDS_HOOKS_BASE_URL", default="")
# The prediction API (POST /api/v1/models/{slug}/predict...) has its own budget per client.
MEDAI_PREDICT_RATE = env.str("MEDAI_PREDICT_RATE", default="3000/min")
# FHIR (predictions/interop): the identifier systems MedAI's MRNs and national ids are published
# under in /fhir/r4/ (a hospital sets its own URIs); imports read MRNs by identifier type MR.
MEDAI_FHIR_MRN_SYSTEM = env.str("MEDAI_FHIR_MRN_SYSTEM", default="urn:medai:mrn")
MEDAI_FHIR_NATIONAL_ID_SYSTEM = env.str(
    "MEDAI_FHIR_NATIONAL_ID_SYSTEM", default="urn:medai:national-id"
)
SPECTACULAR_SETTINGS = {
    "TITLE": "MedAI integration API",
    "DESCRIPTION": (
        "Patients, visits, observations, diagnoses, asynchronous advice and model management "
        "for hospital systems. Every error has the shape "
        '{"error": {"code", "message", "fields"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status"; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "VisitStatusEnum": "visits.models.Visit.Status",
        "DiagnosisStatusEnum": "visits.models.Diagnosis.Status",
        "AdviceRequestStatusEnum": "predictions.models.AdviceRequest.Status",
        "TrainingJobStatusEnum": "predictions.models.TrainingJob.Status",
        "AdviceStateStatusEnum": ["none", "pending", "done", "failed"],
        "HealthStatusEnum": ["ok", "unavailable"],
    },
}

# --- Logging: ids only, never PHI (see medai_site/log_context.py) ----------------------
LOG_FORMAT = env.str("MEDAI_LOG_FORMAT", default="plain" if PROFILE == "local" else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "medai_site.log_context.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        # One JSON object per line: timestamp, level, logger, message, request_id, interface.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(interface)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("MEDAI_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own 500 log line carries the request (URL, possibly PHI in query strings):
        # keep it at ERROR and let medai_site's error views record ids instead.
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},  # it announces its configuration at every start-up
    },
}

# --- Security (production hardening; `manage.py check --deploy`) ---------------------------
# Request bodies above this are refused with a 400 (pages) or 413 (API) before any parsing.
# Django's default (2.5 MB), stated: the largest legitimate body, a visit with all its free text,
# is a few kilobytes. No file uploads exist; DATA_UPLOAD_MAX_NUMBER_FIELDS keeps its 1000.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MEDAI_MAX_REQUEST_BYTES", default=2_621_440)
# The only pages that take files: the admin's import doors (predictions/interop). Their bodies
# skip the form-body check (binary Excel, large bundles) and their files stream to disk.
MEDAI_UPLOAD_PATHS = (
    "/admin/interop/importrun/add/",
    "/admin/interop/patientrow/import/",
    "/admin/interop/visitrow/import/",
)
SESSION_COOKIE_AGE = env.int("MEDAI_SESSION_IDLE_SECONDS", default=15 * 60)
SESSION_SAVE_EVERY_REQUEST = True  # inactivity timeout, not absolute
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): the app's own origin only. No inline scripts or styles
# (pages load JS and CSS from static/), no eval (htmx runs with allowEval=false), no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}
if PROFILE == "production":
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# --- Product settings ------------------------------------------------------------------------
# Registry: a challenger replaces the champion only if not worse on the same held-out data.
MEDAI_PROMOTION_AUC_MARGIN = env.float("MEDAI_PROMOTION_AUC_MARGIN", default=0.01)
MEDAI_PROMOTION_ECE_MARGIN = env.float("MEDAI_PROMOTION_ECE_MARGIN", default=0.02)
# A training job with no heartbeat for this long is presumed dead with its worker.
MEDAI_TRAINING_HEARTBEAT_TIMEOUT = env.int("MEDAI_TRAINING_HEARTBEAT_TIMEOUT", default=10 * 60)
# Training: algorithms tried for each task (grouped CV picks one), and outer CV folds for the report.
MEDAI_TRAINING_ALGORITHMS = env.list(
    "MEDAI_TRAINING_ALGORITHMS", default=["logistic_regression", "mlp"]
)
MEDAI_TRAINING_CV_FOLDS = env.int("MEDAI_TRAINING_CV_FOLDS", default=5)
# Visits per chunk of a batch re-scoring run (predictions/services/batch_scoring.py).
MEDAI_SCORING_CHUNK_VISITS = env.int("MEDAI_SCORING_CHUNK_VISITS", default=10_000)
# Feature-row blocks a scoring worker process keeps in memory between runs, still encrypted, in
# MB (predictions/services/feature_cache.py): a re-run whose chunk did not change then reads a
# 32-byte digest from PostgreSQL instead of the block (about 1.9 KB a visit with sparse text
# rows: 256 MB holds some 130,000 visits). 0 turns it off.
MEDAI_FEATURE_CACHE_PROCESS_MB = env.int("MEDAI_FEATURE_CACHE_PROCESS_MB", default=256)
# Forecast tasks (patient timelines): algorithms and folds come from each task's config; these
# override them for every forecast task when set (e.g. a count baseline only on a small server).
MEDAI_FORECAST_ALGORITHMS = env.list("MEDAI_FORECAST_ALGORITHMS", default=[])
MEDAI_FORECAST_CV_FOLDS = env.int("MEDAI_FORECAST_CV_FOLDS", default=0)
# A dispatched advice request not done after this long is handed to the broker again (the
# broker may have lost it, e.g. Redis restarted without persistence). Computing is idempotent.
MEDAI_ADVICE_REDISPATCH_SECONDS = env.int("MEDAI_ADVICE_REDISPATCH_SECONDS", default=120)
# An advice task that finds other requests already waiting computes up to this many requests in
# one go (one read, one store, one audit insert for all: predictions/services/advice.py); 1 turns
# batching off. Only what waits is taken: at a low rate every batch is one request. 8: a full
# batch took ~60 ms on the shared 2-core bench machine at load 4-5; 4 and 16 measured within that
# machine's noise of it (tests/bench/bench_advice_throughput.py, MEDAI_ADVICE_BATCH=4/8/16).
MEDAI_ADVICE_BATCH = env.int("MEDAI_ADVICE_BATCH", default=8)
# Advice workers write a heartbeat row every BEAT seconds; one silent for LOST seconds is presumed
# dead and the relay (every second) re-sends what it held or may have fetched: a message lost
# with a worker is re-sent within LOST + 2 s of the crash.
MEDAI_ADVICE_WORKER_BEAT_SECONDS = env.float("MEDAI_ADVICE_WORKER_BEAT_SECONDS", default=2.0)
MEDAI_ADVICE_WORKER_LOST_SECONDS = env.float("MEDAI_ADVICE_WORKER_LOST_SECONDS", default=6.0)
# Advice not done this long after the visit was saved is "delayed": the visit page says so and
# /metrics' pipeline figures cross their alert thresholds (README "Advice pipeline").
MEDAI_ADVICE_LATE_SECONDS = env.int("MEDAI_ADVICE_LATE_SECONDS", default=10)
# Break-the-glass: how long emergency access to a patient outside the care team lasts.
MEDAI_BREAK_GLASS_MINUTES = env.int("MEDAI_BREAK_GLASS_MINUTES", default=60)
# Registering a patient (or changing an MRN) with an MRN already in use answers a conflict, so it
# tells whether an MRN exists: each conflict is audited as a denied probe, and a user who hits
# this many in the window is paused (429) until the oldest leaves it (patients.services).
MEDAI_MRN_CONFLICT_LIMIT = env.int("MEDAI_MRN_CONFLICT_LIMIT", default=5)
MEDAI_MRN_CONFLICT_WINDOW_MINUTES = env.int("MEDAI_MRN_CONFLICT_WINDOW_MINUTES", default=60)

# --- Monitoring (predictions/monitoring.py, predictions/metrics.py; README "Operations") -------
# Visits of the last N days are compared with the active model's training snapshot.
MEDAI_MONITORING_WINDOW_DAYS = env.int("MEDAI_MONITORING_WINDOW_DAYS", default=30)
# When a snapshot's status is "act", switch the task off (the registry's kill switch, reason
# recorded). Off by default: a governance decision, not a technical one.
MEDAI_MONITORING_AUTO_DISABLE = env.bool("MEDAI_MONITORING_AUTO_DISABLE", default=False)
# /metrics: HTTP basic auth with this token as password (any user name), or a staff session.
# Empty = staff session only. Prometheus: basic_auth {username: metrics, password: <token>}.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
