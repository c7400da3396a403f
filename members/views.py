"""Member portal views: sign-in, activation, password reset, sign-out, profile and closing the account.

Thin views: parse a form, call one service in ``members.services``, render or redirect. Every page is
a plain server-rendered form (works without JavaScript); refusals come back as translated messages.
"""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from loyalty.exceptions import InvalidInput, LoyaltyError
from members.forms import (
    PortalCloseForm,
    PortalCodeForm,
    PortalPasswordChangeForm,
    PortalPhoneForm,
    PortalProfileForm,
    PortalSignInForm,
)
from members.models import MemberStatus, OneTimeCodePurpose
from members.portal import member_required, portal_login_get, portal_session_end, portal_session_start
from members.services import (
    UNSET,
    NotActivated,
    birthday_edits_left,
    channel_preference_get,
    one_time_code_send,
    one_time_code_use,
    phone_mask,
    portal_account_close,
    portal_password_change,
    portal_profile_update,
    portal_sign_in,
    portal_sign_out_everywhere,
)

SESSION_CODE = "portal_code"  # {"phone": E.164, "purpose": ACTIVATE|RESET, "demo": code shown only in DEBUG}
FLOWS = {
    OneTimeCodePurpose.ACTIVATE: {"start": "portal:activate", "confirm": "portal:activate_code"},
    OneTimeCodePurpose.RESET: {"start": "portal:reset", "confirm": "portal:reset_code"},
}


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _next_url(request: HttpRequest, candidate: str) -> str:
    """``candidate`` if it is a local URL of this site, else the portal home (no open redirect)."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("portal:home")


def _language_apply(response: HttpResponse, language: str) -> HttpResponse:
    """Make the member's language the portal language (Django's language cookie), or forget the choice."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME, language, max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH, domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE, httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    return response


def _error(form, exc: LoyaltyError) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, str(exc.message))


# ---- sign-in and sign-out ----


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    not_activated = False
    if request.method == "POST":
        form = PortalSignInForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                login = portal_sign_in(phone=data["phone"], password=data["password"], now=timezone.now(),
                                       ip=_client_ip(request))
            except NotActivated as exc:
                not_activated = True
                form.add_error(None, str(exc.message))
            except LoyaltyError as exc:
                form.add_error(None, str(exc.message))
            else:
                portal_session_start(request, login=login, remember=data["remember"])
                if data["remember"]:
                    request.session.set_expiry(settings.PORTAL_SESSION_AGE_SECONDS)
                member = login.member
                if member.language:
                    translation.activate(member.language)
                if member.status == MemberStatus.FROZEN:
                    messages.warning(request, _("Your account is frozen: you can see your points and history, "
                                                "but not earn or spend. Ask at the counter."))
                return _language_apply(redirect(_next_url(request, data["next"])), member.language)
    else:
        if portal_login_get(request) is not None:
            return redirect(_next_url(request, request.GET.get("next", "")))
        form = PortalSignInForm(initial={"next": request.GET.get("next", "")})
    return render(request, "members/portal/sign_in.html", {"form": form, "not_activated": not_activated})


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    portal_session_end(request)
    messages.info(request, _("You are signed out."))
    return redirect("portal:sign_in")


@require_POST
@member_required
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    portal_sign_out_everywhere(login=request.member_login)
    portal_session_end(request)
    messages.info(request, _("You are signed out on every device."))
    return redirect("portal:sign_in")


# ---- activation and password reset by one-time code ----


@require_http_methods(["GET", "POST"])
def code_request(request: HttpRequest, purpose: str) -> HttpResponse:
    """Step 1: a phone number; a code goes to it if it is registered (the page never says whether)."""
    if request.method == "POST":
        state = request.session.get(SESSION_CODE) or {}
        if request.POST.get("resend") and state.get("purpose") == purpose:  # "send a new code" on the code page
            form = PortalPhoneForm({"phone": state["phone"]})
        else:
            form = PortalPhoneForm(request.POST)
        if form.is_valid():
            try:
                sent = one_time_code_send(phone=form.cleaned_data["phone"], purpose=purpose, now=timezone.now(),
                                          ip=_client_ip(request))
            except LoyaltyError as exc:
                _error(form, exc)
            else:
                request.session[SESSION_CODE] = {
                    "phone": sent.phone, "purpose": purpose,
                    "demo": sent.code if settings.DEBUG and sent.code else "",
                }
                messages.info(request, _("If this number is registered, a code was sent to it by SMS."))
                return redirect(FLOWS[purpose]["confirm"])
    else:
        state = request.session.get(SESSION_CODE) or {}
        form = PortalPhoneForm(initial={"phone": state.get("phone", "")})
    return render(request, "members/portal/code_request.html", {"form": form, "purpose": purpose, "flow": FLOWS[purpose]})


