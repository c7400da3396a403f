"""Admin pages for tiers (registered from LoyaltyConfig.ready).

Tiers are edited one by one or as a ladder on the list page; either way the whole set is checked with
``tiers_problems`` (the same words the import and the services use) before anything is saved, so a set
whose lowest tier does not start at 0, or whose thresholds fall as the rank rises, is refused. The tier
policy is a single record. Member tiers and tier changes are a log: a member's tier is changed only
through ``tier_set_manual`` (recorded as MANUAL with the staff member's reason).
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseModelFormSet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty.models import MemberTier, Tier, TierChange, TierPolicy
from loyalty.services.tiers import tier_policy_get, tier_set_manual, tiers_problems
from members.admin import member_ids_exact
from members.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin

# Fields ``tiers_problems`` reads.
SET_FIELDS = ["code", "rank", "spend_threshold", "points_threshold", "retain_spend", "retain_points", "earn_multiplier"]
NEW = "new"


def tier_set_check(edits: dict[Any, dict], *, removed: Any = None) -> list[tuple[Any, str, str]]:
    """Problems of the tier set as it would be after ``edits`` ({pk or NEW: field values}) and without
    ``removed``: a list of (key of the tier, field, message)."""
    rows: dict[Any, dict] = {
        t.pk: {f: getattr(t, f) for f in SET_FIELDS} for t in Tier.objects.order_by("rank", "pk") if t.pk != removed
    }
    for key, values in edits.items():
        rows[key] = {**rows.get(key, {}), **{f: v for f, v in values.items() if f in SET_FIELDS}}
    keys = list(rows)
    out = []
    for path, message in tiers_problems([rows[k] for k in keys]):
        index, _dot, field = path.removeprefix("tiers[").partition("].")
        out.append((keys[int(index)], field, message))
    return out


def _tier_label(key: Any) -> str:
    tier = Tier.objects.filter(pk=key).only("name").first() if key != NEW else None
    return tier.name if tier else str(key)


class TierForm(forms.ModelForm):
    """One tier, checked together with the others as they are in the database."""

    class Meta:
        model = Tier
        fields = ["name", "code", "rank", "spend_threshold", "points_threshold", "retain_spend", "retain_points",
                  "earn_multiplier", "discount_percent", "perks"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        key = self.instance.pk or NEW
        values = {f: cleaned.get(f, getattr(self.instance, f)) for f in SET_FIELDS}
        for tier_key, field, message in tier_set_check({key: values}):
            if tier_key == key and field in self.fields and field not in self.errors:
                self.add_error(field, message)
            elif tier_key == key:
                self.add_error(None, message)
            else:
                self.add_error(None, gettext("%(tier)s: %(message)s") % {"tier": _tier_label(tier_key),
                                                                         "message": message})
        return cleaned


class TierLadderFormSet(BaseModelFormSet):
    """The list page edits several tiers at once: check them all together, not one against the old rest."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        edits = {form.instance.pk: {f: form.cleaned_data.get(f, getattr(form.instance, f)) for f in SET_FIELDS}
                 for form in self.forms if form.instance.pk}
        forms_by_pk = {form.instance.pk: form for form in self.forms if form.instance.pk}
        errors = []
        for key, field, message in tier_set_check(edits):
            form = forms_by_pk.get(key)
            if form is not None and field in form.fields:
                form.add_error(field, message)
            else:
                errors.append(gettext("%(tier)s: %(message)s") % {"tier": _tier_label(key), "message": message})
        if errors:
            raise ValidationError(errors)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    form = TierForm
    list_display = ["name", "code", "rank", "spend_threshold", "points_threshold", "retain_spend", "retain_points",
                    "earn_multiplier", "discount_percent"]
    list_display_links = ["name"]
    list_editable = ["spend_threshold", "points_threshold", "retain_spend", "retain_points", "earn_multiplier",
                     "discount_percent"]
    ordering = ["rank"]
    actions = None  # no bulk delete: removing a tier is checked against the rest of the set, one at a time
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "code", "rank"]}),
        (_("Reaching the tier"), {
            "fields": ["spend_threshold", "points_threshold"],
            "description": _("Qualifying spend OR qualifying points within the window of the tier policy. "
                             "The lowest tier must start at 0; a higher tier cannot need less than the one below."),
        }),
        (_("Keeping the tier"), {
            "fields": ["retain_spend", "retain_points"],
            "description": _("Checked at each review; empty means the same as reaching it."),
        }),
        (_("Benefits"), {"fields": ["earn_multiplier", "discount_percent", "perks"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Tier | None = None) -> list[str]:
        # Rules name tiers by code: a code stays as it was created.
        return [*self.readonly_fields, "code"] if obj is not None else list(self.readonly_fields)

    def get_changelist_formset(self, request: HttpRequest, **kwargs):
        # Its forms are plain model forms: the formset checks the set, not each form against the old rest.
        return super().get_changelist_formset(request, formset=TierLadderFormSet, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Tier | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not tier_set_check({}, removed=obj.pk)


@admin.register(TierPolicy)
class TierPolicyAdmin(SingletonAdminMixin, admin.ModelAdmin):
    """The single tier policy (pk=1): the list goes straight to it; no add, no delete.

    Changes apply from the next evaluation; review dates already set stay as they are.
    """

    singleton_get = staticmethod(tier_policy_get)
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (_("Qualification"), {"fields": ["window", "window_months", "earn_at_new_tier"]}),
        (_("Reviews"), {
            "fields": ["grace_days", "downgrade_mode"],
            "description": _("At the end of its period a tier is reviewed every night at 02:30; a member below "
                             "the keep threshold keeps the tier for the grace days, then drops."),
        }),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]


class ExactMemberSearchMixin:
    search_fields = ["member__member_number"]  # shows the search box; the lookup itself is below
    search_help_text = _("Member phone or member number (exact).")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        if not (search_term or "").strip():
            return queryset, False
        return queryset.filter(member_id__in=member_ids_exact(search_term)), False


class MemberTierForm(forms.ModelForm):
    note = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 60}),
                           help_text=_("Recorded with the change (reason: changed by staff)."))

    class Meta:
        model = MemberTier
        fields = ["member", "tier"]


