import datetime as dt
import os
import zoneinfo

import pytest
from django.db import connection

from loyalty.audit import ledger_audit_run
from tests.factories import MemberFactory, StoreFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def local(*args) -> dt.datetime:
    """An aware datetime in the program zone (Asia/Shanghai)."""
    return dt.datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Hashing is not what the tests test: the default hasher costs about a second per password here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def _cache_cleared():
    """Rate-limit counters and other cached state never leak from one test into the next."""
    from django.core.cache import cache

    from loyalty.api.auth import api_client_cache_clear

    cache.clear()
    api_client_cache_clear()  # API clients are kept per process for a few seconds
    yield


@pytest.fixture
def now() -> dt.datetime:
    return local(2026, 3, 4, 10, 0)


@pytest.fixture
def store(db):
    return StoreFactory()


@pytest.fixture
def member(db, now):
    return MemberFactory(joined_at=now - dt.timedelta(days=400))


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_user(username="cashier", password="pw", is_staff=True)


@pytest.fixture
def program(db):
    from loyalty.services import program_settings_get

    return program_settings_get()


@pytest.fixture
def audit_clean():
    """Use in any test that writes: the ledger audit must be clean when the test ends."""
    yield
    assert ledger_audit_run() == []


requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL row locking and concurrent transactions; run with DATABASE_URL=postgres://… (CI does)",
)

