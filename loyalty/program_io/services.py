"""Export, import (plan, then apply all in one transaction) and load: the program file's services."""

import datetime as dt
import itertools
import textwrap
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.db.models import Prefetch, ProtectedError
from django.utils.translation import gettext as _

from loyalty.models import Modifier, ProgramSettings, RuleSet, RuleSetStatus, Tier, TierPolicy
from loyalty.program_io.checks import file_order, validate_program
from loyalty.program_io.report import KIND_LABELS, Change, ImportReport, ProgramFileInvalid
from loyalty.program_io.schema import (
    CONDITION_SPECS,
    FORMAT_VERSION,
    MODIFIER_SPECS,
    POLICY_SPECS,
    RULE_SET_SPECS,
    SETTINGS_SPECS,
    TIER_SPECS,
    Problems,
    ProgramIn,
    Spec,
    modifier_file_key,
    parse_program,
    value_to_file,
)
from loyalty.program_io.text import program_dump, program_file_parse

# ---- EXPORT ----


def _export_fields(obj: models.Model, specs: tuple[Spec, ...], tz: dt.tzinfo) -> dict[str, Any]:
    return {s.key: value_to_file(s, getattr(obj, s.key), model=type(obj), tz=tz) for s in specs}


def _condition_is_set(value: Any) -> bool:
    return value not in (None, "", False, [])


def _export_modifier(m: Modifier, tz: dt.tzinfo) -> dict[str, Any]:
    data = _export_fields(m, MODIFIER_SPECS, tz)
    when = {s.key: value_to_file(s, getattr(m, s.key), model=Modifier, tz=tz)
            for s in CONDITION_SPECS if _condition_is_set(getattr(m, s.key))}
    if when:
        data["when"] = when
    return data


def _settings_current() -> ProgramSettings:
    """The stored settings, or unsaved defaults: reading never creates the row."""
    return ProgramSettings.objects.filter(pk=1).first() or ProgramSettings(pk=1)


def _policy_current() -> TierPolicy:
    return TierPolicy.objects.filter(pk=1).first() or TierPolicy(pk=1)


def _rule_sets_current() -> list[RuleSet]:
    return list(
        RuleSet.objects.order_by("effective_from", "name", "id")
        .prefetch_related(Prefetch("modifiers", queryset=Modifier.objects.order_by("priority", "id")))
    )


def program_export() -> dict[str, Any]:
    """The whole configuration as the program file's structure (plain JSON-compatible data).

    Every field is written (modifier conditions only when set), in a fixed order: exporting twice gives
    the same file. Times are written in the program's time zone.
    """
    settings = _settings_current()
    tz = settings.tz
    return {
        "version": FORMAT_VERSION,
        "settings": _export_fields(settings, SETTINGS_SPECS, tz),
        "tiers": {
            "policy": _export_fields(_policy_current(), POLICY_SPECS, tz),
            "levels": [_export_fields(t, TIER_SPECS, tz) for t in Tier.objects.order_by("rank", "id")],
        },
        "rule_sets": [
            {**_export_fields(rs, RULE_SET_SPECS, tz),
             "modifiers": [_export_modifier(m, tz) for m in rs.modifiers.all()]}
            for rs in _rule_sets_current()
        ],
    }


def program_export_text(*, fmt: str = "yaml") -> str:
    return program_dump(program_export(), fmt=fmt)


# ---- PLAN AND APPLY ----


def _same(a: Any, b: Any) -> bool:
    """Equal as values: Decimal("1.0") is Decimal("1.000"), a choice member is its string; True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _diff(obj: models.Model, values: dict[str, Any], specs: tuple[Spec, ...], tz: dt.tzinfo,
          file_key=lambda key: key) -> tuple[list[str], tuple[tuple[str, Any, Any], ...]]:
    """Set the file's values on ``obj``; return the changed fields and (file key, old, new) as the file writes them."""
    changed, shown = [], []
    for spec in specs:
        old, new = getattr(obj, spec.key), values[spec.key]
        if not _same(old, new):
            changed.append(spec.key)
            shown.append((file_key(spec.key), value_to_file(spec, old, model=type(obj), tz=tz),
                          value_to_file(spec, new, model=type(obj), tz=tz)))
            setattr(obj, spec.key, new)
    return changed, tuple(shown)


