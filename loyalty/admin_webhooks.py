"""Admin: the event log, webhook endpoints (re-enable) and the delivery log (replay)."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from loyalty.models import Event, WebhookDelivery, WebhookEndpoint
from loyalty.services.events import webhook_delivery_replay, webhook_endpoint_enable
from members.admin_mixins import ReadOnlyAdminMixin


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "type", "member", "occurred_at", "dispatched"]
    list_filter = ["type", "dispatched"]
    list_select_related = ["member"]
    show_full_result_count = False
    fields = ["id", "type", "member", "occurred_at", "payload", "dispatched", "created_at"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints are created by partners through the API (or here); a disabled one shows why."""

    list_display = ["url", "client", "is_active", "consecutive_failures", "disabled_at", "disabled_reason"]
    list_filter = ["is_active"]
    list_select_related = ["client"]
    readonly_fields = ["secret", "consecutive_failures", "disabled_at", "disabled_reason", "created_at", "updated_at"]
    actions = ["enable"]

    @admin.action(description=_("Re-enable the selected endpoints"))
    def enable(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint)
        self.message_user(request, ngettext("%(n)d endpoint enabled.", "%(n)d endpoints enabled.", queryset.count())
                          % {"n": queryset.count()}, messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        if not obj.secret:
            from loyalty.services.events import webhook_secret_new

            obj.secret = webhook_secret_new()
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "event", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at", "delivered_at"]
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    show_full_result_count = False
    fields = ["event", "endpoint", "status", "attempts", "last_status_code", "last_error", "next_attempt_at",
              "delivered_at", "created_at"]
    actions = ["replay"]

    def has_change_permission(self, request, obj=None) -> bool:  # the replay action needs it; fields stay read-only
        return request.user.has_perm("loyalty.change_webhookdelivery")

    @admin.action(description=_("Send the selected deliveries again"))
    def replay(self, request, queryset):
        now = timezone.now()
        for delivery in queryset:
            webhook_delivery_replay(delivery=delivery, now=now)
        self.message_user(request, ngettext("%(n)d delivery queued again.", "%(n)d deliveries queued again.",
                                            queryset.count()) % {"n": queryset.count()}, messages.SUCCESS)
