"""API: webhook endpoints (subscribe, list, delete) and the event log. Scope ``webhooks:manage``."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import idempotent
from loyalty.models import Event, EventType, Scope, WebhookEndpoint
from loyalty.services.events import webhook_secret_new


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    event_types = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class WebhookEndpointCreatedSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(help_text="The signing secret, shown only in this response.")


class EventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    member = serializers.IntegerField(source="member_id", allow_null=True)
    occurred_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    data = serializers.JSONField(source="payload")


class WebhookEndpointListCreateApi(APIView):
    required_scope = Scope.WEBHOOKS_MANAGE

    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=500)
        event_types = serializers.ListField(child=serializers.ChoiceField(choices=EventType.values), required=False,
                                            default=list, help_text="Empty: every event.")

        def validate_url(self, value: str) -> str:
            if not value.lower().startswith(("https://", "http://")):
                raise serializers.ValidationError("Use an http(s) URL.")
            return value

    InputSerializer.__name__ = "WebhookEndpointInput"

    @extend_schema(operation_id="webhook_endpoints_list", responses=WebhookEndpointOutputSerializer(many=True))
    def get(self, request):
        endpoints = WebhookEndpoint.objects.filter(client=request.auth).order_by("id")
        return Response(WebhookEndpointOutputSerializer(endpoints, many=True).data)

    @extend_schema(operation_id="webhook_endpoints_create", request=InputSerializer,
                   responses={201: WebhookEndpointCreatedSerializer},
                   examples=[OpenApiExample("Points events", request_only=True, value={
                       "url": "https://pos.example.com/loyalty-hook", "event_types": ["points.earned", "tier.changed"]})])
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.create(
                client=request.auth, url=data.validated_data["url"], secret=webhook_secret_new(),
                event_types=sorted(set(data.validated_data["event_types"])),
            )
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDeleteApi(APIView):
    required_scope = Scope.WEBHOOKS_MANAGE

    @extend_schema(operation_id="webhook_endpoints_delete", responses={204: None})
    def delete(self, request, endpoint_id: int):
        endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id, client=request.auth)  # only its own
        endpoint.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventListApi(APIView):
    """The event log, newest first, cursor-paginated; ``?type=points.earned`` filters."""

    required_scope = Scope.WEBHOOKS_MANAGE

    @extend_schema(operation_id="events_list", responses=inline_serializer("PaginatedEventList", fields={
        "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
        "results": EventOutputSerializer(many=True)}))
    def get(self, request):
        from loyalty.api.pagination import NewestFirstCursor

        events = Event.objects.all()
        if event_type := request.query_params.get("type"):
            events = events.filter(type=event_type)
        paginator = NewestFirstCursor()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventOutputSerializer(page, many=True).data)


urlpatterns = [
    path("webhook-endpoints", WebhookEndpointListCreateApi.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", WebhookEndpointDeleteApi.as_view(),
                                        name="webhook-endpoint"),
    path("events", EventListApi.as_view(), name="events"),
]
