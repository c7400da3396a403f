"""Admin pages for stored value (储值), registered from RewardsConfig.ready.

* Top-up bonus rules (充100送20) are edited here.
* Top-ups and spends are ledger records: view-only. Money moves only through the services:
  "Add top-up" is the counter page (``wallet_topup``), "Refund top-up" on a top-up's page calls
  ``wallet_topup_refund``.
* Permissions: ``rewards.add_topup`` lets a cashier top up at the counter; ``rewards.change_topup``
  lets a manager refund a top-up. Viewing needs ``rewards.view_topup`` as usual.
"""

import re
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from loyalty.admin import LedgerAdmin, compact_time, member_link
from loyalty.exceptions import IdempotencyKeyReused, InvalidInput, LoyaltyError
from loyalty.forms import idempotency_token_new
from loyalty.models import Lot
from members.admin import member_exact_q
from members.models import Member, Store
from rewards.models import TopUp, TopUpBonusRule, WalletPreference, WalletSpend
from rewards.services.wallet import (
    wallet_balance,
    wallet_low_balance_set,
    wallet_topup,
    wallet_topup_refund,
    yuan,
)

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


# ---- forms ----


class _TokenForm(forms.Form):
    """``token`` is drawn once when the empty form is shown and posted back hidden: a double click or a
    resubmitted page carries the same token, so the service replays the first write instead of a second."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=32)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", idempotency_token_new())
        super().__init__(*args, **kwargs)

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        if not _TOKEN.match(token):
            raise forms.ValidationError(_("The form has expired; reload the page and try again."), code="token")
        return token

    def with_fresh_token(self, data) -> "_TokenForm":
        data = data.copy()
        data["token"] = idempotency_token_new()
        form = type(self)(data)
        form.is_valid()
        return form


class TopUpCounterForm(_TokenForm):
    member = forms.CharField(label=_("Member"), max_length=32, help_text=_("Phone number or member number."))
    amount = forms.DecimalField(label=_("Amount paid"), max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    store = forms.ModelChoiceField(label=_("Store"), queryset=Store.objects.filter(is_active=True).order_by("code"),
                                   required=False)
    reference = forms.CharField(label=_("Payment reference"), max_length=64, required=False,
                                help_text=_("Receipt or card slip number, so the payment can be traced."))

    def clean_member(self) -> Member:
        q = member_exact_q(self.cleaned_data["member"])
        members = list(Member.objects.filter(q).order_by("pk")[:2]) if q is not None else []
        if not members:
            raise forms.ValidationError(_("No member has this phone number or member number."), code="not_found")
        if len(members) > 1:
            raise forms.ValidationError(_("This matches more than one member; enter the member number."),
                                        code="ambiguous")
        return members[0]


class TopUpRefundForm(_TokenForm):
    amount = forms.DecimalField(
        label=_("Amount to refund"), max_digits=12, decimal_places=2, min_value=Decimal("0.01"), required=False,
        help_text=_("Leave empty to refund all the unspent principal."),
    )


class TopUpBonusRuleForm(forms.ModelForm):
    class Meta:
        model = TopUpBonusRule
        fields = ["name", "minimum", "bonus", "valid_from", "valid_until", "is_active"]

    def clean(self):
        data = super().clean()
        start, end = data.get("valid_from"), data.get("valid_until")
        if start and end and end <= start:
            self.add_error("valid_until", _("The end must come after the start."))
        return data


def _error_field(exc: LoyaltyError, form: forms.Form) -> str | None:
    field = getattr(exc, "field", None) if isinstance(exc, InvalidInput) else None
    return field if field in form.fields else None


# ---- bonus rules ----


@admin.register(TopUpBonusRule)
class TopUpBonusRuleAdmin(admin.ModelAdmin):
    """充100送20: the best active rule applies (the largest minimum a top-up reaches, valid at its time)."""

    form = TopUpBonusRuleForm
    list_display = ["name", "minimum", "bonus", "valid_from", "valid_until", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    ordering = ["minimum", "pk"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "minimum", "bonus", "is_active"]}),
        (_("Validity"), {"fields": ["valid_from", "valid_until"], "description": _("Empty: always.")}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def has_delete_permission(self, request: HttpRequest, obj: TopUpBonusRule | None = None) -> bool:
        # Top-ups refer to the rule that gave their bonus: switch a used rule off instead.
        if obj is not None and TopUp.objects.filter(bonus_rule=obj).exists():
            return False
        return super().has_delete_permission(request, obj)


# ---- top-ups ----


@admin.register(TopUp)
class TopUpAdmin(LedgerAdmin):
    list_display = ["id", "occurred", "member_column", "amount", "bonus", "refunded_amount", "store", "reference"]
    list_filter = ["store", ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "store"]
    search_fields = ["reference"]
    search_keys = ["reference", "idempotency_key"]
    search_help_text = _("Member phone or member number, a payment reference or an idempotency key (exact).")
    detail_select_related = ["member", "store", "bonus_rule", "principal_transfer", "bonus_transfer", "points_transfer"]
    fieldsets = [
        (None, {"fields": ["id", "member_column", "occurred_at", "store", "reference"]}),
        (_("Money"), {"fields": ["amount", "bonus", "bonus_rule", "refunded_amount", "unspent"]}),
        (_("Ledger"), {"fields": ["principal_transfer", "bonus_transfer", "points_transfer"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "fingerprint", "created_at", "updated_at"],
                            "classes": ["collapse"]}),
    ]

    @admin.display(description=_("business time"))
    def occurred(self, obj: TopUp) -> str:
        return compact_time(obj.occurred_at)

    @admin.display(description=_("member"))
    def member_column(self, obj: TopUp) -> str:
        return member_link(obj.member)

    @admin.display(description=_("unspent"))
    def unspent(self, obj: TopUp) -> str:
        principal, bonus = topup_unspent(obj)
        return _("principal %(principal)s (refundable), bonus %(bonus)s") % {"principal": principal, "bonus": bonus}

    # ---- permissions: add = top up at the counter, change = refund ----

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("rewards.add_topup")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_topup")

    def get_urls(self):
        return [
            path("<path:object_id>/refund/", self.admin_site.admin_view(self.refund_view),
                 name=f"{self.opts.app_label}_{self.opts.model_name}_refund"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None):
        extra = {"can_refund": self.has_refund_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def _page(self, request: HttpRequest, template: str, **context) -> TemplateResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(request, template, {**self.admin_site.each_context(request), "opts": self.opts,
                                                    **context})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Top up at the counter: find the member, take the amount, call ``wallet_topup`` (idempotent)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TopUpCounterForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                topup = wallet_topup(
                    member=data["member"], amount=data["amount"], now=timezone.now(), store=data["store"],
                    reference=data["reference"], idempotency_key=f"admin:topup:{data['token']}",
                    staff_user=request.user,
                )
            except IdempotencyKeyReused:
                form = form.with_fresh_token(request.POST)
                form.add_error(None, _("This form was already used for a different top-up. Check the member's "
                                       "top-ups; submit again only if this top-up is still needed."))
            except LoyaltyError as exc:
                form.add_error(_error_field(exc, form), str(exc))
            else:
                self.log_addition(request, topup, [{"added": {}}])
                points = topup.points_transfer.amount if topup.points_transfer else 0
                self.message_user(request, _(
                    "Topped up %(amount)s for %(member)s: bonus %(bonus)s, %(points)s points."
                ) % {"amount": topup.amount, "member": topup.member, "bonus": topup.bonus, "points": points},
                    messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:rewards_topup_change", args=[topup.pk],
                                                    current_app=self.admin_site.name))
        return self._page(request, "admin/rewards/topup/counter.html", title=_("Top up stored value"), form=form,
                          rules=TopUpBonusRule.objects.filter(is_active=True).order_by("minimum", "pk"))

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund unspent principal of one top-up; its unspent bonus is removed (``wallet_topup_refund``)."""
        topup = self.get_object(request, unquote(object_id))
        if topup is None:
            raise Http404(_("No top-up with that ID."))
        if not (self.has_view_permission(request, topup) and self.has_refund_permission(request)):
            raise PermissionDenied
        change_url = reverse("admin:rewards_topup_change", args=[topup.pk], current_app=self.admin_site.name)
        form = TopUpRefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                topup = wallet_topup_refund(
                    topup=topup, amount=form.cleaned_data["amount"], now=timezone.now(), staff_user=request.user,
                    idempotency_key=f"admin:topup-refund:{topup.pk}:{form.cleaned_data['token']}",
                )
            except IdempotencyKeyReused:
                form = form.with_fresh_token(request.POST)
                form.add_error(None, _("This form was already used for a different refund. Check the top-up; "
                                       "submit again only if another refund is still needed."))
            except LoyaltyError as exc:
                form.add_error(_error_field(exc, form), str(exc))
            else:
                self.message_user(request, _("Refunded; %(refunded)s of this top-up has now been paid back.")
                                  % {"refunded": topup.refunded_amount}, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        principal, bonus = topup_unspent(topup)
        return self._page(request, "admin/rewards/topup/refund.html", title=_("Refund top-up"), subtitle=str(topup),
                          original=topup, change_url=change_url, form=form, principal=principal, bonus=bonus)


def topup_unspent(topup: TopUp) -> tuple[Decimal, Decimal]:
    """Unspent principal (refundable) and bonus of one top-up: what its lots still hold."""
    held = dict(
        Lot.objects.filter(transfer_id__in=[t for t in (topup.principal_transfer_id, topup.bonus_transfer_id) if t])
        .values_list("transfer_id", "remaining")
    )
    return yuan(held.get(topup.principal_transfer_id, 0)), yuan(held.get(topup.bonus_transfer_id, 0))


@admin.register(WalletSpend)
class WalletSpendAdmin(LedgerAdmin):
    list_display = ["id", "occurred", "member_column", "amount", "from_bonus", "from_principal", "store", "reference"]
    list_filter = ["store", ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "store"]
    search_fields = ["reference"]
    search_keys = ["reference", "idempotency_key"]
    search_help_text = _("Member phone or member number, a reference or an idempotency key (exact).")
    detail_select_related = ["member", "store"]
    fieldsets = [
        (None, {"fields": ["id", "member_column", "occurred_at", "store", "reference"]}),
        (_("Money"), {"fields": ["amount", "from_bonus", "from_principal"]}),
        (_("Idempotency"), {"fields": ["idempotency_key", "fingerprint", "created_at", "updated_at"],
                            "classes": ["collapse"]}),
    ]

    @admin.display(description=_("business time"))
    def occurred(self, obj: WalletSpend) -> str:
        return compact_time(obj.occurred_at)

    @admin.display(description=_("member"))
    def member_column(self, obj: WalletSpend) -> str:
        return member_link(obj.member)


@admin.register(WalletPreference)
class WalletPreferenceAdmin(admin.ModelAdmin):
    """Per-member low-balance alert threshold; saved through ``wallet_low_balance_set``."""

    list_display = ["member", "low_balance_threshold"]
    list_select_related = ["member"]
    raw_id_fields = ["member"]
    fields = ["member", "low_balance_threshold", "stored_value"]
    search_fields = ["member__member_number"]
    search_help_text = _("Member phone or member number (exact).")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        q = member_exact_q(search_term)
        if q is None:
            return queryset, False
        return queryset.filter(member__in=Member.objects.filter(q).values("pk")), False

    def get_readonly_fields(self, request: HttpRequest, obj: WalletPreference | None = None) -> list[str]:
        return ["member", "stored_value"] if obj is not None else ["stored_value"]

    @admin.display(description=_("stored value"))
    def stored_value(self, obj: WalletPreference) -> str:
        if obj.pk is None:
            return "—"
        b = wallet_balance(member=obj.member)
        if b.low_balance:
            return format_html('<strong style="color:var(--error-fg)">{}</strong>', b.total)
        return str(b.total)

    def save_model(self, request: HttpRequest, obj: WalletPreference, form, change: bool) -> None:
        saved = wallet_low_balance_set(member=obj.member, threshold=obj.low_balance_threshold)
        obj.pk = saved.pk
