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


# ---- MEMBER PORTAL: sign-in, one-time codes, profile ----
# Errors are ``LoyaltyError`` subclasses (translated message, nothing written) except where a
# docstring says a counter is bumped: wrong passwords and wrong codes are counted even though the
# request is refused, so the count is committed before the error is raised.

import datetime as dt  # noqa: E402
import hmac  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from django.contrib.auth.hashers import check_password, make_password  # noqa: E402
from django.contrib.auth.password_validation import validate_password  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.validators import validate_email  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.utils import formats, translation  # noqa: E402
from django.utils.crypto import salted_hmac  # noqa: E402
from django.utils.translation import gettext_lazy  # noqa: E402

from loyalty.exceptions import InvalidInput, LoyaltyError  # noqa: E402
from members.models import Member, MemberLogin, MemberStatus, OneTimeCode, OneTimeCodePurpose  # noqa: E402

UNSET = object()
# Checked against when the phone is unknown, so that a wrong phone costs as long as a wrong password.
_DUMMY_PASSWORD_HASH = None


class SignInFailed(LoyaltyError):
    code = "sign_in_failed"
    default_message = gettext_lazy("The phone number or the password is not right.")
    http_status = 400


class NotActivated(LoyaltyError):
    code = "not_activated"
    default_message = gettext_lazy(
        "Your portal access is not activated yet. Activate it with a code sent to your phone."
    )


class LoginLocked(LoyaltyError):
    code = "login_locked"
    default_message = gettext_lazy("Too many wrong passwords. Signing in is locked until {until}.")
    http_status = 429


class TooManyRequests(LoyaltyError):
    code = "too_many_requests"
    default_message = gettext_lazy("Too many tries from this connection. Wait a few minutes and try again.")
    http_status = 429


class CodeResendTooSoon(LoyaltyError):
    code = "code_resend_too_soon"
    default_message = gettext_lazy("A code was sent a moment ago. You can ask for a new one in {seconds} seconds.")
    http_status = 429


class CodeLimitReached(LoyaltyError):
    code = "code_limit_reached"
    default_message = gettext_lazy("Too many codes were asked for this number. Try again in an hour.")
    http_status = 429


class CodeWrong(LoyaltyError):
    code = "code_wrong"
    default_message = gettext_lazy("The code is not right. Check the message and try again.")
    http_status = 400


class CodeExpired(LoyaltyError):
    code = "code_expired"
    default_message = gettext_lazy("The code has expired or a newer one was sent. Ask for a new code.")
    http_status = 400


class CodeUsed(LoyaltyError):
    code = "code_used"
    default_message = gettext_lazy("This code was already used. Ask for a new code.")
    http_status = 400


class CodeDead(LoyaltyError):
    code = "code_dead"
    default_message = gettext_lazy("Too many wrong codes. This code no longer works: ask for a new one.")
    http_status = 400


class PasswordWrong(LoyaltyError):
    code = "password_wrong"
    default_message = gettext_lazy("The password is not right.")
    http_status = 400


def _setting(name: str) -> int:
    return int(getattr(settings, name))


def _dummy_hash() -> str:
    global _DUMMY_PASSWORD_HASH
    if _DUMMY_PASSWORD_HASH is None:
        _DUMMY_PASSWORD_HASH = make_password("not a real password")
    return _DUMMY_PASSWORD_HASH


def rate_limit_hit(*, key: str, limit: int, window_seconds: int) -> bool:
    """Count one hit on ``key`` in a fixed window; True when the limit was already used up (atomic incr)."""
    cache.add(key, 0, timeout=window_seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window_seconds)
        count = 1
    return count > limit


def phone_mask(phone: str) -> str:
    """+8613812345678 → +86 138****5678: enough to recognise one's own number, not to read it."""
    try:
        parsed = phonenumbers.parse(phone, None)
        national = str(parsed.national_number)
        prefix = f"+{parsed.country_code} "
    except phonenumbers.NumberParseException:
        national, prefix = phone, ""
    if len(national) <= 4:
        return prefix + national
    keep = 3 if len(national) >= 10 else 1
    return prefix + national[:keep] + "*" * (len(national) - keep - 4) + national[-4:]


