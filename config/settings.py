"""One settings module; environments differ only by environment variables (see .env.example)."""

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # embedded database, broker folders, generated admin password

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # real environment variables win

# ---- CORE ----
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The embedded default (make run / make test) sets DJANGO_SECRET_KEY itself; production must set it.
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
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
    "django_htmx",
    "django_celery_beat",
    # Domain apps, in dependency order (left depends on right): notifications → campaigns → rewards
    # → loyalty → members.
    "members",
    "loyalty",
    "rewards",
    "campaigns",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# ---- DATABASE ----
# Embedded default: SQLite in WAL mode with IMMEDIATE transactions (writers queue instead of failing
# with "database is locked"). Production: DATABASE_URL=postgres://… (psycopg 3).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The earn hot path prepares its fixed statements on the server (loyalty/db.py); false behind a pooler that
# drops prepared statements (PgBouncer in transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" and DATABASE_PREPARED_STATEMENTS:
    # Django's own cursors bind on the client and are never prepared; only loyalty.db's statements are.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 1)
# POST /api/v1/purchases: plain earns are answered below Django's request stack (loyalty/api/fastlane.py).
API_FAST_LANE = env.bool("API_FAST_LANE", default=True)

# ---- AUTH ----
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ---- I18N ----
LANGUAGE_CODE = env("DJANGO_LANGUAGE_CODE", default="en")
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "config" / "locale"]
# Server clock zone; the program's business zone (expiry dates, day caps) is a program setting.
TIME_ZONE = env("DJANGO_TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# ---- STATIC ----
STATIC_URL = "static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env(
            "DJANGO_STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}
MEDIA_ROOT = Path(env("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# ---- CACHE ----
# The API rate limit counts in the cache. Embedded default: per-process memory (one web process).
# Production with several processes/machines: CACHE_URL=redis://host:6379/1 for one shared, atomic count.
CACHE_URL = env("CACHE_URL", default="locmem://")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL.startswith(("redis://", "rediss://"))
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "loyalty"}
}

# ---- API ----
# Requests with a bad or missing API key, per client address and minute, before 429 (0: no limit).
API_AUTH_FAILURES_PER_MINUTE = env.int("API_AUTH_FAILURES_PER_MINUTE", default=60)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["loyalty.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "loyalty.api.pagination.NewestFirstCursor",
    "EXCEPTION_HANDLER": "loyalty.api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["loyalty.api.throttling.ApiClientRateThrottle"],  # ApiClient.rate_limit_per_minute
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty points API",
    "DESCRIPTION": "Partner REST API v1: members, purchases and refunds, points, rewards, coupons, stored value.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# ---- SECURITY (production values come from the environment) ----
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# ---- CELERY ----
# Embedded default: kombu's filesystem transport, which needs no server (single machine only).
# Production: CELERY_BROKER_URL=redis://…
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# ---- LOYALTY ----
# Bounded batches for schedules: small enough that concurrent earns keep their throughput (DESIGN §8).
LOYALTY_BATCH_SIZE = env.int("LOYALTY_BATCH_SIZE", default=5000)
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", default="CN")

# ---- LOGGING ----
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# ---- MEMBER PORTAL ----
# Sign-in, activation and password reset of the member portal (/portal/); see docs/portal.md.
# SMS backend (dotted path to a class with send(*, phone, text)); the default writes messages to the log.
PORTAL_SMS_BACKEND = env("PORTAL_SMS_BACKEND", default="members.sms.LogBackend")
PORTAL_CODE_LIFETIME_SECONDS = env.int("PORTAL_CODE_LIFETIME_SECONDS", default=600)  # one-time codes: 10 minutes
PORTAL_CODE_MAX_ATTEMPTS = env.int("PORTAL_CODE_MAX_ATTEMPTS", default=5)  # wrong tries before a code is dead
PORTAL_CODE_RESEND_SECONDS = env.int("PORTAL_CODE_RESEND_SECONDS", default=60)  # per phone number
PORTAL_CODES_PER_PHONE_PER_HOUR = env.int("PORTAL_CODES_PER_PHONE_PER_HOUR", default=5)
PORTAL_CODES_PER_IP_PER_HOUR = env.int("PORTAL_CODES_PER_IP_PER_HOUR", default=20)
PORTAL_PASSWORD_MAX_FAILURES = env.int("PORTAL_PASSWORD_MAX_FAILURES", default=5)  # then the login is locked
PORTAL_LOCKOUT_SECONDS = env.int("PORTAL_LOCKOUT_SECONDS", default=900)  # 15 minutes
PORTAL_SIGN_INS_PER_IP = env.int("PORTAL_SIGN_INS_PER_IP", default=30)  # sign-in tries per IP per 15 minutes
# "Keep me signed in": how long the session lasts; without it the session ends when the browser closes.
PORTAL_SESSION_AGE_SECONDS = env.int("PORTAL_SESSION_AGE_SECONDS", default=30 * 24 * 3600)
