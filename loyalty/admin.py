"""Admin for the points engine: program settings, and the ledger read-only.

Ledger rows (accounts, transfers, lots, purchases, refunds) are view-only here: posted entries are
never edited or deleted (a mistake is corrected by a new, reversing entry through a service), and
points are given or taken only through "Adjust points" on the member page. The lists are built for
big tables: no full ``COUNT(*)`` (``LedgerPaginator``), no facet counts, no sorting that needs a full
sort, searches that are exact index lookups, and the related rows each column needs joined up front.
"""

import datetime as dt
import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from loyalty.models import Account, AccountKind, Lot, ProgramSettings, Purchase, Refund, Transfer
from loyalty.selectors import transfer_describe, transfer_signed_amount
from loyalty.services import program_settings_get
from members.admin import member_ids_exact, signed_points_text
from members.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin
from members.models import Member
from members.paginators import LedgerPaginator

# Joins every transfer column needs (member, signed amount, description in words): no N+1.
TRANSFER_RELATED = ["member", "debit_account", "credit_account", "purchase__store", "staff_user"]


def json_pretty(value: Any) -> str:
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )


def compact_time(value: dt.datetime | None) -> str:
    """``2026-03-04 10:00`` in the current time zone: narrow list columns leave room for descriptions."""
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i") if value else "—"


def member_link(member: Member | None) -> str:
    if member is None:
        return "—"
    return format_html('<a href="{}">{}</a>', reverse("admin:members_member_change", args=[member.pk]), member)


def exact_search(queryset: QuerySet, term: str, *, member_field: str, keys: list[str]) -> QuerySet:
    """Exact matches only: a member's phone or number (→ ``member_field`` in their ids) or one of ``keys``.

    Member ids are resolved first (unique indexes), so the ledger query is an ``IN`` on an indexed column
    OR-ed with unique-key equalities: index lookups, never a scan with ``LIKE``.
    """
    term = (term or "").strip()
    if not term:
        return queryset
    q = Q()
    for key in keys:
        q |= Q(**{key: term})
    if ids := member_ids_exact(term):
        q |= Q(**{f"{member_field}__in": ids})
    return queryset.filter(q)


class LedgerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """View-only admin for ledger tables: no add, change or delete, whoever asks.

    Every field shown is read-only (``get_readonly_fields`` returns the whole layout), so display-only
    methods can sit in ``fieldsets`` next to model fields.
    """

    actions = None
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LedgerPaginator
    sortable_by: list[str] = []  # ordering by any column but the primary key sorts the whole table
    list_per_page = 50
    search_keys: list[str] = []  # exact-match fields for the search box
    search_member_field = "member_id"
    detail_select_related: list[str] = []  # relations the detail page shows, fetched with the row


    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """As Django's, plus ``detail_select_related``: the detail page's relations in the same query."""
        queryset = self.get_queryset(request).select_related(*self.detail_select_related)
        field = self.opts.pk if from_field is None else self.opts.get_field(from_field)
        try:
            return queryset.get(**{field.name: field.to_python(object_id)})
        except (self.model.DoesNotExist, ValidationError, ValueError):
            return None

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        return exact_search(queryset, search_term, member_field=self.search_member_field, keys=self.search_keys), False


class LedgerInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True



class TransferDisplayMixin:
    @admin.display(description=_("points"))
    def signed_points(self, obj: Transfer) -> str:
        return signed_points_text(transfer_signed_amount(transfer=obj))

    @admin.display(description=_("description"))
    def description(self, obj: Transfer) -> str:
        return transfer_describe(transfer=obj)


# ---- PROGRAM SETTINGS ----


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(SingletonAdminMixin, admin.ModelAdmin):
    singleton_get = staticmethod(program_settings_get)
    """The single program configuration (pk=1): the list goes straight to it; no add, no delete.

    Model validators and ``ProgramSettings.clean`` run through the admin form, so bad values come back
    as field errors. Changes apply to points earned from then on; existing lots keep their expiry.
    """

    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (_("Points and currency"), {
            "fields": ["points_name", "currency", "time_zone", "points_value_points", "points_value_amount"],
            "description": _("What points are called, the money they are counted in, and what they are worth "
                             "when a member pays with them. Earning rates are set in rule sets."),
        }),
        (_("Expiry"), {
            "fields": ["expiry_policy", "expiry_months", "expiry_to_month_end", "clearance_month", "clearance_day"],
            "description": _("When earned points expire. Expiry is at the end of the day in the program time zone."),
        }),
        (_("Pending points and negative balances"), {
            "fields": ["pending_days", "negative_balance_policy"],
            "description": _("How long purchase points wait before they can be spent, and what a refund does "
                             "when the member has already spent the points it takes back."),
        }),
        (_("Member portal"), {
            "fields": ["birthday_member_edits"],
            "description": _("What members may change themselves in the portal."),
        }),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]



