"""One error shape for every response: ``{"error": {"code", "message", "details"}}``, message in the
request's language. Domain refusals (LoyaltyError) keep their stable codes."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response

from loyalty.exceptions import LoyaltyError

logger = logging.getLogger(__name__)

DRF_CODES = {
    exceptions.NotAuthenticated: ("unauthenticated", status.HTTP_401_UNAUTHORIZED),
    exceptions.AuthenticationFailed: ("unauthenticated", status.HTTP_401_UNAUTHORIZED),
    exceptions.PermissionDenied: ("insufficient_scope", status.HTTP_403_FORBIDDEN),
    exceptions.NotFound: ("not_found", status.HTTP_404_NOT_FOUND),
    exceptions.MethodNotAllowed: ("method_not_allowed", status.HTTP_405_METHOD_NOT_ALLOWED),
    exceptions.NotAcceptable: ("not_acceptable", status.HTTP_406_NOT_ACCEPTABLE),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    exceptions.Throttled: ("rate_limited", status.HTTP_429_TOO_MANY_REQUESTS),
    exceptions.ParseError: ("malformed_request", status.HTTP_400_BAD_REQUEST),
}


def error_response(*, code: str, message: str, http_status: int, details: dict | None = None, headers=None) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details or {}}}, status=http_status,
                    headers=headers)


def _field_details(detail) -> dict:
    if isinstance(detail, dict):
        return {k: _field_details(v) if isinstance(v, dict) else [str(x) for x in (v if isinstance(v, list) else [v])]
                for k, v in detail.items()}
    return {"non_field_errors": [str(x) for x in (detail if isinstance(detail, list) else [detail])]}


def api_exception_handler(exc, context):
    if isinstance(exc, LoyaltyError):
        details = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list | dict) or v is None}
        return error_response(code=exc.code, message=str(exc.message), http_status=exc.http_status, details=details)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        return error_response(code="invalid_request", message=_("The request is not valid; see details."),
                              http_status=status.HTTP_400_BAD_REQUEST, details=_field_details(exc.detail))
    for cls, (code, http_status) in DRF_CODES.items():
        if isinstance(exc, cls):
            headers = {}
            if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
                headers["Retry-After"] = str(int(exc.wait) + 1)
            if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
                headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return error_response(code=code, message=str(exc.detail), http_status=http_status, headers=headers)
    if isinstance(exc, exceptions.APIException):
        return error_response(code=str(exc.default_code), message=str(exc.detail), http_status=exc.status_code)
    logger.exception("unhandled API error", exc_info=exc)
    return error_response(code="internal_error", message=_("Something went wrong on our side; it was logged."),
                          http_status=status.HTTP_500_INTERNAL_SERVER_ERROR)
