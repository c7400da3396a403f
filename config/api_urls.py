"""Routes of the partner API, mounted at /api/v1/. One APIView per operation."""

from django.urls import path

from members.api import StoreListApi
from rewards.api.urls import urlpatterns as spending_urlpatterns

app_name = "api"

urlpatterns = [
    path("stores", StoreListApi.as_view(), name="stores"),
]

urlpatterns += spending_urlpatterns
