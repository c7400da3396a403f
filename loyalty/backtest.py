"""What-if tools over rule sets: the simulator, the backtest, and drafting a change.

Both tools evaluate with the same pure engine (``loyalty.earning.earn_evaluate``) that
``purchase_record`` uses, and neither writes to the ledger: the simulator writes nothing at all, the
backtest reads purchases and only its own ``BacktestRun`` row records the outcome.

Backtest semantics (what it reproduces of a purchase, and what it simplifies):

- the purchase's own lines (as recorded, before refunds), store, channel, business time, the value paid
  with points, coupon discounts, stored value and promotion codes;
- the tier the member had when the purchase started (``Purchase.tier``; with the tier policy "earn at the
  new tier" a purchase that upgraded the member was earned live at the new tier — the backtest uses the
  snapshot);
- the member's birthday and join date as they are now;
- first purchase: the member's earliest purchase by business time, then id (refunded or not);
- member caps per local day, ISO week and month, in business-time order, starting from the points the
  member earned live earlier in the same day/week/month before the period starts (what ``cap_usage``
  counts at the counter);
- "live" is what was actually issued at purchase (``Purchase.points_earned``). Refunds later reverse
  both the same way, so they are left out of both columns.
"""

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from itertools import islice
from typing import Any

from django.db import transaction
from django.db.models import Case, F, IntegerField, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from loyalty.earning import (
    ZERO,
    Basket,
    CapUsage,
    CompiledRuleSet,
    EarnResult,
    Line,
    MemberFacts,
    earn_evaluate,
)
from loyalty.explain import breakdown_lines, miss_reason, modifier_describe, number, rule_set_describe
from loyalty.models import (
    BacktestRun,
    BacktestStatus,
    Modifier,
    ProgramSettings,
    Purchase,
    RuleSet,
    RuleSetStatus,
    Tier,
)
from loyalty.rules import cap_usage, member_facts, rule_set_compile, rule_set_in_force
from loyalty.services.tiers import member_tier_current
from members.models import Member, Store

BACKTEST_CHUNK = 2000  # purchases evaluated between two bulk member loads
IN_BATCH = 900  # ids per IN (…) list: below SQLite's historical 999-parameter limit


def program_read() -> ProgramSettings:
    """The program settings without creating them (the what-if tools write nothing)."""
    return ProgramSettings.objects.filter(pk=1).first() or ProgramSettings(pk=1)


def tier_names() -> dict[str, str]:
    return dict(Tier.objects.order_by("rank").values_list("code", "name"))


# ---- RULE SETS: STATE AND DRAFTING ----


def rule_set_is_locked(*, rule_set: RuleSet, now: dt.datetime) -> bool:
    """A published rule set that started in the past and that purchases were earned under is history:
    changing it in place would change what past breakdowns mean. Copy it as a draft instead."""
    return (
        rule_set.pk is not None
        and rule_set.status == RuleSetStatus.PUBLISHED
        and rule_set.effective_from <= now
        and Purchase.objects.filter(rule_set_id=rule_set.pk).exists()
    )


def rule_set_next_scheduled(*, at: dt.datetime) -> RuleSet | None:
    """The published rule set that takes over next after ``at`` (None: nothing scheduled)."""
    return (
        RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED, effective_from__gt=at)
        .order_by("effective_from", "id").first()
    )


def _copy_name(name: str) -> str:
    base = _("%(name)s (copy)") % {"name": name}
    candidate, n = base[:100], 2
    while RuleSet.objects.filter(name=candidate).exists():
        candidate = f"{base[:94]} {n}"
        n += 1
    return candidate


