"""Coupons: S8 (one code, 50 tills, one redemption), S9 (满减), S10 (unguessable codes with a check character),
issue, check, redeem, expiry, and the admin pages (templates, counter, bulk issue)."""

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput, LoyaltyError, MemberClosed
from loyalty.models import Account, Lot, MemberTier, Purchase, Tier, Transfer
from members.models import Member, MemberStatus
from members.services import UNAMBIGUOUS_ALPHABET
from rewards.exceptions import (
    CouponAlreadyUsed,
    CouponExpired,
    CouponInvalid,
    CouponNotApplicable,
    CouponNotYetValid,
    CouponNotYours,
    CouponTemplateInactive,
    CouponVoid,
)
from rewards.models import Coupon, CouponKind, CouponSource, CouponStatus, CouponTemplate
from rewards.services.coupons import (
    CODE_LENGTH,
    coupon_code_check_character,
    coupon_code_format,
    coupon_code_generate,
    coupon_code_is_well_formed,
    coupon_issue,
    coupon_qr_svg,
    coupon_redeem,
    coupon_validate,
    coupons_expire_due,
)
from tests.conftest import local, requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.rewards.factories import CouponTemplateFactory, code_typo, coupon_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_keys = iter(range(1, 10**9))


def rows() -> tuple:
    return (
        tuple(Coupon.objects.order_by("pk").values_list("pk", "status", "redeemed_at", "discount", "redeemed_reference")),
        Transfer.objects.count(), Lot.objects.count(), Purchase.objects.count(),
        tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")),
    )


def refused(error, fn, **kwargs) -> LoyaltyError:
    """The call raises ``error`` with a readable message (in both languages) and writes nothing."""
    before = rows()
    with pytest.raises(error) as exc:
        fn(**kwargs)
    assert rows() == before, "a refused request must write nothing"
    for language in ("en", "zh-hans"):
        with translation.override(language):
            assert str(exc.value).strip()
    return exc.value


def redeem(coupon_or_code, *, now, member=None, store=None, amount="100.00", key=None, **extra) -> Coupon:
    code = coupon_or_code.code if isinstance(coupon_or_code, Coupon) else coupon_or_code
    return coupon_redeem(code=code, member=member, store=store, order_amount=Decimal(amount), now=now,
                         idempotency_key=key or f"redeem-{next(_keys)}", **extra)


def validate(coupon_or_code, *, now, member=None, store=None, amount="100.00", **extra):
    code = coupon_or_code.code if isinstance(coupon_or_code, Coupon) else coupon_or_code
    return coupon_validate(code=code, member=member, store=store, order_amount=Decimal(amount), now=now, **extra)


# ---- S10: codes ----


