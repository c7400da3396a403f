"""Tiers: the member's current tier, qualifying figures, the immediate upgrade after a purchase, and the
daily evaluation (reviews, grace, downgrades, upgrades the purchase path cannot make).

Qualifying spend is what the member paid (total − refunded) and qualifying points are the points
purchases earned (earned − reversed), both within the window. Redeeming never lowers them; refunds do.
Points balances are never touched by a tier change.
"""

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from loyalty.locks import member_accounts_lock
from loyalty.models import (
    Account,
    AccountKind,
    DowngradeMode,
    Event,
    EventType,
    MemberTier,
    Purchase,
    Tier,
    TierChange,
    TierChangeReason,
    TierPolicy,
    TierWindow,
    add_months,
)
from loyalty.services.program import program_settings_get
from loyalty.validation import text_clean
from members.models import Member

CENT = Decimal("0.01")
ZERO = (Decimal("0.00"), 0)
_SPEND = Coalesce(Sum(F("total") - F("refunded_amount")), Value(Decimal(0)),
                  output_field=DecimalField(max_digits=14, decimal_places=2))
_POINTS = Coalesce(Sum(F("points_earned") - F("points_reversed")), Value(0))


def tier_policy_get() -> TierPolicy:
    policy, _ = TierPolicy.objects.get_or_create(pk=1)
    return policy


def tiers_ordered() -> list[Tier]:
    return list(Tier.objects.order_by("rank"))


def member_tier_current(*, member: Member, tiers: list[Tier] | None = None) -> Tier | None:
    """The member's tier; a member with no tier record is at the entry tier (None when no tiers exist)."""
    state = MemberTier.objects.filter(member=member).select_related("tier").first()
    if state is not None:
        return state.tier
    tiers = tiers if tiers is not None else tiers_ordered()
    return tiers[0] if tiers else None


def window_start(*, policy: TierPolicy, at: dt.datetime, tz) -> dt.datetime:
    """Start of the qualification window that ends at ``at`` (local midnight)."""
    local = at.astimezone(tz).date()
    if policy.window == TierWindow.CALENDAR_YEAR:
        start = dt.date(local.year, 1, 1)
    elif policy.window == TierWindow.CONSECUTIVE_MONTHS:
        start = add_months(local.replace(day=1), -policy.window_months)
    else:
        start = add_months(local, -policy.window_months)
    return dt.datetime.combine(start, dt.time.min, tzinfo=tz)


def qualifying_figures(*, member_ids: list[int], start: dt.datetime, end: dt.datetime) -> dict[int, tuple[Decimal, int]]:
    """{member_id: (qualifying spend, qualifying points)} for purchases in [start, end]; one grouped query."""
    return _window_sums(members=Q(member_id__in=member_ids), start=start, end=end)


def qualifying_figures_by_month(*, member_ids: list[int], start: dt.datetime, end: dt.datetime,
                                tz) -> dict[int, dict[str, tuple[Decimal, int]]]:
    """{member_id: {"YYYY-MM": (spend, points)}} by local calendar month for purchases in [start, end]; one query."""
    return _monthly_sums(members=Q(member_id__in=member_ids), start=start, end=end, tz=tz)


def _cents(value) -> Decimal:
    """Sums come back as 310 on SQLite and 310.00 on PostgreSQL: the same figure, the same text."""
    return Decimal(value).quantize(CENT)


def _window_sums(*, members: Q, start: dt.datetime, end: dt.datetime) -> dict[int, tuple[Decimal, int]]:
    rows = (
        Purchase.objects.filter(members, occurred_at__gte=start, occurred_at__lte=end)
        .values("member_id")
        .annotate(spend=_SPEND, points=_POINTS)
        .values_list("member_id", "spend", "points")
    )
    return {member_id: (_cents(spend), int(points)) for member_id, spend, points in rows}


