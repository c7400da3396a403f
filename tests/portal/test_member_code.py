"""The rotating member code: 18 digits that change every minute; the counter finds the member with it (the
member admin search) while it is current or one minute old, never after, and never from a malformed code."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from members.member_code import (
    member_code_current,
    member_code_groups,
    member_code_resolve,
    member_code_valid_until,
    member_id_mask,
)
from members.models import MemberStatus
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


T0 = dt.datetime(2026, 3, 4, 2, 0, 0, tzinfo=dt.UTC)  # on a minute boundary


class TestRotation:
    def test_shape(self, portal_member):
        code = member_code_current(member=portal_member, now=T0)
        assert re.fullmatch(r"[0-9]{18}", code)
        assert member_id_mask(int(code[:12]), inverse=True) == portal_member.pk
        assert member_code_groups(code) == f"{code[:4]} {code[4:8]} {code[8:12]} {code[12:15]} {code[15:]}"

    def test_same_within_a_step_and_new_in_the_next(self, portal_member):
        first = member_code_current(member=portal_member, now=T0)
        assert member_code_current(member=portal_member, now=T0 + dt.timedelta(seconds=59, microseconds=999999)) == first
        nxt = member_code_current(member=portal_member, now=T0 + dt.timedelta(seconds=60))
        assert nxt != first and nxt[:12] == first[:12]
        codes = {member_code_current(member=portal_member, now=T0 + dt.timedelta(minutes=m)) for m in range(30)}
        assert len(codes) >= 29  # 6 digits: a repeat within half an hour is a one-in-tens-of-thousands chance

    def test_depends_on_the_member_and_the_secret(self, portal_member, other_member, settings):
        mine = member_code_current(member=portal_member, now=T0)
        assert member_code_current(member=other_member, now=T0)[12:] != mine[12:]
        settings.SECRET_KEY = "another-secret"
        assert member_code_current(member=portal_member, now=T0) != mine

    def test_current_and_previous_step_resolve(self, portal_member):
        code = member_code_current(member=portal_member, now=T0)
        assert member_code_resolve(code=code, now=T0) == portal_member
        assert member_code_resolve(code=code, now=T0 + dt.timedelta(seconds=119)) == portal_member
        assert member_code_valid_until(now=T0 + dt.timedelta(seconds=30)) == T0 + dt.timedelta(seconds=120)

    def test_two_steps_old_and_future_codes_are_refused(self, portal_member):
        code = member_code_current(member=portal_member, now=T0)
        assert member_code_resolve(code=code, now=T0 + dt.timedelta(seconds=120)) is None
        assert member_code_resolve(code=code, now=T0 + dt.timedelta(hours=5)) is None
        future = member_code_current(member=portal_member, now=T0 + dt.timedelta(seconds=60))
        assert member_code_resolve(code=future, now=T0) is None

    def test_grouped_digits_typed_at_the_counter_resolve(self, portal_member):
        code = member_code_current(member=portal_member, now=T0)
        assert member_code_resolve(code=f" {member_code_groups(code)} ", now=T0) == portal_member
        assert member_code_resolve(code=f"{code[:9]}-{code[9:]}", now=T0) == portal_member

    @pytest.mark.parametrize("mangle", [
        lambda c: c[:-1],  # 17 digits
        lambda c: c + "0",  # 19 digits
        lambda c: c[:-1] + str((int(c[-1]) + 1) % 10),  # one digit off
        lambda c: c[:12] + "abcdef",
        lambda c: "".join(chr(0x0660 + int(d)) for d in c),  # Arabic-Indic digits
        lambda c: f"{member_id_mask(0):012d}" + c[12:],  # id 0
        lambda c: "",
        lambda c: None,
        lambda c: int(c),
    ])
    def test_malformed_codes_are_refused(self, portal_member, mangle):
        code = member_code_current(member=portal_member, now=T0)
        assert member_code_resolve(code=mangle(code), now=T0) is None

    def test_another_members_id_with_this_hmac_is_refused(self, portal_member, other_member):
        code = member_code_current(member=portal_member, now=T0)
        assert member_code_resolve(code=f"{member_id_mask(other_member.pk):012d}{code[12:]}", now=T0) is None

    def test_closed_member_resolves_to_nobody(self, portal_member):
        code = member_code_current(member=portal_member, now=T0)
        portal_member.status = MemberStatus.CLOSED
        portal_member.save(update_fields=["status"])
        assert member_code_resolve(code=code, now=T0) is None


class TestPortalEndpoint:
    def test_htmx_gets_the_partial_that_keeps_polling(self, portal_client, portal_member):
        response = portal_client.get("/portal/code/", HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert response.status_code == 200 and "<html" not in body
        assert 'hx-get="/portal/code/" hx-trigger="every 60s" hx-swap="outerHTML"' in body
        assert 'id="member-code"' in body and '<svg viewBox=' in body
        digits = re.search(r'class="code-digits" aria-live="polite">([0-9 ]+)<', body).group(1).replace(" ", "")
        assert member_code_resolve(code=digits, now=timezone.now()) == portal_member
        assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
        assert "HX-Request" in response["Vary"]

    def test_without_javascript_it_is_a_page_with_a_refresh_link(self, portal_client):
        body = portal_client.get("/portal/code/").content.decode()
        assert "<html" in body and "<h1>Your member code</h1>" in body
        assert 'href="/portal/code/">Refresh the code</a>' in body
        assert "this one until" in body

    def test_each_member_sees_their_own_code(self, portal_member, other_member):
        from tests.portal.conftest import client_for

        body = client_for(other_member).get("/portal/code/", HTTP_HX_REQUEST="true").content.decode()
        digits = re.search(r'class="code-digits" aria-live="polite">([0-9 ]+)<', body).group(1).replace(" ", "")
        assert member_code_resolve(code=digits, now=timezone.now()) == other_member


class TestCounterSearch:
    """The cashier scans (or types) the code into the member admin search."""

    def found(self, admin_client, term) -> list:
        response = admin_client.get(reverse("admin:members_member_changelist"), {"q": term})
        assert response.status_code == 200
        return list(response.context["cl"].result_list)

    def test_a_current_code_finds_exactly_that_member(self, admin_client, portal_member, other_member):
        MemberFactory.create_batch(3)
        code = member_code_current(member=portal_member, now=timezone.now())
        assert self.found(admin_client, code) == [portal_member]
        assert self.found(admin_client, member_code_groups(code)) == [portal_member]

    def test_a_code_from_the_minute_before_still_works(self, admin_client, portal_member, monkeypatch):
        at = timezone.now()
        code = member_code_current(member=portal_member, now=at - dt.timedelta(seconds=60))
        monkeypatch.setattr("members.admin.timezone.now", lambda: at)  # no minute may turn during the request
        assert self.found(admin_client, code) == [portal_member]

    def test_an_expired_or_wrong_code_finds_nobody(self, admin_client, portal_member, other_member):
        old = member_code_current(member=portal_member, now=timezone.now() - dt.timedelta(minutes=3))
        assert self.found(admin_client, old) == []
        wrong = old[:-1] + str((int(old[-1]) + 1) % 10)
        assert self.found(admin_client, wrong) == []

    def test_other_searches_still_work(self, admin_client, portal_member):
        assert self.found(admin_client, portal_member.member_number) == [portal_member]
        assert self.found(admin_client, portal_member.phone) == [portal_member]


def test_the_id_digits_are_a_permutation_that_hides_the_member_count():
    ids = list(range(1, 2001)) + [10**12 - 1, 999_999_999_999 // 7]
    masked = [member_id_mask(pk) for pk in ids]
    assert all(0 <= m < 10**12 for m in masked)
    assert len(set(masked)) == len(ids)  # one-to-one
    assert [member_id_mask(m, inverse=True) for m in masked] == ids
    assert sum(m < 10**9 for m in masked[:2000]) < 20  # small ids do not look small
