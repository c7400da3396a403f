"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from rewards import views

urlpatterns = [
    path("rewards/", views.rewards, name="rewards"),
    path("wallet/", views.wallet, name="wallet"),
]
