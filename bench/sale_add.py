"""`python -m bench.sale_add`: how long `sale add` takes in a till that already holds many sales.

A till database is filled with `--sales` stored sales (written straight into the sales table
in one transaction, shaped like the till's own: 1 to 4 lines, acknowledged but for the last
few hundred), then `--samples` sales are recorded through Store.record_sale, each its own
committed transaction (WAL, synchronous=FULL, as at the till). Prints p50, p99 and the worst.
"""

import argparse
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.bench import machine
from bench.peers import catalog, sale_items
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from shared.models import CatalogEntry, CatalogPage

PRODUCTS = 2_400


def filled_till(home: Path, count: int, rng: random.Random) -> tuple[Store, list[str]]:
    store = Store(home)
    products = catalog(PRODUCTS)
    entries = [CatalogEntry(version=i + 1, sku=p.sku, product=p) for i, p in enumerate(products)]
    for i in range(0, len(entries), 1000):  # a page holds at most 1,000 entries
        chunk = entries[i:i + 1000]
        store.apply_catalog_page(CatalogPage(entries=chunk, next_cursor=chunk[-1].version, more=False), 0)
    skus = [p.sku for p in products]
    templates = [store.record_sale(parse_items(sale_items(rng, skus)), rng.choice(["cash", "card"])) for _ in range(50)]
    store.close()
    db = sqlite3.connect(home / "branchsync.db")
    start = 51
    unacked_from = max(start, count - 300)

    def rows():
        for seq in range(start, count + 1):
            t = templates[seq % len(templates)]
            sale_id = uuid.uuid4().hex
            body = t.model_copy(update={"seq": seq, "sale_id": sale_id}).model_dump_json()
            acked = None if seq >= unacked_from else "2026-01-01T00:00:00+00:00"
            yield (1, seq, sale_id, "sale", t.recorded_at.isoformat(), t.total, t.payment.method.value, body,
                   acked, 1 if acked else 0, acked)

    with db:
        db.execute("UPDATE sales SET pushed_at = '2026-01-01T00:00:00+00:00', acked_at = '2026-01-01T00:00:00+00:00'")
        db.executemany("INSERT INTO sales (generation, seq, sale_id, kind, recorded_at, total, payment_method, body, "
                       "pushed_at, push_count, acked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return Store(home), skus


def commit_floor(home: Path, samples: int) -> list[float]:
    """Milliseconds per committed one-row write beside the till database, same settings: the disk's own floor."""
    db = sqlite3.connect(home / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (n INTEGER)")
    took = []
    for n in range(samples):
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (n,))
        db.execute("COMMIT")
        took.append((time.perf_counter() - t) * 1000)
    db.close()
    return took


def summary(took: list[float]) -> str:
    return f"p50 {statistics.median(took):.2f} ms, p99 {percentile(took, 0.99):.2f} ms, worst {max(took):.2f} ms"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sales", type=int, default=1_000_000, help="sales already stored (default 1,000,000)")
    p.add_argument("--samples", type=int, default=2_000, help="sales recorded and timed (default 2,000)")
    p.add_argument("--dir", type=Path, help="where the till database goes (default a temporary folder)")
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-sale-add-", dir=args.dir))
    try:
        rng = random.Random(1)
        started = time.perf_counter()
        store, skus = filled_till(home, args.sales, rng)
        print(f"sale add with {args.sales:,} sales stored ({time.perf_counter() - started:.0f} s to fill), on {machine()}",
              flush=True)
        took = []
        for _ in range(args.samples):
            items = parse_items(sale_items(rng, skus))
            t = time.perf_counter()
            store.record_sale(items, "cash")
            took.append((time.perf_counter() - t) * 1000)
        store.close()
        print(f"sale add, {args.samples:,} sales: {summary(took)}")
        print(f"the disk's floor, {args.samples:,} one-row commits (WAL, synchronous=FULL): "
              f"{summary(commit_floor(home, args.samples))}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