@dataclass
class _Plan:
    changes: list[Change] = field(default_factory=list)
    singletons: list[tuple[models.Model, list[str]]] = field(default_factory=list)
    tier_deletes: list[Tier] = field(default_factory=list)
    tier_updates: list[tuple[Tier, list[str]]] = field(default_factory=list)
    tier_creates: list[Tier] = field(default_factory=list)
    rule_set_deletes: list[RuleSet] = field(default_factory=list)
    rule_set_updates: list[tuple[RuleSet, list[str]]] = field(default_factory=list)
    rule_set_creates: list[tuple[RuleSet, list[Modifier]]] = field(default_factory=list)
    modifier_deletes: list[Modifier] = field(default_factory=list)
    modifier_updates: list[tuple[Modifier, list[str]]] = field(default_factory=list)
    modifier_creates: list[Modifier] = field(default_factory=list)


def _modifier_label(rule_set_name: str, modifier_name: str) -> str:
    return f"{rule_set_name} › {modifier_name}"


def _plan(program: ProgramIn) -> _Plan:
    """What to write so that the database matches the (valid) file; unchanged rows are left alone."""
    plan = _Plan()
    settings = _settings_current()
    tz = zoneinfo.ZoneInfo(program.settings["time_zone"]) if program.settings else settings.tz
    for kind, current, values, specs in (
        ("settings", settings, program.settings, SETTINGS_SPECS),
        ("tier_policy", _policy_current(), program.policy, POLICY_SPECS),
    ):
        if values is not None:
            changed, shown = _diff(current, values, specs, tz)
            if changed:
                plan.singletons.append((current, changed))
                plan.changes.append(Change(kind, "update", str(KIND_LABELS[kind]), shown))

    if program.levels is not None:
        current_tiers = {t.code: t for t in Tier.objects.order_by("rank", "id")}
        file_codes = {level["code"] for level in program.levels}
        for tier in current_tiers.values():
            if tier.code not in file_codes:
                plan.tier_deletes.append(tier)
                plan.changes.append(Change("tier", "delete", tier.code))
        for level in program.levels:
            tier = current_tiers.get(level["code"])
            if tier is None:
                plan.tier_creates.append(Tier(**level))
                plan.changes.append(Change("tier", "create", level["code"]))
                continue
            changed, shown = _diff(tier, level, TIER_SPECS, tz)
            if changed:
                plan.tier_updates.append((tier, changed))
                plan.changes.append(Change("tier", "update", tier.code, shown))

    if program.rule_sets is not None:
        current_sets = {rs.name: rs for rs in _rule_sets_current()}
        file_names = {rs.values["name"] for rs in program.rule_sets}
        for rule_set in current_sets.values():
            if rule_set.name not in file_names:
                plan.rule_set_deletes.append(rule_set)
                plan.changes.append(Change("rule_set", "delete", rule_set.name))
                plan.changes += [Change("modifier", "delete", _modifier_label(rule_set.name, m.name))
                                 for m in rule_set.modifiers.all()]
        for rs_in in program.rule_sets:
            name = rs_in.values["name"]
            rule_set = current_sets.get(name)
            if rule_set is None:
                plan.rule_set_creates.append((RuleSet(**rs_in.values), [Modifier(**m) for m in rs_in.modifiers]))
                plan.changes.append(Change("rule_set", "create", name))
                plan.changes += [Change("modifier", "create", _modifier_label(name, m["name"])) for m in rs_in.modifiers]
                continue
            changed, shown = _diff(rule_set, rs_in.values, RULE_SET_SPECS, tz)
            if changed:
                plan.rule_set_updates.append((rule_set, changed))
                plan.changes.append(Change("rule_set", "update", name, shown))
            _plan_modifiers(plan, rule_set, rs_in.modifiers, tz)
    return plan


def _plan_modifiers(plan: _Plan, rule_set: RuleSet, modifiers: list[dict[str, Any]], tz: dt.tzinfo) -> None:
    """Match the file's modifiers to the stored ones by name, in order, so that unchanged ones keep their rows."""
    unmatched = list(rule_set.modifiers.all())
    specs = (*MODIFIER_SPECS, *CONDITION_SPECS)
    for values in modifiers:
        current = next((m for m in unmatched if m.name == values["name"]), None)
        label = _modifier_label(rule_set.name, values["name"])
        if current is None:
            plan.modifier_creates.append(Modifier(rule_set=rule_set, **values))
            plan.changes.append(Change("modifier", "create", label))
            continue
        unmatched.remove(current)
        changed, shown = _diff(current, values, specs, tz, file_key=modifier_file_key)
        if changed:
            plan.modifier_updates.append((current, changed))
            plan.changes.append(Change("modifier", "update", label, shown))
    for modifier in unmatched:
        plan.modifier_deletes.append(modifier)
        plan.changes.append(Change("modifier", "delete", _modifier_label(rule_set.name, modifier.name)))


