"""Member portal views of the points engine: home, member code, history, how to earn (HTMX, server-rendered).

Interface modules: they may read from ``rewards`` (the stored-value balance on the home page) even though
the loyalty domain code may not. Each view parses, calls selectors, renders; an HTMX request gets a
partial of the same template (``templates/loyalty/portal/_*.html`` included by the full page).
"""

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from loyalty.explain import money
from loyalty.forms_portal import HistoryFilterForm
from loyalty.selectors import (
    HISTORY_PAGE_SIZE,
    earning_guide_get,
    history_cursor_decode,
    member_history_page,
    member_points_expiring,
    member_points_summary,
    member_transfer_get,
    transfer_breakdown_lines,
)
from loyalty.selectors_tiers import tier_benefit_lines, tier_progress
from loyalty.services import program_settings_get
from members.member_code import (
    STEP_SECONDS,
    member_code_current,
    member_code_groups,
    member_code_valid_until,
)
from members.portal import member_required
from members.qr import qr_svg
from rewards.services.wallet import wallet_balance


def _code_context(member, now: dt.datetime) -> dict:
    code = member_code_current(member=member, now=now)
    qr = qr_svg(code, svg_class="qr", title=gettext("Your member code as a QR code"))
    return {"code": code, "code_digits": member_code_groups(code), "code_qr": qr,
            "code_valid_until": member_code_valid_until(now=now), "code_step": STEP_SECONDS}


@require_safe
@never_cache
@member_required
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    member = request.member
    program = program_settings_get()
    wallet = wallet_balance(member=member, now=now)
    progress = tier_progress(member=member, now=now)
    return render(request, "loyalty/portal/home.html", {
        "program": program, "tz": program.tz, "now": now,
        "summary": member_points_summary(member=member, now=now),
        "expiring": member_points_expiring(member=member, now=now),
        "progress": progress, "tier_benefits": tier_benefit_lines(progress.tier) if progress else [],
        "wallet": wallet, "wallet_total": money(wallet.total, program.currency),
        "wallet_bonus": money(wallet.bonus, program.currency),
        **_code_context(member, now),
    })


@require_safe
@never_cache
@vary_on_headers("HX-Request")
@member_required
def member_code(request: HttpRequest) -> HttpResponse:
    """The rotating member code: the polled partial (HTMX) or a page of its own (no JavaScript)."""
    now = timezone.now()
    program = program_settings_get()
    template = "loyalty/portal/_member_code.html" if request.htmx else "loyalty/portal/member_code.html"
    return render(request, template, {"tz": program.tz, **_code_context(request.member, now)})


@require_safe
@vary_on_headers("HX-Request")
@member_required
def history(request: HttpRequest) -> HttpResponse:
    """Points history, newest first. Filters are a plain GET form; ``after`` is the keyset cursor of the
    next page (HTMX: the rows and the next sentinel only; otherwise the whole page from there)."""
    now = timezone.now()
    program = program_settings_get()
    form = HistoryFilterForm(request.GET, tz=program.tz)
    filters = form.filters() if form.is_valid() else {}
    after = history_cursor_decode(request.GET.get("after"))
    page = member_history_page(member=request.member, now=now, after=after, size=HISTORY_PAGE_SIZE, **filters)
    query = form.query_string() if form.is_valid() else ""
    context = {"program": program, "tz": program.tz, "now": now, "form": form, "page": page, "query": query,
               "paged": after is not None}
    if request.htmx and after is not None:
        return render(request, "loyalty/portal/_history_rows.html", context)
    return render(request, "loyalty/portal/history.html", context)


@require_safe
@vary_on_headers("HX-Request")
@member_required
def history_entry(request: HttpRequest, transfer_id: int) -> HttpResponse:
    """One entry with its breakdown; 404 for another member's transfer (or a stored-value one)."""
    now = timezone.now()
    program = program_settings_get()
    row = member_transfer_get(member=request.member, transfer_id=transfer_id, now=now)
    if row is None:
        raise Http404
    context = {"program": program, "tz": program.tz, "now": now, "row": row,
               "lines": transfer_breakdown_lines(transfer=row.transfer, currency=program.currency, tz=program.tz)}
    template = "loyalty/portal/_history_entry.html" if request.htmx else "loyalty/portal/history_entry.html"
    return render(request, template, context)


@require_safe
@member_required
def how_to_earn(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    program = program_settings_get()
    return render(request, "loyalty/portal/how_to_earn.html",
                  {"tz": program.tz, "guide": earning_guide_get(now=now)})
