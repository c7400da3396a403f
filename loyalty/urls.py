"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from loyalty import views

urlpatterns = [
    path("", views.home, name="home"),
    path("code/", views.member_code, name="member_code"),
    path("history/", views.history, name="history"),
    path("history/<int:transfer_id>/", views.history_entry, name="history_entry"),
    path("how-to-earn/", views.how_to_earn, name="how_to_earn"),
]
