"""Admin forms for members. They validate and normalise input; saving is the admin's job via services."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member
from members.services import phone_normalise

PHONE_TAKEN = _("A member with this phone number already exists.")


class MemberFieldsMixin:
    """Phone in E.164 (so the unique check compares like with like) and no birthday in the future."""

    def clean_phone(self) -> str:
        # phone_normalise raises ValidationError with a readable, translated message.
        return phone_normalise(phone=self.cleaned_data.get("phone", ""))

    def clean_birthday(self):
        birthday = self.cleaned_data.get("birthday")
        if birthday is not None and birthday > timezone.localdate():
            raise forms.ValidationError(_("The birthday is in the future."), code="birthday_future")
        return birthday


class MemberAddForm(MemberFieldsMixin, forms.ModelForm):
    """Enrolment input. Never saved directly: ``MemberAdmin.add_view`` passes it to ``member_enrol``."""

    member_number = forms.CharField(
        label=_("member number"), max_length=20, required=False,
        help_text=_("Leave empty to generate one (12 digits). Fill in only for a pre-printed card."),
    )

    class Meta:
        model = Member
        fields = ["phone", "name", "birthday", "home_store", "member_number"]
        error_messages = {
            "phone": {"unique": PHONE_TAKEN},
            "member_number": {"unique": _("This member number is taken.")},
        }

    def clean_member_number(self) -> str | None:
        return self.cleaned_data.get("member_number", "").strip() or None


class MemberChangeForm(MemberFieldsMixin, forms.ModelForm):
    """Plain profile edits. Points never change here: they move only through ledger services."""

    class Meta:
        model = Member
        fields = ["phone", "name", "birthday", "home_store", "status"]
        error_messages = {"phone": {"unique": PHONE_TAKEN}}
