"""Random sequences of earn / pay with points / redeem / refund / adjust / expire / release / clock advance.

After every step every ledger invariant holds (``ledger_audit_run`` is clean) and the member's figures
agree with a simple model kept beside the system.
"""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from loyalty.audit import ledger_audit_run
from loyalty.exceptions import InsufficientPoints, InvalidInput, RefundExceedsPurchase
from loyalty.models import ExpiryPolicy, NegativeBalancePolicy, Transfer
from loyalty.selectors import member_points_summary
from loyalty.services import (
    points_adjust,
    points_expire_due,
    points_redeem,
    points_release_pending,
    purchase_record,
    refund_record,
)
from tests.conftest import local
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import program_set

_ids = itertools.count()
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("800.00"), places=2)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.run = next(_ids)
        self.now = local(2026, 1, 5, 10, 0)
        self.purchases = []
        self.keys = itertools.count()

    @initialize(pending_days=st.sampled_from([0, 0, 3]), months=st.sampled_from([1, 2, 12]),
                policy=st.sampled_from(list(NegativeBalancePolicy)), to_month_end=st.booleans())
    def setup(self, pending_days, months, policy, to_month_end):
        from django.contrib.auth import get_user_model

        program_set(pending_days=pending_days, expiry_policy=ExpiryPolicy.MONTHS, expiry_months=months,
                    negative_balance_policy=policy, expiry_to_month_end=to_month_end)
        self.staff, _ = get_user_model().objects.get_or_create(username="stateful-staff")
        self.member = MemberFactory(joined_at=self.now - dt.timedelta(days=1))
        self.store = StoreFactory(code=f"ST{self.run}")

    def key(self) -> str:
        return f"m{self.run}-{next(self.keys)}"

    def summary(self):
        return member_points_summary(member=self.member, now=self.now)

    @rule(total=money, pay_share=st.sampled_from([0, 0, 0.25, 1]), lines=st.integers(1, 3))
    def purchase(self, total, pay_share, lines):
        available = self.summary().available
        pay = min(available, int(total * 100 * Decimal(str(pay_share))))  # points at 100 = ¥1
        amounts = [(total / lines).quantize(Decimal("0.01"))] * (lines - 1)
        amounts.append(total - sum(amounts))
        if any(a < 0 for a in amounts):
            amounts = [total]
        rows = [{"sku": f"SKU{i}", "category": "c", "quantity": 1 + i, "amount": str(a)} for i, a in enumerate(amounts)]
        p = purchase_record(member=self.member, store=self.store, external_id=self.key(), occurred_at=self.now,
                            total=total, lines=rows, points_to_pay=pay, now=self.now)
        self.purchases.append(p)

    @precondition(lambda self: self.purchases)
    @rule(data=st.data(), by_lines=st.booleans())
    def refund(self, data, by_lines):
        p = data.draw(st.sampled_from(self.purchases))
        p.refresh_from_db()
        if by_lines:
            line = data.draw(st.sampled_from(p.lines))
            left = line["quantity"] - line["refunded_quantity"]
            if not left:
                return
            qty = data.draw(st.integers(1, left))
            try:
                refund_record(purchase=p, lines=[{"sku": line["sku"], "quantity": qty}], occurred_at=self.now,
                              idempotency_key=self.key(), now=self.now)
            except InvalidInput:  # only a line refund worth nothing
                assert (Decimal(line["amount"]) * qty / line["quantity"]) < Decimal("0.01")
            except RefundExceedsPurchase:  # only when amount refunds already took what the line is worth
                assert p.refundable_amount < Decimal(line["amount"])
        else:
            amount = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=p.total, places=2))
            try:
                refund_record(purchase=p, amount=amount, occurred_at=self.now, idempotency_key=self.key(), now=self.now)
            except RefundExceedsPurchase:
                assert amount > p.refundable_amount

    @rule(points=st.integers(1, 2000))
    def redeem(self, points):
        available = self.summary().available
        try:
            points_redeem(member=self.member, points=points, reason="gift", idempotency_key=self.key(), now=self.now)
        except InsufficientPoints:
            assert points > available
        else:
            assert points <= available

    @rule(points=st.integers(-500, 500).filter(bool))
    def adjust(self, points):
        available = self.summary().available
        try:
            points_adjust(member=self.member, points=points, reason="stateful", staff_user=self.staff,
                          idempotency_key=self.key(), now=self.now)
        except InsufficientPoints:
            assert -points > available

    @rule(days=st.sampled_from([1, 3, 10, 40, 100]))
    def advance_clock_and_run_schedules(self, days):
        self.now += dt.timedelta(days=days)
        points_release_pending(now=self.now, batch_size=2)
        points_expire_due(now=self.now, batch_size=2)

    @rule()
    def replay_last_purchase(self):
        if not self.purchases:
            return
        p = self.purchases[-1]
        before = Transfer.objects.count()
        again = purchase_record(member=p.member, store=p.store, external_id=p.external_id, occurred_at=p.occurred_at,
                                total=p.total, lines=[{k: v for k, v in line.items() if k != "refunded_quantity"}
                                                      for line in p.lines],
                                points_to_pay=p.points_paid, now=self.now)
        assert again.pk == p.pk and Transfer.objects.count() == before

    @invariant()
    def ledger_is_clean(self):
        if not hasattr(self, "member"):
            return
        assert ledger_audit_run() == []
        s = self.summary()
        assert s.available >= 0 and s.pending >= 0 and s.debt >= 0
        assert not (s.available and s.debt), "debt is settled before points are kept"


@pytest.mark.django_db
def test_random_ledger_sequences_keep_every_invariant():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=30, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
    )
