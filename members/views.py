"""Member portal views: sign-in, activation, password reset, profile (HTMX, server-rendered)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from members.portal import member_required


def sign_in(request: HttpRequest) -> HttpResponse:
    return render(request, "members/portal/sign_in.html", {})


@member_required
def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/placeholder.html", {"title": "profile"})
