"""API: the program — points value, tiers with thresholds and benefits, and the earning rules in force,
in words, in the request's language (Accept-Language)."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.members import error_responses
from loyalty.explain import rule_set_describe
from loyalty.models import Scope
from loyalty.rules import rule_set_compile, rule_set_in_force
from loyalty.services import program_settings_get
from loyalty.services.tiers import tiers_ordered

MONEY = {"max_digits": 14, "decimal_places": 2}


class PointsValueSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    amount = serializers.DecimalField(**MONEY, help_text="What ``points`` points are worth when paying with them.")


class TierOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    spend_threshold = serializers.DecimalField(**MONEY, allow_null=True)
    points_threshold = serializers.IntegerField(allow_null=True)
    earn_multiplier = serializers.DecimalField(max_digits=6, decimal_places=2)
    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2)
    perks = serializers.CharField(allow_blank=True)


class RulesSerializer(serializers.Serializer):
    name = serializers.CharField()
    effective_from = serializers.DateTimeField(allow_null=True)
    text = serializers.ListField(child=serializers.CharField(), help_text="The rules in words, base rate first.")


class ProgramOutputSerializer(serializers.Serializer):
    points_name = serializers.CharField()
    currency = serializers.CharField()
    time_zone = serializers.CharField()
    points_value = PointsValueSerializer()
    expiry_policy = serializers.CharField()
    pending_days = serializers.IntegerField()
    tiers = TierOutputSerializer(many=True)
    rules = RulesSerializer()


class ProgramApi(APIView):
    required_scope = Scope.PROGRAM_READ

    @extend_schema(
        operation_id="program_retrieve", summary="The program: points value, tiers and the rules in force, in words",
        responses={200: ProgramOutputSerializer, **error_responses(401, 403)},
        examples=[OpenApiExample("Program", response_only=True, value={
            "points_name": "积分", "currency": "CNY", "time_zone": "Asia/Shanghai",
            "points_value": {"points": 100, "amount": "1.00"}, "expiry_policy": "MONTHS", "pending_days": 0,
            "tiers": [{"code": "silver", "name": "银卡", "rank": 0, "spend_threshold": "0.00", "points_threshold": None,
                       "earn_multiplier": "1.00", "discount_percent": "0.00", "perks": ""}],
            "rules": {"name": "2026 春季", "effective_from": "2026-03-01T00:00:00+08:00",
                      "text": ["Earn 1 point for every ¥1.00 spent"]}})],
    )
    def get(self, request):
        program = program_settings_get()
        tiers = tiers_ordered()
        rule_set = rule_set_in_force(at=timezone.now())
        compiled = rule_set_compile(rule_set, time_zone=program.time_zone)
        return Response(ProgramOutputSerializer({
            "points_name": program.points_name, "currency": program.currency, "time_zone": program.time_zone,
            "points_value": {"points": program.points_value_points, "amount": program.points_value_amount},
            "expiry_policy": program.expiry_policy, "pending_days": program.pending_days,
            "tiers": tiers,
            "rules": {"name": str(compiled.name), "effective_from": rule_set.effective_from if rule_set else None,
                      "text": rule_set_describe(compiled, currency=program.currency,
                                                tier_names={t.code: t.name for t in tiers})},
        }).data)
