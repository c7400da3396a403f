"""The points engine: program settings (参数设置), the double-entry ledger, purchases and refunds.

Ledger invariants (checked by ``manage.py ledger_audit``):

* every transfer debits one account and credits another of the same unit, amount > 0;
* transfers are append-only: corrections are new transfers (``reverses`` points at the original);
* a member account's cached ``credits_posted``/``debits_posted`` equal the sums of its transfers;
  system accounts keep no cached figures (no hot row on the earn path), their balance is derived;
* per unit, the balances of all accounts sum to zero;
* a member's points balance equals the remaining points of their available lots minus their debt,
  and their pending balance equals the remaining points of their pending lots; no lot is negative.
"""

import calendar
import datetime as dt
import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member, Store

# ---- PROGRAM SETTINGS ----


class ExpiryPolicy(models.TextChoices):
    MONTHS = "MONTHS", _("N months after earning")
    YEARLY = "YEARLY", _("Fixed yearly clearance date")
    NEVER = "NEVER", _("Never")


class NegativeBalancePolicy(models.TextChoices):
    DEBT = "DEBT", _("No negative balance: take what is available, record the rest as debt")
    ALLOW_NEGATIVE = "ALLOW_NEGATIVE", _("Allow a negative balance")


class EarnRounding(models.TextChoices):
    FLOOR_ORDER = "FLOOR_ORDER", _("Round down once per order")
    FLOOR_LINE = "FLOOR_LINE", _("Round down per line")


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(_("“%(value)s” is not a known time zone."), params={"value": value}) from None


class ProgramSettings(BaseModel):
    """The single program configuration (pk=1). Read it with ``program_settings_get()``."""

    points_name = models.CharField(_("points name"), max_length=32, default="Points")
    currency = models.CharField(_("currency"), max_length=3, default="CNY", help_text=_("ISO 4217 code, e.g. CNY."))
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_time_zone],
        help_text=_("Business time zone: expiry dates and daily limits follow it."),
    )
    points_value_points = models.PositiveIntegerField(
        _("points"), default=100, validators=[MinValueValidator(1)],
        help_text=_("Value of points when paying with them: this many points …"),
    )
    points_value_amount = models.DecimalField(
        _("are worth"), max_digits=12, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("… this much money (default 100 points = 1.00)."),
    )
    earn_points = models.PositiveIntegerField(
        _("earn points"), default=1, help_text=_("Base purchase rate: this many points …")
    )
    earn_spend = models.DecimalField(
        _("per amount spent"), max_digits=12, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("… for every this much spent (default 1 point per 1.00)."),
    )
    earn_rounding = models.CharField(
        _("rounding"), max_length=16, choices=EarnRounding.choices, default=EarnRounding.FLOOR_ORDER
    )
    earn_minimum_spend = models.DecimalField(
        _("minimum spend to earn"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
    )
    expiry_policy = models.CharField(_("expiry policy"), max_length=8, choices=ExpiryPolicy.choices, default=ExpiryPolicy.MONTHS)
    expiry_months = models.PositiveSmallIntegerField(
        _("expiry months"), default=12, validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text=_("With “N months after earning”: points expire this many months after they are earned."),
    )
    expiry_to_month_end = models.BooleanField(
        _("extend to month end"), default=False, help_text=_("Points expire at the end of the month they would expire in.")
    )
    clearance_month = models.PositiveSmallIntegerField(
        _("clearance month"), default=12, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    clearance_day = models.PositiveSmallIntegerField(
        _("clearance day"), default=31, validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text=_("With a yearly clearance: points earned in one year expire on this date of the next year (年底清零)."),
    )
    pending_days = models.PositiveSmallIntegerField(
        _("pending days"), default=0, validators=[MaxValueValidator(365)],
        help_text=_("Purchase points stay pending (not spendable) this many days, e.g. the return window."),
    )
    negative_balance_policy = models.CharField(
        _("negative balance policy"), max_length=16, choices=NegativeBalancePolicy.choices, default=NegativeBalancePolicy.DEBT,
        help_text=_("What happens when a refund claws back points the member has already spent."),
    )

    class Meta:
        verbose_name = _("program settings")
        verbose_name_plural = _("program settings")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="programsettings_singleton"),
            models.CheckConstraint(condition=Q(expiry_policy__in=ExpiryPolicy.values), name="programsettings_expiry_policy_valid"),
        ]

    def __str__(self) -> str:
        return str(_("Program settings"))

    def clean(self) -> None:
        if self.expiry_policy == ExpiryPolicy.YEARLY:
            last = calendar.monthrange(2001, self.clearance_month)[1]  # non-leap year: no 29 Feb clearance
            if self.clearance_day > last:
                raise ValidationError({"clearance_day": _("That month has no such day.")})

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def expires_at_for(self, earned_at: dt.datetime) -> dt.datetime | None:
        """Expiry of points earned at ``earned_at``: end of a local day (23:59:59.999999)."""
        local = earned_at.astimezone(self.tz).date()
        if self.expiry_policy == ExpiryPolicy.NEVER:
            return None
        if self.expiry_policy == ExpiryPolicy.YEARLY:
            day = dt.date(local.year + 1, self.clearance_month, self.clearance_day)
        else:
            day = add_months(local, self.expiry_months)
            if self.expiry_to_month_end:
                day = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        return end_of_local_day(day, self.tz)

    def points_to_money(self, points: int) -> Decimal:
        return (Decimal(points) * self.points_value_amount / self.points_value_points).quantize(Decimal("0.01"))


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_local_day(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.max, tzinfo=tz)


