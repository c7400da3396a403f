"""The member code the portal shows at the counter: 18 digits that change every minute.

``member_code_current`` gives 12 digits that stand for the member's id — the id through a keyed
permutation (a small Feistel network over 40 bits, cycle-walked into 12 digits), so codes look random and
do not tell how many members there are — followed by 6 digits of a time-based HMAC (the HOTP truncation of RFC 4226 over ``"<member pk>:<60-second step>"``, keyed by a key derived
from ``settings.SECRET_KEY`` with its own purpose string). A screenshot stops working after at most
two minutes: ``member_code_resolve`` accepts the code of the current step and of the one just before
(so a code shown a moment before the minute turns still scans), nothing older and nothing from the
future. Resolving costs one primary-key query, and only when the digits check out.
"""

import datetime as dt
import hmac
import re

from django.utils.crypto import salted_hmac

from members.models import Member, MemberStatus

STEP_SECONDS = 60
ID_DIGITS = 12
OTP_DIGITS = 6
CODE_DIGITS = ID_DIGITS + OTP_DIGITS
STEPS_ACCEPTED = 2  # the current step and the one before it
_PURPOSE = "members.member_code.v1"
_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")  # ASCII digits only (str.isdigit accepts ١٢٣ too)
_SEPARATORS = re.compile(r"[\s\-]")


def _step(now: dt.datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("member codes need an aware datetime")
    return int(now.timestamp()) // STEP_SECONDS


def _otp(member_pk: int, step: int) -> str:
    digest = salted_hmac(_PURPOSE, f"{member_pk}:{step}", algorithm="sha256").digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF
    return f"{value % 10**OTP_DIGITS:0{OTP_DIGITS}d}"


_HALF_BITS = 20
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4


def _round(half: int, i: int) -> int:
    return int.from_bytes(salted_hmac(_PURPOSE + ".id", f"{i}:{half}", algorithm="sha256").digest()[:3], "big") & _HALF_MASK


def _feistel(n: int, *, inverse: bool) -> int:
    left, right = n >> _HALF_BITS, n & _HALF_MASK
    if not inverse:
        for i in range(_ROUNDS):
            left, right = right, left ^ _round(right, i)
    else:
        for i in reversed(range(_ROUNDS)):
            left, right = right ^ _round(left, i), left
    return (left << _HALF_BITS) | right


def member_id_mask(member_pk: int, *, inverse: bool = False) -> int:
    """A keyed one-to-one map of 0 … 10**12 - 1 onto itself (cycle walking keeps it in 12 digits)."""
    n = _feistel(member_pk, inverse=inverse)
    while n >= 10**ID_DIGITS:
        n = _feistel(n, inverse=inverse)
    return n


def member_code_current(*, member: Member, now: dt.datetime) -> str:
    """The member's code for the minute ``now`` falls in: 18 ASCII digits."""
    if not 0 < member.pk < 10**ID_DIGITS:
        raise ValueError("member id does not fit in a member code")
    return f"{member_id_mask(member.pk):0{ID_DIGITS}d}{_otp(member.pk, _step(now))}"


def member_code_valid_until(*, now: dt.datetime) -> dt.datetime:
    """When a code shown at ``now`` stops being accepted (end of the next step)."""
    step = _step(now)
    return dt.datetime.fromtimestamp((step + STEPS_ACCEPTED) * STEP_SECONDS, tz=dt.UTC)


def member_code_groups(code: str) -> str:
    """The digits grouped for reading aloud or typing: ``1234 5678 9012 345 678``."""
    head, tail = code[:ID_DIGITS], code[ID_DIGITS:]
    return " ".join([head[i:i + 4] for i in range(0, len(head), 4)] + [tail[:3], tail[3:]])


def member_code_looks_like(term: str) -> bool:
    """Whether a search term has the shape of a member code (18 digits, spaces or dashes allowed)."""
    return bool(_CODE.fullmatch(_SEPARATORS.sub("", term or "")))


def member_code_resolve(*, code: str, now: dt.datetime) -> Member | None:
    """The member a code belongs to, if it is from this minute or the one before; otherwise None.

    Anything malformed (wrong length, not digits, id 0, not a string) is None. The HMAC is compared in
    constant time; closed members resolve to nobody.
    """
    if not isinstance(code, str):
        return None
    code = _SEPARATORS.sub("", code)
    if not _CODE.fullmatch(code):
        return None
    member_pk, given = member_id_mask(int(code[:ID_DIGITS]), inverse=True), code[ID_DIGITS:]
    if member_pk == 0:
        return None
    step = _step(now)
    matched = False
    for back in range(STEPS_ACCEPTED):  # no early exit: every accepted step is checked
        matched |= hmac.compare_digest(_otp(member_pk, step - back), given)
    if not matched:
        return None
    return Member.objects.filter(pk=member_pk).exclude(status=MemberStatus.CLOSED).first()
