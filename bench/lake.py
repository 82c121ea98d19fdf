"""The data lake's cost on this machine: one business day of N branches x M sales written as Parquet.

Applies the sales through the real Service on TableStore (Azurite), then times
LakeWriter.run() into Azurite's blob service: seconds, files, bytes, bytes per sales
line, and storage operations (table reads + blob requests). Then a run with nothing new,
and a run after one late sale. Usage: `python -m bench.lake [--branches 50 --sales 300]`.
"""

import argparse
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from branchsync_cloud.lake_blob import BlobLake
from branchsync_cloud.lake_writer import LakeWriter
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice.stand_ins import start_azurite
from shared.encoding import encode_batch, from_queue_text
from shared.models import EnrollRequest, Payment, SalesBatch
from shared.enrollment import decode_code
from tests.builders import make_line3, make_sale3

# 06:00 in Dhaka; sales spread over the next 14 hours of the same business day.
OPEN = datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc)


def day_of_sales(n: int, rng: random.Random) -> list:
    sales = []
    for seq in range(1, n + 1):
        lines = [make_line3(f"SKU-{rng.randrange(2000):04d}", qty=rng.choice(["1", "2", "0.750"]),
                            unit_price=rng.randrange(500, 90_000), vat_rate=rng.choice(["0", "5", "7.5", "15"]))
                 for _ in range(rng.randint(1, 4))]
        kw = dict(cashier=rng.choice(["rahim", "karim", "salma"]), discount=("percent", "5") if rng.random() < 0.1 else None)
        sale = make_sale3(seq, lines, **kw)
        if rng.random() < 0.3:
            sale = make_sale3(seq, lines, **kw, payments=[Payment(method="card", amount=sale.total)])
        sales.append(sale.model_copy(update={"recorded_at": OPEN + timedelta(seconds=seq * 14 * 3600 // n)}))
    return sales


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lake")
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--sales", type=int, default=300)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    az = start_azurite(Path(tempfile.mkdtemp()))
    try:
        store = TableStore(az.connection_string, "b" + uuid.uuid4().hex[:10])
        service = Service(store, Settings(storage=az.connection_string, admin_key="k"))
        lines = 0
        secrets = {}
        for b in range(args.branches):
            name = f"branch-{b:03d}"
            code = decode_code(service.create_branch(name, "https://cloud.example").enrollment_code)
            secrets[name] = service.enroll(EnrollRequest(token=code.token)).secret
            sales = day_of_sales(args.sales, rng)
            lines += sum(len(s.lines) for s in sales)
            service.apply_message(from_queue_text(encode_batch(SalesBatch.of(name, 1, OPEN, sales), secrets[name])))
        blobs = BlobLake(az.connection_string, "lake-" + uuid.uuid4().hex[:8])
        writer = LakeWriter(store, blobs, "Asia/Dhaka")

        def timed(label: str, **kw):
            t_ops, b_ops, t0 = store.ops, blobs.ops, time.perf_counter()
            run = writer.run(**kw)
            took = time.perf_counter() - t0
            print(f"{label}: {took:.2f} s, {run.events} events read, {len(run.days)} days, {run.files} files, "
                  f"{run.bytes} bytes; storage operations: {store.ops - t_ops} table + {blobs.ops - b_ops} blob")
            return run

        print(f"{args.branches} branches x {args.sales} sales = {args.branches * args.sales} sales, {lines} sales lines")
        first = timed("first write of the day")
        sales_bytes = sum(len(blobs.read(n)) for n in blobs.list("sales/"))
        print(f"  sales/ files: {sales_bytes} bytes = {sales_bytes / lines:.1f} bytes per sales line; "
              f"all datasets: {first.bytes / lines:.1f} bytes per sales line")
        timed("again, nothing new")
        late = make_sale3(args.sales + 1, [make_line3()]).model_copy(update={"recorded_at": OPEN + timedelta(hours=1)})
        service.apply_message(from_queue_text(encode_batch(SalesBatch.of("branch-000", 1, OPEN, [late]), secrets["branch-000"])))
        timed("one late sale in one branch")
    finally:
        az.stop()


if __name__ == "__main__":
    main()
