"""Earn computation: pure functions, no database. The base rate now; the rule engine builds on it."""

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from loyalty.models import EarnRounding, ProgramSettings

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    sku: str
    category: str
    quantity: int
    amount: Decimal


@dataclass
class EarnResult:
    points: int
    exact: Decimal  # unrounded points before the final floor: refunds prorate against it
    breakdown: dict = field(default_factory=dict)


def floor_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def purchase_earn_compute(*, program: ProgramSettings, total: Decimal, lines: list[Line],
                          paid_with_points: Decimal) -> EarnResult:
    """Base earn: ``earn_points`` per ``earn_spend`` of the part not paid with points.

    The part paid with points is taken off every line in proportion to its amount; the exact points
    per line are kept so that a refund of one line reverses what that line earned.
    """
    eligible_total = total - paid_with_points
    rate = Decimal(program.earn_points) / program.earn_spend
    breakdown: dict = {
        "kind": "purchase",
        "rate": {"points": program.earn_points, "spend": str(program.earn_spend)},
        "total": str(total),
        "paid_with_points": str(paid_with_points),
        "eligible": str(eligible_total),
        "rounding": program.earn_rounding,
    }
    if eligible_total < program.earn_minimum_spend or eligible_total <= 0:
        breakdown.update(lines=[], base=0, points=0, below_minimum=eligible_total > 0,
                         minimum_spend=str(program.earn_minimum_spend))
        return EarnResult(points=0, exact=Decimal(0), breakdown=breakdown)
    line_rows = []
    for index, line in enumerate(lines):
        eligible = line.amount * eligible_total / total
        line_rows.append({
            "line": index, "sku": line.sku, "category": line.category, "amount": str(line.amount),
            "eligible": str(eligible.quantize(Decimal("0.0001"))), "points": str((eligible * rate).quantize(Decimal("0.0001"))),
            "_exact": eligible * rate,
        })
    exact = eligible_total * rate
    if program.earn_rounding == EarnRounding.FLOOR_LINE:
        points = sum(floor_int(row["_exact"]) for row in line_rows)
    else:
        points = floor_int(exact)
    for row in line_rows:
        del row["_exact"]
    breakdown.update(lines=line_rows, base=points, points=points)
    return EarnResult(points=points, exact=exact, breakdown=breakdown)