@transaction.atomic
def rule_set_copy_as_draft(*, rule_set: RuleSet, now: dt.datetime, tz) -> RuleSet:
    """A DRAFT copy of ``rule_set`` with all its modifiers, starting at the next local midnight.

    This is how a change is scheduled: copy, edit the draft, publish it with a future start.
    """
    next_midnight = dt.datetime.combine(now.astimezone(tz).date() + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    copy = RuleSet.objects.get(pk=rule_set.pk)
    copy.pk = None
    copy.id = None
    copy.name = _copy_name(rule_set.name)
    copy.status = RuleSetStatus.DRAFT
    copy.effective_from = max(next_midnight, rule_set.effective_from)
    copy.notes = (_("Copied from “%(name)s”.") % {"name": rule_set.name} + "\n" + rule_set.notes).strip()
    copy._state.adding = True
    copy.save()
    modifiers = list(Modifier.objects.filter(rule_set=rule_set).order_by("priority", "id"))
    for m in modifiers:
        m.pk = None
        m.id = None
        m.rule_set = copy
        m._state.adding = True
    Modifier.objects.bulk_create(modifiers)
    return copy


# ---- SIMULATOR ----


@dataclass
class RuleOutcome:
    """One modifier of the simulated rule set: what it gave, or why it did not apply."""

    name: str
    description: str
    fired: bool
    points: int = 0
    reason: str = ""
    capped: int | None = None


@dataclass
class Simulation:
    rules: CompiledRuleSet
    rule_set: RuleSet | None
    chosen: bool  # the rule set was chosen (False: the one in force at that time)
    basket: Basket
    facts: MemberFacts
    usage: CapUsage | None
    result: EarnResult
    member: Member | None = None
    tier: Tier | None = None
    currency: str = "CNY"
    lines: list[str] = field(default_factory=list)
    outcomes: list[RuleOutcome] = field(default_factory=list)
    rules_text: list[str] = field(default_factory=list)

    @property
    def tier_multiplier(self) -> str:
        return number(self.facts.tier_multiplier)


def simulate(*, occurred_at: dt.datetime, lines: list[Line], store_code: str = "", channel: str = "STORE",
             promo_codes: frozenset[str] = frozenset(), points_paid: int = 0, coupon_discount: Decimal = ZERO,
             stored_value_paid: Decimal = ZERO, member: Member | None = None, tier: Tier | None = None,
             birthday: dt.date | None = None, joined_on: dt.date | None = None, first_purchase: bool = False,
             rule_set: RuleSet | None = None) -> Simulation:
    """What a purchase would earn, rule by rule, without recording anything.

    With ``member``: the member's tier now, birthday, join date, first purchase and real cap usage on that
    day (as ``purchase_record`` would see them). Without: a hypothetical member described by ``tier``,
    ``birthday``, ``joined_on`` and ``first_purchase``, who has earned nothing yet that day.
    ``rule_set`` None: the rule set in force at ``occurred_at``.
    """
    program = program_read()
    tz = program.tz
    chosen = rule_set is not None
    if rule_set is None:
        rule_set = rule_set_in_force(at=occurred_at)
    rules = rule_set_compile(rule_set, time_zone=program.time_zone)
    total = sum((line.amount for line in lines), ZERO)
    basket = Basket(total=total, lines=tuple(lines), occurred_at=occurred_at, store_code=store_code, channel=channel,
                    paid_with_points=program.points_to_money(points_paid), coupon_discount=coupon_discount,
                    stored_value_paid=stored_value_paid, promo_codes=frozenset(promo_codes))
    if member is not None:
        tier = member_tier_current(member=member)
        facts = member_facts(member=member, tier=tier, at=occurred_at, tz=tz, rules=rules)
        usage = cap_usage(member=member, at=occurred_at, tz=tz, rules=rules)
    else:
        facts = MemberFacts(
            tier_code=tier.code if tier else "", tier_name=tier.name if tier else "",
            tier_multiplier=Decimal(tier.earn_multiplier) if tier else Decimal(1),
            birthday=birthday, joined_on=joined_on, is_first_purchase=first_purchase,
        )
        usage = CapUsage() if rules.has_member_caps else None
    result = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage, explain_misses=True)

    names = tier_names()
    steps = {s["modifier"]: s for s in result.breakdown.get("steps", []) if s.get("type") == "modifier"}
    misses = {m["modifier"]: m["reason"] for m in result.breakdown.get("misses", [])}
    outcomes = []
    for m in rules.modifiers:
        description = modifier_describe(m, currency=program.currency, tier_names=names)
        if m.id in steps:
            step = steps[m.id]
            outcomes.append(RuleOutcome(name=m.name, description=description, fired=True, points=step.get("points", 0),
                                        capped=step.get("capped")))
        else:
            reason = misses.get(m.id)
            if reason is None:  # the whole order earned nothing (below the minimum spend, nothing eligible)
                text = _("the order earns nothing")
            else:
                text = miss_reason(reason)
            outcomes.append(RuleOutcome(name=m.name, description=description, fired=False, reason=text))
    return Simulation(
        rules=rules, rule_set=rule_set, chosen=chosen, basket=basket, facts=facts, usage=usage, result=result,
        member=member, tier=tier, currency=program.currency,
        lines=breakdown_lines(result.breakdown, currency=program.currency), outcomes=outcomes,
        rules_text=rule_set_describe(rules, currency=program.currency, tier_names=names),
    )


