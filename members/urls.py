"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from members import views
from members.models import OneTimeCodePurpose

ACTIVATE, RESET = {"purpose": OneTimeCodePurpose.ACTIVATE}, {"purpose": OneTimeCodePurpose.RESET}

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("sign-out/everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("activate/", views.code_request, ACTIVATE, name="activate"),
    path("activate/code/", views.code_confirm, ACTIVATE, name="activate_code"),
    path("reset/", views.code_request, RESET, name="reset"),
    path("reset/code/", views.code_confirm, RESET, name="reset_code"),
    path("me/", views.profile, name="profile"),
    path("me/password/", views.password_change, name="password_change"),
    path("me/close/", views.account_close, name="account_close"),
]
