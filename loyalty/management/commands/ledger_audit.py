from django.core.management.base import BaseCommand, CommandError

from loyalty.audit import ledger_audit_run


class Command(BaseCommand):
    help = "Check every ledger invariant; exit non-zero naming each broken account."

    def handle(self, *args, **options):
        problems = ledger_audit_run()
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"ledger audit failed: {len(problems)} problem(s)")
        self.stdout.write(self.style.SUCCESS("ledger audit clean"))
