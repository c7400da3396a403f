"""Routes of the partner API, mounted at /api/v1/. One APIView per operation."""

from django.urls import path

from members.api import StoreListApi

app_name = "api"

urlpatterns = [
    path("stores", StoreListApi.as_view(), name="stores"),
]
