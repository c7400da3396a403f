"""Member portal views of the points engine: home, history, how to earn (HTMX, server-rendered)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from members.portal import member_required


@member_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/placeholder.html", {"title": "home"})


@member_required
def history(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/placeholder.html", {"title": "history"})
