"""Browser tests: Playwright (sync API) driving Debian's Chromium (/usr/bin/chromium, headless) against
pytest-django's ``live_server``, at a phone's size (390×844). Screenshots go to artifacts/screenshots/.

Never ``playwright install``: the browser is the system's. Without /usr/bin/chromium these tests skip
and say how to install it (CI installs it in .ci/run).
"""

import itertools
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

_shot_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's build with "
                    "`apt-get install -y chromium chromium-driver` (CI does; never `playwright install`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the dev extra: make install-dev")
    playwright = sync_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def browser_settings(settings):
    """Plain static files (no manifest), a fast hasher, and an SMS backend that keeps the messages."""
    from tests.browser.sms import Outbox

    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.PORTAL_SMS_BACKEND = "tests.browser.sms.Outbox"
    Outbox.messages.clear()
    return settings


class Phone:
    """One browser page at 390×844 on the live server, with ``shot(name)`` for a full-page screenshot."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.shots: list[Path] = []
        self.errors: list[str] = []
        self.too_wide: list[str] = []  # pages wider than the phone (a sideways scroll)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("response", lambda r: r.status >= 500 and self.errors.append(f"{r.status} {r.url}"))

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return response

    def shot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{next(_shot_numbers):02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        width = self.page.evaluate("document.documentElement.scrollWidth")
        if width > VIEWPORT["width"]:
            self.too_wide.append(f"{name} ({self.page.url}): {width}px wide")
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path


@pytest.fixture
def phone(browser, live_server, browser_settings):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, is_mobile=True, has_touch=True,
                                  locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield Phone(page, live_server.url)
    context.close()
