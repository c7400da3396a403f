"""Merchant admin for stores and members.

Built for a million members: searches hit unique or prefix indexes only, the changelist never counts
the whole table (``EstimatedCountPaginator``), facet counts are off, and every figure about points
comes from loyalty selectors. Writes that touch the ledger (enrolment, points adjustments) go through
loyalty services; only plain profile fields are edited as model fields.
"""

import re
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput, LoyaltyError
from loyalty.forms import PointsAdjustForm, idempotency_token_new
from loyalty.models import Transfer
from loyalty.selectors import (
    member_lots_open,
    member_points_summary,
    member_transfers,
    transfer_describe,
    transfer_signed_amount,
)
from loyalty.services import member_enrol, points_adjust
from members.forms import MemberAddForm, MemberChangeForm
from members.member_code import member_code_looks_like, member_code_resolve
from members.models import Member, Store
from members.paginators import EstimatedCountPaginator
from members.services import phone_normalise

MEMBER_LOTS_SHOWN = 50
MEMBER_TRANSFERS_SHOWN = 20
_SEPARATORS = re.compile(r"[\s\-().]")


def _phone_or_none(term: str) -> str | None:
    try:
        return phone_normalise(phone=term)
    except ValidationError:
        return None


def member_exact_q(term: str) -> Q | None:
    """Exact member identifiers in a search term: phone (any usual spelling) or member number.

    ``13800138000``, ``+86 138 0013 8000`` and ``138-0013-8000`` all find ``+8613800138000``; member
    numbers match as typed or with spaces/dashes removed. A term can be both a valid phone number and
    a member number (about 0.5% of generated numbers parse as Chinese phone numbers), so both are
    OR-ed: each is a unique index lookup. Returns ``None`` for a blank term.
    """
    term = (term or "").strip()
    if not term:
        return None
    q = Q(member_number=term)
    compact = _SEPARATORS.sub("", term)
    if compact != term and compact.isdigit():
        q |= Q(member_number=compact)
    if (phone := _phone_or_none(term)) is not None:
        q |= Q(phone=phone)
    return q


def member_search_q(term: str) -> Q | None:
    """The filter for a counter search term; every branch is an index lookup (no ``LIKE '%…%'``).

    * a phone number → exact E.164 phone; digits only (generated member numbers are 12 digits) →
      exact member number (see ``member_exact_q``);
    * anything else → name prefix (``varchar_pattern_ops`` index on PostgreSQL, case-sensitive there)
      or an exact member number (imported cards may carry letters).
    """
    q = member_exact_q(term)
    if q is None:
        return None
    term = term.strip()
    if _SEPARATORS.sub("", term).isdigit() or _phone_or_none(term) is not None:
        return q
    return q | Q(name__startswith=term)


def member_ids_exact(term: str) -> list[int]:
    """Primary keys of the members a term names exactly (phone or member number), for ledger admins."""
    q = member_exact_q(term)
    if q is None:
        return []
    return list(Member.objects.filter(q).order_by("pk").values_list("pk", flat=True)[:10])


