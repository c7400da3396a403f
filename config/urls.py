from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("portal/", include("config.portal_urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the portal's language switch
    path("healthz", healthz, name="healthz"),
    path("admin/program/", include("loyalty.admin_program")),  # before the admin's catch-all
    path("admin/alliance/", include("loyalty.admin_alliance")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
