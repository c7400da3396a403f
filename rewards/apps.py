from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = _("Rewards")

    def ready(self) -> None:
        from rewards import admin_catalogue, admin_coupons, admin_draws, admin_wallet  # noqa: F401
