"""Portal sign-in, lockout, sign-out, activation and password reset by one-time code."""

import datetime as dt
import re
from collections import Counter

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from loyalty.services import member_enrol
from members.models import MemberLogin, MemberStatus, OneTimeCode, OneTimeCodePurpose
from members.portal import SESSION_MEMBER
from members.services import one_time_code_send, one_time_code_use, portal_sign_in
from members.sms import MemoryBackend
from tests.conftest import requires_postgres
from tests.portal.conftest import PORTAL_PASSWORD, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

PHONE = "+8613900000001"  # portal_member's
NEW_PASSWORD = "Quiet-Harbour-77"
FAILED = "The phone number or the password is not right."


@pytest.fixture(autouse=True)
def portal_settings(settings):
    settings.PORTAL_SMS_BACKEND = "members.sms.MemoryBackend"
    cache.clear()
    MemoryBackend.outbox.clear()
    yield settings
    cache.clear()


def sign_in(client, phone=PHONE, password=PORTAL_PASSWORD, **extra):
    return client.post("/portal/sign-in/", {"phone": phone, "password": password, **extra})


def login_row(member) -> MemberLogin:
    return MemberLogin.objects.get(pk=member.pk)


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def new_member(db):
    """Enrolled at the counter, never activated the portal."""
    return member_enrol(phone="+8613900000003", name="Wu Fang", now=timezone.now())


def request_code(client, phone, flow="activate", capture=None):
    if capture is None:
        return client.post(f"/portal/{flow}/", {"phone": phone})
    with capture(execute=True):
        return client.post(f"/portal/{flow}/", {"phone": phone})


def last_code() -> str:
    return re.search(r"\b(\d{6})\b", MemoryBackend.outbox[-1][1]).group(1)


def confirm(client, code, flow="activate", password=NEW_PASSWORD, again=None):
    return client.post(f"/portal/{flow}/code/", {"code": code, "new_password": password,
                                                  "new_password_again": again or password})


# ---- sign-in ----


class TestSignIn:
    def test_phone_and_password_sign_in_and_reset_the_failure_count(self, client, portal_member):
        MemberLogin.objects.filter(pk=portal_member.pk).update(failed_attempts=3)
        response = sign_in(client, phone="139 0000 0001")  # national form is normalised
        assert response.status_code == 302 and response["Location"] == "/portal/"
        assert client.session[SESSION_MEMBER] == portal_member.pk
        login = login_row(portal_member)
        assert login.failed_attempts == 0 and login.last_login_at is not None

    def test_unknown_phone_and_wrong_password_read_the_same(self, client, portal_member):
        unknown = sign_in(client, phone="+8613911112222")
        wrong = sign_in(client, password="not-it")
        assert FAILED in text(unknown) and FAILED in text(wrong)
        assert SESSION_MEMBER not in client.session
        assert login_row(portal_member).failed_attempts == 1  # only the real login counts

    def test_member_without_portal_access_is_told_to_activate(self, client, new_member):
        response = sign_in(client, phone=new_member.phone)
        assert "not activated yet" in text(response) and 'href="/portal/activate/"' in text(response)
        assert SESSION_MEMBER not in client.session

    def test_closed_member_cannot_sign_in(self, client, portal_member):
        portal_member.status = MemberStatus.CLOSED
        portal_member.save(update_fields=["status"])
        assert FAILED in text(sign_in(client))
        assert SESSION_MEMBER not in client.session

    def test_frozen_member_signs_in_and_is_told(self, client, portal_member):
        portal_member.status = MemberStatus.FROZEN
        portal_member.save(update_fields=["status"])
        response = sign_in(client)
        assert response.status_code == 302
        assert "frozen" in text(client.get("/portal/me/"))

    def test_blank_form_is_refused_with_messages(self, client, db):
        response = client.post("/portal/sign-in/", {})
        assert response.status_code == 200 and "This field is required." in text(response)

    def test_remember_me_sets_a_persistent_cookie_and_the_default_does_not(self, portal_member, settings):
        remembered, default = Client(), Client()
        sign_in(remembered, remember="on")
        sign_in(default)
        assert remembered.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == settings.PORTAL_SESSION_AGE_SECONDS
        assert default.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == ""
        assert default.cookies[settings.SESSION_COOKIE_NAME]["expires"] == ""

    @pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)",
                                        "http://testserver.evil/"])
    def test_tampered_next_goes_home(self, client, portal_member, target):
        response = sign_in(client, next=target)
        assert response.status_code == 302 and response["Location"] == "/portal/"

    def test_local_next_is_followed(self, client, portal_member):
        assert sign_in(client, next="/portal/history/?kind=earned")["Location"] == "/portal/history/?kind=earned"

    def test_signed_in_visitor_skips_the_form(self, portal_client):
        assert portal_client.get("/portal/sign-in/")["Location"] == "/portal/"

    def test_member_language_becomes_the_portal_language(self, client, portal_member, settings):
        portal_member.language = "zh-hans"
        portal_member.save(update_fields=["language"])
        sign_in(client)
        assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"

    def test_query_counts(self, client, portal_member, django_assert_max_num_queries):
        with django_assert_max_num_queries(2):
            assert client.get("/portal/sign-in/").status_code == 200
        with django_assert_max_num_queries(9):  # 2 for the login, 7 for a new session (cycle_key)
            assert sign_in(client).status_code == 302


