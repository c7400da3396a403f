"""Coupon templates and coupons (优惠券 / 满减券). A coupon is redeemed (核销) exactly once."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member, Store


class CouponKind(models.TextChoices):
    FIXED = "FIXED", _("Fixed amount off")
    PERCENT = "PERCENT", _("Percentage off")
    SPEND_SAVE = "SPEND_SAVE", _("Spend X, save Y (满减)")
    FREE_ITEM = "FREE_ITEM", _("Free item or experience")


class CouponTemplate(BaseModel):
    name = models.CharField(_("name"), max_length=100)
    name_zh_hans = models.CharField(_("name (Chinese)"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    description_zh_hans = models.TextField(_("description (Chinese)"), blank=True)
    image = models.ImageField(_("image"), upload_to="coupons/", blank=True)
    kind = models.CharField(_("kind"), max_length=12, choices=CouponKind.choices)
    amount = models.DecimalField(
        _("amount off"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("Fixed amount, or Y in spend X save Y."),
    )
    percent = models.DecimalField(
        _("percent off"), max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal(100))],
    )
    max_discount = models.DecimalField(
        _("maximum discount"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("Cap for a percentage coupon."),
    )
    minimum_spend = models.DecimalField(
        _("minimum spend"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal(0))], help_text=_("X in spend X save Y; the basket must reach it."),
    )
    free_item = models.CharField(_("free item"), max_length=100, blank=True)
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    valid_days = models.PositiveSmallIntegerField(
        _("valid days from issue"), null=True, blank=True, help_text=_("Instead of fixed dates: valid this many days from issue."),
    )
    stores = models.JSONField(_("stores"), default=list, blank=True, help_text=_("Store codes; empty: every store."))
    stacks_with_points = models.BooleanField(_("can be combined with paying with points"), default=True)
    stacks_with_coupons = models.BooleanField(_("can be combined with other coupons"), default=False)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("coupon template")
        verbose_name_plural = _("coupon templates")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=CouponKind.values), name="coupontemplate_kind_valid"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_until__gt=models.F("valid_from")),
                name="coupontemplate_validity_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CouponStatus(models.TextChoices):
    ISSUED = "ISSUED", _("Issued")
    REDEEMED = "REDEEMED", _("Redeemed")
    EXPIRED = "EXPIRED", _("Expired")
    VOID = "VOID", _("Void")


class CouponSource(models.TextChoices):
    REDEMPTION = "REDEMPTION", _("Reward redemption")
    CAMPAIGN = "CAMPAIGN", _("Campaign")
    BULK = "BULK", _("Bulk issue")
    DRAW = "DRAW", _("Lucky draw")
    STAFF = "STAFF", _("Staff")


class Coupon(BaseModel):
    """One coupon of one member. ``code``: random, unambiguous alphabet, with a check character."""

    template = models.ForeignKey(CouponTemplate, verbose_name=_("template"), on_delete=models.PROTECT, related_name="coupons")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="coupons")
    code = models.CharField(_("code"), max_length=20, unique=True)
    status = models.CharField(_("status"), max_length=8, choices=CouponStatus.choices, default=CouponStatus.ISSUED)
    source = models.CharField(_("source"), max_length=12, choices=CouponSource.choices)
    issued_at = models.DateTimeField(_("issued at"))
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    redeemed_store = models.ForeignKey(
        Store, verbose_name=_("redeemed at store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
    )
    redeemed_reference = models.CharField(_("redemption reference"), max_length=64, blank=True)
    discount = models.DecimalField(_("discount given"), max_digits=12, decimal_places=2, null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    redeem_idempotency_key = models.CharField(_("redemption idempotency key"), max_length=200, null=True, blank=True,
                                              unique=True)
    redeem_fingerprint = models.CharField(_("redemption request fingerprint"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CouponStatus.values), name="coupon_status_valid"),
            models.CheckConstraint(condition=~Q(status="REDEEMED") | Q(redeemed_at__isnull=False),
                                   name="coupon_redeemed_has_time"),
        ]
        indexes = [
            models.Index(fields=["member", "status", "valid_until"], name="coupon_member_idx"),
            models.Index(fields=["valid_until"], condition=Q(status="ISSUED"), name="coupon_expiry_due_idx"),
        ]

    def __str__(self) -> str:
        return self.code
