"""Create a partner API client and print its key once, as the last line of output.

    manage.py create_api_key --name POS [--scopes members:read,purchases:write] [--store SH001]

With no ``--scopes`` the client gets every scope. The key is stored hashed and cannot be shown again.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty.exceptions import LoyaltyError
from loyalty.models import Scope
from loyalty.services.api_clients import api_client_create
from members.models import Store


class Command(BaseCommand):
    help = "Create an API client and print its key (shown once, last line)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="A name for the integration, e.g. POS.")
        parser.add_argument("--scopes", action="append", default=[],
                            help=f"Comma-separated scopes (repeatable); all when omitted. One of: {', '.join(Scope.values)}")
        parser.add_argument("--store", default=None, help="Store code to bind the client to.")

    def handle(self, *args, name, scopes, store, **options):
        wanted = [s.strip() for chunk in scopes for s in chunk.split(",") if s.strip()]
        bound = None
        if store:
            bound = Store.objects.filter(code=store).first()
            if bound is None:
                raise CommandError(_("No store with the code %(code)s.") % {"code": store})
        try:
            client, key = api_client_create(name=name, scopes=wanted or None, store=bound)
        except LoyaltyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(_("Created API client %(name)s (%(prefix)s).") % {"name": client.name, "prefix": client.key_prefix})
        self.stdout.write(_("Scopes: %(scopes)s") % {"scopes": ", ".join(client.scopes)})
        if bound is not None:
            self.stdout.write(_("Bound to store: %(code)s") % {"code": bound.code})
        self.stdout.write(_("The key is shown only now; keep it secret:"))
        self.stdout.write(key)
