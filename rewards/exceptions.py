"""Refusals of the spending services. Stable codes (API error codes); messages translated on display."""

from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InsufficientPoints, InvalidInput, LoyaltyError, NotFound

__all__ = ["InsufficientPoints", "InvalidInput", "LoyaltyError", "NotFound"]


class CouponInvalid(LoyaltyError):
    code = "coupon_invalid"
    default_message = _("This coupon code is not valid. Check it and try again.")


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    default_message = _("No coupon has this code.")


class CouponNotYours(LoyaltyError):
    code = "coupon_not_yours"
    default_message = _("This coupon belongs to another member.")
    http_status = 403


class CouponExpired(LoyaltyError):
    code = "coupon_expired"
    default_message = _("This coupon expired on {date}.")


class CouponNotYetValid(LoyaltyError):
    code = "coupon_not_yet_valid"
    default_message = _("This coupon can be used from {date}.")


class CouponAlreadyUsed(LoyaltyError):
    code = "coupon_already_used"
    default_message = _("This coupon has already been used.")
    http_status = 409


class CouponNotApplicable(LoyaltyError):
    code = "coupon_not_applicable"
    default_message = _("This coupon cannot be used for this order: {reason}")


class QuoteNotFound(NotFound):
    code = "quote_not_found"
    default_message = _("No such points payment quote.")


class QuoteExpired(LoyaltyError):
    code = "quote_expired"
    default_message = _("The points payment quote has expired; ask for a new one.")
    http_status = 409


class QuoteAlreadyCommitted(LoyaltyError):
    code = "quote_already_committed"
    default_message = _("The points payment quote was already used.")
    http_status = 409


class PointsPaymentNotAllowed(LoyaltyError):
    code = "points_payment_not_allowed"
    default_message = _("Points cannot pay for this order: {reason}")


class OutOfStock(LoyaltyError):
    code = "out_of_stock"
    default_message = _("Sorry, this is out of stock.")


class RedemptionLimitReached(LoyaltyError):
    code = "redemption_limit_reached"
    default_message = _("You have reached the limit for this reward. You can redeem it again from {date}.")


class RewardNotAvailable(LoyaltyError):
    code = "reward_not_available"
    default_message = _("This reward is not available: {reason}")


class RedemptionStateConflict(LoyaltyError):
    code = "redemption_state_conflict"
    default_message = _("This redemption is {status} and cannot be changed that way.")
    http_status = 409


class PickupCodeInvalid(LoyaltyError):
    code = "pickup_code_invalid"
    default_message = _("The pickup code does not match this redemption.")


class CashPaymentFailed(LoyaltyError):
    code = "cash_payment_failed"
    default_message = _("The cash payment failed: {reason}. No points were taken.")
    http_status = 402


class InsufficientStoredValue(LoyaltyError):
    code = "insufficient_stored_value"
    default_message = _("Insufficient stored value: {available} available, {requested} requested.")


class TopUpRefundTooLarge(LoyaltyError):
    code = "topup_refund_too_large"
    default_message = _("Only {refundable} of this top-up's principal is unspent and can be refunded.")


class DrawLimitReached(LoyaltyError):
    code = "draw_limit_reached"
    default_message = _("You have used all your draws {period}.")


class DrawNotAvailable(LoyaltyError):
    code = "draw_not_available"
    default_message = _("This lucky draw is not open.")


class DrawPrizesExhausted(LoyaltyError):
    code = "draw_prizes_exhausted"
    default_message = _("All the prizes of this lucky draw are gone.")
    http_status = 409


class RewardNotFound(NotFound):
    code = "reward_not_found"
    default_message = _("No such reward.")


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"
    default_message = _("No such redemption.")


class CashRefundFailed(LoyaltyError):
    code = "cash_refund_failed"
    default_message = _("The cash part could not be refunded: {reason}. Nothing was cancelled.")
    http_status = 502


class CouponVoid(CouponInvalid):
    code = "coupon_void"
    default_message = _("This coupon was cancelled and cannot be used.")


class CouponTemplateInactive(LoyaltyError):
    code = "coupon_template_inactive"
    default_message = _("Coupons “{name}” are no longer issued.")


class QuoteMismatch(LoyaltyError):
    code = "quote_mismatch"
    default_message = _("The points payment quote does not match this order: {reason}")
    http_status = 409
