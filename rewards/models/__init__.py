"""Spending: coupons, pay with points, stored value, the rewards catalogue and lucky draws."""

from rewards.models.catalogue import LimitPeriod, Redemption, RedemptionStatus, Reward, RewardKind
from rewards.models.coupons import Coupon, CouponKind, CouponSource, CouponStatus, CouponTemplate
from rewards.models.draws import Draw, DrawCampaign, Prize, PrizeKind
from rewards.models.payments import PointsQuote, QuoteStatus, SpendingSettings
from rewards.models.wallet import TopUp, TopUpBonusRule, WalletPreference, WalletSpend

__all__ = [
    "Coupon", "CouponKind", "CouponSource", "CouponStatus", "CouponTemplate", "Draw", "DrawCampaign", "LimitPeriod",
    "PointsQuote", "Prize", "PrizeKind", "QuoteStatus", "Redemption", "RedemptionStatus", "Reward", "RewardKind",
    "SpendingSettings", "TopUp", "TopUpBonusRule", "WalletPreference", "WalletSpend",
]
