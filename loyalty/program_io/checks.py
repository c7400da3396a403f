"""Checks beyond the file's shape: the domain validators, file-wide rules, references in the database
and model validation. They read the database and write nothing."""

import datetime as dt
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.models import (
    MemberTier,
    Modifier,
    ProgramSettings,
    Purchase,
    RuleSet,
    RuleSetStatus,
    Tier,
    TierChange,
    TierPolicy,
)
from loyalty.program_io.schema import (
    TOP_KEYS,
    Problem,
    Problems,
    ProgramIn,
    RuleSetIn,
    join_path,
    modifier_file_key,
)
from loyalty.rules import rule_set_problems
from loyalty.services.tiers import tiers_problems
from members.models import Store


def _sound(items: list[dict[str, Any] | None], path: str, problems: Problems) -> list[int]:
    """Positions of the entries read without any problem: only these are compared with each other.

    An entry with a refused value carries a default in its place, which could clash with its neighbours
    (two priorities, two ranks) and report a problem that is not in the file.
    """
    return [i for i, item in enumerate(items) if item is not None and not problems.shape_problem_under(f"{path}[{i}]")]


def _rule_set_domain_problems(rs: RuleSetIn, *, tier_codes: set[str], store_codes: set[str],
                              problems: Problems) -> list[Problem]:
    """``rule_set_problems`` with its paths turned into file paths.

    The validator compares the active modifiers with each other and skips inactive ones. Inactive ones are
    stored too (and may be switched on later), and so are modifiers with a refused value: each of them is
    checked on its own, as if it were active.
    """
    sound = _sound(rs.modifiers, f"{rs.path}.modifiers", problems)
    together = [j for j in sound if rs.modifiers[j]["is_active"]]
    alone = [j for j, m in enumerate(rs.modifiers) if m is not None and j not in together]

    def file_path(path: str, positions: list[int]) -> str:
        head, _dot, rest = path.partition(".")
        if head.startswith("modifiers["):
            head = f"modifiers[{positions[int(head[len('modifiers['):-1])]}]"
            return f"{rs.path}.{head}.{modifier_file_key(rest)}" if rest else f"{rs.path}.{head}"
        return f"{rs.path}.{path}"

    found = [(file_path(path, together), message) for path, message in rule_set_problems(
        rule_set=rs.values, modifiers=[rs.modifiers[j] for j in together], tier_codes=tier_codes,
        store_codes=store_codes)]
    for j in alone:
        found += [(file_path(path, [j]), message) for path, message in rule_set_problems(
            rule_set=rs.values, modifiers=[{**rs.modifiers[j], "is_active": True}], tier_codes=tier_codes,
            store_codes=store_codes) if path.startswith("modifiers[")]
    return found


def _model_problems(instance: models.Model, *, path: str, problems: Problems, exclude: tuple[str, ...] = (),
                    file_key=lambda key: key) -> None:
    """Field validators, then ``clean()`` if the fields are sound (it may rely on them).

    Constraints and uniqueness are left to the domain validators and the file-wide checks, which say
    the same in the merchant's words (and see the whole file, where values may swap between rows).
    """
    errors: dict[str, list] = {}
    try:
        instance.clean_fields(exclude=list(exclude))
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if not errors:
        try:
            instance.clean()
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    for key, messages in ValidationError(errors).message_dict.items() if errors else ():
        key_path = path if key == NON_FIELD_ERRORS else join_path(path, file_key(key))
        for message in messages:
            problems.add(key_path, message)


def validate_program(program: ProgramIn, problems: Problems) -> None:
    """Every check beyond the file's shape: domain validators, file-wide rules and references, then model
    validation. Reads the database, writes nothing."""
    problems.next_stage()
    levels = program.levels
    if levels is not None:
        # A level with a refused value is left out of the comparisons; the model checks still see it.
        sound = _sound(levels, "tiers.levels", problems)
        for path, message in tiers_problems([levels[i] for i in sound]):
            head, _dot, rest = path.partition(".")
            problems.add(f"tiers.levels[{sound[int(head[len('tiers['):-1])]}].{rest}", message)
        if all(level is not None and not problems.shape_problem_under(f"tiers.levels[{i}].code")
               for i, level in enumerate(levels)):
            _validate_tier_removals(levels, problems)  # only when every code could be read
    if program.rule_sets is not None:
        _validate_rule_sets(program.rule_sets, levels, problems)
    elif levels is not None:
        _validate_kept_rules_tiers(levels, problems)

    problems.next_stage()
    if program.settings is not None:
        _model_problems(ProgramSettings(pk=1, **program.settings), path="settings", problems=problems)
    if program.policy is not None:
        _model_problems(TierPolicy(pk=1, **program.policy), path="tiers.policy", problems=problems)
    for i, level in enumerate(levels or ()):
        if level is not None:
            _model_problems(Tier(**level), path=f"tiers.levels[{i}]", problems=problems)
    for rs in program.rule_sets or ():
        if rs.values is not None:
            _model_problems(RuleSet(**rs.values), path=rs.path, problems=problems)
        for j, modifier in enumerate(rs.modifiers):
            if modifier is not None:
                _model_problems(Modifier(**modifier), path=f"{rs.path}.modifiers[{j}]", problems=problems,
                                exclude=("rule_set",), file_key=modifier_file_key)