def _local_time_text(value: dt.datetime) -> str:
    from loyalty.services.program import program_settings_get

    return formats.date_format(value.astimezone(program_settings_get().tz), "DATETIME_FORMAT")


def _member_for_phone(phone: str) -> Member | None:
    """The member with this (normalised) phone, unless closed."""
    return Member.objects.filter(phone=phone).exclude(status=MemberStatus.CLOSED).first()


# -- sign-in --


def portal_sign_in(*, phone: str, password: str, now: dt.datetime, ip: str = "") -> MemberLogin:
    """Check a phone and password; return the member's login (with ``.member``).

    An unknown phone and a wrong password give the same ``SignInFailed``. Wrong passwords are counted
    on the login (row lock, so concurrent guesses each count); the ``PORTAL_PASSWORD_MAX_FAILURES``-th
    locks signing in for ``PORTAL_LOCKOUT_SECONDS``. A success resets the count.
    """
    if ip and rate_limit_hit(key=f"portal:sign-in:ip:{ip}", limit=_setting("PORTAL_SIGN_INS_PER_IP"),
                             window_seconds=900):
        raise TooManyRequests()
    try:
        phone = phone_normalise(phone=phone)
    except ValidationError:
        check_password(password or "", _dummy_hash())
        raise SignInFailed() from None
    login = MemberLogin.objects.select_related("member").filter(member__phone=phone).first()
    if login is None or login.member.status == MemberStatus.CLOSED:
        check_password(password or "", _dummy_hash())
        if login is None and _member_for_phone(phone) is not None:
            raise NotActivated()
        raise SignInFailed()
    if not login.password:
        raise NotActivated()
    if login.locked_until is not None and login.locked_until > now:
        raise LoginLocked(until=_local_time_text(login.locked_until))
    if not check_password(password or "", login.password):
        locked_until = _password_failure_record(login=login, now=now)
        if locked_until is not None:
            raise LoginLocked(until=_local_time_text(locked_until))
        raise SignInFailed()
    login.failed_attempts, login.locked_until, login.last_login_at = 0, None, now
    login.save(update_fields=["failed_attempts", "locked_until", "last_login_at", "updated_at"])
    return login


@transaction.atomic
def _password_failure_record(*, login: MemberLogin, now: dt.datetime) -> dt.datetime | None:
    """Count one wrong password under the row lock; return the lock's end when this one locks the login."""
    locked = MemberLogin.objects.select_for_update().get(pk=login.pk)
    if locked.locked_until is not None and locked.locked_until > now:
        return locked.locked_until
    locked.failed_attempts += 1
    if locked.failed_attempts >= _setting("PORTAL_PASSWORD_MAX_FAILURES"):
        locked.failed_attempts = 0
        locked.locked_until = now + dt.timedelta(seconds=_setting("PORTAL_LOCKOUT_SECONDS"))
    locked.save(update_fields=["failed_attempts", "locked_until", "updated_at"])
    return locked.locked_until if locked.failed_attempts == 0 else None


@transaction.atomic
def portal_sign_out_everywhere(*, login: MemberLogin) -> MemberLogin:
    """Bump the session epoch: every portal session of this member stops being accepted."""
    MemberLogin.objects.filter(pk=login.pk).update(session_epoch=F("session_epoch") + 1, updated_at=timezone_now())
    login.refresh_from_db(fields=["session_epoch", "updated_at"])
    return login


def timezone_now() -> dt.datetime:
    from django.utils import timezone

    return timezone.now()


# -- one-time codes (activation and password reset) --


def _code_hash(*, member_pk: int, purpose: str, code: str) -> str:
    return salted_hmac("members.one_time_code", f"{member_pk}:{purpose}:{code}", algorithm="sha256").hexdigest()


