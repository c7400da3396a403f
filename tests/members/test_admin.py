"""Merchant admin for stores and members: search, enrolment, profile edits, points panels, adjust points."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Account, Transfer, TransferCode
from loyalty.services import points_adjust
from members.models import Member, MemberStatus, Store
from members.paginators import EstimatedCountPaginator
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import balance, buy, row_counts

pytestmark = pytest.mark.django_db

requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="planner statistics (pg_class, EXPLAIN) exist on PostgreSQL only"
)


def changelist_url() -> str:
    return reverse("admin:members_member_changelist")


def change_url(member: Member) -> str:
    return reverse("admin:members_member_change", args=[member.pk])


def adjust_url(member: Member) -> str:
    return reverse("admin:members_member_adjust_points", args=[member.pk])


def listed_members(response) -> list[Member]:
    return list(response.context["cl"].result_list)


def count_queries(captured) -> list[str]:
    return [q["sql"] for q in captured if re.search(r"\bCOUNT\(", q["sql"], re.IGNORECASE)]


# ---- stores ----


class TestStoreAdmin:
    def test_changelist_search_and_active_filter(self, admin_client):
        StoreFactory(code="SH01", name="Shanghai Jing'an")
        StoreFactory(code="BJ01", name="Beijing Chaoyang", is_active=False)
        url = reverse("admin:members_store_changelist")

        assert admin_client.get(url).status_code == 200
        assert [s.code for s in admin_client.get(url, {"q": "SH01"}).context["cl"].result_list] == ["SH01"]
        assert [s.code for s in admin_client.get(url, {"q": "Chaoyang"}).context["cl"].result_list] == ["BJ01"]
        assert [s.code for s in admin_client.get(url, {"is_active__exact": "0"}).context["cl"].result_list] == ["BJ01"]

    def test_add_and_change_pages_load_and_delete_is_refused(self, admin_client):
        store = StoreFactory()

        assert admin_client.get(reverse("admin:members_store_add")).status_code == 200
        assert admin_client.get(reverse("admin:members_store_change", args=[store.pk])).status_code == 200
        assert admin_client.get(reverse("admin:members_store_delete", args=[store.pk])).status_code == 403
        assert Store.objects.filter(pk=store.pk).exists()


# ---- member list and search ----


class TestMemberSearch:
    @pytest.fixture
    def members(self, db):
        return {
            "wang": MemberFactory(phone="13800138000", name="Wang Fang"),
            "wangwu": MemberFactory(phone="13900139000", name="Wangwu Li"),
            "li": MemberFactory(phone="13700137000", name="Li Wang"),
            "zhang": MemberFactory(phone="13600136000", name="张伟"),
        }

    @pytest.mark.parametrize("term", ["13800138000", "+86 138 0013 8000", "138-0013-8000", "008613800138000",
                                      "+8613800138000", " 13800138000 "])
    def test_phone_in_any_usual_spelling_finds_the_member(self, admin_client, members, term):
        response = admin_client.get(changelist_url(), {"q": term})

        assert response.status_code == 200
        assert listed_members(response) == [members["wang"]]

    def test_member_number_finds_the_member(self, admin_client, members):
        member = members["li"]

        response = admin_client.get(changelist_url(), {"q": member.member_number})

        assert listed_members(response) == [member]

    def test_member_number_typed_with_spaces_finds_the_member(self, admin_client, members):
        number = members["li"].member_number
        spaced = f"{number[:4]} {number[4:8]} {number[8:]}"

        assert listed_members(admin_client.get(changelist_url(), {"q": spaced})) == [members["li"]]

    def test_name_prefix_finds_members_whose_name_starts_with_it_only(self, admin_client, members):
        response = admin_client.get(changelist_url(), {"q": "Wang"})

        assert set(listed_members(response)) == {members["wang"], members["wangwu"]}  # not "Li Wang"

    def test_chinese_name_prefix(self, admin_client, members):
        assert listed_members(admin_client.get(changelist_url(), {"q": "张"})) == [members["zhang"]]

    def test_partial_phone_finds_nothing_rather_than_scanning(self, admin_client, members):
        assert listed_members(admin_client.get(changelist_url(), {"q": "1380013"})) == []

    def test_search_sql_uses_exact_and_prefix_lookups_only(self, admin_client, members):
        with CaptureQueriesContext(connection) as ctx:
            admin_client.get(changelist_url(), {"q": "Wang"})

        member_sql = [q["sql"] for q in ctx.captured_queries if 'FROM "members_member"' in q["sql"]]
        assert member_sql
        assert not any("LIKE '%%" in sql or "LIKE '%" in sql for sql in member_sql)

    def test_status_and_home_store_filters(self, admin_client, members):
        store = StoreFactory()
        frozen = MemberFactory(home_store=store)
        Member.objects.filter(pk=frozen.pk).update(status=MemberStatus.FROZEN)

        by_status = admin_client.get(changelist_url(), {"status__exact": "FROZEN"})
        by_store = admin_client.get(changelist_url(), {"home_store__id__exact": store.pk})

        assert listed_members(by_status) == [frozen]
        assert listed_members(by_store) == [frozen]

    def test_changelist_joins_home_store_and_never_counts_the_whole_table_twice(self, admin_client, members):
        store = StoreFactory()
        for _ in range(5):
            MemberFactory(home_store=store)

        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(changelist_url())

        assert response.status_code == 200
        assert not response.context["cl"].show_full_result_count
        store_queries = [q for q in ctx.captured_queries if q["sql"].startswith('SELECT "members_store"')]
        assert len(store_queries) == 1  # the filter's choices; the rows come joined
        assert len(count_queries(ctx.captured_queries)) <= 1  # SQLite: the paginator's exact count only


# ---- paginator ----


class TestEstimatedCountPaginator:
    def test_sqlite_or_small_tables_count_exactly(self, member):
        paginator = EstimatedCountPaginator(Member.objects.order_by("-pk"), 10)

        assert paginator.count == 1
        assert paginator.count_is_estimate is False

    def test_lists_that_are_not_querysets_count_normally(self):
        paginator = EstimatedCountPaginator(list(range(25)), 10)

        assert paginator.count == 25
        assert paginator.num_pages == 3

    @requires_postgres
    def test_unfiltered_postgres_list_uses_the_planner_estimate_without_count(self):
        for _ in range(30):
            MemberFactory()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")
        paginator = EstimatedCountPaginator(Member.objects.select_related("home_store").order_by("-pk"), 10)
        paginator.estimate_threshold = 1

        with CaptureQueriesContext(connection) as ctx:
            count = paginator.count

        assert count_queries(ctx.captured_queries) == []
        assert paginator.count_is_estimate is True
        assert 20 <= count <= 40  # ANALYZE read every row of this small table: near exact
        assert paginator.num_pages == -(-count // 10)

    @requires_postgres
    def test_small_postgres_table_counts_exactly_below_the_threshold(self):
        for _ in range(3):
            MemberFactory()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")
        paginator = EstimatedCountPaginator(Member.objects.order_by("-pk"), 10)  # default threshold 10,000

        with CaptureQueriesContext(connection) as ctx:
            assert paginator.count == 3

        assert len(count_queries(ctx.captured_queries)) == 1
        assert paginator.count_is_estimate is False

    @requires_postgres
    def test_filtered_postgres_list_counts_exactly(self):
        for _ in range(3):
            MemberFactory()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")
        paginator = EstimatedCountPaginator(Member.objects.filter(status=MemberStatus.ACTIVE).order_by("-pk"), 10)
        paginator.estimate_threshold = 1

        with CaptureQueriesContext(connection) as ctx:
            assert paginator.count == 3

        assert len(count_queries(ctx.captured_queries)) == 1
        assert paginator.count_is_estimate is False

    @requires_postgres
    def test_member_changelist_on_postgres_shows_an_estimate_and_runs_no_count(self, admin_client, monkeypatch):
        for _ in range(12):
            MemberFactory()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")
        monkeypatch.setattr(EstimatedCountPaginator, "estimate_threshold", 1)

        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(changelist_url())

        assert response.status_code == 200
        assert count_queries(ctx.captured_queries) == []
        assert "about" in response.content.decode()
        searched = admin_client.get(changelist_url(), {"q": "Nobody"})
        assert searched.context["cl"].result_count == 0  # searches count exactly


# ---- enrolment (add) ----


class TestMemberAdd:
    def test_add_page_loads(self, admin_client):
        response = admin_client.get(reverse("admin:members_member_add"))

        assert response.status_code == 200
        assert "member_number" in response.context["adminform"].form.fields

    @pytest.mark.usefixtures("audit_clean")
    def test_adding_enrols_through_the_service_with_accounts_and_normalised_phone(self, admin_client, store):
        response = admin_client.post(reverse("admin:members_member_add"), {
            "phone": "+86 139 1234 5678", "name": "Chen Jing", "birthday": "1990-05-06", "home_store": store.pk,
            "member_number": "",
        })

        member = Member.objects.get()
        assert response.status_code == 302
        assert response["Location"] == changelist_url()
        assert member.phone == "+8613912345678"
        assert len(member.member_number) == 12
        assert member.home_store == store
        assert member.joined_at is not None
        assert Account.objects.filter(member=member).count() == 2  # points + pending, by member_enrol

    def test_save_and_continue_goes_to_the_new_member(self, admin_client):
        response = admin_client.post(reverse("admin:members_member_add"), {
            "phone": "13912345678", "name": "Chen Jing", "member_number": "880000000001", "_continue": "1",
        })

        member = Member.objects.get()
        assert member.member_number == "880000000001"
        assert response["Location"] == change_url(member)

    def test_taken_phone_is_refused_with_a_readable_error_and_writes_nothing(self, admin_client, member):
        national = member.phone.removeprefix("+86")

        response = admin_client.post(reverse("admin:members_member_add"), {"phone": national, "name": "Copy"})

        assert response.status_code == 200
        assert "A member with this phone number already exists." in response.content.decode()
        assert Member.objects.count() == 1
        assert Account.objects.filter(member__isnull=False).count() == 2

    @pytest.mark.parametrize(("phone", "message"), [
        ("hello", "is not a phone number"), ("1380013", "is not a valid phone number"), ("", "This field is required"),
    ])
    def test_bad_phone_is_refused_with_a_readable_error(self, admin_client, phone, message):
        response = admin_client.post(reverse("admin:members_member_add"), {"phone": phone, "name": "X"})

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not Member.objects.exists()

    def test_birthday_in_the_future_is_refused(self, admin_client):
        tomorrow = timezone.localdate() + dt.timedelta(days=1)

        response = admin_client.post(reverse("admin:members_member_add"),
                                     {"phone": "13912345678", "name": "X", "birthday": tomorrow.isoformat()})

        assert "The birthday is in the future." in response.content.decode()
        assert not Member.objects.exists()

    def test_service_refusal_is_shown_as_a_form_error(self, admin_client, monkeypatch):
        from loyalty.services.enrolment import MemberAlreadyExists

        def enrol_loses_a_race(**kwargs):
            raise MemberAlreadyExists()

        monkeypatch.setattr("members.admin.member_enrol", enrol_loses_a_race)

        response = admin_client.post(reverse("admin:members_member_add"), {"phone": "13912345678", "name": "X"})

        assert response.status_code == 200
        assert "A member with this phone number already exists." in response.content.decode()


# ---- profile edits ----


def change_data(member: Member, **overrides) -> dict:
    data = {
        "phone": member.phone, "name": member.name, "birthday": "", "status": member.status,
        "home_store": member.home_store_id or "",
    }
    data.update(overrides)
    return data


class TestMemberChange:
    def test_profile_edit_saves_plain_fields(self, admin_client, member, store):
        response = admin_client.post(change_url(member), change_data(
            member, name="New Name", birthday="1985-01-02", home_store=store.pk, status=MemberStatus.FROZEN,
        ))

        assert response.status_code == 302
        member.refresh_from_db()
        assert (member.name, member.birthday, member.home_store, member.status) == (
            "New Name", dt.date(1985, 1, 2), store, MemberStatus.FROZEN)

    def test_phone_edit_is_normalised(self, admin_client, member):
        admin_client.post(change_url(member), change_data(member, phone="139 8765 4321"))

        member.refresh_from_db()
        assert member.phone == "+8613987654321"

    def test_bad_phone_edit_shows_a_readable_error(self, admin_client, member):
        before = member.phone

        response = admin_client.post(change_url(member), change_data(member, phone="12345"))

        assert response.status_code == 200
        assert "“12345” is not a valid phone number." in response.content.decode()
        member.refresh_from_db()
        assert member.phone == before

    def test_phone_of_another_member_is_refused(self, admin_client, member):
        other = MemberFactory()

        response = admin_client.post(change_url(member), change_data(member, phone=other.phone.removeprefix("+86")))

        assert "A member with this phone number already exists." in response.content.decode()

    def test_member_cannot_be_deleted(self, admin_client, member):
        assert admin_client.get(reverse("admin:members_member_delete", args=[member.pk])).status_code == 403
        assert "delete_selected" not in admin_client.get(changelist_url()).content.decode()


# ---- change page: points panels ----


def grant(member, points, *, staff, key):
    return points_adjust(member=member, points=points, reason="setup", staff_user=staff, idempotency_key=key,
                         now=timezone.now())


@pytest.mark.usefixtures("audit_clean")
class TestMemberPointsPanels:
    def test_change_page_shows_summary_lots_and_history_in_words(self, admin_client, member, store, admin_user):
        at = timezone.now() - dt.timedelta(days=2)
        purchase = buy(member, store, "68.90", at=at)
        grant(member, 25, staff=admin_user, key="panel:1")

        response = admin_client.get(change_url(member))

        assert response.status_code == 200
        html = response.content.decode()
        summary = response.context["points_summary"]
        assert (summary.balance, summary.available, summary.pending, summary.debt) == (93, 93, 0, 0)
        assert len(response.context["open_lots"]) == 2
        rows = response.context["recent_transfers"]
        assert [row.signed for row in rows] == ["+25", "+68"]
        assert f"Purchase {purchase.external_id} at {store.name}" in html
        assert "Adjustment by admin: setup" in html
        assert adjust_url(member) in html
        assert 'id="points-summary"' in html and 'id="open-lots"' in html and 'id="recent-transfers"' in html

    def test_member_without_history(self, admin_client, member):
        html = admin_client.get(change_url(member)).content.decode()

        assert "No points movements yet." in html
        assert "No open lots." in html

    def test_change_page_query_count_does_not_grow_with_history(
        self, admin_client, member, store, admin_user, django_assert_max_num_queries
    ):
        buy(member, store, "10.00", at=timezone.now() - dt.timedelta(days=1))
        with CaptureQueriesContext(connection) as small:
            admin_client.get(change_url(member))

        for i in range(60):  # more than both panels show: 60 lots, 61 transfers
            grant(member, 5, staff=admin_user, key=f"panel:many:{i}")
        buy(member, store, "20.00", at=timezone.now() - dt.timedelta(hours=1))
        with django_assert_max_num_queries(len(small.captured_queries)):
            response = admin_client.get(change_url(member))

        assert len(response.context["recent_transfers"]) == 20
        assert len(response.context["open_lots"]) == 50
        assert response.context["more_lots"] is True
        # session, user, member, lots, transfers, accounts, expiring sum, program settings, content type,
        # stores for the home-store select: 10 on SQLite and PostgreSQL.
        assert len(small.captured_queries) <= 12


# ---- adjust points ----


def adjust_form(client, member) -> dict:
    response = client.get(adjust_url(member))
    assert response.status_code == 200
    token = response.context["form"].initial["token"]
    assert f'value="{token}"' in response.content.decode()  # hidden, drawn when the form was rendered
    return {"token": token}


@pytest.mark.usefixtures("audit_clean")
class TestAdjustPoints:
    def test_adding_points_writes_one_adjust_transfer_with_reason_and_staff(self, admin_client, admin_user, member):
        data = adjust_form(admin_client, member) | {"points": "150", "reason": "Compensation for late order"}

        response = admin_client.post(adjust_url(member), data, follow=True)

        assert response.redirect_chain[-1][0] == change_url(member)
        (transfer,) = Transfer.objects.filter(member=member)
        assert transfer.code == TransferCode.ADJUST
        assert transfer.amount == 150
        assert transfer.reason == "Compensation for late order"
        assert transfer.staff_user == admin_user
        assert balance(member) == 150
        assert "Added 150 points to" in response.content.decode()

    def test_removing_points(self, admin_client, admin_user, member):
        grant(member, 100, staff=admin_user, key="adj:setup")
        data = adjust_form(admin_client, member) | {"points": "-40", "reason": "Correction"}

        response = admin_client.post(adjust_url(member), data, follow=True)

        assert "Removed 40 points from" in response.content.decode()
        assert balance(member) == 60
        assert Transfer.objects.filter(member=member, code=TransferCode.ADJUST).count() == 2

    def test_missing_reason_is_refused_and_writes_nothing(self, admin_client, member):
        data = adjust_form(admin_client, member) | {"points": "100", "reason": "  "}
        before = row_counts()

        response = admin_client.post(adjust_url(member), data)

        assert response.status_code == 200
        assert response.context["form"].errors["reason"] == ["This field is required."]
        assert "This field is required." in response.content.decode()
        assert row_counts() == before

    def test_zero_points_is_refused(self, admin_client, member):
        data = adjust_form(admin_client, member) | {"points": "0", "reason": "nothing"}

        response = admin_client.post(adjust_url(member), data)

        assert "Enter a number of points other than zero." in response.content.decode()
        assert not Transfer.objects.exists()

    def test_double_submit_with_the_same_token_writes_one_transfer(self, admin_client, member):
        data = adjust_form(admin_client, member) | {"points": "80", "reason": "Birthday gift"}

        first = admin_client.post(adjust_url(member), data)
        second = admin_client.post(adjust_url(member), data)

        assert first.status_code == second.status_code == 302
        assert Transfer.objects.filter(member=member).count() == 1
        assert balance(member) == 80

    def test_two_forms_are_two_adjustments(self, admin_client, member):
        for _ in range(2):
            admin_client.post(adjust_url(member), adjust_form(admin_client, member) | {"points": "10", "reason": "x"})

        assert Transfer.objects.filter(member=member).count() == 2

    def test_reused_token_with_other_values_is_refused_and_offers_a_fresh_token(self, admin_client, member):
        data = adjust_form(admin_client, member) | {"points": "80", "reason": "Birthday gift"}
        admin_client.post(adjust_url(member), data)

        response = admin_client.post(adjust_url(member), data | {"points": "90"})

        assert response.status_code == 200
        assert "already used for a different adjustment" in response.content.decode()
        assert response.context["form"]["token"].value() != data["token"]
        assert Transfer.objects.filter(member=member).count() == 1

    def test_removing_more_than_the_balance_shows_insufficient_points_and_writes_nothing(
        self, admin_client, admin_user, member
    ):
        grant(member, 30, staff=admin_user, key="adj:30")
        data = adjust_form(admin_client, member) | {"points": "-50", "reason": "Mistake"}
        before = row_counts()

        response = admin_client.post(adjust_url(member), data)

        assert response.status_code == 200
        assert "Insufficient points: 30 available, 50 requested." in response.content.decode()
        assert row_counts() == before
        assert balance(member) == 30

    def test_closed_member_is_refused_by_the_service(self, admin_client, member):
        Member.objects.filter(pk=member.pk).update(status=MemberStatus.CLOSED)
        data = adjust_form(admin_client, member) | {"points": "10", "reason": "x"}

        response = admin_client.post(adjust_url(member), data)

        assert "This member account is closed." in response.content.decode()
        assert not Transfer.objects.exists()

    def test_tampered_token_is_refused(self, admin_client, member):
        response = admin_client.post(adjust_url(member), {"points": "10", "reason": "x", "token": "purchase:S1:T1"})

        assert "The form has expired" in response.content.decode()
        assert not Transfer.objects.exists()

    def test_unknown_member_is_404(self, admin_client):
        assert admin_client.get(reverse("admin:members_member_adjust_points", args=[999999])).status_code == 404


class TestAdjustPointsPermission:
    @pytest.fixture
    def cashier_client(self, client, django_user_model):
        user = django_user_model.objects.create_user(username="cashier2", password="pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(
            content_type__app_label="members", codename__in=["view_member", "change_member"]))
        client.force_login(user)
        return client, user

    def test_view_only_staff_see_the_member_read_only(self, client, django_user_model, member):
        user = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
        user.user_permissions.add(Permission.objects.get(content_type__app_label="members", codename="view_member"))
        client.force_login(user)

        page = client.get(change_url(member))
        post = client.post(change_url(member), change_data(member, name="Changed"))

        assert page.status_code == 200
        assert page.context["title"] == "View member"
        assert 'id="points-summary"' in page.content.decode()
        assert adjust_url(member) not in page.content.decode()
        assert post.status_code == 403
        assert client.get(reverse("admin:members_member_add")).status_code == 403

    def test_change_member_alone_may_not_adjust(self, cashier_client, member):
        client, _user = cashier_client

        assert client.get(change_url(member)).status_code == 200
        assert adjust_url(member) not in client.get(change_url(member)).content.decode()
        assert client.get(adjust_url(member)).status_code == 403
        assert client.post(adjust_url(member), {"points": "10", "reason": "x", "token": "0" * 32}).status_code == 403
        assert not Transfer.objects.exists()

    @pytest.mark.usefixtures("audit_clean")
    def test_with_add_transfer_the_cashier_may_adjust(self, cashier_client, member):
        client, user = cashier_client
        user.user_permissions.add(Permission.objects.get(content_type__app_label="loyalty", codename="add_transfer"))

        assert adjust_url(member) in client.get(change_url(member)).content.decode()
        response = client.post(adjust_url(member), {"points": "10", "reason": "x", "token": "a" * 32})

        assert response.status_code == 302
        assert Transfer.objects.get().staff_user == user

    @pytest.mark.usefixtures("audit_clean")
    def test_without_ledger_view_permission_the_history_has_no_ledger_links(self, cashier_client, member, admin_user):
        client, _user = cashier_client
        grant(member, 10, staff=admin_user, key="perm:links")

        html = client.get(change_url(member)).content.decode()

        assert "Adjustment by admin: setup" in html
        assert "/admin/loyalty/transfer/" not in html
