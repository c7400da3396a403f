"""Admin for the rewards catalogue (积分商城) and the fulfilment queue (registered from RewardsConfig.ready).

Rewards are edited as model fields (names and descriptions in both languages, image, price, stock, limits,
tiers, window, what the member gets), with the kind's own fields checked together. Two figures change under
the merchant's feet while they edit: stock (every redemption takes one) and points donated. The form
never writes either back blindly: donated points are read-only, and a stock the merchant did not touch is
not saved; a stock they did change is saved only if it still is what they saw (else they are told).

Redemptions are read-only rows; the queue lists pending ones oldest first. "Hand over" takes the pickup
code the member shows and calls ``redemption_fulfil``; "Cancel" takes a reason and calls
``redemption_cancel`` (points and stock back, cash refunded). Both need ``rewards.change_redemption``.
"""

import re
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from loyalty.admin import compact_time, member_link
from loyalty.exceptions import InvalidInput, LoyaltyError
from members.admin import member_ids_exact
from members.models import Store
from rewards.exceptions import RedemptionStateConflict
from rewards.models import LimitPeriod, Redemption, RedemptionStatus, Reward, RewardKind
from rewards.selectors_catalogue import donation_percent, redemption_pending_by_pickup_code
from rewards.services.catalogue import redemption_cancel, redemption_fulfil

_TOKEN = re.compile(r"^[0-9a-f]{32}$")

# Fields that belong to one kind: (field, kind, error when missing, error when set on another kind).
KIND_FIELDS = [
    ("coupon_template", RewardKind.COUPON, _("Choose the coupon a member gets."),
     _("Only a coupon reward gives a coupon: leave this empty.")),
    ("stored_value", RewardKind.STORED_VALUE, _("Enter the stored value a member gets (more than 0)."),
     _("Only a stored-value reward credits stored value: leave this empty.")),
    ("upgrade_tier", RewardKind.TIER_UPGRADE, _("Choose the tier a member is moved to."),
     _("Only a tier upgrade gives a tier: leave this empty.")),
    ("donation_goal", RewardKind.DONATION, _("Enter the goal in points the donations count toward."),
     _("Only a donation has a goal: leave this empty.")),
]


def _stock_text(value: int | None) -> str:
    return "" if value is None else str(value)


