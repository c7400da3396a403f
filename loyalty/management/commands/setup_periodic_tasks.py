"""Declare every schedule in one place (run on deploy; safe to rerun: it updates in place)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q
from django_celery_beat.models import CrontabSchedule, PeriodicTask

# name: (task, crontab fields, description)
SCHEDULES = {
    # https://crontab.guru/#*_*_*_*_*
    "loyalty: deliver webhooks": (
        "loyalty.tasks.webhooks_dispatch_and_deliver_task", {"minute": "*"},
        "Fan new events out to webhook endpoints and send due deliveries (retries back off).",
    ),
    # https://crontab.guru/#*/15_*_*_*_*
    "loyalty: expire due points": (
        "loyalty.tasks.points_expire_due_task", {"minute": "*/15"}, "Expire lots whose expiry has passed.",
    ),
    # https://crontab.guru/#0_9_*_*_*
    "loyalty: points expiring soon": (
        "loyalty.tasks.points_expiring_soon_task", {"minute": "0", "hour": "9"},
        "Record points.expiring_soon for members whose points expire in 30 or 7 days (reminders, webhooks).",
    ),
    # https://crontab.guru/#59_23_*_*_*
    "loyalty: yearly clearance": (
        "loyalty.tasks.points_clearance_task", {"minute": "59", "hour": "23"},
        "On the clearance date (program settings), clear what expires that day.",
    ),
    # https://crontab.guru/#*/10_*_*_*_*
    "loyalty: release pending points": (
        "loyalty.tasks.points_release_pending_task", {"minute": "*/10"}, "Make pending points spendable.",
    ),
    # https://crontab.guru/#30_2_*_*_*
    "loyalty: tier evaluation": (
        "loyalty.tasks.tiers_evaluate_task", {"minute": "30", "hour": "2"},
        "Tier reviews, grace periods and downgrades due; upgrades the figures support (consecutive months).",
    ),
    # https://crontab.guru/#5_*_*_*_*
    "rewards: expire due coupons": (
        "rewards.tasks.coupons_expire_due_task", {"minute": "5"}, "Mark issued coupons past their end as expired.",
    ),
    # https://crontab.guru/#20_*_*_*_*
    "rewards: expire stored-value bonus": (
        "rewards.tasks.wallet_bonus_expire_due_task", {"minute": "20"},
        "Expire top-up bonus (stored value) whose expiry has passed; spends already skip it.",
    ),
}


class Command(BaseCommand):
    help = "Create or update the Celery beat schedules (django-celery-beat)."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, (task, fields, description) in SCHEDULES.items():
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=fields.get("minute", "*"), hour=fields.get("hour", "*"), day_of_week=fields.get("day_of_week", "*"),
                day_of_month=fields.get("day_of_month", "*"), month_of_year=fields.get("month_of_year", "*"),
                timezone=settings.TIME_ZONE,
            )
            PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": task, "crontab": crontab, "interval": None, "enabled": True,
                                     "description": description},
            )
            self.stdout.write(f"scheduled {name}: {task}")
        ours = Q(name__startswith="loyalty: ") | Q(name__startswith="rewards: ")
        stale = PeriodicTask.objects.filter(ours).exclude(name__in=SCHEDULES)
        for task in stale:
            self.stdout.write(f"removed stale schedule {task.name}")
        stale.delete()
