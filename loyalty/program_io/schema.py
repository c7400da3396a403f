"""The program file's structure: which keys each part has, how values are read in and written out.

Keys are the model field names; choices are the model values in lower case; modifier conditions sit
under ``when:``. Reading (``parse_program``) checks only the file's shape — types, choices, required and
unknown keys — and needs no database; ``checks.validate_program`` does the rest.
"""

import datetime as dt
import difflib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models
from django.utils.translation import gettext as _

from loyalty.models import (
    Channel,
    DowngradeMode,
    EarnRounding,
    ExpiryPolicy,
    Modifier,
    ModifierKind,
    NegativeBalancePolicy,
    ProgramSettings,
    RuleSet,
    RuleSetStatus,
    Stacking,
    Tier,
    TierPolicy,
    TierWindow,
)

FORMAT_VERSION = 1
MAX_FILE_BYTES = 1_000_000  # a program of hundreds of rule sets stays far below this

Problem = tuple[str, str]  # (path in the file, message)

# ---- KEYS ----
# The order here is the order of keys in an exported file.

TEXT, INT, DECIMAL, BOOL, CHOICE, TIME, DATE, DATETIME, TEXTS, INTS, CHOICES = (
    "text", "int", "decimal", "bool", "choice", "time", "date", "datetime", "texts", "ints", "choices")


@dataclass(frozen=True)
class Spec:
    key: str
    type: str
    required: bool = False
    null: bool = False
    choices: type[models.TextChoices] | None = None


SETTINGS_SPECS = (
    Spec("points_name", TEXT), Spec("currency", TEXT), Spec("time_zone", TEXT),
    Spec("points_value_points", INT), Spec("points_value_amount", DECIMAL),
    Spec("expiry_policy", CHOICE, choices=ExpiryPolicy), Spec("expiry_months", INT),
    Spec("expiry_to_month_end", BOOL), Spec("clearance_month", INT), Spec("clearance_day", INT),
    Spec("pending_days", INT), Spec("negative_balance_policy", CHOICE, choices=NegativeBalancePolicy),
    Spec("birthday_member_edits", INT),
)
POLICY_SPECS = (
    Spec("window", CHOICE, choices=TierWindow), Spec("window_months", INT), Spec("grace_days", INT),
    Spec("downgrade_mode", CHOICE, choices=DowngradeMode), Spec("earn_at_new_tier", BOOL),
)
TIER_SPECS = (
    Spec("code", TEXT, required=True), Spec("name", TEXT, required=True), Spec("rank", INT, required=True),
    Spec("spend_threshold", DECIMAL, null=True), Spec("points_threshold", INT, null=True),
    Spec("retain_spend", DECIMAL, null=True), Spec("retain_points", INT, null=True),
    Spec("earn_multiplier", DECIMAL), Spec("discount_percent", DECIMAL), Spec("perks", TEXT),
)
RULE_SET_SPECS = (
    Spec("name", TEXT, required=True), Spec("status", CHOICE, choices=RuleSetStatus),
    Spec("effective_from", DATETIME, required=True),
    Spec("earn_points", INT), Spec("earn_spend", DECIMAL), Spec("rounding", CHOICE, choices=EarnRounding),
    Spec("minimum_spend", DECIMAL), Spec("topup_points", INT), Spec("topup_spend", DECIMAL),
    Spec("exclude_coupons", BOOL), Spec("exclude_stored_value", BOOL),
    Spec("cap_day", INT, null=True), Spec("cap_week", INT, null=True), Spec("cap_month", INT, null=True),
    Spec("tier_multipliers", BOOL), Spec("notes", TEXT),
)
MODIFIER_SPECS = (
    Spec("name", TEXT, required=True), Spec("is_active", BOOL), Spec("kind", CHOICE, choices=ModifierKind),
    Spec("value", DECIMAL, required=True), Spec("stacking", CHOICE, choices=Stacking), Spec("priority", INT),
    Spec("cap_per_order", INT, null=True),
)
CONDITION_SPECS = (
    Spec("skus", TEXTS), Spec("categories", TEXTS), Spec("stores", TEXTS), Spec("channels", CHOICES, choices=Channel),
    Spec("weekdays", INTS), Spec("time_from", TIME, null=True), Spec("time_to", TIME, null=True),
    Spec("date_from", DATE, null=True), Spec("date_to", DATE, null=True), Spec("tiers", TEXTS),
    Spec("birthday_month", BOOL), Spec("first_purchase", BOOL), Spec("anniversary_month", BOOL),
    Spec("minimum_spend", DECIMAL, null=True), Spec("promo_code", TEXT),
)
CONDITIONS = frozenset(s.key for s in CONDITION_SPECS)
TOP_KEYS = ("version", "settings", "tiers", "rule_sets")


