"""Program as code: the whole configuration (settings, tiers, rule sets) as one YAML or JSON file.

``program_export()`` reads the program into the file's structure. ``program_import()`` first checks the
whole file — its shape (types, choices, required and unknown keys), then the domain validators
``rule_set_problems`` and ``tiers_problems``, file-wide rules, the stores, tiers, members and purchases
it refers to, and model validation — and collects every problem with its path in the file. Only a file
without problems is applied, all of it in one transaction. Rows that already match the file are not
written, so importing what was just exported writes nothing. Format: docs/program-file.md.

Invariants: nothing is written when any problem is found; a tier that members are at, or that purchases
or tier history refer to, is never deleted; nor is a rule set that purchases were earned under.

Modules: ``schema`` (keys, reading and writing values), ``text`` (YAML/JSON), ``checks`` (validation),
``report`` (problems and changes), ``services`` (export, import, load).
"""

from loyalty.program_io.report import Change, ImportReport, ProgramFileInvalid, problem_lines
from loyalty.program_io.schema import (
    CONDITION_SPECS,
    FORMAT_VERSION,
    MAX_FILE_BYTES,
    MODIFIER_SPECS,
    POLICY_SPECS,
    RULE_SET_SPECS,
    SETTINGS_SPECS,
    TIER_SPECS,
)
from loyalty.program_io.services import program_export, program_export_text, program_import, program_load
from loyalty.program_io.text import program_dump, program_file_parse

__all__ = [
    "CONDITION_SPECS",
    "FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "MODIFIER_SPECS",
    "POLICY_SPECS",
    "RULE_SET_SPECS",
    "SETTINGS_SPECS",
    "TIER_SPECS",
    "Change",
    "ImportReport",
    "ProgramFileInvalid",
    "problem_lines",
    "program_dump",
    "program_export",
    "program_export_text",
    "program_file_parse",
    "program_import",
    "program_load",
]
