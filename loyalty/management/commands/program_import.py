"""Check a program file and apply it, all or nothing (docs/program-file.md).

Exit status 0: applied (or, with --dry-run, would apply) and the changes are listed; 1: the file has
problems, each printed with its path on standard error, and nothing was written.
"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.program_io import ProgramFileInvalid, problem_lines, program_file_parse, program_import


class Command(BaseCommand):
    help = gettext_lazy("Check a program file (YAML or JSON) and apply it in one transaction, or nothing at all.")

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help=gettext_lazy("The program file; - reads standard input."))
        parser.add_argument("--dry-run", action="store_true",
                            help=gettext_lazy("Check the file and list the changes without making them."))

    def handle(self, *args, **options):
        name = options["file"]
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(_("Cannot read %(file)s: %(error)s") % {"file": name, "error": exc.strerror}) from None
        fmt = "json" if name.lower().endswith(".json") else None
        try:
            report = program_import(program_file_parse(raw, fmt=fmt), dry_run=options["dry_run"])
        except ProgramFileInvalid as exc:
            problems = exc.problems
        else:
            problems = report.problems
        if problems:
            for line in problem_lines(problems):
                self.stderr.write(line)
            raise CommandError(_("%(count)s problem(s) in %(file)s; nothing was changed.") % {
                "count": len(problems), "file": name})
        if report.dry_run:
            self.stdout.write(_("Dry run: nothing was changed. Importing %(file)s would make these changes:")
                              % {"file": name})
        for line in report.summary_lines():
            self.stdout.write(line)
        if report.applied:
            self.stdout.write(self.style.SUCCESS(_("Program imported from %(file)s.") % {"file": name}))
