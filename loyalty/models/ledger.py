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


from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member

# ---- LEDGER ----


class Unit(models.TextChoices):
    POINTS = "POINTS", _("Points")
    # Stored value in the program currency's minor unit (fen): integer amounts, exact like points.
    MONEY = "MONEY", _("Stored value (minor units)")


class AccountKind(models.TextChoices):
    MEMBER_POINTS = "MEMBER_POINTS", _("Member points")
    MEMBER_PENDING = "MEMBER_PENDING", _("Member pending points")
    MEMBER_WALLET = "MEMBER_WALLET", _("Member stored value (principal)")
    MEMBER_WALLET_BONUS = "MEMBER_WALLET_BONUS", _("Member stored value (bonus)")
    SYSTEM = "SYSTEM", _("System")


class SystemAccount(models.TextChoices):
    ISSUANCE = "ISSUANCE", _("Issuance")
    REDEMPTION = "REDEMPTION", _("Redemption")
    BREAKAGE = "BREAKAGE", _("Expiry / breakage")
    ADJUSTMENT = "ADJUSTMENT", _("Adjustments")
    PARTNER = "PARTNER", _("Alliance partner")
    WALLET_FUNDING = "WALLET_FUNDING", _("Stored value paid in")
    WALLET_BONUS = "WALLET_BONUS", _("Stored value bonus given")
    WALLET_SPEND = "WALLET_SPEND", _("Stored value spent")
    WALLET_REFUND = "WALLET_REFUND", _("Stored value paid back")
    WALLET_BONUS_EXPIRY = "WALLET_BONUS_EXPIRY", _("Stored value bonus expired or removed")


class Account(BaseModel):
    """One member account per kind and unit, or a system account.

    Member accounts cache posted figures, bumped with ``F()`` under the row lock; system accounts keep
    zeros there and their balance is derived from transfers (one hot row would serialise all earns).
    A member points balance below zero is debt (refund clawback of points already spent).
    """

    kind = models.CharField(_("kind"), max_length=24, choices=AccountKind.choices)
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
            # Pending points and stored value can never be overdrawn; only the points account may carry debt.
            models.CheckConstraint(
                condition=Q(kind__in=["SYSTEM", "MEMBER_POINTS"]) | Q(credits_posted__gte=F("debits_posted")),
                name="account_member_not_negative",
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
    TOPUP = "TOPUP", _("Top-up")
    TOPUP_BONUS = "TOPUP_BONUS", _("Top-up bonus")
    SPEND = "SPEND", _("Stored value spent")
    TOPUP_REFUND = "TOPUP_REFUND", _("Top-up refunded")
    BONUS_REMOVED = "BONUS_REMOVED", _("Bonus removed")
    CANCEL = "CANCEL", _("Redemption cancelled")
    DRAW = "DRAW", _("Lucky draw")
    PRIZE = "PRIZE", _("Lucky draw prize")


class TransferSource(models.TextChoices):
    PURCHASE = "PURCHASE", _("Purchase")
    REFUND = "REFUND", _("Refund")
    TOPUP = "TOPUP", _("Top-up")
    STAFF = "STAFF", _("Staff")
    SCHEDULE = "SCHEDULE", _("Schedule")
    API = "API", _("API client")
    REDEMPTION = "REDEMPTION", _("Reward redemption")
    WALLET = "WALLET", _("Stored value")
    DRAW = "DRAW", _("Lucky draw")
    MEMBER = "MEMBER", _("Member (portal)")


class Transfer(models.Model):
    """Immutable movement of points from ``debit_account`` to ``credit_account``. Never edit: reverse."""

    # No single-column indexes: transfer_debit_idx / transfer_credit_idx (account, unit) serve them (two fewer per post).
    debit_account = models.ForeignKey(Account, verbose_name=_("debit account"), on_delete=models.PROTECT, related_name="+",
                                      db_index=False)
    credit_account = models.ForeignKey(Account, verbose_name=_("credit account"), on_delete=models.PROTECT,
                                       related_name="+", db_index=False)
    amount = models.BigIntegerField(_("amount"))
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices, default=Unit.POINTS)
    code = models.CharField(_("code"), max_length=16, choices=TransferCode.choices)
    member = models.ForeignKey(  # no index of its own: transfer_member_history_idx leads with it
        Member, verbose_name=_("member"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text=_("The member whose account moved (denormalised for the history)."), db_index=False,
    )
    occurred_at = models.DateTimeField(_("business time"))
    source = models.CharField(_("source"), max_length=16, choices=TransferSource.choices)
    purchase = models.ForeignKey("Purchase", verbose_name=_("purchase"), on_delete=models.PROTECT, null=True, blank=True, related_name="transfers")
    # refund, staff user and reverses are empty on most transfers: partial indexes (Meta) skip those rows.
    refund = models.ForeignKey("Refund", verbose_name=_("refund"), on_delete=models.PROTECT, null=True, blank=True,
                               related_name="transfers", db_index=False)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff user"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", db_index=False,
    )
    reverses = models.ForeignKey(
        "self", verbose_name=_("reverses"), on_delete=models.PROTECT, null=True, blank=True, related_name="reversals",
        db_index=False,
    )
    # Unique by a constraint, not unique=True: no second (LIKE-pattern) index to write; keys are only matched exactly.
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
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
            models.UniqueConstraint(fields=["idempotency_key"], name="transfer_unique_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["member", "-occurred_at", "-id"], name="transfer_member_history_idx"),
            models.Index(fields=["debit_account", "unit"], name="transfer_debit_idx"),
            models.Index(fields=["credit_account", "unit"], name="transfer_credit_idx"),
            models.Index(fields=["refund"], condition=Q(refund__isnull=False), name="transfer_refund_idx"),
            models.Index(fields=["staff_user"], condition=Q(staff_user__isnull=False), name="transfer_staff_user_idx"),
            models.Index(fields=["reverses"], condition=Q(reverses__isnull=False), name="transfer_reverses_idx"),
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


