import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from loyalty.api.fastlane import EarnFastLane  # noqa: E402 — needs the apps loaded above

application = EarnFastLane(application)  # plain POST /api/v1/purchases below Django's stack (API_FAST_LANE)

import gc  # noqa: E402

# What loading made (modules, settings, URL patterns, the schema) lives as long as the process: moved out of the
# collector's reach, so its collections stop walking it (about a tenth of an earn's instructions; decision 0008).
gc.freeze()
