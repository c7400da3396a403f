"""Forms of the member portal's points pages. They parse GET parameters; selectors do the reading."""

import datetime as dt
from urllib.parse import urlencode

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from loyalty.selectors import HISTORY_KINDS

EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9998, 12, 31)
HISTORY_KIND_CHOICES = [  # a context of their own: "Earned" elsewhere is a column header ("earned at")
    ("", pgettext_lazy("points history filter", "All")),
    ("earned", pgettext_lazy("points history filter", "Earned")),
    ("spent", pgettext_lazy("points history filter", "Spent")),
    ("expired", pgettext_lazy("points history filter", "Expired")),
    ("adjusted", pgettext_lazy("points history filter", "Adjusted")),
]
assert {k for k, _label in HISTORY_KIND_CHOICES if k} == set(HISTORY_KINDS)


class HistoryFilterForm(forms.Form):
    """What to show in the history: one kind of entry and a date range (local dates, both included)."""

    kind = forms.ChoiceField(label=_("Show"), choices=HISTORY_KIND_CHOICES, required=False)
    # Bounded so that local midnight, a day later, converts to UTC without overflowing (0001-01-01, 9999-12-31).
    date_from = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)])
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                              validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)])

    def __init__(self, *args, tz: dt.tzinfo, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("The start date is after the end date."), code="range")
        return data

    def filters(self) -> dict:
        """Keyword arguments for ``member_history_page``: kind, start (inclusive), end (exclusive)."""
        data = self.cleaned_data
        start = end = None
        if data.get("date_from"):
            start = dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=self.tz)
        if data.get("date_to"):
            end = dt.datetime.combine(data["date_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=self.tz)
        return {"kind": data.get("kind") or None, "start": start, "end": end}

    def query_string(self) -> str:
        """The filters as a query string (without the page cursor), for links to further pages."""
        data = self.cleaned_data
        pairs = [(name, data[name].isoformat() if isinstance(data.get(name), dt.date) else data.get(name))
                 for name in ("kind", "date_from", "date_to")]
        return urlencode([(k, v) for k, v in pairs if v])

    def kind_value(self) -> str:
        """The kind asked for if it is one we know (kept by the date form), else ""."""
        value = self.data.get("kind", "")
        return value if value in HISTORY_KINDS else ""

    def kind_links(self) -> list[tuple[str, str, bool]]:
        """(label, query string, current) for each kind, keeping the dates: the filter chips."""
        data = self.cleaned_data if self.is_valid() else {}
        dates = [(name, data[name].isoformat()) for name in ("date_from", "date_to") if data.get(name)]
        current = data.get("kind") or ""
        return [(label, urlencode(([("kind", value)] if value else []) + dates), value == current)
                for value, label in HISTORY_KIND_CHOICES]
