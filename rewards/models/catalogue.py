"""The rewards catalogue (积分商城) and redemptions (积分兑换)."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from loyalty.models import Tier, Transfer
from members.models import BaseModel, Member, Store
from rewards.models.coupons import Coupon, CouponTemplate


class RewardKind(models.TextChoices):
    GOODS = "GOODS", _("Goods")
    SERVICE = "SERVICE", _("Service")
    COUPON = "COUPON", _("Coupon")
    STORED_VALUE = "STORED_VALUE", _("Stored-value credit")
    TIER_UPGRADE = "TIER_UPGRADE", _("Tier upgrade")
    DONATION = "DONATION", _("Donation to a cause")


class LimitPeriod(models.TextChoices):
    DAY = "DAY", _("per day")
    WEEK = "WEEK", _("per week")
    MONTH = "MONTH", _("per month")
    YEAR = "YEAR", _("per year")
    EVER = "EVER", _("in total")


class Reward(BaseModel):
    name = models.CharField(_("name"), max_length=100)
    name_zh_hans = models.CharField(_("name (Chinese)"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    description_zh_hans = models.TextField(_("description (Chinese)"), blank=True)
    image = models.ImageField(_("image"), upload_to="rewards/", blank=True)
    kind = models.CharField(_("kind"), max_length=14, choices=RewardKind.choices, default=RewardKind.GOODS)
    points_cost = models.PositiveBigIntegerField(_("points"), validators=[MinValueValidator(1)])
    cash_price = models.DecimalField(_("plus cash"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
                                     validators=[MinValueValidator(Decimal(0))])
    stock = models.PositiveIntegerField(_("stock"), null=True, blank=True, help_text=_("Empty: unlimited."))
    limit_per_member = models.PositiveIntegerField(_("limit per member"), null=True, blank=True)
    limit_period = models.CharField(_("limit period"), max_length=5, choices=LimitPeriod.choices, default=LimitPeriod.EVER)
    tiers = models.ManyToManyField(Tier, verbose_name=_("only for tiers"), blank=True, related_name="+")
    available_from = models.DateTimeField(_("available from"), null=True, blank=True)
    available_until = models.DateTimeField(_("available until"), null=True, blank=True)
    coupon_template = models.ForeignKey(CouponTemplate, verbose_name=_("coupon"), on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    stored_value = models.DecimalField(_("stored value credited"), max_digits=12, decimal_places=2, null=True, blank=True)
    upgrade_tier = models.ForeignKey(Tier, verbose_name=_("tier given"), on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")
    donation_goal = models.PositiveBigIntegerField(_("donation goal (points)"), null=True, blank=True)
    donated_points = models.PositiveBigIntegerField(_("points donated so far"), default=0)
    needs_fulfilment = models.BooleanField(_("needs fulfilment at the counter"), default=True,
                                           help_text=_("Goods and services are handed over against a pickup code."))
    is_active = models.BooleanField(_("active"), default=True)
    sort_order = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        constraints = [
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_points_gt_0"),
            models.CheckConstraint(condition=~Q(kind="COUPON") | Q(coupon_template__isnull=False),
                                   name="reward_coupon_has_template"),
            models.CheckConstraint(condition=~Q(kind="STORED_VALUE") | Q(stored_value__gt=0),
                                   name="reward_stored_value_has_amount"),
            models.CheckConstraint(condition=~Q(kind="TIER_UPGRADE") | Q(upgrade_tier__isnull=False),
                                   name="reward_upgrade_has_tier"),
        ]
        indexes = [models.Index(fields=["is_active", "sort_order"], name="reward_catalogue_idx")]

    def __str__(self) -> str:
        return self.name


class RedemptionStatus(models.TextChoices):
    PENDING = "PENDING", pgettext_lazy("redemption status", "Waiting for pickup")
    FULFILLED = "FULFILLED", _("Fulfilled")
    CANCELLED = "CANCELLED", _("Cancelled")


class Redemption(BaseModel):
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="redemptions")
    reward = models.ForeignKey(Reward, verbose_name=_("reward"), on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveBigIntegerField(_("points"))
    cash = models.DecimalField(_("cash"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    cash_reference = models.CharField(_("cash payment reference"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=RedemptionStatus.choices, default=RedemptionStatus.PENDING)
    pickup_code = models.CharField(_("pickup code"), max_length=12, unique=True, null=True, blank=True)
    redeemed_at = models.DateTimeField(_("redeemed at"))
    fulfilled_at = models.DateTimeField(_("fulfilled at"), null=True, blank=True)
    fulfilled_store = models.ForeignKey(Store, verbose_name=_("fulfilled at store"), on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    fulfilled_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("fulfilled by"), on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="+")
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancel reason"), max_length=255, blank=True)
    transfer = models.ForeignKey(Transfer, verbose_name=_("points taken"), on_delete=models.PROTECT, related_name="+")
    return_transfer = models.ForeignKey(Transfer, verbose_name=_("points returned"), on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    coupon = models.ForeignKey(Coupon, verbose_name=_("coupon issued"), on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        indexes = [
            models.Index(fields=["member", "reward", "redeemed_at"], name="redemption_limit_idx"),
            models.Index(fields=["status", "redeemed_at"], name="redemption_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reward} → {self.member_id}"