def _unused(used: set[int]) -> Iterator[int]:
    return (value for value in itertools.count() if value not in used)


def _apply(plan: _Plan) -> None:
    """Write the plan: deletions first, then updates, then new rows.

    Ranks (unique) and published start times (unique) may swap between rows: the rows that change them
    are first parked on an unused rank / as drafts, then given their final values.
    """
    for obj, changed in plan.singletons:
        if obj._state.adding:
            obj.save(force_insert=True)
        else:
            obj.save(update_fields=[*changed, "updated_at"])

    if plan.tier_deletes:
        Tier.objects.filter(pk__in=[t.pk for t in plan.tier_deletes]).delete()
    moving = [tier for tier, changed in plan.tier_updates if "rank" in changed]
    used = set(Tier.objects.values_list("rank", flat=True)) | {t.rank for t, _c in plan.tier_updates}
    for tier, parked in zip(moving, _unused(used), strict=False):
        Tier.objects.filter(pk=tier.pk).update(rank=parked)
    for tier, changed in plan.tier_updates:
        tier.save(update_fields=[*changed, "updated_at"])
    for tier in plan.tier_creates:
        tier.save()

    if plan.rule_set_deletes:
        RuleSet.objects.filter(pk__in=[rs.pk for rs in plan.rule_set_deletes]).delete()
    parked = {rs.pk for rs, changed in plan.rule_set_updates if {"status", "effective_from"} & set(changed)}
    if parked:
        RuleSet.objects.filter(pk__in=parked).update(status=RuleSetStatus.DRAFT)
    for rule_set, changed in plan.rule_set_updates:
        fields = {*changed, "status"} if rule_set.pk in parked else set(changed)
        rule_set.save(update_fields=[*sorted(fields), "updated_at"])
    if plan.modifier_deletes:
        Modifier.objects.filter(pk__in=[m.pk for m in plan.modifier_deletes]).delete()
    for modifier, changed in plan.modifier_updates:
        modifier.save(update_fields=[*changed, "updated_at"])
    for modifier in plan.modifier_creates:
        modifier.save()
    for rule_set, modifiers in plan.rule_set_creates:
        rule_set.save()
        for modifier in modifiers:
            modifier.rule_set = rule_set
            modifier.save()


# ---- PUBLIC ----


@transaction.atomic
def program_import(data: Any, *, dry_run: bool = False, confirm_plan: str | None = None) -> ImportReport:
    """Check the whole program file, then (unless ``dry_run``) apply all of it in one transaction.

    ``data`` is the parsed file (``program_file_parse``). The report lists every problem (then nothing
    is written), or the changes made — with ``dry_run``, the changes that would be made. Rows that
    already match the file are not written. ``confirm_plan``: apply only if the changes still have this
    ``plan_digest`` (the admin previews, then confirms); otherwise nothing is written and ``stale`` is set.
    """
    problems = Problems()
    program = parse_program(data, problems)
    if not dry_run:
        # Two imports at once run one after the other, each seeing what the other wrote. (On a database
        # where the program was never used there is no row yet: a second simultaneous first import then
        # fails on the primary key and writes nothing.)
        ProgramSettings.objects.select_for_update().filter(pk=1).first()
    validate_program(program, problems)
    if problems.items:
        return ImportReport(problems=sorted(problems.items, key=file_order), dry_run=dry_run)
    plan = _plan(program)
    report = ImportReport(changes=plan.changes, dry_run=dry_run)
    if confirm_plan is not None and confirm_plan != report.plan_digest:
        report.stale = True
    elif not dry_run and plan.changes:
        try:
            with transaction.atomic():
                _apply(plan)
        except ProtectedError:  # a member or purchase took up a tier or rule set since the checks
            return ImportReport(problems=[("", _(
                "A tier or rule set that the file removes came into use meanwhile; nothing was changed. "
                "Import the file again to see why."))], dry_run=dry_run)
        report.applied = True
    return report


def program_load(text: str | bytes, *, fmt: str | None = None) -> ImportReport:
    """Set the program up from file text (YAML or JSON; a triple-quoted string's indentation is ignored).

    For tests, seeding and scripts: raises ``ProgramFileInvalid`` listing every problem (nothing written).
    """
    if isinstance(text, str):
        text = textwrap.dedent(text)
    report = program_import(program_file_parse(text, fmt=fmt))
    if not report.ok:
        raise ProgramFileInvalid(report.problems)
    return report
