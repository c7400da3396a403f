"""Stored value (储值): top-ups with bonus rules. Money moves in the loyalty ledger in minor units (fen).

Each top-up credits a principal lot and, with a bonus rule, a bonus lot (optionally expiring); spends
consume lots in the program's order (bonus first by default). A top-up refund pays back only that
top-up's unspent principal and removes its unspent bonus.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from loyalty.models import Transfer
from members.models import BaseModel, Member, Store


class TopUpBonusRule(BaseModel):
    """充100送20: a top-up of at least ``minimum`` gets ``bonus``. The best matching active rule applies."""

    name = models.CharField(_("name"), max_length=100)
    minimum = models.DecimalField(_("top-up of at least"), max_digits=12, decimal_places=2,
                                  validators=[MinValueValidator(Decimal("0.01"))])
    bonus = models.DecimalField(_("bonus"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("top-up bonus rule")
        verbose_name_plural = _("top-up bonus rules")
        constraints = [models.CheckConstraint(condition=Q(bonus__gt=0) & Q(minimum__gt=0), name="topupbonusrule_positive")]

    def __str__(self) -> str:
        return self.name


class TopUp(BaseModel):
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="topups")
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    bonus = models.DecimalField(_("bonus"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    bonus_rule = models.ForeignKey(TopUpBonusRule, verbose_name=_("bonus rule"), on_delete=models.PROTECT, null=True,
                                   blank=True, related_name="+")
    reference = models.CharField(_("payment reference"), max_length=64, blank=True)
    occurred_at = models.DateTimeField(_("business time"))
    principal_transfer = models.ForeignKey(Transfer, verbose_name=_("principal"), on_delete=models.PROTECT, null=True,
                                           blank=True, related_name="+")
    bonus_transfer = models.ForeignKey(Transfer, verbose_name=_("bonus credit"), on_delete=models.PROTECT, null=True,
                                       blank=True, related_name="+")
    points_transfer = models.ForeignKey(Transfer, verbose_name=_("points earned"), on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    refunded_amount = models.DecimalField(_("refunded"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)

    class Meta:
        verbose_name = _("top-up")
        verbose_name_plural = _("top-ups")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_gt_0"),
            models.CheckConstraint(condition=Q(refunded_amount__gte=0, refunded_amount__lte=models.F("amount")),
                                   name="topup_refund_within_amount"),
        ]

    def __str__(self) -> str:
        return f"Top-up #{self.pk} {self.amount}"


class WalletSpend(BaseModel):
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="wallet_spends")
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    from_bonus = models.DecimalField(_("from bonus"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    from_principal = models.DecimalField(_("from principal"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    occurred_at = models.DateTimeField(_("business time"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)

    class Meta:
        verbose_name = _("stored value spend")
        verbose_name_plural = _("stored value spends")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="walletspend_amount_gt_0")]

    def __str__(self) -> str:
        return f"Spend #{self.pk} {self.amount}"


class WalletPreference(BaseModel):
    member = models.OneToOneField(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="wallet_preference")
    low_balance_threshold = models.DecimalField(
        _("low balance alert below"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0))],
    )

    class Meta:
        verbose_name = _("wallet preference")
        verbose_name_plural = _("wallet preferences")

    def __str__(self) -> str:
        return str(self.member_id)
