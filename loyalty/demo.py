"""Demo data: stores, members and a year of loyalty history, written only through the real services.

The history is a discrete-event simulation. Every member is a few renewal processes (visits,
redemption wishes, staff adjustments) whose next event is scheduled when the current one is
handled, so the event queue stays one entry per member whatever the length of the history. Events
are handled in business-time order; at every local midnight the scheduled jobs run
(``points_release_pending``, ``points_expire_due``, and the yearly clearance the evening before),
exactly as Celery beat would run them. Each service call passes ``now=`` equal to the simulated
time, and each simulated day is one transaction (services nest inside it).

Determinism: one ``random.Random(seed)``, consumed in event order; member numbers, ticket numbers
and idempotency keys derive from the seed and counters; times derive from ``now``. The same seed
and ``now`` on an empty database give the same data (referral codes and primary keys aside).

Expiry: 12-month lots earned during a 365-day history have barely expired by its end, so some
members (``VETERANS``) joined up to ``PRELUDE_DAYS`` (at most ``days``) before the history starts,
and many of them stopped coming: the points they earned then expire during the history, through
the real expiry job.
"""

import datetime as dt
import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F, Sum

from loyalty.exceptions import InvalidInput
from loyalty.models import (
    Account,
    AccountKind,
    Channel,
    Lot,
    ProgramSettings,
    Purchase,
    Refund,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.selectors import member_points_summary
from loyalty.services import (
    MemberAlreadyExists,
    member_enrol,
    points_adjust,
    points_clearance_run,
    points_expire_due,
    points_redeem,
    points_release_pending,
    program_settings_get,
    purchase_record,
    refund_record,
)
from members.models import Member, MemberStatus, Store
from members.services import luhn_check_digit

CENT = Decimal("0.01")
PRELUDE_DAYS = 180  # veterans join up to this long before the history starts
VETERANS = 0.15  # share of members who are veterans
OPENING = (7.5, 22.0)  # local opening hours, as fractional hours
DEMO_STAFF_USERNAME = "demo-staff"

# ---- CATALOGUE ----


@dataclass(frozen=True)
class StoreSpec:
    code: str
    name: str
    address: str


STORES = [
    StoreSpec("SH001", "静安店", "上海市静安区南京西路1601号"),
    StoreSpec("SH002", "徐汇店", "上海市徐汇区衡山路12号"),
    StoreSpec("BJ001", "朝阳店", "北京市朝阳区三里屯路19号"),
    StoreSpec("SH003", "陆家嘴店", "上海市浦东新区陆家嘴环路1000号"),
    StoreSpec("BJ002", "海淀店", "北京市海淀区中关村大街27号"),
    StoreSpec("GZ001", "天河店", "广州市天河区天河路208号"),
    StoreSpec("SZ001", "南山店", "深圳市南山区科技园南路16号"),
    StoreSpec("HZ001", "西湖店", "杭州市西湖区南山路147号"),
    StoreSpec("CD001", "春熙路店", "成都市锦江区春熙路88号"),
    StoreSpec("SH004", "新天地店", "上海市黄浦区马当路245号"),
    StoreSpec("NJ001", "新街口店", "南京市秦淮区中山南路1号"),
    StoreSpec("WH001", "江汉路店", "武汉市江汉区江汉路118号"),
]
SENTINEL_STORE_CODE = STORES[0].code  # its presence means demo data was seeded


def store_specs(count: int) -> list[StoreSpec]:
    """The first ``count`` demo stores; past the list, numbered branches in Shanghai."""
    specs = STORES[:count]
    for n in range(len(STORES), count):
        number = n - len(STORES) + 5
        specs.append(StoreSpec(f"SH{number:03d}", f"上海{number}号店", f"上海市闵行区虹桥路{100 + number}号"))
    return specs


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    name: str
    price: Decimal


PRODUCTS = [
    Product("CF1001", "咖啡", "美式", Decimal("22.00")),
    Product("CF1002", "咖啡", "拿铁", Decimal("28.00")),
    Product("CF1003", "咖啡", "卡布奇诺", Decimal("28.00")),
    Product("CF1004", "咖啡", "澳白", Decimal("32.00")),
    Product("CF1005", "咖啡", "生椰拿铁", Decimal("32.00")),
    Product("CF1006", "咖啡", "冷萃", Decimal("30.00")),
    Product("TE2001", "茶饮", "抹茶拿铁", Decimal("30.00")),
    Product("TE2002", "茶饮", "伯爵红茶", Decimal("24.00")),
    Product("TE2003", "茶饮", "桂花乌龙", Decimal("26.00")),
    Product("TE2004", "茶饮", "柠檬茶", Decimal("22.00")),
    Product("BK3001", "烘焙", "可颂", Decimal("16.00")),
    Product("BK3002", "烘焙", "肉桂卷", Decimal("18.00")),
    Product("BK3003", "烘焙", "巧克力麦芬", Decimal("15.00")),
    Product("BK3004", "烘焙", "芝士蛋糕", Decimal("32.00")),
    Product("BK3005", "烘焙", "贝果", Decimal("14.50")),
    Product("MD4001", "周边", "随行杯", Decimal("128.00")),
    Product("MD4002", "周边", "帆布袋", Decimal("69.00")),
    Product("MD4003", "周边", "挂耳咖啡礼盒", Decimal("88.00")),
    Product("MD4004", "周边", "咖啡豆 250g", Decimal("98.00")),
    Product("MD4005", "周边", "马克杯", Decimal("79.00")),
]
CATEGORY_WEIGHTS = {"咖啡": 50, "茶饮": 20, "烘焙": 22, "周边": 8}
PRODUCTS_BY_CATEGORY = {c: [p for p in PRODUCTS if p.category == c] for c in CATEGORY_WEIGHTS}

REWARDS = [("美式咖啡券", 300), ("拿铁券", 400), ("可颂券", 200), ("帆布袋", 800), ("咖啡杯", 1200), ("保温杯", 2000)]
ADJUST_UP = [
    ("补录积分：小票未扫码", (10, 90)),
    ("客诉补偿", (50, 100)),
    ("门店活动奖励", (100, 100)),
    ("系统故障补发积分", (20, 60)),
]
ADJUST_DOWN = [("冲正：重复补录", (10, 90)), ("违规获取积分扣回", (50, 200))]

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红文辉建国晨欣怡宇浩轩子涵梓一诺雨萱思佳嘉俊博睿"
    "昊天然婷雪琳晓鹏飞凯帆瑶悦鑫磊颖琪晗珊蕾泽宁安"
)
# Mainland mobile prefixes (China Mobile, Unicom, Telecom) that phonenumbers accepts.
MOBILE_PREFIXES = (
    "134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159", "178", "182",
    "183", "184", "187", "188", "198", "130", "131", "132", "155", "156", "166", "175", "176", "185", "186",
    "133", "153", "173", "177", "180", "181", "189", "191", "199",
)
# Visit habits: (share of members, visits per day).
HABITS = ((0.2, 0.30), (0.5, 0.06), (0.3, 0.015))
# Share of members who stop coming some months after joining; more among the veterans.
LAPSE, LAPSE_VETERAN = 0.2, 0.6
ADJUST_RATE = 1 / 300  # staff adjustments per member per day
# Peaks of the day: (hour, spread in hours, weight): breakfast, lunch, afternoon, evening.
PEAKS = ((8.6, 0.8, 35), (12.5, 0.9, 30), (15.5, 1.1, 20), (19.0, 1.0, 15))

