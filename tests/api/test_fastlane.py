"""The earn fast lane (loyalty/api/fastlane.py): a plain POST /api/v1/purchases answered below Django's stack.

What it answers must be exactly what the DRF view answers (body, headers, rows written, idempotency record);
everything else it must hand on to Django untouched, having written nothing and counted the request once.
"""

import datetime as dt
import io
import itertools
import json
from decimal import Decimal

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.api.fastlane import EarnFastLane
from loyalty.api.purchases import PurchaseOutputSerializer, purchase_data, tier_ref
from loyalty.api.throttling import window_count
from loyalty.models import (
    ApiClient,
    IdempotencyRecord,
    MemberTier,
    Purchase,
    Scope,
    Transfer,
)
from loyalty.services import purchase_record
from loyalty.services.api_clients import api_client_create
from members.models import Member, MemberStatus
from tests.api.conftest import purchase_body
from tests.api.test_earn_budget import ledger_rows, realistic_program
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.test_concurrency import run_concurrently

pytestmark = [pytest.mark.django_db, requires_postgres]
_ids = itertools.count()
FIELD_NAMES = {"member", "store", "external_id", "occurred_at", "total", "lines", "channel", "promo_codes", "note",
               "coupon_codes", "points_payment_quote"}


class Counting:
    """Django's WSGI handler, counting the requests the fast lane handed on."""

    def __init__(self):
        self.app, self.calls = WSGIHandler(), 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


def post(app, data, *, key: str | None, idem: str | None = "k", raw: bytes | None = None, **headers):
    """POST /api/v1/purchases through ``app`` as a WSGI server would: (status, headers, JSON body)."""
    payload = raw if raw is not None else json.dumps(data).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/purchases", "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "localhost", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(payload), "wsgi.errors": io.StringIO(),
               "CONTENT_LENGTH": str(len(payload)), "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "10.0.0.1"}
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    if idem is not None:
        environ["HTTP_IDEMPOTENCY_KEY"] = idem
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(response_headers)

    chunks = app(environ, start_response)
    content = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return seen["status"], seen["headers"], json.loads(content) if content else None


def body(member: Member, **overrides) -> dict:
    """``purchase_body`` for ``member`` (by id), bought a minute ago."""
    at = (timezone.now() - dt.timedelta(minutes=1)).replace(microsecond=0).isoformat()
    return purchase_body(**{"member": {"id": member.pk}, "occurred_at": at, **overrides})


