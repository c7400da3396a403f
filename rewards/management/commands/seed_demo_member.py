"""Create the portal demo member (``rewards.demo``) once, and print its sign-in every run.

The password is kept in ``var/demo-member-login.txt`` (var/ is not committed), like ``ensure_admin``
keeps the admin's. Once the member exists the command changes nothing: a password the member changed
in the portal stays changed, and the command says so.
"""

import secrets

from django.contrib.auth.hashers import check_password
from django.core.management.base import BaseCommand
from django.utils import timezone

from members.models import MemberLogin
from rewards.demo import (
    DEMO_MEMBER_PHONE,
    PORTAL_URL,
    demo_member_get,
    demo_member_login_file,
    demo_member_seed,
)


class Command(BaseCommand):
    help = "Create the demo portal member with a year of history if missing, and print its phone and password."

    def handle(self, *args, **options):
        path = demo_member_login_file()
        if demo_member_get() is None:
            password = f"demo-{secrets.token_urlsafe(9)}"
            result = demo_member_seed(now=timezone.now(), password=password)
            if result.created:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.chmod(0o600)
                path.write_text(password + "\n", encoding="utf-8")
                self.stdout.write(self.style.SUCCESS(
                    f"Created the demo member {result.member.member_number}; password saved in {path}."))
        member = demo_member_get()
        login = MemberLogin.objects.filter(pk=member.pk).first()
        stored = path.read_text(encoding="utf-8").strip() if path.exists() else ""
        if login is not None and stored and check_password(stored, login.password):
            self.stdout.write(f"Member portal: {PORTAL_URL}  phone: {DEMO_MEMBER_PHONE}  password: {stored}")
            return
        reason = f"{path} does not match it (the password was changed)" if stored else f"{path} is missing"
        self.stdout.write(
            f"Member portal: {PORTAL_URL}  phone: {DEMO_MEMBER_PHONE}  password: unchanged ({reason}).\n"
            f"To set a new one: reset it at {PORTAL_URL}reset/ (with DEBUG on, the code is shown on screen)."
        )
