"""``manage.py backtest RULE_SET_NAME --from DATE --to DATE``: run a backtest now, in this process."""

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from loyalty.backtest import backtest_run, program_read
from loyalty.forms_rules import period_from_days
from loyalty.models import RuleSet


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"“{value}” is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = ("Run a rule set over the real purchases of a period (both days included, program time zone) and "
            "compare it with what the live rules issued. Reads only; writes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("rule_set", help="the rule set's name")
        parser.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD (included)")
        parser.add_argument("--json", action="store_true", help="print the full result as JSON")

    def handle(self, *args, **options):
        rule_set = RuleSet.objects.filter(name=options["rule_set"]).first()
        if rule_set is None:
            names = ", ".join(RuleSet.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"No rule set is named “{options['rule_set']}” (there are: {names}).")
        first, last = _date(options["first"]), _date(options["last"])
        if last < first:
            raise CommandError("--to is before --from.")
        start, end = period_from_days(first, last, program_read().tz)
        result = backtest_run(rule_set=rule_set, start=start, end=end)
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
            return
        self.stdout.write(self._table(result, first, last))

    def _table(self, r: dict, first: dt.date, last: dt.date) -> str:
        currency = r["currency"]

        def line(name, purchases, live, draft, live_value, draft_value, percent):
            pct = "—" if percent is None else f"{float(percent):+.1f}%"
            return (f"{name[:28]:<28} {purchases:>10,} {live:>14,} {live_value:>14} {draft:>14,} {draft_value:>14} "
                    f"{draft - live:>+12,} {pct:>9}")

        head = (f"{'':<28} {'purchases':>10} {'live points':>14} {'value ' + currency:>14} {'draft points':>14} "
                f"{'value ' + currency:>14} {'difference':>12} {'%':>9}")
        out = [f"Backtest of “{r['rule_set']['name']}” over {first} – {last} ({r['purchases']:,} purchases, "
               f"{r['seconds']:.2f} s). Nothing was written.", "", head,
               line("all purchases", r["purchases"], r["live"]["points"], r["draft"]["points"], r["live"]["value"],
                    r["draft"]["value"], r["difference"]["percent"])]
        for title, rows in (("by tier", r["by_tier"]), ("by store", r["by_store"])):
            out += ["", title]
            out += [line(f"  {row['name']} ({row['code']})" if row["code"] else f"  {row['name']}", row["purchases"],
                         row["live"], row["draft"],
                         row["live_value"], row["draft_value"], row["percent"]) for row in rows]
        if r["top_modifiers"]:
            out += ["", "what gave the points (this rule set)"]
            out += [f"  {m['name'][:40]:<40} {m['points']:>+14,} points on {m['purchases']:,} purchases"
                    for m in r["top_modifiers"]]
        out += ["", f"purchases earning more: {r['purchases_more']:,}; fewer: {r['purchases_fewer']:,}; "
                    f"the same: {r['purchases_same']:,}; cut by member caps: {r['cut_by_caps']:,} points"]
        return "\n".join(out)