@pytest.fixture(autouse=True)
def _connections_kept():
    """As Django's test client does: a request's end must not close the test's connection (its transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def setup(db, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    StoreFactory(code="SH001")
    tiers = realistic_program()
    _client, key = api_client_create(name="POS", scopes=[Scope.PURCHASES_WRITE])
    inner = Counting()
    return {"tiers": tiers, "key": key, "inner": inner, "lane": EarnFastLane(inner)}


def twin_members(tiers) -> tuple[Member, Member]:
    """Two members in the same state (silver, no purchases yet)."""
    pair, since = (MemberFactory(), MemberFactory()), timezone.now() - dt.timedelta(days=30)
    for m in pair:
        MemberTier.objects.create(member=m, tier=tiers[1], since=since)
    return pair


def masked(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k not in ("id", "member", "external_id")}


def test_a_plain_earn_is_answered_and_written_exactly_as_the_drf_view_does(setup, audit_clean):
    fast_member, drf_member = twin_members(setup["tiers"])
    lane, inner = setup["lane"], setup["inner"]

    for n in range(3):  # the first one also earns the first-purchase bonus
        at = (timezone.now() - dt.timedelta(minutes=10 - n)).replace(microsecond=0).isoformat()
        status, headers, answer = post(lane, body(fast_member, occurred_at=at), key=setup["key"], idem=f"fast-{n}",
                                       accept_language="zh-hans")
        assert inner.calls == 0, "the fast lane handed a plain earn on"
        d_status, d_headers, d_answer = post(inner.app, body(drf_member, occurred_at=at), key=setup["key"],
                                             idem=f"drf-{n}", accept_language="zh-hans")
        assert (status, masked(answer)) == (d_status, masked(d_answer)) and status == 201
        assert answer["breakdown_lines"][-1].startswith("合计") or "积分" in "".join(answer["breakdown_lines"])
        del headers["Content-Length"], d_headers["Content-Length"]
        assert headers == d_headers
    assert ledger_rows(fast_member) == ledger_rows(drf_member)
    fast_records = IdempotencyRecord.objects.filter(key__startswith="fast-").order_by("key")
    drf_records = IdempotencyRecord.objects.filter(key__startswith="drf-").order_by("key")
    assert [(r.state, r.status_code, masked(r.body)) for r in fast_records] == \
           [(r.state, r.status_code, masked(r.body)) for r in drf_records]


def test_a_retry_is_replayed_and_a_reused_key_refused_by_django(setup, audit_clean):
    member = MemberFactory()
    lane, inner = setup["lane"], setup["inner"]
    data = body(member)
    first = post(lane, data, key=setup["key"], idem="same")
    counts = (Purchase.objects.count(), Transfer.objects.count(), IdempotencyRecord.objects.count())

    again = post(lane, data, key=setup["key"], idem="same")
    other = post(lane, body(member), key=setup["key"], idem="same")

    assert first[0] == again[0] == 201 and again[2] == first[2] and again[1]["Idempotent-Replayed"] == "true"
    assert other[0] == 409 and other[2]["error"]["code"] == "idempotency_key_reused"
    assert inner.calls == 2
    assert (Purchase.objects.count(), Transfer.objects.count(), IdempotencyRecord.objects.count()) == counts


def _declines(setup):
    member = MemberFactory()
    frozen = MemberFactory()
    Member.objects.filter(pk=frozen.pk).update(status=MemberStatus.FROZEN)
    _c, other_store_key = api_client_create(name="Bound", scopes=[Scope.PURCHASES_WRITE],
                                            store=StoreFactory(code="BJ001"))
    _c, read_only_key = api_client_create(name="Reader", scopes=[Scope.MEMBERS_READ])
    key = setup["key"]
    naive = (timezone.now() - dt.timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    return [
        ("no idempotency key", body(member), {"key": key, "idem": None}, 400, "invalid_input"),
        ("no API key", body(member), {"key": None}, 401, "unauthenticated"),
        ("a wrong API key", body(member), {"key": key[:-2] + "xx"}, 401, "unauthenticated"),
        ("a key without the scope", body(member), {"key": read_only_key}, 403, "insufficient_scope"),
        ("another store than the key's", body(member), {"key": other_store_key}, 403, "store_not_allowed"),
        ("an unknown store", body(member, store="NOPE"), {"key": key}, 404, "store_not_found"),
        ("an unknown member", {**body(member), "member": {"id": 2**40}}, {"key": key}, 404, "member_not_found"),
        ("an unknown phone", {**body(member), "member": {"phone": "13900000000"}}, {"key": key}, 404,
         "member_not_found"),
        ("a frozen member", body(frozen), {"key": key}, 422, "member_frozen"),
        ("a naive time", body(member, occurred_at=naive), {"key": key}, 400, "invalid_request"),
        ("three decimals", body(member, total="100.001"), {"key": key}, 400, "invalid_request"),
        ("lines not adding up", body(member, total="99.00"), {"key": key}, 400, "invalid_input"),
        ("a float total", body(member, total=100.0), {"key": key}, 201, None),  # the serializer takes it
        ("an unknown field", body(member, note="hi"), {"key": key}, 201, None),  # ignored by the serializer
        ("a padded store code", body(member, store=" SH001 "), {"key": key}, 201, None),  # trimmed by it
        ("two member references", {**body(member), "member": {"id": member.pk, "phone": member.phone}},
         {"key": key}, 400, "invalid_request"),
        ("a coupon", body(member, coupon_codes=["NOPE"]), {"key": key}, 422, None),
        ("not JSON", None, {"key": key, "raw": b"{not json"}, 400, "malformed_request"),
        ("NaN", None, {"key": key, "raw": b'{"total": NaN}'}, 400, "malformed_request"),
        ("null lines", body(member, lines=None), {"key": key}, 400, "invalid_request"),
        ("null promo codes", body(member, promo_codes=None), {"key": key}, 400, "invalid_request"),
        ("UTF-16", None, {"key": key, "raw": json.dumps(body(member)).encode("utf-16")}, 400, "malformed_request"),
        ("February 30th", body(member, occurred_at="2026-02-30T10:00:00+08:00"), {"key": key}, 400,
         "invalid_request"),
    ]


def test_anything_but_a_plain_valid_earn_goes_to_django_untouched(setup, audit_clean):
    lane, inner = setup["lane"], setup["inner"]
    for n, (case, data, kwargs, status, code) in enumerate(_declines(setup)):
        before = (Purchase.objects.count(), Transfer.objects.count(), IdempotencyRecord.objects.filter(status_code=201).count())
        calls = inner.calls
        got = post(lane, data, **{"idem": f"decline-{n}", **kwargs})
        assert inner.calls == calls + 1, f"{case}: answered by the fast lane"
        assert got[0] == status, f"{case}: {got}"
        if code is not None:
            assert got[2]["error"]["code"] == code, f"{case}: {got[2]}"
        if status >= 400:
            assert (Purchase.objects.count(), Transfer.objects.count(),
                    IdempotencyRecord.objects.filter(status_code=201).count()) == before, case


def test_the_fast_lane_can_be_turned_off(setup, settings, audit_clean):
    settings.API_FAST_LANE = False
    status, _headers, _answer = post(setup["lane"], body(MemberFactory()), key=setup["key"])
    assert status == 201 and setup["inner"].calls == 1


def test_a_request_is_counted_once_against_the_rate_limit(setup, audit_clean):
    client = ApiClient.objects.get(name="POS")
    client.rate_limit_per_minute = 2
    client.save()
    lane, member = setup["lane"], MemberFactory()

    answers = [post(lane, body(member), key=setup["key"], idem=f"rate-{n}")[0] for n in range(3)]

    assert answers == [201, 201, 429]
    count, _wait = window_count(f"api-throttle:{client.pk}:{client.key_prefix}", bump=False)
    assert count == 3


def test_a_fast_earn_costs_at_most_six_statements(setup, audit_clean):
    member = MemberFactory()
    lane = setup["lane"]
    for n in range(2):  # warm the per-process caches (configuration, client)
        assert post(lane, body(member), key=setup["key"], idem=f"warm-{n}")[0] == 201

    with CaptureQueriesContext(connection) as ctx:
        status, _headers, _answer = post(lane, body(member), key=setup["key"], idem="budget")

    sql = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert status == 201 and setup["inner"].calls == 0
    assert len(sql) <= 6, "\n".join(s[:120] for s in sql)


def test_purchase_data_is_what_the_documented_serializer_gives(setup, store, now, audit_clean):
    """purchase_data builds the answer by hand for speed; the schema's serializer must agree with it."""
    member = MemberFactory()
    MemberTier.objects.create(member=member, tier=setup["tiers"][0], since=now - dt.timedelta(days=30))
    purchase = purchase_record(member=member, store=store, external_id="S-1", occurred_at=now, now=now,
                               total=Decimal("25000.5"))  # lifts the member to silver: a tier change
    assert purchase.tier_change is not None
    change = purchase.tier_change
    expected = PurchaseOutputSerializer({
        **{f: getattr(purchase, f) for f in ("external_id", "occurred_at", "total", "points_earned", "refunded_amount",
                                             "points_reversed", "points_returned", "coupon_discount", "points_paid",
                                             "points_paid_value", "points_balance")},
        "id": purchase.pk, "member": member.pk, "store": store.code, "breakdown": purchase.earn_breakdown,
        "breakdown_lines": purchase_data(purchase)["breakdown_lines"], "coupons": [],
        "tier_change": {"from_tier": tier_ref(change.from_tier), "to_tier": tier_ref(change.to_tier)},
    }).data
    assert json.dumps(purchase_data(purchase)) == json.dumps(dict(expected))


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_identical_requests_write_once_and_answer_alike(setup, audit_clean):
    member = MemberFactory()
    lane, data = setup["lane"], body(member)

    def send(_i):
        status, _headers, answer = post(lane, data, key=setup["key"], idem="together")
        return status, json.dumps(answer, sort_keys=True)

    answers = run_concurrently(20, send)

    assert len(answers) == 20 and len(set(answers)) == 1 and answers[0][0] == 201
    assert Purchase.objects.filter(member=member).count() == 1
    assert IdempotencyRecord.objects.filter(key="together").count() == 1


