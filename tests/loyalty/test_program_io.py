"""Program as code: export, import (all or nothing, every problem with its path), commands and admin."""

import copy
import datetime as dt
import io
import json
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import yaml
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from loyalty.models import (
    MemberTier,
    Modifier,
    ModifierKind,
    ProgramSettings,
    RuleSet,
    RuleSetStatus,
    Stacking,
    Tier,
    TierPolicy,
)
from loyalty.program_io import (
    CONDITION_SPECS,
    MODIFIER_SPECS,
    POLICY_SPECS,
    RULE_SET_SPECS,
    SETTINGS_SPECS,
    TIER_SPECS,
    ImportReport,
    ProgramFileInvalid,
    program_dump,
    program_export,
    program_export_text,
    program_file_parse,
    program_import,
    program_load,
)
from loyalty.services import program_settings_get
from tests.conftest import local, requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import buy

pytestmark = pytest.mark.django_db

CONFIG_MODELS = [ProgramSettings, TierPolicy, Tier, RuleSet, Modifier]

# A whole program: settings, 4 tiers and 2 rule sets whose modifiers use every kind of condition.
PROGRAM = """
    version: 1
    settings:
      points_name: 积分
      currency: CNY
      time_zone: Asia/Shanghai
      points_value_points: 100
      points_value_amount: "1.00"
      expiry_policy: yearly
      expiry_months: 12
      expiry_to_month_end: false
      clearance_month: 12
      clearance_day: 31
      pending_days: 7
      negative_balance_policy: debt
    tiers:
      policy:
        window: rolling_months
        window_months: 12
        grace_days: 30
        downgrade_mode: one_step
        earn_at_new_tier: true
      levels:
        - code: standard
          name: 普通
          rank: 0
          spend_threshold: "0.00"
        - code: silver
          name: 银卡
          rank: 1
          spend_threshold: "2000.00"
          points_threshold: 2000
          earn_multiplier: "1.2"
          discount_percent: "2.00"
        - code: gold
          name: 金卡
          rank: 2
          spend_threshold: "8000.00"
          retain_spend: "6000.00"
          earn_multiplier: "1.5"
          discount_percent: "5.00"
          perks: Free parking
        - code: diamond
          name: 钻石
          rank: 3
          spend_threshold: "20000.00"
          retain_points: 15000
          earn_multiplier: "2"
          discount_percent: "8.00"
          perks: |
            Free parking
            Birthday gift
    rule_sets:
      - name: Rules 2026
        status: published
        effective_from: "2026-01-01T00:00:00+08:00"
        earn_points: 1
        earn_spend: "1.00"
        rounding: floor_order
        minimum_spend: "10.00"
        topup_points: 1
        topup_spend: "10.00"
        exclude_coupons: true
        exclude_stored_value: true
        cap_day: 5000
        cap_month: 50000
        tier_multipliers: true
        notes: Default rules for 2026.
        modifiers:
          - name: New products ×2
            value: "2"
            priority: 10
            when: {skus: [SKU-1, SKU-2], categories: [new]}
          - name: Tuesday afternoon in Shanghai
            value: "1.5"
            stacking: multiply
            priority: 10
            when: {stores: [SH01], channels: [store, app], weekdays: [2], time_from: "14:00", time_to: "17:30"}
          - name: Golden week
            value: "3"
            stacking: best
            priority: 20
            cap_per_order: 500
            when: {date_from: "2026-10-01", date_to: "2026-10-07", tiers: [gold, diamond]}
          - name: Birthday month
            kind: bonus
            value: "200"
            stacking: add
            priority: 30
            when: {birthday_month: true, minimum_spend: "100.00"}
          - name: First purchase
            kind: bonus
            value: "100"
            stacking: best
            priority: 40
            when: {first_purchase: true}
          - name: Anniversary
            value: "2"
            stacking: add
            priority: 50
            when: {anniversary_month: true, promo_code: ANNIV}
          - name: Old promotion
            is_active: false
            value: "5"
            stacking: add
            priority: 10
      - name: Rules 2027 draft
        status: draft
        effective_from: "2027-01-01T00:00:00+08:00"
        earn_points: 2
        modifiers:
          - name: Weekend double
            value: "2"
            when: {weekdays: [6, 7]}
"""


@pytest.fixture
def stores(db):
    return [StoreFactory(code="SH01", name="Jing'an"), StoreFactory(code="BJ01", name="Chaoyang")]


@pytest.fixture
def loaded(stores):
    program_load(PROGRAM)
    return program_export()


def snapshot() -> dict[str, list]:
    """Every config row's id and updated_at: equal before and after means nothing was written."""
    return {m.__name__: list(m.objects.order_by("pk").values_list("pk", "updated_at")) for m in CONFIG_MODELS}


def row_counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in CONFIG_MODELS}


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def problems_of(data) -> list[tuple[str, str]]:
    report = program_import(data)
    assert not report.applied
    return report.problems


def paths_of(data) -> list[str]:
    return [path for path, _message in problems_of(data)]


def modifier(data, rule_set: int, name: str) -> dict:
    return next(m for m in data["rule_sets"][rule_set]["modifiers"] if m["name"] == name)


# ---- ROUND TRIP ----


