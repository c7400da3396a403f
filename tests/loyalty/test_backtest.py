"""Backtest: a draft rule set over real purchases (made through purchase_record), beside what the live rules
issued; nothing written to the ledger; run by the worker task from a BacktestRun."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from loyalty.backtest import backtest_execute, backtest_request, backtest_run
from loyalty.models import (
    Account,
    BacktestRun,
    BacktestStatus,
    Lot,
    MemberTier,
    Modifier,
    Purchase,
    RuleSet,
    RuleSetStatus,
    Tier,
    TierChange,
    Transfer,
)
from loyalty.tasks import backtest_run_task
from tests.conftest import local
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import buy, rules_publish

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

START, END = local(2026, 2, 1), local(2026, 3, 1)


def ledger_rows() -> tuple:
    return (Transfer.objects.count(), Lot.objects.count(), Purchase.objects.count(), Account.objects.count(),
            tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")),
            MemberTier.objects.count(), TierChange.objects.count())


def draft(name="Draft", modifiers=(), **fields) -> RuleSet:
    rule_set = RuleSet.objects.create(name=name, status=RuleSetStatus.DRAFT, effective_from=local(2030, 1, 1), **fields)
    for i, m in enumerate(modifiers):
        Modifier.objects.create(rule_set=rule_set, **{"name": f"modifier {i}", **m})
    return rule_set


@pytest.fixture
def world(db):
    """Two stores, a basic and a gold member, live rules at 1 point per ¥1 with tier multipliers."""
    basic = Tier.objects.create(code="basic", name="普通", rank=0, spend_threshold=Decimal(0))
    gold = Tier.objects.create(code="gold", name="金卡", rank=1, spend_threshold=Decimal(100000),
                               earn_multiplier=Decimal("1.2"))
    rules_publish(name="Live")
    s1, s2 = StoreFactory(code="S1", name="Jing'an"), StoreFactory(code="S2", name="Xuhui")
    ann = MemberFactory(phone="+8613800000001", joined_at=local(2025, 1, 1))
    bo = MemberFactory(phone="+8613800000002", joined_at=local(2025, 1, 1))
    MemberTier.objects.create(member=bo, tier=gold, since=local(2025, 1, 1))
    return {"basic": basic, "gold": gold, "s1": s1, "s2": s2, "ann": ann, "bo": bo}


NEW_X2 = {"name": "New product", "value": Decimal(2), "categories": ["new"], "priority": 10}


class TestBacktestRun:
    def test_live_vs_draft_totals_value_and_splits(self, world):
        w = world
        buy(w["ann"], w["s1"], "50.00", at=local(2026, 1, 20, 12))  # before the period: not counted
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 3, 12), lines=[
            {"sku": "A", "category": "new", "quantity": 1, "amount": "60.00"},
            {"sku": "B", "category": "", "quantity": 1, "amount": "40.00"}])  # live 100, draft 160 (R2)
        buy(w["bo"], w["s2"], "50.00", at=local(2026, 2, 10, 12), lines=[
            {"sku": "A", "category": "new", "quantity": 1, "amount": "50.00"}])  # live 60 (×1.2), draft 120
        buy(w["bo"], w["s2"], "30.00", at=local(2026, 3, 1, 0))  # at the end: excluded (end is exclusive)
        before = ledger_rows()

        r = backtest_run(rule_set=draft(modifiers=[NEW_X2]), start=START, end=END)

        assert ledger_rows() == before, "a backtest writes nothing"
        assert r["purchases"] == 2
        assert r["live"] == {"points": 160, "value": "1.60"}
        assert r["draft"] == {"points": 280, "value": "2.80"}
        assert r["difference"] == {"points": 120, "value": "1.20", "percent": "75.0"}
        assert (r["purchases_more"], r["purchases_fewer"], r["purchases_same"]) == (2, 0, 0)
        assert [(t["code"], t["purchases"], t["live"], t["draft"], t["percent"]) for t in r["by_tier"]] == [
            ("basic", 1, 100, 160, "60.0"), ("gold", 1, 60, 120, "100.0")]
        assert [(s["code"], s["name"], s["live"], s["draft"], s["draft_value"]) for s in r["by_store"]] == [
            ("S1", "Jing'an", 100, 160, "1.60"), ("S2", "Xuhui", 60, 120, "1.20")]
        top = {m["name"]: (m["points"], m["purchases"]) for m in r["top_modifiers"]}
        assert top["New product"] == (120, 2)
        assert r["top_modifiers"][0]["name"] == "New product"
        json.dumps(r)  # stored as JSON

    def test_the_live_rules_themselves_give_no_difference(self, world):
        w = world
        buy(w["ann"], w["s1"], "99.99", at=local(2026, 2, 3, 12))
        buy(w["bo"], w["s2"], "99.99", at=local(2026, 2, 4, 12))  # R1: floor(99.99 × 1.2) = 119
        r = backtest_run(rule_set=RuleSet.objects.get(name="Live"), start=START, end=END)
        assert (r["live"]["points"], r["draft"]["points"], r["difference"]["percent"]) == (218, 218, "0.0")

    def test_exclusions_use_the_purchase_payments(self, world):
        w = world
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 3, 12), coupon_discount="20.00", stored_value_paid="30.00")
        r = backtest_run(rule_set=draft(exclude_coupons=False, exclude_stored_value=False), start=START, end=END)
        assert (r["live"]["points"], r["draft"]["points"]) == (50, 100)

    def test_first_purchase_is_the_earliest_one_even_before_the_period(self, world):
        w = world
        carl = MemberFactory(phone="+8613800000003", joined_at=local(2025, 1, 1))
        buy(w["ann"], w["s1"], "10.00", at=local(2026, 1, 5, 12))  # ann's first purchase: before the period
        buy(w["ann"], w["s1"], "30.00", at=local(2026, 2, 5, 12))
        buy(carl, w["s1"], "30.00", at=local(2026, 2, 6, 12))  # carl's first: ×5 (R5)
        buy(carl, w["s1"], "30.00", at=local(2026, 2, 7, 12))
        rule_set = draft(modifiers=[{"name": "First purchase ×5", "value": Decimal(5), "first_purchase": True}])
        r = backtest_run(rule_set=rule_set, start=START, end=END)
        assert r["draft"]["points"] == 30 + 150 + 30

    def test_member_caps_in_business_order_counting_earlier_points_of_the_same_day(self, world):
        w = world
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 1, 9))  # before the period start at 12:00: 100 used
        for hour in (13, 14, 15):
            buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 1, hour))
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 2, 10))  # a new day: the cap starts again
        r = backtest_run(rule_set=draft(cap_day=150), start=local(2026, 2, 1, 12), end=END)
        assert r["live"]["points"] == 400
        assert r["draft"]["points"] == 50 + 0 + 0 + 100  # R7: the day cap of 150, 100 already used
        assert r["cut_by_caps"] == 250

    def test_birthday_month_uses_the_member_facts(self, world):
        w = world
        w["ann"].birthday = dt.date(1990, 2, 14)
        w["ann"].save(update_fields=["birthday"])
        buy(w["ann"], w["s1"], "80.00", at=local(2026, 2, 3, 12))
        buy(w["bo"], w["s1"], "80.00", at=local(2026, 2, 3, 12))
        rule_set = draft(tier_multipliers=False,
                         modifiers=[{"name": "Birthday ×2", "value": Decimal(2), "birthday_month": True}])
        r = backtest_run(rule_set=rule_set, start=START, end=END)
        assert r["draft"]["points"] == 160 + 80  # R4


class TestBacktestTask:
    def test_request_enqueues_on_commit_and_the_task_fills_the_run(self, world, django_capture_on_commit_callbacks,
                                                                   admin_user):
        w = world
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 3, 12), lines=[
            {"sku": "A", "category": "new", "quantity": 1, "amount": "100.00"}])
        before = ledger_rows()
        with django_capture_on_commit_callbacks() as callbacks:
            run = backtest_request(rule_set=draft(modifiers=[NEW_X2]), start=START, end=END, requested_by=admin_user)
        assert len(callbacks) == 1 and callbacks[0].func == backtest_run_task.delay
        assert callbacks[0].keywords == {"backtest_id": run.pk}
        assert run.status == BacktestStatus.PENDING

        backtest_run_task.apply(kwargs={"backtest_id": run.pk})

        run.refresh_from_db()
        assert run.status == BacktestStatus.DONE
        assert run.purchases == 1 and run.duration_ms is not None
        assert run.result["draft"]["points"] == 200 and run.result["live"]["points"] == 100
        assert ledger_rows() == before

    def test_running_twice_changes_nothing(self, world):
        run = BacktestRun.objects.create(rule_set=draft(), period_start=START, period_end=END)
        backtest_execute(backtest_id=run.pk)
        first = BacktestRun.objects.get(pk=run.pk)
        backtest_execute(backtest_id=run.pk)
        again = BacktestRun.objects.get(pk=run.pk)
        assert (again.status, again.result, again.updated_at) == (BacktestStatus.DONE, first.result, first.updated_at)

    def test_a_failure_is_recorded(self, world, monkeypatch):
        run = BacktestRun.objects.create(rule_set=draft(), period_start=START, period_end=END)

        def boom(**kwargs):
            raise RuntimeError("database went away")

        monkeypatch.setattr("loyalty.backtest.backtest_run", boom)
        with pytest.raises(RuntimeError):
            backtest_execute(backtest_id=run.pk)
        run.refresh_from_db()
        assert run.status == BacktestStatus.FAILED and "database went away" in run.error


class TestBacktestAdmin:
    def test_admin_queues_a_run_and_shows_its_result_as_tables(self, world, admin_client,
                                                               django_capture_on_commit_callbacks):
        w = world
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 3, 12), lines=[
            {"sku": "A", "category": "new", "quantity": 1, "amount": "100.00"}])
        rule_set = draft(modifiers=[NEW_X2])
        page = admin_client.get(reverse("admin:loyalty_ruleset_backtest") + f"?rule_set={rule_set.pk}")
        assert page.status_code == 200 and page.context["form"].initial["rule_set"] == str(rule_set.pk)
        before = ledger_rows()
        with django_capture_on_commit_callbacks() as callbacks:
            response = admin_client.post(reverse("admin:loyalty_ruleset_backtest"), {
                "rule_set": rule_set.pk, "first_day": "2026-02-01", "last_day": "2026-02-28"})
        run = BacktestRun.objects.get()
        assert response.status_code == 302 and response.url == reverse("admin:loyalty_backtestrun_change", args=[run.pk])
        assert (run.period_start, run.period_end) == (START, END)
        assert len(callbacks) == 1
        waiting = admin_client.get(response.url).content.decode()
        assert "Waiting for the worker" in waiting and 'http-equiv="refresh"' in waiting

        backtest_run_task.apply(kwargs={"backtest_id": run.pk})

        html = admin_client.get(response.url).content.decode()
        assert 'id="backtest-result"' in html and 'id="backtest-tiers"' in html and 'id="backtest-stores"' in html
        assert "¥1.00" in html and "¥2.00" in html and "+100.0%" in html
        assert "New product" in html and "Jing&#x27;an (S1)" in html
        listing = admin_client.get(reverse("admin:loyalty_backtestrun_changelist")).content.decode()
        assert "+100 (+100.0%)" in listing and "2026-02-01 to 2026-02-28 (both days included)" in listing
        assert ledger_rows() == before

    def test_a_period_ending_before_it_starts_is_refused(self, world, admin_client):
        response = admin_client.post(reverse("admin:loyalty_ruleset_backtest"), {
            "rule_set": draft().pk, "first_day": "2026-02-10", "last_day": "2026-02-01"})
        assert response.status_code == 200
        assert "The last day is before the first day." in response.content.decode()
        assert not BacktestRun.objects.exists()


class TestBacktestCommand:
    def test_prints_a_table_and_writes_nothing(self, world):
        w = world
        buy(w["ann"], w["s1"], "100.00", at=local(2026, 2, 3, 12))
        draft(name="Spring", modifiers=[{"name": "Everything ×2", "value": Decimal(2)}])
        before = ledger_rows()
        out = StringIO()
        call_command("backtest", "Spring", "--from", "2026-02-01", "--to", "2026-02-28", stdout=out)
        text = out.getvalue()
        assert "Backtest of “Spring” over 2026-02-01 – 2026-02-28 (1 purchases" in text
        assert "+100.0%" in text and "Everything ×2" in text
        assert ledger_rows() == before and not BacktestRun.objects.exists()

    def test_json_output(self, world):
        draft(name="Spring")
        out = StringIO()
        call_command("backtest", "Spring", "--from", "2026-02-01", "--to", "2026-02-28", "--json", stdout=out)
        assert json.loads(out.getvalue())["purchases"] == 0