class TestCodes:
    def test_S10_codes_are_random_long_unambiguous_and_carry_a_check_character(self, member, now):
        coupons = [coupon_make(member=member, now=now) for _ in range(60)]
        codes = [c.code for c in coupons]

        assert len(set(codes)) == len(codes)
        for code in codes:
            assert len(code) == CODE_LENGTH >= 11  # at least 10 random characters + 1 check character
            assert set(code) <= set(UNAMBIGUOUS_ALPHABET)
            assert not set(code) & set("0O1IL2Z5S8B")
            assert coupon_code_is_well_formed(code)
            assert code[-1] == coupon_code_check_character(code[:-1])

    def test_S10_codes_are_not_sequential(self, member, now):
        codes = [coupon_make(member=member, now=now).code for _ in range(40)]
        as_numbers = [sum(UNAMBIGUOUS_ALPHABET.index(c) * 25**i for i, c in enumerate(reversed(code[:-1])))
                      for code in codes]
        steps = {b - a for a, b in zip(as_numbers, as_numbers[1:], strict=False)}

        assert len(steps) == len(as_numbers) - 1  # no constant (or repeated) step between consecutive codes
        assert as_numbers != sorted(as_numbers)
        assert min(abs(s) for s in steps) > 25**3  # consecutive codes differ well beyond the last characters
        # every position varies: nothing like a shared prefix or a counter in the last characters
        assert all(len({code[i] for code in codes}) > 5 for i in range(CODE_LENGTH))

    @settings(max_examples=400, deadline=None)
    @given(body=st.text(alphabet=UNAMBIGUOUS_ALPHABET, min_size=CODE_LENGTH - 1, max_size=CODE_LENGTH - 1),
           position=st.integers(min_value=0, max_value=CODE_LENGTH - 1),
           shift=st.integers(min_value=1, max_value=len(UNAMBIGUOUS_ALPHABET) - 1))
    def test_S10_every_single_character_typo_is_caught(self, body, position, shift):
        code = body + coupon_code_check_character(body)
        wrong = UNAMBIGUOUS_ALPHABET[(UNAMBIGUOUS_ALPHABET.index(code[position]) + shift) % len(UNAMBIGUOUS_ALPHABET)]
        mistyped = code[:position] + wrong + code[position + 1:]

        assert coupon_code_is_well_formed(code)
        assert not coupon_code_is_well_formed(mistyped)

    @settings(max_examples=300, deadline=None)
    @given(body=st.text(alphabet=UNAMBIGUOUS_ALPHABET, min_size=CODE_LENGTH - 1, max_size=CODE_LENGTH - 1),
           position=st.integers(min_value=0, max_value=CODE_LENGTH - 2), gap=st.sampled_from([1, 2]))
    def test_swapped_neighbours_and_characters_two_apart_are_caught(self, body, position, gap):
        code = body + coupon_code_check_character(body)
        other = min(position + gap, CODE_LENGTH - 1)
        chars = list(code)
        chars[position], chars[other] = chars[other], chars[position]
        swapped = "".join(chars)

        assert swapped == code or not coupon_code_is_well_formed(swapped)

    def test_the_check_character_is_the_documented_weighted_sum_mod_25(self):
        body = "ACDEFGHJKMN"  # values 0..10
        weights = [(1, 2, 3)[(i + 1) % 3] for i in range(len(body))]  # from the right, check at position 0
        total = sum(w * UNAMBIGUOUS_ALPHABET.index(c) for w, c in zip(weights, reversed(body), strict=True))

        assert coupon_code_check_character(body) == UNAMBIGUOUS_ALPHABET[-total % 25]
        assert coupon_code_generate() != coupon_code_generate()

    def test_S10_a_mistyped_code_is_refused_as_invalid_before_any_lookup_not_as_someone_elses(
            self, member, now, django_assert_num_queries):
        other = MemberFactory()
        theirs = coupon_make(member=other, now=now)
        mistyped = code_typo(theirs.code)

        with django_assert_num_queries(0):
            with pytest.raises(CouponInvalid):
                validate(mistyped, member=member, now=now)
        exc = refused(CouponInvalid, redeem, coupon_or_code=mistyped, member=member, now=now)
        assert exc.code == "coupon_invalid"
        # the exact code of another member is theirs, and says so
        refused(CouponNotYours, redeem, coupon_or_code=theirs.code, member=member, now=now)

    def test_S10_an_unknown_well_formed_code_is_invalid_with_the_same_message_as_a_typo(self, member, now):
        unknown = coupon_code_generate()
        typo_exc = refused(CouponInvalid, validate, coupon_or_code=code_typo(unknown), member=member, now=now)
        unknown_exc = refused(CouponInvalid, validate, coupon_or_code=unknown, member=member, now=now)

        assert str(unknown_exc) == str(typo_exc)  # existence is not revealed

    @pytest.mark.parametrize("spelling", [
        lambda c: c.lower(), lambda c: coupon_code_format(c), lambda c: " ".join(coupon_code_format(c).split("-")),
        lambda c: "  " + coupon_code_format(c).lower() + " ",
        lambda c: "".join(chr(ord(ch) + 0xFEE0) for ch in c),  # full-width, as a Chinese keyboard types it
        lambda c: coupon_code_format(c).replace("-", "－"),
    ])
    def test_codes_are_accepted_in_any_case_with_spaces_and_dashes(self, member, now, spelling):
        coupon = coupon_make(member=member, now=now)
        assert validate(spelling(coupon.code), member=member, now=now).coupon == coupon

    def test_codes_print_in_groups_of_four_and_as_a_qr_code(self, member, now):
        coupon = coupon_make(member=member, now=now)
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", coupon_code_format(coupon.code))
        svg = coupon_qr_svg(coupon=coupon)
        assert svg.startswith("<svg") and "</svg>" in svg


