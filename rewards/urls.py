"""Portal URLs of this app (mounted under /portal/ in the ``portal`` namespace by config/portal_urls.py)."""

from django.urls import path

from rewards import views

urlpatterns = [
    path("rewards/", views.rewards, name="rewards"),
    path("rewards/<int:reward_id>/", views.reward_detail, name="reward"),
    path("redemptions/", views.redemptions, name="redemptions"),
    path("redemptions/<int:redemption_id>/", views.redemption_detail, name="redemption"),
    path("redemptions/<int:redemption_id>/cancel/", views.redemption_cancel_view, name="redemption_cancel"),
    path("coupons/", views.coupons, name="coupons"),
    path("coupons/<int:coupon_id>/", views.coupon_detail, name="coupon"),
    path("draws/", views.draws, name="draws"),
    path("draws/<int:campaign_id>/", views.draw_detail, name="draw"),
    path("wallet/", views.wallet, name="wallet"),
]