# ---- STATISTICS ----


@dataclass
class DemoStats:
    members: int = 0
    veterans: int = 0
    frozen: int = 0
    purchases: int = 0
    paid_with_points: int = 0
    refunds: Counter = field(default_factory=Counter)  # by kind: full, line, amount, rest
    redemptions: int = 0
    adjustments: int = 0
    released_lots: int = 0
    expired_lots: int = 0
    days: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"members {self.members}, purchases {self.purchases} ({self.paid_with_points} paid partly with points), "
            f"refunds {sum(self.refunds.values())}, redemptions {self.redemptions}, adjustments {self.adjustments}, "
            f"released lots {self.released_lots}, expired lots {self.expired_lots}"
        )


def demo_data_present() -> bool:
    return Store.objects.filter(code=SENTINEL_STORE_CODE).exists()


def demo_summary() -> dict[str, int]:
    """Figures of the whole database after seeding, for the final report."""
    codes = dict(Transfer.objects.values_list("code").annotate(n=Count("pk")).values_list("code", "n"))
    open_points = dict(Lot.objects.filter(remaining__gt=0).values_list("pending").annotate(s=Sum("remaining"))
                       .values_list("pending", "s"))
    debt = Account.objects.filter(kind=AccountKind.MEMBER_POINTS, debits_posted__gt=F("credits_posted")).aggregate(
        s=Sum(F("debits_posted") - F("credits_posted")))["s"] or 0
    return {
        "members": Member.objects.count(),
        "frozen_members": Member.objects.filter(status=MemberStatus.FROZEN).count(),
        "stores": Store.objects.count(),
        "purchases": Purchase.objects.count(),
        "purchases_paid_with_points": Purchase.objects.filter(points_paid__gt=0).count(),
        "refunds": Refund.objects.count(),
        "redemptions": codes.get(TransferCode.REDEEM, 0),
        "adjustments": codes.get(TransferCode.ADJUST, 0),
        "expired_lots": codes.get(TransferCode.EXPIRE, 0),
        "points_expired": Transfer.objects.filter(code=TransferCode.EXPIRE).aggregate(s=Sum("amount"))["s"] or 0,
        "transfers": sum(codes.values()),
        # Outstanding = what members can still spend or will be able to (the liability), before debt.
        "points_outstanding": open_points.get(False, 0) + open_points.get(True, 0),
        "points_available": open_points.get(False, 0),
        "points_pending": open_points.get(True, 0),
        "points_debt": debt,
    }