# ---- issue ----


class TestIssue:
    def test_days_from_issue_run_to_the_end_of_the_last_local_day(self, member):
        issued_at = local(2026, 3, 3, 23, 30)
        coupon = coupon_make(member=member, now=issued_at, valid_days=7, source=CouponSource.CAMPAIGN)

        assert (coupon.status, coupon.source, coupon.issued_at, coupon.valid_from) == (
            CouponStatus.ISSUED, CouponSource.CAMPAIGN, issued_at, issued_at)
        assert coupon.valid_until == dt.datetime(2026, 3, 10, 23, 59, 59, 999999, tzinfo=SHANGHAI)

    def test_fixed_dates_come_from_the_template(self, member, now):
        template = CouponTemplateFactory(valid_days=None, valid_from=now + dt.timedelta(days=2),
                                         valid_until=now + dt.timedelta(days=9))
        coupon = coupon_make(template=template, member=member, now=now)

        assert (coupon.valid_from, coupon.valid_until) == (template.valid_from, template.valid_until)
        refused(CouponNotYetValid, validate, coupon_or_code=coupon, member=member, now=now)
        assert validate(coupon, member=member, now=now + dt.timedelta(days=3)).discount == Decimal("10.00")

    def test_the_same_key_returns_the_same_coupon(self, member, now):
        template = CouponTemplateFactory()
        first = coupon_issue(template=template, member=member, source=CouponSource.STAFF, now=now, idempotency_key="k")
        again = coupon_issue(template=template, member=member, source=CouponSource.STAFF, now=now, idempotency_key="k")

        assert again == first and Coupon.objects.count() == 1

    def test_the_same_key_for_another_member_or_template_is_refused(self, member, now):
        template = CouponTemplateFactory()
        coupon_issue(template=template, member=member, source=CouponSource.STAFF, now=now, idempotency_key="k")

        refused(IdempotencyKeyReused, coupon_issue, template=CouponTemplateFactory(), member=member,
                source=CouponSource.STAFF, now=now, idempotency_key="k")
        refused(IdempotencyKeyReused, coupon_issue, template=template, member=MemberFactory(),
                source=CouponSource.STAFF, now=now, idempotency_key="k")

    def test_inactive_templates_ended_templates_and_closed_members_are_refused(self, member, now):
        inactive = CouponTemplateFactory(is_active=False)
        ended = CouponTemplateFactory(valid_days=None, valid_until=now - dt.timedelta(days=1))
        kwargs = {"member": member, "source": CouponSource.STAFF, "now": now}

        exc = refused(CouponTemplateInactive, coupon_issue, template=inactive, idempotency_key="a", **kwargs)
        assert inactive.name in str(exc)
        refused(CouponTemplateInactive, coupon_issue, template=ended, idempotency_key="b", **kwargs)
        Member.objects.filter(pk=member.pk).update(status=MemberStatus.CLOSED)
        refused(MemberClosed, coupon_issue, template=CouponTemplateFactory(), idempotency_key="c", **kwargs)

    @pytest.mark.parametrize("bad", [
        {"idempotency_key": ""}, {"source": "GIFT"}, {"now": dt.datetime(2026, 3, 4, 10)},  # noqa: DTZ001
    ])
    def test_bad_input_is_refused(self, member, now, bad):
        kwargs = {"template": CouponTemplateFactory(), "member": member, "source": CouponSource.STAFF, "now": now,
                  "idempotency_key": "k", **bad}
        refused(InvalidInput, coupon_issue, **kwargs)


# ---- check and redeem ----