class TestLockout:
    def test_five_wrong_passwords_lock_for_fifteen_minutes(self, client, portal_member):
        for _ in range(4):
            assert FAILED in text(sign_in(client, password="wrong"))
        response = sign_in(client, password="wrong")
        assert "Signing in is locked until" in text(response)
        login = login_row(portal_member)
        assert login.locked_until is not None
        assert dt.timedelta(minutes=14) < login.locked_until - timezone.now() <= dt.timedelta(minutes=15)
        # Even the right password is refused while locked, and nothing changes.
        assert "locked until" in text(sign_in(client))
        assert SESSION_MEMBER not in client.session
        assert login_row(portal_member).locked_until == login.locked_until

    def test_lock_ends_and_success_resets(self, client, portal_member):
        MemberLogin.objects.filter(pk=portal_member.pk).update(
            locked_until=timezone.now() - dt.timedelta(seconds=1), failed_attempts=2)
        assert sign_in(client).status_code == 302
        login = login_row(portal_member)
        assert (login.failed_attempts, login.locked_until) == (0, None)

    def test_per_ip_rate_limit(self, client, portal_member, settings):
        settings.PORTAL_SIGN_INS_PER_IP = 3
        for _ in range(3):
            sign_in(client, phone="+8613911112222")
        response = sign_in(client)  # right password, but this connection used up its tries
        assert "Too many tries from this connection" in text(response)
        assert SESSION_MEMBER not in client.session


class TestSignOut:
    def test_sign_out_is_post_only(self, portal_client):
        assert portal_client.get("/portal/sign-out/").status_code == 405
        assert portal_client.get("/portal/").status_code == 200
        assert portal_client.post("/portal/sign-out/")["Location"] == "/portal/sign-in/"
        assert portal_client.get("/portal/").status_code == 302

    def test_sign_out_everywhere_ends_other_sessions(self, portal_member):
        phone_browser, laptop = client_for(portal_member), client_for(portal_member)
        assert laptop.get("/portal/").status_code == 200
        assert phone_browser.get("/portal/sign-out/everywhere/").status_code == 405
        phone_browser.post("/portal/sign-out/everywhere/")
        assert laptop.get("/portal/").status_code == 302
        assert phone_browser.get("/portal/").status_code == 302
        assert login_row(portal_member).session_epoch == 1


# ---- activation and reset ----