class TestRoundTrip:
    def test_export_then_import_writes_nothing(self, loaded):
        before = snapshot()

        with CaptureQueriesContext(connection) as queries:
            report = program_import(copy.deepcopy(loaded))

        assert report.ok and report.changes == [] and not report.applied
        assert writes(queries.captured_queries) == []
        assert snapshot() == before
        assert program_export() == loaded

    @pytest.mark.parametrize("fmt", ["yaml", "json"])
    def test_text_round_trip_is_a_no_op(self, loaded, fmt):
        text = program_export_text(fmt=fmt)
        before = snapshot()

        report = program_load(text)

        assert report.changes == []
        assert snapshot() == before
        assert program_export_text(fmt=fmt) == text
        assert program_file_parse(text) == loaded

    def test_loaded_program_is_stored_as_written(self, loaded):
        assert ProgramSettings.objects.get().points_name == "积分"
        assert list(Tier.objects.order_by("rank").values_list("code", "name")) == [
            ("standard", "普通"), ("silver", "银卡"), ("gold", "金卡"), ("diamond", "钻石")]
        rules = RuleSet.objects.get(name="Rules 2026")
        assert rules.status == RuleSetStatus.PUBLISHED
        assert rules.effective_from == local(2026, 1, 1)
        tuesday = rules.modifiers.get(name="Tuesday afternoon in Shanghai")
        assert (tuesday.kind, tuesday.stacking, tuesday.value) == (ModifierKind.MULTIPLIER, Stacking.MULTIPLY,
                                                                   Decimal("1.5"))
        assert tuesday.channels == ["STORE", "APP"]
        assert (tuesday.time_from, tuesday.time_to) == (dt.time(14), dt.time(17, 30))
        assert rules.modifiers.get(name="Golden week").date_to == dt.date(2026, 10, 7)

    def test_export_writes_the_documented_format(self, loaded):
        assert loaded["version"] == 1
        assert loaded["settings"]["expiry_policy"] == "yearly"
        assert loaded["settings"]["points_value_amount"] == "1.00"
        gold = loaded["tiers"]["levels"][2]
        assert gold == {
            "code": "gold", "name": "金卡", "rank": 2, "spend_threshold": "8000.00", "points_threshold": None,
            "retain_spend": "6000.00", "retain_points": None, "earn_multiplier": "1.5", "discount_percent": "5.00",
            "perks": "Free parking",
        }
        rules = loaded["rule_sets"][0]
        assert rules["effective_from"] == "2026-01-01T00:00:00+08:00"
        assert modifier(loaded, 0, "Tuesday afternoon in Shanghai")["when"] == {
            "stores": ["SH01"], "channels": ["store", "app"], "weekdays": [2], "time_from": "14:00",
            "time_to": "17:30"}
        assert modifier(loaded, 0, "Birthday month")["kind"] == "bonus"
        assert "when" not in modifier(loaded, 0, "Old promotion")
        # modifiers in the order they apply
        assert [m["priority"] for m in rules["modifiers"]] == sorted(m["priority"] for m in rules["modifiers"])

    def test_documented_example_is_this_program(self, loaded):
        docs = (settings.BASE_DIR / "docs" / "program-file.md").read_text(encoding="utf-8")
        example = docs.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]

        assert program_import(program_file_parse(example)).changes == []  # the same program as PROGRAM

    def test_every_model_field_is_in_the_file(self):
        """A field added to a config model must be added to the file format (and docs/program-file.md)."""
        audit = {"id", "created_at", "updated_at"}
        for model, specs in [(ProgramSettings, SETTINGS_SPECS), (TierPolicy, POLICY_SPECS), (Tier, TIER_SPECS),
                             (RuleSet, RULE_SET_SPECS), (Modifier, MODIFIER_SPECS + CONDITION_SPECS)]:
            fields = {f.name for f in model._meta.concrete_fields} - audit - {"rule_set"}
            assert fields == {s.key for s in specs}, model.__name__

    def test_empty_program_round_trip_creates_nothing(self, db):
        with CaptureQueriesContext(connection) as queries:
            report = program_import(program_export())

        assert report.changes == []
        assert writes(queries.captured_queries) == []
        assert row_counts() == dict.fromkeys(row_counts(), 0)


# ---- CHANGES ----


