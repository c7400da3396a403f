"""Portal forms of spending: a confirmation that carries a one-time token.

The token is made when the confirmation page renders: a random key, signed together with the member, what
is being confirmed (``purpose``) and its id (``target``). Posting it gives the idempotency key the service
uses, so a double tap (the same token twice) gives the same result once, and a token made for another
member, another reward or another action — or edited by hand — is refused before anything is written.
"""

import uuid

from django import forms
from django.core import signing
from django.utils.translation import gettext_lazy as _

from members.models import Member

TOKEN_SALT = "rewards.portal.confirm"
TOKEN_MAX_AGE = 6 * 60 * 60  # seconds: a confirmation page left open longer asks again


def confirm_token_new(*, member: Member, purpose: str, target: int) -> str:
    return signing.dumps({"k": uuid.uuid4().hex, "m": member.pk, "p": purpose, "t": target}, salt=TOKEN_SALT)


class ConfirmForm(forms.Form):
    """One hidden field, ``token``; ``cleaned_data["key"]`` is the idempotency key for the service."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=500,
                            error_messages={"required": _("This confirmation is missing its token. Please confirm "
                                                          "again.")})

    def __init__(self, *args, member: Member, purpose: str, target: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.member, self.purpose, self.target = member, purpose, target
        if not self.is_bound:
            self.initial["token"] = confirm_token_new(member=member, purpose=purpose, target=target)

    def clean_token(self) -> str:
        try:
            data = signing.loads(self.cleaned_data["token"], salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
        except signing.SignatureExpired:
            raise forms.ValidationError(_("This confirmation has expired. Check the details and confirm again."),
                                        code="expired") from None
        except signing.BadSignature:
            data = None
        if (not isinstance(data, dict) or data.get("m") != self.member.pk or data.get("p") != self.purpose
                or data.get("t") != self.target or not isinstance(data.get("k"), str)):
            raise forms.ValidationError(_("This confirmation is not valid. Check the details and confirm again."),
                                        code="invalid")
        self.cleaned_data["key"] = f"portal:{self.purpose}:{self.member.pk}:{data['k']}"
        return self.cleaned_data["token"]

    def fresh(self) -> "ConfirmForm":
        """A new unbound form (new token) for the page shown after an error."""
        return ConfirmForm(member=self.member, purpose=self.purpose, target=self.target)
