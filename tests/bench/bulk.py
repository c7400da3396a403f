"""Bulk seeding for the benchmarks: members with their ledger accounts, fast.

Each member gets exactly what ``loyalty.services.member_enrol`` creates — the ``Member`` row, its
``MEMBER_POINTS`` and ``MEMBER_PENDING`` accounts (points, zero posted figures) and a ``member.created``
event in the outbox — so ``ledger_audit`` stays clean. Only the write path differs:

* PostgreSQL: members are streamed with ``COPY … FROM STDIN`` (text format, one buffer per 50,000 rows);
  accounts and events are made server-side with ``INSERT … SELECT`` from the new members (no round trip
  per row). A million members with their two million accounts and events: 100 s on the 2-core box with other
  work running (load average 3), a third of it the deferred foreign-key checks at commit.
* SQLite: ``bulk_create`` in batches (executemany-sized multi-row INSERTs).

Bulk members are recognisable and never collide with enrolled ones: member numbers start with ``0``
(``member_number_generate`` never draws a leading zero) and still carry a valid Luhn check digit, phones
are ``+86139`` followed by eight digits of the index, referral codes are ``BK`` + nine digits (random
codes are eight characters). Member ``i`` (``start <= i < start + count``) is deterministic: the same
index always gives the same number, phone, name, birthday and join date.
"""

import datetime as dt
import json
import time
import zoneinfo
from collections.abc import Callable

from members.services import luhn_check_digit

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
JOINED_FROM = dt.datetime(2018, 1, 1, 12, tzinfo=TZ)
COPY_CHUNK = 50_000
MAX_INDEX = 10**8  # eight phone digits


def member_number_for(i: int) -> str:
    body = f"0{i:010d}"
    return body + luhn_check_digit(body)


def _luhn_tables() -> tuple[list[int], list[int]]:
    """Luhn sums of the low and high five digits of a ten-digit index (rightmost digit doubled)."""
    def partial(x: int, first_position: int) -> int:
        total = 0
        for position in range(first_position, first_position + 5):
            d = x % 10
            x //= 10
            if position % 2 == 0:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        return total
    return [partial(x, 0) for x in range(100_000)], [partial(x, 5) for x in range(100_000)]


