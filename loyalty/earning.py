"""The earn rule engine: pure functions over compiled rules, no database access.

Semantics, in the order applied (the same order the breakdown explains):

1. **Eligible amount**: the total less the part paid with points, coupon discounts and stored value
   (the last two by rule-set setting). It is spread over the lines in proportion to their amounts.
2. **Base**: eligible amount × base rate, exactly (no rounding yet), per line.
3. **Tier multiplier** (when the rule set applies tier multipliers): every line × the tier's multiplier.
4. **Modifiers** in priority order (lowest first, then id). A modifier fires when all its conditions
   hold; SKU/category conditions choose the lines it applies to. A multiplier ×k changes each target
   line's running multiplier m: *multiply* m×k, *add* m+(k−1), *best of* max(m, k). A bonus adds fixed
   points (*add*: summed; *best of*: only the largest). A per-order cap limits what one modifier adds.
5. **Rounding** once per order (or per line), down.
6. **Member caps** per day, week and month (local time) cut what is left above the cap.
"""

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
Q4 = Decimal("0.0001")


@dataclass(frozen=True)
class Line:
    sku: str
    category: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class Basket:
    total: Decimal
    lines: tuple[Line, ...]
    occurred_at: dt.datetime
    store_code: str = ""
    channel: str = "STORE"
    paid_with_points: Decimal = ZERO
    coupon_discount: Decimal = ZERO
    stored_value_paid: Decimal = ZERO
    promo_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MemberFacts:
    tier_code: str = ""
    tier_name: str = ""
    tier_multiplier: Decimal = ONE
    birthday: dt.date | None = None
    joined_on: dt.date | None = None  # local date
    is_first_purchase: bool = False


@dataclass(frozen=True)
class CapUsage:
    """Purchase points the member already earned in the current local day, week and month."""

    day: int = 0
    week: int = 0
    month: int = 0


@dataclass(frozen=True)
class CompiledModifier:
    id: int | None
    name: str
    kind: str  # MULTIPLIER | BONUS
    value: Decimal
    stacking: str  # MULTIPLY | ADD | BEST
    priority: int
    cap_per_order: int | None = None
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    weekdays: frozenset[int] = frozenset()
    time_from: dt.time | None = None
    time_to: dt.time | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    tiers: frozenset[str] = frozenset()
    birthday_month: bool = False
    first_purchase: bool = False
    anniversary_month: bool = False
    minimum_spend: Decimal | None = None
    promo_code: str = ""

    def targets(self, lines: tuple[Line, ...]) -> list[int]:
        if not self.skus and not self.categories:
            return list(range(len(lines)))
        return [i for i, line in enumerate(lines) if line.sku in self.skus or line.category in self.categories]

    def refusal(self, *, basket: Basket, member: MemberFacts, local: dt.datetime, eligible: Decimal) -> str | None:
        """Why this modifier does not fire (a machine reason), or None when every condition holds."""
        if self.stores and basket.store_code not in self.stores:
            return "store"
        if self.channels and basket.channel not in self.channels:
            return "channel"
        if self.weekdays and local.isoweekday() not in self.weekdays:
            return "weekday"
        if self.time_from is not None and local.time() < self.time_from:
            return "time"
        if self.time_to is not None and local.time() >= self.time_to:
            return "time"
        if self.date_from is not None and local.date() < self.date_from:
            return "date"
        if self.date_to is not None and local.date() > self.date_to:
            return "date"
        if self.tiers and member.tier_code not in self.tiers:
            return "tier"
        if self.birthday_month and (member.birthday is None or member.birthday.month != local.month):
            return "birthday_month"
        if self.first_purchase and not member.is_first_purchase:
            return "first_purchase"
        if self.anniversary_month and (
            member.joined_on is None or member.joined_on.month != local.month or member.joined_on.year >= local.year
        ):
            return "anniversary_month"
        if self.minimum_spend is not None and eligible < self.minimum_spend:
            return "minimum_spend"
        if self.promo_code and self.promo_code not in basket.promo_codes:
            return "promo_code"
        return None


