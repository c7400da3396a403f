"""Sending text messages (SMS) to members through a pluggable backend.

``PORTAL_SMS_BACKEND`` names the backend class (dotted path). The default, ``LogBackend``, writes the
message to the log: enough for development and for the demo. A real provider is a class with a
``send(*, phone, text)`` method; it may raise ``SmsNotSent`` when the provider refuses the message.
"""

import logging

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("members.sms")

DEFAULT_BACKEND = "members.sms.LogBackend"


class SmsNotSent(Exception):
    """The provider refused or could not take the message."""


class BaseBackend:
    def send(self, *, phone: str, text: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LogBackend(BaseBackend):
    """Writes the message to the ``members.sms`` log (INFO). Sends nothing."""

    def send(self, *, phone: str, text: str) -> None:
        logger.info("SMS to %s: %s", phone, text)


class MemoryBackend(BaseBackend):
    """Keeps messages in ``MemoryBackend.outbox`` (a list of ``(phone, text)``): for tests."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, phone: str, text: str) -> None:
        MemoryBackend.outbox.append((phone, text))


def sms_backend_get() -> BaseBackend:
    return import_string(getattr(settings, "PORTAL_SMS_BACKEND", DEFAULT_BACKEND))()


def sms_send(*, phone: str, text: str) -> None:
    """Send ``text`` to ``phone`` (E.164) through the configured backend."""
    sms_backend_get().send(phone=phone, text=text)
