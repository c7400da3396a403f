"""Ledger admin (view-only) and program settings admin."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.contrib.admin import site
from django.contrib.admin.utils import flatten_fieldsets as flatten
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.admin import LedgerAdmin, ProgramSettingsAdmin
from loyalty.models import (
    Account,
    AccountKind,
    Lot,
    ProgramSettings,
    Purchase,
    Refund,
    SystemAccount,
    Transfer,
    TransferCode,
)
from loyalty.services import (
    points_adjust,
    points_expire_due,
    points_redeem,
    points_release_pending,
    program_settings_get,
    refund_record,
)
from members.paginators import LedgerPaginator
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import buy, program_set, row_counts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="planner statistics (pg_class, EXPLAIN) exist on PostgreSQL only"
)

LEDGER_MODELS = ["account", "transfer", "lot", "purchase", "refund"]


@pytest.fixture
def ledger(db, admin_user):
    """A member with every kind of ledger row, all written through the services."""
    now = timezone.now()
    store = StoreFactory(code="SH01", name="Jing'an")
    member = MemberFactory(phone="13800138000", name="Wang Fang", joined_at=now - dt.timedelta(days=90))
    other = MemberFactory(phone="13900139000", name="Li Lei", joined_at=now - dt.timedelta(days=90))
    program_set(expiry_months=1)
    old = buy(member, store, "30.00", at=now - dt.timedelta(days=45))  # expires 15 days ago
    points_expire_due(now=now)
    program_set(expiry_months=12)
    adjust = points_adjust(member=member, points=500, reason="Welcome gift", staff_user=admin_user,
                           idempotency_key="test:adjust:1", now=now - dt.timedelta(days=20))
    purchase = buy(member, store, "100.00", at=now - dt.timedelta(days=10), points_to_pay=100, external_id="R-1001")
    refund = refund_record(purchase=purchase, amount="50.00", occurred_at=now - dt.timedelta(days=9), now=now,
                           idempotency_key="test:refund:1")
    points_redeem(member=member, points=20, reason="Coffee", idempotency_key="test:redeem:1", now=now)
    program_set(pending_days=3)
    buy(member, store, "12.00", at=now - dt.timedelta(days=5), external_id="R-1002")
    buy(member, store, "8.00", at=now - dt.timedelta(days=1), external_id="R-1003")  # still pending
    points_release_pending(now=now)
    buy(other, store, "40.00", at=now - dt.timedelta(days=2), external_id="R-2001")
    return {"member": member, "other": other, "store": store, "purchase": purchase, "refund": refund,
            "adjust": adjust, "old": old}


def first_pk(model_name: str) -> int:
    model = {"account": Account, "transfer": Transfer, "lot": Lot, "purchase": Purchase, "refund": Refund}[model_name]
    return model.objects.order_by("pk").values_list("pk", flat=True).first()


def listed(response) -> list:
    return list(response.context["cl"].result_list)


class TestLedgerPagesLoad:
    def test_admin_index_lists_every_model(self, admin_client, ledger):
        html = admin_client.get(reverse("admin:index")).content.decode()

        for name in [*LEDGER_MODELS, "programsettings"]:
            assert f"/admin/loyalty/{name}/" in html

    @pytest.mark.parametrize("model_name", LEDGER_MODELS)
    def test_changelist_and_detail_load_with_data(self, admin_client, ledger, model_name):
        changelist = admin_client.get(reverse(f"admin:loyalty_{model_name}_changelist"))
        detail = admin_client.get(reverse(f"admin:loyalty_{model_name}_change", args=[first_pk(model_name)]))

        assert changelist.status_code == 200
        assert listed(changelist)
        assert detail.status_code == 200
        assert detail.context["title"].startswith("View ")  # read-only view, no form to save

    @pytest.mark.parametrize("model_name", LEDGER_MODELS)
    def test_changelists_load_empty(self, admin_client, model_name):
        assert admin_client.get(reverse(f"admin:loyalty_{model_name}_changelist")).status_code == 200

    @pytest.mark.parametrize("model_name", LEDGER_MODELS)
    def test_every_filter_choice_loads(self, admin_client, ledger, model_name):
        url = reverse(f"admin:loyalty_{model_name}_changelist")
        changelist = admin_client.get(url)

        for spec in changelist.context["cl"].filter_specs:
            for choice in spec.choices(changelist.context["cl"]):
                assert admin_client.get(url + choice["query_string"]).status_code == 200


class TestLedgerIsReadOnly:
    @pytest.mark.parametrize("model_name", LEDGER_MODELS)
    def test_add_change_and_delete_are_refused(self, admin_client, ledger, model_name):
        pk = first_pk(model_name)
        before = row_counts()

        changelist = admin_client.get(reverse(f"admin:loyalty_{model_name}_changelist"))
        add = admin_client.get(reverse(f"admin:loyalty_{model_name}_add"))
        change_post = admin_client.post(reverse(f"admin:loyalty_{model_name}_change", args=[pk]), {"amount": "1"})
        delete_get = admin_client.get(reverse(f"admin:loyalty_{model_name}_delete", args=[pk]))
        delete_post = admin_client.post(reverse(f"admin:loyalty_{model_name}_delete", args=[pk]), {"post": "yes"})
        bulk_delete = admin_client.post(reverse(f"admin:loyalty_{model_name}_changelist"),
                                        {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})

        assert reverse(f"admin:loyalty_{model_name}_add") not in changelist.content.decode()
        assert add.status_code == 403
        assert change_post.status_code == 403
        assert delete_get.status_code == 403
        assert delete_post.status_code == 403
        assert bulk_delete.status_code in (200, 302) and not changelist.context["cl"].model_admin.actions
        assert row_counts() == before

    @pytest.mark.parametrize("model", [Account, Transfer, Lot, Purchase, Refund])
    def test_detail_pages_show_every_field(self, model):
        """A field added to a ledger model must be placed on its detail page (JSON ones as ``<name>_pretty``)."""
        model_admin = site._registry[model]
        assert isinstance(model_admin, LedgerAdmin)
        shown = set(flatten(model_admin.fieldsets))

        missing = [
            f.name for f in model._meta.concrete_fields
            if f.name not in shown and f"{f.name}_pretty" not in shown
            and not (f.name == "member" and ({"member_column", "owner"} & shown))
            and not (f.name == "purchase" and "purchase_column" in shown)
        ]

        assert missing == []

    def test_detail_page_has_no_save_button(self, admin_client, ledger):
        html = admin_client.get(reverse("admin:loyalty_transfer_change", args=[ledger["adjust"].pk])).content.decode()

        assert 'name="_save"' not in html


class TestTransferAdmin:
    def test_list_shows_member_signed_amount_and_description_in_words(self, admin_client, ledger):
        html = admin_client.get(reverse("admin:loyalty_transfer_changelist")).content.decode()

        assert "Adjustment by admin: Welcome gift" in html
        assert "Paid 1.00 of purchase R-1001 with points" in html
        assert "Redeemed: Coffee" in html
        assert "Points earned on" in html and "expired" in html
        assert "Pending points became available" in html
        assert "+500" in html and "-100" in html and "-20" in html
        assert "Wang Fang" in html

    @pytest.mark.parametrize("term", ["13800138000", "+86 138 0013 8000", "+8613800138000"])
    def test_search_by_member_phone(self, admin_client, ledger, term):
        rows = listed(admin_client.get(reverse("admin:loyalty_transfer_changelist"), {"q": term}))

        assert rows
        assert {t.member_id for t in rows} == {ledger["member"].pk}
        assert len(rows) == Transfer.objects.filter(member=ledger["member"]).count()

    def test_search_by_member_number(self, admin_client, ledger):
        other = ledger["other"]

        rows = listed(admin_client.get(reverse("admin:loyalty_transfer_changelist"), {"q": other.member_number}))

        assert [t.member_id for t in rows] == [other.pk]

    def test_search_by_idempotency_key_is_exact(self, admin_client, ledger):
        url = reverse("admin:loyalty_transfer_changelist")

        assert listed(admin_client.get(url, {"q": "test:adjust:1"})) == [ledger["adjust"]]
        assert listed(admin_client.get(url, {"q": "test:adjust"})) == []

    def test_filters_by_code_and_source(self, admin_client, ledger):
        url = reverse("admin:loyalty_transfer_changelist")

        assert {t.code for t in listed(admin_client.get(url, {"code__exact": "EARN"}))} == {TransferCode.EARN}
        assert listed(admin_client.get(url, {"source__exact": "STAFF", "code__exact": "ADJUST"})) == [ledger["adjust"]]

    def test_detail_shows_breakdown_pretty_printed(self, admin_client, ledger):
        earn = Transfer.objects.get(purchase=ledger["purchase"], code=TransferCode.EARN)

        html = admin_client.get(reverse("admin:loyalty_transfer_change", args=[earn.pk])).content.decode()

        pretty = json.dumps(earn.breakdown, indent=2, ensure_ascii=False, sort_keys=True)
        assert "<pre" in html
        first_key = pretty.splitlines()[1].strip()
        assert first_key.replace('"', "&quot;") in html  # one key per line, escaped
        assert "Purchase R-1001 at Jing&#x27;an" in html

    def test_changelist_query_count_does_not_grow_with_rows(self, admin_client, ledger, admin_user,
                                                            django_assert_max_num_queries):
        url = reverse("admin:loyalty_transfer_changelist")
        with CaptureQueriesContext(connection) as few:
            admin_client.get(url)
        for i in range(60):
            points_adjust(member=ledger["other"], points=1, reason="x", staff_user=admin_user,
                          idempotency_key=f"test:many:{i}", now=timezone.now())

        with django_assert_max_num_queries(len(few.captured_queries)):
            response = admin_client.get(url)

        assert len(response.context["cl"].result_list) == 50
        assert len(few.captured_queries) <= 8

    def test_detail_query_count_is_bounded(self, admin_client, ledger, django_assert_max_num_queries):
        earn = Transfer.objects.get(purchase=ledger["purchase"], code=TransferCode.EARN)

        with django_assert_max_num_queries(8):
            assert admin_client.get(reverse("admin:loyalty_transfer_change", args=[earn.pk])).status_code == 200


class TestPurchaseAdmin:
    def test_detail_shows_its_transfers_and_refunds(self, admin_client, ledger):
        purchase = ledger["purchase"]

        response = admin_client.get(reverse("admin:loyalty_purchase_change", args=[purchase.pk]))

        html = response.content.decode()
        assert response.status_code == 200
        assert "Paid 1.00 of purchase R-1001 with points" in html
        assert "Purchase R-1001 at Jing&#x27;an: spent 99.00, earned 99 points" in html
        assert "Refund of purchase R-1001: points earned on the refunded part reversed" in html
        assert "Refund of purchase R-1001: points that paid for it returned" in html
        assert f"/admin/loyalty/refund/{ledger['refund'].pk}/change/" in html
        assert "<pre" in html  # lines and earn breakdown

    def test_detail_query_count_does_not_grow_with_transfers(self, admin_client, ledger,
                                                             django_assert_max_num_queries):
        purchase = ledger["purchase"]
        with CaptureQueriesContext(connection) as ctx:
            admin_client.get(reverse("admin:loyalty_purchase_change", args=[purchase.pk]))
        for i in range(2, 6):  # four more partial refunds: more transfers and refund rows
            refund_record(purchase=purchase, amount="5.00", occurred_at=timezone.now() - dt.timedelta(days=8),
                          now=timezone.now(), idempotency_key=f"test:refund:{i}")

        with django_assert_max_num_queries(len(ctx.captured_queries)):
            admin_client.get(reverse("admin:loyalty_purchase_change", args=[purchase.pk]))

    def test_search_by_receipt_reference_and_member(self, admin_client, ledger):
        url = reverse("admin:loyalty_purchase_changelist")

        assert [p.external_id for p in listed(admin_client.get(url, {"q": "R-1001"}))] == ["R-1001"]
        assert {p.external_id for p in listed(admin_client.get(url, {"q": "139 0013 9000"}))} == {"R-2001"}


class TestRefundAdmin:
    def test_detail_shows_its_transfers(self, admin_client, ledger):
        refund = ledger["refund"]

        html = admin_client.get(reverse("admin:loyalty_refund_change", args=[refund.pk])).content.decode()

        assert "Refund of purchase R-1001: points earned on the refunded part reversed" in html
        assert "R-1001" in html

    def test_search_by_purchase_reference(self, admin_client, ledger):
        rows = listed(admin_client.get(reverse("admin:loyalty_refund_changelist"), {"q": "R-1001"}))

        assert rows == [ledger["refund"]]


class TestLotAndAccountAdmin:
    def test_lot_search_and_filters(self, admin_client, ledger):
        url = reverse("admin:loyalty_lot_changelist")
        member = ledger["member"]

        by_member = listed(admin_client.get(url, {"q": member.member_number}))
        open_lots = listed(admin_client.get(url, {"q": member.member_number, "open": "yes"}))
        pending = listed(admin_client.get(url, {"pending__exact": "1"}))

        assert {lot.account.member_id for lot in by_member} == {member.pk}
        assert all(lot.remaining > 0 for lot in open_lots) and len(open_lots) < len(by_member)
        assert {lot.transfer.purchase.external_id for lot in pending} == {"R-1003", "R-2001"}  # within 3 days
        assert listed(admin_client.get(url, {"expires": "never"})) == []

    def test_account_list_shows_cached_balances_and_system_detail_derives_it(self, admin_client, ledger):
        issuance = Account.objects.get(kind=AccountKind.SYSTEM, system_code=SystemAccount.ISSUANCE)
        member_account = Account.objects.get(member=ledger["member"], kind=AccountKind.MEMBER_POINTS)

        system_page = admin_client.get(reverse("admin:loyalty_account_change", args=[issuance.pk]))
        member_page = admin_client.get(reverse("admin:loyalty_account_change", args=[member_account.pk]))

        credits = sum(Transfer.objects.filter(credit_account=issuance).values_list("amount", flat=True))
        debits = sum(Transfer.objects.filter(debit_account=issuance).values_list("amount", flat=True))
        assert f"<div class=\"readonly\">{credits - debits}</div>" in system_page.content.decode()
        assert f"<div class=\"readonly\">{member_account.balance}</div>" in member_page.content.decode()

    def test_account_search_by_system_code(self, admin_client, ledger):
        rows = listed(admin_client.get(reverse("admin:loyalty_account_changelist"), {"q": "ISSUANCE"}))

        assert [a.system_code for a in rows] == ["ISSUANCE"]


class TestLedgerPaginator:
    def test_sqlite_counts_exactly(self, ledger):
        paginator = LedgerPaginator(Transfer.objects.filter(code=TransferCode.EARN).order_by("-pk"), 10)

        assert paginator.count == Transfer.objects.filter(code=TransferCode.EARN).count()

    @requires_postgres
    def test_big_filtered_ledger_list_uses_the_explain_estimate_without_count(self, ledger):
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE loyalty_transfer")
        paginator = LedgerPaginator(Transfer.objects.filter(code=TransferCode.EARN).order_by("-pk"), 10)
        paginator.estimate_threshold = 1

        with CaptureQueriesContext(connection) as ctx:
            count = paginator.count

        assert not [q for q in ctx.captured_queries if re.search(r"\bCOUNT\(", q["sql"], re.IGNORECASE)]
        assert any(q["sql"].startswith("EXPLAIN") for q in ctx.captured_queries)
        assert paginator.count_is_estimate is True
        assert count >= 1

    @requires_postgres
    def test_small_filtered_ledger_list_counts_exactly(self, ledger):
        paginator = LedgerPaginator(Transfer.objects.filter(member=ledger["other"]).order_by("-pk"), 10)

        assert paginator.count == Transfer.objects.filter(member=ledger["other"]).count()
        assert paginator.count_is_estimate is False


class TestProgramSettingsAdmin:
    def test_changelist_redirects_to_the_single_record_created_with_defaults(self, admin_client):
        assert not ProgramSettings.objects.exists()

        response = admin_client.get(reverse("admin:loyalty_programsettings_changelist"))

        assert response.status_code == 302
        assert response["Location"] == reverse("admin:loyalty_programsettings_change", args=[1])
        assert ProgramSettings.objects.get().pk == 1

    def test_change_page_groups_fields(self, admin_client, program):
        response = admin_client.get(reverse("admin:loyalty_programsettings_change", args=[1]))

        html = response.content.decode()
        assert response.status_code == 200
        for heading in ["Points and currency", "Expiry", "Pending points and negative balances"]:
            assert heading in html
        assert "Purchase points stay pending" in html  # help text

    def test_no_add_and_no_delete(self, admin_client, program):
        changelist = admin_client.get(reverse("admin:loyalty_programsettings_change", args=[1]))

        assert admin_client.get(reverse("admin:loyalty_programsettings_add")).status_code == 403
        assert admin_client.get(reverse("admin:loyalty_programsettings_delete", args=[1])).status_code == 403
        assert 'class="deletelink"' not in changelist.content.decode()
        assert ProgramSettings.objects.count() == 1

    def form_data(self, program, **overrides) -> dict:
        admin_form = ProgramSettingsAdmin(ProgramSettings, site).get_form(None, program)
        data = {name: getattr(program, name) for name in admin_form.base_fields}
        data["expiry_to_month_end"] = "on" if program.expiry_to_month_end else ""
        data.update(overrides)
        return data

    def test_valid_change_is_saved(self, admin_client, program):
        response = admin_client.post(reverse("admin:loyalty_programsettings_change", args=[1]),
                                     self.form_data(program, points_value_points=200, pending_days=7))

        assert response.status_code == 302
        program = program_settings_get()
        assert (program.points_value_points, program.pending_days) == (200, 7)
        assert program.points_value_amount == Decimal("1.00")

    @pytest.mark.parametrize(("overrides", "field", "message"), [
        ({"expiry_policy": "YEARLY", "clearance_month": 2, "clearance_day": 30}, "clearance_day",
         "That month has no such day."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "is not a known time zone."),
        ({"expiry_months": 0}, "expiry_months", "greater than or equal to 1"),
    ])
    def test_invalid_values_show_field_errors(self, admin_client, program, overrides, field, message):
        response = admin_client.post(reverse("admin:loyalty_programsettings_change", args=[1]),
                                     self.form_data(program, **overrides))

        assert response.status_code == 200
        assert message in " ".join(response.context["adminform"].form.errors[field])
        assert message.replace("“", "&ldquo;") in response.content.decode() or message in response.content.decode()
        assert program_settings_get().time_zone == "Asia/Shanghai"
