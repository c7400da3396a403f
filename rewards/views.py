"""Member portal views of spending: rewards, coupons, lucky draw, wallet (HTMX, server-rendered)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from members.portal import member_required


@member_required
def rewards(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/placeholder.html", {"title": "rewards"})


@member_required
def wallet(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/placeholder.html", {"title": "wallet"})
