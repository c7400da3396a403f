"""Portal quality rules (issue 6 §8), checked on every portal page in both languages for a member with rich data.

- ``<html lang=…>`` is the active language; no page is a server error in either language (HTMX requests too);
- HTML + the CSS and JavaScript it links stay under 100 KB (images excluded);
- every visible ``<input>``, ``<select>`` and ``<textarea>`` has a label (``<label for>``, a wrapping
  ``<label>``, or ``aria-label``/``aria-labelledby``); headings in order; actions are buttons (or forms);
- reading pages work without JavaScript: the plain GET response already holds the content.
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.browser.data import program_setup, rich_member
from tests.portal.conftest import client_for
from tests.portal.test_access import OTHERS, PORTAL, PUBLIC, SHARED, SHARED_KWARGS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

LANGUAGES = ["en", "zh-hans"]
MAX_BYTES = 100 * 1024
NON_FIELD_INPUTS = {"hidden", "submit", "button", "image", "reset"}
ACTION_ATTRIBUTES = ("onclick", "hx-post", "hx-put", "hx-patch", "hx-delete")


@pytest.fixture(autouse=True)
def plain_static(settings):
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture
def rich(portal_member):
    return rich_member(portal_member, program_setup())


def member_page_urls(rich) -> dict[str, str]:
    """Every signed-in portal page, by URL name (ids: the member's own objects, or shared ones)."""
    urls = {}
    for name, converters in PORTAL:
        if name in PUBLIC:
            continue
        if not converters:
            urls[name] = reverse(f"portal:{name}")
        elif name in SHARED:
            urls[name] = reverse(f"portal:{name}", kwargs=SHARED_KWARGS[name](rich.program))
        else:
            urls[name] = reverse(f"portal:{name}", kwargs=OTHERS[name](rich)[0])
    return urls


class Page(HTMLParser):
    """What the checks need from a page: its lang, linked assets, form fields and their labels."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.lang = None
        self.assets: list[str] = []
        self.fields: list[dict] = []
        self.label_for: set[str] = set()
        self.labelled_ids: set[str] = set()
        self.headings: list[int] = []
        self.fake_buttons: list[str] = []  # actions on elements that are not buttons or forms
        self._in_label = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("button", "form") and any(k in a for k in ACTION_ATTRIBUTES):
            self.fake_buttons.append(f"<{tag}>")
        if tag == "html":
            self.lang = a.get("lang")
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        elif tag == "link" and "stylesheet" in (a.get("rel") or "").split():
            self.assets.append(a.get("href") or "")
        elif tag == "script" and a.get("src"):
            self.assets.append(a["src"])
        elif tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and (a.get("type") or "text").lower() in NON_FIELD_INPUTS:
                return
            self.fields.append({"tag": tag, "name": a.get("name"), "id": a.get("id"), "in_label": self._in_label > 0,
                                "aria": bool(a.get("aria-label") or a.get("aria-labelledby"))})

    def handle_endtag(self, tag):
        if tag == "label" and self._in_label:
            self._in_label -= 1

    def unlabelled(self) -> list[str]:
        return [f"<{f['tag']} name={f['name']!r}>" for f in self.fields
                if not (f["in_label"] or f["aria"] or (f["id"] and f["id"] in self.label_for))]


def asset_bytes(url: str) -> int:
    assert url.startswith(settings.STATIC_URL), f"{url}: assets come from our static files (no CDN)"
    path = finders.find(url[len(settings.STATIC_URL):].split("?")[0])
    assert path, f"{url}: not found in the static files"
    return Path(path).stat().st_size


def page_problems(name: str, url: str, response, language: str) -> list[str]:
    if response.status_code != 200:
        return [f"{name} {url}: status {response.status_code}"]
    html = response.content.decode()
    page = Page(html)
    problems = []
    if page.lang != language:
        problems.append(f"{name}: <html lang={page.lang!r}>, expected {language!r}")
    total = len(response.content) + sum(asset_bytes(u) for u in page.assets)
    if total >= MAX_BYTES:
        problems.append(f"{name}: {total:,} bytes of HTML+CSS+JS (limit {MAX_BYTES:,})")
    if unlabelled := page.unlabelled():
        problems.append(f"{name}: fields without a label: {', '.join(unlabelled)}")
    if page.fake_buttons:
        problems.append(f"{name}: actions on elements that are not buttons: {', '.join(page.fake_buttons)}")
    levels = page.headings
    skipped = [f"h{a}→h{b}" for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
    if levels.count(1) != 1 or levels[0] != 1 or skipped:
        problems.append(f"{name}: headings out of order (one h1 first, no level skipped): "
                        f"{' '.join(f'h{n}' for n in levels)}")
    return problems


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_member_page_in_both_languages(language, rich):
    client = client_for(rich.member)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    problems, checked = [], []
    for name, url in member_page_urls(rich).items():
        response = client.get(url)
        if response.status_code == 405:  # an action that only takes POST (sign out everywhere)
            continue
        checked.append(name)
        problems += page_problems(name, url, response, language)
        htmx = client.get(url, HTTP_HX_REQUEST="true")
        if htmx.status_code >= 500:
            problems.append(f"{name}: HTMX request is a {htmx.status_code}")
    assert {"home", "history", "rewards", "wallet", "profile"} <= set(checked)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_public_page_in_both_languages(language, client, db):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    problems = []
    for name in sorted(PUBLIC):
        url = reverse(f"portal:{name}")
        response = client.get(url, follow=True)
        if response.status_code == 405:  # sign-out takes POST only
            continue
        problems += page_problems(name, url, response, language)
    assert not problems, "\n".join(problems)


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# What each reading page must already show in its plain GET (no JavaScript ran): URL name → strings.
CONTENT = {
    "home": lambda rich: ["Silver", "Gold"],
    "history": lambda rich: ["Parking"],
    "history_entry": lambda rich: ["Double points"],
    "rewards": lambda rich: ["Cinema ticket"],
    "reward": lambda rich: ["Cinema ticket", "300"],
    "redemptions": lambda rich: ["Cinema ticket"],
    "redemption": lambda rich: [rich.redemption.pickup_code],
    "coupons": lambda rich: [rich.coupons[0].template.name],
    "coupon": lambda rich: [rich.coupons[0].template.name],
    "draws": lambda rich: ["Spring draw"],
    "draw": lambda rich: ["Spring draw"],
    "wallet": lambda rich: ["Top up 100, get 20"],
    "how_to_earn": lambda rich: ["Silver", "Gold", "Diamond", "Double points"],
    "profile": lambda rich: [f'value="{rich.member.name}"'],  # the name field, filled in
}


def test_reading_pages_show_their_content_without_javascript(rich):
    client = client_for(rich.member)
    urls = member_page_urls(rich)
    missing = []
    for name, strings in CONTENT.items():
        if name not in urls:
            missing.append(f"{name}: no such portal page")
            continue
        response = client.get(urls[name])
        assert response.status_code == 200, (name, response.status_code)
        html = response.content.decode()
        text = _text(html)
        missing += [f"{name}: {s!r} not in the page" for s in strings(rich) if s not in (html if "=" in s else text)]
    assert not missing, "\n".join(missing)
