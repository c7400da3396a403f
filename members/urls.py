"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from members import views

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    path("me/", views.profile, name="profile"),
]
