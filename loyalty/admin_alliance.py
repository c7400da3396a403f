"""Admin page: alliance partner settlement for a period, on screen or as CSV."""

import csv
import datetime as dt

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.services.alliance import alliance_settlement
from loyalty.services.program import program_settings_get

app_name = "alliance"


class PeriodForm(forms.Form):
    start = forms.DateField(label=_("From (first day)"))
    end = forms.DateField(label=_("Until (last day)"))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError(_("The period ends before it starts."))
        return data


def _period(form: PeriodForm) -> tuple[dt.datetime, dt.datetime]:
    tz = program_settings_get().tz
    start = dt.datetime.combine(form.cleaned_data["start"], dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(form.cleaned_data["end"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def settlement_view(request):
    if not request.user.has_perm("loyalty.view_apiclient"):
        raise PermissionDenied
    today = timezone.localdate()
    form = PeriodForm(request.GET or {"start": today.replace(day=1), "end": today})
    rows = []
    if form.is_valid():
        start, end = _period(form)
        rows = alliance_settlement(start=start, end=end)
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (f'attachment; filename="settlement-{form.cleaned_data["start"]}-'
                                               f'{form.cleaned_data["end"]}.csv"')
            writer = csv.writer(response)
            writer.writerow(["partner", "client_id", "points_issued", "points_accepted", "net_points", "net_value",
                             "currency"])
            currency = program_settings_get().currency
            for r in rows:
                writer.writerow([r.partner, r.client_id, r.issued, r.accepted, r.net, r.value, currency])
            return response
    context = {**admin.site.each_context(request), "title": _("Alliance partner settlement"), "form": form,
               "rows": rows, "currency": program_settings_get().currency}
    return TemplateResponse(request, "admin/alliance/settlement.html", context)


urlpatterns = [path("settlement/", admin.site.admin_view(staff_member_required(settlement_view)), name="settlement")]
