"""Object-level access in the portal: a member never sees or acts on another member's data.

Every URL of the ``portal`` namespace is collected from config/portal_urls.py. Each one that takes an id
must be listed in ``OTHERS`` (how to get another member's object for it) or in ``SHARED`` (ids of things
every member may see, such as catalogue rewards, with the reason); a new id-taking URL in neither fails
``test_every_id_url_is_covered``. Every page that is not in ``PUBLIC`` must send anonymous visitors to
sign-in (HTMX requests get ``HX-Redirect``).
"""

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, reverse

from config import portal_urls
from tests.browser.data import program_setup, rich_member
from tests.portal.conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

# Pages anyone may open without signing in.
PUBLIC = {"sign_in", "sign_out", "activate", "activate_code", "reset", "reset_code"}

# URL name → function(rich data of the *other* member) → list of URL kwargs naming that member's objects.
OTHERS = {
    "history_entry": lambda rich: [{"transfer_id": t.pk} for t in rich.transfers]
    + [{"transfer_id": t.pk} for t in _wallet_transfers(rich.member)],
    "redemption": lambda rich: [{"redemption_id": rich.redemption.pk}],
    "redemption_cancel": lambda rich: [{"redemption_id": rich.redemption.pk}],
    "coupon": lambda rich: [{"coupon_id": c.pk} for c in rich.coupons],
}


def _token(purpose: str, field: str):
    """POST data with a confirmation token that is valid for the signed-in member and the target id: only the
    ownership check can refuse it (a tampered or replayed form)."""

    def data(member, kwargs) -> dict:
        from rewards.forms import confirm_token_new

        return {"token": confirm_token_new(member=member, purpose=purpose, target=kwargs[field])}

    return data


# URL name → POST data for the attempt (default: a junk form).
POST_DATA = {"redemption_cancel": _token("cancel", "redemption_id")}

# URL name → why its id is not a member's own object (everyone may open it; an unknown id is still a 404).
SHARED = {
    "reward": "a catalogue reward: every member sees the catalogue",
    "draw": "a lucky draw campaign: open to every member",
}
SHARED_KWARGS = {
    "reward": lambda program: {"reward_id": program.reward.pk},
    "draw": lambda program: {"campaign_id": program.campaign.pk},
}

APPS = ("members", "loyalty", "rewards", "campaigns", "notifications")


