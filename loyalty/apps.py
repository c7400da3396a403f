from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Points and rules")

    def ready(self) -> None:
        # Admin pages beyond loyalty/admin.py, one module per concern.
        from loyalty import admin_api, admin_program, admin_rules, admin_tiers, admin_webhooks  # noqa: F401
        from loyalty.config import config_signals_connect

        config_signals_connect()  # the earn path's configuration cache follows every change
