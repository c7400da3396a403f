"""Domain events (the outbox) and webhook delivery.

An ``Event`` row is written in the same transaction as the change it reports, so an event exists exactly
when the change does. The dispatcher fans events out to matching endpoints as ``WebhookDelivery`` rows and
delivers them with an HMAC-SHA256 signature, retrying with exponential backoff.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from loyalty.models.api import ApiClient
from members.models import BaseModel, Member


class EventType(models.TextChoices):
    MEMBER_CREATED = "member.created", _("Member created")
    MEMBER_CLOSED = "member.closed", _("Member closed the account")
    POINTS_EARNED = "points.earned", _("Points earned")
    POINTS_REDEEMED = "points.redeemed", _("Points redeemed")
    POINTS_ADJUSTED = "points.adjusted", _("Points adjusted")
    POINTS_EXPIRED = "points.expired", _("Points expired")
    POINTS_EXPIRING_SOON = "points.expiring_soon", _("Points expiring soon")
    TIER_CHANGED = "tier.changed", _("Tier changed")
    REDEMPTION_CREATED = "redemption.created", _("Redemption created")
    REDEMPTION_FULFILLED = "redemption.fulfilled", _("Redemption fulfilled")
    COUPON_REDEEMED = "coupon.redeemed", _("Coupon redeemed")
    WALLET_CHANGED = "wallet.changed", _("Stored value changed")


class Event(models.Model):
    type = models.CharField(_("type"), max_length=40, choices=EventType.choices)
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    payload = models.JSONField(_("payload"), default=dict)
    occurred_at = models.DateTimeField(_("business time"))
    dispatched = models.BooleanField(_("fanned out to endpoints"), default=False)
    # Unique where set (a partial index: most events have none, and none is written for them). NULL, not "", is
    # "no key", so that any number of events have none.
    key = models.CharField(_("deduplication key"), max_length=200, null=True, blank=True,  # noqa: DJ001
                           help_text=_("Set by scheduled jobs so that a rerun records an event once."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [models.Index(fields=["id"], condition=Q(dispatched=False), name="event_undispatched_idx")]
        constraints = [models.UniqueConstraint(fields=["key"], condition=Q(key__isnull=False), name="event_unique_key")]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class WebhookEndpoint(BaseModel):
    client = models.ForeignKey(ApiClient, verbose_name=_("API client"), on_delete=models.CASCADE, null=True, blank=True,
                               related_name="webhook_endpoints")
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(_("signing secret"), max_length=80)
    event_types = models.JSONField(_("event types"), default=list, blank=True, help_text=_("Empty: every event."))
    is_active = models.BooleanField(_("active"), default=True)
    consecutive_failures = models.PositiveIntegerField(_("deliveries given up in a row"), default=0)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    disabled_reason = models.CharField(_("why disabled"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", _("Pending")
    SUCCEEDED = "SUCCEEDED", _("Delivered")
    GAVE_UP = "GAVE_UP", _("Gave up")


class WebhookDelivery(BaseModel):
    endpoint = models.ForeignKey(WebhookEndpoint, verbose_name=_("endpoint"), on_delete=models.CASCADE,
                                 related_name="deliveries")
    event = models.ForeignKey(Event, verbose_name=_("event"), on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(_("status"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"))
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="webhookdelivery_once_per_endpoint")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status="PENDING"), name="webhookdelivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"
