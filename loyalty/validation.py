"""Input checks shared by services. Each raises ``InvalidInput`` naming the field."""

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.earning import Line
from loyalty.exceptions import InvalidInput

MAX_MONEY = Decimal("9999999999.99")
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def money_clean(value: Any, *, field: str, allow_zero: bool = False) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise InvalidInput(_("{field}: give money as a decimal string, not a float."), field=field)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(_("{field}: “{value}” is not an amount of money."), field=field, value=value) from None
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise InvalidInput(_("{field}: at most two decimal places."), field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(_("{field}: the amount must be greater than zero."), field=field)
    if amount > MAX_MONEY:
        raise InvalidInput(_("{field}: the amount is too large."), field=field)
    return amount.quantize(Decimal("0.01"))


def points_clean(value: Any, *, field: str, allow_zero: bool = False, allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(_("{field}: points are a whole number."), field=field)
    if value == 0 and not allow_zero:
        raise InvalidInput(_("{field}: points must not be zero."), field=field)
    if value < 0 and not allow_negative:
        raise InvalidInput(_("{field}: points must be greater than zero."), field=field)
    if abs(value) > 10**12:
        raise InvalidInput(_("{field}: too many points."), field=field)
    return value


def time_clean(value: Any, *, field: str, now: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidInput(_("{field}: a date and time is required."), field=field)
    if timezone.is_naive(value):
        raise InvalidInput(_("{field}: the time must carry a time zone offset."), field=field)
    if value > now + FUTURE_TOLERANCE:
        raise InvalidInput(_("{field}: the time is in the future."), field=field)
    return value


def text_clean(value: Any, *, field: str, max_length: int, required: bool = True) -> str:
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise InvalidInput(_("{field}: this field is required."), field=field)
    if len(text) > max_length:
        raise InvalidInput(_("{field}: at most {limit} characters."), field=field, limit=max_length)
    return text


def lines_clean(lines: list[dict] | None, *, total: Decimal) -> list[Line]:
    """Purchase lines; without lines the purchase is one line. Line amounts must add up to the total."""
    if not lines:
        return [Line(sku="", category="", quantity=1, amount=total)]
    if not isinstance(lines, list) or len(lines) > 500:
        raise InvalidInput(_("lines: give a list of at most 500 lines."), field="lines")
    clean = []
    for i, raw in enumerate(lines):
        if not isinstance(raw, dict):
            raise InvalidInput(_("lines: each line is an object."), field=f"lines[{i}]")
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(_("{field}: the quantity is a whole number of at least 1."), field=f"lines[{i}].quantity")
        clean.append(Line(
            sku=text_clean(raw.get("sku"), field=f"lines[{i}].sku", max_length=64),
            category=text_clean(raw.get("category"), field=f"lines[{i}].category", max_length=64, required=False),
            quantity=quantity,
            amount=money_clean(raw.get("amount"), field=f"lines[{i}].amount", allow_zero=True),
        ))
    if sum(line.amount for line in clean) != total:
        raise InvalidInput(_("lines: the line amounts add up to {sum}, not to the total {total}."),
                           field="lines", sum=sum(line.amount for line in clean), total=total)
    return clean
