"""Admin pages for coupons (registered from RewardsConfig.ready).

* Coupon templates: edited as model fields (names and descriptions in both languages, image, kind and its
  own fields, conditions, validity), checked as a whole: a kind's own field is required and the others' are
  refused; validity is fixed dates or a number of days from issue, not both.
* Coupons: read-only rows (issued and redeemed through the services only). The search takes an exact code
  (as printed, any case, dashes or spaces) or a member's phone or number: index lookups only.
* Counter (核销): type or scan a code, check it (``coupon_validate``, writes nothing) and redeem it
  (``coupon_redeem``; the page's token is the idempotency key, so a double click redeems once).
* Bulk issue: a template and either a segment (status, home store, tier) or a CSV of member numbers or
  phones. "Preview" resolves the members and shows the count and the bad rows; "Issue" issues through
  ``coupon_issue`` with the keys ``bulk:{batch}:{member id}``, so submitting the same batch again issues
  nothing twice. The preview's member list travels signed in the form: what is issued is what was shown.
"""

import csv
import io
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty.admin import compact_time, member_link
from loyalty.exceptions import LoyaltyError
from loyalty.models import Tier
from members.admin import member_ids_exact
from members.models import Member, MemberStatus, Store
from rewards.models import Coupon, CouponKind, CouponSource, CouponTemplate
from rewards.services.coupons import (
    coupon_code_format,
    coupon_code_is_well_formed,
    coupon_code_normalise,
    coupon_issue_or_replay,
    coupon_qr_svg,
    coupon_redeem,
    coupon_validate,
)

# ---- TEMPLATES ----

# Fields that belong to some kinds only: (field, kinds, error when missing, error when set on another kind).
KIND_FIELDS = [
    ("amount", (CouponKind.FIXED, CouponKind.SPEND_SAVE), _("Enter the amount taken off."),
     _("Only fixed-amount and spend-X-save-Y coupons take an amount off: leave this empty.")),
    ("percent", (CouponKind.PERCENT,), _("Enter the percentage taken off."),
     _("Only percentage coupons have a percentage: leave this empty.")),
    ("max_discount", (CouponKind.PERCENT,), None,
     _("Only percentage coupons have a cap: leave this empty.")),
    ("free_item", (CouponKind.FREE_ITEM,), _("Name the free item or experience."),
     _("Only free-item coupons give an item: leave this empty.")),
]


def store_choices() -> list[tuple[str, str]]:
    return [(code, f"{name} ({code})") for code, name in Store.objects.order_by("code").values_list("code", "name")]