def _code_text(*, member: Member, purpose: str, code: str, minutes: int) -> str:
    language = member.language or translation.get_language() or settings.LANGUAGE_CODE
    with translation.override(language):
        if purpose == OneTimeCodePurpose.ACTIVATE:
            return str(_("Your code to activate the member portal is %(code)s. It works for %(minutes)s minutes. "
                         "Do not share it with anyone.") % {"code": code, "minutes": minutes})
        return str(_("Your code to reset your member portal password is %(code)s. It works for %(minutes)s minutes. "
                     "Do not share it with anyone.") % {"code": code, "minutes": minutes})


@dataclass(frozen=True)
class CodeSent:
    phone: str  # normalised
    code: str | None  # the code sent (for the DEBUG-only demo display); None when nothing was sent


def one_time_code_send(*, phone: str, purpose: str, now: dt.datetime, ip: str = "") -> CodeSent:
    """Send a 6-digit code to ``phone`` by SMS, if it belongs to a member who is not closed.

    Says nothing about whether the phone is registered: an unknown phone goes through the same limits
    (resend cooldown and hourly cap per phone, hourly cap per IP) and returns ``code=None``. A new code
    voids the member's older codes for the same purpose. Only an HMAC of the code is stored.
    """
    if purpose not in OneTimeCodePurpose.values:
        raise InvalidInput(_("purpose: “{value}” is not a code purpose."), field="purpose", value=purpose)
    try:
        phone = phone_normalise(phone=phone)
    except ValidationError as exc:
        raise InvalidInput(_literal(exc.messages[0]), field="phone") from None
    if ip and rate_limit_hit(key=f"portal:codes:ip:{ip}", limit=_setting("PORTAL_CODES_PER_IP_PER_HOUR"),
                             window_seconds=3600):
        raise TooManyRequests()
    resend = _setting("PORTAL_CODE_RESEND_SECONDS")
    if not cache.add(f"portal:codes:cooldown:{phone}", now.timestamp(), timeout=resend):
        sent_at = cache.get(f"portal:codes:cooldown:{phone}") or now.timestamp()
        raise CodeResendTooSoon(seconds=max(1, int(resend - (now.timestamp() - sent_at))))
    if rate_limit_hit(key=f"portal:codes:phone:{phone}", limit=_setting("PORTAL_CODES_PER_PHONE_PER_HOUR"),
                      window_seconds=3600):
        raise CodeLimitReached()
    member = _member_for_phone(phone)
    if member is None:
        return CodeSent(phone=phone, code=None)
    code = f"{secrets.randbelow(10**6):06d}"
    lifetime = _setting("PORTAL_CODE_LIFETIME_SECONDS")
    with transaction.atomic():
        OneTimeCode.objects.filter(member=member, purpose=purpose, used_at=None, expires_at__gt=now).update(
            expires_at=now, updated_at=now
        )
        OneTimeCode.objects.create(member=member, purpose=purpose, expires_at=now + dt.timedelta(seconds=lifetime),
                                   code_hash=_code_hash(member_pk=member.pk, purpose=purpose, code=code))
        text = _code_text(member=member, purpose=purpose, code=code, minutes=lifetime // 60)
        transaction.on_commit(lambda: sms_send_safe(phone=phone, text=text))
    return CodeSent(phone=phone, code=code)


def sms_send_safe(*, phone: str, text: str) -> None:
    """Send after commit; a failing provider is logged, never shown (the page says the same either way)."""
    import logging

    from members.sms import sms_send

    try:
        sms_send(phone=phone, text=text)
    except Exception:
        logging.getLogger("members.sms").exception("SMS to %s could not be sent", phone)


def _literal(message: str) -> str:
    """A message (which may quote user input) used as a ``LoyaltyError`` template: braces kept as text."""
    return message.replace("{", "{{").replace("}", "}}")


def password_check_strength(*, password: str, member: Member | None = None) -> None:
    """Django's password validators; ``InvalidInput`` with their messages."""
    try:
        validate_password(password, user=None)
    except ValidationError as exc:
        raise InvalidInput(_literal(" ".join(exc.messages)), field="password") from None


def one_time_code_use(*, phone: str, purpose: str, code: str, password: str, now: dt.datetime) -> MemberLogin:
    """Check the code and set the new password; return the login (activated, signed-in state is the caller's).

    Only the member's newest code for ``purpose`` counts. A wrong code adds one attempt (committed);
    after ``PORTAL_CODE_MAX_ATTEMPTS`` the code is dead. Expired, replaced and used codes are refused.
    Setting a password over an existing one bumps the session epoch: every other session ends.
    """
    code = (code or "").strip().replace(" ", "")
    try:
        phone = phone_normalise(phone=phone)
    except ValidationError:
        raise CodeWrong() from None
    member = _member_for_phone(phone)
    if member is None:
        raise CodeWrong()
    password_check_strength(password=password, member=member)
    failure = _code_check(member=member, purpose=purpose, code=code, now=now)
    if failure is not None:
        raise failure
    with transaction.atomic():
        row = (OneTimeCode.objects.select_for_update().filter(member=member, purpose=purpose)
               .order_by("-created_at", "-id").first())
        if row is None or row.used_at is not None or row.expires_at <= now:  # used by a concurrent request
            raise CodeUsed()
        row.used_at = now
        row.save(update_fields=["used_at", "updated_at"])
        login, _created = MemberLogin.objects.select_for_update().get_or_create(member=member)
        if login.password:
            login.session_epoch += 1
        login.password = make_password(password)
        login.activated_at = login.activated_at or now
        login.failed_attempts, login.locked_until, login.last_login_at = 0, None, now
        login.save()
    login.member = member
    return login


@transaction.atomic
def _code_check(*, member: Member, purpose: str, code: str, now: dt.datetime) -> LoyaltyError | None:
    """Compare ``code`` with the newest code under its row lock. Returns the refusal (after committing the
    attempt count) instead of raising, so that the count is not rolled back."""
    row = (OneTimeCode.objects.select_for_update().filter(member=member, purpose=purpose)
           .order_by("-created_at", "-id").first())
    if row is None:
        return CodeWrong()
    if row.used_at is not None:
        return CodeUsed()
    if row.expires_at <= now:
        return CodeExpired()
    if row.attempts >= _setting("PORTAL_CODE_MAX_ATTEMPTS"):
        return CodeDead()
    hashed = _code_hash(member_pk=member.pk, purpose=purpose, code=code)
    if not (code.isdigit() and hmac.compare_digest(row.code_hash, hashed)):
        older = OneTimeCode.objects.exclude(pk=row.pk).filter(member=member, purpose=purpose,
                                           created_at__gte=now - dt.timedelta(hours=1))
        if any(hmac.compare_digest(old, hashed) for old in older.values_list("code_hash", flat=True)):
            return CodeExpired()  # an older code, replaced by the newest one: an honest mistake, not counted
        row.attempts += 1
        row.save(update_fields=["attempts", "updated_at"])
        return CodeDead() if row.attempts >= _setting("PORTAL_CODE_MAX_ATTEMPTS") else CodeWrong()
    return None


# -- profile --


@transaction.atomic
def portal_password_change(*, login: MemberLogin, current_password: str, new_password: str,
                           now: dt.datetime) -> MemberLogin:
    """Change the password (the current one is required). Other sessions end (session epoch bumped)."""
    login = MemberLogin.objects.select_for_update().select_related("member").get(pk=login.pk)
    if not check_password(current_password or "", login.password):
        raise PasswordWrong()
    if current_password == new_password:
        raise InvalidInput(_("The new password is the same as the current one."), field="new_password")
    password_check_strength(password=new_password, member=login.member)
    login.password = make_password(new_password)
    login.session_epoch += 1
    login.save(update_fields=["password", "session_epoch", "updated_at"])
    return login


def portal_password_verify(*, login: MemberLogin, password: str) -> None:
    """``PasswordWrong`` unless ``password`` is the member's password (confirming a destructive step)."""
    if not check_password(password or "", login.password):
        raise PasswordWrong()


def channel_preference_get(*, member: Member):
    """The member's notification channels; an unsaved row with the defaults when none was saved."""
    from notifications.models import ChannelPreference

    return ChannelPreference.objects.filter(member=member).first() or ChannelPreference(member=member)


def birthday_edits_left(*, login: MemberLogin) -> int:
    from loyalty.services.program import program_settings_get

    return max(0, program_settings_get().birthday_member_edits - login.birthday_edits)


@transaction.atomic
def portal_profile_update(*, member: Member, now: dt.datetime, name=UNSET, email=UNSET, language=UNSET,
                          marketing_consent=UNSET, channels: dict | None = None, birthday=UNSET) -> Member:
    """The member's own edits in the portal. Changing the birthday uses one of the program's
    ``birthday_member_edits`` (counted on the login); a changed consent records ``consent_updated_at``."""
    from loyalty.services.member_profile import member_profile_update
    from notifications.models import ChannelPreference

    member = Member.objects.select_for_update().get(pk=member.pk)
    if member.status == MemberStatus.CLOSED:
        raise InvalidInput(_("This account is closed."))
    fields = {}
    if name is not UNSET:
        fields["name"] = name
    if birthday is not UNSET and birthday != member.birthday:
        login = MemberLogin.objects.select_for_update().get(pk=member.pk)
        if birthday_edits_left(login=login) <= 0:
            raise InvalidInput(_("The birthday can no longer be changed here. Ask at the counter."), field="birthday")
        fields["birthday"] = birthday
        login.birthday_edits += 1
        login.save(update_fields=["birthday_edits", "updated_at"])
    if fields:
        member = member_profile_update(member=member, now=now, **fields)
    changed = []
    if email is not UNSET:
        email = (email or "").strip()
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise InvalidInput(_("Enter a valid email address."), field="email") from None
        member.email = email
        changed.append("email")
    if language is not UNSET:
        if language and language not in dict(settings.LANGUAGES):
            raise InvalidInput(_("Choose one of the languages offered."), field="language")
        member.language = language or ""
        changed.append("language")
    if marketing_consent is not UNSET and bool(marketing_consent) != member.marketing_consent:
        member.marketing_consent = bool(marketing_consent)
        member.consent_updated_at = now
        changed += ["marketing_consent", "consent_updated_at"]
    if changed:
        member.save(update_fields=[*changed, "updated_at"])
    if channels is not None:
        ChannelPreference.objects.update_or_create(
            member=member, defaults={k: bool(channels[k]) for k in ("sms", "email", "inbox") if k in channels}
        )
    return member


class RedemptionsWaiting(LoyaltyError):
    code = "redemptions_waiting"
    default_message = gettext_lazy("{count} reward(s) are waiting for pickup. Collect them, or ask at the counter "
                                   "to cancel them, before closing the account.")


@transaction.atomic
def portal_account_close(*, login: MemberLogin, password: str, now: dt.datetime) -> Member:
    """Close the member's account after checking their password (see ``member_close``).

    Also refused while rewards wait for pickup (their points are spent; staff hand them over or cancel
    them). The member's unused coupons are voided in the same transaction, so no one can use them later.
    """
    from loyalty.services.member_profile import member_close
    from rewards.models import Coupon, CouponStatus, Redemption, RedemptionStatus

    portal_password_verify(login=login, password=password)
    member = login.member
    waiting = Redemption.objects.filter(member=member, status=RedemptionStatus.PENDING).count()
    if waiting:
        raise RedemptionsWaiting(count=waiting)
    member = member_close(member=member, now=now)
    Coupon.objects.filter(member=member, status=CouponStatus.ISSUED).update(status=CouponStatus.VOID, updated_at=now)
    return member


@transaction.atomic
def portal_login_activate(*, member: Member, password: str, now: dt.datetime) -> MemberLogin:
    """Give ``member`` portal access with ``password`` without a code (demo data, staff tooling).

    The password passes Django's validators; an existing login gets the new password and its other
    sessions end."""
    password_check_strength(password=password, member=member)
    login, _created = MemberLogin.objects.select_for_update().get_or_create(member=member)
    if login.password:
        login.session_epoch += 1
    login.password = make_password(password)
    login.activated_at = login.activated_at or now
    login.failed_attempts, login.locked_until = 0, None
    login.save()
    return login
