"""Member portal views of spending: rewards, redemptions, coupons, lucky draw, wallet (HTMX, server-rendered).

Reading pages are plain GETs. Every action (redeem, cancel, draw) is a POST of a ``ConfirmForm`` whose token
was made when the page rendered: it is the service's idempotency key, so a double tap acts once and shows the
same result. Objects are always looked up together with the signed-in member: another member's id is a 404.
Refusals from the services (``LoyaltyError``) are shown in words and nothing is written.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from loyalty.exceptions import LoyaltyError, NotFound
from loyalty.services.program import program_settings_get
from members.portal import member_required
from members.qr import qr_svg
from rewards import selectors
from rewards.forms import ConfirmForm
from rewards.models import RedemptionStatus
from rewards.selectors_catalogue import reward_name
from rewards.services.catalogue import redemption_cancel, redemption_create
from rewards.services.draws import draw_perform
from rewards.services.payments import spending_settings_get
from rewards.services.wallet import BONUS_FIRST, wallet_balance, yuan

PAGE_SIZE = 30
CANCEL_REASON = "Cancelled by the member in the portal"


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 10_000))
    except ValueError:
        return 1


def _page(queryset, number: int) -> tuple[list, bool]:
    """Rows of page ``number`` and whether there is a next page (one query, no COUNT)."""
    start = (number - 1) * PAGE_SIZE
    rows = list(queryset[start:start + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _money_context() -> dict:
    program = program_settings_get()
    return {"cur": selectors.currency_symbol(program.currency), "program_tz": program.tz}


# ---- REWARDS ----


@member_required
def rewards(request: HttpRequest) -> HttpResponse:
    redeemable_only = request.GET.get("show") == "affordable"
    page = selectors.reward_catalogue_page(member=request.member, now=timezone.now(), redeemable_only=redeemable_only)
    return render(request, "rewards/portal/rewards.html",
                  {"page": page, "redeemable_only": redeemable_only, **_money_context()})


@member_required
@require_http_methods(["GET", "POST"])
def reward_detail(request: HttpRequest, reward_id: int) -> HttpResponse:
    """GET: the confirmation (cost, balance after). POST: redeem with the page's token, then the redemption."""
    form = ConfirmForm(request.POST if request.method == "POST" else None, member=request.member, purpose="redeem",
                       target=reward_id)
    error = ""
    if form.is_bound:
        if form.is_valid():
            try:
                redemption = redemption_create(member=request.member, reward_id=reward_id, now=timezone.now(),
                                               idempotency_key=form.cleaned_data["key"])
            except NotFound:
                raise Http404 from None
            except LoyaltyError as exc:
                error = str(exc)
            else:
                return redirect("portal:redemption", redemption_id=redemption.pk)
        else:
            error = " ".join(form.errors.get("token", []))
        form = form.fresh()
    confirm = selectors.reward_offer_get(member=request.member, reward_id=reward_id, now=timezone.now())
    if confirm is None:
        raise Http404
    return render(request, "rewards/portal/reward_detail.html",
                  {"confirm": confirm, "offer": confirm.offer, "form": form, "error": error, **_money_context()},
                  status=422 if error else 200)


@member_required
def redemptions(request: HttpRequest) -> HttpResponse:
    number = _page_number(request)
    rows, has_next = _page(selectors.redemption_list_for_member(member=request.member), number)
    rows = [(r, reward_name(r.reward)) for r in rows]
    return render(request, "rewards/portal/redemptions.html",
                  {"rows": rows, "page_number": number, "has_next": has_next, **_money_context()})


@member_required
def redemption_detail(request: HttpRequest, redemption_id: int) -> HttpResponse:
    redemption = selectors.redemption_get_for_member(member=request.member, redemption_id=redemption_id)
    if redemption is None:
        raise Http404
    pending = redemption.status == RedemptionStatus.PENDING and bool(redemption.pickup_code)
    return render(request, "rewards/portal/redemption_detail.html", {
        "redemption": redemption, "reward_name": reward_name(redemption.reward), "pending": pending,
        "qr": mark_safe(qr_svg(redemption.pickup_code)) if pending else "",
        **_money_context(),
    })


