"""API: stores."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from members.models import Store


class StoreOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class StoreListApi(APIView):
    """Active stores. A client bound to a store sees only that store."""

    required_scope = None

    @extend_schema(responses=StoreOutputSerializer(many=True), operation_id="stores_list")
    def get(self, request):
        stores = Store.objects.filter(is_active=True).order_by("code")
        if request.auth.store_id:
            stores = stores.filter(pk=request.auth.store_id)
        return Response(StoreOutputSerializer(stores, many=True).data)
