"""Lucky draws (积分抽奖): every draw is recorded with its outcome and the random number behind it."""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from loyalty.models import Transfer
from members.models import BaseModel, Member
from rewards.models.coupons import Coupon, CouponTemplate


class DrawCampaign(BaseModel):
    name = models.CharField(_("name"), max_length=100)
    name_zh_hans = models.CharField(_("name (Chinese)"), max_length=100, blank=True)
    cost_points = models.PositiveIntegerField(_("points per draw"), validators=[MinValueValidator(1)])
    daily_limit = models.PositiveIntegerField(_("draws per member per day"), null=True, blank=True)
    campaign_limit = models.PositiveIntegerField(_("draws per member in total"), null=True, blank=True)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("lucky draw")
        verbose_name_plural = _("lucky draws")

    def __str__(self) -> str:
        return self.name


class PrizeKind(models.TextChoices):
    POINTS = "POINTS", _("Points")
    COUPON = "COUPON", _("Coupon")
    GOODS = "GOODS", _("Goods")
    NOTHING = "NOTHING", _("Nothing")


class Prize(BaseModel):
    campaign = models.ForeignKey(DrawCampaign, verbose_name=_("lucky draw"), on_delete=models.CASCADE, related_name="prizes")
    name = models.CharField(_("name"), max_length=100)
    name_zh_hans = models.CharField(_("name (Chinese)"), max_length=100, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=PrizeKind.choices)
    weight = models.PositiveIntegerField(_("weight"), validators=[MinValueValidator(1)])
    stock = models.PositiveIntegerField(_("stock"), null=True, blank=True, help_text=_("Empty: unlimited."))
    points = models.PositiveIntegerField(_("points"), null=True, blank=True)
    coupon_template = models.ForeignKey(CouponTemplate, verbose_name=_("coupon"), on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")

    class Meta:
        verbose_name = _("prize")
        verbose_name_plural = _("prizes")
        constraints = [
            models.CheckConstraint(condition=Q(weight__gt=0), name="prize_weight_gt_0"),
            models.CheckConstraint(condition=~Q(kind="POINTS") | Q(points__gt=0), name="prize_points_has_amount"),
            models.CheckConstraint(condition=~Q(kind="COUPON") | Q(coupon_template__isnull=False),
                                   name="prize_coupon_has_template"),
        ]

    def __str__(self) -> str:
        return self.name


class Draw(BaseModel):
    campaign = models.ForeignKey(DrawCampaign, verbose_name=_("lucky draw"), on_delete=models.PROTECT, related_name="draws")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="draws")
    prize = models.ForeignKey(Prize, verbose_name=_("prize"), on_delete=models.PROTECT, null=True, blank=True,
                              related_name="draws")
    outcome = models.JSONField(_("outcome"), default=dict, help_text=_("What was won, the weights in play and the random number."))
    drawn_at = models.DateTimeField(_("drawn at"))
    cost_transfer = models.ForeignKey(Transfer, verbose_name=_("cost"), on_delete=models.PROTECT, related_name="+")
    prize_transfer = models.ForeignKey(Transfer, verbose_name=_("points won"), on_delete=models.PROTECT, null=True,
                                       blank=True, related_name="+")
    coupon = models.ForeignKey(Coupon, verbose_name=_("coupon won"), on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)

    class Meta:
        verbose_name = _("draw")
        verbose_name_plural = _("draws")
        indexes = [models.Index(fields=["member", "campaign", "drawn_at"], name="draw_limit_idx")]

    def __str__(self) -> str:
        return f"Draw #{self.pk}"