class TestActivation:
    def test_activate_with_the_code_sets_the_password_and_signs_in(self, client, new_member,
                                                                   django_capture_on_commit_callbacks):
        response = request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        assert response["Location"] == "/portal/activate/code/"
        page = client.get("/portal/activate/code/")
        assert "If this number is registered, a code was sent" in text(page)
        assert "+86 139****0003" in text(page)
        assert "Demo only" not in text(page)  # DEBUG is off
        phone, message = MemoryBackend.outbox[-1]
        code = last_code()
        assert phone == new_member.phone and "10 minutes" in message
        row = OneTimeCode.objects.get(member=new_member)
        assert code not in row.code_hash  # only a hash is stored
        response = confirm(client, code)
        assert response["Location"] == "/portal/"
        assert client.session[SESSION_MEMBER] == new_member.pk
        login = login_row(new_member)
        assert login.activated_at is not None and login.session_epoch == 0
        row.refresh_from_db()
        assert row.used_at is not None
        client.post("/portal/sign-out/")
        assert sign_in(client, phone=new_member.phone, password=NEW_PASSWORD).status_code == 302

    def test_unknown_phone_reads_the_same_and_sends_nothing(self, client, db, django_capture_on_commit_callbacks):
        response = request_code(client, "+8613911112222", capture=django_capture_on_commit_callbacks)
        assert response["Location"] == "/portal/activate/code/"
        assert "If this number is registered" in text(client.get("/portal/activate/code/"))
        assert MemoryBackend.outbox == [] and not OneTimeCode.objects.exists()
        assert "The code is not right" in text(confirm(client, "123456"))
        assert not MemberLogin.objects.exists()

    def test_invalid_phone_is_refused(self, client, db):
        response = request_code(client, "12")
        assert response.status_code == 200 and "is not a valid phone number" in text(response)

    def test_code_page_without_a_request_goes_back_to_step_one(self, client, db):
        assert client.get("/portal/activate/code/")["Location"] == "/portal/activate/"

    def test_debug_shows_the_code_on_screen_labelled_demo_only(self, client, new_member, settings):
        settings.DEBUG = True
        request_code(client, new_member.phone)
        page = text(client.get("/portal/activate/code/"))
        assert "Demo only" in page and re.search(r'data-testid="demo-code">\d{6}<', page)


class TestCodeRefusals:
    @pytest.fixture
    def code(self, client, new_member, django_capture_on_commit_callbacks):
        request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        return last_code()

    def wrong(self, code):
        return f"{(int(code) + 1) % 10**6:06d}"

    def assert_not_activated(self, member):
        assert not MemberLogin.objects.filter(pk=member.pk).exists()

    def test_wrong_code_counts_an_attempt_and_changes_nothing_else(self, client, new_member, code):
        response = confirm(client, self.wrong(code))
        assert "The code is not right" in text(response)
        row = OneTimeCode.objects.get(member=new_member)
        assert row.attempts == 1 and row.used_at is None
        self.assert_not_activated(new_member)
        assert SESSION_MEMBER not in client.session

    def test_five_wrong_codes_kill_the_code(self, client, new_member, code):
        for _ in range(4):
            confirm(client, self.wrong(code))
        assert "Too many wrong codes" in text(confirm(client, self.wrong(code)))
        assert "Too many wrong codes" in text(confirm(client, code))  # the right one is dead too
        assert OneTimeCode.objects.get(member=new_member).attempts == 5
        self.assert_not_activated(new_member)

    def test_expired_code_is_refused(self, client, new_member, code):
        OneTimeCode.objects.filter(member=new_member).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        assert "The code has expired" in text(confirm(client, code))
        self.assert_not_activated(new_member)

    def test_a_new_code_voids_the_older_one(self, client, new_member, code, django_capture_on_commit_callbacks):
        cache.clear()  # past the resend cooldown
        request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        newer = last_code()
        if newer == code:  # one in a million
            pytest.skip("the two random codes are equal")
        assert "The code has expired or a newer one was sent" in text(confirm(client, code))
        self.assert_not_activated(new_member)
        assert confirm(client, newer).status_code == 302

    def test_used_code_is_refused(self, client, new_member, code):
        assert confirm(client, code).status_code == 302
        epoch = login_row(new_member).session_epoch
        response = confirm(client, code, password="Another-Pass-93")
        assert "This code was already used" in text(response)
        assert login_row(new_member).session_epoch == epoch
        assert sign_in(Client(), phone=new_member.phone, password=NEW_PASSWORD).status_code == 302

    @pytest.mark.parametrize("password,again,message", [
        ("short", "short", "This password is too short"),
        ("12345678901", "12345678901", "This password is entirely numeric"),
        ("password123", "password123", "This password is too common"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "The two passwords do not match"),
    ])
    def test_weak_or_mismatched_password_is_refused_and_the_code_kept(self, client, new_member, code,
                                                                       password, again, message):
        response = confirm(client, code, password=password, again=again)
        assert message in text(response)
        row = OneTimeCode.objects.get(member=new_member)
        assert (row.attempts, row.used_at) == (0, None)
        self.assert_not_activated(new_member)
        assert confirm(client, code).status_code == 302  # the code still works

    def test_malformed_code_is_refused_by_the_form(self, client, new_member, code):
        assert "The code has 6 digits" in text(confirm(client, "12ab"))
        assert OneTimeCode.objects.get(member=new_member).attempts == 0


