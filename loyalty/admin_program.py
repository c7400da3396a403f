"""Admin pages for the program file: export (download) and import (upload → check → preview → confirm).

The views are mounted by ``config/urls.py`` at ``/admin/program/`` (``include("loyalty.admin_program")``,
before ``admin.site.urls``) and wrapped in ``admin.site.admin_view``: staff login, CSRF protection and
no caching, as every admin page. They parse the request and call ``loyalty.program_io``; the import is
checked as a dry run first and applied only when the merchant confirms the plan they saw — if the
program changed in between, the new plan is shown instead of applying.

Permissions: exporting needs view (or change) permission on program settings, tier policy, tiers, rule
sets and modifiers; importing needs every permission the import may use (change program settings and
tier policy; add, change and delete tiers, rule sets and modifiers).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.program_io import (
    MAX_FILE_BYTES,
    ImportReport,
    ProgramFileInvalid,
    program_export_text,
    program_file_parse,
    program_import,
)
from loyalty.services import program_settings_get

CONFIG_MODELS = ("programsettings", "tierpolicy", "tier", "ruleset", "modifier")
IMPORT_PERMISSIONS = (
    "loyalty.change_programsettings", "loyalty.change_tierpolicy",
    *(f"loyalty.{action}_{model}" for model in ("tier", "ruleset", "modifier") for action in ("add", "change", "delete")),
)


def program_export_allowed(user) -> bool:
    return all(user.has_perm(f"loyalty.view_{m}") or user.has_perm(f"loyalty.change_{m}") for m in CONFIG_MODELS)


def program_import_allowed(user) -> bool:
    return user.has_perms(IMPORT_PERMISSIONS)


class ProgramFileUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Program file"),
        help_text=gettext_lazy("A YAML or JSON program file, e.g. one exported from a test copy."),
    )

    def clean_file(self) -> tuple[str, str]:
        """(text, format): the file read as UTF-8; JSON when its name ends in .json, otherwise detected."""
        upload = self.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(_("The file is too large (at most %(limit)s bytes).") % {"limit": MAX_FILE_BYTES})
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(_("The file is not UTF-8 text.")) from None
        return text, "json" if upload.name.lower().endswith(".json") else ""


class ProgramImportConfirmForm(forms.Form):
    """The previewed file, posted back to be applied only if its plan is still the one shown."""

    content = forms.CharField(widget=forms.HiddenInput, strip=False, max_length=MAX_FILE_BYTES)
    format = forms.ChoiceField(choices=[("", "auto"), ("json", "json")], required=False, widget=forms.HiddenInput)
    plan = forms.RegexField(regex=r"^[0-9a-f]{64}$", widget=forms.HiddenInput)


def _import(text: str, fmt: str, **kwargs) -> ImportReport:
    try:
        data = program_file_parse(text, fmt=fmt or None)
    except ProgramFileInvalid as exc:
        return ImportReport(problems=exc.problems, dry_run=kwargs.get("dry_run", False))
    return program_import(data, **kwargs)


def program_export_view(request: HttpRequest) -> HttpResponse:
    """Download the program file (YAML; ``?format=json`` for JSON)."""
    if not program_export_allowed(request.user):
        raise PermissionDenied
    fmt = "json" if request.GET.get("format") == "json" else "yaml"
    response = HttpResponse(
        program_export_text(fmt=fmt),
        content_type="application/json; charset=utf-8" if fmt == "json" else "application/yaml; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="program-{timezone.localtime():%Y%m%d-%H%M}.{fmt}"'
    return response


def program_import_view(request: HttpRequest) -> HttpResponse:
    """Upload a file: every problem with its path, or the changes with a confirm button; confirm applies."""
    if not program_import_allowed(request.user):
        raise PermissionDenied
    upload_form, report, confirm_form, stale = ProgramFileUploadForm(), None, None, False
    if request.method == "POST" and "plan" in request.POST:
        posted = ProgramImportConfirmForm(request.POST)
        if not posted.is_valid():
            messages.error(request, _("The confirmation was not valid; upload the file again."))
            return HttpResponseRedirect(request.path)
        text, fmt = posted.cleaned_data["content"], posted.cleaned_data["format"]
        report = _import(text, fmt, confirm_plan=posted.cleaned_data["plan"])
        if report.applied:
            summary = report.summary_lines()[-1]
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=[program_settings_get()], action_flag=CHANGE,
                change_message=_("Imported a program file: %(summary)s") % {"summary": summary}, single_object=True,
            )
            messages.success(request, _("Program imported: %(summary)s") % {"summary": summary})
            return HttpResponseRedirect(reverse("admin:loyalty_programsettings_changelist"))
        if report.ok and not report.changes:
            messages.info(request, report.summary_lines()[0])
            return HttpResponseRedirect(request.path)
        if report.stale:  # the program changed since the preview: show the plan as it is now
            stale = True
            report = _import(text, fmt, dry_run=True)
        if report.ok and report.changes:
            confirm_form = ProgramImportConfirmForm(initial={"content": text, "format": fmt, "plan": report.plan_digest})
    elif request.method == "POST":
        upload_form = ProgramFileUploadForm(request.POST, request.FILES)
        if upload_form.is_valid():
            text, fmt = upload_form.cleaned_data["file"]
            report = _import(text, fmt, dry_run=True)
            if report.ok and report.changes:
                confirm_form = ProgramImportConfirmForm(initial={"content": text, "format": fmt,
                                                                 "plan": report.plan_digest})
    context = {
        **admin.site.each_context(request),
        "title": _("Import program file"),
        "upload_form": upload_form,
        "report": report,
        "confirm_form": confirm_form,
        "stale": stale,
        "can_export": program_export_allowed(request.user),
    }
    return TemplateResponse(request, "admin/program_io/import.html", context)


app_name = "program-io"
urlpatterns = [
    path("export/", admin.site.admin_view(program_export_view), name="export"),
    path("import/", admin.site.admin_view(program_import_view), name="import"),
]
