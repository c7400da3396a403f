"""Admin paginator for tables too big to ``COUNT(*)`` on every changelist page.

``SELECT COUNT(*)`` on PostgreSQL reads the whole table (or a whole index): on a million members or
tens of millions of transfers every changelist page would pay for it. The planner already keeps an
estimate of each table's size, so the unfiltered list asks for that instead. Filtered and searched
lists count exactly (they are usually small and indexed), unless ``estimate_filtered`` is set and the
planner expects many rows. SQLite and small tables always count exactly.
"""

import json

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# pg_class.reltuples is as of the last ANALYZE; scale it by the table's current size in pages, as the
# planner does, so a table that grew since then is not underestimated. NULL when never analysed.
_RELTUPLES_SQL = """
SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0 THEN NULL
            ELSE (c.reltuples / c.relpages) * (pg_relation_size(c.oid) / current_setting('block_size')::int)
       END::bigint
FROM pg_class c
WHERE c.oid = to_regclass(%s)
"""


class EstimatedCountPaginator(Paginator):
    """A ``Paginator`` whose ``count`` is the planner's estimate for big tables on PostgreSQL.

    * unfiltered queryset on PostgreSQL: ``pg_class.reltuples`` scaled to the current table size;
    * filtered queryset: exact ``COUNT(*)``; with ``estimate_filtered`` the ``EXPLAIN`` row estimate
      when that is at least ``estimate_threshold`` (the planner expects a big result);
    * estimates below ``estimate_threshold`` (small or never analysed tables) and other databases:
      exact ``COUNT(*)``.

    ``count_is_estimate`` tells templates to show the figure as approximate. An estimate may be a
    little off, so the last page link may be empty or a few rows may sit past it: acceptable for
    browsing, and filtered lists are exact.
    """

    estimate_threshold = 10_000
    estimate_filtered = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count_is_estimate = False

    @cached_property
    def count(self) -> int:
        estimate = self._estimate()
        if estimate is not None and estimate >= self.estimate_threshold:
            self.count_is_estimate = True
            return estimate
        return super().count

    def _estimate(self) -> int | None:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return None
        query = qs.query
        if query.distinct or query.combinator or query.is_sliced or query.group_by is not None:
            return None
        connection = connections[qs.db]
        if connection.vendor != "postgresql":
            return None
        if not query.where:
            with connection.cursor() as cursor:
                cursor.execute(_RELTUPLES_SQL, [connection.ops.quote_name(qs.model._meta.db_table)])
                row = cursor.fetchone()
            return row[0] if row else None
        if self.estimate_filtered:
            plan = json.loads(qs.order_by().values("pk").explain(format="json"))
            return int(plan[0]["Plan"]["Plan Rows"])
        return None


class LedgerPaginator(EstimatedCountPaginator):
    """Ledger tables grow fastest and are filtered by low-selectivity codes: estimate big filtered lists too."""

    estimate_filtered = True
