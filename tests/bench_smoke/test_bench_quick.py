"""Smoke tests of the bench harness (tests/bench): bulk members, the runner's sections, the api suite's guard.

The suites themselves are measured by ``make bench``, not here; these check the parts that could silently
corrupt a measurement or the ledger.
"""

import argparse

import pytest

from loyalty.audit import ledger_audit_run
from loyalty.models import Account, AccountKind, Event, EventType
from loyalty.services import member_enrol
from members.models import Member
from members.services import luhn_is_valid
from tests.bench import report
from tests.bench.bulk import member_number_for, members_bulk_create, phone_for, points_account_ids
from tests.bench.runner import SUITES, BenchContext, parser


@pytest.mark.django_db
def test_bulk_members_are_what_enrolment_makes(audit_clean, store, now):
    ids = members_bulk_create(count=30, start=7, home_store_id=store.pk)
    assert len(ids) == 30 and ids == sorted(ids)
    first = Member.objects.get(pk=ids[0])
    assert (first.member_number, first.phone, first.home_store_id) == (member_number_for(7), phone_for(7), store.pk)
    assert luhn_is_valid(first.member_number)
    kinds = sorted(Account.objects.filter(member_id=ids[0]).values_list("kind", "unit", "credits_posted"))
    assert kinds == [(AccountKind.MEMBER_PENDING, "POINTS", 0), (AccountKind.MEMBER_POINTS, "POINTS", 0)]
    assert Account.objects.filter(member_id__in=ids).count() == 60
    event = Event.objects.get(member_id=ids[-1])
    assert event.type == EventType.MEMBER_CREATED
    assert event.payload == {"member_number": member_number_for(36), "name": "Member 36", "home_store": store.code}
    assert set(points_account_ids(ids)) == set(ids)
    # A next batch and a real enrolment do not collide with bulk members.
    more = members_bulk_create(count=5, start=37, events=False)
    assert not Event.objects.filter(member_id__in=more).exists()
    member_enrol(phone="+8613812345678", name="Real", now=now)
    assert ledger_audit_run() == []


def test_bulk_members_refuse_indexes_out_of_range():
    with pytest.raises(ValueError):
        members_bulk_create(count=2, start=10**8 - 1)


def test_section_write_replaces_only_its_section(tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## Rules\n\n<!-- bench:rules -->\nold rules\n<!-- /bench:rules -->\n\nafter\n")
    monkeypatch.setattr(report, "DOC", doc)
    report.section_write(suite="rules", title="Rules", body="new rules\n")
    report.section_write(suite="api", title="Partner API earn", body="| a | b |")
    report.section_write(suite="api", title="Partner API earn", body="| c | d |")
    assert doc.read_text() == ("# Benchmarks\n\nintro\n\n## Rules\n\n<!-- bench:rules -->\nnew rules\n<!-- /bench:rules -->"
                               "\n\nafter\n\n## Partner API earn\n\n<!-- bench:api -->\n| c | d |\n<!-- /bench:api -->\n")
    assert report.section_read("api").strip() == "| c | d |"


def test_api_suite_is_skipped_on_sqlite(monkeypatch):
    from tests.bench import api

    ctx = BenchContext(database_url="sqlite:///x", label="SQLite", vendor="sqlite", quick=True,
                       options=argparse.Namespace())
    assert api.run(ctx).startswith("Skipped: this suite measures PostgreSQL only")


def test_command_line_names_suites_and_options():
    args = parser().parse_args(["api", "rules", "--quick", "--clients", "4,16"])
    assert args.suites == ["api", "rules"] and args.quick and args.clients == "4,16"
    assert set(SUITES) == {"rules", "api", "batch", "portal"}


def test_copy_rows_match_the_orm_rows():
    """PostgreSQL's fast COPY text gives every member the same values as the SQLite/ORM path."""
    from tests.bench.bulk import _copy_lines, _copy_text, _member_row

    for start in (0, 99_998_000):
        lines = _copy_lines(start, start + 2000, "TAIL").splitlines()
        assert lines == ["\t".join(_copy_text(v) for v in _member_row(i)) + "\tTAIL" for i in range(start, start + 2000)]
