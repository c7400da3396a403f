"""Factories for spending: coupon templates (model rows), coupons (issued through ``coupon_issue``), settings."""

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from rewards.models import CouponKind, CouponSource, CouponTemplate, SpendingSettings
from tests.factories import MemberFactory

_keys = iter(range(1, 10**9))


class CouponTemplateFactory(factory.django.DjangoModelFactory):
    """A ¥10-off coupon valid 30 days from issue; pass ``kind`` and its own fields for other kinds."""

    class Meta:
        model = CouponTemplate

    name = factory.Sequence(lambda n: f"¥10 off #{n}")
    name_zh_hans = factory.Sequence(lambda n: f"10元券 #{n}")
    kind = CouponKind.FIXED
    amount = Decimal("10.00")
    valid_days = 30

    class Params:
        spend_save = factory.Trait(kind=CouponKind.SPEND_SAVE, name="Spend ¥100 save ¥20", name_zh_hans="满100减20",
                                   amount=Decimal("20.00"), minimum_spend=Decimal("100.00"))
        percent_off = factory.Trait(kind=CouponKind.PERCENT, name="15% off", name_zh_hans="85折", amount=None,
                                    percent=Decimal("15.00"), max_discount=Decimal("30.00"))
        free_coffee = factory.Trait(kind=CouponKind.FREE_ITEM, name="Free coffee", name_zh_hans="免费咖啡", amount=None,
                                  free_item="Americano")


def coupon_make(*, template: CouponTemplate | None = None, member=None, now: dt.datetime | None = None,
                source: str = CouponSource.STAFF, key: str | None = None, **template_fields):
    """Issue a coupon through the real service (a template is made from ``template_fields`` when not given)."""
    from rewards.services.coupons import coupon_issue

    return coupon_issue(
        template=template or CouponTemplateFactory(**template_fields), member=member or MemberFactory(),
        source=source, now=now or timezone.now(), idempotency_key=key or f"test-coupon-{next(_keys)}",
    )


def code_typo(code: str, position: int = 3) -> str:
    """The code with one character replaced by the next one in the alphabet (a typical typo)."""
    from members.services import UNAMBIGUOUS_ALPHABET

    wrong = UNAMBIGUOUS_ALPHABET[(UNAMBIGUOUS_ALPHABET.index(code[position]) + 1) % len(UNAMBIGUOUS_ALPHABET)]
    return code[:position] + wrong + code[position + 1:]


def spending_set(**fields) -> SpendingSettings:
    """Change the spending settings (validated like the admin would)."""
    from rewards.services.payments import spending_settings_get

    settings = spending_settings_get()
    for name, value in fields.items():
        setattr(settings, name, value)
    settings.full_clean()
    settings.save()
    return settings
