"""Members (会员) and stores (门店).

Invariants: a member's phone is stored in E.164 and is unique; member number and referral code are
unique. Points and money live in the loyalty ledger, never on these rows.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class BaseModel(models.Model):
    """Audit timestamps only; business time gets its own field."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class Store(BaseModel):
    code = models.CharField(_("code"), max_length=32, unique=True, help_text=_("Short code used by POS systems."))
    name = models.CharField(_("name"), max_length=120)
    address = models.CharField(_("address"), max_length=255, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class MemberStatus(models.TextChoices):
    ACTIVE = "ACTIVE", _("Active")
    FROZEN = "FROZEN", _("Frozen")
    CLOSED = "CLOSED", _("Closed")


class Member(BaseModel):
    """A programme member. Accounts are created with the member by ``loyalty.services.member_enrol``."""

    member_number = models.CharField(_("member number"), max_length=20, unique=True)
    phone = models.CharField(_("phone"), max_length=20, unique=True, help_text=_("Stored in E.164 form, e.g. +8613800138000."))
    name = models.CharField(_("name"), max_length=100)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    home_store = models.ForeignKey(
        Store, verbose_name=_("home store"), on_delete=models.PROTECT, null=True, blank=True, related_name="members"
    )
    joined_at = models.DateTimeField(_("joined at"))
    status = models.CharField(_("status"), max_length=8, choices=MemberStatus.choices, default=MemberStatus.ACTIVE)
    referral_code = models.CharField(_("referral code"), max_length=12, unique=True)
    referred_by = models.ForeignKey(
        "self", verbose_name=_("referred by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="referrals"
    )

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=MemberStatus.values), name="member_status_valid"
            ),
        ]
        indexes = [
            # Admin search "name starts with" stays an index range scan on a million rows (PostgreSQL).
            models.Index(fields=["name"], name="member_name_prefix_idx", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["home_store", "joined_at"], name="member_store_joined_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.member_number})"

    @property
    def is_active(self) -> bool:
        return self.status == MemberStatus.ACTIVE
