"""Write the program configuration (settings, tiers, rule sets) as a program file (docs/program-file.md)."""

from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.program_io import program_export_text


class Command(BaseCommand):
    help = gettext_lazy("Export the program (settings, tiers, rule sets) as a YAML or JSON program file.")

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml",
                            help=gettext_lazy("File format (default: yaml)."))
        parser.add_argument("--output", "-o", metavar="FILE",
                            help=gettext_lazy("Write to this file instead of standard output."))

    def handle(self, *args, **options):
        text = program_export_text(fmt=options["format"])
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stdout.write(_("Program written to %(file)s.") % {"file": options["output"]})
        else:
            self.stdout.write(text, ending="")
