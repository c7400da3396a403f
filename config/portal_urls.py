"""The member portal (/portal/): one URL namespace, ``portal``, composed from each app's portal views."""

from loyalty import urls as loyalty_urls
from members import urls as members_urls
from rewards import urls as rewards_urls

app_name = "portal"
urlpatterns = [*members_urls.urlpatterns, *loyalty_urls.urlpatterns, *rewards_urls.urlpatterns]
