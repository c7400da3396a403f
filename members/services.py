"""Pure helpers for member identity: phone normalisation and unguessable codes."""

import secrets

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes read aloud or typed at a counter stay unambiguous.
UNAMBIGUOUS_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"


def phone_normalise(*, phone: str, region: str | None = None) -> str:
    """Return ``phone`` in E.164 form or raise ``ValidationError`` with a readable message."""
    raw = (phone or "").strip()
    if not raw:
        raise ValidationError(_("Enter a phone number."), code="phone_required")
    try:
        parsed = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError(_("“%(phone)s” is not a phone number.") % {"phone": raw}, code="phone_invalid") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(_("“%(phone)s” is not a valid phone number.") % {"phone": raw}, code="phone_invalid")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_is_valid(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == number[-1]


def member_number_generate() -> str:
    """12 random digits with a Luhn check digit: not sequential, typo-evident at the counter."""
    body = "".join(secrets.choice("0123456789") for _ in range(11))
    body = str(secrets.choice("123456789")) + body[1:]
    return body + luhn_check_digit(body)


def random_code(*, length: int) -> str:
    return "".join(secrets.choice(UNAMBIGUOUS_ALPHABET) for _ in range(length))


def referral_code_generate() -> str:
    return random_code(length=8)
