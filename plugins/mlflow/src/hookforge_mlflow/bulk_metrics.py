"""Metric points into an MLflow SQLite store in bulk.

Why by hand: MLflow's ``SqlAlchemyStore.log_batch`` turns every metric point into an ORM object
and flushes them through SQLAlchemy's unit of work, about 75 us of CPU per point. At 5 metrics
per 1 ms training step that is a third of a core, and the GIL, taken from training
(benchmarks/tracker_overhead.py). Here the rows go to the driver as multi-row ``INSERT ...
VALUES (...), (...)`` statements of ``ROWS_PER_STATEMENT`` rows, about 3.5 us of CPU a point in a
batch of thousands, most of it SQLite's own. Not ``executemany`` (7 us a point through
SQLAlchemy): the sqlite3 driver releases and takes back the GIL around every row it steps, a
hand-over with the training thread per point instead of one per 150. Not SQLAlchemy's multi-row
``values()`` either: it compiles every bind parameter in Python, ~50 us a point.

What stays MLflow's: the tables (``SqlMetric.__table__`` and ``SqlLatestMetric.__table__``, so
the columns are those of the installed MLflow), the store's sessions, its value sanitising
(NaN as ``is_nan``, infinities as the largest floats). What this module repeats from
``SqlAlchemyStore._log_metrics``: a point already stored (same primary key) is skipped, and the
latest value of a key moves only to a point with a greater (step, timestamp, value). Anything
unexpected (another store, another MLflow layout) makes :func:`bulk_writer` return None, and
the tracker keeps using ``log_batch``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

log = logging.getLogger("hookforge")

Row = tuple[str, float, int, int]  # key, value, timestamp in ms, step
COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")  # of MLflow's metrics table
ROWS_PER_STATEMENT = 150  # 900 bound values: below SQLite's smallest limit (999, before 3.32)

BulkWriter = Callable[[str, Sequence[Row]], None]


def bulk_writer(client: Any) -> BulkWriter | None:
    """A function ``write(run_id, rows)`` storing metric rows through ``client``'s store, or None
    when that store is not MLflow's SQLAlchemy store on SQLite."""
    try:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from sqlalchemy.dialects.sqlite import insert

        store = client._tracking_client.store
        if not isinstance(store, SqlAlchemyStore) or store.db_type != "sqlite":
            return None
        metrics, latest = SqlMetric.__table__, SqlLatestMetric.__table__
        if not set(COLUMNS) <= set(metrics.c.keys()):
            return None
        quote = store.engine.dialect.identifier_preparer.quote
        into = f"INSERT INTO {quote(metrics.name)} ({', '.join(map(quote, COLUMNS))}) VALUES "
        one_row = f"({', '.join('?' * len(COLUMNS))})"

        def insert_points(n_rows: int) -> str:
            return into + ", ".join([one_row] * n_rows) + " ON CONFLICT DO NOTHING"

        insert_full_chunk = insert_points(ROWS_PER_STATEMENT)  # all but a batch's last statement

        new = insert(latest).excluded
        newer = (new.step > latest.c.step) | ((new.step == latest.c.step) & (
            (new.timestamp > latest.c.timestamp)
            | ((new.timestamp == latest.c.timestamp) & (new.value > latest.c.value))))
        upsert_latest = insert(latest).on_conflict_do_update(
            index_elements=[latest.c.key, latest.c.run_uuid], where=newer,
            set_={"value": new.value, "timestamp": new.timestamp, "step": new.step,
                  "is_nan": new.is_nan})
        sanitize = store.sanitize_metric_value
        sessions = store.ManagedSessionMaker
    except Exception as exc:  # another MLflow layout: log_batch still works
        log.debug("mlflow: no bulk metric path (%s)", exc)
        return None

    def write(run_id: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        # Per point only comprehensions and C-level helpers: this holds the GIL that the
        # training thread needs (MLflow's sanitiser is called only for a batch that needs it).
        if math.isfinite(sum(map(itemgetter(1), rows))):  # no NaN or infinity in the batch
            points = [(key, value, timestamp, step, False, run_id)
                      for key, value, timestamp, step in rows]  # in the order of COLUMNS
        else:  # MLflow's own sanitising: NaN as is_nan, infinities as the largest floats
            points = []
            for key, value, timestamp, step in rows:
                is_nan, value = sanitize(value)
                points.append((key, value, timestamp, step, is_nan, run_id))
        # the latest value of each key: its point with the greatest (step, timestamp, value)
        ordered = sorted(points, key=itemgetter(3, 2, 1))
        latest_points = dict(zip(map(itemgetter(0), ordered), ordered, strict=True)).values()
        with sessions() as session:  # one transaction: commits on exit, rolls back on error
            connection = session.connection()
            for i in range(0, len(points), ROWS_PER_STATEMENT):
                chunk = points[i:i + ROWS_PER_STATEMENT]
                sql = insert_full_chunk if len(chunk) == ROWS_PER_STATEMENT \
                    else insert_points(len(chunk))
                connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))
            session.execute(upsert_latest, [dict(zip(COLUMNS, p, strict=True))
                                            for p in latest_points])

    return write