class TestDiscounts:
    def test_S9_spend_100_save_20_refuses_a_99_basket_with_the_reason_in_words(self, member, now):
        coupon = coupon_make(member=member, now=now, spend_save=True)

        exc = refused(CouponNotApplicable, validate, coupon_or_code=coupon, member=member, now=now, amount="99.00")
        assert "¥100.00" in str(exc) and "¥99.00" in str(exc)
        refused(CouponNotApplicable, redeem, coupon_or_code=coupon, member=member, now=now, amount="99.00")

    def test_S9_spend_100_save_20_on_a_120_basket_pays_100(self, member, now, store):
        coupon = coupon_make(member=member, now=now, spend_save=True)

        check = validate(coupon, member=member, store=store, now=now, amount="120.00")
        assert (check.discount, check.payable) == (Decimal("20.00"), Decimal("100.00"))
        assert "¥100.00" in str(check.message)
        redeemed = redeem(coupon, member=member, store=store, now=now, amount="120.00")
        assert redeemed.discount == Decimal("20.00")

    @pytest.mark.parametrize("amount,discount", [("100.00", "15.00"), ("33.33", "5.00"), ("400.00", "30.00")])
    def test_a_percentage_is_rounded_to_the_cent_and_capped(self, member, now, amount, discount):
        coupon = coupon_make(member=member, now=now, percent_off=True)  # 15%, at most ¥30
        check = validate(coupon, member=member, now=now, amount=amount)
        assert check.discount == Decimal(discount)
        assert check.payable == Decimal(amount) - Decimal(discount)

    def test_a_fixed_amount_never_exceeds_the_order(self, member, now):
        coupon = coupon_make(member=member, now=now, amount=Decimal("10.00"))
        check = validate(coupon, member=member, now=now, amount="6.50")
        assert (check.discount, check.payable) == (Decimal("6.50"), Decimal("0.00"))

    def test_a_free_item_takes_nothing_off_and_names_the_item(self, member, now, store):
        coupon = coupon_make(member=member, now=now, free_coffee=True)

        check = validate(coupon, member=member, now=now, amount="0")
        assert (check.discount, check.payable, check.free_item) == (Decimal("0.00"), Decimal("0.00"), "Americano")
        assert "Americano" in str(check.message)
        redeemed = redeem(coupon, member=member, store=store, now=now, amount="0", reference="R-9")
        assert (redeemed.discount, redeemed.redeemed_reference) == (Decimal("0.00"), "R-9")

    def test_money_off_needs_something_to_pay(self, member, now):
        coupon = coupon_make(member=member, now=now)
        refused(CouponNotApplicable, validate, coupon_or_code=coupon, member=member, now=now, amount="0")


class TestConditions:
    def test_a_store_list_limits_where_it_is_valid(self, member, now):
        here, there = StoreFactory(code="SH01", name="静安"), StoreFactory(code="SH02", name="徐汇")
        coupon = coupon_make(member=member, now=now, stores=["SH01"])

        exc = refused(CouponNotApplicable, validate, coupon_or_code=coupon, member=member, store=there, now=now)
        assert "静安 (SH01)" in str(exc)
        refused(CouponNotApplicable, validate, coupon_or_code=coupon, member=member, store=None, now=now)
        assert validate(coupon, member=member, store=here, now=now).discount == Decimal("10.00")

    def test_stacking_with_points_and_with_other_coupons(self, member, now):
        loner = coupon_make(member=member, now=now, stacks_with_points=False, stacks_with_coupons=False)
        social = coupon_make(member=member, now=now, stacks_with_points=True, stacks_with_coupons=True)

        exc = refused(CouponNotApplicable, validate, coupon_or_code=loner, member=member, now=now, with_points=True)
        assert "points" in str(exc)
        exc = refused(CouponNotApplicable, validate, coupon_or_code=loner, member=member, now=now, other_coupons=1)
        assert "other coupons" in str(exc)
        assert validate(loner, member=member, now=now).discount == Decimal("10.00")
        assert validate(social, member=member, now=now, with_points=True, other_coupons=2).discount == Decimal("10.00")

    def test_expired_by_time_or_by_schedule_used_and_void_coupons_are_refused(self, member, now):
        old = coupon_make(member=member, now=now - dt.timedelta(days=40), valid_days=7)
        swept = coupon_make(member=member, now=now, valid_days=7)
        Coupon.objects.filter(pk=swept.pk).update(status=CouponStatus.EXPIRED)
        used = coupon_make(member=member, now=now)
        redeem(used, member=member, now=now)
        void = coupon_make(member=member, now=now)
        Coupon.objects.filter(pk=void.pk).update(status=CouponStatus.VOID)

        exc = refused(CouponExpired, redeem, coupon_or_code=old, member=member, now=now)
        assert old.valid_until.astimezone(SHANGHAI).strftime("%Y-%m-%d") in str(exc)
        refused(CouponExpired, redeem, coupon_or_code=swept, member=member, now=now)
        refused(CouponAlreadyUsed, redeem, coupon_or_code=used, member=member, now=now)
        refused(CouponVoid, redeem, coupon_or_code=void, member=member, now=now)

    def test_validate_writes_nothing(self, member, now):
        coupon = coupon_make(member=member, now=now)
        before = rows()
        validate(coupon, member=member, now=now)
        assert rows() == before