@dataclass(frozen=True)
class CompiledRuleSet:
    id: int | None
    name: str
    effective_from: dt.datetime | None
    earn_points: int = 1
    earn_spend: Decimal = ONE
    rounding: str = "FLOOR_ORDER"
    minimum_spend: Decimal = ZERO
    topup_points: int = 0
    topup_spend: Decimal = ONE
    exclude_coupons: bool = True
    exclude_stored_value: bool = True
    cap_day: int | None = None
    cap_week: int | None = None
    cap_month: int | None = None
    tier_multipliers: bool = True
    modifiers: tuple[CompiledModifier, ...] = ()
    time_zone: str = "Asia/Shanghai"

    @property
    def rate(self) -> Decimal:
        return Decimal(self.earn_points) / self.earn_spend

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def needs_first_purchase(self) -> bool:
        return any(m.first_purchase for m in self.modifiers)

    @property
    def has_member_caps(self) -> bool:
        return any(cap is not None for cap in (self.cap_day, self.cap_week, self.cap_month))


@dataclass
class EarnResult:
    points: int
    exact: Decimal  # unrounded points after caps: refunds prorate against the per-line exact points
    breakdown: dict = field(default_factory=dict)


def floor_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _apply(stacking: str, m: Decimal, k: Decimal) -> Decimal:
    if stacking == "MULTIPLY":
        return m * k
    if stacking == "ADD":
        return max(ZERO, m + (k - ONE))  # "×0.1, added" can cut a line to nothing, never below
    return max(m, k)  # BEST