class TestChanges:
    def test_changed_file_applies_exactly_the_changes(self, loaded):
        before = snapshot()
        kept_tiers = {t.code: (t.pk, t.updated_at) for t in Tier.objects.filter(code__in=["standard", "silver"])}
        kept_modifier = Modifier.objects.get(name="Birthday month")
        data = copy.deepcopy(loaded)
        data["settings"]["points_name"] = "金币"
        levels = data["tiers"]["levels"]
        levels[2]["spend_threshold"] = "10000.00"
        levels[3] = {"code": "platinum", "name": "白金", "rank": 3, "spend_threshold": "15000.00"}
        rules = data["rule_sets"][0]
        rules["notes"] = "Updated."
        modifier(data, 0, "Golden week").update(value="4", when={**modifier(data, 0, "Golden week")["when"],
                                                                 "tiers": ["gold", "platinum"]})
        rules["modifiers"] = [m for m in rules["modifiers"] if m["name"] != "Anniversary"]
        rules["modifiers"].append({"name": "Double Eleven", "value": "11", "priority": 60, "stacking": "best",
                                   "when": {"date_from": "2026-11-11", "date_to": "2026-11-11"}})
        data["rule_sets"][1] = {"name": "Rules 2028", "status": "published",
                                "effective_from": "2028-01-01T00:00:00+08:00",
                                "modifiers": [{"name": "Members' day", "value": "2", "when": {"weekdays": [3]}}]}

        report = program_import(data)

        assert report.ok and report.applied
        assert report.counts() == {
            "settings": {"create": 0, "update": 1, "delete": 0},
            "tier_policy": {"create": 0, "update": 0, "delete": 0},
            "tier": {"create": 1, "update": 1, "delete": 1},
            "rule_set": {"create": 1, "update": 1, "delete": 1},
            "modifier": {"create": 2, "update": 1, "delete": 2},
        }
        golden = next(c for c in report.changes if c.name == "Rules 2026 › Golden week")
        assert golden.fields == (("value", "3", "4"), ("when.tiers", ["gold", "diamond"], ["gold", "platinum"]))
        assert program_export()["settings"] == data["settings"]
        assert [t["code"] for t in program_export()["tiers"]["levels"]] == ["standard", "silver", "gold", "platinum"]
        assert [m["name"] for m in program_export()["rule_sets"][0]["modifiers"]] == [
            "New products ×2", "Tuesday afternoon in Shanghai", "Old promotion", "Golden week", "Birthday month",
            "First purchase", "Double Eleven"]
        assert Tier.objects.get(code="gold").spend_threshold == Decimal("10000.00")
        assert not Tier.objects.filter(code="diamond").exists()
        assert not RuleSet.objects.filter(name="Rules 2027 draft").exists()
        # untouched rows keep their id and were not written
        assert {t.code: (t.pk, t.updated_at) for t in Tier.objects.filter(code__in=["standard", "silver"])} == kept_tiers
        assert Modifier.objects.get(pk=kept_modifier.pk).updated_at == kept_modifier.updated_at
        assert snapshot()["TierPolicy"] == before["TierPolicy"]
        # and importing the same file again changes nothing
        assert program_import(program_export()).changes == []

    def test_dry_run_shows_the_plan_and_writes_nothing(self, loaded):
        data = copy.deepcopy(loaded)
        data["settings"]["pending_days"] = 14
        data["tiers"]["levels"].pop()
        modifier(data, 0, "Golden week")["when"]["tiers"] = ["gold"]
        before = snapshot()

        with CaptureQueriesContext(connection) as queries:
            report = program_import(data, dry_run=True)

        assert report.ok and report.dry_run and not report.applied
        assert [(c.kind, c.action, c.name) for c in report.changes] == [
            ("settings", "update", "Program settings"), ("tier", "delete", "diamond"),
            ("modifier", "update", "Rules 2026 › Golden week")]
        assert report.changes[0].fields == (("pending_days", 7, 14),)
        assert writes(queries.captured_queries) == []
        assert snapshot() == before
        assert "Tier “diamond”: deleted" in report.summary_lines()

    def test_sections_left_out_are_kept(self, loaded):
        before = snapshot()

        report = program_load("""
            version: 1
            settings:
              points_name: 积分
              pending_days: 3
              expiry_policy: yearly
        """)

        assert [c.kind for c in report.changes] == ["settings"]
        after = snapshot()
        assert {k: v for k, v in after.items() if k != "ProgramSettings"} == {
            k: v for k, v in before.items() if k != "ProgramSettings"}
        assert ProgramSettings.objects.get().pending_days == 3

    def test_missing_fields_take_the_model_default(self, loaded):
        program_load("""
            version: 1
            settings: {}
        """)

        assert ProgramSettings.objects.get().points_name == "Points"

    def test_tier_ranks_can_swap(self, loaded):
        data = copy.deepcopy(loaded)
        levels = data["tiers"]["levels"]
        levels[1]["rank"], levels[2]["rank"] = 2, 1  # gold's thresholds now sit below silver's: fix them too
        levels[1]["spend_threshold"], levels[2]["spend_threshold"] = "8000.00", "2000.00"
        levels[1]["points_threshold"] = None

        report = program_import(data)

        assert report.applied, report.problems
        assert list(Tier.objects.order_by("rank").values_list("code", flat=True)) == [
            "standard", "gold", "silver", "diamond"]

    def test_published_start_times_can_swap(self, stores):
        program_load("""
            version: 1
            rule_sets:
              - {name: A, status: published, effective_from: "2026-01-01T00:00:00+08:00"}
              - {name: B, status: published, effective_from: "2026-06-01T00:00:00+08:00"}
        """)

        program_load("""
            version: 1
            rule_sets:
              - {name: A, status: published, effective_from: "2026-06-01T00:00:00+08:00"}
              - {name: B, status: published, effective_from: "2026-01-01T00:00:00+08:00"}
        """)

        assert RuleSet.objects.get(name="A").effective_from == local(2026, 6, 1)
        assert RuleSet.objects.get(name="B").status == RuleSetStatus.PUBLISHED

    def test_rule_sets_missing_from_the_file_are_deleted_when_unused(self, loaded):
        data = copy.deepcopy(loaded)
        data["rule_sets"] = []

        report = program_import(data)

        assert report.applied
        assert RuleSet.objects.count() == 0 and Modifier.objects.count() == 0

    def test_rule_set_with_purchases_is_not_deleted(self, loaded, stores, audit_clean):
        member = MemberFactory(joined_at=local(2025, 1, 1))
        purchase = buy(member, stores[0], "100.00", at=local(2026, 3, 4, 10))
        assert purchase.rule_set.name == "Rules 2026"
        data = copy.deepcopy(loaded)
        data["rule_sets"] = data["rule_sets"][1:]
        before = snapshot()

        problems = problems_of(data)

        assert problems == [("rule_sets", "Rule set “Rules 2026” is not in the file, so it would be removed, but "
                                          "purchases earned points under it. Keep it in the file (a later published "
                                          "rule set takes over from its start).")]
        assert snapshot() == before

    def test_tier_with_members_is_not_deleted(self, loaded, now):
        MemberTier.objects.create(member=MemberFactory(), tier=Tier.objects.get(code="diamond"), since=now)
        data = copy.deepcopy(loaded)
        data["tiers"]["levels"].pop()
        modifier(data, 0, "Golden week")["when"]["tiers"] = ["gold"]
        before = snapshot()

        problems = problems_of(data)

        assert problems == [("tiers.levels", "Tier “diamond” (钻石) is not in the file, so it would be removed, but "
                                             "1 member is at this tier. Keep it in the file, or move the member to "
                                             "another tier first.")]
        assert snapshot() == before

    def test_tier_used_by_purchases_is_not_deleted(self, loaded, stores, audit_clean):
        buy(MemberFactory(joined_at=local(2025, 1, 1)), stores[0], "10.00", at=local(2026, 3, 4, 10))
        data = copy.deepcopy(loaded)
        data["tiers"]["levels"][0]["code"] = "basic"  # standard is removed, basic added

        assert paths_of(data) == ["tiers.levels"]

    def test_tiers_alone_cannot_remove_a_tier_stored_rules_name(self, loaded):
        data = {"version": 1, "tiers": copy.deepcopy(loaded["tiers"])}
        data["tiers"]["levels"].pop()

        problems = problems_of(data)

        assert problems == [("tiers.levels", "Modifier “Golden week” of rule set “Rules 2026” names tier “diamond”, "
                                             "which the file removes. Keep the tier, or give the rule sets too "
                                             "(rule_sets).")]

    def test_confirm_applies_only_the_previewed_plan(self, loaded):
        data = copy.deepcopy(loaded)
        data["settings"]["pending_days"] = 14
        preview = program_import(data, dry_run=True)
        program_load("""
            version: 1
            settings: {points_name: 积分, expiry_policy: yearly, pending_days: 7, currency: USD}
        """)
        before = snapshot()

        report = program_import(data, confirm_plan=preview.plan_digest)

        assert report.stale and not report.applied
        assert snapshot() == before
        assert program_import(data, confirm_plan=report.plan_digest).applied