class TestRedeem:
    def test_redeem_records_discount_store_reference_and_time(self, member, now, store):
        coupon = coupon_make(member=member, now=now - dt.timedelta(days=1))

        redeemed = redeem(coupon, member=member, store=store, now=now, amount="58.00", reference="POS-77")

        coupon.refresh_from_db()
        assert coupon == redeemed
        assert (coupon.status, coupon.discount, coupon.redeemed_store, coupon.redeemed_reference, coupon.redeemed_at) == (
            CouponStatus.REDEEMED, Decimal("10.00"), store, "POS-77", now)

    def test_a_second_redemption_is_refused_and_writes_nothing(self, member, now, store):
        coupon = coupon_make(member=member, now=now)
        redeem(coupon, member=member, store=store, now=now, reference="POS-1")

        refused(CouponAlreadyUsed, redeem, coupon_or_code=coupon, member=member, store=store, now=now, reference="POS-2")
        refused(CouponAlreadyUsed, redeem, coupon_or_code=coupon, member=None, store=store, now=now)

    def test_the_same_key_or_the_same_order_replays(self, member, now, store):
        by_key = coupon_make(member=member, now=now)
        first = redeem(by_key, member=member, store=store, now=now, key="till-1:42")
        assert redeem(by_key, member=member, store=store, now=now + dt.timedelta(seconds=5), key="till-1:42") == first

        by_reference = coupon_make(member=member, now=now)
        first = redeem(by_reference, member=member, store=store, now=now, reference="POS-9")
        again = redeem(by_reference, member=member, store=store, now=now, reference="POS-9")
        assert again == first and again.redeemed_at == now

    def test_another_members_coupon_is_refused_even_when_used(self, member, now):
        theirs = coupon_make(now=now)
        refused(CouponNotYours, redeem, coupon_or_code=theirs, member=member, now=now)
        redeem(theirs, now=now)  # at the counter without a card: the code is the proof
        refused(CouponNotYours, redeem, coupon_or_code=theirs, member=member, now=now)

    @pytest.mark.parametrize("bad,error", [
        ({"order_amount": "-1"}, InvalidInput), ({"order_amount": "1.005"}, InvalidInput),
        ({"order_amount": 9.5}, InvalidInput), ({"idempotency_key": " "}, InvalidInput),
        ({"reference": "x" * 65}, InvalidInput), ({"other_coupons": -1}, InvalidInput),
        ({"now": dt.datetime(2026, 3, 4, 10)}, InvalidInput),  # noqa: DTZ001
        ({"code": ""}, CouponInvalid), ({"code": None}, CouponInvalid), ({"code": "HELLO"}, CouponInvalid),
        ({"code": "ACDE-FGHJ-KMNP-QRTU"}, CouponInvalid),
    ])
    def test_bad_input_is_refused_with_a_clear_message(self, member, now, bad, error):
        coupon = coupon_make(member=member, now=now)
        kwargs = {"code": coupon.code, "member": member, "store": None, "order_amount": "10.00", "now": now,
                  "idempotency_key": "k", **bad}
        refused(error, coupon_redeem, **kwargs)