ODD_VALUES = [None, "", " SH001", "1.234", "-1.00", "0", 0, 10**12, 12.5, True, [], {}, "x" * 70, "NaN", "１２",
              "2026-02-30T10:00:00+08:00", "2026-03-04T10:00:00", "2026-03-04T10:00:00Z", {"id": True},
              {"member_number": " 1"}, {"phone": ""}, [{"sku": "A", "amount": "1.00", "extra": 1}], ["A"]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(sorted(FIELD_NAMES)), st.sampled_from(ODD_VALUES)), max_size=2),
       line_changes=st.lists(st.tuples(st.sampled_from(["sku", "category", "quantity", "amount", "extra"]),
                                       st.sampled_from(ODD_VALUES)), max_size=1))
def test_the_fast_lane_answers_whatever_it_takes_exactly_as_drf_would(setup, changes, line_changes):
    """Differential: an odd body goes through DRF (rolled back) and then through the lane, from the same state;
    both get the same status, error code and (for a 201) answer — so the lane never takes what the serializer
    would refuse or change."""
    member = MemberFactory()
    MemberTier.objects.create(member=member, tier=setup["tiers"][1], since=timezone.now() - dt.timedelta(days=30))
    data = body(member, occurred_at=(timezone.now() - dt.timedelta(minutes=5)).replace(microsecond=0).isoformat())
    for name, value in changes:
        data[name] = value
    lines = data.get("lines")
    for name, value in line_changes:
        if isinstance(lines, list) and lines and isinstance(lines[0], dict):
            data["lines"] = [{**lines[0], name: value}, *lines[1:]]
    idem = f"odd-{next(_ids)}"

    with transaction.atomic():
        drf_status, _h, drf_answer = post(setup["inner"].app, data, key=setup["key"], idem=idem)
        transaction.set_rollback(True)
    lane_status, _h, lane_answer = post(setup["lane"], data, key=setup["key"], idem=idem)

    assert lane_status == drf_status, (data, lane_answer, drf_answer)
    if lane_status == 201:
        assert {**lane_answer, "id": None} == {**drf_answer, "id": None}
    else:
        assert lane_answer["error"]["code"] == drf_answer["error"]["code"]
