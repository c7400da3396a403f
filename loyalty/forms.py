"""Forms over loyalty services. They parse and validate input; the caller passes it to a service."""

import re
import uuid

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

MAX_ADJUST_POINTS = 10**12  # the services' own ceiling (loyalty.validation.points_clean)
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def idempotency_token_new() -> str:
    return uuid.uuid4().hex


class PointsAdjustForm(forms.Form):
    """Add or remove points by hand.

    ``token`` is drawn once when the empty form is rendered and posted back hidden: a double click,
    a resubmitted page or a retry after a timeout carries the same token, so the service replays the
    first adjustment instead of posting a second one. The caller scopes it with ``idempotency_key``.
    """

    points = forms.IntegerField(
        label=_("Points"),
        validators=[MinValueValidator(-MAX_ADJUST_POINTS), MaxValueValidator(MAX_ADJUST_POINTS)],
        help_text=_("Positive to add points, negative (e.g. -200) to remove them."),
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=255,
        help_text=_("Recorded with the adjustment and shown to the member in their points history."),
        widget=forms.TextInput(attrs={"size": 60}),
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=32)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", idempotency_token_new())
        super().__init__(*args, **kwargs)

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Enter a number of points other than zero."), code="zero")
        return points

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        if not _TOKEN.match(token):
            raise forms.ValidationError(_("The form has expired; reload the page and try again."), code="token")
        return token

    def idempotency_key(self, *, member_id: int) -> str:
        """The service's key: namespaced so a posted token can never collide with another writer's key."""
        return f"admin:adjust:{member_id}:{self.cleaned_data['token']}"
