"""Admin pages for rules (registered from LoyaltyConfig.ready).

- Rule sets with their modifiers inline. Everything is checked by ``rule_set_problems`` (see
  ``loyalty.forms_rules``); a refused rule set saves nothing. A published rule set that started and that
  purchases were earned under is history: read-only, with "copy as draft" to schedule a change.
- "Rules in force now": the rule set in force, in plain words, the next scheduled one, and the tiers.
- The simulator: what a purchase would earn, rule by rule, writing nothing.
- Backtests: a rule set over the real purchases of a period, beside what the live rules issued; run by
  the worker (``backtest_run_task``), shown as tables.
"""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Case, Count, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.backtest import (
    backtest_request,
    program_read,
    rule_set_copy_as_draft,
    rule_set_is_locked,
    rule_set_next_scheduled,
    simulate,
    tier_names,
)
from loyalty.explain import modifier_describe, money, rule_set_describe
from loyalty.forms_rules import BacktestForm, ModifierForm, ModifierFormSet, RuleSetForm, SimulatorForm
from loyalty.models import (
    BacktestRun,
    BacktestStatus,
    Modifier,
    Purchase,
    RuleSet,
    Tier,
    TierPolicy,
)
from loyalty.rules import modifier_compile, rule_set_compile, rule_set_in_force


def _locked(request: HttpRequest, obj: RuleSet | None) -> bool:
    """Whether ``obj`` is history (read-only); computed once per request and rule set."""
    if obj is None or obj.pk is None:
        return False
    cache = request.__dict__.setdefault("_rule_set_locked", {})
    if obj.pk not in cache:
        cache[obj.pk] = rule_set_is_locked(rule_set=obj, now=timezone.now())
    return cache[obj.pk]


def _rendered(response: HttpResponse) -> HttpResponse:
    """Render a template response now, while the time-zone override is active."""
    if isinstance(response, TemplateResponse) and not response.is_rendered:
        response.render()
    return response


def _plain_list(lines: list[str]) -> str:
    items = format_html_join("", "<li>{}</li>", ((line,) for line in lines))
    return format_html('<ul class="plain-words">{}</ul>', items)


