"""The demo member for ``make run``: created once through the services, its login printed every run."""

import io

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from loyalty.models import MemberTier, Refund, Transfer, TransferCode
from loyalty.selectors import member_points_summary
from members.models import MemberLogin
from rewards.demo import DEMO_MEMBER_PHONE, demo_member_get
from rewards.models import Coupon, DrawCampaign, Reward, TopUp, TopUpBonusRule
from rewards.services.wallet import wallet_balance

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def run() -> str:
    out = io.StringIO()
    call_command("seed_demo_member", stdout=out)
    return out.getvalue()


def rows() -> tuple:
    return (Transfer.objects.count(), Reward.objects.count(), Coupon.objects.count(), DrawCampaign.objects.count(),
            TopUp.objects.count(), TopUpBonusRule.objects.count(), MemberLogin.objects.count())


def test_creates_a_rich_demo_member_once_and_prints_the_login_each_time(var_dir):
    first = run()
    password = (var_dir / "demo-member-login.txt").read_text().strip()
    assert f"phone: {DEMO_MEMBER_PHONE}  password: {password}" in first
    assert "Member portal: http://127.0.0.1:8000/portal/" in first
    member = demo_member_get()
    assert check_password(password, MemberLogin.objects.get(pk=member.pk).password)

    now = timezone.now()
    summary = member_points_summary(member=member, now=now)
    assert summary.available > 0 and summary.expiring_30d > 0
    state = MemberTier.objects.select_related("tier").get(member=member)
    assert 0 < state.tier.rank  # in a tier above the entry one, with a tier above it
    from loyalty.models import Tier

    assert Tier.objects.filter(rank__gt=state.tier.rank).exists()
    codes = set(Transfer.objects.filter(member=member).values_list("code", flat=True))
    assert {TransferCode.EARN, TransferCode.REVERSAL, TransferCode.ADJUST, TransferCode.EXPIRE} <= codes
    assert Refund.objects.filter(purchase__member=member).exists()
    assert Transfer.objects.filter(member=member, code=TransferCode.EARN).count() > 40
    assert Coupon.objects.filter(member=member).count() == 2
    costs = sorted(Reward.objects.values_list("points_cost", flat=True))
    assert costs[0] <= summary.available < costs[-1]  # one affordable, one not
    assert Reward.objects.filter(tiers__isnull=False).exists()
    assert DrawCampaign.objects.get().prizes.count() >= 3
    assert wallet_balance(member=member).total > 0 and TopUp.objects.filter(member=member).exists()

    before = rows()
    second = run()
    assert rows() == before
    assert f"password: {password}" in second and "Created" not in second

    client = Client()
    response = client.post("/portal/sign-in/", {"phone": DEMO_MEMBER_PHONE, "password": password})
    assert response.status_code == 302 and client.get("/portal/me/").status_code == 200


def test_a_changed_password_is_left_alone(var_dir):
    run()
    (var_dir / "demo-member-login.txt").write_text("something-else\n")
    output = run()
    assert "password: unchanged" in output and "something-else" not in output
