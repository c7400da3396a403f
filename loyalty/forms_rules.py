"""Forms of the rules admin: rule sets and their modifiers, the simulator and the backtest request.

Every check of a rule set goes through ``loyalty.rules.rule_set_problems`` (the one validator, also used by
the program import and the services), so the admin refuses exactly what they refuse, with the same words.
The forms only turn its (path, message) pairs into errors on the right field, and parse friendly inputs
(comma-separated codes, check boxes, basket lines) into the values the model and the engine use.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.earning import Line
from loyalty.models import Channel, Modifier, Purchase, RuleSet, RuleSetStatus, Tier
from loyalty.rules import rule_set_problems
from members.models import Member, Store
from members.services import phone_normalise

RULE_SET_FIELDS = ["earn_points", "earn_spend", "topup_points", "topup_spend", "cap_day", "cap_week", "cap_month",
                   "minimum_spend"]
MODIFIER_FIELDS = ["name", "is_active", "kind", "value", "stacking", "priority", "cap_per_order", "skus", "categories",
                   "stores", "channels", "weekdays", "time_from", "time_to", "date_from", "date_to", "tiers",
                   "birthday_month", "first_purchase", "anniversary_month", "minimum_spend", "promo_code"]
_PATH = re.compile(r"^modifiers\[(\d+)\](?:\.(\w+))?$")


def weekday_choices() -> list[tuple[int, str]]:
    return [(1, _("Monday")), (2, _("Tuesday")), (3, _("Wednesday")), (4, _("Thursday")), (5, _("Friday")),
            (6, _("Saturday")), (7, _("Sunday"))]


def store_choices() -> list[tuple[str, str]]:
    return [(code, f"{name} ({code})") for code, name in Store.objects.order_by("code").values_list("code", "name")]


def tier_choices() -> list[tuple[str, str]]:
    return [(code, f"{name} ({code})") for code, name in Tier.objects.order_by("rank").values_list("code", "name")]


def known_codes() -> tuple[set[str], set[str]]:
    """(tier codes, store codes) that modifiers may name."""
    return set(Tier.objects.values_list("code", flat=True)), set(Store.objects.values_list("code", flat=True))


class CodeListField(forms.CharField):
    """A list of codes typed as text, separated by commas (also 、，; or new lines): ``A001, A002``."""

    SEPARATORS = re.compile(r"[,，、;；\n]+")

    def __init__(self, *, item_max_length: int = 64, **kwargs: Any) -> None:
        self.item_max_length = item_max_length
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 40}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        text = super().to_python(value)
        items: list[str] = []
        for part in self.SEPARATORS.split(text or ""):
            item = part.strip()
            if item and item not in items:
                items.append(item)
        return items

    def validate(self, value: list[str]) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        for item in value:
            if len(item) > self.item_max_length:
                raise ValidationError(_("“%(value)s” is longer than %(limit)s characters.") % {
                    "value": item, "limit": self.item_max_length})

    def run_validators(self, value: Any) -> None:  # the max-length validator of CharField does not apply to a list
        return None

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


class CodeChoiceField(forms.MultipleChoiceField):
    """Codes from a list (stores, tiers) that keeps codes already saved even when they are gone, so that the
    validator can name them instead of the form dropping them silently."""

    def __init__(self, *, choices_source, **kwargs: Any) -> None:
        self.choices_source = choices_source
        kwargs.setdefault("required", False)
        super().__init__(choices=(), **kwargs)

    def load(self, saved: list[str]) -> None:
        choices = list(self.choices_source())
        known = {code for code, _label in choices}
        choices += [(code, code) for code in saved if code not in known]
        self.choices = choices

    def valid_value(self, value: Any) -> bool:
        return True  # unknown codes are refused by rule_set_problems, with its message


class RuleSetForm(forms.ModelForm):
    class Meta:
        model = RuleSet
        fields = ["name", "status", "effective_from", "earn_points", "earn_spend", "rounding", "minimum_spend",
                  "topup_points", "topup_spend", "exclude_coupons", "exclude_stored_value", "tier_multipliers",
                  "cap_day", "cap_week", "cap_month", "notes"]
        help_texts = {
            "name": gettext_lazy("For your own reference, e.g. “2026 spring rules”."),
            "status": gettext_lazy("Drafts are never used for earning: only the simulator and the backtest read them. "
                                   "A published rule set applies from its start until the next published one starts."),
            "effective_from": gettext_lazy("Purchases from this moment on (program time zone) use this rule set once "
                                           "it is published. Schedule a change by giving a future moment."),
            "rounding": gettext_lazy("Points are whole numbers: round down once for the order, or per line."),
            "minimum_spend": gettext_lazy("Orders whose eligible amount is below this earn no points at all."),
            "exclude_coupons": gettext_lazy("The part of an order covered by coupons earns no points."),
            "tier_multipliers": gettext_lazy("Each tier's earn multiplier (银卡 ×1.1, 金卡 ×1.2 …) applies first, "
                                             "before the modifiers below."),
            "cap_day": gettext_lazy("At most this many purchase points per member per local day. Empty: no cap."),
            "cap_week": gettext_lazy("At most this many purchase points per member per week (Monday to Sunday). "
                                     "Empty: no cap."),
            "cap_month": gettext_lazy("At most this many purchase points per member per calendar month. "
                                      "Empty: no cap."),
            "notes": gettext_lazy("Why this rule set exists, what changed: for your colleagues."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("cap_day", "cap_week", "cap_month", "earn_points", "topup_points"):
            if name in self.fields:  # absent on a read-only page
                _leave_sign_to_validator(self.fields[name])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in RULE_SET_FIELDS if name in cleaned}
        for path, message in rule_set_problems(rule_set=values, modifiers=[]):
            if path in self.fields and path not in self.errors:
                self.add_error(path, message)
            elif path not in self.fields:
                self.add_error(None, message)
        status, start = cleaned.get("status"), cleaned.get("effective_from")
        if status == RuleSetStatus.PUBLISHED and start is not None:
            clash = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED, effective_from=start)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            other = clash.first()
            if other is not None:
                self.add_error("effective_from", _("The published rule set “%(name)s” already starts at this moment: "
                                                   "give this one another start.") % {"name": other.name})
            elif self._publishes_into_history(start):
                self.add_error("effective_from", _(
                    "Purchases after this start were already earned under other rules: publishing it would not change "
                    "them, and the history would no longer match the rules in force. Choose a start in the future."))
        return cleaned

    def _publishes_into_history(self, start: dt.datetime) -> bool:
        """A start in the past that purchases after it were earned under another rule set."""
        if start > timezone.now():
            return False
        before = self.initial.get("effective_from")
        if (self.instance.pk is not None and self.initial.get("status") == RuleSetStatus.PUBLISHED
                and before is not None and abs(before - start) < dt.timedelta(seconds=1)):
            return False  # already published with this start: not a new publication
        later = Purchase.objects.filter(occurred_at__gte=start)
        if self.instance.pk:
            later = later.exclude(rule_set_id=self.instance.pk)
        return later.exists()


class ModifierForm(forms.ModelForm):
    skus = CodeListField(label=gettext_lazy("SKUs"), help_text=gettext_lazy(
        "Only these items, separated by commas, e.g. “A001, A002”. Empty: every item (unless categories are given)."))
    categories = CodeListField(label=gettext_lazy("Categories"), help_text=gettext_lazy(
        "Only items of these categories, separated by commas, e.g. “new”. An item matches if its SKU or its category "
        "is listed."))
    stores = CodeChoiceField(label=gettext_lazy("Stores"), choices_source=store_choices,
                             widget=forms.SelectMultiple(attrs={"size": 5}),
                             help_text=gettext_lazy("Only at these stores (Ctrl or ⌘ and click to choose several). "
                                                    "None selected: every store."))
    channels = forms.MultipleChoiceField(label=gettext_lazy("Channels"), required=False, choices=Channel.choices,
                                         widget=forms.CheckboxSelectMultiple,
                                         help_text=gettext_lazy("Only through these channels. None: every channel."))
    weekdays = forms.TypedMultipleChoiceField(label=gettext_lazy("Weekdays"), required=False, coerce=int,
                                              choices=weekday_choices, widget=forms.CheckboxSelectMultiple,
                                              help_text=gettext_lazy("Only on these days (local time). None: every day."))
    tiers = CodeChoiceField(label=gettext_lazy("Tiers"), choices_source=tier_choices,
                            widget=forms.CheckboxSelectMultiple,
                            help_text=gettext_lazy("Only for members of these tiers. None: every tier."))

    class Meta:
        model = Modifier
        fields = MODIFIER_FIELDS
        help_texts = {
            "name": gettext_lazy("In the merchant's words, e.g. “New product” or “Member day”. Breakdowns add what it "
                                 "gives: “New product ×2 on A001: +60”."),
            "is_active": gettext_lazy("Untick to keep the rule without applying it."),
            "kind": gettext_lazy("A multiplier multiplies the points of the items it applies to (×2: double points); "
                                 "a fixed bonus adds points to the order (+50)."),
            "stacking": gettext_lazy(
                "How this rule combines with the rules applied before it: multiply (×1.2 then ×2 = ×2.4), add "
                "(×1.2 and ×2 = ×2.2), or best of (only the better one, ×2). Rules with the same priority must stack "
                "the same way, or their order would change the result."),
            "priority": gettext_lazy("Lower numbers apply first; the tier multiplier applies before all of them."),
            "time_from": gettext_lazy("Only from this time of day (local time), e.g. 14:00."),
            "time_to": gettext_lazy("Only until this time of day, not included, e.g. 17:00 (a purchase at 17:00 "
                                    "does not count). Must be after “from”."),
            "date_from": gettext_lazy("Only from this day (local date), e.g. a member day or a holiday."),
            "date_to": gettext_lazy("Only until this day, included."),
            "birthday_month": gettext_lazy("Only in the calendar month of the member's birthday."),
            "first_purchase": gettext_lazy("Only on the member's very first purchase (a refunded first purchase "
                                           "still counts as the first)."),
            "anniversary_month": gettext_lazy("Only in the month the member joined, from the first anniversary on."),
            "promo_code": gettext_lazy("Only when the purchase carries this promotion code. Empty: no code needed."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("stores", "tiers"):
            if name in self.fields:  # absent on a read-only page
                self.fields[name].load(list(self.initial.get(name) or []) + self._posted(name))
        if "cap_per_order" in self.fields:
            _leave_sign_to_validator(self.fields["cap_per_order"])

    def _posted(self, name: str) -> list[str]:
        if not self.is_bound:
            return []
        return list(self.data.getlist(self.add_prefix(name)) if hasattr(self.data, "getlist") else [])

    def clean(self) -> dict[str, Any]:
        """This modifier on its own; the whole set (priorities, stacking) is checked by the formset."""
        cleaned = super().clean()
        tier_codes, store_codes = known_codes()
        values = {name: cleaned[name] for name in MODIFIER_FIELDS if name in cleaned}
        problems = rule_set_problems(rule_set={"earn_spend": Decimal(1)}, modifiers=[values], tier_codes=tier_codes,
                                     store_codes=store_codes)
        for path, message in problems:
            match = _PATH.match(path)
            if match:
                _add_error(self, match.group(2), message)
        return cleaned


def _leave_sign_to_validator(field: forms.Field) -> None:
    """A negative number passes the form field, so that ``rule_set_problems`` refuses it with its words."""
    field.min_value = None
    field.validators = []
    field.widget.attrs.pop("min", None)


def _add_error(form: forms.Form, field: str | None, message: str) -> None:
    """Add ``message`` to ``field`` (or to the form) unless that field already shows an error."""
    target = field if field in form.fields else None
    key = target or forms.forms.NON_FIELD_ERRORS
    if target is not None and target in form.errors or message in form.errors.get(key, []):
        return
    form.add_error(target, message)


class ModifierFormSet(BaseInlineFormSet):
    """The rule set and all its modifiers through ``rule_set_problems`` together: what no single modifier
    shows (two modifiers at one priority stacking differently) lands on the modifier the validator names."""

    def clean(self) -> None:
        super().clean()
        kept = []
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            if not form.has_changed() and form.instance.pk is None:
                continue  # an empty extra form
            kept.append(form)
        modifiers = []
        for form in kept:
            data = getattr(form, "cleaned_data", {}) or {}
            values = {name: data[name] for name in MODIFIER_FIELDS if name in data}
            if "priority" not in values and form.instance.priority is not None:
                values["priority"] = form.instance.priority
            modifiers.append(values)
        rule_set = {name: getattr(self.instance, name) for name in RULE_SET_FIELDS}
        if rule_set.get("earn_spend") is None:
            rule_set["earn_spend"] = Decimal(1)  # its own problem is reported on the rule set form
        tier_codes, store_codes = known_codes()
        for path, message in rule_set_problems(rule_set=rule_set, modifiers=modifiers, tier_codes=tier_codes,
                                               store_codes=store_codes):
            match = _PATH.match(path)
            if not match:
                continue  # a rule-set field: the rule set form reports it
            index, field = int(match.group(1)), match.group(2)
            _add_error(kept[index], field, message)


# ---- SIMULATOR ----


class BasketField(forms.CharField):
    """Basket lines, one per line: ``sku, category, quantity, amount`` (the amount of the whole line)."""

    widget = forms.Textarea(attrs={"rows": 5, "cols": 60, "placeholder": "A001, new, 1, 60.00\nB002, , 1, 40.00"})

    def to_python(self, value: Any) -> list[Line]:
        text = super().to_python(value) or ""
        lines: list[Line] = []
        errors: list[str] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            parts = [p.strip() for p in re.split(r"[,，\t]", raw)]
            if len(parts) != 4:
                errors.append(_("Line %(n)s: give four values separated by commas: SKU, category, quantity, amount "
                                "(“%(text)s” has %(count)s).") % {"n": number, "text": raw.strip(), "count": len(parts)})
                continue
            sku, category, quantity_text, amount_text = parts
            if not sku:
                errors.append(_("Line %(n)s: the SKU is missing.") % {"n": number})
                continue
            if not quantity_text.isdigit() or int(quantity_text) < 1:
                errors.append(_("Line %(n)s: the quantity “%(value)s” is not a whole number of at least 1.") % {
                    "n": number, "value": quantity_text})
                continue
            try:
                amount = Decimal(amount_text.lstrip("¥￥"))
            except InvalidOperation:
                amount = None
            if amount is None or not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:
                errors.append(_("Line %(n)s: the amount “%(value)s” is not an amount of money (e.g. 60 or 59.90).") % {
                    "n": number, "value": amount_text})
                continue
            lines.append(Line(sku=sku[:64], category=category[:64], quantity=int(quantity_text),
                              amount=amount.quantize(Decimal("0.01"))))
        if errors:
            raise ValidationError(errors)
        return lines

    def validate(self, value: list[Line]) -> None:
        if not value:
            raise ValidationError(_("Give at least one line."), code="required")
        if sum((line.amount for line in value), Decimal(0)) <= 0:
            raise ValidationError(_("The basket's total must be greater than 0."))

    def run_validators(self, value: Any) -> None:
        return None


class SimulatorForm(forms.Form):
    member = forms.CharField(label=gettext_lazy("Member"), required=False, max_length=32, help_text=gettext_lazy(
        "Phone or member number of a real member: their tier, birthday, join date, first purchase and points "
        "already earned that day are used. Leave empty to describe a member below."))
    tier = forms.ChoiceField(label=gettext_lazy("Tier"), required=False, help_text=gettext_lazy(
        "A described member's tier."))
    birthday = forms.DateField(label=gettext_lazy("Birthday"), required=False,
                               widget=forms.DateInput(attrs={"type": "date"}))
    joined_on = forms.DateField(label=gettext_lazy("Joined on"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    first_purchase = forms.BooleanField(label=gettext_lazy("First purchase"), required=False,
                                        help_text=gettext_lazy("The described member has never bought before."))
    store = forms.ChoiceField(label=gettext_lazy("Store"), required=False)
    occurred_at = forms.DateTimeField(label=gettext_lazy("Date and time"), help_text=gettext_lazy(
        "In the program time zone (%(zone)s), e.g. 2026-03-04 15:30."))
    channel = forms.ChoiceField(label=gettext_lazy("Channel"), choices=Channel.choices, initial=Channel.STORE)
    promo_codes = CodeListField(label=gettext_lazy("Promotion codes"), item_max_length=32,
                                help_text=gettext_lazy("Codes the purchase carries, separated by commas."))
    points_paid = forms.IntegerField(label=gettext_lazy("Points used to pay"), required=False, min_value=0, initial=0)
    coupon_discount = forms.DecimalField(label=gettext_lazy("Coupon discount"), required=False, min_value=0,
                                         decimal_places=2, max_digits=12, initial=Decimal("0.00"))
    stored_value_paid = forms.DecimalField(label=gettext_lazy("Paid with stored value"), required=False, min_value=0,
                                           decimal_places=2, max_digits=12, initial=Decimal("0.00"))
    basket = BasketField(label=gettext_lazy("Basket"), help_text=gettext_lazy(
        "One line per item: SKU, category, quantity, amount of the line. E.g. “A001, new, 1, 60”. "
        "The total is the sum of the lines."))
    rule_set = forms.ModelChoiceField(
        label=gettext_lazy("Rule set"), queryset=RuleSet.objects.none(), required=False,
        empty_label=gettext_lazy("The rules in force at that time"),
        help_text=gettext_lazy("Or any rule set, a draft included, to see what a change would do."))

    def __init__(self, *args: Any, program=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.program = program
        self.fields["tier"].choices = [("", _("(no tier)"))] + tier_choices()
        self.fields["store"].choices = [("", _("(no store)"))] + store_choices()
        self.fields["rule_set"].queryset = RuleSet.objects.order_by("-effective_from", "-id")
        self.fields["rule_set"].label_from_instance = lambda rs: f"{rs.name} — {rs.get_status_display()}"
        if program is not None:
            self.fields["occurred_at"].help_text = self.fields["occurred_at"].help_text % {"zone": program.time_zone}
            if not self.is_bound:
                self.initial.setdefault("occurred_at", timezone.now().astimezone(program.tz).strftime("%Y-%m-%d %H:%M"))

    def clean_member(self) -> Member | None:
        term = (self.cleaned_data.get("member") or "").strip()
        if not term:
            return None
        q = Member.objects.filter(member_number=re.sub(r"[\s\-]", "", term))
        try:
            q = q | Member.objects.filter(phone=phone_normalise(phone=term))
        except ValidationError:
            pass
        member = q.order_by("id").first()
        if member is None:
            raise ValidationError(_("No member has the phone or member number “%(term)s”.") % {"term": term})
        return member

    def clean_occurred_at(self) -> dt.datetime:
        """The typed time is local to the program, whatever the browser's or the server's zone."""
        value = self.cleaned_data["occurred_at"]
        if self.program is None:
            return value
        naive = timezone.make_naive(value) if timezone.is_aware(value) else value
        return naive.replace(tzinfo=self.program.tz)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        member = cleaned.get("member")
        described = [name for name in ("tier", "birthday", "joined_on") if cleaned.get(name)]
        if member is not None and (described or cleaned.get("first_purchase")):
            self.add_error(None, _("Choose a member or describe one, not both: a chosen member's own tier, "
                                   "birthday, join date and history are used."))
        basket = cleaned.get("basket")
        if basket:
            total = sum((line.amount for line in basket), Decimal(0))
            points_value = self.program.points_to_money(cleaned.get("points_paid") or 0) if self.program else Decimal(0)
            paid = points_value + (cleaned.get("coupon_discount") or 0) + (cleaned.get("stored_value_paid") or 0)
            if paid > total:
                self.add_error(None, _("The points, coupon and stored value paid (%(paid)s) are worth more than the "
                                       "basket (%(total)s).") % {"paid": paid, "total": total})
        return cleaned

    def simulate_kwargs(self) -> dict[str, Any]:
        """The cleaned values as ``loyalty.backtest.simulate`` takes them."""
        c = self.cleaned_data
        tier = Tier.objects.filter(code=c["tier"]).first() if c.get("tier") else None
        return {
            "occurred_at": c["occurred_at"], "lines": c["basket"], "store_code": c.get("store") or "",
            "channel": c["channel"], "promo_codes": frozenset(c.get("promo_codes") or ()),
            "points_paid": c.get("points_paid") or 0, "coupon_discount": c.get("coupon_discount") or Decimal(0),
            "stored_value_paid": c.get("stored_value_paid") or Decimal(0), "member": c.get("member"),
            "tier": tier, "birthday": c.get("birthday"), "joined_on": c.get("joined_on"),
            "first_purchase": bool(c.get("first_purchase")), "rule_set": c.get("rule_set"),
        }


# ---- BACKTEST ----


class BacktestForm(forms.Form):
    rule_set = forms.ModelChoiceField(label=gettext_lazy("Rule set"), queryset=RuleSet.objects.none(),
                                      help_text=gettext_lazy("Usually a draft: it is run beside the rules that were live."))
    first_day = forms.DateField(label=gettext_lazy("First day"), widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(label=gettext_lazy("Last day"), widget=forms.DateInput(attrs={"type": "date"}),
                               help_text=gettext_lazy("Included. Days are local to the program time zone."))

    def __init__(self, *args: Any, program=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.program = program
        self.fields["rule_set"].queryset = RuleSet.objects.order_by("-effective_from", "-id")
        self.fields["rule_set"].label_from_instance = lambda rs: f"{rs.name} — {rs.get_status_display()}"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        if first and last and last < first:
            self.add_error("last_day", _("The last day is before the first day."))
        return cleaned

    def period(self) -> tuple[dt.datetime, dt.datetime]:
        return period_from_days(self.cleaned_data["first_day"], self.cleaned_data["last_day"], self.program.tz)


def period_from_days(first: dt.date, last: dt.date, tz) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of ``first``, local midnight after ``last``): both days included."""
    return (dt.datetime.combine(first, dt.time.min, tzinfo=tz),
            dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