# ---- WRITING VALUES ----


def _decimal_text(value: Decimal, *, places: int) -> str:
    if places == 2:  # money and percentages keep their cents
        return f"{value:.2f}"
    return format(value.normalize(), "f")


def value_to_file(spec: Spec, value: Any, *, model: type[models.Model], tz: dt.tzinfo) -> Any:
    """A model value as the file writes it (decimals, dates and times as strings; choices in lower case)."""
    if value is None:
        return None
    if spec.type == DECIMAL:
        return _decimal_text(Decimal(value), places=model._meta.get_field(spec.key).decimal_places)
    if spec.type == CHOICE:
        return str(value).lower()
    if spec.type == CHOICES:
        return [str(v).lower() for v in value]
    if spec.type == INTS:
        return [int(v) for v in value]
    if spec.type == TEXTS:
        return [str(v) for v in value]
    if spec.type == TIME:
        return value.strftime("%H:%M") if not value.second and not value.microsecond else value.isoformat()
    if spec.type == DATE:
        return value.isoformat()
    if spec.type == DATETIME:
        return value.astimezone(tz).isoformat()
    return value


def modifier_file_key(key: str) -> str:
    return f"when.{key}" if key in CONDITIONS else key


# ---- READING VALUES (no database) ----


class Problems:
    """Problems found in stages: the file's shape, then the domain validators, then model validation.

    A path refused at one stage is not reported again by a later one (a value that is not a number is
    not also "below 0"), while one stage may report several problems at one path.
    """

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.stage = 0
        self._stage_of: dict[str, int] = {}
        self._seen: set[Problem] = set()

    def add(self, path: str, message: str) -> None:
        problem = (path, str(message))
        if self._stage_of.setdefault(path, self.stage) != self.stage or problem in self._seen:
            return
        self._seen.add(problem)
        self.items.append(problem)

    def next_stage(self) -> None:
        self.stage += 1

    def shape_problem_under(self, path: str) -> bool:
        """Whether the entry at ``path`` (or anything in it) was refused while reading the file."""
        return any(stage == 0 and (p == path or p.startswith((f"{path}.", f"{path}[")))
                   for p, stage in self._stage_of.items())

    def __bool__(self) -> bool:
        return bool(self.items)


def join_path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _what(value: Any) -> str:
    if value is None:
        return _("nothing")
    if isinstance(value, bool):
        return _("yes/no (%(value)s)") % {"value": "true" if value else "false"}
    if isinstance(value, int | float):
        return _("the number %(value)s") % {"value": value}
    if isinstance(value, str):
        return _("the text “%(value)s”") % {"value": value}
    if isinstance(value, dt.datetime | dt.date):
        return _("the date %(value)s") % {"value": value.isoformat()}
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, dict):
        return _("a mapping")
    return type(value).__name__


def _expected(path: str, what: str, value: Any, problems: Problems, hint: str = "") -> None:
    message = _("Expected %(what)s, not %(value)s.") % {"what": what, "value": _what(value)}
    problems.add(path, f"{message} {hint}".strip())


def _choice_keys(choices: type[models.TextChoices]) -> dict[str, str]:
    return {v.lower(): v for v in choices.values}