def _patterns(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and p.name:
            yield p.name, p.pattern.converters if hasattr(p.pattern, "converters") else {}, p


PORTAL = [(name, dict(converters)) for name, converters, _p in _patterns(portal_urls.urlpatterns)]
ID_URLS = sorted(name for name, converters in PORTAL if converters)
MEMBER_PAGES = sorted(name for name, _c in PORTAL if name not in PUBLIC)


def _wallet_transfers(member):
    from loyalty.models import Transfer, Unit

    return list(Transfer.objects.filter(member=member).exclude(unit=Unit.POINTS)[:2])


def _state(member_pks) -> dict:
    """Row counts of every model of the project's apps, and every field of the rows that name these members."""
    state = {}
    for app in APPS:
        for model in apps.get_app_config(app).get_models():
            state[model._meta.label] = model.objects.count()
            names = {f.name for f in model._meta.concrete_fields}
            if "member" in names:
                state[model._meta.label + " rows"] = sorted(
                    model.objects.filter(member__in=member_pks).values_list(*sorted(n for n in names if n != "updated_at")),
                    key=repr,
                )
    from loyalty.models import Account

    state["accounts"] = sorted(Account.objects.filter(member__in=member_pks).values_list("pk", "credits_posted",
                                                                                        "debits_posted"))
    return state


@pytest.fixture
def world(portal_member, other_member):
    program = program_setup()
    mine = rich_member(portal_member, program, purchases=3)
    theirs = rich_member(other_member, program, purchases=3)
    return program, mine, theirs


def test_portal_urls_were_collected():
    names = {name for name, _c in PORTAL}
    assert {"home", "history", "rewards", "wallet", "profile", "sign_in"} <= names
    assert ID_URLS, "no id-taking portal URL found: the collection is broken"


def test_every_id_url_is_covered():
    unknown = [name for name in ID_URLS if name not in OTHERS and name not in SHARED]
    assert not unknown, (f"portal URL(s) {unknown} take an id: add them to OTHERS in {__file__} (how to get another "
                         "member's object) or to SHARED (with the reason every member may open it)")
    assert set(SHARED) == set(SHARED_KWARGS)
    stale = (set(OTHERS) | set(SHARED)) - set(ID_URLS)
    assert not stale, f"{stale} are no longer id-taking portal URLs: remove them from {__file__}"


@pytest.mark.parametrize("name", [n for n in ID_URLS if n in OTHERS])
def test_another_members_object_is_a_404_and_nothing_changes(name, world, portal_member, other_member):
    _program, mine, theirs = world
    client = client_for(portal_member)
    own = OTHERS[name](mine)[0]
    assert client.get(reverse(f"portal:{name}", kwargs=own)).status_code == 200, "the member's own object must open"
    targets = OTHERS[name](theirs)
    assert targets
    before = _state([portal_member.pk, other_member.pk])
    for kwargs in targets:
        url = reverse(f"portal:{name}", kwargs=kwargs)
        assert client.get(url).status_code == 404, url
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 404, url
        data = POST_DATA[name](portal_member, kwargs) if name in POST_DATA else {"confirm": "1", "token": "x"}
        posted = client.post(url, data, HTTP_HX_REQUEST="true")
        assert posted.status_code in (404, 405), (url, posted.status_code)  # 405: a read-only page
        assert client.post(url).status_code in (404, 405), url
    assert _state([portal_member.pk, other_member.pk]) == before


@pytest.mark.parametrize("name", [n for n in ID_URLS if n in SHARED])
def test_shared_object_opens_and_an_unknown_id_is_a_404(name, world, portal_member):
    program, _mine, _theirs = world
    client = client_for(portal_member)
    kwargs = SHARED_KWARGS[name](program)
    assert client.get(reverse(f"portal:{name}", kwargs=kwargs)).status_code == 200
    missing = {k: 10**9 for k in kwargs}
    before = _state([portal_member.pk])
    assert client.get(reverse(f"portal:{name}", kwargs=missing)).status_code == 404
    assert client.post(reverse(f"portal:{name}", kwargs=missing), {"confirm": "1"}).status_code in (404, 405)
    assert _state([portal_member.pk]) == before


def _url_for(name, mine, program) -> str:
    converters = dict(PORTAL)[name]
    if not converters:
        return reverse(f"portal:{name}")
    kwargs = SHARED_KWARGS[name](program) if name in SHARED else OTHERS[name](mine)[0]
    return reverse(f"portal:{name}", kwargs=kwargs)


@pytest.mark.parametrize("name", MEMBER_PAGES)
def test_anonymous_is_sent_to_sign_in(name, world, client):
    program, mine, _theirs = world
    url = _url_for(name, mine, program)
    sign_in = reverse("portal:sign_in")
    before = _state([mine.member.pk])
    response = client.get(url)
    if response.status_code == 405:  # a POST-only action (e.g. sign out everywhere)
        response = client.post(url)
    assert response.status_code == 302, (url, response.status_code)
    assert response["Location"].startswith(sign_in), response["Location"]
    htmx = client.get(url, HTTP_HX_REQUEST="true")
    if htmx.status_code == 405:
        htmx = client.post(url, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 204 and htmx["HX-Redirect"] == sign_in, (url, htmx.status_code)
    posted = client.post(url, {"confirm": "1"})
    assert posted.status_code in (302, 405), (url, posted.status_code)
    assert _state([mine.member.pk]) == before


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_pages_need_no_sign_in(name, client, db):
    response = client.get(reverse(f"portal:{name}"))
    assert response.status_code in (200, 302, 405), (name, response.status_code)  # sign-out is POST only
    if response.status_code == 302:  # e.g. "enter the code" before a code was asked for: back to step one
        assert not response["Location"].startswith(reverse("portal:sign_in")), response["Location"]


@pytest.mark.parametrize("name", sorted(POST_DATA))
def test_the_attack_form_works_on_the_members_own_object(name, world, portal_member):
    """The POST data used above is a valid form: on the member's own object it does act (so the 404 for the
    other member's object comes from the ownership check, not from a broken form)."""
    _program, mine, _theirs = world
    client = client_for(portal_member)
    kwargs = OTHERS[name](mine)[0]
    before = _state([portal_member.pk])
    response = client.post(reverse(f"portal:{name}", kwargs=kwargs), POST_DATA[name](portal_member, kwargs))
    assert response.status_code == 302, response.status_code
    assert _state([portal_member.pk]) != before