# ---- LEDGER ----


@admin.register(Account)
class AccountAdmin(LedgerAdmin):
    list_display = ["id", "kind", "unit", "owner", "credits_posted", "debits_posted", "cached_balance"]
    list_filter = ["kind", "unit"]
    list_select_related = ["member"]
    detail_select_related = ["member"]
    search_fields = ["system_code"]
    search_keys = ["system_code"]
    search_help_text = _("Member phone or member number, or a system account code (exact).")
    fieldsets = [
        (None, {"fields": ["id", "kind", "unit", "owner", "system_code"]}),
        (_("Figures"), {"fields": ["credits_posted", "debits_posted", "cached_balance", "derived_balance"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("owner"))
    def owner(self, obj: Account) -> str:
        return member_link(obj.member) if obj.member_id else obj.system_code

    @admin.display(description=_("balance"))
    def cached_balance(self, obj: Account) -> str:
        if obj.kind == AccountKind.SYSTEM:
            return "—"  # system accounts keep no cached figures (no hot row on the earn path)
        return str(obj.balance)

    @admin.display(description=_("balance from transfers"))
    def derived_balance(self, obj: Account) -> int:
        """Sum of the account's transfers (what ``ledger_audit`` compares the cache with). One account only."""
        credits = Transfer.objects.filter(credit_account=obj).aggregate(s=Sum("amount"))["s"] or 0
        debits = Transfer.objects.filter(debit_account=obj).aggregate(s=Sum("amount"))["s"] or 0
        return credits - debits


@admin.register(Transfer)
class TransferAdmin(TransferDisplayMixin, LedgerAdmin):
    # "points" is the amount signed from the member's side (+ credited, − taken, 0 between their accounts).
    list_display = ["id", "occurred", "member_column", "code", "signed_points", "description", "source"]
    list_filter = ["code", "source", ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = TRANSFER_RELATED
    search_fields = ["idempotency_key"]
    search_keys = ["idempotency_key"]
    search_help_text = _("Member phone or member number, or an idempotency key (exact).")
    detail_select_related = [*TRANSFER_RELATED, "refund", "reverses"]
    fieldsets = [
        (None, {"fields": ["id", "occurred_at", "member_column", "code", "amount", "unit", "signed_points",
                           "description", "source", "reason"]}),
        (_("Accounts"), {"fields": ["debit_account", "credit_account"]}),
        (_("References"), {"fields": ["purchase", "refund", "reverses", "staff_user"]}),
        (_("Breakdown"), {"fields": ["breakdown_pretty"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "fingerprint", "created_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("business time"))
    def occurred(self, obj: Transfer) -> str:
        return compact_time(obj.occurred_at)

    @admin.display(description=_("member"))
    def member_column(self, obj: Transfer) -> str:
        return member_link(obj.member)

    @admin.display(description=_("breakdown"))
    def breakdown_pretty(self, obj: Transfer) -> str:
        return json_pretty(obj.breakdown)


class LotOpenFilter(admin.SimpleListFilter):
    title = _("points left")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("Has points left")), ("no", _("Used up or expired"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(remaining__gt=0)
        if self.value() == "no":
            return queryset.filter(remaining=0)
        return queryset


class LotExpiryFilter(admin.SimpleListFilter):
    """Upcoming expiry of lots with points left (the partial index ``lot_expiry_due_idx`` serves it)."""

    title = _("expires")
    parameter_name = "expires"

    def lookups(self, request, model_admin):
        return [("7", _("Within 7 days")), ("30", _("Within 30 days")), ("never", _("Never"))]

    def queryset(self, request, queryset):
        value = self.value()
        if value in ("7", "30"):
            cutoff = timezone.now() + dt.timedelta(days=int(value))
            return queryset.filter(remaining__gt=0, pending=False, expires_at__lte=cutoff)
        if value == "never":
            return queryset.filter(expires_at__isnull=True)
        return queryset


@admin.register(Lot)
class LotAdmin(LedgerAdmin):
    list_display = ["id", "member_column", "amount", "remaining", "earned", "expires", "pending", "available",
                    "transfer_link"]
    list_filter = ["pending", LotOpenFilter, LotExpiryFilter]
    list_select_related = ["account__member"]
    detail_select_related = ["account__member", "transfer"]
    search_fields = ["id"]  # shows the search box; lots are found by member
    search_help_text = _("Member phone or member number (exact).")
    search_member_field = "account__member_id"
    fieldsets = [
        (None, {"fields": ["id", "member_column", "account", "transfer", "amount", "remaining"]}),
        (_("Dates"), {"fields": ["earned_at", "expires_at", "pending", "available_at"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        # Member → their account ids first, so the lot query is an IN on the indexed account column.
        accounts = list(Account.objects.filter(member_id__in=member_ids_exact(term)).values_list("pk", flat=True))
        return queryset.filter(account_id__in=accounts), False

    @admin.display(description=_("member"))
    def member_column(self, obj: Lot) -> str:
        return member_link(obj.account.member)

    @admin.display(description=_("earned at"))
    def earned(self, obj: Lot) -> str:
        return compact_time(obj.earned_at)

    @admin.display(description=_("expires at"))
    def expires(self, obj: Lot) -> str:
        return compact_time(obj.expires_at) if obj.expires_at else str(_("Never"))

    @admin.display(description=_("available at"))
    def available(self, obj: Lot) -> str:
        return compact_time(obj.available_at)

    @admin.display(description=_("credited by"))
    def transfer_link(self, obj: Lot) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("admin:loyalty_transfer_change", args=[obj.transfer_id]),
                           obj.transfer_id)


class PurchaseTransferInline(TransferDisplayMixin, LedgerInline):
    model = Transfer
    fk_name = "purchase"
    verbose_name = _("points movement")
    verbose_name_plural = _("points movements")
    fields = ["occurred_at", "code", "signed_points", "description", "source", "refund"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related(*TRANSFER_RELATED, "refund").order_by("occurred_at", "id")


class RefundTransferInline(PurchaseTransferInline):
    fk_name = "refund"
    fields = ["occurred_at", "code", "signed_points", "description", "source"]


class RefundInline(LedgerInline):
    model = Refund
    fields = ["occurred_at", "amount", "points_reversed", "points_returned", "debt_created", "staff_user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("staff_user").order_by("occurred_at", "id")


@admin.register(Purchase)
class PurchaseAdmin(LedgerAdmin):
    list_display = ["id", "occurred_at", "store", "external_id", "member_column", "total", "points_paid",
                    "points_earned", "refunded_amount", "channel"]
    list_filter = ["channel", "store", ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "store"]
    search_fields = ["external_id"]
    search_keys = ["external_id", "idempotency_key"]
    search_help_text = _("Member phone or member number, a receipt reference or an idempotency key (exact).")
    inlines = [PurchaseTransferInline, RefundInline]
    detail_select_related = ["member", "store", "staff_user", "rule_set", "tier", "payment_transfer"]
    fieldsets = [
        (None, {"fields": ["id", "member_column", "store", "external_id", "channel", "occurred_at", "staff_user"]}),
        (_("Payment"), {"fields": ["total", "points_paid", "points_paid_value", "payment_transfer", "coupon_discount",
                                   "stored_value_paid",
                                   "promo_codes"]}),
        (_("Earning"), {"fields": ["points_earned", "rule_set", "tier", "earn_breakdown_pretty"]}),
        (_("Refunds"), {"fields": ["refunded_amount", "points_reversed", "points_returned"]}),
        (_("Lines"), {"fields": ["lines_pretty"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "fingerprint", "created_at", "updated_at"],
                            "classes": ["collapse"]}),
    ]

    @admin.display(description=_("member"))
    def member_column(self, obj: Purchase) -> str:
        return member_link(obj.member)

    @admin.display(description=_("lines"))
    def lines_pretty(self, obj: Purchase) -> str:
        return json_pretty(obj.lines)

    @admin.display(description=_("earn breakdown"))
    def earn_breakdown_pretty(self, obj: Purchase) -> str:
        return json_pretty(obj.earn_breakdown)


@admin.register(Refund)
class RefundAdmin(LedgerAdmin):
    list_display = ["id", "occurred_at", "purchase_column", "member_column", "amount", "points_reversed",
                    "points_returned", "debt_created"]
    list_filter = [("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["purchase__member", "purchase__store"]
    search_fields = ["idempotency_key"]
    search_keys = ["idempotency_key", "purchase__external_id"]
    search_help_text = _("Member phone or member number, the purchase's receipt reference or an idempotency key (exact).")
    search_member_field = "purchase__member_id"
    inlines = [RefundTransferInline]
    detail_select_related = ["purchase__member", "purchase__store", "staff_user"]
    fieldsets = [
        (None, {"fields": ["id", "purchase_column", "member_column", "occurred_at", "amount", "staff_user"]}),
        (_("Points"), {"fields": ["points_reversed", "points_returned", "debt_created", "points_share"]}),
        (_("Lines"), {"fields": ["lines_pretty"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "fingerprint", "created_at", "updated_at"],
                            "classes": ["collapse"]}),
    ]

    @admin.display(description=_("purchase"))
    def purchase_column(self, obj: Refund) -> str:
        url = reverse("admin:loyalty_purchase_change", args=[obj.purchase_id])
        return format_html('<a href="{}">{} · {}</a>', url, obj.purchase.store.code, obj.purchase.external_id)

    @admin.display(description=_("member"))
    def member_column(self, obj: Refund) -> str:
        return member_link(obj.purchase.member)

    @admin.display(description=_("lines"))
    def lines_pretty(self, obj: Refund) -> str:
        return json_pretty(obj.lines)