# ---- BAD INPUT ----


def _overlapping_priorities(data):
    modifier(data, 0, "Tuesday afternoon in Shanghai")["stacking"] = "add"  # same priority as a "multiply"


def _time_window_backwards(data):
    modifier(data, 0, "Tuesday afternoon in Shanghai")["when"].update(time_from="18:00", time_to="09:00")


def _multiplier_zero(data):
    modifier(data, 0, "Golden week")["value"] = "0"


def _multiplier_negative(data):
    modifier(data, 0, "Golden week")["value"] = "-1"


def _inactive_multiplier_zero(data):
    modifier(data, 0, "Old promotion")["value"] = "0"


def _cap_negative(data):
    data["rule_sets"][0]["cap_day"] = -1


def _modifier_cap_negative(data):
    modifier(data, 0, "Golden week")["cap_per_order"] = -5


def _tiers_not_from_zero(data):
    data["tiers"]["levels"][0]["spend_threshold"] = "100.00"


def _unknown_key(data):
    modifier(data, 0, "Golden week")["colour"] = "gold"


def _unknown_condition(data):
    modifier(data, 0, "Golden week")["when"]["weekday"] = [1]


def _unknown_section(data):
    data["rewards"] = []


def _wrong_type_int(data):
    data["settings"]["pending_days"] = "7"


def _wrong_type_bool(data):
    data["rule_sets"][0]["exclude_coupons"] = "yes"


def _float_decimal(data):
    data["tiers"]["levels"][1]["earn_multiplier"] = 1.2


def _not_a_decimal(data):
    data["rule_sets"][0]["earn_spend"] = "one"


def _wrong_type_list(data):
    modifier(data, 0, "Golden week")["when"]["tiers"] = "gold"


def _unknown_enum(data):
    modifier(data, 0, "Golden week")["stacking"] = "times"


def _upper_case_enum(data):
    data["rule_sets"][0]["status"] = "PUBLISHED"


def _unknown_channel(data):
    modifier(data, 0, "Tuesday afternoon in Shanghai")["when"]["channels"] = ["store", "shop"]


def _unknown_store(data):
    modifier(data, 0, "Tuesday afternoon in Shanghai")["when"]["stores"] = ["SH01", "GZ09"]


def _unknown_tier(data):
    modifier(data, 0, "Golden week")["when"]["tiers"] = ["gold", "platinum"]


def _naive_start(data):
    data["rule_sets"][0]["effective_from"] = "2026-01-01T00:00:00"


def _missing_value(data):
    del modifier(data, 0, "Golden week")["value"]


def _bonus_multiplied(data):
    modifier(data, 0, "Birthday month")["stacking"] = "multiply"


def _duplicate_names(data):
    data["rule_sets"][1]["name"] = "Rules 2026"


def _same_published_start(data):
    data["rule_sets"][1].update(status="published", effective_from="2026-01-01T08:00:00+16:00")


def _clearance_day_missing(data):
    data["settings"].update(clearance_month=2, clearance_day=30)


