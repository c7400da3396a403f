"""Member notification preferences. Messages, inbox and delivery come with the notifications issue."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from members.models import BaseModel, Member


class ChannelPreference(BaseModel):
    """Which channels a member wants service messages on (expiry reminders, redemptions, tier changes).

    Marketing consent is separate and lives on the member (``Member.marketing_consent``). No row
    means the defaults below.
    """

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, primary_key=True, related_name="channel_preference"
    )
    sms = models.BooleanField(_("SMS"), default=True)
    email = models.BooleanField(_("email"), default=False)
    inbox = models.BooleanField(_("portal inbox"), default=True)

    class Meta:
        verbose_name = _("notification channels")
        verbose_name_plural = _("notification channels")

    def __str__(self) -> str:
        return str(self.member_id)