# ---- LEDGER ----


class Unit(models.TextChoices):
    POINTS = "POINTS", _("Points")


class AccountKind(models.TextChoices):
    MEMBER_POINTS = "MEMBER_POINTS", _("Member points")
    MEMBER_PENDING = "MEMBER_PENDING", _("Member pending points")
    SYSTEM = "SYSTEM", _("System")


class SystemAccount(models.TextChoices):
    ISSUANCE = "ISSUANCE", _("Issuance")
    REDEMPTION = "REDEMPTION", _("Redemption")
    BREAKAGE = "BREAKAGE", _("Expiry / breakage")
    ADJUSTMENT = "ADJUSTMENT", _("Adjustments")


class Account(BaseModel):
    """One member account per kind and unit, or a system account.

    Member accounts cache posted figures, bumped with ``F()`` under the row lock; system accounts keep
    zeros there and their balance is derived from transfers (one hot row would serialise all earns).
    A member points balance below zero is debt (refund clawback of points already spent).
    """

    kind = models.CharField(_("kind"), max_length=16, choices=AccountKind.choices)
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices, default=Unit.POINTS)
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    system_code = models.CharField(_("system account"), max_length=32, blank=True)
    credits_posted = models.BigIntegerField(_("credits posted"), default=0)
    debits_posted = models.BigIntegerField(_("debits posted"), default=0)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "kind", "unit"], condition=Q(member__isnull=False), name="account_one_per_member_kind_unit"
            ),
            models.UniqueConstraint(
                fields=["system_code", "unit"], condition=Q(kind="SYSTEM"), name="account_one_per_system_code_unit"
            ),
            models.CheckConstraint(
                condition=(Q(kind="SYSTEM", member__isnull=True) & ~Q(system_code=""))
                | (~Q(kind="SYSTEM") & Q(member__isnull=False, system_code="")),
                name="account_owner_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(credits_posted__gte=0, debits_posted__gte=0), name="account_posted_figures_non_negative"
            ),
            # Pending points can never be overdrawn; the points account may carry debt.
            models.CheckConstraint(
                condition=~Q(kind="MEMBER_PENDING") | Q(credits_posted__gte=F("debits_posted")),
                name="account_pending_not_negative",
            ),
            models.CheckConstraint(condition=Q(kind__in=AccountKind.values), name="account_kind_valid"),
        ]

    def __str__(self) -> str:
        if self.kind == AccountKind.SYSTEM:
            return f"{self.get_kind_display()}:{self.system_code}:{self.unit}"
        return f"{self.get_kind_display()}:{self.member_id}:{self.unit}"

    @property
    def is_system(self) -> bool:
        return self.kind == AccountKind.SYSTEM

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted


class TransferCode(models.TextChoices):
    EARN = "EARN", _("Earn")
    RELEASE = "RELEASE", _("Pending points released")
    PAYMENT = "PAYMENT", _("Paid with points")
    REDEEM = "REDEEM", _("Redeem")
    EXPIRE = "EXPIRE", _("Expire")
    REVERSAL = "REVERSAL", _("Reversal (refund)")
    RETURN = "RETURN", _("Points returned (refund)")
    ADJUST = "ADJUST", _("Adjustment")


class TransferSource(models.TextChoices):
    PURCHASE = "PURCHASE", _("Purchase")
    REFUND = "REFUND", _("Refund")
    STAFF = "STAFF", _("Staff")
    SCHEDULE = "SCHEDULE", _("Schedule")
    API = "API", _("API client")