def _monthly_sums(*, members: Q, start: dt.datetime, end: dt.datetime, tz) -> dict[int, dict[str, tuple[Decimal, int]]]:
    # TruncMonth with a time zone is portable: AT TIME ZONE on PostgreSQL, Django's own function on SQLite.
    rows = (
        Purchase.objects.filter(members, occurred_at__gte=start, occurred_at__lte=end)
        .annotate(month=TruncMonth("occurred_at", tzinfo=tz))
        .values("member_id", "month")
        .annotate(spend=_SPEND, points=_POINTS)
        .values_list("member_id", "month", "spend", "points")
    )
    out: dict[int, dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    for member_id, month, spend, points in rows:
        label = month.astimezone(tz).strftime("%Y-%m") if isinstance(month, dt.datetime) else month.strftime("%Y-%m")
        out[member_id][label] = (_cents(spend), int(points))
    return dict(out)


def tier_qualifies(tier: Tier, *, spend: Decimal, points: int, retain: bool = False) -> bool:
    spend_needed = tier.retain_spend if retain and tier.retain_spend is not None else tier.spend_threshold
    points_needed = tier.retain_points if retain and tier.retain_points is not None else tier.points_threshold
    if spend_needed is None and points_needed is None:
        return False
    return (spend_needed is not None and spend >= spend_needed) or (points_needed is not None and points >= points_needed)


def tier_for_figures(tiers: list[Tier], *, spend: Decimal, points: int) -> Tier | None:
    """The highest tier the figures qualify for (the entry tier when none)."""
    best = tiers[0] if tiers else None
    for tier in tiers:
        if tier_qualifies(tier, spend=spend, points=points):
            best = tier
    return best


def review_at_for(*, policy: TierPolicy, since: dt.datetime, tz) -> dt.datetime:
    """When a tier reached at ``since`` is next reviewed for retention."""
    local = since.astimezone(tz).date()
    if policy.window == TierWindow.CALENDAR_YEAR:
        day = dt.date(local.year + 1, 1, 1)
    elif policy.window == TierWindow.CONSECUTIVE_MONTHS:
        day = add_months(local.replace(day=1), 1)
    else:
        # The day after the anniversary: the window counts whole days, so until then the purchases of the
        # day the tier was reached are still in it and would keep the tier by themselves.
        day = add_months(local, policy.window_months) + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


@transaction.atomic
def tier_set(*, member: Member, tier: Tier, reason: str, at: dt.datetime, tz, policy: TierPolicy,
             details: dict | None = None, key: str | None = None) -> TierChange:
    """Move the member to ``tier`` and record why. Caller holds the member's account lock."""
    state = MemberTier.objects.select_for_update().filter(member=member).select_related("tier").first()
    previous = state.tier if state else None
    review = review_at_for(policy=policy, since=at, tz=tz)
    if state is None:
        MemberTier.objects.create(member=member, tier=tier, since=at, review_at=review)
    else:
        state.tier, state.since, state.review_at, state.grace_until = tier, at, review, None
        state.save(update_fields=["tier", "since", "review_at", "grace_until", "updated_at"])
    return TierChange.objects.create(
        member=member, from_tier=previous, to_tier=tier, reason=reason, details=details or {}, occurred_at=at,
        idempotency_key=key or f"tier:{member.pk}:{reason}:{tier.code}:{at.isoformat()}",
    )


def tier_upgrade_possible(*, current: Tier | None, tiers: list[Tier], policy: TierPolicy) -> bool:
    """Whether a purchase can upgrade at once: tiers exist, the window is not consecutive months (those
    upgrade at the monthly evaluation) and the member is not at the top."""
    if not tiers or policy.window == TierWindow.CONSECUTIVE_MONTHS:
        return False
    return current is None or current.rank != tiers[-1].rank


def tier_upgrade_due(*, member: Member, purchase: Purchase, current: Tier | None, tiers: list[Tier],
                     policy: TierPolicy, tz, figures: tuple[Decimal, int] | None = None) -> Tier | None:
    """The tier an unsaved ``purchase`` would take the member up to at once, or None; writes nothing.

    The same decision as ``tier_upgrade_after_purchase`` (figures of the window up to the purchase's time,
    this purchase included), asked before the purchase is written so a plain earn can be one statement.
    ``figures``: the window's (spend, points) before this purchase when the caller already read them.
    """
    if not tier_upgrade_possible(current=current, tiers=tiers, policy=policy):
        return None
    if figures is None:
        start = window_start(policy=policy, at=purchase.occurred_at, tz=tz)
        figures = qualifying_figures(member_ids=[member.pk], start=start, end=purchase.occurred_at).get(
            member.pk, (Decimal(0), 0))
    spend, points = figures
    return _upgrade_target(tiers, current=current, spend=spend + _cents(purchase.total),
                           points=points + purchase.points_earned)


def _upgrade_target(tiers: list[Tier], *, current: Tier | None, spend: Decimal, points: int) -> Tier | None:
    """The tier these figures qualify for, when it is above the current one."""
    target = tier_for_figures(tiers, spend=spend, points=points)
    return target if target is not None and (current is None or target.rank > current.rank) else None


def tier_upgrade_after_purchase(*, member: Member, purchase: Purchase, current: Tier | None, tiers: list[Tier],
                                policy: TierPolicy, tz) -> TierChange | None:
    """Upgrade at once when this purchase takes the member over a higher tier's threshold.

    Consecutive-month windows upgrade only at the monthly evaluation (the months must be complete).
    """
    if not tier_upgrade_possible(current=current, tiers=tiers, policy=policy):
        return None  # no figures needed
    start = window_start(policy=policy, at=purchase.occurred_at, tz=tz)
    spend, points = qualifying_figures(member_ids=[member.pk], start=start, end=purchase.occurred_at).get(
        member.pk, (Decimal(0), 0))  # the saved purchase included
    target = _upgrade_target(tiers, current=current, spend=spend, points=points)
    if target is None:
        return None
    return tier_set(
        member=member, tier=target, reason=TierChangeReason.UPGRADE, at=purchase.occurred_at, tz=tz, policy=policy,
        details={"spend": str(spend), "points": points, "purchase": purchase.pk, "window_start": start.isoformat()},
        key=f"tier:{member.pk}:upgrade:purchase:{purchase.pk}",
    )


def tiers_problems(tiers: list[dict]) -> list[tuple[str, str]]:
    """Every problem with a tier set as (path, message). ``tiers``: dicts of Tier field values.

    The entry (lowest-ranked) tier must start at 0; thresholds may not fall as rank rises; codes and ranks
    are unique; multipliers are positive.
    """
    from django.utils.translation import gettext as _

    problems: list[tuple[str, str]] = []
    if not tiers:
        return problems
    seen_codes, seen_ranks = set(), set()
    for i, t in enumerate(tiers):
        if t.get("code") in seen_codes:
            problems.append((f"tiers[{i}].code", _("Tier codes must be unique.")))
        if t.get("rank") in seen_ranks:
            problems.append((f"tiers[{i}].rank", _("Tier ranks must be unique.")))
        seen_codes.add(t.get("code"))
        seen_ranks.add(t.get("rank"))
        multiplier = t.get("earn_multiplier")
        if multiplier is not None and Decimal(str(multiplier)) <= 0:
            problems.append((f"tiers[{i}].earn_multiplier", _("The earn multiplier must be greater than 0.")))
        for field in ("spend_threshold", "retain_spend"):
            if t.get(field) not in (None, "") and Decimal(str(t[field])) < 0:
                problems.append((f"tiers[{i}].{field}", _("A threshold cannot be below 0.")))
        for field in ("points_threshold", "retain_points"):
            if t.get(field) not in (None, "") and int(t[field]) < 0:
                problems.append((f"tiers[{i}].{field}", _("A threshold cannot be below 0.")))
    order = sorted(range(len(tiers)), key=lambda i: tiers[i].get("rank") or 0)
    lowest = tiers[order[0]]
    spend, points = lowest.get("spend_threshold"), lowest.get("points_threshold")
    starts_at_zero = (spend not in (None, "") and Decimal(str(spend)) == 0) or (points not in (None, "") and int(points) == 0)
    if not starts_at_zero:
        problems.append((f"tiers[{order[0]}].spend_threshold",
                         _("The lowest tier must start at 0, so that every member has a tier.")))
    for previous, current in zip(order, order[1:], strict=False):
        for field in ("spend_threshold", "points_threshold"):
            a, b = tiers[previous].get(field), tiers[current].get(field)
            if a not in (None, "") and b not in (None, "") and Decimal(str(b)) < Decimal(str(a)):
                problems.append((f"tiers[{current}].{field}",
                                 _("A higher tier cannot need less than the tier below it.")))
    return problems


@transaction.atomic
def tier_set_manual(*, member: Member, tier: Tier, note: str, now: dt.datetime,
                    staff_user: AbstractBaseUser | None = None) -> TierChange | None:
    """Staff put a member on a tier (reason MANUAL, with their note). None when the member is already there.

    The new tier gets a full period before its first review, like any other change.
    """
    note = text_clean(note, field="note", max_length=255)
    member_accounts_lock(member=member)  # the lock order of every write: the member's accounts first
    tiers = tiers_ordered()
    if member_tier_current(member=member, tiers=tiers) == tier:
        return None
    details = {"note": note}
    if staff_user is not None:
        details |= {"staff_user": staff_user.pk, "staff": staff_user.get_username()}
    return tier_set(
        member=member, tier=tier, reason=TierChangeReason.MANUAL, at=now, tz=program_settings_get().tz,
        policy=tier_policy_get(), details=details, key=f"tier:{member.pk}:manual:{now.isoformat()}",
    )


# ---- EVALUATION (daily, celery beat) ----
#
# A member's figures, as the tier checks see them: a tuple of *sets* of periods. A tier is met when, in
# ANY set, EVERY period meets one of its thresholds (spend OR points). Rolling and calendar windows give
# one set of one period; consecutive months give one set of N months; a calendar-year review gives two
# sets, the year just ended and this year so far.

Period = tuple[str, Decimal, int]  # label, qualifying spend, qualifying points
Figures = tuple[tuple[Period, ...], ...]


def figures_meet(tier: Tier, figures: Figures, *, retain: bool = False) -> bool:
    return any(
        periods and all(tier_qualifies(tier, spend=spend, points=points, retain=retain) for _, spend, points in periods)
        for periods in figures
    )


def figures_keep(tier: Tier, figures: Figures, *, entry: Tier) -> bool:
    """Keeps the tier: the entry tier always; others on their keep thresholds, or on their reach thresholds
    (a member who would qualify again at once is never dropped)."""
    return tier.pk == entry.pk or figures_meet(tier, figures, retain=True) or figures_meet(tier, figures)


def figures_tier(tiers: list[Tier], figures: Figures) -> Tier:
    """The highest tier the figures reach (the entry tier when none)."""
    best = tiers[0]
    for tier in tiers[1:]:
        if figures_meet(tier, figures):
            best = tier
    return best


def figures_details(figures: Figures) -> list[list[dict]]:
    return [[{"period": label, "spend": str(spend), "points": points} for label, spend, points in periods]
            for periods in figures]


class _State(NamedTuple):
    pk: int
    member_id: int
    tier_id: int
    since: dt.datetime
    review_at: dt.datetime | None
    grace_until: dt.datetime | None


_STATE_FIELDS = ("pk", "member_id", "tier_id", "since", "review_at", "grace_until")


def _states(queryset) -> dict[int, _State]:
    return {row[1]: _State(*row) for row in queryset.order_by("pk").values_list(*_STATE_FIELDS)}


@dataclass
class _Run:
    """What one evaluation run reads once: tiers, policy, the clock and the dates derived from it."""

    tiers: list[Tier]
    policy: TierPolicy
    tz: dt.tzinfo
    now: dt.datetime

    @property
    def entry(self) -> Tier:
        return self.tiers[0]

    @cached_property
    def by_pk(self) -> dict[int, Tier]:
        return {t.pk: t for t in self.tiers}

    @cached_property
    def review_next(self) -> dt.datetime:
        return review_at_for(policy=self.policy, since=self.now, tz=self.tz)

    def next_review(self, tier: Tier) -> dt.datetime | None:
        """The entry tier is never reviewed: nothing is lower."""
        return None if tier.pk == self.entry.pk else self.review_next

    def under_review(self, state: _State) -> bool:
        """Due (review date reached) or in grace (checked every run, so a recovery shows at once)."""
        in_grace = state.grace_until is not None and state.grace_until > self.now
        return in_grace or (state.review_at is not None and state.review_at <= self.now)


class _Figures:
    """The qualifying figures of a batch of members: one grouped query (two at a calendar-year review)."""

    def __init__(self, run: _Run, *, members: Q, reviewing: Collection[int]) -> None:
        policy, tz, now = run.policy, run.tz, run.now
        local_now = now.astimezone(tz)
        self.reviewing = set(reviewing)
        self.previous: dict[int, tuple[Decimal, int]] = {}
        self.previous_label: str | None = None
        self.monthly: dict[int, dict[str, tuple[Decimal, int]]] | None = None
        self.current: dict[int, tuple[Decimal, int]] = {}
        if policy.window == TierWindow.CONSECUTIVE_MONTHS:
            # The last N complete calendar months; the current month counts once it is over.
            this_month = dt.datetime.combine(local_now.date().replace(day=1), dt.time.min, tzinfo=tz)
            first = add_months(this_month.date(), -policy.window_months)
            self.months = [add_months(first, i).strftime("%Y-%m") for i in range(policy.window_months)]
            self.monthly = _monthly_sums(members=members, start=dt.datetime.combine(first, dt.time.min, tzinfo=tz),
                                         end=this_month - dt.timedelta(microseconds=1), tz=tz)
            return
        start = window_start(policy=policy, at=now, tz=tz)
        self.current_label = f"{start.date().isoformat()}/{local_now.date().isoformat()}"
        self.current = _window_sums(members=members, start=start, end=now)
        if policy.window == TierWindow.CALENDAR_YEAR and self.reviewing:
            # A review (1 January) judges the year just ended; this year so far counts too (recovery in grace).
            previous_start = start.replace(year=start.year - 1)
            self.previous_label = str(previous_start.year)
            self.previous = _window_sums(members=Q(member_id__in=sorted(self.reviewing)), start=previous_start,
                                         end=start - dt.timedelta(microseconds=1))

    def member_ids(self) -> set[int]:
        """Members with any purchase in the periods read (only they can be above the entry tier)."""
        if self.monthly is not None:
            return set(self.monthly)
        return set(self.current) | set(self.previous)

    def __call__(self, member_id: int) -> Figures:
        if self.monthly is not None:
            months = self.monthly.get(member_id, {})
            return (tuple((label, *months.get(label, ZERO)) for label in self.months),)
        current = ((self.current_label, *self.current.get(member_id, ZERO)),)
        if self.previous_label is not None and member_id in self.reviewing:
            return (((self.previous_label, *self.previous.get(member_id, ZERO)),), current)
        return (current,)


UPGRADED, KEPT, RECOVERED, GRACE, DOWNGRADED = "upgraded", "kept", "recovered", "grace", "downgraded"


@dataclass(frozen=True)
class _Outcome:
    member_id: int
    state: _State | None
    kind: str
    from_tier: Tier
    tier: Tier  # the tier after
    review_at: dt.datetime | None
    grace_until: dt.datetime | None
    figures: Figures
    reason: str | None = None  # None: a routine review that kept the tier, nothing to record
    stamp: dt.datetime | None = None  # the state's time the decision came from (names the record)
    extra: dict | None = None

    def change(self, run: "_Run") -> TierChange:
        return TierChange(
            member_id=self.member_id, from_tier=self.from_tier if self.state else None, to_tier=self.tier,
            reason=self.reason, occurred_at=run.now,
            details={"figures": figures_details(self.figures), "evaluated_at": run.now.isoformat(), **(self.extra or {})},
            # Named after the state the decision came from: the same state never yields two records.
            idempotency_key=f"tier:{self.member_id}:evaluate:{self.kind}:{self.from_tier.code}:{self.tier.code}:"
                            f"{self.stamp.isoformat() if self.stamp else 'new'}",
        )


def _decide(run: _Run, member_id: int, state: _State | None, figures: Figures) -> _Outcome | None:
    """What the evaluation does to one member; None when nothing changes. Pure: no queries."""
    current = run.by_pk.get(state.tier_id) if state else run.entry
    if current is None:
        return None  # a tier created after this run started: the next run sees it
    best = figures_tier(run.tiers, figures)
    if best.rank > current.rank:
        return _Outcome(member_id, state, UPGRADED, current, best, run.next_review(best), None, figures,
                        TierChangeReason.UPGRADE, state.since if state else None)
    if state is None or not run.under_review(state):
        return None
    if figures_keep(current, figures, entry=run.entry):
        if state.grace_until is not None:
            return _Outcome(member_id, state, RECOVERED, current, current, run.next_review(current), None, figures,
                            TierChangeReason.RETAINED, state.grace_until)
        return _Outcome(member_id, state, KEPT, current, current, run.next_review(current), None, figures)
    if state.grace_until is not None and state.grace_until > run.now:
        return None  # in grace and still short: wait for the end of grace
    if run.policy.grace_days and state.grace_until is None:
        grace_until = run.now + dt.timedelta(days=run.policy.grace_days)
        return _Outcome(member_id, state, GRACE, current, current, grace_until, grace_until, figures,
                        TierChangeReason.GRACE, state.review_at, {"grace_until": grace_until.isoformat()})
    lower = [t for t in run.tiers if t.rank < current.rank]
    if run.policy.downgrade_mode == DowngradeMode.TO_SUPPORTED:
        target = next((t for t in reversed(lower) if figures_keep(t, figures, entry=run.entry)), run.entry)
    else:
        target = lower[-1]
    return _Outcome(member_id, state, DOWNGRADED, current, target, run.next_review(target), None, figures,
                    TierChangeReason.DOWNGRADE, state.grace_until or state.review_at,
                    {"mode": run.policy.downgrade_mode})


def _outcomes_write(run: _Run, outcomes: list[_Outcome]) -> None:
    """Set-based writes: one UPDATE per distinct outcome (bounded by the number of tiers, not members)."""
    stamp = timezone.now()
    groups: dict[tuple, list[int]] = defaultdict(list)
    creates = []
    for o in outcomes:
        if o.state is None:
            creates.append(MemberTier(member_id=o.member_id, tier=o.tier, since=run.now, review_at=o.review_at))
            continue
        moved = o.tier.pk if o.tier.pk != o.state.tier_id else None
        groups[(moved, o.review_at, o.grace_until)].append(o.state.pk)
    for (moved, review_at, grace_until), pks in groups.items():
        fields = {"review_at": review_at, "grace_until": grace_until, "updated_at": stamp}
        if moved is not None:
            fields |= {"tier_id": moved, "since": run.now}
        MemberTier.objects.filter(pk__in=pks).update(**fields)
    if creates:
        MemberTier.objects.bulk_create(creates)
    changes = [o.change(run) for o in outcomes if o.reason is not None]
    if changes:
        TierChange.objects.bulk_create(changes, ignore_conflicts=True)
        Event.objects.bulk_create([Event(**tier_change_event_fields(c)) for c in changes])


def _batch_evaluate(run: _Run, *, first: int, last: int) -> Counter:
    """Evaluate members with pk in [first, last]: decide without locks, then lock those that change
    (member accounts first, in pk order, then their tier rows), re-read and decide again, and write."""
    members = Q(member_id__gte=first, member_id__lte=last)
    states = _states(MemberTier.objects.filter(members))
    reviewing = {m for m, s in states.items() if run.under_review(s)}
    figures = _Figures(run, members=members, reviewing=reviewing)
    candidates = sorted(figures.member_ids() | reviewing)
    changing = [m for m in candidates if _decide(run, m, states.get(m), figures(m)) is not None]
    if not changing:
        return Counter()
    with transaction.atomic():
        list(Account.objects.select_for_update().filter(member_id__in=changing, kind=AccountKind.MEMBER_POINTS)
             .order_by("pk").values_list("pk", flat=True))
        states = _states(MemberTier.objects.select_for_update().filter(member_id__in=changing))
        reviewing = {m for m, s in states.items() if run.under_review(s)}
        figures = _Figures(run, members=Q(member_id__in=changing), reviewing=reviewing)
        outcomes = [o for m in changing if (o := _decide(run, m, states.get(m), figures(m))) is not None]
        _outcomes_write(run, outcomes)
    return Counter(o.kind for o in outcomes)


def tiers_evaluate(*, now: dt.datetime, batch_size: int | None = None) -> dict[str, int]:
    """The daily tier evaluation: reviews that are due, grace periods, downgrades, and every upgrade the
    figures support (consecutive months can only upgrade here; elsewhere it catches what purchases did not).

    Members are taken in primary-key batches, each batch one transaction; a rerun with the same or a later
    ``now`` finds nothing left to do, and a run killed mid-way leaves whole batches done. Returns counts:
    members scanned, upgraded, kept (routine review), grace (started), recovered (in grace), downgraded.
    """
    batch_size = batch_size or settings.LOYALTY_BATCH_SIZE
    counts = dict.fromkeys(("members", UPGRADED, KEPT, GRACE, RECOVERED, DOWNGRADED), 0)
    tiers = tiers_ordered()
    if not tiers:
        return counts
    run = _Run(tiers=tiers, policy=tier_policy_get(), tz=program_settings_get().tz, now=now)
    last_id = 0
    while True:
        ids = list(Member.objects.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return counts
        last_id = ids[-1]
        counts["members"] += len(ids)
        for kind, n in _batch_evaluate(run, first=ids[0], last=ids[-1]).items():
            counts[kind] += n


def tier_change_event_fields(change: TierChange) -> dict:
    return {"type": EventType.TIER_CHANGED, "member_id": change.member_id, "occurred_at": change.occurred_at,
            "payload": {"from": change.from_tier.code if change.from_tier_id else None, "to": change.to_tier.code,
                        "reason": change.reason, "details": change.details}}


def tier_change_event(*, change: TierChange) -> None:
    """Record ``tier.changed`` for a change made one member at a time (the evaluation writes them in bulk)."""
    Event.objects.create(**tier_change_event_fields(change))
