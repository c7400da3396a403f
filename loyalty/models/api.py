"""Partner API clients and the HTTP idempotency store.

A key is shown once; only its SHA-256 is stored (keys are 256-bit random, so a fast hash is enough).
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Store


class Scope(models.TextChoices):
    MEMBERS_READ = "members:read", _("Read members, balances and history")
    MEMBERS_WRITE = "members:write", _("Create and update members")
    PURCHASES_WRITE = "purchases:write", _("Record purchases and refunds")
    POINTS_ADJUST = "points:adjust", _("Adjust points")
    POINTS_PAY = "points:pay", _("Pay with points")
    REWARDS_READ = "rewards:read", _("Read the rewards catalogue")
    REWARDS_WRITE = "rewards:write", _("Redeem, fulfil and cancel rewards")
    COUPONS_WRITE = "coupons:write", _("Validate and redeem coupons")
    WALLET_WRITE = "wallet:write", _("Top up, spend and refund stored value")
    PROGRAM_READ = "program:read", _("Read the program")
    WEBHOOKS_MANAGE = "webhooks:manage", _("Manage webhooks and read events")


class ApiClient(BaseModel):
    name = models.CharField(_("name"), max_length=100)
    key_prefix = models.CharField(_("key prefix"), max_length=24, unique=True, help_text=_("Public part of the key."))
    key_hash = models.CharField(_("key hash"), max_length=64)
    scopes = models.JSONField(_("scopes"), default=list, blank=True)
    store = models.ForeignKey(Store, verbose_name=_("bound to store"), on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", help_text=_("When set, the client acts only at this store."))
    is_active = models.BooleanField(_("active"), default=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(_("requests per minute"), default=600)
    partner_account = models.OneToOneField(
        "loyalty.Account", verbose_name=_("alliance partner account"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="partner_client",
        help_text=_("Set for an alliance partner (异业联盟): points its members earn and spend there move through it."),
    )

    class Meta:
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class IdempotencyState(models.TextChoices):
    IN_FLIGHT = "IN_FLIGHT", _("In flight")
    DONE = "DONE", _("Done")


class IdempotencyRecord(models.Model):
    """The first response to a write, replayed for the same key and body for 7 days. Keys are per client."""

    # db_index=False: the unique (client, key) index serves look-ups by client; one index less per write.
    client = models.ForeignKey(ApiClient, verbose_name=_("API client"), on_delete=models.CASCADE, related_name="+",
                               db_index=False)
    key = models.CharField(_("idempotency key"), max_length=255)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    state = models.CharField(_("state"), max_length=10, choices=IdempotencyState.choices, default=IdempotencyState.IN_FLIGHT)
    status_code = models.PositiveSmallIntegerField(_("status"), null=True, blank=True)
    body = models.JSONField(_("response body"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotencyrecord_unique_client_key"),
            models.CheckConstraint(condition=Q(state="IN_FLIGHT") | Q(status_code__isnull=False),
                                   name="idempotencyrecord_done_has_status"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotencyrecord_age_idx")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key}"