class RewardAdminForm(forms.ModelForm):
    """The reward, checked as a whole. ``stock_seen`` is the stock shown when the page was drawn."""

    stock_seen = forms.CharField(label=_("stock as shown"), widget=forms.HiddenInput, required=False)

    class Meta:
        model = Reward
        fields = [
            "name", "name_zh_hans", "description", "description_zh_hans", "image", "kind", "is_active", "sort_order",
            "points_cost", "cash_price", "stock", "limit_per_member", "limit_period", "tiers", "available_from",
            "available_until", "coupon_template", "stored_value", "upgrade_tier", "donation_goal", "needs_fulfilment",
        ]
        widgets = {"tiers": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stock_seen"].initial = _stock_text(self.instance.stock) if self.instance.pk else ""
        self.stock_changed_by_user = False

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        for field, field_kind, missing, misplaced in KIND_FIELDS:
            value = data.get(field)
            present = value not in (None, "") and not (field == "stored_value" and value <= 0)
            if kind == field_kind and not present:
                self.add_error(field, missing)
            elif kind != field_kind and value not in (None, ""):
                self.add_error(field, misplaced)
        start, end = data.get("available_from"), data.get("available_until")
        if start and end and end <= start:
            self.add_error("available_until", _("The end must be after the start."))
        limit, period = data.get("limit_per_member"), data.get("limit_period")
        if limit == 0:
            self.add_error("limit_per_member", _("At least 1; leave empty for no limit."))
        elif limit is None and period and period != LimitPeriod.EVER:
            self.add_error("limit_per_member", _("Enter how many times a member may redeem it in that period."))
        if self.instance.pk and kind and kind != self.instance.kind and self.instance.redemptions.exists():
            self.add_error("kind", _("Members have redeemed this reward, so its kind cannot change. "
                                     "Create a new reward instead."))
        self._clean_stock(data)
        return data

    def _clean_stock(self, data: dict) -> None:
        if not self.instance.pk or "stock" not in data:
            self.stock_changed_by_user = self.instance.pk is None
            return
        seen = (data.get("stock_seen") or "").strip()
        self.stock_changed_by_user = _stock_text(data["stock"]) != seen
        current = Reward.objects.filter(pk=self.instance.pk).values_list("stock", flat=True).first()
        if self.stock_changed_by_user and _stock_text(current) != seen:
            self.add_error("stock", _("Redemptions changed the stock to %(current)s while you were editing. "
                                      "Check the figure and save again.") % {"current": _stock_text(current) or "∞"})
            self.data = self.data.copy()
            self.data[self.add_prefix("stock_seen")] = _stock_text(current)

    def stock_seen_value(self) -> int | None:
        seen = (self.cleaned_data.get("stock_seen") or "").strip()
        return int(seen) if seen.isdigit() else None


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    form = RewardAdminForm
    list_display = ["thumbnail", "name", "name_zh_hans", "kind", "price", "stock_column", "redeemed_column",
                    "pending_column", "window", "is_active", "donation_column"]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "name_zh_hans"]
    search_help_text = _("Part of the reward's name, in either language.")
    ordering = ["sort_order", "id"]
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = ["image_preview", "donated_points", "donation_progress", "created_at", "updated_at"]
    fieldsets = [
        (_("What members see"), {"fields": ["name", "name_zh_hans", "description", "description_zh_hans", "image",
                                            "image_preview", "sort_order", "is_active"],
                                 "description": _("Names and descriptions in English and Chinese; members see the "
                                                  "Chinese ones when their language is Chinese and they are filled in.")}),
        (_("Price"), {"fields": ["points_cost", "cash_price"],
                      "description": _("Points, plus a cash part for points + cash rewards (积分+现金); 0 for points only.")}),
        (_("Stock and limits"), {"fields": ["stock", "stock_seen", "limit_per_member", "limit_period"],
                                 "description": _("Stock is taken by each redemption and given back when a pending "
                                                  "one is cancelled; empty stock is unlimited. The limit counts a "
                                                  "member's redemptions (cancelled ones excepted) per calendar period "
                                                  "in the program's time zone.")}),
        (_("Who and when"), {"fields": ["tiers", "available_from", "available_until"],
                             "description": _("Tick tiers to offer it only to them (none ticked: everyone).")}),
        (_("What the member gets"), {"fields": ["kind", "needs_fulfilment", "coupon_template", "stored_value",
                                                "upgrade_tier", "donation_goal", "donated_points", "donation_progress"],
                                     "description": _("Goods and services: handed over at the counter against a "
                                                      "pickup code (if it needs fulfilment). Coupon: the coupon "
                                                      "template. Stored-value credit: the amount. Tier upgrade: the "
                                                      "tier. Donation: the goal in points.")}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(
            redeemed_count=Count("redemptions", filter=~Q(redemptions__status=RedemptionStatus.CANCELLED)),
            pending_count=Count("redemptions", filter=Q(redemptions__status=RedemptionStatus.PENDING)),
        )

    def save_model(self, request: HttpRequest, obj: Reward, form: RewardAdminForm, change: bool) -> None:
        """Write only what the merchant changed; stock only if it still is what they saw (redemptions race)."""
        if not change:
            obj.save()
            return
        fields = [f for f in form.changed_data if f not in ("stock", "stock_seen", "tiers")]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])
        if form.stock_changed_by_user:
            seen = form.stock_seen_value()
            same = Reward.objects.filter(pk=obj.pk).filter(Q(stock__isnull=True) if seen is None else Q(stock=seen))
            if not same.update(stock=obj.stock, updated_at=timezone.now()):
                obj.refresh_from_db(fields=["stock"])
                self.message_user(request, _("The stock was not changed: redemptions changed it to %(current)s "
                                             "meanwhile. Check it and save again.")
                                  % {"current": _stock_text(obj.stock) or "∞"}, messages.ERROR)

    def has_delete_permission(self, request: HttpRequest, obj: Reward | None = None) -> bool:
        # A redeemed reward is kept (redemptions refer to it): deactivate it instead.
        if obj is not None and obj.redemptions.exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("image"))
    def thumbnail(self, obj: Reward) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="height:2.5rem;width:2.5rem;object-fit:cover">', obj.image.url)

    @admin.display(description=_("preview"))
    def image_preview(self, obj: Reward) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:12rem;max-width:100%">', obj.image.url)

    @admin.display(description=_("price"))
    def price(self, obj: Reward) -> str:
        if obj.cash_price:
            return _("%(points)s points + %(cash)s") % {"points": obj.points_cost, "cash": obj.cash_price}
        return _("%(points)s points") % {"points": obj.points_cost}

    @admin.display(description=_("stock"), ordering="stock")
    def stock_column(self, obj: Reward) -> str:
        if obj.stock is None:
            return str(_("unlimited"))
        if obj.stock == 0:
            return format_html('<strong style="color:var(--error-fg)">{}</strong>', _("sold out"))
        return str(obj.stock)

    @admin.display(description=_("redeemed"), ordering="redeemed_count")
    def redeemed_column(self, obj: Reward) -> int:
        return obj.redeemed_count

    @admin.display(description=_("to hand over"), ordering="pending_count")
    def pending_column(self, obj: Reward) -> str:
        if not obj.pending_count:
            return "0"
        url = reverse("admin:rewards_redemption_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?queue=PENDING&amp;reward__id__exact={}">{}</a>', url, obj.pk, obj.pending_count)

    @admin.display(description=_("available"))
    def window(self, obj: Reward) -> str:
        if not obj.available_from and not obj.available_until:
            return str(_("always"))
        return f"{compact_time(obj.available_from) if obj.available_from else '…'} – " \
               f"{compact_time(obj.available_until) if obj.available_until else '…'}"

    @admin.display(description=_("donations"))
    def donation_column(self, obj: Reward) -> str:
        percent = donation_percent(obj)
        if percent is None:
            return "—" if obj.kind != RewardKind.DONATION else str(obj.donated_points)
        return format_html('<progress value="{}" max="100" title="{}%"></progress> {}%', percent, percent, percent)

    @admin.display(description=_("progress"))
    def donation_progress(self, obj: Reward) -> str:
        percent = donation_percent(obj)
        if percent is None:
            return "—"
        return format_html('<progress value="{}" max="100"></progress> {}', percent,
                           _("%(done)s of %(goal)s points (%(percent)s%%)")
                           % {"done": obj.donated_points, "goal": obj.donation_goal, "percent": percent})


# ---- REDEMPTIONS: the fulfilment queue ----


class RedemptionQueueFilter(admin.SimpleListFilter):
    """Status, defaulting to the queue: pending redemptions (oldest first, see ``get_ordering``)."""

    title = _("status")
    parameter_name = "queue"
    default = RedemptionStatus.PENDING.value

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [(RedemptionStatus.PENDING.value, _("To hand over")), (RedemptionStatus.FULFILLED.value, _("Fulfilled")),
                (RedemptionStatus.CANCELLED.value, _("Cancelled")), ("all", _("All"))]

    def current(self) -> str:
        value = self.value()
        return value if value in ("all", *RedemptionStatus.values) else self.default

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.current()
        return queryset if value == "all" else queryset.filter(status=value)

    def choices(self, changelist):
        for value, title in self.lookup_choices:
            yield {"selected": self.current() == value, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}


def queue_is_pending(request: HttpRequest) -> bool:
    value = request.GET.get(RedemptionQueueFilter.parameter_name)
    return value in (None, "", RedemptionStatus.PENDING) or value not in ("all", *RedemptionStatus.values)


def idempotency_token_new() -> str:
    return uuid.uuid4().hex


class RedemptionFulfilForm(forms.Form):
    pickup_code = forms.CharField(
        label=_("Pickup code"), max_length=32, help_text=_("The code the member shows. Upper or lower case, "
                                                           "with or without spaces and dashes."),
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off", "size": 16}),
    )
    store = forms.ModelChoiceField(label=_("Store"), queryset=Store.objects.none(), required=False,
                                   help_text=_("Where it is handed over."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = Store.objects.filter(is_active=True).order_by("code")


class RedemptionCancelForm(forms.Form):
    """``token`` is drawn when the page is drawn: a double submit replays the cancellation, never repeats it."""

    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 60}),
                             help_text=_("Recorded with the cancellation and shown in the member's points history."))
    token = forms.CharField(widget=forms.HiddenInput, max_length=32)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", idempotency_token_new())
        super().__init__(*args, **kwargs)

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        if not _TOKEN.match(token):
            raise forms.ValidationError(_("The form has expired; reload the page and try again."), code="token")
        return token


