"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from loyalty import views

urlpatterns = [
    path("", views.home, name="home"),
    path("history/", views.history, name="history"),
]
