"""Routes of the spending endpoints, added to the partner API's routes (config/api_urls.py)."""

from django.urls import path

from rewards.api.catalogue import RedemptionCancelApi, RedemptionCreateApi, RedemptionFulfilApi, RewardListApi
from rewards.api.coupons import CouponRedeemApi, CouponValidateApi
from rewards.api.payments import PointsQuoteCommitApi, PointsQuoteCreateApi
from rewards.api.wallet import WalletSpendCreateApi, WalletTopUpCreateApi, WalletTopUpRefundApi

urlpatterns = [
    path("points-payments/quotes", PointsQuoteCreateApi.as_view(), name="points-quotes"),
    path("points-payments/quotes/<int:quote_id>/commit", PointsQuoteCommitApi.as_view(), name="points-quote-commit"),
    path("rewards", RewardListApi.as_view(), name="rewards"),
    path("redemptions", RedemptionCreateApi.as_view(), name="redemptions"),
    path("redemptions/<int:redemption_id>/cancel", RedemptionCancelApi.as_view(), name="redemption-cancel"),
    path("redemptions/<int:redemption_id>/fulfil", RedemptionFulfilApi.as_view(), name="redemption-fulfil"),
    path("coupons/validate", CouponValidateApi.as_view(), name="coupon-validate"),
    path("coupons/redeem", CouponRedeemApi.as_view(), name="coupon-redeem"),
    path("wallet/top-ups", WalletTopUpCreateApi.as_view(), name="wallet-topups"),
    path("wallet/spends", WalletSpendCreateApi.as_view(), name="wallet-spends"),
    path("wallet/top-ups/<int:topup_id>/refunds", WalletTopUpRefundApi.as_view(), name="wallet-topup-refunds"),
]
