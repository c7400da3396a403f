"""Members (会员) and stores (门店).

Invariants: a member's phone is stored in E.164 and is unique; member number and referral code are
unique. Points and money live in the loyalty ledger, never on these rows.
"""

from django.conf import settings
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
    email = models.EmailField(_("email"), blank=True)
    language = models.CharField(
        _("language"), max_length=10, blank=True, choices=settings.LANGUAGES,
        help_text=_("The language of the portal and of messages; empty means the program's default."),
    )
    marketing_consent = models.BooleanField(
        _("marketing consent"), default=False, help_text=_("The member agreed to receive offers and news.")
    )
    consent_updated_at = models.DateTimeField(_("consent updated at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

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


class MemberLogin(BaseModel):
    """A member's portal login (phone + password). No row, or no password, means "not activated yet".

    ``session_epoch`` is copied into every portal session at sign-in; "sign out everywhere" bumps it,
    so every older session stops being accepted on its next request.
    """

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, primary_key=True, related_name="login"
    )
    password = models.CharField(_("password"), max_length=128, blank=True)
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    last_login_at = models.DateTimeField(_("last sign-in"), null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    session_epoch = models.PositiveIntegerField(_("session epoch"), default=0)
    birthday_edits = models.PositiveSmallIntegerField(
        _("birthday edits"), default=0, help_text=_("How many times the member changed the birthday in the portal.")
    )

    class Meta:
        verbose_name = _("portal login")
        verbose_name_plural = _("portal logins")

    def __str__(self) -> str:
        return str(self.member_id)


class OneTimeCodePurpose(models.TextChoices):
    ACTIVATE = "ACTIVATE", _("Activate the portal")
    RESET = "RESET", _("Reset the password")


class OneTimeCode(BaseModel):
    """A one-time code sent by SMS. Only its hash is stored; it is used at most once."""

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="one_time_codes")
    purpose = models.CharField(_("purpose"), max_length=8, choices=OneTimeCodePurpose.choices)
    code_hash = models.CharField(_("code hash"), max_length=128)
    expires_at = models.DateTimeField(_("expires at"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("one-time code")
        verbose_name_plural = _("one-time codes")
        constraints = [
            models.CheckConstraint(condition=Q(purpose__in=OneTimeCodePurpose.values), name="onetimecode_purpose_valid"),
        ]
        indexes = [models.Index(fields=["member", "purpose", "-created_at"], name="onetimecode_member_recent_idx")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.purpose}"
