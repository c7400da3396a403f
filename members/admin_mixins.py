"""Admin building blocks shared by every app's admin pages."""

from collections.abc import Callable
from typing import Any

from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


class ReadOnlyAdminMixin:
    """View only: no add, change or delete (ledger rows, logs). Every shown field is read-only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return flatten_fieldsets(self.get_fieldsets(request, obj))


class SingletonAdminMixin:
    """A single settings record (pk=1): the list page opens it; no add, no delete; saves only what changed.

    Subclasses set ``singleton_get`` to the service that returns (and creates) the record.
    """

    singleton_get: Callable[[], models.Model]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        record = type(self).singleton_get()
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[record.pk], current_app=self.admin_site.name)
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> models.Model | None:
        return type(self).singleton_get() if str(object_id) == "1" else None  # created on first visit

    def save_model(self, request: HttpRequest, obj: models.Model, form, change: bool) -> None:
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])