class TestCodeLimits:
    def test_resend_cooldown(self, client, new_member, django_capture_on_commit_callbacks):
        request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        response = request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        assert "You can ask for a new one in" in text(response)
        assert len(MemoryBackend.outbox) == 1 and OneTimeCode.objects.count() == 1

    def test_cooldown_also_for_unknown_phones(self, client, db):
        request_code(client, "+8613911112222")
        assert "You can ask for a new one in" in text(request_code(client, "+8613911112222"))

    def test_hourly_cap_per_phone(self, client, new_member, settings, django_capture_on_commit_callbacks):
        settings.PORTAL_CODE_RESEND_SECONDS = 1
        for _ in range(5):
            cache.delete(f"portal:codes:cooldown:{new_member.phone}")
            request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        cache.delete(f"portal:codes:cooldown:{new_member.phone}")
        response = request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
        assert "Too many codes were asked for this number" in text(response)
        assert len(MemoryBackend.outbox) == 5 and OneTimeCode.objects.count() == 5

    def test_hourly_cap_per_ip(self, client, db, settings):
        settings.PORTAL_CODES_PER_IP_PER_HOUR = 2
        for n in range(2):
            request_code(client, f"+861391111222{n}")
        assert "Too many tries from this connection" in text(request_code(client, "+8613911112229"))


class TestReset:
    def test_reset_changes_the_password_and_signs_out_other_sessions(self, client, portal_member,
                                                                    django_capture_on_commit_callbacks):
        other = client_for(portal_member)
        assert other.get("/portal/").status_code == 200
        request_code(client, PHONE, flow="reset", capture=django_capture_on_commit_callbacks)
        assert "reset your member portal password" in MemoryBackend.outbox[-1][1]
        assert confirm(client, last_code(), flow="reset")["Location"] == "/portal/"
        assert client.get("/portal/").status_code == 200
        assert other.get("/portal/").status_code == 302
        assert login_row(portal_member).session_epoch == 1
        assert FAILED in text(sign_in(Client()))  # the old password is gone
        assert sign_in(Client(), password=NEW_PASSWORD).status_code == 302

    def test_activation_code_does_not_reset(self, client, portal_member, django_capture_on_commit_callbacks):
        request_code(client, PHONE, flow="activate", capture=django_capture_on_commit_callbacks)
        code = last_code()
        assert client.get("/portal/reset/code/")["Location"] == "/portal/reset/"
        client.session  # noqa: B018
        assert OneTimeCode.objects.get().purpose == "ACTIVATE"
        assert code  # the activation flow keeps its own code

    def test_reset_unlocks_a_locked_login(self, client, portal_member, django_capture_on_commit_callbacks):
        MemberLogin.objects.filter(pk=portal_member.pk).update(locked_until=timezone.now() + dt.timedelta(minutes=10))
        request_code(client, PHONE, flow="reset", capture=django_capture_on_commit_callbacks)
        confirm(client, last_code(), flow="reset")
        assert login_row(portal_member).locked_until is None