class Transfer(models.Model):
    """Immutable movement of points from ``debit_account`` to ``credit_account``. Never edit: reverse."""

    debit_account = models.ForeignKey(Account, verbose_name=_("debit account"), on_delete=models.PROTECT, related_name="+")
    credit_account = models.ForeignKey(Account, verbose_name=_("credit account"), on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField(_("amount"))
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices, default=Unit.POINTS)
    code = models.CharField(_("code"), max_length=16, choices=TransferCode.choices)
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text=_("The member whose account moved (denormalised for the history)."),
    )
    occurred_at = models.DateTimeField(_("business time"))
    source = models.CharField(_("source"), max_length=16, choices=TransferSource.choices)
    purchase = models.ForeignKey("Purchase", verbose_name=_("purchase"), on_delete=models.PROTECT, null=True, blank=True, related_name="transfers")
    refund = models.ForeignKey("Refund", verbose_name=_("refund"), on_delete=models.PROTECT, null=True, blank=True, related_name="transfers")
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff user"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reverses = models.ForeignKey(
        "self", verbose_name=_("reverses"), on_delete=models.PROTECT, null=True, blank=True, related_name="reversals"
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True, help_text=_("Free text given by staff or a partner."))
    breakdown = models.JSONField(_("breakdown"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_gt_0"),
            models.CheckConstraint(condition=~Q(debit_account=F("credit_account")), name="transfer_distinct_accounts"),
            models.CheckConstraint(condition=Q(code__in=TransferCode.values), name="transfer_code_valid"),
        ]
        indexes = [
            models.Index(fields=["member", "-occurred_at", "-id"], name="transfer_member_history_idx"),
            models.Index(fields=["debit_account", "unit"], name="transfer_debit_idx"),
            models.Index(fields=["credit_account", "unit"], name="transfer_credit_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.code} {self.amount}"


class Lot(BaseModel):
    """Points credited to a member, consumed soonest-expiring first (then oldest, never-expiring last)."""

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="lots")
    transfer = models.ForeignKey(Transfer, verbose_name=_("credited by"), on_delete=models.PROTECT, related_name="lots")
    amount = models.BigIntegerField(_("amount"))
    remaining = models.BigIntegerField(_("remaining"))
    earned_at = models.DateTimeField(_("earned at"))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, help_text=_("Empty: never expires."))
    pending = models.BooleanField(_("pending"), default=False)
    available_at = models.DateTimeField(_("available at"))

    class Meta:
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_gt_0"),
            models.CheckConstraint(condition=Q(remaining__gte=0, remaining__lte=F("amount")), name="lot_remaining_in_range"),
        ]
        indexes = [
            models.Index(
                fields=["account", "expires_at", "earned_at", "id"], condition=Q(remaining__gt=0), name="lot_open_by_account_idx"
            ),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0, pending=False), name="lot_expiry_due_idx"),
            models.Index(fields=["available_at"], condition=Q(pending=True), name="lot_pending_due_idx"),
        ]

    def __str__(self) -> str:
        return f"Lot #{self.pk} {self.remaining}/{self.amount}"


# ---- PURCHASES ----


class Channel(models.TextChoices):
    STORE = "STORE", _("In store")
    ONLINE = "ONLINE", _("Online")
    APP = "APP", _("App")
    OTHER = "OTHER", _("Other")


class Purchase(BaseModel):
    """A recorded sale. ``lines`` is a list of {sku, category, quantity, amount, refunded_quantity}."""

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="purchases")
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="purchases")
    external_id = models.CharField(_("external reference"), max_length=64)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.STORE)
    occurred_at = models.DateTimeField(_("business time"))
    total = models.DecimalField(_("total"), max_digits=12, decimal_places=2)
    lines = models.JSONField(_("lines"), default=list)
    points_paid = models.BigIntegerField(_("points paid"), default=0)
    points_paid_value = models.DecimalField(_("paid with points"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    points_earned = models.BigIntegerField(_("points earned"), default=0)
    earn_breakdown = models.JSONField(
        _("earn breakdown"), default=dict, blank=True, help_text=_("How the points were computed, also when none were earned.")
    )
    refunded_amount = models.DecimalField(_("refunded amount"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    points_reversed = models.BigIntegerField(_("points reversed"), default=0)
    points_returned = models.BigIntegerField(_("points returned"), default=0)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff user"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="purchase_unique_store_external_id"),
            models.CheckConstraint(condition=Q(total__gt=0), name="purchase_total_gt_0"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0, refunded_amount__lte=F("total")), name="purchase_refund_within_total"
            ),
            models.CheckConstraint(condition=Q(points_paid__gte=0, points_earned__gte=0), name="purchase_points_non_negative"),
        ]
        indexes = [
            models.Index(fields=["member", "-occurred_at"], name="purchase_member_time_idx"),
            models.Index(fields=["occurred_at"], name="purchase_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.external_id}"

    @property
    def refundable_amount(self) -> Decimal:
        return self.total - self.refunded_amount


class Refund(BaseModel):
    purchase = models.ForeignKey(Purchase, verbose_name=_("purchase"), on_delete=models.PROTECT, related_name="refunds")
    occurred_at = models.DateTimeField(_("business time"))
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    lines = models.JSONField(_("lines"), default=list, blank=True)
    points_reversed = models.BigIntegerField(_("points reversed"), default=0)
    points_returned = models.BigIntegerField(_("points returned"), default=0)
    debt_created = models.BigIntegerField(_("debt created"), default=0)
    points_share = models.DecimalField(
        _("share of earned points"), max_digits=20, decimal_places=6, default=Decimal(0),
        help_text=_("Unrounded points of the refunded part, by the purchase's breakdown."),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff user"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0")]

    def __str__(self) -> str:
        return f"Refund #{self.pk} of {self.purchase_id}"