class CouponTemplateForm(forms.ModelForm):
    stores = forms.MultipleChoiceField(
        label=_("stores"), required=False, widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text=_("Valid only at these stores (Ctrl or ⌘ and click to choose several). None selected: every store."),
    )

    class Meta:
        model = CouponTemplate
        fields = ["name", "name_zh_hans", "description", "description_zh_hans", "image", "kind", "amount", "percent",
                  "max_discount", "free_item", "minimum_spend", "stores", "stacks_with_points", "stacks_with_coupons",
                  "valid_from", "valid_until", "valid_days", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "stores" in self.fields:
            saved = list(self.instance.stores or [])
            choices = store_choices()
            known = {code for code, _label in choices}
            self.fields["stores"].choices = choices + [(c, c) for c in saved if c not in known]

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        for field, kinds, missing, misplaced in KIND_FIELDS:
            value = data.get(field)
            if kind in kinds and value in (None, "") and missing is not None:
                self.add_error(field, missing)
            elif kind and kind not in kinds and value not in (None, ""):
                self.add_error(field, misplaced)
        if kind == CouponKind.SPEND_SAVE:
            minimum, amount = data.get("minimum_spend"), data.get("amount")
            if not minimum:
                self.add_error("minimum_spend", _("Enter X, the amount the basket must reach (满X减Y)."))
            elif amount is not None and amount >= minimum:
                self.add_error("amount", _("Y must be less than X (the minimum spend)."))
        start, end, days = data.get("valid_from"), data.get("valid_until"), data.get("valid_days")
        if days is not None and (start or end):
            self.add_error("valid_days", _("Give either fixed dates or a number of days from issue, not both."))
        elif days == 0:
            self.add_error("valid_days", _("At least 1 day."))
        elif days is None and not end:
            self.add_error("valid_until", _("Give an end date, or a number of days from issue."))
        elif start and end and end <= start:
            self.add_error("valid_until", _("The end must be after the start."))
        if (self.instance.pk and kind and kind != self.instance.kind
                and Coupon.objects.filter(template=self.instance).exists()):
            self.add_error("kind", _("Coupons of this template have been issued, so its kind cannot change. "
                                     "Create a new template instead."))
        return data


@admin.register(CouponTemplate)
class CouponTemplateAdmin(admin.ModelAdmin):
    form = CouponTemplateForm
    list_display = ["thumbnail", "name", "name_zh_hans", "kind", "value_text", "validity_text", "is_active",
                    "issued_count"]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "name_zh_hans"]
    search_help_text = _("Part of the template's name, in either language.")
    ordering = ["-id"]
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = ["image_preview", "created_at", "updated_at"]
    fieldsets = [
        (_("What members see"), {"fields": ["name", "name_zh_hans", "description", "description_zh_hans", "image",
                                            "image_preview", "is_active"],
                                 "description": _("Names and descriptions in English and Chinese; members see the "
                                                  "Chinese ones when their language is Chinese and they are filled "
                                                  "in. Untick “active” to stop issuing; coupons already issued stay "
                                                  "valid.")}),
        (_("What it gives"), {"fields": ["kind", "amount", "percent", "max_discount", "free_item"],
                              "description": _("Fixed amount: the amount, never more than the order. Percentage: "
                                               "the percentage of the order, up to the cap. Spend X save Y (满减): "
                                               "the amount once the order reaches the minimum spend. Free item: "
                                               "no money off; the item is handed over at the counter.")}),
        (_("Conditions"), {"fields": ["minimum_spend", "stores", "stacks_with_points", "stacks_with_coupons"]}),
        (_("Validity"), {"fields": ["valid_from", "valid_until", "valid_days"],
                         "description": _("Fixed dates (the end is required), or a number of days from issue "
                                          "(valid until the end of that day, program time zone).")}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(issued=Count("coupons"))

    @admin.display(description="")
    def thumbnail(self, obj: CouponTemplate) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="height:2.5rem;width:2.5rem;object-fit:cover">', obj.image.url)

    @admin.display(description=_("preview"))
    def image_preview(self, obj: CouponTemplate) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:12rem;max-width:100%">', obj.image.url)

    @admin.display(description=_("gives"))
    def value_text(self, obj: CouponTemplate) -> str:
        return template_value_text(obj)

    @admin.display(description=_("validity"))
    def validity_text(self, obj: CouponTemplate) -> str:
        if obj.valid_days:
            return gettext("%(days)s days from issue") % {"days": obj.valid_days}
        if obj.valid_until:
            return f"{compact_time(obj.valid_from) if obj.valid_from else ''} → {compact_time(obj.valid_until)}"
        return gettext("no end")

    @admin.display(description=_("issued"), ordering="issued")
    def issued_count(self, obj: CouponTemplate) -> int:
        return obj.issued


def template_value_text(t: CouponTemplate) -> str:
    if t.kind == CouponKind.FIXED:
        return gettext("%(amount)s off") % {"amount": t.amount}
    if t.kind == CouponKind.SPEND_SAVE:
        return gettext("spend %(minimum)s save %(amount)s") % {"minimum": t.minimum_spend, "amount": t.amount}
    if t.kind == CouponKind.PERCENT:
        text = gettext("%(percent)s%% off") % {"percent": (t.percent or Decimal(0)).normalize()}
        if t.max_discount:
            text += " " + gettext("(at most %(cap)s)") % {"cap": t.max_discount}
        return text
    return gettext("free: %(item)s") % {"item": t.free_item}


# ---- COUPONS ----


class CounterForm(forms.Form):
    code = forms.CharField(label=_("coupon code"), max_length=40, widget=forms.TextInput(attrs={"autofocus": True}),
                           help_text=_("As printed or scanned; case, spaces and dashes do not matter."))
    member = forms.CharField(label=_("member"), max_length=40, required=False,
                             help_text=_("Phone or member number. Empty: whoever shows the code."))
    store = forms.ModelChoiceField(label=_("store"), queryset=Store.objects.filter(is_active=True).order_by("code"),
                                   required=False)
    order_amount = forms.DecimalField(label=_("order amount"), max_digits=12, decimal_places=2, min_value=0)
    reference = forms.CharField(label=_("receipt or order number"), max_length=64, required=False)
    token = forms.CharField(widget=forms.HiddenInput)

    def clean_member(self) -> Member | None:
        term = self.cleaned_data.get("member", "").strip()
        if not term:
            return None
        ids = member_ids_exact(term)
        if len(ids) != 1:
            raise forms.ValidationError(_("No member has this phone or member number."))
        return Member.objects.get(pk=ids[0])


class BulkIssueForm(forms.Form):
    template = forms.ModelChoiceField(label=_("coupon template"),
                                      queryset=CouponTemplate.objects.filter(is_active=True).order_by("name"))
    mode = forms.ChoiceField(label=_("members"), widget=forms.RadioSelect, initial="segment", choices=[
        ("segment", _("A segment")), ("csv", _("A CSV file of member numbers or phones"))])
    status = forms.ChoiceField(label=_("status"), choices=MemberStatus.choices, initial=MemberStatus.ACTIVE,
                               required=False)
    home_store = forms.ModelChoiceField(label=_("home store"), queryset=Store.objects.order_by("code"), required=False,
                                        empty_label=_("any store"))
    tier = forms.ModelChoiceField(label=_("tier"), queryset=Tier.objects.order_by("rank"), required=False,
                                  empty_label=_("any tier"))
    csv_file = forms.FileField(label=_("CSV file"), required=False, help_text=_(
        "One member per line: member number or phone in the first column; a header line is allowed. "
        "UTF-8 or GB18030 (Excel)."))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == "csv" and not data.get("csv_file"):
            self.add_error("csv_file", _("Choose the CSV file."))
        if data.get("mode") == "segment" and not data.get("status"):
            self.add_error("status", _("Choose the members' status."))
        return data


@dataclass
class BulkRow:
    row: int
    text: str
    member_id: int | None = None
    outcome: str = ""  # "ok" (to issue), "issued", "skipped", "error"
    message: str = ""
    member: Member | None = None
    coupon: Coupon | None = None


_HEADER_WORDS = {"member", "member_number", "member number", "number", "phone", "mobile", "会员", "会员号", "会员编号",
                 "手机", "手机号", "手机号码"}
BULK_SALT = "rewards.coupons.bulk-issue"
CSV_MAX_ROWS = 50_000


def csv_rows_resolve(raw: bytes) -> list[BulkRow]:
    """Rows of a CSV upload with the member each names, or the reason it names none."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
    rows, seen = [], {}
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        value = next((c.strip() for c in cells if c.strip()), "")
        if not value:
            continue
        if number == 1 and value.lower() in _HEADER_WORDS:
            continue
        row = BulkRow(row=number, text=value[:40])
        ids = member_ids_exact(value)
        if len(ids) != 1:
            row.outcome, row.message = "error", gettext("No member has this member number or phone.")
        elif ids[0] in seen:
            row.outcome = "skipped"
            row.message = gettext("The same member as row %(row)s.") % {"row": seen[ids[0]]}
        else:
            row.member_id, row.outcome = ids[0], "ok"
            seen[ids[0]] = number
        rows.append(row)
        if len(rows) > CSV_MAX_ROWS:
            raise forms.ValidationError(_("At most %(limit)s rows per file.") % {"limit": CSV_MAX_ROWS})
    return rows


def segment_members(segment: dict) -> QuerySet:
    qs = Member.objects.filter(status=segment["status"])
    if segment.get("home_store"):
        qs = qs.filter(home_store_id=segment["home_store"])
    if segment.get("tier"):
        qs = qs.filter(tier_state__tier_id=segment["tier"])
    return qs.order_by("pk")


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    list_display = ["code_text", "template", "member_column", "status", "valid_until_text", "redeemed_at_text",
                    "redeemed_store", "discount"]
    list_filter = ["status", "template"]
    list_select_related = ["template", "member", "redeemed_store"]
    search_fields = ["code"]  # replaced by get_search_results: exact code or member
    search_help_text = _("An exact coupon code, or a member's phone or member number.")
    ordering = ["-id"]
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    actions = None
    fieldsets = [
        (None, {"fields": ["code_text", "qr_code", "template", "member_column", "status", "source"]}),
        (_("Validity"), {"fields": ["issued_at", "valid_from", "valid_until"]}),
        (_("Redemption"), {"fields": ["redeemed_at", "redeemed_store", "redeemed_reference", "discount"]}),
        (_("Record"), {"fields": ["idempotency_key", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    # Issued and redeemed by the services only: the rows are read-only here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for _name, opts in self.fieldsets for f in opts["fields"]]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        q = Q(pk__in=[])
        code = coupon_code_normalise(term)
        if coupon_code_is_well_formed(code):
            q |= Q(code=code)
        if ids := member_ids_exact(term):
            q |= Q(member_id__in=ids)
        return queryset.filter(q), False

    @admin.display(description=_("code"), ordering="code")
    def code_text(self, obj: Coupon) -> str:
        return coupon_code_format(obj.code)

    @admin.display(description=_("QR code"))
    def qr_code(self, obj: Coupon) -> str:
        return mark_safe(coupon_qr_svg(coupon=obj))  # segno's markup of an alphabet-only code

    @admin.display(description=_("member"))
    def member_column(self, obj: Coupon) -> str:
        return member_link(obj.member)

    @admin.display(description=_("valid until"), ordering="valid_until")
    def valid_until_text(self, obj: Coupon) -> str:
        return compact_time(obj.valid_until) if obj.valid_until else gettext("no end")

    @admin.display(description=_("redeemed at"), ordering="redeemed_at")
    def redeemed_at_text(self, obj: Coupon) -> str:
        return compact_time(obj.redeemed_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_redeem": self._can_redeem(request),
                         "can_bulk_issue": self._can_bulk_issue(request)}
        return super().changelist_view(request, extra_context)

    # ---- extra pages ----

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("counter/", wrap(self.counter_view), name="rewards_coupon_counter"),
            path("bulk-issue/", wrap(self.bulk_issue_view), name="rewards_coupon_bulk_issue"),
            *super().get_urls(),
        ]

    def _can_redeem(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_coupon")

    def _can_bulk_issue(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.add_coupon")

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request), "opts": self.opts, "title": title,
            "changelist_url": reverse("admin:rewards_coupon_changelist"), **context,
        })

    def counter_view(self, request: HttpRequest) -> HttpResponse:
        """Check a code (writes nothing) or redeem it (once: the page token is the idempotency key)."""
        if not self._can_redeem(request):
            raise PermissionDenied
        check = redeemed = None
        form = CounterForm(request.POST) if request.method == "POST" else CounterForm(initial={"token": uuid.uuid4().hex})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            args = {"code": data["code"], "member": data["member"], "store": data["store"],
                    "order_amount": data["order_amount"], "now": timezone.now()}
            try:
                if "redeem" in request.POST:
                    redeemed = coupon_redeem(**args, reference=data["reference"],
                                             idempotency_key=f"admin-counter:{data['token']}")
                else:
                    check = coupon_validate(**args)
            except LoyaltyError as exc:
                form.add_error(None, exc.message)
            if redeemed is not None:
                self.message_user(request, gettext("Coupon %(code)s redeemed: %(discount)s off, %(payable)s to pay.") % {
                    "code": coupon_code_format(redeemed.code), "discount": redeemed.discount,
                    "payable": data["order_amount"] - redeemed.discount}, messages.SUCCESS)
                form = CounterForm(initial={"token": uuid.uuid4().hex, "store": data["store"]})
        coupon = redeemed or (check.coupon if check else None)
        return self._page(request, "admin/rewards/coupon/counter.html", _("Counter: check and redeem a coupon"),
                          form=form, check=check, redeemed=redeemed, coupon=coupon,
                          coupon_code=coupon_code_format(coupon.code) if coupon else "")

    def bulk_issue_view(self, request: HttpRequest) -> HttpResponse:
        """Preview (resolve the members, count, show bad rows), then issue with deterministic keys."""
        if not self._can_bulk_issue(request):
            raise PermissionDenied
        title = _("Bulk issue coupons")
        page = "admin/rewards/coupon/bulk_issue.html"
        if request.method == "POST" and request.POST.get("action") == "issue":
            try:
                plan = signing.loads(request.POST.get("plan", ""), salt=BULK_SALT, max_age=24 * 3600)
            except signing.BadSignature:
                self.message_user(request, gettext("This preview is no longer valid: make a new one."), messages.ERROR)
                return self._page(request, page, title, form=BulkIssueForm())
            template = CouponTemplate.objects.filter(pk=plan["template"]).first()
            if template is None:
                raise PermissionDenied
            rows = bulk_issue_run(plan=plan, template=template)
            # A CSV is reported row by row; a segment by its counts and the members it could not serve.
            shown = rows if "rows" in plan else [r for r in rows if r.outcome != "issued"]
            return self._page(request, page, title, form=None, template_obj=template, rows=shown, done=True,
                              batch=plan["batch"], counts=_counts(rows), by_csv="rows" in plan)
        if request.method == "POST":
            form = BulkIssueForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                plan: dict[str, Any] = {"template": data["template"].pk, "batch": uuid.uuid4().hex[:12]}
                if data["mode"] == "csv":
                    try:
                        rows = csv_rows_resolve(data["csv_file"].read())
                    except forms.ValidationError as exc:
                        form.add_error("csv_file", exc)
                        return self._page(request, page, title, form=form)
                    plan["rows"] = [[r.row, r.text, r.member_id, r.outcome, r.message] for r in rows]
                    count = sum(r.outcome == "ok" for r in rows)
                    shown = [r for r in rows if r.outcome != "ok"]
                else:
                    plan["segment"] = {"status": data["status"], "home_store": getattr(data["home_store"], "pk", None),
                                       "tier": getattr(data["tier"], "pk", None)}
                    count, shown = segment_members(plan["segment"]).count(), []
                return self._page(request, page, title, form=form, preview=True, count=count, problems=shown,
                                  template_obj=data["template"], plan=signing.dumps(plan, salt=BULK_SALT),
                                  batch=plan["batch"])
        else:
            form = BulkIssueForm()
        return self._page(request, page, title, form=form)


def bulk_issue_run(*, plan: dict, template: CouponTemplate) -> list[BulkRow]:
    """Issue one coupon per planned member, each in its own transaction: a refused row does not stop the
    others. Keys ``bulk:{batch}:{member id}``: a resubmitted batch finds its coupons and skips them."""
    now = timezone.now()
    if "rows" in plan:
        rows = [BulkRow(row=r, text=t, member_id=m, outcome=o, message=msg) for r, t, m, o, msg in plan["rows"]]
    else:
        rows = [BulkRow(row=i, text=m.member_number, member_id=m.pk, outcome="ok", member=m)
                for i, m in enumerate(segment_members(plan["segment"]).iterator(chunk_size=2000), start=1)]
    members = Member.objects.in_bulk([r.member_id for r in rows if r.member_id and r.member is None])
    for row in rows:
        if row.outcome != "ok":
            continue
        row.member = row.member or members.get(row.member_id)
        if row.member is None:
            row.outcome, row.message = "error", gettext("No member has this member number or phone.")
            continue
        try:
            with transaction.atomic():
                row.coupon, created = coupon_issue_or_replay(template=template, member=row.member, source=CouponSource.BULK,
                                                    now=now, idempotency_key=f"bulk:{plan['batch']}:{row.member.pk}")
        except LoyaltyError as exc:
            row.outcome, row.message = "error", str(exc)
            continue
        row.outcome = "issued" if created else "skipped"
        row.message = coupon_code_format(row.coupon.code) if created else gettext(
            "Already issued in this batch (%(code)s).") % {"code": coupon_code_format(row.coupon.code)}
    return rows


def _counts(rows: list[BulkRow]) -> dict[str, int]:
    return {k: sum(r.outcome == k for r in rows) for k in ("issued", "skipped", "error")}

