import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def printed_password(output: str) -> str:
    match = re.search(r"^Admin: http://127\.0\.0\.1:8000/admin/  user: admin  password: (\S+)$", output, re.M)
    assert match, output
    return match.group(1)


class TestEnsureAdmin:
    def test_creates_superuser_with_random_password_and_saves_it(self, var_dir):
        output = ensure_admin()

        password = printed_password(output)
        user = get_user_model().objects.get(username="admin")
        assert user.is_superuser and user.is_staff and user.is_active
        assert user.check_password(password)
        assert len(password) >= 16
        login_file = var_dir / "admin-login.txt"
        assert login_file.read_text().strip() == password
        assert login_file.stat().st_mode & 0o077 == 0

    def test_second_run_prints_the_same_login_and_creates_nothing(self, var_dir):
        first = printed_password(ensure_admin())

        second = ensure_admin()

        assert printed_password(second) == first
        assert "Created" not in second
        assert get_user_model().objects.filter(username="admin").count() == 1

    def test_existing_user_without_file_keeps_its_password(self, var_dir):
        get_user_model().objects.create_superuser(username="admin", email="", password="chosen-by-hand-1")

        output = ensure_admin()

        assert "password: unchanged" in output
        assert "is missing" in output
        assert "manage.py changepassword admin" in output
        assert get_user_model().objects.get(username="admin").check_password("chosen-by-hand-1")
        assert not (var_dir / "admin-login.txt").exists()

    def test_password_changed_since_it_was_saved_is_not_printed(self, var_dir):
        stale = printed_password(ensure_admin())
        user = get_user_model().objects.get(username="admin")
        user.set_password("changed-by-hand-2")
        user.save(update_fields=["password"])

        output = ensure_admin()

        assert stale not in output
        assert "password: unchanged" in output
        assert "manage.py changepassword admin" in output
