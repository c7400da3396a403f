"""The cash leg of a points + cash reward (积分+现金): a small, pluggable payment interface.

Services call the two module functions, ``cash_charge`` and ``cash_refund``; they delegate to the backend in
use. The default backend needs no setting and no server: it records the charge as paid at the counter (the
member pays the cashier when the reward is handed over) and returns a reference derived from the request's
own reference, so a retry gets the same reference. A real provider is a class with the same two methods,
installed once at start-up with ``gateway_set`` (or for a block with ``gateway_override``); tests swap in
``FailingGateway`` the same way or monkeypatch the functions.

Contract for a backend:

* ``charge`` takes ``amount`` (``Decimal``, two places, > 0, program currency) for ``reference`` (stable
  per request: a retried request repeats it, so a provider can deduplicate) and returns the provider's
  payment reference (at most 64 characters). It raises ``PaymentDeclined(reason)`` when the money was not
  taken; any other exception is treated as "not taken" too.
* ``refund`` gives back ``amount`` of the charge ``charge_reference``; same rules.

Services call the gateway inside their transaction, after every check and write that can refuse, so a
decline rolls everything back and nothing of the request is left. A charge whose transaction then fails to
commit (very rare: the database went away) is found by its reference in the provider's records.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Protocol

from django.utils.translation import gettext_lazy as _

from members.models import Member

REFERENCE_MAX_LENGTH = 64


class PaymentDeclined(Exception):
    """The provider did not take (or give back) the money. ``reason`` is shown to the member."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CashGateway(Protocol):
    def charge(self, *, amount: Decimal, reference: str, member: Member) -> str: ...

    def refund(self, *, amount: Decimal, reference: str, charge_reference: str, member: Member) -> str: ...


def _stable_reference(prefix: str, reference: str) -> str:
    return f"{prefix}:{hashlib.sha256(reference.encode()).hexdigest()[:24]}"


class CounterGateway:
    """Default: the cash part is paid at the counter. Always succeeds; the reference is stable per request."""

    def charge(self, *, amount: Decimal, reference: str, member: Member) -> str:
        return _stable_reference("counter", reference)

    def refund(self, *, amount: Decimal, reference: str, charge_reference: str, member: Member) -> str:
        return _stable_reference("counter-refund", reference)


class FailingGateway:
    """Declines every charge (and refund when ``refunds_fail``): for tests and for rehearsing failures."""

    def __init__(self, reason: str = _("card declined"), *, refunds_fail: bool = False) -> None:
        self.reason = reason
        self.refunds_fail = refunds_fail
        self.charges: list[dict] = []
        self.refunds: list[dict] = []

    def charge(self, *, amount: Decimal, reference: str, member: Member) -> str:
        self.charges.append({"amount": amount, "reference": reference, "member": member.pk})
        raise PaymentDeclined(self.reason)

    def refund(self, *, amount: Decimal, reference: str, charge_reference: str, member: Member) -> str:
        self.refunds.append({"amount": amount, "reference": reference, "charge_reference": charge_reference})
        if self.refunds_fail:
            raise PaymentDeclined(self.reason)
        return _stable_reference("failing-refund", reference)


class RecordingGateway(CounterGateway):
    """Succeeds like the counter and remembers every call (tests assert what was charged and refunded)."""

    def __init__(self) -> None:
        self.charges: list[dict] = []
        self.refunds: list[dict] = []

    def charge(self, *, amount: Decimal, reference: str, member: Member) -> str:
        self.charges.append({"amount": amount, "reference": reference, "member": member.pk})
        return super().charge(amount=amount, reference=reference, member=member)

    def refund(self, *, amount: Decimal, reference: str, charge_reference: str, member: Member) -> str:
        self.refunds.append({"amount": amount, "reference": reference, "charge_reference": charge_reference})
        return super().refund(amount=amount, reference=reference, charge_reference=charge_reference, member=member)


_backend: CashGateway = CounterGateway()


def gateway_get() -> CashGateway:
    return _backend


def gateway_set(backend: CashGateway) -> CashGateway:
    """Install ``backend`` for the whole process (call once at start-up); returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


@contextmanager
def gateway_override(backend: CashGateway) -> Iterator[CashGateway]:
    """Use ``backend`` inside the block (tests, rehearsals), then restore the previous one."""
    previous = gateway_set(backend)
    try:
        yield backend
    finally:
        gateway_set(previous)


def cash_charge(*, amount: Decimal, reference: str, member: Member) -> str:
    """Take ``amount`` for ``reference``; returns the payment reference. Raises ``PaymentDeclined``."""
    return str(_backend.charge(amount=amount, reference=reference, member=member))[:REFERENCE_MAX_LENGTH]


def cash_refund(*, amount: Decimal, reference: str, charge_reference: str, member: Member) -> str:
    """Give back ``amount`` of the charge ``charge_reference``; returns the refund's reference."""
    return str(_backend.refund(amount=amount, reference=reference, charge_reference=charge_reference,
                               member=member))[:REFERENCE_MAX_LENGTH]
