"""Portal history: every points transfer newest first with its reason and signed amount, the breakdown on
tap (HTMX partial or a page of its own), filters, keyset pages without gaps or duplicates, each lot's state."""

import datetime as dt
import re
from decimal import Decimal
from html import unescape

import pytest
from django.utils import timezone

from loyalty.models import MemberTier, Tier, Transfer, Unit
from loyalty.selectors import history_cursor_decode, history_cursor_encode, member_transfers
from loyalty.services import points_adjust, points_expire_due, points_redeem
from rewards.services.wallet import wallet_topup
from tests.loyalty.helpers import buy, program_set, rules_publish
from tests.portal.conftest import client_for

pytestmark = pytest.mark.django_db


def squash(response) -> str:
    return unescape(re.sub(r"\s+", " ", response.content.decode()))


def entry_ids(body: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li id="entry-(\d+)"', body)]


def next_link(body: str) -> str | None:
    m = re.search(r'<a href="([^"]+)" rel="next">', body)
    return unescape(m.group(1)) if m else None


@pytest.fixture
def gold(db):
    Tier.objects.create(code="silver", name="Silver", rank=0, spend_threshold=Decimal(0))
    return Tier.objects.create(code="gold", name="Gold", rank=1, spend_threshold=Decimal(10**6),
                               earn_multiplier=Decimal("1.2"))


class TestList:
    def test_newest_first_with_reason_sign_and_date(self, portal_client, portal_member, store, audit_clean):
        now = timezone.now()
        buy(portal_member, store, "100.00", at=now - dt.timedelta(days=3), external_id="A-1")
        points_redeem(member=portal_member, points=30, reason="Coffee mug", idempotency_key="mug",
                      now=now - dt.timedelta(days=1))

        body = squash(portal_client.get("/portal/history/"))

        first, second = body.index("Redeemed: Coffee mug"), body.index("Purchase A-1 at")
        assert first < second
        assert re.search(r"Redeemed: Coffee mug</a> <span class=\"num neg\">−30</span>", body)
        assert re.search(r"spent 100.00, earned 100 points</a> <span class=\"num pos\">\+100</span>", body)
        assert "<time datetime=" in body

    def test_only_points_transfers(self, portal_client, portal_member, audit_clean):
        rules_publish(topup_points=1, topup_spend=Decimal("10.00"))
        wallet_topup(member=portal_member, amount="50.00", now=timezone.now(), idempotency_key="top")
        body = squash(portal_client.get("/portal/history/"))
        money = Transfer.objects.filter(member=portal_member).exclude(unit=Unit.POINTS).values_list("pk", flat=True)
        assert money and not set(money) & set(entry_ids(body))
        assert "Top-up of" in body  # the points the top-up earned are points history

    def test_empty_history(self, portal_client):
        assert "Nothing here yet." in squash(portal_client.get("/portal/history/"))


class TestBreakdown:
    def test_tap_loads_the_breakdown_partial(self, portal_client, portal_member, store, gold, audit_clean):
        rules_publish(modifiers=[{"name": "Double points day", "value": Decimal(2)}])
        MemberTier.objects.create(member=portal_member, tier=gold, since=timezone.now())
        purchase = buy(portal_member, store, "100.00", at=timezone.now() - dt.timedelta(hours=1))
        earn = purchase.transfers.get(code="EARN")

        listing = squash(portal_client.get("/portal/history/"))
        assert f'hx-get="/portal/history/{earn.pk}/" hx-target="#detail-{earn.pk}"' in listing
        partial = squash(portal_client.get(f"/portal/history/{earn.pk}/", HTTP_HX_REQUEST="true"))

        assert "<html" not in partial
        assert "Gold ×1.2: +20" in partial
        assert "Double points day ×2: +120" in partial
        assert f"Total: {earn.amount} points" in partial

    def test_without_javascript_it_is_a_page(self, portal_client, portal_member, store, audit_clean):
        earn = buy(portal_member, store, "10.00", at=timezone.now()).transfers.get(code="EARN")
        page = squash(portal_client.get(f"/portal/history/{earn.pk}/"))
        assert "<html" in page and "<h1>History entry</h1>" in page
        assert "Base: 10 points" in page
        assert 'href="/portal/history/"' in page

    def test_spend_says_which_points_it_took(self, portal_client, portal_member, store, audit_clean):
        program_set(expiry_months=3)
        buy(portal_member, store, "50.00", at=timezone.now() - dt.timedelta(days=5))
        redeem = points_redeem(member=portal_member, points=20, reason="Pen", idempotency_key="pen", now=timezone.now())
        body = squash(portal_client.get(f"/portal/history/{redeem.pk}/", HTTP_HX_REQUEST="true"))
        assert re.search(r"20 points taken from points expiring on \w+\.? \d+, \d{4}", body)

    def test_expiry_says_when_the_points_were_earned(self, portal_client, portal_member, store, audit_clean):
        program_set(expiry_months=1)
        buy(portal_member, store, "30.00", at=timezone.now() - dt.timedelta(days=50))
        points_expire_due(now=timezone.now())
        expiry = Transfer.objects.get(member=portal_member, code="EXPIRE")
        body = squash(portal_client.get(f"/portal/history/{expiry.pk}/", HTTP_HX_REQUEST="true"))
        assert re.search(r"Earned on \w+\.? \d+, \d{4}; expired at the end of \w+\.? \d+, \d{4}", body)

    def test_other_members_and_stored_value_transfers_are_404(self, portal_client, other_member, portal_member, store,
                                                               audit_clean):
        theirs = buy(other_member, store, "10.00", at=timezone.now()).transfers.get(code="EARN")
        wallet_topup(member=portal_member, amount="10.00", now=timezone.now(), idempotency_key="t")
        mine_money = Transfer.objects.filter(member=portal_member, unit=Unit.MONEY).first()
        for pk in (theirs.pk, mine_money.pk, 10**9):
            assert portal_client.get(f"/portal/history/{pk}/").status_code == 404
            assert portal_client.get(f"/portal/history/{pk}/", HTTP_HX_REQUEST="true").status_code == 404
        assert portal_client.post(f"/portal/history/{theirs.pk}/").status_code == 405


class TestFilters:
    @pytest.fixture
    def mixed(self, portal_member, store, staff, audit_clean):
        program_set(expiry_months=1)
        now = timezone.now()
        old = buy(portal_member, store, "40.00", at=now - dt.timedelta(days=45), external_id="OLD")
        points_expire_due(now=now)
        buy(portal_member, store, "70.00", at=now - dt.timedelta(days=5), external_id="NEW")
        points_redeem(member=portal_member, points=10, reason="Sticker", idempotency_key="st", now=now)
        points_adjust(member=portal_member, points=5, reason="Sorry for the wait", staff_user=staff,
                      idempotency_key="adj", now=now)
        return old

    @pytest.mark.parametrize("kind,present,absent", [
        ("earned", ["Purchase NEW", "Purchase OLD"], ["Sticker", "Points earned on", "Sorry"]),
        ("spent", ["Redeemed: Sticker"], ["Purchase", "Sorry"]),
        ("expired", ["Points earned on"], ["Purchase NEW", "Sticker"]),
        ("adjusted", ["Adjustment by cashier: Sorry for the wait"], ["Purchase", "Sticker"]),
    ])
    def test_kind(self, portal_client, mixed, kind, present, absent):
        body = squash(portal_client.get(f"/portal/history/?kind={kind}"))
        listing = body[body.index('id="history-list"'):]
        for text in present:
            assert text in listing, text
        for text in absent:
            assert text not in listing, text
        assert f'href="?kind={kind}" aria-current="true"' in body

    def test_chips_keep_the_dates_and_pages_keep_the_filters(self, portal_client, mixed):
        body = squash(portal_client.get("/portal/history/?kind=spent&date_from=2020-01-01"))
        assert 'href="?kind=earned&date_from=2020-01-01">Earned</a>' in body
        assert 'href="?date_from=2020-01-01">All</a>' in body
        assert 'name="kind" value="spent"' in body  # the date form keeps the kind
        assert 'value="2020-01-01"' in body

    def test_date_range_in_local_dates(self, portal_client, mixed):
        today = timezone.localdate()
        since = (today - dt.timedelta(days=10)).isoformat()
        body = squash(portal_client.get(f"/portal/history/?date_from={since}&date_to={today.isoformat()}"))
        listing = body[body.index('id="history-list"'):]
        assert "Purchase NEW" in listing and "Sticker" in listing
        assert "Purchase OLD" not in listing and "Points earned on" not in listing
        until = (today - dt.timedelta(days=30)).isoformat()
        listing = squash(portal_client.get(f"/portal/history/?date_to={until}"))
        assert "Purchase OLD" in listing and "Purchase NEW" not in listing

    @pytest.mark.parametrize("query,message", [
        ("date_from=2026-05-01&date_to=2026-04-01", "The start date is after the end date."),
        ("date_from=yesterday", "Enter a valid date."),
        ("kind=everything", "Select a valid choice."),
        ("date_to=9999-12-31", "Ensure this value is less than or equal to"),
        ("date_from=0001-01-01", "Ensure this value is greater than or equal to"),
    ])
    def test_bad_filters_get_a_message_and_the_full_list(self, portal_client, mixed, query, message):
        response = portal_client.get(f"/portal/history/?{query}")
        assert response.status_code == 200
        body = squash(response)
        assert message in body
        assert "Purchase NEW" in body and "Sticker" in body

    def test_lot_states(self, portal_client, portal_member, mixed):
        body = squash(portal_client.get("/portal/history/"))
        old_earn = mixed.transfers.get(code="EARN")
        row = body[body.index(f'id="entry-{old_earn.pk}"'):]
        row = row[:row.index("</li>")]
        assert re.search(r'lot-expired">expired \w+\.? \d+, \d{4}<', row)
        new_earn = Transfer.objects.get(purchase__external_id="NEW", code="EARN")
        row = body[body.index(f'id="entry-{new_earn.pk}"'):]
        row = row[:row.index("</li>")]
        assert re.search(r'lot-open">60 left; expires \w+\.? \d+, \d{4}<', row)  # 10 of 70 spent on the sticker

    def test_used_and_pending_states(self, portal_client, portal_member, store, audit_clean):
        spent = buy(portal_member, store, "20.00", at=timezone.now() - dt.timedelta(days=2)).transfers.get(code="EARN")
        points_redeem(member=portal_member, points=20, reason="All of it", idempotency_key="all", now=timezone.now())
        program_set(pending_days=14)
        waiting = buy(portal_member, store, "30.00", at=timezone.now()).transfers.get(code="EARN")
        body = squash(portal_client.get("/portal/history/"))
        assert re.search(rf'id="entry-{spent.pk}".*?lot-used">used<', body)
        assert re.search(rf'id="entry-{waiting.pk}".*?lot-pending">pending until ', body)


class TestPages:
    def _many(self, member, store, n):
        """``n`` purchases, in groups of three at the very same business time (ties the keyset must break)."""
        start = timezone.now() - dt.timedelta(days=n)
        for i in range(n):
            buy(member, store, f"{5 + i}.00", at=start + dt.timedelta(days=i // 3))

    def test_pages_have_no_gaps_or_duplicates(self, portal_member, store, audit_clean):
        self._many(portal_member, store, 47)
        client = client_for(portal_member)
        expected = list(member_transfers(member=portal_member).values_list("pk", flat=True))
        seen, url, pages = [], "/portal/history/", 0
        while url:
            body = squash(client.get(url))
            seen += entry_ids(body)
            url = next_link(body)
            pages += 1
        assert seen == expected
        assert pages == 3

    def test_htmx_sentinel_loads_the_next_rows_only(self, portal_member, store, audit_clean):
        self._many(portal_member, store, 25)
        client = client_for(portal_member)
        first = squash(client.get("/portal/history/?kind=earned"))
        sentinel = re.search(r'<li id="history-more" hx-get="([^"]+)" hx-trigger="revealed" hx-swap="outerHTML">', first)
        assert sentinel and "kind=earned" in unescape(sentinel.group(1))
        rows = squash(client.get(unescape(sentinel.group(1)), HTTP_HX_REQUEST="true"))
        assert "<html" not in rows and "<form" not in rows
        assert len(entry_ids(rows)) == 5 and not set(entry_ids(rows)) & set(entry_ids(first))
        assert 'id="history-more"' not in rows  # the last page

    def test_a_malformed_cursor_shows_the_first_page(self, portal_client, portal_member, store, audit_clean):
        buy(portal_member, store, "10.00", at=timezone.now())
        for cursor in ("x", "12_", "_5", "-1_2", "9" * 39 + "_1", "١٢_٣"):
            response = portal_client.get("/portal/history/", {"after": cursor})
            assert response.status_code == 200
            assert len(entry_ids(squash(response))) == 1

    def test_cursor_round_trip(self):
        at = dt.datetime(2026, 3, 4, 10, 0, 0, 123456, tzinfo=dt.UTC)
        assert history_cursor_decode(history_cursor_encode(occurred_at=at, transfer_id=42)) == (at, 42)

    @pytest.mark.parametrize("n", [3, 60])
    def test_query_count_is_constant(self, n, portal_member, store, django_assert_max_num_queries, audit_clean):
        program_set(expiry_months=1)
        start = timezone.now() - dt.timedelta(days=70)
        for i in range(n):
            buy(portal_member, store, f"{5 + i}.00", at=start + dt.timedelta(hours=i))
        points_expire_due(now=timezone.now())  # emptied, expired lots: the third query runs
        client = client_for(portal_member)
        client.get("/portal/history/")
        # session, login, program settings, transfers (+ purchase, store, accounts, staff), lots, and the
        # expiries of emptied lots past their date (only when the page has some)
        with django_assert_max_num_queries(6):
            body = squash(client.get("/portal/history/"))
        assert len(entry_ids(body)) == min(2 * n, 20)  # each purchase and its expiry
        if n > 20:
            with django_assert_max_num_queries(6):
                rows = squash(client.get(next_link(body), HTTP_HX_REQUEST="true"))
            assert len(entry_ids(rows)) == 20
        earn = Transfer.objects.filter(member=portal_member, code="EARN").order_by("pk").last()
        # session, login, program settings, the transfer, its lot, its expiry
        with django_assert_max_num_queries(6):
            assert client.get(f"/portal/history/{earn.pk}/", HTTP_HX_REQUEST="true").status_code == 200
