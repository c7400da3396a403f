import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from loyalty.api.fastlane import EarnFastLane  # noqa: E402 — needs the apps loaded above

application = EarnFastLane(application)  # plain POST /api/v1/purchases below Django's stack (API_FAST_LANE)