def _parse_value(spec: Spec, raw: Any, path: str, problems: Problems) -> tuple[bool, Any]:
    """(True, model value) or (False, None) after recording why the value is refused."""
    quote = _("Put it in quotes.")
    if raw is None:
        if spec.null:
            return True, None
        if spec.type == TEXT and not spec.required:
            return True, ""
        if spec.type in (TEXTS, INTS, CHOICES):
            return True, []
        problems.add(path, _("A value is required here."))
        return False, None
    if spec.type == TEXT:
        if not isinstance(raw, str):
            _expected(path, _("text"), raw, problems, quote)
            return False, None
        return True, raw
    if spec.type == INT:
        if isinstance(raw, bool) or not isinstance(raw, int):
            _expected(path, _("a whole number"), raw, problems)
            return False, None
        return True, raw
    if spec.type == BOOL:
        if not isinstance(raw, bool):
            _expected(path, _("true or false"), raw, problems)
            return False, None
        return True, raw
    if spec.type == DECIMAL:
        if isinstance(raw, float):
            problems.add(path, _("Write decimal numbers in quotes, e.g. \"%(example)s\", so that they stay exact.")
                         % {"example": format(Decimal(repr(raw)), "f")})
            return False, None
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            _expected(path, _("a decimal number in quotes, e.g. \"1.50\""), raw, problems)
            return False, None
        try:
            value = Decimal(str(raw).strip())
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            _expected(path, _("a decimal number, e.g. \"1.50\""), raw, problems)
            return False, None
        return True, value
    if spec.type == CHOICE:
        keys = _choice_keys(spec.choices)
        if not isinstance(raw, str) or raw not in keys:
            problems.add(path, _("“%(value)s” is not one of: %(choices)s.") % {"value": raw, "choices": ", ".join(keys)})
            return False, None
        return True, keys[raw]
    if spec.type == TIME:
        if isinstance(raw, int) and not isinstance(raw, bool):
            problems.add(path, _("Write times in quotes, e.g. \"14:00\" (unquoted, YAML reads 14:00 as a number)."))
            return False, None
        try:
            value = dt.time.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            value = None
        if value is None or value.tzinfo is not None:
            _expected(path, _("a time of day such as \"14:00\""), raw, problems)
            return False, None
        return True, value
    if spec.type == DATE:
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            return True, raw
        try:
            value = dt.date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            value = None
        if value is None:
            _expected(path, _("a date such as \"2026-10-01\""), raw, problems)
            return False, None
        return True, value
    if spec.type == DATETIME:
        value = raw if isinstance(raw, dt.datetime) else None
        if isinstance(raw, str):
            try:
                value = dt.datetime.fromisoformat(raw.strip())
            except ValueError:
                value = None
        if value is None:
            _expected(path, _("a date and time such as \"2026-03-01T00:00:00+08:00\""), raw, problems)
            return False, None
        if value.tzinfo is None or value.utcoffset() is None:
            problems.add(path, _("Give the time with its offset from UTC, e.g. \"2026-03-01T00:00:00+08:00\"."))
            return False, None
        return True, value
    # lists
    if not isinstance(raw, list):
        _expected(path, _("a list, e.g. [a, b]"), raw, problems)
        return False, None
    values, ok = [], True
    for j, item in enumerate(raw):
        item_path = f"{path}[{j}]"
        if spec.type == TEXTS and not isinstance(item, str):
            _expected(item_path, _("text"), item, problems, quote)
            ok = False
        elif spec.type == INTS and (isinstance(item, bool) or not isinstance(item, int)):
            _expected(item_path, _("a whole number"), item, problems)
            ok = False
        elif spec.type == CHOICES:
            keys = _choice_keys(spec.choices)
            if not isinstance(item, str) or item not in keys:
                problems.add(item_path, _("“%(value)s” is not one of: %(choices)s.") % {
                    "value": item, "choices": ", ".join(keys)})
                ok = False
            else:
                values.append(keys[item])
            continue
        values.append(item)
    return (True, values) if ok else (False, None)


def _model_default(model: type[models.Model], key: str) -> Any:
    default = model._meta.get_field(key).get_default()
    return list(default) if isinstance(default, list) else default