class ModifierInline(admin.StackedInline):
    model = Modifier
    form = ModifierForm
    formset = ModifierFormSet
    extra = 0
    ordering = ("priority", "id")
    readonly_fields = ("in_plain_words",)
    fieldsets = (
        (None, {"fields": ("in_plain_words", ("name", "is_active"), ("kind", "value"), ("stacking", "priority"),
                           "cap_per_order")}),
        # Conditions fold away (the plain-words line above sums them up); a section with an error opens.
        (gettext_lazy("Which items"), {"classes": ["collapse"], "fields": ("skus", "categories")}),
        (gettext_lazy("Where and when"), {"classes": ["collapse"], "fields": (
            "stores", "channels", "weekdays", ("time_from", "time_to"), ("date_from", "date_to"))}),
        (gettext_lazy("Which members and orders"), {"classes": ["collapse"], "fields": (
            "tiers", "birthday_month", "first_purchase", "anniversary_month", "minimum_spend", "promo_code")}),
    )

    def get_extra(self, request: HttpRequest, obj: RuleSet | None = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0

    @admin.display(description=gettext_lazy("in plain words"))
    def in_plain_words(self, obj: Modifier) -> str:
        if obj is None or obj.pk is None:
            return _("Shown once saved.")
        text = modifier_describe(modifier_compile(obj), currency=program_read().currency, tier_names=tier_names())
        return text if obj.is_active else _("(inactive) %(rule)s") % {"rule": text}

    def has_add_permission(self, request: HttpRequest, obj: RuleSet | None = None) -> bool:
        return super().has_add_permission(request, obj) and not _locked(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: RuleSet | None = None) -> bool:
        return super().has_change_permission(request, obj) and not _locked(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: RuleSet | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not _locked(request, obj)


@admin.register(RuleSet)
class RuleSetAdmin(admin.ModelAdmin):
    form = RuleSetForm
    inlines = [ModifierInline]
    list_display = ("name", "status", "effective_from", "in_force_now", "modifier_count")
    list_filter = ("status",)
    search_fields = ("name",)
    ordering = ("-effective_from", "-id")
    readonly_fields = ("in_plain_words",)
    actions = ["copy_as_draft"]
    save_on_top = True
    fieldsets = (
        (None, {"fields": ("name", "status", "effective_from")}),
        (gettext_lazy("In plain words"), {"fields": ("in_plain_words",)}),
        (gettext_lazy("Base rate (消费积分)"), {"fields": (("earn_points", "earn_spend"), "rounding", "minimum_spend")}),
        (gettext_lazy("Top-up rate (充值积分)"), {"fields": (("topup_points", "topup_spend"),)}),
        (gettext_lazy("What earns"), {"fields": ("exclude_coupons", "exclude_stored_value", "tier_multipliers")}),
        (gettext_lazy("Caps per member"), {"fields": (("cap_day", "cap_week", "cap_month"),)}),
        (gettext_lazy("Notes"), {"fields": ("notes",)}),
    )

    # ---- list ----

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request).annotate(modifiers_count=Count("modifiers"))
        in_force = rule_set_in_force(at=timezone.now())
        return queryset.annotate(in_force=Case(When(pk=in_force.pk if in_force else None, then=Value(True)),
                                               default=Value(False), output_field=BooleanField()))

    @admin.display(description=gettext_lazy("in force now"), boolean=True, ordering="in_force")
    def in_force_now(self, obj: RuleSet) -> bool:
        return bool(getattr(obj, "in_force", False))

    @admin.display(description=gettext_lazy("modifiers"), ordering="modifiers_count")
    def modifier_count(self, obj: RuleSet) -> int:
        return getattr(obj, "modifiers_count", 0)

    @admin.display(description=gettext_lazy("rules"))
    def in_plain_words(self, obj: RuleSet | None) -> str:
        if obj is None or obj.pk is None:
            return _("Shown once saved.")
        rules = rule_set_compile(obj, time_zone=program_read().time_zone)
        return _plain_list(rule_set_describe(rules, currency=program_read().currency, tier_names=tier_names()))

    # ---- dates in the program time zone ----

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict | None = None) -> HttpResponse:
        """Start times are typed and shown in the program time zone (the one the rules apply in)."""
        with timezone.override(program_read().tz):
            return _rendered(super().changeform_view(request, object_id, form_url, extra_context))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        with timezone.override(program_read().tz):
            return _rendered(super().changelist_view(request, extra_context))

    # ---- history is read-only ----

    def has_change_permission(self, request: HttpRequest, obj: RuleSet | None = None) -> bool:
        return super().has_change_permission(request, obj) and not _locked(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: RuleSet | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not _locked(request, obj)

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: RuleSet | None = None) -> HttpResponse:
        locked = _locked(request, obj)
        context.update({
            "rule_set_locked": locked,
            "rule_set_purchases": Purchase.objects.filter(rule_set=obj).count() if locked else 0,
            "can_copy": self.has_add_permission(request),
        })
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.action(description=gettext_lazy("Copy as draft"), permissions=["add"])
    def copy_as_draft(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        program = program_read()
        copies = [rule_set_copy_as_draft(rule_set=rs, now=timezone.now(), tz=program.tz)
                  for rs in queryset.order_by("effective_from", "id")]
        for copy in copies:
            self.message_user(request, format_html(
                _("Draft “{}” created: edit it, then publish it with a future start."), copy.name), messages.SUCCESS)
        if len(copies) == 1:
            return HttpResponseRedirect(reverse("admin:loyalty_ruleset_change", args=[copies[0].pk]))
        return None

    # ---- extra pages ----

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("in-force/", wrap(self.in_force_view), name="loyalty_ruleset_in_force"),
            path("simulate/", wrap(self.simulate_view), name="loyalty_ruleset_simulate"),
            path("backtest/", wrap(self.backtest_view), name="loyalty_ruleset_backtest"),
            path("<int:object_id>/copy/", wrap(self.copy_view), name="loyalty_ruleset_copy"),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
        """Render an extra page with times shown in the program time zone."""
        request.current_app = self.admin_site.name
        with timezone.override(program_read().tz):
            return _rendered(TemplateResponse(request, template, {
                **self.admin_site.each_context(request), "opts": self.opts, "title": title, **context,
            }))

    def copy_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:loyalty_ruleset_change", args=[object_id]))
        if not self.has_add_permission(request):
            raise PermissionDenied
        rule_set = RuleSet.objects.filter(pk=object_id).first()
        if rule_set is None:
            raise Http404(_("No rule set with that ID."))
        return self.copy_as_draft(request, RuleSet.objects.filter(pk=rule_set.pk))

    def in_force_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        program = program_read()
        now = timezone.now()
        names = tier_names()
        current = rule_set_in_force(at=now)
        upcoming = rule_set_next_scheduled(at=now)
        tiers = list(Tier.objects.order_by("rank"))
        policy = TierPolicy.objects.filter(pk=1).first() or TierPolicy()

        def describe(rule_set):
            return rule_set_describe(rule_set_compile(rule_set, time_zone=program.time_zone),
                                     currency=program.currency, tier_names=names)

        return self._page(
            request, "admin/loyalty/ruleset/in_force.html", _("Rules in force now"),
            now=now, zone=program.time_zone, current=current, current_words=describe(current),
            upcoming=upcoming, upcoming_words=describe(upcoming) if upcoming else [],
            tiers=[_tier_row(t, program.currency) for t in tiers], policy=policy,
        )

    def simulate_view(self, request: HttpRequest) -> HttpResponse:
        """Parse the form, call ``simulate`` (which writes nothing), show the result."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        program = program_read()
        result = None
        # GET with a basket (the page's own form) or POST: either way nothing is written, and a GET link can
        # be shared ("this is what the new rules give for this basket").
        data = request.POST if request.method == "POST" else request.GET if "basket" in request.GET else None
        if data is not None:
            form = SimulatorForm(data, program=program)
            if form.is_valid():
                result = simulate(**form.simulate_kwargs())
        else:
            initial = {}
            if (rule_set_id := request.GET.get("rule_set", "")).isdigit():
                initial["rule_set"] = rule_set_id
            form = SimulatorForm(initial=initial, program=program)
        return self._page(request, "admin/loyalty/ruleset/simulate.html", _("Simulator"), form=form, result=result,
                          zone=program.time_zone)

    def backtest_view(self, request: HttpRequest) -> HttpResponse:
        """Request a backtest (the worker runs it) and list the recent ones."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        can_run = request.user.has_perm("loyalty.add_backtestrun")
        program = program_read()
        if request.method == "POST":
            if not can_run:
                raise PermissionDenied
            form = BacktestForm(request.POST, program=program)
            if form.is_valid():
                start, end = form.period()
                run = backtest_request(rule_set=form.cleaned_data["rule_set"], start=start, end=end,
                                       requested_by=request.user)
                self.message_user(request, _("The backtest is queued; this page shows its result when it is done."),
                                  messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:loyalty_backtestrun_change", args=[run.pk]))
        else:
            last_day = timezone.now().astimezone(program.tz).date().replace(day=1) - dt.timedelta(days=1)
            initial = {"first_day": last_day.replace(day=1), "last_day": last_day}  # last calendar month
            if (rule_set_id := request.GET.get("rule_set", "")).isdigit():
                initial["rule_set"] = rule_set_id
            form = BacktestForm(initial=initial, program=program)
        runs = BacktestRun.objects.select_related("rule_set", "requested_by").order_by("-created_at", "-id")[:20]
        return self._page(request, "admin/loyalty/ruleset/backtest.html", _("Backtest"), form=form, can_run=can_run,
                          runs=[_run_row(run, program) for run in runs], zone=program.time_zone)


def _tier_row(tier: Tier, currency: str) -> dict[str, Any]:
    benefits = []
    if tier.earn_multiplier != 1:
        benefits.append(_("earns ×%(value)s") % {"value": format(tier.earn_multiplier.normalize(), "f")})
    if tier.discount_percent:
        benefits.append(_("%(value)s%% member discount") % {"value": format(tier.discount_percent.normalize(), "f")})
    if tier.perks:
        benefits.append(tier.perks)
    spend = money(tier.spend_threshold, currency) if tier.spend_threshold is not None else None
    points = number_format(tier.points_threshold, force_grouping=True) if tier.points_threshold is not None else None
    if spend and points:
        needs = _("spend %(amount)s or earn %(points)s points") % {"amount": spend, "points": points}
    elif spend:
        needs = _("spend %(amount)s") % {"amount": spend}
    elif points:
        needs = _("earn %(points)s points") % {"points": points}
    else:
        needs = "—"
    return {"tier": tier, "benefits": benefits or [_("no extra benefits")], "needs": needs}


def _run_row(run: BacktestRun, program) -> dict[str, Any]:
    result = run.result or {}
    return {
        "run": run,
        "first_day": run.period_start.astimezone(program.tz).date(),
        "last_day": (run.period_end.astimezone(program.tz) - dt.timedelta(microseconds=1)).date(),
        "live": _grouped(result.get("live", {}).get("points")), "draft": _grouped(result.get("draft", {}).get("points")),
        "percent": _signed_percent(result.get("difference", {}).get("percent")) if result else "—",
    }


def _grouped(value: int | None) -> str:
    return "—" if value is None else number_format(value, force_grouping=True)


def _signed_percent(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):+}%"


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    """Backtests are requested from the backtest page and run by the worker; here they are read."""

    list_display = ("rule_set", "period", "status", "purchases", "live_points", "draft_points", "difference",
                    "duration", "requested_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("rule_set", "requested_by")
    ordering = ("-created_at", "-id")
    readonly_fields = ("rule_set", "period", "status", "purchases", "duration", "requested_by", "created_at",
                       "error", "result_tables")
    fieldsets = (
        (None, {"fields": ("rule_set", "period", "status", "purchases", "duration", "requested_by", "created_at",
                           "error")}),
        (gettext_lazy("Result"), {"fields": ("result_tables",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requested from the backtest page, which the list links to

    def has_change_permission(self, request: HttpRequest, obj: BacktestRun | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "backtest_url": reverse("admin:loyalty_ruleset_backtest"),
                         "can_run_backtest": request.user.has_perm("loyalty.add_backtestrun")}
        return super().changelist_view(request, extra_context)

    @admin.display(description=gettext_lazy("period"))
    def period(self, obj: BacktestRun) -> str:
        row = _run_row(obj, program_read())
        return _("%(first)s to %(last)s (both days included)") % {"first": row["first_day"], "last": row["last_day"]}

    @admin.display(description=gettext_lazy("live points"))
    def live_points(self, obj: BacktestRun) -> Any:
        return (obj.result or {}).get("live", {}).get("points", "—")

    @admin.display(description=gettext_lazy("draft points"))
    def draft_points(self, obj: BacktestRun) -> Any:
        return (obj.result or {}).get("draft", {}).get("points", "—")

    @admin.display(description=gettext_lazy("difference"))
    def difference(self, obj: BacktestRun) -> str:
        diff = (obj.result or {}).get("difference")
        if not diff:
            return "—"
        percent = diff.get("percent")
        return f"{diff['points']:+,}" + (f" ({float(percent):+.1f}%)" if percent is not None else "")

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj: BacktestRun) -> str:
        return "—" if obj.duration_ms is None else _("%(seconds)s s") % {"seconds": f"{obj.duration_ms / 1000:.2f}"}

    @admin.display(description=gettext_lazy("result"))
    def result_tables(self, obj: BacktestRun) -> str:
        if obj.status != BacktestStatus.DONE:
            return {BacktestStatus.PENDING: _("Waiting for the worker …"), BacktestStatus.RUNNING: _("Running …"),
                    BacktestStatus.FAILED: _("The backtest failed: see the error above.")}.get(obj.status, "—")
        return render_to_string("admin/loyalty/backtestrun/result.html", {"r": result_display(obj.result)})


def result_display(result: dict) -> dict[str, Any]:
    """A backtest result with every figure formatted for reading (grouped digits, money, signed percent)."""
    currency = result.get("currency", "CNY")

    def n(value: int) -> str:
        return number_format(value, force_grouping=True)

    def signed_n(value: int) -> str:
        return ("+" if value >= 0 else "−") + n(abs(value))

    def row(r: dict, name: str) -> dict[str, str]:
        return {"name": name, "purchases": n(r["purchases"]), "live": n(r["live"]), "draft": n(r["draft"]),
                "live_value": money(r["live_value"], currency), "draft_value": money(r["draft_value"], currency),
                "difference": signed_n(r["difference"]), "percent": _signed_percent(r["percent"])}

    diff = result["difference"]
    return {
        "purchases": n(result["purchases"]), "live": n(result["live"]["points"]),
        "draft": n(result["draft"]["points"]), "live_value": money(result["live"]["value"], currency),
        "draft_value": money(result["draft"]["value"], currency), "difference": signed_n(diff["points"]),
        "difference_value": money(diff["value"], currency), "percent": _signed_percent(diff["percent"]),
        "more": n(result["purchases_more"]), "fewer": n(result["purchases_fewer"]), "same": n(result["purchases_same"]),
        "cut_by_caps": n(result["cut_by_caps"]) if result.get("cut_by_caps") else "",
        "tables": [
            {"key": "tiers", "title": _("By tier"), "label": _("tier"),
             "rows": [row(r, f"{r['name']} ({r['code']})" if r["code"] else r["name"]) for r in result["by_tier"]]},
            {"key": "stores", "title": _("By store"), "label": _("store"),
             "rows": [row(r, f"{r['name']} ({r['code']})") for r in result["by_store"]]},
        ],
        "modifiers": [{"name": m["name"], "purchases": n(m["purchases"]), "points": signed_n(m["points"]),
                       "value": money(m["value"], currency)} for m in result["top_modifiers"]],
        "seconds": result.get("seconds"),
    }