# ---- BACKTEST ----


def _batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch


def _member_facts_load(ids: list[int], tz) -> dict[int, tuple[dt.date | None, dt.date | None]]:
    """{member id: (birthday, local join date)} in a few queries."""
    out = {}
    for batch in _batched(ids, IN_BATCH):
        for pk, birthday, joined_at in Member.objects.filter(pk__in=batch).values_list("id", "birthday", "joined_at"):
            out[pk] = (birthday, joined_at.astimezone(tz).date() if joined_at else None)
    return out


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _prior_usage(*, start: dt.datetime, tz, period) -> dict[int, tuple[int, int, int]]:
    """Points members earned (live) in the local day, week and month of ``start`` before ``start``:
    the caps count them, as ``cap_usage`` does at the counter. One grouped query."""
    local = start.astimezone(tz)
    day_start = dt.datetime.combine(local.date(), dt.time.min, tzinfo=tz)
    week_start = day_start - dt.timedelta(days=local.weekday())
    month_start = day_start.replace(day=1)
    since = min(week_start, month_start)
    if since >= start:
        return {}

    def part(after):
        return Coalesce(Sum(Case(When(occurred_at__gte=after, then=F("points_earned")), default=Value(0),
                                 output_field=IntegerField())), Value(0))

    rows = (
        Purchase.objects.filter(occurred_at__gte=since, occurred_at__lt=start, member_id__in=period.values("member_id"))
        .values("member_id").annotate(day=part(day_start), week=part(week_start), month=part(month_start))
        .values_list("member_id", "day", "week", "month")
    )
    return {member_id: (int(d), int(w), int(m)) for member_id, d, w, m in rows}


def _figures() -> dict[str, int]:
    return {"purchases": 0, "live": 0, "draft": 0}


def _money(program: ProgramSettings, points: int) -> str:
    return str(program.points_to_money(points))


def _percent(live: int, draft: int) -> str | None:
    if not live:
        return None
    return str((Decimal(draft - live) * 100 / Decimal(live)).quantize(Decimal("0.1")))


def _split_rows(figures: dict[Any, dict[str, int]], labels: dict[Any, tuple[str, str]], order: list[Any],
                program: ProgramSettings) -> list[dict]:
    rows = []
    for key in order:
        f = figures.get(key)
        if not f:
            continue
        code, name = labels.get(key, ("", ""))
        rows.append({
            "code": code, "name": name, "purchases": f["purchases"], "live": f["live"], "draft": f["draft"],
            "difference": f["draft"] - f["live"], "percent": _percent(f["live"], f["draft"]),
            "live_value": _money(program, f["live"]), "draft_value": _money(program, f["draft"]),
        })
    return rows