def _bad_time_zone(data):
    data["settings"]["time_zone"] = "Mars/Olympus"


def _bad_tier_code(data):
    data["tiers"]["levels"][1]["code"] = "silver card"


def _weekday_eight(data):
    modifier(data, 1, "Weekend double")["when"]["weekdays"] = [6, 8]


def _date_range_backwards(data):
    modifier(data, 0, "Golden week")["when"].update(date_from="2026-10-07", date_to="2026-10-01")


def _wrong_version(data):
    data["version"] = 2


BAD_INPUT = {
    "overlapping priorities": (_overlapping_priorities, "rule_sets[0].modifiers[0].priority",
                               "Modifiers with priority 10 stack in different ways (add, multiply)"),
    "time window ends before it starts": (_time_window_backwards, "rule_sets[0].modifiers[1].when.time_to",
                                          "The time window ends before it starts."),
    "multiplier 0": (_multiplier_zero, "rule_sets[0].modifiers[3].value",
                     "A multiplier or bonus must be greater than 0."),
    "multiplier -1": (_multiplier_negative, "rule_sets[0].modifiers[3].value",
                      "A multiplier or bonus must be greater than 0."),
    "inactive multiplier 0": (_inactive_multiplier_zero, "rule_sets[0].modifiers[2].value",
                              "A multiplier or bonus must be greater than 0."),
    "cap below 0": (_cap_negative, "rule_sets[0].cap_day", "A cap cannot be below 0."),
    "modifier cap below 0": (_modifier_cap_negative, "rule_sets[0].modifiers[3].cap_per_order",
                             "A cap cannot be below 0."),
    "tiers not starting at 0": (_tiers_not_from_zero, "tiers.levels[0].spend_threshold",
                                "The lowest tier must start at 0"),
    "unknown key": (_unknown_key, "rule_sets[0].modifiers[3].colour", "Unknown field “colour”."),
    "unknown condition": (_unknown_condition, "rule_sets[0].modifiers[3].when.weekday",
                          "Unknown field “weekday”. Did you mean “weekdays”?"),
    "unknown section": (_unknown_section, "rewards", "Unknown field “rewards”."),
    "text for a number": (_wrong_type_int, "settings.pending_days", "Expected a whole number, not the text “7”."),
    "text for a boolean": (_wrong_type_bool, "rule_sets[0].exclude_coupons", "Expected true or false"),
    "float for a decimal": (_float_decimal, "tiers.levels[1].earn_multiplier",
                            'Write decimal numbers in quotes, e.g. "1.2"'),
    "not a decimal": (_not_a_decimal, "rule_sets[0].earn_spend", "Expected a decimal number"),
    "text for a list": (_wrong_type_list, "rule_sets[0].modifiers[3].when.tiers", "Expected a list"),
    "unknown enum": (_unknown_enum, "rule_sets[0].modifiers[3].stacking",
                     "“times” is not one of: multiply, add, best."),
    "enum in upper case": (_upper_case_enum, "rule_sets[0].status", "“PUBLISHED” is not one of: draft, published."),
    "unknown channel": (_unknown_channel, "rule_sets[0].modifiers[1].when.channels[1]", "“shop” is not one of"),
    "unknown store": (_unknown_store, "rule_sets[0].modifiers[1].when.stores", "There is no store “GZ09”."),
    "unknown tier": (_unknown_tier, "rule_sets[0].modifiers[3].when.tiers", "There is no tier “platinum”."),
    "naive effective_from": (_naive_start, "rule_sets[0].effective_from", "Give the time with its offset from UTC"),
    "missing value": (_missing_value, "rule_sets[0].modifiers[3].value", "This field is required."),
    "bonus multiplied": (_bonus_multiplied, "rule_sets[0].modifiers[4].stacking",
                         "A fixed bonus can be added or taken as the best, not multiplied."),
    "duplicate rule set names": (_duplicate_names, "rule_sets[1].name",
                                 "Another rule set in the file (rule_sets[0]) has this name."),
    "two published at one moment": (_same_published_start, "rule_sets[1].effective_from",
                                    "Another published rule set (rule_sets[0]) starts at the same moment"),
    "no such day": (_clearance_day_missing, "settings.clearance_day", "That month has no such day."),
    "unknown time zone": (_bad_time_zone, "settings.time_zone", "“Mars/Olympus” is not a known time zone."),
    "tier code not a slug": (_bad_tier_code, "tiers.levels[1].code", "valid “slug”"),
    "weekday 8": (_weekday_eight, "rule_sets[1].modifiers[0].when.weekdays", "Weekdays are numbers from 1"),
    "date range backwards": (_date_range_backwards, "rule_sets[0].modifiers[3].when.date_to",
                             "The date range ends before it starts."),
    "file version": (_wrong_version, "version", "Unknown file version 2"),
}


