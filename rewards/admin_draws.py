"""Admin pages for lucky draws (积分抽奖), registered from RewardsConfig.ready.

* Campaigns are edited with their prizes inline; each prize shows its chance of being drawn now
  (its weight over the weights of the prizes still in stock).
* The draw log is read-only: every draw with its member, prize, the random number and the weights in
  play (``Draw.outcome``), and links to the ledger transfers it posted — staff can audit any draw.
"""

from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, Q, Subquery, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from loyalty.admin import LedgerAdmin, compact_time, json_pretty, member_link
from rewards.models import Draw, DrawCampaign, Prize, PrizeKind


class PrizeForm(forms.ModelForm):
    class Meta:
        model = Prize
        fields = ["name", "name_zh_hans", "kind", "weight", "stock", "points", "coupon_template"]

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == PrizeKind.POINTS and not data.get("points"):
            self.add_error("points", _("A points prize needs the number of points."))
        if kind == PrizeKind.COUPON and not data.get("coupon_template"):
            self.add_error("coupon_template", _("A coupon prize needs a coupon template."))
        return data


class PrizeInline(admin.TabularInline):
    model = Prize
    form = PrizeForm
    extra = 0
    fields = ["name", "name_zh_hans", "kind", "weight", "stock", "points", "coupon_template", "probability"]
    readonly_fields = ["probability"]

    def get_queryset(self, request: HttpRequest):
        in_play = (
            Prize.objects.filter(Q(stock__isnull=True) | Q(stock__gt=0), campaign=OuterRef("campaign"))
            .order_by().values("campaign").annotate(total=Sum("weight")).values("total")
        )
        return super().get_queryset(request).annotate(weights_in_play=Subquery(in_play)).order_by("pk")

    @admin.display(description=_("chance now"))
    def probability(self, obj: Prize) -> str:
        """Weight over the total weight of the campaign's prizes still in stock (as the next draw sees it)."""
        if obj.pk is None:
            return "—"
        if obj.stock == 0:
            return str(_("0 % (out of stock)"))
        total = getattr(obj, "weights_in_play", None)
        if not total:
            return "—"
        percent = (Decimal(obj.weight) * 100 / total).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return f"{percent} %"


class DrawCampaignForm(forms.ModelForm):
    class Meta:
        model = DrawCampaign
        fields = ["name", "name_zh_hans", "cost_points", "daily_limit", "campaign_limit", "starts_at", "ends_at",
                  "is_active"]

    def clean(self):
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start:
            self.add_error("ends_at", _("The end must come after the start."))
        return data


@admin.register(DrawCampaign)
class DrawCampaignAdmin(admin.ModelAdmin):
    """A lucky draw: cost per draw, limits per member (per program-local day and in total), opening times."""

    form = DrawCampaignForm
    inlines = [PrizeInline]
    list_display = ["name", "cost_points", "daily_limit", "campaign_limit", "starts_at", "ends_at", "is_active",
                    "draw_log"]
    list_filter = ["is_active"]
    search_fields = ["name", "name_zh_hans"]
    ordering = ["-pk"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "name_zh_hans", "cost_points", "is_active"]}),
        (_("Limits per member"), {"fields": ["daily_limit", "campaign_limit"],
                                  "description": _("Empty: no limit. Days follow the program time zone.")}),
        (_("Opening times"), {"fields": ["starts_at", "ends_at"], "description": _("Empty: always open.")}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("draw log"))
    def draw_log(self, obj: DrawCampaign) -> str:
        url = reverse("admin:rewards_draw_changelist") + "?" + urlencode({"campaign__id__exact": obj.pk})
        return format_html('<a href="{}">{}</a>', url, _("Draws"))

    def has_delete_permission(self, request: HttpRequest, obj: DrawCampaign | None = None) -> bool:
        # Draws refer to the campaign and its prizes: switch it off instead.
        if obj is not None and Draw.objects.filter(campaign=obj).exists():
            return False
        return super().has_delete_permission(request, obj)


class PrizeFilter(admin.SimpleListFilter):
    """Prizes, named with their campaign; only the chosen campaign's prizes once a campaign is picked."""

    title = _("prize")
    parameter_name = "prize"

    def lookups(self, request, model_admin):
        prizes = Prize.objects.select_related("campaign").order_by("campaign_id", "pk")
        campaign = request.GET.get("campaign__id__exact")
        if campaign and campaign.isdigit():
            prizes = prizes.filter(campaign_id=int(campaign))
        return [(str(p.pk), f"{p.campaign.name} · {p.name}") for p in prizes[:200]]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(prize_id=int(value))
        return queryset


@admin.register(Draw)
class DrawAdmin(LedgerAdmin):
    """The draw log (抽奖记录): read-only, every draw with its outcome and the random number behind it."""

    list_display = ["id", "drawn", "campaign", "member_column", "prize", "prize_kind", "delivery"]
    list_filter = ["campaign", PrizeFilter, ("drawn_at", admin.DateFieldListFilter)]
    list_select_related = ["campaign", "member", "prize"]
    search_fields = ["idempotency_key"]
    search_keys = ["idempotency_key"]
    search_help_text = _("Member phone or member number, or an idempotency key (exact).")
    detail_select_related = ["campaign", "member", "prize", "cost_transfer", "prize_transfer", "coupon"]
    fieldsets = [
        (None, {"fields": ["id", "campaign", "member_column", "drawn_at", "prize", "prize_kind", "delivery"]}),
        (_("Ledger"), {"fields": ["cost_transfer", "prize_transfer", "coupon"]}),
        (_("Outcome"), {"fields": ["outcome_pretty"],
                        "description": _("The prize is the first whose running total of weights exceeds the "
                                         "random number.")}),
        (_("Idempotency"), {"fields": ["idempotency_key", "created_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("drawn at"))
    def drawn(self, obj: Draw) -> str:
        return compact_time(obj.drawn_at)

    @admin.display(description=_("member"))
    def member_column(self, obj: Draw) -> str:
        return member_link(obj.member)

    @admin.display(description=_("kind"))
    def prize_kind(self, obj: Draw) -> str:
        return obj.prize.get_kind_display() if obj.prize else "—"

    @admin.display(description=_("delivery"))
    def delivery(self, obj: Draw) -> str:
        delivered = (obj.outcome or {}).get("delivery")
        if not delivered:
            return "—"
        if "points" in delivered:
            return _("%(points)s points credited") % {"points": delivered["points"]}
        if "coupon" in delivered:
            return _("coupon #%(coupon)s issued") % {"coupon": delivered["coupon"]}
        if "goods" in delivered:
            return _("to collect at the counter")
        return "—"

    @admin.display(description=_("outcome"))
    def outcome_pretty(self, obj: Draw) -> str:
        return json_pretty(obj.outcome)