class TestExpiry:
    def test_expiry_marks_due_coupons_in_batches_and_is_safe_to_rerun(self, member, now):
        due = [coupon_make(member=member, now=now - dt.timedelta(days=10), valid_days=3) for _ in range(5)]
        used = coupon_make(member=member, now=now - dt.timedelta(days=10), valid_days=3)
        redeem(used, member=member, now=now - dt.timedelta(days=9))
        current = coupon_make(member=member, now=now, valid_days=3)

        assert coupons_expire_due(now=now, batch_size=2) == 5
        assert coupons_expire_due(now=now, batch_size=2) == 0

        assert set(Coupon.objects.filter(status=CouponStatus.EXPIRED).values_list("pk", flat=True)) == {c.pk for c in due}
        assert Coupon.objects.get(pk=used.pk).status == CouponStatus.REDEEMED
        assert Coupon.objects.get(pk=current.pk).status == CouponStatus.ISSUED

    def test_a_coupon_is_good_until_its_last_instant(self, member):
        coupon = coupon_make(member=member, now=local(2026, 3, 1, 9, 0), valid_days=1)
        last = coupon.valid_until

        assert coupons_expire_due(now=last) == 0
        assert validate(coupon, member=member, now=last).discount == Decimal("10.00")
        assert coupons_expire_due(now=last + dt.timedelta(microseconds=1)) == 1

    def test_the_task_and_its_schedule(self, member, now):
        from loyalty.management.commands.setup_periodic_tasks import SCHEDULES
        from rewards.tasks import coupons_expire_due_task

        coupon_make(member=member, now=timezone.now() - dt.timedelta(days=10), valid_days=2)
        assert coupons_expire_due_task.apply().get() == 1
        assert any(task == "rewards.tasks.coupons_expire_due_task" for task, _fields, _text in SCHEDULES.values())


# ---- S8: one code, fifty tills ----


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_S8_fifty_concurrent_redemptions_of_one_coupon_exactly_one_succeeds():
    from tests.loyalty.test_concurrency import run_concurrently

    store = StoreFactory()
    coupon = coupon_make(now=timezone.now())

    results = run_concurrently(50, lambda i: coupon_redeem(
        code=coupon.code, member=None, store=store, order_amount=Decimal("50.00"), now=timezone.now(),
        idempotency_key=f"till-{i}", reference=f"POS-{i}"))

    succeeded = [r for r in results if isinstance(r, Coupon)]
    refused_ = [r for r in results if isinstance(r, CouponAlreadyUsed)]
    assert len(succeeded) == 1, results
    assert len(refused_) == 49, [r for r in results if not isinstance(r, Coupon | CouponAlreadyUsed)]
    coupon.refresh_from_db()
    assert (coupon.status, coupon.redeemed_reference) == (CouponStatus.REDEEMED, succeeded[0].redeemed_reference)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_with_one_key_give_one_coupon():
    from tests.loyalty.test_concurrency import run_concurrently

    member, template = MemberFactory(), CouponTemplateFactory()
    results = run_concurrently(20, lambda i: coupon_issue(
        template=template, member=member, source=CouponSource.CAMPAIGN, now=timezone.now(),
        idempotency_key="campaign:spring:1").pk)

    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1 and Coupon.objects.count() == 1


# ---- admin ----


TEMPLATE_POST = {
    "name": "Spend ¥100 save ¥20", "name_zh_hans": "满100减20", "description": "On everything",
    "description_zh_hans": "全场通用", "kind": "SPEND_SAVE", "amount": "20.00", "percent": "", "max_discount": "",
    "free_item": "", "minimum_spend": "100.00", "stacks_with_points": "on", "valid_from_0": "", "valid_from_1": "",
    "valid_until_0": "", "valid_until_1": "", "valid_days": "30", "is_active": "on",
}


def png() -> SimpleUploadedFile:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return SimpleUploadedFile("coupon.png", buffer.getvalue(), content_type="image/png")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