@require_http_methods(["GET", "POST"])
def code_confirm(request: HttpRequest, purpose: str) -> HttpResponse:
    """Step 2: the code and a new password; then the member is signed in."""
    state = request.session.get(SESSION_CODE) or {}
    if state.get("purpose") != purpose or not state.get("phone"):
        return redirect(FLOWS[purpose]["start"])
    if request.method == "POST":
        form = PortalCodeForm(request.POST)
        if form.is_valid():
            try:
                login = one_time_code_use(phone=state["phone"], purpose=purpose, code=form.cleaned_data["code"],
                                          password=form.cleaned_data["new_password"], now=timezone.now())
            except InvalidInput as exc:
                form.add_error("new_password" if exc.field == "password" else None, str(exc.message))
            except LoyaltyError as exc:
                form.add_error(None, str(exc.message))
            else:
                portal_session_start(request, login=login, remember=False)
                if purpose == OneTimeCodePurpose.ACTIVATE:
                    messages.success(request, _("Your portal access is activated. Welcome!"))
                else:
                    messages.success(request, _("Your password is changed. You were signed out on other devices."))
                return _language_apply(redirect("portal:home"), login.member.language)
    else:
        form = PortalCodeForm()
    context = {"form": form, "purpose": purpose, "flow": FLOWS[purpose], "phone_masked": phone_mask(state["phone"]),
               "demo_code": state.get("demo", "") if settings.DEBUG else ""}
    return render(request, "members/portal/code_confirm.html", context)


# ---- profile ----


def _profile_initial(member, channels) -> dict:
    return {"name": member.name, "email": member.email, "language": member.language, "birthday": member.birthday,
            "sms": channels.sms, "email_channel": channels.email, "inbox": channels.inbox,
            "marketing_consent": member.marketing_consent}


@member_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    member, login = request.member, request.member_login
    edits_left = birthday_edits_left(login=login)
    channels = channel_preference_get(member=member)
    if request.method == "POST":
        form = PortalProfileForm(request.POST, birthday_editable=edits_left > 0)
        if form.is_valid():
            data = form.cleaned_data
            try:
                member = portal_profile_update(
                    member=member, now=timezone.now(), name=data["name"], email=data["email"],
                    language=data["language"], marketing_consent=data["marketing_consent"],
                    channels={"sms": data["sms"], "email": data["email_channel"], "inbox": data["inbox"]},
                    birthday=data.get("birthday") or UNSET,
                )
            except LoyaltyError as exc:
                _error(form, exc)
            else:
                translation.activate(member.language or settings.LANGUAGE_CODE)
                response = redirect("portal:profile")
                if not member.language:
                    response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, path=settings.LANGUAGE_COOKIE_PATH,
                                           domain=settings.LANGUAGE_COOKIE_DOMAIN)
                messages.success(request, _("Your profile is saved."))
                return _language_apply(response, member.language)
    else:
        form = PortalProfileForm(initial=_profile_initial(member, channels), birthday_editable=edits_left > 0)
    context = {"form": form, "member": member, "phone_masked": phone_mask(member.phone), "birthday_edits_left": edits_left,
               "frozen": member.status == MemberStatus.FROZEN}
    return render(request, "members/portal/profile.html", context)


@member_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PortalPasswordChangeForm(request.POST)
        if form.is_valid():
            try:
                login = portal_password_change(
                    login=request.member_login, current_password=form.cleaned_data["current_password"],
                    new_password=form.cleaned_data["new_password"], now=timezone.now(),
                )
            except InvalidInput as exc:
                form.add_error("new_password", str(exc.message))
            except LoyaltyError as exc:
                form.add_error("current_password", str(exc.message))
            else:
                remember = not request.session.get_expire_at_browser_close()
                expiry = request.session.get_expiry_age()
                portal_session_start(request, login=login, remember=remember)
                if remember:
                    request.session.set_expiry(expiry)
                messages.success(request, _("Your password is changed. You were signed out on other devices."))
                return redirect("portal:profile")
    else:
        form = PortalPasswordChangeForm()
    return render(request, "members/portal/password.html", {"form": form})


@member_required
@require_http_methods(["GET", "POST"])
def account_close(request: HttpRequest) -> HttpResponse:
    """A confirmation page that says what closing does; the password confirms it."""
    from loyalty.selectors import member_points_summary
    from loyalty.services.program import program_settings_get

    if request.method == "POST":
        form = PortalCloseForm(request.POST)
        if form.is_valid():
            try:
                portal_account_close(login=request.member_login, password=form.cleaned_data["password"],
                                     now=timezone.now())
            except LoyaltyError as exc:
                form.add_error("password" if exc.code == "password_wrong" else None, str(exc.message))
            else:
                portal_session_end(request)
                messages.info(request, _("Your account is closed. Thank you for having been a member."))
                return redirect("portal:sign_in")
    else:
        form = PortalCloseForm()
    summary = member_points_summary(member=request.member, now=timezone.now())
    return render(request, "members/portal/close.html",
                  {"form": form, "summary": summary, "program": program_settings_get()})
