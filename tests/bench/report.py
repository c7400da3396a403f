"""The bench's tables, and their sections in docs/benchmarks.md.

Each suite's section lies between ``<!-- bench:<suite> -->`` and ``<!-- /bench:<suite> -->``; the runner
replaces it on each recorded run (``section_write``). The rules suite keeps one row per database kind
(SQLite, PostgreSQL) in its table, so a run on one database keeps the other's figures (``rules_section``).
"""

import datetime as dt
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
HEADER = ("| date | machine | database | evaluation median µs | mean µs | p95 µs | backtest 100k s | purchases/s |\n"
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def table(*, evaluation: dict, backtest: dict, database: str) -> str:
    rows = [
        ("rule evaluation per purchase (median)", f"{evaluation['median_us']:.1f} µs"),
        ("rule evaluation per purchase (mean)", f"{evaluation['mean_us']:.1f} µs"),
        ("rule evaluation per purchase (p95)", f"{evaluation['p95_us']:.1f} µs"),
        ("  over", f"{evaluation['evaluations']:,} evaluations, {evaluation['modifiers']} modifiers, "
                   f"{evaluation['lines']} lines, {evaluation['fired_per_purchase']:.1f} modifiers fire per purchase"),
        (f"backtest of {backtest['purchases']:,} purchases", f"{backtest['seconds']:.2f} s "
                                                              f"({backtest['per_second']:,.0f} purchases/s)"),
        ("  database", database),
        ("  data", f"{backtest['members']:,} members, {backtest['stores']} stores, one year; "
                   f"inserted in {backtest['insert_seconds']:.1f} s"),
        ("  live vs draft points", f"{backtest['live_points']:,} → {backtest['draft_points']:,} "
                                   f"({backtest['percent']}%)"),
        ("  target", ("under 30 s: " + ("met" if backtest["seconds"] < 30 else "NOT MET"))
         if backtest["purchases"] == 100_000 else "under 30 s for 100,000 purchases (run without --purchases)"),
    ]
    width = max(len(name) for name, _value in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def markers(suite: str) -> tuple[str, str]:
    return f"<!-- bench:{suite} -->", f"<!-- /bench:{suite} -->"


def section_read(suite: str) -> str:
    """The current body of a suite's section ("" when absent)."""
    start, end = markers(suite)
    text = DOC.read_text() if DOC.exists() else ""
    if start not in text or end not in text:
        return ""
    return text.split(start, 1)[1].split(end, 1)[0]


def section_write(*, suite: str, title: str, body: str) -> Path:
    """Replace the suite's section in docs/benchmarks.md (appended under ``## title`` when missing)."""
    start, end = markers(suite)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _old, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{body.strip()}\n{end}{tail}")
    return DOC


def rules_section(*, evaluation: dict, backtest: dict, database: str) -> str:
    """The rules table: this run's row replaces the row of the same database kind, the others stay."""
    row = (f"| {dt.datetime.now(dt.UTC).date().isoformat()} | {machine()} | {database} | {evaluation['median_us']:.1f} | "
           f"{evaluation['mean_us']:.1f} | {evaluation['p95_us']:.1f} | {backtest['seconds']:.2f} | "
           f"{backtest['per_second']:,.0f} |")
    kind = database.split()[0]  # one row per database kind (SQLite, PostgreSQL)
    rows = [line for line in section_read("rules").strip().splitlines() if line.startswith("| 2")]
    rows = [line for line in rows if not re.match(rf"\|[^|]*\|[^|]*\| {kind}\b", line)] + [row]
    rows.sort(key=lambda line: line.split("|")[3].strip())
    return f"{HEADER}\n" + "\n".join(rows)
