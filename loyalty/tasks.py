"""Celery tasks: thin, idempotent, read the clock once and call a service."""

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True)
def points_expire_due_task(**kwargs) -> int:
    from loyalty.services import points_expire_due

    return points_expire_due(now=timezone.now())


@shared_task(acks_late=True)
def points_clearance_task(**kwargs) -> int:
    from loyalty.services import points_clearance_run

    return points_clearance_run(now=timezone.now())


@shared_task(acks_late=True)
def points_release_pending_task(**kwargs) -> int:
    from loyalty.services import points_release_pending

    return points_release_pending(now=timezone.now())


@shared_task(acks_late=True)
def tiers_evaluate_task(**kwargs) -> dict[str, int]:
    from loyalty.services.tiers import tiers_evaluate

    return tiers_evaluate(now=timezone.now())


@shared_task(acks_late=True)
def backtest_run_task(*, backtest_id: int, **kwargs) -> None:
    """Run a recorded backtest (reads purchases only; a finished run is left as it is)."""
    from loyalty.backtest import backtest_execute

    backtest_execute(backtest_id=backtest_id)


@shared_task(acks_late=True)
def webhooks_dispatch_and_deliver_task(**kwargs) -> dict:
    from loyalty.services.events import events_dispatch, webhooks_deliver_due

    now = timezone.now()
    events_dispatch(now=now)
    return webhooks_deliver_due(now=now)


@shared_task(acks_late=True)
def points_expiring_soon_task(**kwargs) -> int:
    from loyalty.services.schedules import points_expiring_soon_record

    return points_expiring_soon_record(now=timezone.now())
