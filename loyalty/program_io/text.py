"""The program file as text: YAML (the default) or JSON, both read strictly."""

import json
from typing import Any

import yaml
from django.utils.translation import gettext as _

from loyalty.program_io.report import ProgramFileInvalid
from loyalty.program_io.schema import MAX_FILE_BYTES


class _Dumper(yaml.SafeDumper):
    """Readable YAML: lists indented under their key, short lists of plain values on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = bool(data) and all(isinstance(v, str | int) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def program_dump(data: dict[str, Any], *, fmt: str = "yaml") -> str:
    """The program file as text: YAML (default) or JSON."""
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    header = "# " + _("Program file: settings, tiers and earning rules. Format: docs/program-file.md") + "\n"
    return header + yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)


class _Loader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases (no blow-up from a small file) and without duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, _("anchors and aliases (*name) are not allowed"), self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | bool):
                continue  # not a valid key anyway: the schema check reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, _("the key “%(key)s” appears twice") % {"key": key}, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    data: dict = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(_("the key “%(key)s” appears twice") % {"key": key})
        data[key] = value
    return data


def program_file_parse(text: str | bytes, *, fmt: str | None = None) -> Any:
    """Read YAML (default) or JSON text into plain data; ``fmt=None`` takes text starting with ``{`` as JSON.

    Raises ``ProgramFileInvalid`` with the line and column of a syntax error.
    """
    if len(text) > MAX_FILE_BYTES:
        raise ProgramFileInvalid([("", _("The file is too large (at most %(limit)s bytes).") % {
            "limit": MAX_FILE_BYTES})])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ProgramFileInvalid([("", _("The file is not UTF-8 text."))]) from None
    text = text.removeprefix("\ufeff")
    if fmt == "json" or (fmt is None and text.lstrip().startswith("{")):
        try:
            return json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            raise ProgramFileInvalid([("", _("The file is not valid JSON (line %(line)s, column %(column)s): %(problem)s")
                                       % {"line": exc.lineno, "column": exc.colno, "problem": exc.msg})]) from None
        except ValueError as exc:
            raise ProgramFileInvalid([("", _("The file is not valid JSON: %(problem)s") % {"problem": exc})]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark else {"line": "?", "column": "?"}
        raise ProgramFileInvalid([("", _("The file is not valid YAML (line %(line)s, column %(column)s): %(problem)s")
                                   % {**where, "problem": exc.problem or exc.context})]) from None
    except yaml.YAMLError as exc:
        raise ProgramFileInvalid([("", _("The file is not valid YAML: %(problem)s") % {"problem": exc})]) from None