def _validate_rule_sets(rule_sets: list[RuleSetIn], levels: list[dict[str, Any] | None] | None,
                        problems: Problems) -> None:
    if levels is not None:
        tier_codes = {level["code"] for level in levels if level is not None}
    else:
        tier_codes = set(Tier.objects.values_list("code", flat=True))
    named = {code for rs in rule_sets for m in rs.modifiers if m is not None for code in m["stores"]}
    store_codes = set(Store.objects.filter(code__in=named).values_list("code", flat=True))
    names: dict[str, str] = {}
    starts: dict[dt.datetime, str] = {}
    for rs in rule_sets:
        if rs.values is None:
            continue
        for path, message in _rule_set_domain_problems(rs, tier_codes=tier_codes, store_codes=store_codes,
                                                       problems=problems):
            problems.add(path, message)
        name, start = rs.values["name"], rs.values["effective_from"]
        if name:
            if name in names:
                problems.add(f"{rs.path}.name", _("Another rule set in the file (%(other)s) has this name.")
                             % {"other": names[name]})
            names.setdefault(name, rs.path)
        if start is not None and rs.values["status"] == RuleSetStatus.PUBLISHED:
            if start in starts:
                problems.add(f"{rs.path}.effective_from", _(
                    "Another published rule set (%(other)s) starts at the same moment; published rule sets need "
                    "different start times.") % {"other": starts[start]})
            starts.setdefault(start, rs.path)
    if all(rs.values is not None and not problems.shape_problem_under(f"{rs.path}.name") for rs in rule_sets):
        _validate_rule_set_removals(list(names), problems)  # only when every name could be read


def _validate_tier_removals(levels: list[dict[str, Any]], problems: Problems) -> None:
    kept = [level["code"] for level in levels if level["code"]]
    for tier in Tier.objects.exclude(code__in=kept).order_by("rank", "id"):
        members = MemberTier.objects.filter(tier=tier).count()
        if members:
            problems.add("tiers.levels", ngettext(
                "Tier “%(code)s” (%(name)s) is not in the file, so it would be removed, but %(count)s member is "
                "at this tier. Keep it in the file, or move the member to another tier first.",
                "Tier “%(code)s” (%(name)s) is not in the file, so it would be removed, but %(count)s members are "
                "at this tier. Keep it in the file, or move its members to another tier first.",
                members) % {"code": tier.code, "name": tier.name, "count": members})
        elif (Purchase.objects.filter(tier=tier).exists()
              or TierChange.objects.filter(Q(from_tier=tier) | Q(to_tier=tier)).exists()):
            problems.add("tiers.levels", _(
                "Tier “%(code)s” (%(name)s) is not in the file, so it would be removed, but purchases or tier "
                "history refer to it. Keep it in the file.") % {"code": tier.code, "name": tier.name})


def _validate_rule_set_removals(kept: list[str], problems: Problems) -> None:
    for rule_set in RuleSet.objects.exclude(name__in=kept).order_by("effective_from", "id"):
        if Purchase.objects.filter(rule_set=rule_set).exists():
            problems.add("rule_sets", _(
                "Rule set “%(name)s” is not in the file, so it would be removed, but purchases earned points "
                "under it. Keep it in the file (a later published rule set takes over from its start).")
                % {"name": rule_set.name})


def _validate_kept_rules_tiers(levels: list[dict[str, Any] | None], problems: Problems) -> None:
    """Tiers given without rule sets: the stored modifiers must not name a tier the file removes."""
    codes = {level["code"] for level in levels if level is not None}
    for modifier in Modifier.objects.select_related("rule_set").order_by("rule_set__name", "id"):
        for code in modifier.tiers or ():
            if code not in codes:
                problems.add("tiers.levels", _(
                    "Modifier “%(modifier)s” of rule set “%(rule_set)s” names tier “%(code)s”, which the file "
                    "removes. Keep the tier, or give the rule sets too (rule_sets).")
                    % {"modifier": modifier.name, "rule_set": modifier.rule_set.name, "code": code})


def file_order(problem: Problem) -> tuple:
    """Sort key: sections in file order, then entry and modifier numbers (stable within an entry)."""
    path = problem[0]
    section = next((i for i, name in enumerate(TOP_KEYS) if path.startswith(name)), -1)
    numbers = [int(part.split("]")[0]) for part in path.split("[")[1:] if part.split("]")[0].isdigit()]
    return (section, not path.startswith("tiers.policy"), *(numbers + [-1, -1])[:2])