def earn_evaluate(*, rules: CompiledRuleSet, basket: Basket, member: MemberFacts,
                  usage: CapUsage | None = None, explain_misses: bool = False) -> EarnResult:
    """Points for a purchase under ``rules``, with a breakdown that explains every step."""
    local = basket.occurred_at.astimezone(rules.tz)
    excluded = basket.paid_with_points
    if rules.exclude_coupons:
        excluded += basket.coupon_discount
    if rules.exclude_stored_value:
        excluded += basket.stored_value_paid
    eligible_total = max(ZERO, basket.total - excluded)
    breakdown: dict = {
        "kind": "purchase",
        "rule_set": {"id": rules.id, "name": rules.name},
        "rate": {"points": rules.earn_points, "spend": str(rules.earn_spend)},
        "total": str(basket.total),
        "excluded": {"points": str(basket.paid_with_points),
                     "coupons": str(basket.coupon_discount if rules.exclude_coupons else ZERO),
                     "stored_value": str(basket.stored_value_paid if rules.exclude_stored_value else ZERO)},
        "paid_with_points": str(basket.paid_with_points),
        "eligible": str(eligible_total),
        "rounding": rules.rounding,
        "steps": [],
        "caps": [],
    }
    if basket.total <= 0 or eligible_total <= 0 or eligible_total < rules.minimum_spend:
        breakdown.update(lines=[], base=0, points=0, exact="0", below_minimum=eligible_total > 0,
                         minimum_spend=str(rules.minimum_spend), rounding=0)  # the figure, as on every other path
        return EarnResult(points=0, exact=ZERO, breakdown=breakdown)

    lines = basket.lines
    rate = rules.rate
    base = [line.amount * eligible_total / basket.total * rate for line in lines]
    mult = [ONE] * len(lines)
    bonus_line = [ZERO] * len(lines)
    steps: list[dict] = []
    misses: list[dict] = []

    def value() -> Decimal:
        return sum((b * m for b, m in zip(base, mult, strict=True)), ZERO) + sum(bonus_line, ZERO)

    if rules.tier_multipliers and member.tier_multiplier != ONE:
        before = value()
        mult = [m * member.tier_multiplier for m in mult]
        steps.append({"type": "tier", "name": member.tier_name, "tier": member.tier_code,
                      "value": str(member.tier_multiplier), "lines": list(range(len(lines))),
                      "exact": str((value() - before).quantize(Q4))})

    best_bonus = ZERO
    for mod in rules.modifiers:
        reason = mod.refusal(basket=basket, member=member, local=local, eligible=eligible_total)
        targets = mod.targets(lines) if reason is None else []
        if reason is None and not targets:
            reason = "lines"
        if reason is not None:
            if explain_misses:
                misses.append({"modifier": mod.id, "name": mod.name, "reason": reason})
            continue
        step = {"type": "modifier", "modifier": mod.id, "name": mod.name, "kind": mod.kind, "value": str(mod.value),
                "stacking": mod.stacking, "lines": targets}
        if mod.kind == "MULTIPLIER":
            new = {i: _apply(mod.stacking, mult[i], mod.value) for i in targets}
            gain = sum((base[i] * (new[i] - mult[i]) for i in targets), ZERO)
            if mod.cap_per_order is not None and gain > mod.cap_per_order:
                scale = Decimal(mod.cap_per_order) / gain
                new = {i: mult[i] + (new[i] - mult[i]) * scale for i in targets}
                step["capped"] = mod.cap_per_order
                gain = Decimal(mod.cap_per_order)
            for i in targets:
                mult[i] = new[i]
        else:
            amount = mod.value if mod.cap_per_order is None else min(mod.value, Decimal(mod.cap_per_order))
            if mod.cap_per_order is not None and mod.value > mod.cap_per_order:
                step["capped"] = mod.cap_per_order
            if mod.stacking == "BEST":
                gain = max(ZERO, amount - best_bonus)
                best_bonus = max(best_bonus, amount)
            else:
                gain = amount
            weights = [base[i] for i in targets]
            total_weight = sum(weights, ZERO)
            for i, w in zip(targets, weights, strict=True):
                bonus_line[i] += gain * (w / total_weight if total_weight else ONE / len(targets))
        step["exact"] = str(gain.quantize(Q4))
        steps.append(step)

    line_exact = [b * m + x for b, m, x in zip(base, mult, bonus_line, strict=True)]
    exact = sum(line_exact, ZERO)
    points = sum(floor_int(v) for v in line_exact) if rules.rounding == "FLOOR_LINE" else floor_int(exact)

    caps = []
    if usage is not None:
        for name, limit, used in (("day", rules.cap_day, usage.day), ("week", rules.cap_week, usage.week),
                                  ("month", rules.cap_month, usage.month)):
            if limit is None:
                continue
            room = max(0, limit - used)
            if points > room:
                caps.append({"cap": name, "limit": limit, "used": used, "cut": points - room})
                points = room
    if caps:  # scale line figures so that refunds prorate what was actually given
        scale = Decimal(points) / exact if exact else ZERO
        line_exact = [v * scale for v in line_exact]
        exact = Decimal(points)

    breakdown.update(
        lines=[{"line": i, "sku": line.sku, "category": line.category, "amount": str(line.amount),
                "eligible": str((line.amount * eligible_total / basket.total).quantize(Q4)),
                "base": str(base[i].quantize(Q4)), "points": str(line_exact[i].quantize(Q4))}
               for i, line in enumerate(lines)],
        steps=steps, caps=caps, exact=str(exact), points=points,
        base=floor_int(sum(base, ZERO)),
    )
    _display_integers(breakdown)
    if explain_misses:
        breakdown["misses"] = misses
    return EarnResult(points=points, exact=exact, breakdown=breakdown)


def _display_integers(breakdown: dict) -> None:
    """Whole points per step that add up exactly to the result: each step shows the change in the floor
    of the running total, rounding differences land on a final "rounding" figure."""
    running = Decimal(breakdown["base"])
    shown = breakdown["base"]
    for step in breakdown["steps"]:
        running += Decimal(step["exact"])
        step["points"] = floor_int(running) - shown
        shown += step["points"]
    cut = sum(c["cut"] for c in breakdown["caps"])
    breakdown["rounding"] = breakdown["points"] + cut - shown


def topup_evaluate(*, rules: CompiledRuleSet, amount: Decimal) -> EarnResult:
    """Points for a stored-value top-up (充值1元积1分), rounded down."""
    exact = amount * Decimal(rules.topup_points) / rules.topup_spend if rules.topup_points else ZERO
    points = floor_int(exact)
    return EarnResult(points=points, exact=exact, breakdown={
        "kind": "topup", "rule_set": {"id": rules.id, "name": rules.name},
        "rate": {"points": rules.topup_points, "spend": str(rules.topup_spend)}, "amount": str(amount),
        "points": points, "base": points, "steps": [], "caps": [], "rounding": 0,
    })
