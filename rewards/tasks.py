"""Celery tasks for spending: thin, idempotent, read the clock once and call a service."""

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True)
def wallet_bonus_expire_due_task(**kwargs) -> int:
    """Expire top-up bonus whose expiry has passed (safe to rerun: expired lots hold nothing)."""
    from rewards.services.wallet import wallet_bonus_expire_due

    return wallet_bonus_expire_due(now=timezone.now())


@shared_task(acks_late=True)
def coupons_expire_due_task(**kwargs) -> int:
    """Mark issued coupons past their end as expired (set-based, batched; safe to rerun)."""
    from rewards.services.coupons import coupons_expire_due

    return coupons_expire_due(now=timezone.now())
