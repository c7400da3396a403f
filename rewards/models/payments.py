"""Pay with points (积分抵现): settings, and quotes that commit once."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from loyalty.models import Purchase, Transfer
from members.models import BaseModel, Member, Store


class SpendingSettings(BaseModel):
    """How members may spend (single record, pk=1). The value of a point is in the program settings."""

    points_payment_enabled = models.BooleanField(_("members may pay with points"), default=True)
    points_minimum_order = models.DecimalField(
        _("minimum order to pay with points"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal(0))],
    )
    points_maximum_share = models.DecimalField(
        _("maximum share of an order paid with points (%)"), max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal(100))],
        help_text=_("Empty: no limit (上不封顶)."),
    )
    points_step = models.PositiveIntegerField(
        _("points step"), default=1, validators=[MinValueValidator(1)], help_text=_("Points are used in multiples of this."),
    )
    quote_ttl_seconds = models.PositiveIntegerField(_("quote valid for (seconds)"), default=300,
                                                    validators=[MinValueValidator(10)])
    wallet_spend_order = models.CharField(
        _("stored value spending order"), max_length=16, default="BONUS_FIRST",
        choices=[("BONUS_FIRST", _("Bonus first")), ("PRINCIPAL_FIRST", _("Principal first"))],
    )
    wallet_bonus_expiry_days = models.PositiveSmallIntegerField(
        _("top-up bonus expires after (days)"), null=True, blank=True, help_text=_("Empty: bonus never expires."),
    )

    class Meta:
        verbose_name = _("spending settings")
        verbose_name_plural = _("spending settings")
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="spendingsettings_singleton")]

    def __str__(self) -> str:
        return str(_("Spending settings"))


class QuoteStatus(models.TextChoices):
    OPEN = "OPEN", _("Open")
    COMMITTED = "COMMITTED", _("Committed")
    CANCELLED = "CANCELLED", _("Cancelled")


class PointsQuote(BaseModel):
    """A short-lived offer to pay part of an order with points. Commits once; an expired quote cannot commit."""

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    order_amount = models.DecimalField(_("order amount"), max_digits=12, decimal_places=2)
    points = models.PositiveBigIntegerField(_("points"))
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=QuoteStatus.choices, default=QuoteStatus.OPEN)
    expires_at = models.DateTimeField(_("expires at"))
    committed_at = models.DateTimeField(_("committed at"), null=True, blank=True)
    transfer = models.OneToOneField(Transfer, verbose_name=_("payment"), on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    purchase = models.OneToOneField(Purchase, verbose_name=_("purchase"), on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="points_quote")

    class Meta:
        verbose_name = _("points payment quote")
        verbose_name_plural = _("points payment quotes")
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="pointsquote_points_gt_0"),
            models.CheckConstraint(condition=~Q(status="COMMITTED") | Q(transfer__isnull=False),
                                   name="pointsquote_committed_has_payment"),
        ]

    def __str__(self) -> str:
        return f"Quote #{self.pk}: {self.points}"