# ---- concurrency (PostgreSQL: real row locks) ----


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_each_count(portal_member):
    from tests.loyalty.test_concurrency import run_concurrently

    results = run_concurrently(12, lambda i: portal_sign_in(phone=PHONE, password=f"wrong-{i}", now=timezone.now()))
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"SignInFailed": 4, "LoginLocked": 8}, results
    assert login_row(portal_member).locked_until is not None


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_codes_each_count(new_member):
    from tests.loyalty.test_concurrency import run_concurrently

    sent = one_time_code_send(phone=new_member.phone, purpose=OneTimeCodePurpose.ACTIVATE, now=timezone.now())
    wrong = f"{(int(sent.code) + 1) % 10**6:06d}"
    results = run_concurrently(12, lambda i: one_time_code_use(
        phone=new_member.phone, purpose=OneTimeCodePurpose.ACTIVATE, code=wrong, password=NEW_PASSWORD,
        now=timezone.now()))
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"CodeWrong": 4, "CodeDead": 8}, results
    assert OneTimeCode.objects.get(member=new_member).attempts == 5
    assert not MemberLogin.objects.filter(pk=new_member.pk).exists()


def test_code_message_is_written_in_the_member_language(new_member, monkeypatch, django_capture_on_commit_callbacks):
    from django.utils import translation

    import members.services

    languages = []
    real = members.services._

    def spy(message):
        languages.append(translation.get_language())
        return real(message)

    monkeypatch.setattr(members.services, "_", spy)
    new_member.language = "zh-hans"
    new_member.save(update_fields=["language"])
    with django_capture_on_commit_callbacks(execute=True), translation.override("en"):
        one_time_code_send(phone=new_member.phone, purpose=OneTimeCodePurpose.ACTIVATE, now=timezone.now())
    assert languages == ["zh-hans"] and len(MemoryBackend.outbox) == 1


def test_send_a_new_code_uses_the_number_of_this_flow(client, new_member, django_capture_on_commit_callbacks):
    request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
    page = text(client.get("/portal/activate/code/"))
    assert 'name="resend"' in page and new_member.phone not in page  # the full number is not echoed
    cache.delete(f"portal:codes:cooldown:{new_member.phone}")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/activate/", {"resend": "1", "phone": "+8613911112222"})  # tampered
    assert response["Location"] == "/portal/activate/code/"
    assert [phone for phone, _text in MemoryBackend.outbox] == [new_member.phone, new_member.phone]
    assert OneTimeCode.objects.filter(member=new_member).count() == 2


@pytest.mark.parametrize("phone", ["{abc}", "{0}", "1{}2"])
def test_braces_in_a_phone_are_just_text(client, db, phone):
    response = request_code(client, phone)
    assert response.status_code == 200 and "phone number" in text(response)
    assert FAILED in text(sign_in(client, phone=phone))


def test_a_failing_sms_provider_is_logged_not_shown(client, new_member, settings, caplog,
                                                  django_capture_on_commit_callbacks):
    settings.PORTAL_SMS_BACKEND = "tests.portal.test_auth.BrokenBackend"
    response = request_code(client, new_member.phone, capture=django_capture_on_commit_callbacks)
    assert response["Location"] == "/portal/activate/code/"
    assert "could not be sent" in caplog.text


class BrokenBackend:
    def send(self, *, phone, text):
        raise ConnectionError("provider down")
