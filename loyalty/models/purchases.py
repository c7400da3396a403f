"""Purchases and refunds as recorded from the counter, POS or API."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member, Store

# ---- PURCHASES ----


class Channel(models.TextChoices):
    STORE = "STORE", _("In store")
    ONLINE = "ONLINE", _("Online")
    APP = "APP", _("App")
    OTHER = "OTHER", _("Other")


class Purchase(BaseModel):
    """A recorded sale. ``lines`` is a list of {sku, category, quantity, amount, refunded_quantity}."""

    # No single-column indexes: purchase_member_time_idx and the unique (store, external_id) lead with them.
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="purchases",
                               db_index=False)
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="purchases",
                              db_index=False)
    external_id = models.CharField(_("external reference"), max_length=64)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.STORE)
    occurred_at = models.DateTimeField(_("business time"))
    total = models.DecimalField(_("total"), max_digits=12, decimal_places=2)
    lines = models.JSONField(_("lines"), default=list)
    points_paid = models.BigIntegerField(_("points paid"), default=0)
    points_paid_value = models.DecimalField(_("paid with points"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    coupon_discount = models.DecimalField(
        _("coupon discount"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        help_text=_("Part of the total covered by coupons (earns nothing when the rules say so)."),
    )
    stored_value_paid = models.DecimalField(
        _("paid with stored value"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        help_text=_("Part of the total paid from the member's stored value."),
    )
    promo_codes = models.JSONField(_("promotion codes"), default=list, blank=True)
    payment_transfer = models.OneToOneField(
        "loyalty.Transfer", verbose_name=_("points payment"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="paid_purchase", help_text=_("The PAYMENT transfer that paid part of this purchase with points."),
    )
    tier = models.ForeignKey(
        "loyalty.Tier", verbose_name=_("tier at purchase"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
    )
    rule_set = models.ForeignKey(
        "loyalty.RuleSet", verbose_name=_("rule set"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
    )
    points_earned = models.BigIntegerField(_("points earned"), default=0)
    earn_breakdown = models.JSONField(
        _("earn breakdown"), default=dict, blank=True, help_text=_("How the points were computed, also when none were earned.")
    )
    refunded_amount = models.DecimalField(_("refunded amount"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    points_reversed = models.BigIntegerField(_("points reversed"), default=0)
    points_returned = models.BigIntegerField(_("points returned"), default=0)
    # Unique by a constraint, not unique=True: no second (LIKE-pattern) index to write; keys are only matched exactly.
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    staff_user = models.ForeignKey(  # empty for API and POS purchases: a partial index (Meta)
        settings.AUTH_USER_MODEL, verbose_name=_("staff user"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", db_index=False,
    )

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="purchase_unique_store_external_id"),
            models.UniqueConstraint(fields=["idempotency_key"], name="purchase_unique_idempotency_key"),
            models.CheckConstraint(condition=Q(total__gt=0), name="purchase_total_gt_0"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0, refunded_amount__lte=F("total")), name="purchase_refund_within_total"
            ),
            models.CheckConstraint(condition=Q(points_paid__gte=0, points_earned__gte=0), name="purchase_points_non_negative"),
        ]
        indexes = [
            models.Index(fields=["member", "-occurred_at"], name="purchase_member_time_idx"),
            models.Index(fields=["occurred_at"], name="purchase_time_idx"),
            models.Index(fields=["staff_user"], condition=Q(staff_user__isnull=False), name="purchase_staff_user_idx"),
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