class TestBadInput:
    @pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
    def test_refused_with_its_path_and_nothing_saved(self, loaded, case):
        change, path, message = BAD_INPUT[case]
        data = copy.deepcopy(loaded)
        change(data)
        data["settings"]["points_name"] = "Changed too"  # a good change in the same file is not saved either
        counts, before = row_counts(), snapshot()

        report = program_import(data)

        assert not report.ok and not report.applied
        assert (path, message) in report.problems or any(
            p == path and message in m for p, m in report.problems), report.problems
        assert row_counts() == counts
        assert snapshot() == before
        assert ProgramSettings.objects.get().points_name == "积分"

    @pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
    def test_refused_on_an_empty_database_too(self, stores, case):
        """The same file on a fresh database: nothing at all is created."""
        program_load(PROGRAM)
        data = program_export()
        for model in (Modifier, RuleSet, Tier, TierPolicy, ProgramSettings):
            model.objects.all().delete()
        BAD_INPUT[case][0](data)

        assert not program_import(data).ok
        assert row_counts() == dict.fromkeys(row_counts(), 0)

    def test_every_problem_is_reported_at_once_in_file_order(self, loaded):
        data = copy.deepcopy(loaded)
        _multiplier_negative(data)
        _time_window_backwards(data)
        _cap_negative(data)
        _tiers_not_from_zero(data)
        _unknown_store(data)
        _naive_start(data)
        data["settings"]["pending_days"] = "seven"
        modifier(data, 1, "Weekend double")["value"] = "0"

        assert paths_of(data) == [
            "settings.pending_days",
            "tiers.levels[0].spend_threshold",
            "rule_sets[0].effective_from",
            "rule_sets[0].cap_day",
            "rule_sets[0].modifiers[1].when.time_to",
            "rule_sets[0].modifiers[1].when.stores",
            "rule_sets[0].modifiers[3].value",
            "rule_sets[1].modifiers[0].value",
        ]

    def test_a_refused_priority_is_not_compared_with_the_others(self, loaded):
        data = copy.deepcopy(loaded)
        modifier(data, 0, "Golden week")["priority"] = "10"  # text; a default priority could clash with others

        assert problems_of(data) == [("rule_sets[0].modifiers[3].priority",
                                      "Expected a whole number, not the text “10”.")]

    def test_a_modifier_with_a_refused_key_is_still_checked(self, loaded):
        data = copy.deepcopy(loaded)
        _unknown_key(data)
        _multiplier_zero(data)

        assert paths_of(data) == ["rule_sets[0].modifiers[3].colour", "rule_sets[0].modifiers[3].value"]

    def test_a_refused_rank_is_not_compared_with_the_others(self, loaded):
        data = copy.deepcopy(loaded)
        data["tiers"]["levels"][3]["rank"] = "3"

        assert problems_of(data) == [("tiers.levels[3].rank", "Expected a whole number, not the text “3”.")]

    def test_a_wrong_value_is_reported_once(self, loaded):
        data = copy.deepcopy(loaded)
        data["rule_sets"][0]["earn_spend"] = "0"  # the validator and the model field both refuse it

        assert problems_of(data) == [("rule_sets[0].earn_spend", "The amount per point must be greater than 0.")]

    def test_entries_that_are_not_mappings(self, loaded):
        data = copy.deepcopy(loaded)
        modifier(data, 0, "Golden week")["when"]["tiers"] = ["gold"]
        data["tiers"]["levels"][3] = "diamond"
        data["rule_sets"][0]["modifiers"][0] = ["value", "2"]
        data["rule_sets"][1] = None

        assert paths_of(data) == ["tiers.levels[3]", "rule_sets[0].modifiers[0]", "rule_sets[1]"]

    def test_not_a_mapping(self, db):
        assert problems_of([1, 2]) == [
            ("", "The file must be a mapping with the keys version, settings, tiers and rule_sets.")]

    def test_program_load_raises_with_every_problem(self, loaded):
        with pytest.raises(ProgramFileInvalid) as exc:
            program_load("""
                version: 1
                rule_sets:
                  - {name: X, effective_from: "2026-01-01T00:00:00+08:00", cap_week: -1,
                     modifiers: [{name: Y, value: "-1"}]}
            """)

        assert exc.value.problems == [("rule_sets[0].cap_week", "A cap cannot be below 0."),
                                      ("rule_sets[0].modifiers[0].value",
                                       "A multiplier or bonus must be greater than 0.")]
        assert "rule_sets[0].cap_week: A cap cannot be below 0." in str(exc.value)


class TestFileText:
    def test_unquoted_time_is_explained(self, stores):
        with pytest.raises(ProgramFileInvalid) as exc:
            program_load("""
                version: 1
                rule_sets:
                  - name: X
                    effective_from: 2026-01-01T00:00:00+08:00
                    modifiers:
                      - {name: Y, value: "2", when: {time_from: 14:00}}
            """)

        assert exc.value.problems == [(
            "rule_sets[0].modifiers[0].when.time_from",
            'Write times in quotes, e.g. "14:00" (unquoted, YAML reads 14:00 as a number).')]

    def test_unquoted_yaml_timestamp_with_offset_is_accepted(self, stores):
        program_load("""
            version: 1
            rule_sets:
              - {name: X, effective_from: 2026-01-01T00:00:00+08:00}
        """)

        assert RuleSet.objects.get().effective_from == local(2026, 1, 1)

    def test_unquoted_number_for_text_is_explained(self, stores):
        with pytest.raises(ProgramFileInvalid) as exc:
            program_load("""
                version: 1
                rule_sets:
                  - {name: 2026, effective_from: "2026-01-01T00:00:00+08:00"}
            """)

        assert exc.value.problems == [("rule_sets[0].name", "Expected text, not the number 2026. Put it in quotes.")]

    @pytest.mark.parametrize(("text", "message"), [
        ("version: 1\nsettings: [unclosed\n", "The file is not valid YAML (line 3, column 1)"),
        ("version: 1\nsettings:\n  pending_days: 1\n  pending_days: 2\n",
         "the key “pending_days” appears twice"),
        ("version: 1\nsettings: &s {pending_days: 1}\ntiers: *s\n", "anchors and aliases (*name) are not allowed"),
        ('{"version": 1, "version": 1}', "the key “version” appears twice"),
        ('{"version": 1,}', "The file is not valid JSON (line 1, column 15)"),
        (b"\xff\xfe", "The file is not UTF-8 text."),
    ])
    def test_unreadable_text_is_refused(self, db, text, message):
        with pytest.raises(ProgramFileInvalid) as exc:
            program_load(text)

        assert message in exc.value.problems[0][1]
        assert row_counts() == dict.fromkeys(row_counts(), 0)

    def test_yaml_export_is_readable(self, loaded):
        text = program_export_text()

        assert text.startswith("# ")
        assert "  points_name: 积分\n" in text
        assert "          weekdays: [2]\n" in text
        assert "      perks: |\n        Free parking\n        Birthday gift\n" in text
        assert yaml.safe_load(text) == loaded

    def test_json_file_is_accepted(self, stores):
        program_load(PROGRAM)
        text = json.dumps(program_export())
        Modifier.objects.all().delete()

        report = program_load(text, fmt="json")

        assert {c.kind for c in report.changes} == {"modifier"}
        assert program_dump(program_export(), fmt="json") == program_dump(json.loads(text), fmt="json")


