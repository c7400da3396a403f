"""An SMS backend for the browser tests: it keeps every message, so a test can read the one-time code."""

import re
import threading


class Outbox:
    """``PORTAL_SMS_BACKEND = "tests.browser.sms.Outbox"``: messages are kept in ``Outbox.messages``."""

    messages: list[tuple[str, str]] = []
    _lock = threading.Lock()  # the live server sends from its own thread

    def send(self, *, phone: str, text: str) -> None:
        with Outbox._lock:
            Outbox.messages.append((phone, text))


def code_sent_to(phone: str) -> str:
    """The 6-digit code in the last message sent to ``phone`` (E.164)."""
    texts = [text for to, text in Outbox.messages if to == phone]
    assert texts, f"no SMS was sent to {phone}"
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", texts[-1])
    assert found, f"no 6-digit code in the SMS {texts[-1]!r}"
    return found.group(1)