def redemption_title(redemption: Redemption) -> str:
    return _("#%(id)s %(reward)s for %(member)s") % {"id": redemption.pk, "reward": redemption.reward,
                                                    "member": redemption.member}


def _error_field(exc: LoyaltyError, form: forms.Form) -> str | None:
    field = getattr(exc, "field", None) if isinstance(exc, InvalidInput) else None
    return field if field in form.fields else None


@admin.register(Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    list_display = ["id", "redeemed", "member_column", "reward", "points", "cash", "status", "handed_over", "tasks"]
    list_display_links = ["id", "redeemed"]
    list_filter = [RedemptionQueueFilter, "reward"]
    list_select_related = ["member", "reward", "fulfilled_store"]
    search_fields = ["idempotency_key"]  # shows the box; get_search_results does the exact lookups
    search_help_text = _("Member phone or member number, or a redemption number (exact).")
    sortable_by: list[str] = []
    show_facets = admin.ShowFacets.NEVER
    actions = None
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["id", "member_column", "reward", "status", "redeemed_at"]}),
        (_("Payment"), {"fields": ["points", "cash", "cash_reference", "transfer_link", "return_transfer_link"]}),
        (_("Hand-over"), {"fields": ["fulfilled_at", "fulfilled_store", "fulfilled_by"]}),
        (_("Cancellation"), {"fields": ["cancelled_at", "cancel_reason"]}),
        (_("What was given"), {"fields": ["coupon"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    detail_select_related = ["member", "reward", "fulfilled_store", "fulfilled_by", "coupon"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members redeem through the portal, the counter or the API (redemption_create)

    def has_change_permission(self, request: HttpRequest, obj: Redemption | None = None) -> bool:
        return False  # read-only rows: state changes only through "hand over" and "cancel"

    def has_delete_permission(self, request: HttpRequest, obj: Redemption | None = None) -> bool:
        return False

    def has_fulfil_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_redemption")

    def get_ordering(self, request: HttpRequest) -> list[str]:
        # The queue is served oldest first; history (fulfilled, cancelled, all) newest first.
        return ["redeemed_at", "id"] if queue_is_pending(request) else ["-redeemed_at", "-id"]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        q = Q(idempotency_key=term)
        if ids := member_ids_exact(term):
            q |= Q(member_id__in=ids)
        if term.isdigit() and len(term) < 10:
            q |= Q(pk=int(term))
        return queryset.filter(q), False

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Redemption | None:
        try:
            return self.get_queryset(request).select_related(*self.detail_select_related).get(pk=int(object_id))
        except (Redemption.DoesNotExist, ValueError, TypeError):
            return None

    # ---- columns ----

    @admin.display(description=_("redeemed at"))
    def redeemed(self, obj: Redemption) -> str:
        return compact_time(obj.redeemed_at)

    @admin.display(description=_("member"))
    def member_column(self, obj: Redemption) -> str:
        return member_link(obj.member)

    @admin.display(description=_("handed over"))
    def handed_over(self, obj: Redemption) -> str:
        if obj.fulfilled_at is None:
            return "—"
        where = f" · {obj.fulfilled_store.code}" if obj.fulfilled_store_id else ""
        return f"{compact_time(obj.fulfilled_at)}{where}"

    @admin.display(description=_("points taken"))
    def transfer_link(self, obj: Redemption) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("admin:loyalty_transfer_change", args=[obj.transfer_id]),
                           obj.transfer_id)

    @admin.display(description=_("points returned"))
    def return_transfer_link(self, obj: Redemption) -> str:
        if not obj.return_transfer_id:
            return "—"
        url = reverse("admin:loyalty_transfer_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, obj.member.member_number,
                           _("returned (see the member's history)"))

    @admin.display(description=_("tasks"))
    def tasks(self, obj: Redemption) -> str:
        if obj.status != RedemptionStatus.PENDING:
            return ""
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:rewards_redemption_fulfil", args=[obj.pk], current_app=self.admin_site.name), _("Hand over"),
            reverse("admin:rewards_redemption_cancel", args=[obj.pk], current_app=self.admin_site.name), _("Cancel"),
        )

    # ---- pages ----

    def get_urls(self):
        view = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("hand-over/", view(self.fulfil_by_code_view), name=f"{name}_fulfil_by_code"),
            path("<path:object_id>/hand-over/", view(self.fulfil_view), name=f"{name}_fulfil"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name=f"{name}_cancel"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_fulfil": self.has_fulfil_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_fulfil": self.has_fulfil_permission(request)}
        if (redemption := self.get_object(request, unquote(object_id))) is not None:
            extra_context["subtitle"] = redemption_title(redemption)
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request: HttpRequest, *, title: str, form: forms.Form, submit: str, redemption: Redemption | None,
              intro: str = "") -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request), "title": title, "opts": self.opts, "form": form,
            "submit_label": submit, "original": redemption, "intro": intro,
            "subtitle": redemption_title(redemption) if redemption else "",
            "queue_url": reverse("admin:rewards_redemption_changelist", current_app=self.admin_site.name),
            "change_url": reverse("admin:rewards_redemption_change", args=[redemption.pk],
                                  current_app=self.admin_site.name) if redemption else "",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/rewards/redemption/action_form.html", context)

    def _redemption_for(self, request: HttpRequest, object_id: str) -> Redemption:
        redemption = self.get_object(request, unquote(object_id))
        if redemption is None:
            raise Http404(_("No redemption with that ID."))
        if not self.has_fulfil_permission(request):
            raise PermissionDenied
        return redemption

    def _not_pending(self, request: HttpRequest, redemption: Redemption) -> HttpResponseRedirect:
        self.message_user(request, str(RedemptionStateConflict(status=redemption.get_status_display().lower())),
                          messages.ERROR)
        return HttpResponseRedirect(reverse("admin:rewards_redemption_change", args=[redemption.pk],
                                            current_app=self.admin_site.name))

    def _handed_over(self, request: HttpRequest, redemption: Redemption) -> HttpResponseRedirect:
        self.message_user(request, _("Handed over: %(reward)s to %(member)s.")
                          % {"reward": redemption.reward, "member": redemption.member}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:rewards_redemption_changelist", current_app=self.admin_site.name))

    def fulfil_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Hand one pending redemption over: the cashier types the member's pickup code."""
        redemption = self._redemption_for(request, object_id)
        if request.method == "POST":
            form = RedemptionFulfilForm(request.POST)
            if form.is_valid():
                try:
                    redemption = redemption_fulfil(
                        redemption_id=redemption.pk, pickup_code=form.cleaned_data["pickup_code"], now=timezone.now(),
                        store=form.cleaned_data["store"], staff_user=request.user,
                    )
                except RedemptionStateConflict:
                    return self._not_pending(request, Redemption.objects.get(pk=redemption.pk))
                except LoyaltyError as exc:
                    form.add_error(_error_field(exc, form) or "pickup_code", str(exc))
                else:
                    return self._handed_over(request, redemption)
        elif redemption.status != RedemptionStatus.PENDING:
            return self._not_pending(request, redemption)
        else:
            form = RedemptionFulfilForm()
        intro = _("%(reward)s for %(member)s, redeemed %(when)s for %(points)s points.") % {
            "reward": redemption.reward, "member": redemption.member, "when": compact_time(redemption.redeemed_at),
            "points": redemption.points}
        return self._page(request, title=_("Hand over a reward"), form=form, submit=_("Hand over"),
                          redemption=redemption, intro=intro)

    def fulfil_by_code_view(self, request: HttpRequest) -> HttpResponse:
        """The counter's shortcut: type the code the member shows; the pending redemption is found by it."""
        if not self.has_view_permission(request) or not self.has_fulfil_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = RedemptionFulfilForm(request.POST)
            if form.is_valid():
                found = redemption_pending_by_pickup_code(code=form.cleaned_data["pickup_code"])
                if found is None:
                    form.add_error("pickup_code", _("No reward waiting to be handed over has this pickup code."))
                else:
                    try:
                        redemption = redemption_fulfil(
                            redemption_id=found.pk, pickup_code=form.cleaned_data["pickup_code"], now=timezone.now(),
                            store=form.cleaned_data["store"], staff_user=request.user,
                        )
                    except LoyaltyError as exc:
                        form.add_error(_error_field(exc, form) or "pickup_code", str(exc))
                    else:
                        return self._handed_over(request, redemption)
        else:
            form = RedemptionFulfilForm()
        return self._page(request, title=_("Hand over by pickup code"), form=form, submit=_("Hand over"),
                          redemption=None, intro=_("Type or scan the pickup code the member shows."))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Cancel a pending redemption with a reason: points (new transfers) and stock back, cash refunded."""
        redemption = self._redemption_for(request, object_id)
        if request.method == "POST":
            form = RedemptionCancelForm(request.POST)
            if form.is_valid():
                try:
                    redemption = redemption_cancel(
                        redemption_id=redemption.pk, now=timezone.now(), reason=form.cleaned_data["reason"],
                        staff_user=request.user,
                        idempotency_key=f"admin:redemption-cancel:{redemption.pk}:{form.cleaned_data['token']}",
                    )
                except RedemptionStateConflict:
                    return self._not_pending(request, Redemption.objects.get(pk=redemption.pk))
                except LoyaltyError as exc:
                    form.add_error(_error_field(exc, form), str(exc))
                else:
                    self.message_user(request, _("Cancelled: %(points)s points returned to %(member)s.")
                                      % {"points": redemption.points, "member": redemption.member}, messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:rewards_redemption_changelist",
                                                        current_app=self.admin_site.name))
        elif redemption.status != RedemptionStatus.PENDING:
            return self._not_pending(request, redemption)
        else:
            form = RedemptionCancelForm()
        if redemption.cash:
            intro = _("%(points)s points go back to %(member)s, %(cash)s is refunded, and the item goes back to "
                      "stock.") % {"points": redemption.points, "member": redemption.member, "cash": redemption.cash}
        else:
            intro = _("%(points)s points go back to %(member)s and the item goes back to stock.") % {
                "points": redemption.points, "member": redemption.member}
        return self._page(request, title=_("Cancel a redemption"), form=form, submit=_("Cancel the redemption"),
                          redemption=redemption, intro=intro)