@admin.register(MemberTier)
class MemberTierAdmin(ExactMemberSearchMixin, admin.ModelAdmin):
    """Each member's tier. Members without a row are at the entry tier. Staff can move a member to a tier
    with a reason: the change goes through ``tier_set_manual`` and is logged; review dates are not edited."""

    form = MemberTierForm
    list_display = ["member", "tier", "since", "review_at", "grace_until"]
    list_filter = ["tier"]
    list_select_related = ["member", "tier"]
    raw_id_fields = ["member"]
    ordering = ["-pk"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None

    def get_fields(self, request: HttpRequest, obj: MemberTier | None = None) -> list[str]:
        if obj is None:
            return ["member", "tier", "note"]
        return ["member", "tier", "note", "since", "review_at", "grace_until"]

    def get_readonly_fields(self, request: HttpRequest, obj: MemberTier | None = None) -> list[str]:
        return ["member", "since", "review_at", "grace_until"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: MemberTier | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: MemberTier, form, change: bool) -> None:
        member = obj.member
        record = tier_set_manual(member=member, tier=form.cleaned_data["tier"], note=form.cleaned_data["note"],
                                 staff_user=request.user, now=timezone.now())
        if record is None:
            messages.info(request, gettext("%(member)s is already on that tier.") % {"member": member})
        obj.pk = MemberTier.objects.filter(member=member).values_list("pk", flat=True).first()


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdminMixin, ExactMemberSearchMixin, admin.ModelAdmin):
    """Every tier change and review outcome, with its reason and the figures used. Append-only."""

    list_display = ["occurred_at", "member", "from_tier", "to_tier", "reason"]
    list_filter = ["reason", "to_tier"]
    list_select_related = ["member", "from_tier", "to_tier"]
    ordering = ["-pk"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None
    fields = ["occurred_at", "member", "from_tier", "to_tier", "reason", "details", "idempotency_key", "created_at"]
    readonly_fields = fields