# ---- COMMANDS ----


class TestCommands:
    def test_export_writes_yaml_to_stdout(self, loaded):
        out = io.StringIO()

        call_command("program_export", stdout=out)

        assert yaml.safe_load(out.getvalue()) == loaded

    def test_export_writes_json_to_a_file(self, loaded, tmp_path):
        target = tmp_path / "program.json"

        call_command("program_export", "--format", "json", "--output", str(target), stdout=io.StringIO())

        assert json.loads(target.read_text(encoding="utf-8")) == loaded

    def test_import_applies_and_lists_the_changes(self, loaded, tmp_path):
        data = copy.deepcopy(loaded)
        data["settings"]["pending_days"] = 14
        source = tmp_path / "program.yaml"
        source.write_text(program_dump(data), encoding="utf-8")
        out = io.StringIO()

        call_command("program_import", str(source), stdout=out)

        assert ProgramSettings.objects.get().pending_days == 14
        assert out.getvalue().splitlines() == [
            "Program settings: updated (pending_days: 7 → 14)",
            "0 created, 1 updated, 0 deleted.",
            f"Program imported from {source}.",
        ]

    def test_import_dry_run_writes_nothing(self, loaded, tmp_path):
        data = copy.deepcopy(loaded)
        data["rule_sets"].pop()
        source = tmp_path / "program.json"
        source.write_text(json.dumps(data), encoding="utf-8")
        before = snapshot()
        out = io.StringIO()

        call_command("program_import", str(source), "--dry-run", stdout=out)

        assert snapshot() == before
        assert out.getvalue().splitlines() == [
            f"Dry run: nothing was changed. Importing {source} would make these changes:",
            "Rule set “Rules 2027 draft”: deleted",
            "Modifier “Rules 2027 draft › Weekend double”: deleted",
            "0 created, 0 updated, 2 deleted.",
        ]

    def test_import_of_the_export_changes_nothing(self, loaded, tmp_path):
        source = tmp_path / "program.yaml"
        call_command("program_export", "--output", str(source), stdout=io.StringIO())
        out = io.StringIO()

        call_command("program_import", str(source), stdout=out)

        assert out.getvalue() == "No changes: the program already matches the file.\n"

    def test_import_with_problems_exits_non_zero_listing_each(self, loaded, tmp_path):
        data = copy.deepcopy(loaded)
        _multiplier_zero(data)
        _cap_negative(data)
        source = tmp_path / "program.yaml"
        source.write_text(program_dump(data), encoding="utf-8")
        before = snapshot()
        err = io.StringIO()

        with pytest.raises(CommandError) as exc:
            call_command("program_import", str(source), stderr=err, stdout=io.StringIO())

        assert exc.value.returncode == 1
        assert str(exc.value) == f"2 problem(s) in {source}; nothing was changed."
        assert err.getvalue().splitlines() == [
            "rule_sets[0].cap_day: A cap cannot be below 0.",
            "rule_sets[0].modifiers[3].value: A multiplier or bonus must be greater than 0.",
        ]
        assert snapshot() == before

    def test_import_of_an_invalid_yaml_file(self, db, tmp_path):
        source = tmp_path / "program.yaml"
        source.write_text("version: 1\nsettings: [\n", encoding="utf-8")
        err = io.StringIO()

        with pytest.raises(CommandError):
            call_command("program_import", str(source), stderr=err)

        assert err.getvalue().startswith("The file is not valid YAML (line 3, column 1)")

    def test_import_of_a_missing_file(self, db, tmp_path):
        with pytest.raises(CommandError, match="Cannot read"):
            call_command("program_import", str(tmp_path / "nope.yaml"))


# ---- ADMIN ----


def upload(client, text: str, name: str = "program.yaml"):
    return client.post(reverse("program-io:import"),
                       {"file": SimpleUploadedFile(name, text.encode(), content_type="application/yaml")})


