"""The cloud's apply of a backlog, alone: how long one branch's messages take in its turn.

A till's backlog (sales recorded as `bench.peers` records them: v3 sales of 1-4 lines from
the demo catalog) is packed into queue messages exactly as the till packs them, then the
cloud's queue function core (`Service.apply_message`) applies them one after another
against a real Azurite, with no till, dev host or queue in between. Printed: the seconds
and CPU seconds of the applies, per message, the storage operations per sale, and with
`--profile` the cProfile totals of the applies (with `--threads 1`, which applies them on
the profiled thread). `--threads N` hands the messages over N at once from a pool of threads,
as the dev host (and the Functions host) run a batch of queue messages, each thread applying
its own (by default as many threads as the deployed app's worker has).

    .venv/bin/python -m bench.apply --sales 10000
"""

import argparse
import cProfile
import pstats
import random
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from bench.peers import CATALOG_FOR_SALES, catalog, sale_items
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.store import Store as TillStore
from branchsync_cloud import collector
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice.devhost import worker_threads
from headoffice.stand_ins import ROOT, local_settings, start_azurite
from shared.encoding import from_queue_text, pack_sales
from shared.enrollment import decode_code
from shared.models import CatalogEntry, CatalogPage, EnrollRequest


def backlog_messages(work: Path, n: int, branch: str, secret: str) -> list[bytes]:
    """`n` sales recorded at a till and packed as the till's push packs them."""
    till = TillStore(work / "till")
    products = catalog(CATALOG_FOR_SALES)
    for at in range(0, len(products), 1000):
        entries = [CatalogEntry(version=at + i + 1, sku=p.sku, product=p) for i, p in enumerate(products[at:at + 1000])]
        till.apply_catalog_page(CatalogPage(entries=entries, next_cursor=at + len(entries),
                                            more=at + 1000 < len(products)), 0)
    till.save_identity(Identity(branch=branch, cloud_url="http://127.0.0.1:9", secret=secret))
    rng = random.Random(n)
    sales = [till.record_sale(parse_items(sale_items(rng, products)), rng.choice(["cash", "card"])) for _ in range(n)]
    till.close()
    packed = pack_sales(branch, sales, secret, datetime.now(timezone.utc))
    return [from_queue_text(text) for _, text in packed]


def run(args) -> dict:
    work = ROOT / ".bench-apply"
    shutil.rmtree(work, ignore_errors=True)
    azurite = start_azurite(work)
    try:
        settings = Settings(storage=azurite.connection_string, admin_key="bench-admin-key",
                            public_url="http://127.0.0.1", table_prefix="b" + uuid.uuid4().hex[:10])
        store = TableStore(azurite.connection_string, settings.table_prefix)
        service = Service(store, settings)
        created = service.create_branch("bench-apply", "http://127.0.0.1")
        secret = service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token)).secret
        bodies = backlog_messages(work, args.sales, "bench-apply", secret)
        print(f"{args.sales} sales in {len(bodies)} messages, {sum(map(len, bodies)):,} bytes")
        collector.settle()  # as the worker does once its Service is built
        profile = cProfile.Profile() if args.profile else None
        ops_before = store.ops
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        if args.threads == 1:  # on this thread, so that --profile sees the applies
            outcomes = [service.apply_message(body) for body in bodies]
        else:
            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                outcomes = list(pool.map(service.apply_message, bodies))
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ops = store.ops - ops_before
        ledger = store.get_ledger("bench-apply")
        statuses = sorted({o.status for o in outcomes})
        print(f"applied_through {ledger.apply.applied_through} (outcomes: {', '.join(statuses)}); "
              f"the outcomes count {sum(o.ops for o in outcomes)} storage operations")
        print(f"apply: {wall:.2f} s, {cpu:.2f} s CPU in this process; {wall / len(bodies) * 1000:.0f} ms a message; "
              f"{ops} storage operations ({ops / args.sales:.4f} per sale)")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        return {"messages": len(bodies), "applied_through": ledger.apply.applied_through, "ops": ops,
                "outcome_ops": sum(o.ops for o in outcomes), "seconds": wall, "cpu_seconds": cpu}
    finally:
        azurite.stop()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sales", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=worker_threads(local_settings()),
                        help="messages applied at once (the worker's thread pool, PYTHON_THREADPOOL_THREAD_COUNT as "
                             "deployed; 1: one by one)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest calls (cProfile of this thread: use with --threads 1)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
