"""The member portal's session: who is signed in, and the guard every portal view sits behind.

A portal session holds the member's pk and the login's ``session_epoch`` at sign-in. Staff admin
sessions (django.contrib.auth) are separate: the same browser can be signed in to both.
"""

from functools import wraps
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from members.models import MemberLogin, MemberStatus

SESSION_MEMBER = "portal_member"
SESSION_EPOCH = "portal_epoch"


def portal_login_get(request: HttpRequest) -> MemberLogin | None:
    """The signed-in member's login (with ``.member``), or None. One query; cached on the request."""
    if hasattr(request, "_portal_login"):
        return request._portal_login
    login = None
    member_pk = request.session.get(SESSION_MEMBER)
    if member_pk is not None:
        login = MemberLogin.objects.select_related("member").filter(pk=member_pk).first()
        if (
            login is None
            or not login.password
            or login.session_epoch != request.session.get(SESSION_EPOCH)
            or login.member.status == MemberStatus.CLOSED
        ):
            login = None
    request._portal_login = login
    return login


def portal_session_start(request: HttpRequest, *, login: MemberLogin, remember: bool) -> None:
    """Sign ``login`` in on this browser: a new session key (no fixation), kept across restarts if asked."""
    request.session.cycle_key()
    request.session[SESSION_MEMBER] = login.pk
    request.session[SESSION_EPOCH] = login.session_epoch
    request.session.set_expiry(None if remember else 0)  # None: SESSION_COOKIE_AGE; 0: until the browser closes
    request._portal_login = login


def portal_session_end(request: HttpRequest) -> None:
    request.session.flush()
    request._portal_login = None


def member_required(view):
    """Portal views take ``request.member``; anyone else goes to sign-in (HTMX: a full-page redirect)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        login = portal_login_get(request)
        if login is None:
            url = reverse("portal:sign_in")
            if request.method == "GET" and not request.htmx:
                url += "?" + urlencode({"next": request.get_full_path()})
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = url
                return response
            return redirect(url)
        request.member = login.member
        request.member_login = login
        return view(request, *args, **kwargs)

    return wrapper
