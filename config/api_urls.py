"""Routes of the partner API, mounted at /api/v1/. One APIView per operation."""

from django.urls import path

from loyalty.api.members import (
    MemberAdjustmentApi,
    MemberDetailApi,
    MemberListCreateApi,
    MemberLotListApi,
    MemberTransferListApi,
)
from loyalty.api.program import ProgramApi
from loyalty.api.purchases import PurchaseCreateApi, PurchaseDetailApi, PurchasePreviewApi, RefundCreateApi
from loyalty.api.purchases_batch import PurchaseBatchApi
from loyalty.api.webhooks import urlpatterns as webhook_urlpatterns
from members.api import StoreListApi
from rewards.api.urls import urlpatterns as spending_urlpatterns

app_name = "api"

urlpatterns = [
    path("stores", StoreListApi.as_view(), name="stores"),
    path("members", MemberListCreateApi.as_view(), name="members"),
    path("members/<int:member_id>", MemberDetailApi.as_view(), name="member"),
    path("members/<int:member_id>/transfers", MemberTransferListApi.as_view(), name="member-transfers"),
    path("members/<int:member_id>/lots", MemberLotListApi.as_view(), name="member-lots"),
    path("members/<int:member_id>/adjustments", MemberAdjustmentApi.as_view(), name="member-adjustments"),
    path("purchases", PurchaseCreateApi.as_view(), name="purchases"),
    path("purchases/preview", PurchasePreviewApi.as_view(), name="purchase-preview"),
    path("purchases/batch", PurchaseBatchApi.as_view(), name="purchase-batch"),
    path("purchases/<int:purchase_id>", PurchaseDetailApi.as_view(), name="purchase"),
    path("purchases/<int:purchase_id>/refunds", RefundCreateApi.as_view(), name="purchase-refunds"),
    path("program", ProgramApi.as_view(), name="program"),
]

urlpatterns += spending_urlpatterns
urlpatterns += webhook_urlpatterns