def signed_points_text(points: int) -> str:
    """+120 credited to the member, -50 taken from them, 0 moved between their own accounts."""
    return f"{points:+d}" if points else "0"


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    """Stores (门店). Not deletable here: members and purchases refer to them; deactivate instead."""

    list_display = ["code", "name", "address", "is_active"]
    list_display_links = ["code", "name"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    search_help_text = _("Store code or part of its name.")
    ordering = ["code"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "address", "is_active"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def has_delete_permission(self, request: HttpRequest, obj: Store | None = None) -> bool:
        return False


@dataclass(frozen=True)
class TransferRow:
    transfer: Transfer
    signed: str
    description: str


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Members (会员).

    Adding a member enrols them through ``loyalty.services.member_enrol`` (member and ledger accounts
    together); editing changes profile fields only. Points move only through "Adjust points", which
    calls ``loyalty.services.points_adjust``.

    Permission to adjust points: the user must hold both ``members.change_member`` and
    ``loyalty.add_transfer`` (superusers have both). An adjustment adds a ledger transfer, so the
    ledger's own "add" permission is the natural switch: grant it to the managers who may give or
    take points, and cashiers who only look members up or fix a name keep ``change_member`` alone.
    (The transfer admin itself never offers "add"; the permission is only the switch.)
    """

    add_form = MemberAddForm
    form = MemberChangeForm
    list_display = ["member_number", "name", "phone", "home_store", "status", "joined_at"]
    list_display_links = ["member_number", "name"]
    list_filter = ["status", "home_store"]
    list_select_related = ["home_store"]
    # Sorting a million rows by a non-unique column is a full sort; member number is unique (indexed).
    sortable_by = ["member_number"]
    search_fields = ["name"]  # shows the search box; get_search_results does the real work
    search_help_text = _("Phone number, member number, member code from the portal, or the beginning of the name "
                         "(case-sensitive).")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    readonly_fields = ["member_number", "joined_at", "referral_code", "referred_by_link", "created_at", "updated_at"]
    add_fieldsets = [(None, {"fields": ["phone", "name", "birthday", "home_store", "member_number"]})]
    fieldsets = [
        (_("Profile"), {"fields": ["member_number", "phone", "name", "birthday", "home_store", "status"]}),
        (_("Membership"), {"fields": ["joined_at", "referral_code", "referred_by_link"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    # ---- list ----

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        # A member code scanned from the portal (18 digits, valid this minute or the one before) names one
        # member; an expired code falls through to the exact searches below and so finds nobody.
        if member_code_looks_like(search_term):
            found = member_code_resolve(code=search_term, now=timezone.now())
            if found is not None:
                return queryset.filter(pk=found.pk), False
        q = member_search_q(search_term)
        if q is None:
            return queryset, False
        return queryset.filter(q), False

    def has_delete_permission(self, request: HttpRequest, obj: Member | None = None) -> bool:
        return False  # members are closed (status), never deleted: the ledger refers to them

    # ---- forms ----

    def get_fieldsets(self, request: HttpRequest, obj: Member | None = None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Member | None = None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request: HttpRequest, obj: Member | None = None, change: bool = False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description=_("referred by"))
    def referred_by_link(self, obj: Member) -> str:
        if obj.referred_by_id is None:
            return "—"
        url = reverse("admin:members_member_change", args=[obj.referred_by_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, obj.referred_by)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Enrol through ``member_enrol`` so the member's ledger accounts exist from the start.

        The standard add view would ``save()`` the form's instance; this one hands the cleaned data to
        the service and shows its refusals (a phone taken a moment ago, …) as form errors.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        fieldsets = self.get_fieldsets(request, None)
        form_class = self.get_form(request, None, change=False, fields=flatten_fieldsets(fieldsets))
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    member = member_enrol(
                        phone=data["phone"], name=data["name"], birthday=data["birthday"],
                        home_store=data["home_store"], member_number=data["member_number"], now=timezone.now(),
                    )
                except LoyaltyError as exc:
                    form.add_error(_error_field(exc, form), str(exc))
                else:
                    self.log_addition(request, member, [{"added": {}}])
                    return self.response_add(request, member)
        else:
            form = form_class(initial=self.get_changeform_initial_data(request))
        admin_form = helpers.AdminForm(form, list(fieldsets), {}, [], model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add %s") % self.opts.verbose_name,
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": IS_POPUP_VAR in request.POST or IS_POPUP_VAR in request.GET,
            "to_field": request.POST.get(TO_FIELD_VAR, request.GET.get(TO_FIELD_VAR)),
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(request, context, add=True, form_url=form_url)

    def save_model(self, request: HttpRequest, obj: Member, form, change: bool) -> None:
        """Profile edits only (adding goes through ``add_view`` → ``member_enrol``)."""
        if not change:  # pragma: no cover - add_view never reaches here
            raise PermissionDenied
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    # ---- change page: points panels ----

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: Member | None = None) -> HttpResponse:
        if obj is not None and not add:
            context.update(self.points_context(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def points_context(self, request: HttpRequest, member: Member) -> dict:
        """Read-only ledger figures for the member page: a fixed number of queries, whatever the history."""
        now = timezone.now()
        lots = list(member_lots_open(member=member)[: MEMBER_LOTS_SHOWN + 1])
        transfers = list(member_transfers(member=member)[: MEMBER_TRANSFERS_SHOWN])
        return {
            "points_summary": member_points_summary(member=member, now=now),
            "open_lots": lots[:MEMBER_LOTS_SHOWN],
            "more_lots": len(lots) > MEMBER_LOTS_SHOWN,
            "lots_shown": MEMBER_LOTS_SHOWN,
            "recent_transfers": [
                TransferRow(t, signed_points_text(transfer_signed_amount(transfer=t)), transfer_describe(transfer=t))
                for t in transfers
            ],
            "transfers_shown": MEMBER_TRANSFERS_SHOWN,
            "can_view_ledger": request.user.has_perm("loyalty.view_transfer"),
            "can_adjust_points": self.has_adjust_points_permission(request, member),
            "now": now,
        }

    # ---- adjust points ----

    def get_urls(self):
        return [
            path(
                "<path:object_id>/adjust-points/",
                self.admin_site.admin_view(self.adjust_points_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_adjust_points",
            ),
            *super().get_urls(),
        ]

    def has_adjust_points_permission(self, request: HttpRequest, obj: Member | None = None) -> bool:
        """See the class docstring: ``members.change_member`` and ``loyalty.add_transfer``."""
        return self.has_change_permission(request, obj) and request.user.has_perm("loyalty.add_transfer")

    def adjust_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Add or remove points with a reason, through ``points_adjust`` (one transfer, idempotent)."""
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404(_("No member with that ID."))
        if not self.has_adjust_points_permission(request, member):
            raise PermissionDenied
        change_url = reverse("admin:members_member_change", args=[member.pk], current_app=self.admin_site.name)
        if request.method == "POST":
            form = PointsAdjustForm(request.POST)
            if form.is_valid():
                points = form.cleaned_data["points"]
                try:
                    points_adjust(
                        member=member, points=points, reason=form.cleaned_data["reason"], staff_user=request.user,
                        idempotency_key=form.idempotency_key(member_id=member.pk), now=timezone.now(),
                    )
                except IdempotencyKeyReused:
                    # The token already recorded a different adjustment (back button, edited, resent).
                    # Offer a fresh token so a deliberate second adjustment can go through.
                    data = request.POST.copy()
                    data["token"] = idempotency_token_new()
                    form = PointsAdjustForm(data)
                    form.is_valid()
                    form.add_error(None, _(
                        "This form was already used for a different adjustment. Check the member's recent "
                        "points history; submit again only if this adjustment is still needed."
                    ))
                except LoyaltyError as exc:
                    form.add_error(_error_field(exc, form), str(exc))
                else:
                    if points > 0:
                        text = _("Added %(points)s points to %(member)s.")
                    else:
                        text = _("Removed %(points)s points from %(member)s.")
                    self.message_user(request, text % {"points": abs(points), "member": member}, messages.SUCCESS)
                    return HttpResponseRedirect(change_url)
        else:
            form = PointsAdjustForm()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Adjust points"),
            "subtitle": str(member),
            "opts": self.opts,
            "original": member,
            "change_url": change_url,
            "form": form,
            "points_summary": member_points_summary(member=member, now=timezone.now()),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/members/member/adjust_points.html", context)


def _error_field(exc: LoyaltyError, form) -> str | None:
    """The form field a service refusal is about, or ``None`` for a form-wide error."""
    field = getattr(exc, "field", None) if isinstance(exc, InvalidInput) else None
    return field if field in form.fields else None