# ---- SIMULATION ----


@dataclass
class _Plan:
    """What the generator knows about one future or enrolled member."""

    index: int
    name: str
    phone: str
    member_number: str
    birthday: dt.date | None
    home_store: Store | None
    joined_at: dt.datetime
    rate: float  # visits per day
    lapse_at: dt.datetime | None = None  # stops coming (their points expire in time)
    freeze_at: dt.datetime | None = None
    member: Member | None = None
    frozen: bool = False


class _Simulation:
    def __init__(self, *, members: int, days: int, seed: int, stores: list[Store], now: dt.datetime,
                 staff: AbstractBaseUser, program: ProgramSettings, progress: Callable[[str], None]) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = now
        self.tz = program.tz
        self.program = program
        self.stores = stores
        self.staff = staff
        self.progress = progress
        self.stats = DemoStats()
        self.queue: list[tuple] = []
        self.seq = itertools.count()
        self.counters: Counter = Counter()
        self.end_day = now.astimezone(self.tz).date()
        self.window_start = self.end_day - dt.timedelta(days=days)
        self.prelude_days = min(PRELUDE_DAYS, days)
        self.first_day = self.window_start - dt.timedelta(days=self.prelude_days)
        self.plans = self._plans(members)

    # -- helpers --

    def _key(self, kind: str) -> tuple[int, str]:
        self.counters[kind] += 1
        n = self.counters[kind]
        return n, f"demo:{self.seed}:{kind}:{n}"

    def _midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)

    def _time_on(self, day: dt.date) -> dt.datetime:
        """A time on ``day`` within opening hours, around the peaks of a coffee shop's day."""
        hour, spread, _weight = self.rng.choices(PEAKS, weights=[p[2] for p in PEAKS])[0]
        hours = min(max(self.rng.normalvariate(hour, spread), OPENING[0]), OPENING[1] - 1 / 60)
        return self._midnight(day) + dt.timedelta(seconds=int(hours * 3600))

    def _in_opening_hours(self, at: dt.datetime) -> dt.datetime:
        local = at.astimezone(self.tz).replace(microsecond=0)
        hours = local.hour + local.minute / 60
        if OPENING[0] <= hours < OPENING[1]:
            return local
        day = local.date() + dt.timedelta(days=1) if hours >= OPENING[1] else local.date()
        return self._midnight(day) + dt.timedelta(hours=9, minutes=self.rng.randrange(120))

    def _push(self, at: dt.datetime, handler: Callable, *args) -> None:
        if at <= self.now:  # what would happen after now never happens
            heapq.heappush(self.queue, (at, next(self.seq), handler, args))

    def _available(self, plan: _Plan, at: dt.datetime) -> int:
        return member_points_summary(member=plan.member, now=at).available

    # -- the cast --

    def _plans(self, count: int) -> list[_Plan]:
        rng = self.rng
        phones: set[str] = set()
        veterans = round(count * VETERANS) if count >= 3 else 0
        window_days = (self.end_day - self.window_start).days
        plans = []
        for index in range(count):
            while True:
                phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
                if phone not in phones:
                    phones.add(phone)
                    break
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2))))
            if index < veterans:
                day = self.first_day + dt.timedelta(days=rng.randrange(self.prelude_days))
            else:  # spread over the history, more joining early on
                day = self.window_start + dt.timedelta(days=int(window_days * rng.random() ** 1.3))
            joined_at = self._time_on(day)
            birthday = None
            if rng.random() < 0.7:
                birthday = day - dt.timedelta(days=rng.randrange(16 * 365, 60 * 365))  # 16 to 60 when joining
            home_store = rng.choice(self.stores) if rng.random() < 0.85 else None
            rate = rng.choices([r for _share, r in HABITS], weights=[share for share, _r in HABITS])[0]
            rate *= rng.uniform(0.7, 1.3)
            lapse_at = None
            if rng.random() < (LAPSE_VETERAN if index < veterans else LAPSE):
                lapse_at = joined_at + dt.timedelta(days=rng.expovariate(1 / 90))
            plans.append(_Plan(index=index, name=name, phone=phone, member_number=self._member_number(),
                               birthday=birthday, home_store=home_store, joined_at=joined_at, rate=rate,
                               lapse_at=lapse_at))
        # A few members are frozen some time after joining (a blocked card, a fraud check).
        candidates = [p for p in plans if p.joined_at < self.now - dt.timedelta(days=14)]
        for plan in rng.sample(candidates, min(len(candidates), max(1, count // 50) if count >= 10 else 0)):
            span = (self.now - plan.joined_at).total_seconds()
            plan.freeze_at = self._in_opening_hours(plan.joined_at + dt.timedelta(seconds=span * rng.uniform(0.3, 0.9)))
        return plans

    def _member_number(self) -> str:
        body = str(self.rng.randrange(1, 10)) + f"{self.rng.randrange(10**10):010d}"
        return body + luhn_check_digit(body)

    # -- events --

    def enrol(self, plan: _Plan, at: dt.datetime) -> None:
        while plan.member is None:
            try:
                plan.member = member_enrol(phone=plan.phone, name=plan.name, now=at, birthday=plan.birthday,
                                           home_store=plan.home_store, member_number=plan.member_number)
            except MemberAlreadyExists:  # a phone taken outside the demo: draw another
                plan.phone = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            except InvalidInput as exc:
                if exc.field != "member_number":
                    raise
                plan.member_number = self._member_number()
        self.stats.members += 1
        self.stats.veterans += at.astimezone(self.tz).date() < self.window_start
        if self.rng.random() < 0.6:  # joined at the counter while buying
            self._push(self._in_opening_hours(at + dt.timedelta(minutes=self.rng.randint(1, 5))), self.purchase, plan)
        else:
            self._schedule_visit(plan, at)
        self._push(self._next(at, 1 / 30), self.redeem_wish, plan)
        self._push(self._next(at, ADJUST_RATE), self.adjust, plan)
        if plan.freeze_at:
            self._push(plan.freeze_at, self.freeze, plan)

    def _next(self, after: dt.datetime, rate: float) -> dt.datetime:
        gap = 1 + int(self.rng.expovariate(rate))
        return self._time_on(after.astimezone(self.tz).date() + dt.timedelta(days=gap))

    def _schedule_visit(self, plan: _Plan, after: dt.datetime) -> None:
        self._push(self._next(after, plan.rate), self.purchase, plan)

    def _lines(self) -> list[dict]:
        rng = self.rng
        count = rng.choices((1, 2, 3, 4), weights=(45, 30, 17, 8))[0]
        chosen: list[Product] = []
        while len(chosen) < count:
            category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
            product = rng.choice(PRODUCTS_BY_CATEGORY[category])
            if product not in chosen:  # one line per SKU: refunds by line name the SKU
                chosen.append(product)
        lines = []
        for product in chosen:
            quantity = rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
            discount = rng.choices((Decimal(1), Decimal("0.9"), Decimal("0.85")), weights=(85, 10, 5))[0]
            amount = (product.price * quantity * discount).quantize(CENT, ROUND_HALF_UP)
            lines.append({"sku": product.sku, "category": product.category, "quantity": quantity, "amount": amount})
        return lines

    def _gone(self, plan: _Plan, at: dt.datetime) -> bool:
        return plan.frozen or (plan.lapse_at is not None and at >= plan.lapse_at)

    def purchase(self, plan: _Plan, at: dt.datetime) -> None:
        if self._gone(plan, at):
            return
        rng = self.rng
        self._schedule_visit(plan, at)
        lines = self._lines()
        total = sum((line["amount"] for line in lines), Decimal(0))
        channel = rng.choices((Channel.STORE, Channel.APP, Channel.ONLINE), weights=(80, 15, 5))[0]
        store = plan.home_store if plan.home_store and rng.random() < 0.75 else rng.choice(self.stores)
        points_to_pay = 0
        if rng.random() < 0.2:  # wants to pay part with points
            unit, worth = self.program.points_value_points, self.program.points_value_amount
            cap_by_value = int(total * unit / worth)  # never worth more than the purchase
            units = min(self._available(plan, at), cap_by_value) // unit
            if units >= 1:
                points_to_pay = rng.randint(1, units) * unit
        n, key = self._key("purchase")
        local = at.astimezone(self.tz)
        purchase = purchase_record(
            member=plan.member, store=store, external_id=f"{store.code}-{local:%Y%m%d}-{n:07d}", occurred_at=at,
            total=total, lines=lines, channel=channel, points_to_pay=points_to_pay, idempotency_key=key, now=at,
        )
        self.stats.purchases += 1
        self.stats.paid_with_points += bool(points_to_pay)
        if rng.random() < 0.06:
            later = self._in_opening_hours(at + dt.timedelta(hours=rng.uniform(0.5, 24 * 10)))
            self._push(later, self.refund, purchase, None)

    def refund(self, purchase: Purchase, kind: str | None, at: dt.datetime) -> None:
        rng = self.rng
        purchase.refresh_from_db()
        refundable = purchase.refundable_amount
        if refundable <= 0:
            return
        kind = kind or rng.choices(("full", "line", "amount"), weights=(40, 35, 25))[0]
        amount, lines = None, None
        if kind == "line":
            open_lines = [line for line in purchase.lines if line["quantity"] > line["refunded_quantity"]]
            line = rng.choice(open_lines)
            lines = [{"sku": line["sku"], "quantity": rng.randint(1, line["quantity"] - line["refunded_quantity"])}]
        elif kind == "amount" and refundable >= Decimal("0.02"):
            amount = max(CENT, (refundable * Decimal(str(rng.uniform(0.1, 0.8)))).quantize(CENT, ROUND_HALF_UP))
        else:
            kind, amount = ("rest" if kind == "rest" else "full"), refundable
        _n, key = self._key("refund")
        refund = refund_record(purchase=purchase, occurred_at=at, now=at, idempotency_key=key, amount=amount,
                               lines=lines, staff_user=self.staff)
        self.stats.refunds[kind] += 1
        if refund.amount < refundable and rng.random() < 0.3:  # the rest comes back a few days later
            later = self._in_opening_hours(at + dt.timedelta(hours=rng.uniform(2, 24 * 5)))
            self._push(later, self.refund, purchase, "rest")

    def redeem_wish(self, plan: _Plan, at: dt.datetime) -> None:
        if self._gone(plan, at):
            return
        self._push(self._next(at, 1 / 30), self.redeem_wish, plan)
        available = self._available(plan, at)
        affordable = [reward for reward in REWARDS if reward[1] <= available]
        if not affordable or self.rng.random() < 0.3:
            return
        name, cost = self.rng.choice(affordable)
        in_store = self.rng.random() < 0.7
        _n, key = self._key("redeem")
        points_redeem(member=plan.member, points=cost, reason=f"兑换: {name}", idempotency_key=key, now=at,
                      source=TransferSource.STAFF if in_store else TransferSource.API,
                      staff_user=self.staff if in_store else None)
        self.stats.redemptions += 1

    def adjust(self, plan: _Plan, at: dt.datetime) -> None:
        rng = self.rng
        self._push(self._next(at, ADJUST_RATE), self.adjust, plan)
        if rng.random() < 0.75:
            reason, (low, high) = rng.choice(ADJUST_UP)
            points = rng.randint(low, high)
        else:
            reason, (low, high) = rng.choice(ADJUST_DOWN)
            points = -min(rng.randint(low, high), self._available(plan, at))
            if not points:
                return
        _n, key = self._key("adjust")
        points_adjust(member=plan.member, points=points, reason=reason, staff_user=self.staff,
                      idempotency_key=key, now=at)
        self.stats.adjustments += 1

    def freeze(self, plan: _Plan, at: dt.datetime) -> None:
        # No member-status service yet: the status lives on the member row, not in the ledger.
        plan.member.status = MemberStatus.FROZEN
        plan.member.save(update_fields=["status", "updated_at"])
        plan.frozen = True
        self.stats.frozen += 1

    # -- the clock --

    def run(self) -> DemoStats:
        started = time.monotonic()
        for plan in self.plans:
            self._push(plan.joined_at, self.enrol, plan)
        day, total_days = self.first_day, (self.end_day - self.first_day).days + 1
        while day <= self.end_day:
            midnight = self._midnight(day)
            tomorrow = self._midnight(day + dt.timedelta(days=1))
            with transaction.atomic():
                # The jobs Celery beat runs: yesterday's clearance at 23:59, then release and expiry.
                points_clearance_run(now=midnight - dt.timedelta(minutes=1))
                self.stats.released_lots += points_release_pending(now=midnight)
                self.stats.expired_lots += points_expire_due(now=midnight)
                while self.queue and self.queue[0][0] < tomorrow:
                    at, _seq, handler, args = heapq.heappop(self.queue)
                    handler(*args, at)
            self.stats.days += 1
            if day.day == 1 or day == self.end_day:
                self.progress(f"{day:%Y-%m-%d} ({self.stats.days}/{total_days} days, "
                              f"{time.monotonic() - started:.1f}s): {self.stats.line()}")
            day += dt.timedelta(days=1)
        with transaction.atomic():
            self.stats.released_lots += points_release_pending(now=self.now)
            self.stats.expired_lots += points_expire_due(now=self.now)
        self.stats.seconds = time.monotonic() - started
        return self.stats


def demo_staff_get_or_create() -> AbstractBaseUser:
    user_model = get_user_model()
    staff, created = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: DEMO_STAFF_USERNAME}, defaults={"is_staff": True}
    )
    if created:
        staff.set_unusable_password()
        staff.save(update_fields=["password"])
    return staff


def demo_seed(*, members: int, days: int, seed: int, stores: int, now: dt.datetime,
              progress: Callable[[str], None] = lambda line: None) -> DemoStats:
    """Create demo stores, members and ``days`` of history ending at ``now``. Call on an unseeded database."""
    with transaction.atomic():
        store_rows = [Store.objects.create(code=s.code, name=s.name, address=s.address) for s in store_specs(stores)]
        staff = demo_staff_get_or_create()
        program = program_settings_get()
    simulation = _Simulation(members=members, days=days, seed=seed, stores=store_rows, now=now, staff=staff,
                             program=program, progress=progress)
    progress(f"Seeding {members} members ({sum(p.joined_at.date() < simulation.window_start for p in simulation.plans)}"
             f" veterans) at {stores} stores: {days} days of history from {simulation.window_start} to {now.astimezone(program.tz):%Y-%m-%d %H:%M},"
             f" after a {simulation.prelude_days}-day prelude; seed {seed}.")
    return simulation.run()