@pytest.fixture
def program_manager(db, django_user_model):
    """Staff with exactly the permissions an import uses."""
    user = django_user_model.objects.create_user(username="manager", password="pw", is_staff=True)
    codenames = ["change_programsettings", "change_tierpolicy"] + [
        f"{action}_{model}" for model in ("tier", "ruleset", "modifier") for action in ("add", "change", "delete")]
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


class TestAdmin:
    def test_export_downloads_the_program(self, admin_client, loaded):
        response = admin_client.get(reverse("program-io:export"))

        assert response.status_code == 200
        assert response["Content-Disposition"].startswith('attachment; filename="program-')
        assert yaml.safe_load(response.content.decode()) == loaded
        assert json.loads(admin_client.get(reverse("program-io:export") + "?format=json").content) == loaded

    def test_staff_without_permission_is_refused(self, client, staff, loaded):
        client.force_login(staff)

        assert client.get(reverse("program-io:export")).status_code == 403
        assert client.get(reverse("program-io:import")).status_code == 403
        assert upload(client, PROGRAM).status_code == 403

    def test_anonymous_is_sent_to_login(self, client, db):
        response = client.get(reverse("program-io:import"))

        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    def test_settings_page_links_to_export_and_import(self, admin_client, loaded):
        html = admin_client.get(reverse("admin:loyalty_programsettings_change", args=[1])).content.decode()

        assert reverse("program-io:export") in html and reverse("program-io:import") in html

    def test_import_page_shows_every_problem_and_saves_nothing(self, client, program_manager, loaded):
        client.force_login(program_manager)
        data = copy.deepcopy(loaded)
        _multiplier_negative(data)
        _tiers_not_from_zero(data)
        before = snapshot()

        response = upload(client, program_dump(data))

        html = response.content.decode()
        assert response.status_code == 200
        assert "The file has 2 problems; nothing was changed." in html
        assert "<code>tiers.levels[0].spend_threshold</code>: The lowest tier must start at 0" in html
        assert "<code>rule_sets[0].modifiers[3].value</code>: A multiplier or bonus must be greater than 0." in html
        assert 'id="program-confirm-form"' not in html
        assert snapshot() == before

    def test_import_previews_then_applies_on_confirm(self, client, program_manager, loaded):
        client.force_login(program_manager)
        data = copy.deepcopy(loaded)
        data["settings"]["points_name"] = "金币"
        data["rule_sets"].pop()
        before = snapshot()

        preview = upload(client, program_dump(data))

        html = preview.content.decode()
        assert "Importing this file makes 3 changes" in html
        assert "<code>points_name</code>: 积分 → 金币" in html
        assert 'id="program-confirm-form"' in html
        assert snapshot() == before
        form = preview.context["confirm_form"]

        applied = client.post(reverse("program-io:import"), {
            "content": form.initial["content"], "format": form.initial["format"], "plan": form.initial["plan"]})

        assert applied.status_code == 302
        assert ProgramSettings.objects.get().points_name == "金币"
        assert not RuleSet.objects.filter(name="Rules 2027 draft").exists()
        entry = LogEntry.objects.get()
        assert entry.user == program_manager
        assert entry.change_message == "Imported a program file: 0 created, 1 updated, 2 deleted."
        page = client.get(applied["Location"], follow=True).content.decode()
        assert "Program imported: 0 created, 1 updated, 2 deleted." in page

    def test_confirm_after_the_program_changed_shows_the_new_plan(self, client, program_manager, loaded):
        client.force_login(program_manager)
        data = copy.deepcopy(loaded)
        data["settings"]["pending_days"] = 14
        form = upload(client, program_dump(data)).context["confirm_form"]
        program_load("""
            version: 1
            settings: {points_name: 积分, expiry_policy: yearly, pending_days: 7, currency: USD}
        """)
        before = snapshot()

        response = client.post(reverse("program-io:import"), {
            "content": form.initial["content"], "format": form.initial["format"], "plan": form.initial["plan"]})

        assert response.status_code == 200
        assert "The program changed since you previewed this file." in response.content.decode()
        assert snapshot() == before
        assert response.context["confirm_form"].initial["plan"] != form.initial["plan"]

    def test_upload_of_an_unchanged_file_says_so(self, admin_client, loaded):
        response = upload(admin_client, program_export_text(fmt="json"), name="program.json")

        assert "No changes: the program already matches the file." in response.content.decode()
        assert response.context["confirm_form"] is None

    def test_upload_of_an_unreadable_file(self, admin_client, db):
        response = upload(admin_client, "version: 1\nsettings: [\n")

        assert "The file is not valid YAML (line 3, column 1)" in response.content.decode()


# ---- CONCURRENCY (PostgreSQL) ----


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_of_one_file_apply_it_once():
    """The settings row lock makes imports run one after the other: the first applies the file, the
    others, seeing what it committed, find nothing to change (no duplicate rows, no unique-key errors)."""
    StoreFactory(code="SH01")
    program_settings_get()  # the row the import locks
    data = program_file_parse(textwrap.dedent(PROGRAM))
    barrier = threading.Barrier(8)

    def run(_i):
        try:
            barrier.wait(timeout=30)
            return program_import(copy.deepcopy(data))
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(run, range(8)))
    close_old_connections()

    assert all(isinstance(r, ImportReport) and r.ok for r in reports), reports
    assert sorted(r.applied for r in reports) == [False] * 7 + [True]
    assert row_counts() == {"ProgramSettings": 1, "TierPolicy": 1, "Tier": 4, "RuleSet": 2, "Modifier": 8}
