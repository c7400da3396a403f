"""Portal fixtures: an activated member and a browser-like client signed in as them."""

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone

from loyalty.services import member_enrol
from members.models import MemberLogin
from members.portal import SESSION_EPOCH, SESSION_MEMBER

PORTAL_PASSWORD = "Jade-Lantern-42"


def login_activate(member, password: str = PORTAL_PASSWORD) -> MemberLogin:
    login, _ = MemberLogin.objects.update_or_create(
        member=member, defaults={"password": make_password(password), "activated_at": timezone.now()}
    )
    return login


def client_for(member) -> Client:
    """A client whose session is signed in to the portal as ``member`` (as sign-in would leave it)."""
    login = login_activate(member) if not MemberLogin.objects.filter(pk=member.pk, password__gt="").exists() else member.login
    client = Client()
    session = client.session
    session[SESSION_MEMBER] = member.pk
    session[SESSION_EPOCH] = login.session_epoch
    session.save()
    return client


@pytest.fixture
def portal_member(db):
    member = member_enrol(phone="+8613900000001", name="Lin Mei", now=timezone.now())
    login_activate(member)
    return member


@pytest.fixture
def other_member(db):
    member = member_enrol(phone="+8613900000002", name="Zhao Lei", now=timezone.now())
    login_activate(member)
    return member


@pytest.fixture
def portal_client(portal_member) -> Client:
    return client_for(portal_member)