def _parse_mapping(raw: Any, specs: tuple[Spec, ...], *, model: type[models.Model], path: str, problems: Problems,
                   extra: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Model field values for every spec (missing keys → the model default); None if ``raw`` is no mapping.

    A field whose value is refused keeps its default so that later checks can still run; its problem is
    already recorded at its path, which hides any later problem at the same path.
    """
    if not isinstance(raw, dict):
        _expected(path, _("a mapping of keys to values"), raw, problems)
        return None
    _unknown_keys(raw, (*(s.key for s in specs), *extra), path, problems)
    values = {}
    for spec in specs:
        key_path = join_path(path, spec.key)
        values[spec.key] = _model_default(model, spec.key)
        if spec.key not in raw:
            if spec.required:
                problems.add(key_path, _("This field is required."))
            continue
        ok, value = _parse_value(spec, raw[spec.key], key_path, problems)
        if ok:
            values[spec.key] = value
    return values


def _unknown_keys(raw: dict, known: tuple[str, ...], path: str, problems: Problems) -> None:
    for key in raw:
        if key not in known:
            message = _("Unknown field “%(key)s”.") % {"key": key}
            close = difflib.get_close_matches(str(key), known, n=1)
            if close:
                message += " " + _("Did you mean “%(key)s”?") % {"key": close[0]}
            problems.add(join_path(path, str(key)), message)


@dataclass
class RuleSetIn:
    """A rule set as parsed. ``values`` is None when the entry is no mapping; so is a modifier's entry."""

    path: str
    values: dict[str, Any] | None
    modifiers: list[dict[str, Any] | None]  # model field values, conditions flattened


@dataclass
class ProgramIn:
    """The parsed file. A section left out of the file is None: that part of the program is kept."""

    settings: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    levels: list[dict[str, Any] | None] | None = None
    rule_sets: list[RuleSetIn] | None = None


def _parse_modifier(raw: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    values = _parse_mapping(raw, MODIFIER_SPECS, model=Modifier, path=path, problems=problems, extra=("when",))
    if values is None:
        return None
    for spec in CONDITION_SPECS:
        values[spec.key] = _model_default(Modifier, spec.key)
    if raw.get("when") is not None:
        values.update(_parse_mapping(raw["when"], CONDITION_SPECS, model=Modifier, path=f"{path}.when",
                                     problems=problems) or {})
    return values


def _parse_rule_set(raw: Any, path: str, problems: Problems) -> RuleSetIn:
    values = _parse_mapping(raw, RULE_SET_SPECS, model=RuleSet, path=path, problems=problems, extra=("modifiers",))
    raw_modifiers = raw.get("modifiers") if isinstance(raw, dict) else None
    if raw_modifiers is not None and not isinstance(raw_modifiers, list):
        _expected(f"{path}.modifiers", _("a list of modifiers"), raw_modifiers, problems)
        raw_modifiers = None
    modifiers = [_parse_modifier(m, f"{path}.modifiers[{j}]", problems) for j, m in enumerate(raw_modifiers or ())]
    return RuleSetIn(path, values, modifiers)


def parse_program(data: Any, problems: Problems) -> ProgramIn:
    program = ProgramIn()
    if not isinstance(data, dict):
        problems.add("", _("The file must be a mapping with the keys version, settings, tiers and rule_sets."))
        return program
    _unknown_keys(data, TOP_KEYS, "", problems)
    if "version" not in data:
        problems.add("version", _("This field is required: write “version: %(version)s”.") % {"version": FORMAT_VERSION})
    elif type(data["version"]) is not int or data["version"] != FORMAT_VERSION:
        problems.add("version", _("Unknown file version %(value)s: this program reads version %(version)s.") % {
            "value": data["version"], "version": FORMAT_VERSION})

    if "settings" in data:
        program.settings = _parse_mapping(data["settings"], SETTINGS_SPECS, model=ProgramSettings, path="settings",
                                          problems=problems)
    if "tiers" in data:
        tiers = data["tiers"]
        if not isinstance(tiers, dict):
            _expected("tiers", _("a mapping with policy and levels"), tiers, problems)
        else:
            _unknown_keys(tiers, ("policy", "levels"), "tiers", problems)
            program.policy = _parse_mapping(tiers.get("policy", {}), POLICY_SPECS, model=TierPolicy,
                                            path="tiers.policy", problems=problems)
            levels = tiers.get("levels")
            if "levels" not in tiers:
                problems.add("tiers.levels", _("This field is required (an empty list removes every tier)."))
            elif not isinstance(levels, list):
                _expected("tiers.levels", _("a list of tiers"), levels, problems)
            else:
                program.levels = [
                    _parse_mapping(raw, TIER_SPECS, model=Tier, path=f"tiers.levels[{i}]", problems=problems)
                    for i, raw in enumerate(levels)
                ]
    if "rule_sets" in data:
        if not isinstance(data["rule_sets"], list):
            _expected("rule_sets", _("a list of rule sets"), data["rule_sets"], problems)
        else:
            program.rule_sets = [_parse_rule_set(raw, f"rule_sets[{i}]", problems)
                                 for i, raw in enumerate(data["rule_sets"])]
    return program