def backtest_run(*, rule_set: RuleSet, start: dt.datetime, end: dt.datetime) -> dict:
    """Run ``rule_set`` over the real purchases with business time in [start, end) and compare it with
    what the live rules issued. Reads only; returns a JSON-ready dict (see the module docstring).

    Purchases stream in business-time order in chunks (only the columns needed); members' facts load in
    bulk per chunk; the rules compile once.
    """
    started = time.perf_counter()
    program = program_read()
    tz = program.tz
    rules = rule_set_compile(rule_set, time_zone=program.time_zone)
    store_rows = {pk: (code, name) for pk, code, name in Store.objects.values_list("id", "code", "name")}
    store_codes = {pk: code for pk, (code, _name) in store_rows.items()}
    tier_rows = list(Tier.objects.order_by("rank").values_list("id", "code", "name", "earn_multiplier"))
    tier_by_id = {pk: (code, name, Decimal(mult)) for pk, code, name, mult in tier_rows}

    period = Purchase.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    seen_before: set[int] = set()
    if rules.needs_first_purchase:
        # Members of the period with a purchase before it: none of their period purchases is their first.
        seen_before = set(
            Purchase.objects.filter(occurred_at__lt=start, member_id__in=period.values("member_id"))
            .values_list("member_id", flat=True).distinct()
        )
    prior = _prior_usage(start=start, tz=tz, period=period) if rules.has_member_caps else {}

    rows = period.order_by("occurred_at", "id").values_list(
        "member_id", "store_id", "tier_id", "channel", "occurred_at", "total", "lines", "points_paid_value",
        "coupon_discount", "stored_value_paid", "promo_codes", "points_earned",
    )
    members: dict[int, tuple[dt.date | None, dt.date | None]] = {}
    facts_cache: dict[tuple[int, int | None], MemberFacts] = {}
    caps: dict[int, list] = {}  # member id → [day, used, week start, used, (year, month), used]
    by_tier: dict[int | None, dict[str, int]] = defaultdict(_figures)
    by_store: dict[int, dict[str, int]] = defaultdict(_figures)
    by_modifier: dict[Any, dict[str, Any]] = {}
    totals = {"purchases": 0, "live": 0, "draft": 0, "more": 0, "fewer": 0, "same": 0, "cut_by_caps": 0}
    spend = ZERO
    empty_promos: frozenset[str] = frozenset()

    for chunk in _batched(rows.iterator(chunk_size=BACKTEST_CHUNK), BACKTEST_CHUNK):
        missing = {row[0] for row in chunk} - members.keys()
        if missing:
            members.update(_member_facts_load(sorted(missing), tz))
        for (member_id, store_id, tier_id, channel, occurred_at, total, raw_lines, paid_value, coupon, stored,
             promos, live_points) in chunk:
            lines = tuple(
                Line(sku=raw.get("sku", ""), category=raw.get("category", ""), quantity=raw.get("quantity", 1),
                     amount=Decimal(raw["amount"]))
                for raw in raw_lines
            ) if raw_lines else (Line(sku="", category="", quantity=1, amount=total),)
            basket = Basket(total=total, lines=lines, occurred_at=occurred_at, store_code=store_codes.get(store_id, ""),
                            channel=channel, paid_with_points=paid_value, coupon_discount=coupon,
                            stored_value_paid=stored, promo_codes=frozenset(promos) if promos else empty_promos)
            first = rules.needs_first_purchase and member_id not in seen_before
            if first:
                seen_before.add(member_id)
            facts = facts_cache.get((member_id, tier_id)) if not first else None
            if facts is None:
                birthday, joined_on = members.get(member_id, (None, None))
                code, name, multiplier = tier_by_id.get(tier_id, ("", "", Decimal(1)))
                facts = MemberFacts(tier_code=code, tier_name=name, tier_multiplier=multiplier, birthday=birthday,
                                    joined_on=joined_on, is_first_purchase=first)
                if not first:
                    facts_cache[(member_id, tier_id)] = facts
            usage = None
            if rules.has_member_caps:
                local = occurred_at.astimezone(tz).date()
                week, month = _week_start(local), (local.year, local.month)
                state = caps.get(member_id)
                if state is None:
                    d, w, m = prior.get(member_id, (0, 0, 0))
                    state = caps[member_id] = [local, d, week, w, month, m]
                if state[0] != local:
                    state[0], state[1] = local, 0
                if state[2] != week:
                    state[2], state[3] = week, 0
                if state[4] != month:
                    state[4], state[5] = month, 0
                usage = CapUsage(day=state[1], week=state[3], month=state[5])
            result = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
            points = result.points
            if usage is not None:
                state[1] += points
                state[3] += points
                state[5] += points
            breakdown = result.breakdown
            for step in breakdown["steps"]:
                key = step.get("modifier") if step["type"] == "modifier" else "tier"
                entry = by_modifier.get(key)
                if entry is None:
                    entry = by_modifier[key] = {"id": key if key != "tier" else None, "name": step["name"]
                                                if key != "tier" else _("Tier multipliers"), "points": 0, "purchases": 0}
                entry["points"] += step["points"]
                entry["purchases"] += 1
            for cap in breakdown["caps"]:
                totals["cut_by_caps"] += cap["cut"]
            totals["purchases"] += 1
            totals["live"] += live_points
            totals["draft"] += points
            spend += total
            if points > live_points:
                totals["more"] += 1
            elif points < live_points:
                totals["fewer"] += 1
            else:
                totals["same"] += 1
            f = by_tier[tier_id]
            f["purchases"] += 1
            f["live"] += live_points
            f["draft"] += points
            f = by_store[store_id]
            f["purchases"] += 1
            f["live"] += live_points
            f["draft"] += points

    live, draft = totals["live"], totals["draft"]
    tier_labels: dict[int | None, tuple[str, str]] = {pk: (code, name) for pk, (code, name, _m) in tier_by_id.items()}
    tier_labels[None] = ("", _("No tier"))
    modifiers = sorted(by_modifier.values(), key=lambda e: (-e["points"], e["name"]))
    for entry in modifiers:
        entry["value"] = _money(program, entry["points"])
    return {
        "rule_set": {"id": rule_set.pk, "name": rule_set.name, "status": rule_set.status},
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "currency": program.currency,
        "purchases": totals["purchases"],
        "spend": str(spend),
        "live": {"points": live, "value": _money(program, live)},
        "draft": {"points": draft, "value": _money(program, draft)},
        "difference": {"points": draft - live, "value": _money(program, draft - live), "percent": _percent(live, draft)},
        "purchases_more": totals["more"], "purchases_fewer": totals["fewer"], "purchases_same": totals["same"],
        "cut_by_caps": totals["cut_by_caps"],
        "by_tier": _split_rows(by_tier, tier_labels, [pk for pk, *_rest in tier_rows] + [None], program),
        "by_store": _split_rows(by_store, store_rows, sorted(by_store, key=lambda pk: store_rows.get(pk, ("", ""))[0]),
                                program),
        "top_modifiers": modifiers[:20],
        "seconds": round(time.perf_counter() - started, 3),
    }


