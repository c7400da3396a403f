"""The demo superuser for ``make run``: created once with a random password, its login printed every run.

The password is kept in ``var/admin-login.txt`` (var/ is not committed). Once the user exists the
command never changes it: a password changed with ``changepassword`` stays changed.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

USERNAME = "admin"
ADMIN_URL = "http://127.0.0.1:8000/admin/"


def login_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-login.txt"


class Command(BaseCommand):
    help = f"Create the superuser '{USERNAME}' with a random password if missing, and print the admin login."

    def handle(self, *args, **options):
        user_model = get_user_model()
        path = login_file()
        try:
            user = user_model._default_manager.get(username=USERNAME)
        except user_model.DoesNotExist:
            password = secrets.token_urlsafe(12)
            with transaction.atomic():  # the user exists only if its password was saved
                user_model._default_manager.create_superuser(username=USERNAME, email="", password=password)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.chmod(0o600)  # also when the file was already there
                path.write_text(password + "\n", encoding="utf-8")
            self.stdout.write(self.style.SUCCESS(f"Created superuser '{USERNAME}'; password saved in {path}."))
            self._print_login(password)
            return

        stored = path.read_text(encoding="utf-8").strip() if path.exists() else ""
        if stored and user.check_password(stored):
            self._print_login(stored)
            return
        reason = f"{path} does not match it (the password was changed)" if stored else f"{path} is missing"
        self.stdout.write(
            f"Admin: {ADMIN_URL}  user: {USERNAME}  password: unchanged ({reason}).\n"
            f"To set a new one: python manage.py changepassword {USERNAME}"
        )

    def _print_login(self, password: str) -> None:
        self.stdout.write(f"Admin: {ADMIN_URL}  user: {USERNAME}  password: {password}")