@member_required
@require_http_methods(["GET", "POST"])
def redemption_cancel_view(request: HttpRequest, redemption_id: int) -> HttpResponse:
    """GET: are you sure? POST: cancel the pending redemption (points back, item back in stock)."""
    redemption = selectors.redemption_get_for_member(member=request.member, redemption_id=redemption_id)
    if redemption is None:
        raise Http404
    form = ConfirmForm(request.POST if request.method == "POST" else None, member=request.member, purpose="cancel",
                       target=redemption.pk)
    error = ""
    if form.is_bound:
        if form.is_valid():
            try:
                redemption_cancel(redemption_id=redemption.pk, now=timezone.now(), reason=CANCEL_REASON,
                                  idempotency_key=form.cleaned_data["key"])
            except LoyaltyError as exc:
                error = str(exc)
            else:
                messages.success(request, _("Your redemption is cancelled and the points are back in your account."))
                return redirect("portal:redemption", redemption_id=redemption.pk)
        else:
            error = " ".join(form.errors.get("token", []))
        form = form.fresh()
    return render(request, "rewards/portal/redemption_cancel.html", {
        "redemption": redemption, "reward_name": reward_name(redemption.reward), "form": form,
        "error": error, "can_cancel": redemption.status == RedemptionStatus.PENDING, **_money_context(),
    }, status=422 if error else 200)


# ---- COUPONS ----


@member_required
def coupons(request: HttpRequest) -> HttpResponse:
    groups = selectors.coupon_groups_for_member(member=request.member, now=timezone.now())
    usable = [(v, mark_safe(qr_svg(v.coupon.code))) for v in groups.usable]
    return render(request, "rewards/portal/coupons.html", {"groups": groups, "usable": usable, **_money_context()})


@member_required
def coupon_detail(request: HttpRequest, coupon_id: int) -> HttpResponse:
    coupon = selectors.coupon_get_for_member(member=request.member, coupon_id=coupon_id)
    if coupon is None:
        raise Http404
    view = selectors.coupon_views([coupon], now=timezone.now())[0]
    qr = mark_safe(qr_svg(coupon.code)) if view.state in ("usable", "not_yet") else ""
    return render(request, "rewards/portal/coupon_detail.html", {"c": view, "qr": qr, **_money_context()})


# ---- LUCKY DRAW ----


@member_required
def draws(request: HttpRequest) -> HttpResponse:
    campaigns = selectors.draw_campaigns_open(now=timezone.now())
    return render(request, "rewards/portal/draws.html", {
        "campaigns": [(c, selectors.draw_campaign_name(c)) for c in campaigns], **_money_context()})


@member_required
@require_http_methods(["GET", "POST"])
def draw_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """GET: the draw, its odds and the member's draws left. POST: draw once (HTMX: only the panel is swapped)."""
    form = ConfirmForm(request.POST if request.method == "POST" else None, member=request.member, purpose="draw",
                       target=campaign_id)
    error, draw = "", None
    if form.is_bound:
        panel = selectors.draw_panel_get(member=request.member, campaign_id=campaign_id, now=timezone.now())
        if panel is None:
            raise Http404
        if form.is_valid():
            try:
                draw = draw_perform(member=request.member, campaign=panel.campaign, now=timezone.now(),
                                    idempotency_key=form.cleaned_data["key"])
            except LoyaltyError as exc:
                error = str(exc)
        else:
            error = " ".join(form.errors.get("token", []))
        form = form.fresh()
    panel = selectors.draw_panel_get(member=request.member, campaign_id=campaign_id, now=timezone.now())
    if panel is None:
        raise Http404
    context = {"panel": panel, "form": form, "error": error, "draw": draw, **_money_context()}
    if draw is not None:
        context["prize_name"] = selectors.prize_name(draw.prize) if draw.prize else ""
        context["won_coupon"] = draw.coupon
    template = "rewards/portal/_draw_panel.html" if request.htmx else "rewards/portal/draw_detail.html"
    return render(request, template, context, status=422 if error and not request.htmx else 200)


# ---- WALLET ----


@member_required
def wallet(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    number = _page_number(request)
    rows, has_next = _page(selectors.wallet_history_for_member(member=request.member), number)
    spending = spending_settings_get()
    return render(request, "rewards/portal/wallet.html", {
        "balance": wallet_balance(member=request.member, now=now),
        "entries": [(t, selectors.wallet_entry_label(t), yuan(t.amount)) for t in rows], "page_number": number, "has_next": has_next,
        "rules": selectors.wallet_bonus_rules_in_force(now=now), "bonus_expiry_days": spending.wallet_bonus_expiry_days,
        "bonus_first": spending.wallet_spend_order == BONUS_FIRST, "currency": program_settings_get().currency,
        **_money_context(),
    })