def backtest_request(*, rule_set: RuleSet, start: dt.datetime, end: dt.datetime, requested_by=None) -> BacktestRun:
    """Record a backtest to run and hand it to the worker once the row is committed."""
    from loyalty.tasks import backtest_run_task

    with transaction.atomic():
        run = BacktestRun(rule_set=rule_set, period_start=start, period_end=end, requested_by=requested_by)
        run.full_clean()
        run.save()
        transaction.on_commit(partial(backtest_run_task.delay, backtest_id=run.pk))
    return run


def backtest_execute(*, backtest_id: int) -> BacktestRun | None:
    """Run a recorded backtest and store its result. Safe to run twice: a finished run is left as it is."""
    run = BacktestRun.objects.select_related("rule_set").filter(pk=backtest_id).first()
    if run is None or run.status in (BacktestStatus.DONE, BacktestStatus.FAILED):
        return run
    run.status = BacktestStatus.RUNNING
    run.save(update_fields=["status", "updated_at"])
    started = time.perf_counter()
    try:
        result = backtest_run(rule_set=run.rule_set, start=run.period_start, end=run.period_end)
    except Exception as exc:  # recorded for the merchant to see, then re-raised for the worker's log
        run.status, run.error = BacktestStatus.FAILED, f"{type(exc).__name__}: {exc}"
        run.duration_ms = int((time.perf_counter() - started) * 1000)
        run.save(update_fields=["status", "error", "duration_ms", "updated_at"])
        raise
    run.status, run.result, run.purchases = BacktestStatus.DONE, result, result["purchases"]
    run.duration_ms = int((time.perf_counter() - started) * 1000)
    run.error = ""
    run.save(update_fields=["status", "result", "purchases", "duration_ms", "error", "updated_at"])
    return run
