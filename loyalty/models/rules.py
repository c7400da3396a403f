"""Earning rules (差异化积分): versioned rule sets with modifiers on top of the base rate.

A rule set is in force from its ``effective_from`` until the next published one starts; drafts are
never used for earning (only the simulator and the backtest read them). Modifiers apply in priority
order (lowest number first) to a running multiplier per line, then fixed bonuses, then caps.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.models.program import EarnRounding
from members.models import BaseModel


class RuleSetStatus(models.TextChoices):
    DRAFT = "DRAFT", _("Draft")
    PUBLISHED = "PUBLISHED", _("Published")


class RuleSet(BaseModel):
    name = models.CharField(_("name"), max_length=100, unique=True)
    status = models.CharField(_("status"), max_length=10, choices=RuleSetStatus.choices, default=RuleSetStatus.DRAFT)
    effective_from = models.DateTimeField(
        _("effective from"), help_text=_("Purchases from this moment on use this rule set (if published).")
    )
    # base rates
    earn_points = models.PositiveIntegerField(_("earn points"), default=1, help_text=_("Base purchase rate: this many points …"))
    earn_spend = models.DecimalField(
        _("per amount spent"), max_digits=12, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("… for every this much spent (消费1元积1分)."),
    )
    rounding = models.CharField(_("rounding"), max_length=16, choices=EarnRounding.choices,
                                default=EarnRounding.FLOOR_ORDER)
    minimum_spend = models.DecimalField(
        _("minimum spend to earn"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal(0))],
    )
    topup_points = models.PositiveIntegerField(_("top-up points"), default=0, help_text=_("Top-up rate: this many points …"))
    topup_spend = models.DecimalField(
        _("per amount topped up"), max_digits=12, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))], help_text=_("… for every this much topped up (充值1元积1分). 0 points: none."),
    )
    # exclusions (the part paid with points never earns)
    exclude_coupons = models.BooleanField(_("coupon discounts earn nothing"), default=True)
    exclude_stored_value = models.BooleanField(
        _("stored-value payments earn nothing"), default=True,
        help_text=_("On by default: the top-up already earned points, so spending it does not earn again."),
    )
    # caps on purchase points per member (empty: none)
    cap_day = models.PositiveIntegerField(_("cap per member per day"), null=True, blank=True)
    cap_week = models.PositiveIntegerField(_("cap per member per week"), null=True, blank=True)
    cap_month = models.PositiveIntegerField(_("cap per member per month"), null=True, blank=True)
    tier_multipliers = models.BooleanField(
        _("apply tier earn multipliers"), default=True, help_text=_("Each tier's earn multiplier applies first, before modifiers."),
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("rule set")
        verbose_name_plural = _("rule sets")
        constraints = [
            models.CheckConstraint(condition=Q(earn_spend__gt=0) & Q(topup_spend__gt=0), name="ruleset_rates_positive"),
            models.UniqueConstraint(fields=["effective_from"], condition=Q(status="PUBLISHED"),
                                    name="ruleset_one_published_per_start"),
        ]
        indexes = [models.Index(fields=["status", "-effective_from"], name="ruleset_in_force_idx")]

    def __str__(self) -> str:
        return self.name


class ModifierKind(models.TextChoices):
    MULTIPLIER = "MULTIPLIER", _("Multiplier (×)")
    BONUS = "BONUS", _("Fixed bonus points (+)")


class Stacking(models.TextChoices):
    MULTIPLY = "MULTIPLY", _("Multiply with the others")
    ADD = "ADD", _("Add to the others")
    BEST = "BEST", _("Best of: only if better than what applies so far")


class Modifier(BaseModel):
    """One rule: a multiplier or a bonus, with conditions that must all hold (empty = any)."""

    rule_set = models.ForeignKey(RuleSet, verbose_name=_("rule set"), on_delete=models.CASCADE, related_name="modifiers")
    name = models.CharField(_("name"), max_length=100, help_text=_("In the merchant's words, e.g. “New product”; the multiplier is shown after it."))
    is_active = models.BooleanField(_("active"), default=True)
    kind = models.CharField(_("kind"), max_length=10, choices=ModifierKind.choices, default=ModifierKind.MULTIPLIER)
    value = models.DecimalField(
        _("value"), max_digits=10, decimal_places=3,
        help_text=_("The multiplier (e.g. 2 for double points) or the number of bonus points."),
    )
    stacking = models.CharField(_("stacking"), max_length=8, choices=Stacking.choices, default=Stacking.MULTIPLY)
    priority = models.SmallIntegerField(_("priority"), default=100, help_text=_("Lower numbers apply first."))
    cap_per_order = models.PositiveIntegerField(
        _("bonus cap per order"), null=True, blank=True, help_text=_("At most this many extra points per order from this rule."),
    )
    # conditions
    skus = models.JSONField(_("SKUs"), default=list, blank=True)
    categories = models.JSONField(_("categories"), default=list, blank=True)
    stores = models.JSONField(_("stores"), default=list, blank=True, help_text=_("Store codes."))
    channels = models.JSONField(_("channels"), default=list, blank=True)
    weekdays = models.JSONField(_("weekdays"), default=list, blank=True, help_text=_("1 = Monday … 7 = Sunday."))
    time_from = models.TimeField(_("from (local time)"), null=True, blank=True)
    time_to = models.TimeField(_("until (local time, exclusive)"), null=True, blank=True)
    date_from = models.DateField(_("first day"), null=True, blank=True)
    date_to = models.DateField(_("last day"), null=True, blank=True)
    tiers = models.JSONField(_("tiers"), default=list, blank=True, help_text=_("Tier codes."))
    birthday_month = models.BooleanField(_("in the member's birthday month"), default=False)
    first_purchase = models.BooleanField(_("on the member's first purchase"), default=False)
    anniversary_month = models.BooleanField(_("in the member's membership anniversary month"), default=False)
    minimum_spend = models.DecimalField(
        _("minimum spend"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0))], help_text=_("The order's eligible amount must reach this."),
    )
    promo_code = models.CharField(_("promotion code"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("modifier")
        verbose_name_plural = _("modifiers")
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="modifier_value_gt_0"),
            models.CheckConstraint(condition=~Q(kind="BONUS", stacking="MULTIPLY"), name="modifier_bonus_not_multiply"),
        ]

    def __str__(self) -> str:
        return self.name


class BacktestStatus(models.TextChoices):
    PENDING = "PENDING", _("Waiting")
    RUNNING = "RUNNING", _("Running")
    DONE = "DONE", _("Done")
    FAILED = "FAILED", _("Failed")


class BacktestRun(BaseModel):
    """A draft rule set run over the real purchases of a period, beside what the live rules issued.

    Reads purchases only; never writes to the ledger.
    """

    rule_set = models.ForeignKey(RuleSet, verbose_name=_("rule set"), on_delete=models.CASCADE, related_name="backtests")
    period_start = models.DateTimeField(_("from"))
    period_end = models.DateTimeField(_("until"))
    status = models.CharField(_("status"), max_length=8, choices=BacktestStatus.choices, default=BacktestStatus.PENDING)
    result = models.JSONField(_("result"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    purchases = models.PositiveIntegerField(_("purchases"), default=0)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
    )

    class Meta:
        verbose_name = _("backtest")
        verbose_name_plural = _("backtests")
        constraints = [models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")),
                                              name="backtestrun_period_valid")]

    def __str__(self) -> str:
        start, end = timezone.localtime(self.period_start), timezone.localtime(self.period_end)
        return f"{self.rule_set} {start:%Y-%m-%d}–{end:%Y-%m-%d}"
