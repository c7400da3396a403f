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


# ---- MEMBER PORTAL ----
# These forms only parse and check the shape of input; the services in members/services.py decide.


class PortalForm(forms.Form):
    """Labels without a trailing colon (the portal's style)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

class PortalPhoneField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Phone number"))
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)
        self.widget.attrs.update({"autocomplete": "tel", "inputmode": "tel"})


class PortalSignInForm(PortalForm):
    phone = PortalPhoneField()
    password = forms.CharField(
        label=_("Password"), max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    remember = forms.BooleanField(label=_("Keep me signed in"), required=False,
                                  help_text=_("Leave unticked on a shared device: you are signed out when the browser closes."))
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


class PortalPhoneForm(PortalForm):
    phone = PortalPhoneField(help_text=_("The number you gave when you joined."))


class NewPasswordMixin:
    """Two password fields that must match; strength is checked by the service (Django's validators)."""

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("new_password"), cleaned.get("new_password_again")
        if first and second and first != second:
            self.add_error("new_password_again", _("The two passwords do not match."))
        return cleaned


def _new_password_field(label):
    return forms.CharField(label=label, max_length=128, strip=False,
                           widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class PortalCodeForm(NewPasswordMixin, PortalForm):
    code = forms.CharField(
        label=_("Code from the message"), max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )
    new_password = _new_password_field(_("New password"))
    new_password_again = _new_password_field(_("New password again"))

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            raise forms.ValidationError(_("The code has 6 digits."), code="code_format")
        return code


class PortalPasswordChangeForm(NewPasswordMixin, PortalForm):
    current_password = forms.CharField(
        label=_("Current password"), max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = _new_password_field(_("New password"))
    new_password_again = _new_password_field(_("New password again"))


class PortalProfileForm(PortalForm):
    name = forms.CharField(label=_("Name"), max_length=100)
    email = forms.EmailField(label=_("Email"), required=False, max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    language = forms.ChoiceField(label=_("Language"), required=False)
    birthday = forms.DateField(label=_("Birthday"), required=False,
                               widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    sms = forms.BooleanField(label=_("SMS"), required=False)
    email_channel = forms.BooleanField(label=_("Email"), required=False)
    inbox = forms.BooleanField(label=_("Portal inbox"), required=False)
    marketing_consent = forms.BooleanField(
        label=_("Send me offers and news"), required=False,
        help_text=_("You can change this at any time. Service messages (points, expiry) do not depend on it."),
    )

    def __init__(self, *args, birthday_editable: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        from django.conf import settings

        self.fields["language"].choices = [("", _("Program default")), *settings.LANGUAGES]
        if not birthday_editable:
            del self.fields["birthday"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Enter your name."), code="name_required")
        return name

    def clean_birthday(self):
        birthday = self.cleaned_data.get("birthday")
        if birthday is not None and birthday > timezone.localdate():
            raise forms.ValidationError(_("The birthday is in the future."), code="birthday_future")
        return birthday


class PortalCloseForm(PortalForm):
    password = forms.CharField(
        label=_("Your password"), max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    confirm = forms.BooleanField(label=_("I understand that this cannot be undone."), required=True)
