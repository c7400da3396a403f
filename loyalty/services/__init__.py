"""Every write to the loyalty engine goes through these functions (never views, forms or signals)."""

from loyalty.services.enrolment import MemberAlreadyExists, member_enrol
from loyalty.services.ledger import MemberAccounts, member_accounts_for_write, system_account
from loyalty.services.points import points_adjust, points_redeem
from loyalty.services.program import program_settings_get
from loyalty.services.purchases import points_earn_topup, purchase_record, refund_record
from loyalty.services.schedules import points_clearance_run, points_expire_due, points_release_pending

__all__ = [
    "MemberAccounts",
    "MemberAlreadyExists",
    "member_accounts_for_write",
    "member_enrol",
    "points_adjust",
    "points_clearance_run",
    "points_earn_topup",
    "points_expire_due",
    "points_redeem",
    "points_release_pending",
    "program_settings_get",
    "purchase_record",
    "refund_record",
    "system_account",
]
