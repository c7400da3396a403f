"""Tiers (会员分级): ranked levels, each member's current tier, and every change with its reason.

Invariants: the lowest tier's thresholds are 0 (everyone qualifies for it); ranks are unique; one
``MemberTier`` row per member; ``TierChange`` rows are append-only.
"""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member


class TierWindow(models.TextChoices):
    ROLLING_MONTHS = "ROLLING_MONTHS", _("Rolling N months")
    CALENDAR_YEAR = "CALENDAR_YEAR", _("Calendar year")
    CONSECUTIVE_MONTHS = "CONSECUTIVE_MONTHS", _("N consecutive calendar months, each over the threshold")


class DowngradeMode(models.TextChoices):
    ONE_STEP = "ONE_STEP", _("One tier down")
    TO_SUPPORTED = "TO_SUPPORTED", _("To the tier the member's figures support")


class Tier(BaseModel):
    """A level. A member qualifies with qualifying spend ≥ ``spend_threshold`` OR qualifying points ≥
    ``points_threshold`` within the program's window (a threshold left empty is not used)."""

    code = models.SlugField(_("code"), max_length=32, unique=True, help_text=_("Stable code used by the API, e.g. gold."))
    name = models.CharField(_("name"), max_length=64, help_text=_("Shown to members, e.g. 金卡."))
    rank = models.PositiveSmallIntegerField(_("rank"), unique=True, help_text=_("0 is the entry tier; higher is better."))
    spend_threshold = models.DecimalField(
        _("qualifying spend"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("Spend within the window needed to reach this tier (per month with consecutive months)."),
    )
    points_threshold = models.PositiveBigIntegerField(
        _("qualifying points"), null=True, blank=True, help_text=_("Points earned within the window needed to reach this tier."),
    )
    retain_spend = models.DecimalField(
        _("spend to keep"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0))], help_text=_("Empty: the same as the qualifying spend."),
    )
    retain_points = models.PositiveBigIntegerField(
        _("points to keep"), null=True, blank=True, help_text=_("Empty: the same as the qualifying points."),
    )
    earn_multiplier = models.DecimalField(
        _("earn multiplier"), max_digits=6, decimal_places=3, default=Decimal("1.000"),
        validators=[MinValueValidator(Decimal("0.001"))], help_text=_("Purchase points are multiplied by this, e.g. 1.2."),
    )
    discount_percent = models.DecimalField(
        _("member discount %"), max_digits=5, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    perks = models.TextField(_("perks"), blank=True, help_text=_("Other benefits, in words, shown to members."))

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.CheckConstraint(condition=Q(earn_multiplier__gt=0), name="tier_earn_multiplier_gt_0"),
        ]

    def __str__(self) -> str:
        return self.name


class TierPolicy(BaseModel):
    """How tiers are qualified and kept (single record, pk=1)."""

    window = models.CharField(_("qualification window"), max_length=20, choices=TierWindow.choices,
                              default=TierWindow.ROLLING_MONTHS)
    window_months = models.PositiveSmallIntegerField(
        _("window months"), default=12, validators=[MinValueValidator(1), MaxValueValidator(36)],
        help_text=_("N for “rolling N months” and “N consecutive months”."),
    )
    grace_days = models.PositiveSmallIntegerField(
        _("grace days"), default=30, validators=[MaxValueValidator(365)],
        help_text=_("A member below the retention threshold at review keeps the tier this many days before dropping."),
    )
    downgrade_mode = models.CharField(_("downgrade"), max_length=16, choices=DowngradeMode.choices,
                                      default=DowngradeMode.ONE_STEP)
    earn_at_new_tier = models.BooleanField(
        _("earn at the new tier on the upgrading purchase"), default=False,
        help_text=_("Off: the purchase that crosses a threshold earns at the tier the member had when it started."),
    )

    class Meta:
        verbose_name = _("tier policy")
        verbose_name_plural = _("tier policy")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="tierpolicy_singleton")]

    def __str__(self) -> str:
        return str(_("Tier policy"))


class MemberTier(BaseModel):
    """The member's current tier and when it is next reviewed."""

    member = models.OneToOneField(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="tier_state")
    tier = models.ForeignKey(Tier, verbose_name=_("tier"), on_delete=models.PROTECT, related_name="+")
    since = models.DateTimeField(_("since"))
    review_at = models.DateTimeField(_("next review"), null=True, blank=True)
    grace_until = models.DateTimeField(_("grace until"), null=True, blank=True)

    class Meta:
        verbose_name = _("member tier")
        verbose_name_plural = _("member tiers")
        indexes = [models.Index(fields=["review_at"], name="membertier_review_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier_id}"


class TierChangeReason(models.TextChoices):
    ENROLLED = "ENROLLED", _("Enrolled")
    UPGRADE = "UPGRADE", _("Qualified for a higher tier")
    RETAINED = "RETAINED", _("Kept the tier at review")
    GRACE = "GRACE", _("Below the threshold: grace period started")
    DOWNGRADE = "DOWNGRADE", _("Below the retention threshold after the grace period")
    MANUAL = "MANUAL", _("Changed by staff")
    REDEMPTION = "REDEMPTION", _("Tier upgrade redeemed with points")


class TierChange(models.Model):
    """Append-only record of a tier change (or a review outcome) with its reason and the figures used."""

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="tier_changes")
    from_tier = models.ForeignKey(Tier, verbose_name=_("from"), on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    to_tier = models.ForeignKey(Tier, verbose_name=_("to"), on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=16, choices=TierChangeReason.choices)
    details = models.JSONField(_("details"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("when"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        indexes = [models.Index(fields=["member", "-occurred_at"], name="tierchange_member_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} → {self.to_tier_id}"
