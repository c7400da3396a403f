"""Program settings (参数设置): the single configuration record."""

import calendar
import datetime as dt
import zoneinfo
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel

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
    birthday_member_edits = models.PositiveSmallIntegerField(
        _("birthday changes by members"), default=1, validators=[MaxValueValidator(10)],
        help_text=_("How many times a member may set or change the birthday in the portal (0: only staff can). "
                    "Birthday bonuses make this worth limiting."),
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
        if self.expiry_policy == ExpiryPolicy.YEARLY and 1 <= (self.clearance_month or 0) <= 12:
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
        if self.expiry_policy == ExpiryPolicy.YEARLY and 1 <= (self.clearance_month or 0) <= 12:
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




class ConfigVersion(models.Model):
    """One row (pk=1) whose token changes, in the same transaction, whenever the earning configuration does.

    The earn path caches the program settings, rule sets, tiers, tier policy, stores and system accounts in
    each process and reads this token inside its account-lock query: a changed token reloads the cache, so a
    purchase never earns under a configuration older than the one committed when it took its lock. The token
    is random (not a counter), so a rolled-back change can never be mistaken for a later one.
    """

    token = models.CharField(_("token"), max_length=32)

    class Meta:
        verbose_name = _("configuration version")
        verbose_name_plural = _("configuration versions")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="configversion_singleton")]

    def __str__(self) -> str:
        return self.token