def _copy_lines(start: int, stop: int, tail: str) -> str:
    """The COPY text of members ``start … stop-1``: the same values as ``_member_row``, built fast."""
    low, high = _luhn_tables() if _LUHN is None else _LUHN
    days = [(JOINED_FROM.date() + dt.timedelta(days=d)).isoformat() for d in range(2500)]
    out = []
    for i in range(start, stop):
        check = (10 - (low[i % 100_000] + high[i // 100_000]) % 10) % 10
        birthday = r"\N" if i % 5 == 0 else f"{1960 + i % 46}-{1 + (i // 7) % 12:02d}-{1 + (i // 3) % 28:02d}"
        minutes = i % 600
        joined = f"{days[i % 2500]}T{12 + minutes // 60:02d}:{minutes % 60:02d}:00+08:00"
        out.append(f"0{i:010d}{check}\t+86139{i:08d}\tMember {i}\t{birthday}\t{joined}\tBK{i:09d}\t{tail}\n")
    return "".join(out)


_LUHN: tuple[list[int], list[int]] | None = None


def phone_for(i: int) -> str:
    return f"+86139{i:08d}"


def _birthday(i: int) -> dt.date | None:
    if i % 5 == 0:  # a fifth gave no birthday
        return None
    return dt.date(1960 + i % 46, 1 + (i // 7) % 12, 1 + (i // 3) % 28)


def _joined(i: int) -> dt.datetime:
    return JOINED_FROM + dt.timedelta(days=i % 2500, minutes=i % 600)


def _member_row(i: int) -> tuple:
    return (member_number_for(i), phone_for(i), f"Member {i}", _birthday(i), _joined(i), f"BK{i:09d}")


def members_bulk_create(*, count: int, start: int = 0, home_store_id: int | None = None,
                        events: bool = True, log: Callable[[str], None] | None = None) -> list[int]:
    """Create members ``start … start+count-1`` with their points and pending accounts; return their ids
    in index order. ``events=False`` skips the ``member.created`` outbox rows (nothing else reads them).
    Runs in one transaction; ``log`` (e.g. ``ctx.log``) hears how long each step took."""
    if count <= 0:
        return []
    if start < 0 or start + count > MAX_INDEX:
        raise ValueError(f"member indexes must lie in [0, {MAX_INDEX})")
    from django.db import connection, transaction

    step = _Steps(log)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            ids = _postgres(count=count, start=start, home_store_id=home_store_id, events=events, step=step)
        else:
            ids = _orm(count=count, start=start, home_store_id=home_store_id, events=events)
        step("inserted")
    step("committed (foreign keys checked)")
    return ids


class _Steps:
    def __init__(self, log: Callable[[str], None] | None):
        self.log, self.t0 = log, time.perf_counter()

    def __call__(self, what: str) -> None:
        if self.log is not None:
            now = time.perf_counter()
            self.log(f"bulk members: {what} in {now - self.t0:.1f} s")
            self.t0 = now


def _copy_text(value) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _postgres(*, count: int, start: int, home_store_id: int | None, events: bool, step: "_Steps") -> list[int]:
    from django.db import connection

    global _LUHN
    if _LUHN is None:
        _LUHN = _luhn_tables()
    now = dt.datetime.now(dt.UTC).isoformat()
    tail = f"{_copy_text(home_store_id)}\tACTIVE\t\t\tf\t{now}\t{now}"
    columns = ("member_number, phone, name, birthday, joined_at, referral_code, home_store_id, status, email, "
               "language, marketing_consent, created_at, updated_at")
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor, for COPY
        with raw.copy(f"COPY members_member ({columns}) FROM STDIN") as copy:
            for chunk_start in range(start, start + count, COPY_CHUNK):
                copy.write(_copy_lines(chunk_start, min(chunk_start + COPY_CHUNK, start + count), tail))
        step(f"{count:,} members copied")
        first, last = member_number_for(start), member_number_for(start + count - 1)
        # Bulk member numbers sort like their indexes (fixed width, leading zero).
        cursor.execute("SELECT id FROM members_member WHERE member_number BETWEEN %s AND %s ORDER BY member_number",
                       [first, last])
        ids = [row[0] for row in cursor.fetchall()]
        if len(ids) != count:
            raise RuntimeError(f"bulk members: expected {count}, found {len(ids)}")
        cursor.execute(
            "INSERT INTO loyalty_account (kind, unit, member_id, system_code, credits_posted, debits_posted, "
            "created_at, updated_at) "
            "SELECT k.kind, 'POINTS', m.id, '', 0, 0, m.created_at, m.created_at "
            "FROM members_member m CROSS JOIN (VALUES (1, 'MEMBER_POINTS'), (2, 'MEMBER_PENDING')) AS k(n, kind) "
            "WHERE m.id BETWEEN %s AND %s AND m.member_number BETWEEN %s AND %s ORDER BY m.id, k.n",
            [ids[0], ids[-1], first, last])
        step(f"{2 * count:,} accounts inserted")
        if events:
            cursor.execute(
                "INSERT INTO loyalty_event (type, member_id, payload, occurred_at, dispatched, created_at) "
                "SELECT 'member.created', m.id, jsonb_build_object('member_number', m.member_number, 'name', m.name, "
                "'home_store', s.code), m.joined_at, false, m.created_at "
                "FROM members_member m LEFT JOIN members_store s ON s.id = m.home_store_id "
                "WHERE m.id BETWEEN %s AND %s AND m.member_number BETWEEN %s AND %s ORDER BY m.id",
                [ids[0], ids[-1], first, last])
    return ids


def _orm(*, count: int, start: int, home_store_id: int | None, events: bool) -> list[int]:
    from loyalty.models import Account, AccountKind, Event, EventType, Unit
    from members.models import Member, Store

    store_code = Store.objects.filter(pk=home_store_id).values_list("code", flat=True).first() if home_store_id else None
    ids: list[int] = []
    batch = 2000
    for chunk_start in range(start, start + count, batch):
        members = []
        for i in range(chunk_start, min(chunk_start + batch, start + count)):
            number, phone, name, birthday, joined, referral = _member_row(i)
            members.append(Member(member_number=number, phone=phone, name=name, birthday=birthday, joined_at=joined,
                                  referral_code=referral, home_store_id=home_store_id))
        members = Member.objects.bulk_create(members)
        Account.objects.bulk_create([
            Account(kind=kind, unit=Unit.POINTS, member_id=m.pk)
            for m in members for kind in (AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING)
        ])
        if events:
            Event.objects.bulk_create([
                Event(type=EventType.MEMBER_CREATED, member_id=m.pk, occurred_at=m.joined_at,
                      payload=json.loads(json.dumps({"member_number": m.member_number, "name": m.name,
                                                     "home_store": store_code})))
                for m in members
            ])
        ids.extend(m.pk for m in members)
    return ids


def points_account_ids(member_ids: list[int]) -> dict[int, int]:
    """member id → their MEMBER_POINTS account id."""
    from loyalty.models import Account, AccountKind

    out: dict[int, int] = {}
    for n in range(0, len(member_ids), 20_000):
        chunk = member_ids[n:n + 20_000]
        out.update(Account.objects.filter(member_id__in=chunk, kind=AccountKind.MEMBER_POINTS)
                   .values_list("member_id", "id"))
    return out