class TestTemplateAdmin:
    def test_pages_load(self, admin_client, member, now):
        template = coupon_make(member=member, now=now).template
        for url in (reverse("admin:rewards_coupontemplate_changelist"), reverse("admin:rewards_coupontemplate_add"),
                    reverse("admin:rewards_coupontemplate_change", args=[template.pk])):
            assert admin_client.get(url).status_code == 200

    def test_a_template_in_both_languages_with_an_image_and_stores(self, admin_client, media):
        StoreFactory(code="SH01", name="静安")
        response = admin_client.post(reverse("admin:rewards_coupontemplate_add"),
                                     {**TEMPLATE_POST, "stores": ["SH01"], "image": png()})

        assert response.status_code == 302, response.context["adminform"].form.errors
        template = CouponTemplate.objects.get()
        assert (template.name_zh_hans, template.description_zh_hans, template.kind, template.amount,
                template.minimum_spend, template.stores, template.valid_days) == (
            "满100减20", "全场通用", CouponKind.SPEND_SAVE, Decimal("20.00"), Decimal("100.00"), ["SH01"], 30)
        assert template.image.name.startswith("coupons/")
        assert admin_client.get(reverse("admin:rewards_coupontemplate_changelist")).status_code == 200

    @pytest.mark.parametrize("changes,field", [
        ({"kind": "FIXED", "amount": ""}, "amount"),
        ({"kind": "PERCENT", "amount": "", "minimum_spend": "0"}, "percent"),
        ({"kind": "PERCENT", "percent": "10"}, "amount"),
        ({"kind": "FREE_ITEM", "amount": ""}, "free_item"),
        ({"kind": "FIXED", "max_discount": "5"}, "max_discount"),
        ({"amount": "100.00"}, "amount"),
        ({"valid_days": "", "valid_until_0": ""}, "valid_until"),
        ({"valid_until_0": "2030-01-01", "valid_until_1": "00:00:00"}, "valid_days"),
    ])
    def test_kind_fields_and_validity_are_checked_and_nothing_is_saved(self, admin_client, changes, field):
        response = admin_client.post(reverse("admin:rewards_coupontemplate_add"), {**TEMPLATE_POST, **changes})

        assert response.status_code == 200
        assert field in response.context["adminform"].form.errors
        assert CouponTemplate.objects.count() == 0


class TestCouponAdmin:
    def test_list_search_by_code_or_member_and_the_read_only_page_with_qr(self, admin_client, member, now):
        mine = coupon_make(member=member, now=now)
        theirs = coupon_make(now=now)
        url = reverse("admin:rewards_coupon_changelist")

        response = admin_client.get(url, {"q": coupon_code_format(mine.code).lower()})
        assert list(response.context["cl"].result_list) == [mine]
        response = admin_client.get(url, {"q": member.phone})
        assert list(response.context["cl"].result_list) == [mine]
        response = admin_client.get(url, {"q": code_typo(theirs.code)})
        assert list(response.context["cl"].result_list) == []
        assert admin_client.get(url, {"status__exact": "ISSUED"}).status_code == 200
        page = admin_client.get(reverse("admin:rewards_coupon_change", args=[mine.pk]))
        assert page.status_code == 200 and b"<svg" in page.content
        assert admin_client.post(reverse("admin:rewards_coupon_change", args=[mine.pk]), {}).status_code == 403

    def test_counter_checks_then_redeems_once(self, admin_client, member, now, store):
        coupon = coupon_make(member=member, now=timezone.now() - dt.timedelta(hours=1), spend_save=True)
        url = reverse("admin:rewards_coupon_counter")
        assert admin_client.get(url).status_code == 200
        form = {"code": coupon_code_format(coupon.code), "member": member.phone, "store": store.pk,
                "order_amount": "120.00", "reference": "R1", "token": "t" * 32}

        checked = admin_client.post(url, {**form, "check": "Check"})
        assert checked.status_code == 200 and checked.context["check"].discount == Decimal("20.00")
        assert Coupon.objects.get().status == CouponStatus.ISSUED

        redeemed = admin_client.post(url, {**form, "redeem": "Redeem"})
        assert redeemed.context["redeemed"].discount == Decimal("20.00")
        coupon.refresh_from_db()
        assert (coupon.status, coupon.redeemed_store, coupon.redeemed_reference) == (CouponStatus.REDEEMED, store, "R1")

        again = admin_client.post(url, {**form, "redeem": "Redeem", "token": "u" * 32, "reference": "R2"})
        assert "already been used" in str(again.context["form"].non_field_errors())

    def test_counter_shows_refusals(self, admin_client, member, now):
        url = reverse("admin:rewards_coupon_counter")
        coupon = coupon_make(member=member, now=timezone.now(), spend_save=True)
        response = admin_client.post(url, {"code": coupon.code, "member": "", "order_amount": "99.00", "token": "x",
                                           "check": "Check"})
        assert "¥100.00" in str(response.context["form"].non_field_errors())
        response = admin_client.post(url, {"code": code_typo(coupon.code), "order_amount": "120", "token": "x"})
        assert "not valid" in str(response.context["form"].non_field_errors())


