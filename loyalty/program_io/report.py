"""What an import found: every problem with its path, or every change with the fields it changes."""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.exceptions import LoyaltyError
from loyalty.program_io.schema import Problem


class ProgramFileInvalid(LoyaltyError):
    """The file could not be read or has problems; ``problems`` lists every one as (path, message)."""

    code = "program_file_invalid"
    default_message = gettext_lazy("The program file has problems; nothing was changed.")
    http_status = 400

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(extra={"problems": [{"path": p, "message": m} for p, m in problems]})
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([str(self.message), *problem_lines(self.problems)])


KIND_LABELS = {
    "settings": gettext_lazy("Program settings"), "tier_policy": gettext_lazy("Tier policy"),
    "tier": gettext_lazy("Tier"), "rule_set": gettext_lazy("Rule set"), "modifier": gettext_lazy("Modifier"),
}
SINGLETONS = ("settings", "tier_policy")
ACTION_LABELS = {
    "create": gettext_lazy("created"), "update": gettext_lazy("updated"), "delete": gettext_lazy("deleted"),
}


@dataclass(frozen=True)
class Change:
    """One row the import creates, updates or deletes. ``fields``: (key, old, new) as the file writes them."""

    kind: str
    action: str
    name: str
    fields: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[self.kind])

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS[self.action])

    @property
    def fields_shown(self) -> list[tuple[str, str, str]]:
        return [(key, _short(old), _short(new)) for key, old, new in self.fields]

    def describe(self) -> str:
        if self.kind in SINGLETONS:
            line = _("%(kind)s: %(action)s") % {"kind": KIND_LABELS[self.kind], "action": ACTION_LABELS[self.action]}
        else:
            line = _("%(kind)s “%(name)s”: %(action)s") % {
                "kind": KIND_LABELS[self.kind], "name": self.name, "action": ACTION_LABELS[self.action]}
        if self.fields:
            line += " (" + "; ".join(f"{key}: {_short(old)} → {_short(new)}" for key, old, new in self.fields) + ")"
        return line


@dataclass
class ImportReport:
    """What ``program_import`` found: every problem, or the changes it made (or would make)."""

    problems: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False
    applied: bool = False
    stale: bool = False  # the confirmed plan no longer matches the database: nothing written

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def plan_digest(self) -> str:
        """Fingerprint of the changes; the admin's confirm step applies only the plan it previewed."""
        plan = [[c.kind, c.action, c.name, [list(f) for f in c.fields]] for c in self.changes]
        return hashlib.sha256(json.dumps(plan, ensure_ascii=False, default=str).encode()).hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {action: number}} for every kind and action (zeros included)."""
        counts = {kind: dict.fromkeys(ACTION_LABELS, 0) for kind in KIND_LABELS}
        for change in self.changes:
            counts[change.kind][change.action] += 1
        return counts

    def problem_lines(self) -> list[str]:
        return problem_lines(self.problems)

    def summary_lines(self) -> list[str]:
        if not self.changes:
            return [_("No changes: the program already matches the file.")]
        totals = {action: sum(1 for c in self.changes if c.action == action) for action in ACTION_LABELS}
        return [
            *(change.describe() for change in self.changes),
            _("%(created)s created, %(updated)s updated, %(deleted)s deleted.") % {
                "created": totals["create"], "updated": totals["update"], "deleted": totals["delete"]},
        ]


def problem_lines(problems: list[Problem]) -> list[str]:
    return [f"{path}: {message}" if path else message for path, message in problems]


def _short(value: Any) -> str:
    text = "—" if value is None or value == "" or value == [] else (
        json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value))
    return text if len(text) <= 60 else text[:57] + "…"
