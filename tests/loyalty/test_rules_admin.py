"""Rules admin: rule sets with modifiers inline, refused input saves nothing, history is read-only, copy as
draft, and the "rules in force now" page in plain words."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Modifier, Purchase, RuleSet, RuleSetStatus, Tier
from tests.conftest import local
from tests.factories import StoreFactory
from tests.loyalty.helpers import buy, rules_publish

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

ADD = "admin:loyalty_ruleset_add"
MODIFIER_DEFAULTS = {
    "name": "", "is_active": "on", "kind": "MULTIPLIER", "value": "2", "stacking": "MULTIPLY", "priority": "100",
    "cap_per_order": "", "skus": "", "categories": "", "time_from": "", "time_to": "", "date_from": "", "date_to": "",
    "minimum_spend": "", "promo_code": "",
}


def rule_set_post(*, modifiers=(), initial_forms=0, **fields) -> dict:
    """The admin's POST for a rule set and its inline modifiers (each a dict of overrides)."""
    data = {
        "name": "Spring 2026", "status": "DRAFT", "effective_from_0": "2030-04-01", "effective_from_1": "00:00:00",
        "earn_points": "1", "earn_spend": "1.00", "rounding": "FLOOR_ORDER", "minimum_spend": "0.00",
        "topup_points": "0", "topup_spend": "1.00", "exclude_coupons": "on", "exclude_stored_value": "on",
        "tier_multipliers": "on", "cap_day": "", "cap_week": "", "cap_month": "", "notes": "",
        "modifiers-TOTAL_FORMS": str(len(modifiers)), "modifiers-INITIAL_FORMS": str(initial_forms),
        "modifiers-MIN_NUM_FORMS": "0", "modifiers-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    for i, m in enumerate(modifiers):
        for key, value in {**MODIFIER_DEFAULTS, "name": f"Rule {i}", **m}.items():
            if value is None or value is False:
                continue
            data[f"modifiers-{i}-{key}"] = value
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def codes(db):
    StoreFactory(code="SH01", name="Jing'an")
    StoreFactory(code="SH02", name="Xuhui")
    Tier.objects.create(code="basic", name="普通", rank=0, spend_threshold=Decimal(0))
    Tier.objects.create(code="gold", name="金卡", rank=1, spend_threshold=Decimal(1000), earn_multiplier=Decimal("1.2"),
                        discount_percent=Decimal(5), perks="Free parking")


class TestCreate:
    def test_a_rule_set_with_modifiers_of_every_kind_of_condition(self, admin_client, codes):
        response = admin_client.post(reverse(ADD), rule_set_post(cap_day="2000", modifiers=[
            {"name": "New product", "categories": "new, 新品", "skus": "A001，A002", "priority": "10"},
            {"name": "Weekday afternoons", "value": "3", "weekdays": ["1", "2", "3", "4", "5"], "time_from": "14:00",
             "time_to": "17:00", "stores": ["SH01"], "channels": ["STORE", "APP"], "priority": "20"},
            {"name": "Gold birthday", "kind": "BONUS", "stacking": "ADD", "value": "100", "tiers": ["gold"],
             "birthday_month": "on", "minimum_spend": "50.00", "cap_per_order": "80", "priority": "30"},
        ]))
        assert response.status_code == 302, response.context and [f.errors for f in response.context["inline_admin_formsets"][0].formset]
        rule_set = RuleSet.objects.get()
        assert (rule_set.status, rule_set.cap_day, rule_set.effective_from) == ("DRAFT", 2000, local(2030, 4, 1))
        new, afternoons, birthday = rule_set.modifiers.order_by("priority")
        assert (new.categories, new.skus, new.value) == (["new", "新品"], ["A001", "A002"], Decimal(2))
        assert (afternoons.weekdays, afternoons.stores, afternoons.channels) == ([1, 2, 3, 4, 5], ["SH01"], ["STORE", "APP"])
        assert (afternoons.time_from, afternoons.time_to) == (dt.time(14), dt.time(17))
        assert (birthday.kind, birthday.tiers, birthday.birthday_month, birthday.cap_per_order) == ("BONUS", ["gold"], True, 80)

        page = admin_client.get(reverse("admin:loyalty_ruleset_change", args=[rule_set.pk])).content.decode()
        assert "New product: ×2 on A001, A002, new, 新品 (multiplies with other rules)" in page
        assert "At most 2,000 points per day" in page
        assert 'name="_save"' in page
        assert 'value="A001, A002"' in page  # lists are edited as text again

    def test_the_add_page_shows_help_texts(self, admin_client, codes):
        html = admin_client.get(reverse(ADD)).content.decode()
        assert "Drafts are never used for earning" in html
        assert "Rules with the same priority must stack the same way" in html
        assert "Only on these days (local time)" in html
        assert "Jing&#x27;an (SH01)" in html and "金卡 (gold)" in html


REFUSED = [
    pytest.param(rule_set_post(modifiers=[{"priority": "10", "stacking": "MULTIPLY"},
                                          {"priority": "10", "stacking": "BEST"}]),
                 "Modifiers with priority 10 stack in different ways (best, multiply), so their order would change "
                 "the result: give them different priorities.", id="same-priority-different-stacking"),
    pytest.param(rule_set_post(modifiers=[{"time_from": "17:00", "time_to": "14:00"}]),
                 "The time window ends before it starts.", id="window-ends-before-it-starts"),
    pytest.param(rule_set_post(modifiers=[{"date_from": "2026-05-07", "date_to": "2026-05-01"}]),
                 "The date range ends before it starts.", id="dates-end-before-they-start"),
    pytest.param(rule_set_post(modifiers=[{"value": "0"}]), "A multiplier or bonus must be greater than 0.",
                 id="multiplier-0"),
    pytest.param(rule_set_post(modifiers=[{"value": "-1"}]), "A multiplier or bonus must be greater than 0.",
                 id="multiplier-minus-1"),
    pytest.param(rule_set_post(modifiers=[{"cap_per_order": "-5"}]), "A cap cannot be below 0.", id="modifier-cap"),
    pytest.param(rule_set_post(cap_day="-1", modifiers=[{}]), "A cap cannot be below 0.", id="daily-cap"),
    pytest.param(rule_set_post(modifiers=[{"kind": "BONUS", "stacking": "MULTIPLY", "value": "50"}]),
                 "A fixed bonus can be added or taken as the best, not multiplied.", id="bonus-multiplied"),
    pytest.param(rule_set_post(earn_spend="0", modifiers=[{}]), "The amount per point must be greater than 0.",
                 id="rate-0"),
    pytest.param(rule_set_post(modifiers=[{"stores": ["GONE"]}]), "There is no store “GONE”.", id="unknown-store"),
]


class TestRefused:
    @pytest.mark.parametrize(("data", "message"), REFUSED)
    def test_bad_input_is_refused_with_a_message_and_nothing_is_saved(self, admin_client, codes, data, message):
        response = admin_client.post(reverse(ADD), data)
        assert response.status_code == 200
        html = response.content.decode()
        assert message.replace("'", "&#x27;") in html
        assert "Please correct the error" in html or "Please correct the errors" in html
        assert "Constraint" not in html  # the validator's words, not the database's
        assert (RuleSet.objects.count(), Modifier.objects.count()) == (0, 0)

    def test_a_bad_modifier_added_to_an_existing_rule_set_changes_nothing(self, admin_client, codes):
        rule_set = RuleSet.objects.create(name="Draft", effective_from=local(2030, 1, 1))
        kept = Modifier.objects.create(rule_set=rule_set, name="Kept", value=Decimal(2), priority=10)
        data = rule_set_post(name="Renamed", initial_forms=1, modifiers=[
            {"id": str(kept.pk), "rule_set": str(rule_set.pk), "name": "Kept", "priority": "10", "value": "3"},
            {"name": "Clash", "priority": "10", "stacking": "ADD"}])
        response = admin_client.post(reverse("admin:loyalty_ruleset_change", args=[rule_set.pk]), data)
        assert response.status_code == 200 and "stack in different ways" in response.content.decode()
        rule_set.refresh_from_db()
        kept.refresh_from_db()
        assert (rule_set.name, kept.value, rule_set.modifiers.count()) == ("Draft", Decimal(2), 1)

    def test_two_published_rule_sets_cannot_start_at_the_same_moment(self, admin_client, codes):
        rules_publish(name="Existing", effective_from=local(2030, 4, 1))
        response = admin_client.post(reverse(ADD), rule_set_post(status="PUBLISHED"))
        assert "The published rule set “Existing” already starts at this moment" in response.content.decode()
        assert RuleSet.objects.count() == 1

    def test_publishing_over_purchases_already_earned_is_refused(self, admin_client, codes, member, store):
        buy(member, store, "10.00", at=timezone.now() - dt.timedelta(days=1))
        past = (timezone.now() - dt.timedelta(days=3)).astimezone(local(2026, 1, 1).tzinfo)
        response = admin_client.post(reverse(ADD), rule_set_post(
            status="PUBLISHED", effective_from_0=past.strftime("%Y-%m-%d"), effective_from_1="00:00:00"))
        assert "Purchases after this start were already earned under other rules" in response.content.decode()
        assert not RuleSet.objects.exists()


@pytest.fixture
def history(codes, member, store):
    """A published rule set in force since 2025 that a purchase was earned under."""
    rule_set = rules_publish(name="Live 2025", effective_from=local(2025, 1, 1), modifiers=[
        {"name": "New product", "value": Decimal(2), "categories": ["new"], "priority": 10}])
    buy(member, store, "50.00", at=timezone.now() - dt.timedelta(hours=1))
    assert Purchase.objects.get().rule_set == rule_set
    return rule_set


class TestHistoryIsReadOnly:
    def test_the_page_is_read_only_and_offers_copy_as_draft(self, admin_client, history):
        html = admin_client.get(reverse("admin:loyalty_ruleset_change", args=[history.pk])).content.decode()
        assert 'id="rule-set-locked"' in html and "cannot be changed" in html
        assert "1 purchase was earned under it" in html
        assert 'name="_save"' not in html and 'name="name"' not in html
        assert reverse("admin:loyalty_ruleset_copy", args=[history.pk]) in html

    def test_a_post_is_refused_and_changes_nothing(self, admin_client, history):
        modifier = history.modifiers.get()
        data = rule_set_post(name="Rewritten", status="PUBLISHED", effective_from_0="2025-01-01", initial_forms=1,
                             modifiers=[{"id": str(modifier.pk), "rule_set": str(history.pk), "value": "5"}])
        response = admin_client.post(reverse("admin:loyalty_ruleset_change", args=[history.pk]), data)
        assert response.status_code == 403
        history.refresh_from_db()
        modifier.refresh_from_db()
        assert (history.name, modifier.value) == ("Live 2025", Decimal(2))

    def test_it_cannot_be_deleted(self, admin_client, history):
        response = admin_client.post(reverse("admin:loyalty_ruleset_delete", args=[history.pk]), {"post": "yes"})
        assert response.status_code == 403 and RuleSet.objects.filter(pk=history.pk).exists()

    def test_a_future_published_rule_set_without_purchases_stays_editable(self, admin_client, history):
        later = rules_publish(name="Next", effective_from=local(2030, 1, 1))
        html = admin_client.get(reverse("admin:loyalty_ruleset_change", args=[later.pk])).content.decode()
        assert 'name="_save"' in html and 'id="rule-set-locked"' not in html

    def test_copy_as_draft_from_the_page(self, admin_client, history):
        response = admin_client.post(reverse("admin:loyalty_ruleset_copy", args=[history.pk]))
        copy = RuleSet.objects.exclude(pk=history.pk).get()
        assert response.status_code == 302 and response.url == reverse("admin:loyalty_ruleset_change", args=[copy.pk])
        assert (copy.name, copy.status) == ("Live 2025 (copy)", RuleSetStatus.DRAFT)
        assert copy.effective_from > timezone.now()
        assert list(copy.modifiers.values_list("name", "value", "categories", "priority")) == [
            ("New product", Decimal(2), ["new"], 10)]
        assert history.modifiers.count() == 1  # the original keeps its own
        page = admin_client.get(response.url).content.decode()
        assert 'name="_save"' in page  # the copy is editable

    def test_copy_as_draft_action_and_scheduling_the_change(self, admin_client, history):
        response = admin_client.post(reverse("admin:loyalty_ruleset_changelist"), {
            "action": "copy_as_draft", "_selected_action": [str(history.pk)]})
        copy = RuleSet.objects.exclude(pk=history.pk).get()
        assert response.status_code == 302
        modifier = copy.modifiers.get()
        data = rule_set_post(name=copy.name, status="PUBLISHED", effective_from_0="2030-06-01", earn_points="2",
                             initial_forms=1, modifiers=[
                                 {"id": str(modifier.pk), "rule_set": str(copy.pk), "name": "New product",
                                  "categories": "new", "value": "3", "priority": "10"}])
        saved = admin_client.post(reverse("admin:loyalty_ruleset_change", args=[copy.pk]), data)
        assert saved.status_code == 302
        copy.refresh_from_db()
        assert (copy.status, copy.earn_points, copy.effective_from) == ("PUBLISHED", 2, local(2030, 6, 1))
        assert copy.modifiers.get().value == Decimal(3)
        assert history.modifiers.get().value == Decimal(2)
        second = admin_client.post(reverse("admin:loyalty_ruleset_changelist"), {
            "action": "copy_as_draft", "_selected_action": [str(history.pk)]})
        assert second.status_code == 302
        assert RuleSet.objects.filter(name="Live 2025 (copy) 2").exists()


class TestListAndInForce:
    def test_the_list_shows_status_start_in_force_and_modifier_count(self, admin_client, history):
        rules_publish(name="Next", effective_from=local(2030, 1, 1))
        response = admin_client.get(reverse("admin:loyalty_ruleset_changelist"))
        rows = {rs.name: rs for rs in response.context["cl"].result_list}
        assert (rows["Live 2025"].in_force, rows["Live 2025"].modifiers_count) == (True, 1)
        assert (rows["Next"].in_force, rows["Next"].modifiers_count) == (False, 0)
        html = response.content.decode()
        assert reverse("admin:loyalty_ruleset_in_force") in html and reverse("admin:loyalty_ruleset_simulate") in html

    def test_rules_in_force_now_in_plain_words(self, admin_client, history):
        rules_publish(name="Summer", effective_from=local(2030, 7, 1, 0), earn_points=2, cap_day=500, modifiers=[
            {"name": "Weekday afternoons", "value": Decimal(3), "weekdays": [1, 2, 3, 4, 5], "time_from": dt.time(14),
             "time_to": dt.time(17)},
            {"name": "Gold bonus", "kind": "BONUS", "stacking": "ADD", "value": Decimal(50), "tiers": ["gold"]}])
        response = admin_client.get(reverse("admin:loyalty_ruleset_in_force"))
        assert response.status_code == 200
        html = response.content.decode()
        current = html[html.index('id="rules-current"'):html.index('id="rules-next"')]
        upcoming = html[html.index('id="rules-next"'):html.index('id="rules-tiers"')]
        tiers = html[html.index('id="rules-tiers"'):]
        assert "Live 2025" in current and "Earn 1 point for every ¥1.00 spent" in current
        assert "New product: ×2 on new (multiplies with other rules)" in current
        assert "Summer" in upcoming and "from 2030-07-01 00:00" in upcoming
        assert "Earn 2 points for every ¥1.00 spent" in upcoming and "At most 500 points per day" in upcoming
        assert ("Weekday afternoons: ×3 on Monday, Tuesday, Wednesday, Thursday, Friday from 14:00 to 17:00"
                in upcoming)
        assert "Gold bonus: +50 points bonus for 金卡" in upcoming
        assert "金卡" in tiers and "earns ×1.2" in tiers and "5% member discount" in tiers and "Free parking" in tiers
        assert "spend ¥1,000.00" in tiers

    def test_with_nothing_published_the_standard_rate_is_shown(self, admin_client, db):
        html = admin_client.get(reverse("admin:loyalty_ruleset_in_force")).content.decode()
        assert "No rule set is published yet" in html and "Earn 1 point for every ¥1.00 spent" in html
        assert "No change is scheduled." in html


class TestDetails:
    def test_start_times_are_typed_in_the_program_time_zone(self, admin_client, codes, settings):
        settings.TIME_ZONE = "UTC"  # the server's zone differs from the program's (Asia/Shanghai)
        response = admin_client.post(reverse(ADD), rule_set_post(effective_from_0="2030-04-01",
                                                                 effective_from_1="00:00:00"))
        assert response.status_code == 302
        assert RuleSet.objects.get().effective_from == local(2030, 4, 1)
        page = admin_client.get(reverse("admin:loyalty_ruleset_change", args=[RuleSet.objects.get().pk]))
        assert 'value="2030-04-01"' in page.content.decode() and 'value="00:00:00"' in page.content.decode()

    def test_the_clash_is_shown_on_the_modifier_the_validator_names(self, admin_client, codes):
        response = admin_client.post(reverse(ADD), rule_set_post(modifiers=[
            {"priority": "5"}, {"priority": "10", "stacking": "ADD"}, {"priority": "10", "stacking": "MULTIPLY"}]))
        forms = response.context["inline_admin_formsets"][0].formset.forms
        assert [bool(f.errors) for f in forms] == [False, True, False]
        assert "stack in different ways" in forms[1].errors["priority"][0]

    def test_a_deleted_modifier_no_longer_clashes(self, admin_client, codes):
        rule_set = RuleSet.objects.create(name="Draft", effective_from=local(2030, 1, 1))
        old = Modifier.objects.create(rule_set=rule_set, name="Old", value=Decimal(2), priority=10, stacking="BEST")
        data = rule_set_post(name="Draft", initial_forms=1, modifiers=[
            {"id": str(old.pk), "rule_set": str(rule_set.pk), "name": "Old", "priority": "10", "stacking": "BEST",
             "DELETE": "on"},
            {"name": "New", "priority": "10", "stacking": "MULTIPLY"}])
        response = admin_client.post(reverse("admin:loyalty_ruleset_change", args=[rule_set.pk]), data)
        assert response.status_code == 302
        assert list(rule_set.modifiers.values_list("name", flat=True)) == ["New"]

    def test_an_unknown_tier_is_named(self, admin_client, codes):
        response = admin_client.post(reverse(ADD), rule_set_post(modifiers=[{"tiers": ["platinum"]}]))
        assert "There is no tier “platinum”." in response.content.decode()
        assert not RuleSet.objects.exists()

    def test_the_simulator_answers_a_shared_link(self, admin_client, codes):
        rules_publish(name="Live")
        response = admin_client.get(reverse("admin:loyalty_ruleset_simulate"), {
            "occurred_at": "2026-03-04 10:00", "channel": "STORE", "basket": "A, , 1, 42"})
        assert response.context["result"].result.points == 42

    def test_pages_show_times_in_the_program_time_zone(self, admin_client, codes, settings):
        settings.TIME_ZONE = "UTC"
        rules_publish(name="Summer", effective_from=local(2030, 7, 1, 0))
        html = admin_client.get(reverse("admin:loyalty_ruleset_in_force")).content.decode()
        assert "from 2030-07-01 00:00" in html
        sim = admin_client.get(reverse("admin:loyalty_ruleset_simulate"), {
            "occurred_at": "2030-07-01 08:30", "channel": "STORE", "basket": "A, , 1, 10"}).content.decode()
        assert "at 2030-07-01 08:30 (Monday)" in sim