class TestBulkIssue:
    def csv(self, text: str) -> SimpleUploadedFile:
        return SimpleUploadedFile("members.csv", text.encode("utf-8-sig"), content_type="text/csv")

    def test_the_page_loads(self, admin_client):
        assert admin_client.get(reverse("admin:rewards_coupon_bulk_issue")).status_code == 200

    def test_by_csv_reports_bad_rows_and_a_resubmit_issues_nothing_twice(self, admin_client, now):
        template = CouponTemplateFactory()
        a, b, c = MemberFactory(), MemberFactory(), MemberFactory()
        url = reverse("admin:rewards_coupon_bulk_issue")
        upload = f"member_number\n{a.member_number}\n{b.phone}\nnobody\n{a.phone}\n\n{c.member_number}\n"

        preview = admin_client.post(url, {"action": "preview", "template": template.pk, "mode": "csv",
                                          "csv_file": self.csv(upload)})
        assert preview.status_code == 200
        assert preview.context["count"] == 3
        assert [(r.row, r.outcome) for r in preview.context["problems"]] == [(4, "error"), (5, "skipped")]
        assert Coupon.objects.count() == 0  # a preview issues nothing

        done = admin_client.post(url, {"action": "issue", "plan": preview.context["plan"]})
        assert done.context["counts"] == {"issued": 3, "skipped": 1, "error": 1}
        assert [(r.row, r.outcome) for r in done.context["rows"]] == [
            (2, "issued"), (3, "issued"), (4, "error"), (5, "skipped"), (7, "issued")]
        assert "No member" in done.context["rows"][2].message
        coupons = Coupon.objects.order_by("member_id")
        assert [(x.member_id, x.source, x.template_id) for x in coupons] == [
            (m.pk, CouponSource.BULK, template.pk) for m in (a, b, c)]
        batch = done.context["batch"]
        assert {x.idempotency_key for x in coupons} == {f"bulk:{batch}:{m.pk}" for m in (a, b, c)}

        again = admin_client.post(url, {"action": "issue", "plan": preview.context["plan"]})
        assert again.context["counts"] == {"issued": 0, "skipped": 4, "error": 1}
        assert Coupon.objects.count() == 3

    def test_by_segment_of_status_store_and_tier(self, admin_client, now):
        template = CouponTemplateFactory()
        home = StoreFactory(code="SH01")
        gold = Tier.objects.create(code="gold", name="金卡", rank=1, spend_threshold=Decimal(1000))
        wanted = [MemberFactory(home_store=home) for _ in range(3)]
        MemberFactory(home_store=home)  # no tier
        MemberFactory()  # another store
        for m in wanted:
            MemberTier.objects.update_or_create(member=m, defaults={"tier": gold, "since": now})
        url = reverse("admin:rewards_coupon_bulk_issue")

        preview = admin_client.post(url, {"action": "preview", "template": template.pk, "mode": "segment",
                                          "status": "ACTIVE", "home_store": home.pk, "tier": gold.pk})
        assert preview.context["count"] == 3
        done = admin_client.post(url, {"action": "issue", "plan": preview.context["plan"]})
        assert done.context["counts"] == {"issued": 3, "skipped": 0, "error": 0}
        assert set(Coupon.objects.values_list("member_id", flat=True)) == {m.pk for m in wanted}

    def test_a_tampered_plan_is_refused(self, admin_client):
        response = admin_client.post(reverse("admin:rewards_coupon_bulk_issue"), {"action": "issue", "plan": "x:y"})
        assert response.status_code == 200 and Coupon.objects.count() == 0

    def test_a_csv_without_file_or_template_is_refused(self, admin_client):
        response = admin_client.post(reverse("admin:rewards_coupon_bulk_issue"), {"action": "preview", "mode": "csv"})
        assert {"template", "csv_file"} <= set(response.context["form"].errors)


class TestRedeemIdempotencyKey:
    def test_the_same_key_with_another_order_is_refused_and_writes_nothing(self, member, now, store):
        from loyalty.exceptions import IdempotencyKeyReused

        coupon = coupon_make(member=member, now=now)
        other = coupon_make(member=member, now=now)
        redeem(coupon, member=member, store=store, now=now, key="till-1:7")

        refused(IdempotencyKeyReused, redeem, coupon_or_code=other, member=member, store=store, now=now, key="till-1:7")
        other.refresh_from_db()
        assert other.status == "ISSUED"
