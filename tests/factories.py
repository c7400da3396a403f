"""Factories. Members are enrolled through the real service, so their accounts exist."""

import datetime as dt

import factory
from django.utils import timezone

from loyalty.services import member_enrol
from members.models import Member, Store


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:03d}")
    name = factory.Sequence(lambda n: f"Store {n}")


class MemberFactory(factory.Factory):
    class Meta:
        model = Member

    phone = factory.Sequence(lambda n: f"+86138{n:08d}")
    name = factory.Faker("name")
    birthday = None
    joined_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))

    @classmethod
    def _create(cls, model_class, *, joined_at, **kwargs):
        return member_enrol(now=joined_at, **kwargs)

    _build = _create
