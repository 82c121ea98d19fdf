"""`python -m bench.month`: a month of a chain's sales applied, then head office's morning report.

1. 50 branches x 300 sales a day x 30 days (v3 sales with cashiers, discounts, voids and a
   shift close a day), pushed as each branch's syncs would push them (one message per sync,
   a sync every 15 minutes of a 12-hour day) and applied by the cloud's Service, exactly as
   the queue function applies a message, over MemoryStore. MemoryStore counts storage
   operations where TableStore does (the store contract tests hold both to the same counts),
   and 450,000 sales through Azurite on this machine would take most of an hour without
   telling more about operations. Printed: storage operations per sale, and the ones the day
   summaries add (their reads, and any transaction a cut needs beyond one per message).
2. The month's day summaries written into Azurite, the branches' last syncs set, and
   `branchsync-admin report sales --by branch` for the month timed as head office runs it:
   the real CLI process against the dev host over loopback (goal: at most 2 s).
"""

import argparse
import random
import shutil
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from branchsync_cloud.memory_store import MemoryStore
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice.admin_client import AdminClient
from headoffice.stand_ins import DEV_ACCOUNT, DEV_KEY, ROOT, start_azurite, start_cloud
from shared import limits
from shared.encoding import encode_batch, from_queue_text
from shared.enrollment import decode_code
from shared.models import Discount, EnrollRequest, Payment, Sale, SaleKind, SaleLine, SalesBatch, ShiftClose
from shared.money import line_total, vat_part

BIN = Path(sys.executable).parent
# Signs queue SAS tokens only; nothing listens on port 9.
OFFLINE = (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
           f"QueueEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};")
FIRST_DAY = date(2026, 11, 1)
OPEN_HOURS = 12
DHAKA_OFFSET = timedelta(hours=6)  # Asia/Dhaka has no daylight saving time
SKUS = [(f"SKU{i:04d}", f"পণ্য {i}", 500 + (i * 37) % 20_000, Decimal(("0", "5", "7.5", "15")[i % 4])) for i in range(400)]


def month_of_sales(rng: random.Random, days: int, per_day: int) -> list[Sale]:
    """One branch's events of a month, in seq order: sales, a void every 100th, a shift close a day."""
    events: list[Sale] = []
    seq = 0
    for d in range(days):
        opened = datetime.combine(FIRST_DAY + timedelta(days=d), datetime.min.time(), timezone.utc) \
            + timedelta(hours=9) - DHAKA_OFFSET
        cash = 0
        for n in range(per_day):
            seq += 1
            at = opened + timedelta(seconds=n * OPEN_HOURS * 3600 // per_day)
            cashier = ("rahim", "karim", "salma")[n * 3 // per_day]
            if n % 100 == 99:
                voided = events[-1]
                events.append(Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.VOID, voids=voided.seq,
                                   recorded_at=at, lines=[], total=-voided.total, cashier=cashier,
                                   payments=[Payment(method=voided.payments[0].method, amount=-voided.total)]))
                cash -= voided.total if voided.payments[0].method == "cash" else 0
                continue
            lines = []
            for sku, name, price, rate in rng.sample(SKUS, rng.randint(1, 3)):
                qty = Decimal(rng.randint(1, 3))
                gross = line_total(qty, price)
                disc = Discount(kind="amount", value=Decimal(50), reason="damaged", amount=50) if n % 20 == 0 else None
                net = gross - (disc.amount if disc else 0)
                lines.append(SaleLine(sku=sku, name=name, qty=qty, unit_price=price, list_price=price, line_total=gross,
                                      discount=disc, net=net, vat_rate=rate, vat=vat_part(net, rate)))
            total = sum(line.net for line in lines)
            method = "cash" if n % 3 else "card"
            pay = Payment(method="cash", amount=total, tendered=total, change=0) if method == "cash" else \
                Payment(method="card", amount=total)
            cash += total if method == "cash" else 0
            events.append(Sale(seq=seq, sale_id=uuid.uuid4().hex, recorded_at=at, lines=lines, payments=[pay],
                               total=total, cashier=cashier))
        seq += 1
        events.append(Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.SHIFT_CLOSE, lines=[], total=0,
                           recorded_at=opened + timedelta(hours=OPEN_HOURS), cashier="salma", payments=[],
                           shift=ShiftClose(shift_id=f"D{d}", opened_at=opened, opening_float=500_000,
                                            counted_cash=500_000 + cash, expected_cash=500_000 + cash,
                                            by_method={"cash": cash})))
    return events


def by_sync(events: list[Sale], minutes: int) -> list[list[Sale]]:
    """The events each sync pushes: those recorded since the sync before (at most a batch)."""
    out: list[list[Sale]] = []
    slot = None
    for e in events:
        at = int(e.recorded_at.timestamp()) // (minutes * 60)
        if at != slot or len(out[-1]) == limits.BATCH_MAX_SALES:
            out.append([])
            slot = at
        out[-1].append(e)
    return out


class Counting:
    """The operations the day summaries add: query pages beyond the one a ledger read costs, transactions beyond one per apply."""

    def __init__(self, store: MemoryStore):
        self.store, self.summary_reads, self.extra_txns = store, 0, 0
        read, commit = store.get_ledger_and_days, store.commit_apply

        def get_ledger_and_days(branch, first):
            before = store.ops
            try:
                return read(branch, first)
            finally:
                self.summary_reads += store.ops - before - 1

        def commit_apply(before, write):
            self.extra_txns += len(write.txns) - 1
            return commit(before, write)

        store.get_ledger_and_days, store.commit_apply = get_ledger_and_days, commit_apply


def apply_month(branches: int, days: int, per_day: int, sync_minutes: int) -> tuple[MemoryStore, Service, dict]:
    store = MemoryStore()
    now = datetime.now(timezone.utc)
    service = Service(store, Settings(storage=OFFLINE, admin_key="bench"), lambda: now)
    counting = Counting(store)
    rng = random.Random(15)
    messages = sales = 0
    seconds = 0.0
    start_ops = store.ops
    for b in range(branches):
        name = f"branch-{b:02d}"
        created = service.create_branch(name, "https://cloud.bench")
        secret = service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token)).secret
        events = month_of_sales(rng, days, per_day)
        texts = [encode_batch(SalesBatch.of(name, 1, batch[-1].recorded_at, batch), secret)
                 for batch in by_sync(events, sync_minutes)]
        began = time.perf_counter()
        for text in texts:
            outcome = service.apply_message(from_queue_text(text))
            assert outcome.status == "applied", outcome
        seconds += time.perf_counter() - began
        messages += len(texts)
        sales += sum(1 for e in events if e.kind == SaleKind.SALE)
        ledger = store.get_ledger(name)
        assert ledger.apply.applied_through == len(events)
        store.merge_branch(name, last_pull=datetime.combine(FIRST_DAY + timedelta(days=days), datetime.min.time(),
                                                            timezone.utc) + timedelta(hours=3), pending=0)
    ops = store.ops - start_ops
    return store, service, {"messages": messages, "sales": sales, "ops": ops, "seconds": seconds,
                            "summary_reads": counting.summary_reads, "extra_txns": counting.extra_txns}


def backlog_ops(days: int, per_day: int) -> tuple[int, int, int]:
    """One branch's whole month pushed at once (it was offline): messages of up to a batch, and their operations."""
    store = MemoryStore()
    service = Service(store, Settings(storage=OFFLINE, admin_key="bench"))
    counting = Counting(store)
    created = service.create_branch("offline", "https://cloud.bench")
    secret = service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token)).secret
    events = month_of_sales(random.Random(16), days, per_day)
    texts = []
    for lo in range(0, len(events), 500):  # ~500 sales fit a 48 KiB message compressed
        texts.append(encode_batch(SalesBatch.of("offline", 1, events[-1].recorded_at, events[lo:lo + 500]), secret))
    assert all(len(t) <= limits.QUEUE_MESSAGE_BUDGET_CHARS for t in texts)
    before = store.ops
    for text in texts:
        assert service.apply_message(from_queue_text(text)).status == "applied"
    return len(texts), store.ops - before, counting.summary_reads + counting.extra_txns


def report_timing(store: MemoryStore, work: Path, days: int) -> None:
    """The month's summaries in Azurite behind the dev host; `report sales --by branch` timed as a process."""
    azurite = start_azurite(work / "azurite")
    key = uuid.uuid4().hex
    cloud = start_cloud(work / "cloud", azurite.connection_string, key)
    try:
        table = TableStore(azurite.connection_string)
        admin = AdminClient(cloud.url, key, timeout=120)
        last = FIRST_DAY + timedelta(days=days - 1)
        for record in store.list_branches():
            admin.add_branch(record.name)
            table.init_ledger(record.name)
            table.replace_summaries(table.get_ledger(record.name), store.read_summaries(record.name, FIRST_DAY, last))
            table.merge_branch(record.name, enrolled=True, last_pull=record.last_pull, pending=0)
        env = {"BRANCHSYNC_URL": cloud.url, "BRANCHSYNC_ADMIN_KEY": key, "COLUMNS": "80", "PATH": str(BIN)}
        args = [str(BIN / "branchsync-admin"), "report", "sales", "--from", FIRST_DAY.isoformat(),
                "--to", last.isoformat(), "--by", "branch"]
        subprocess.run(args, env=env, capture_output=True, check=True, timeout=120)  # warm the dev host once
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            done = subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=120)
            runs.append(time.perf_counter() - began)
        began = time.perf_counter()
        answer = admin.report("sales", FIRST_DAY.isoformat(), last.isoformat(), by="branch")
        call = time.perf_counter() - began
        admin.close()
        print(f"\n## `branchsync-admin report sales --by branch` for {days} days of {len(answer.rows)} branches "
              "(dev host on Azurite, loopback)")
        print(f"  whole CLI process: {min(runs):.2f} s best of 3 ({', '.join(f'{r:.2f}' for r in runs)}); "
              f"the HTTP call alone: {call:.2f} s")
        print(f"  complete: {answer.complete}; first rows:")
        for line in done.stdout.splitlines()[:8]:
            print("    " + line)
    finally:
        cloud.stop()
        azurite.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sales-per-day", type=int, default=300)
    parser.add_argument("--sync-minutes", type=int, default=15)
    parser.add_argument("--no-report", action="store_true", help="skip the report timing (needs Azurite)")
    args = parser.parse_args()
    store, _, m = apply_month(args.branches, args.days, args.sales_per_day, args.sync_minutes)
    extra = m["summary_reads"] + m["extra_txns"]
    print(f"\n## A month applied: {args.branches} branches x {args.sales_per_day} sales a day x {args.days} days "
          f"(MemoryStore, the cloud's Service)")
    print(f"  {m['sales']:,} sales (+ voids and shift closes) in {m['messages']:,} messages "
          f"(a sync every {args.sync_minutes} minutes), applied in {m['seconds']:.0f} s")
    print(f"  storage operations: {m['ops']:,} = {m['ops'] / m['sales']:.4f} per sale")
    print(f"  of them for the day summaries: {m['summary_reads']:,} extra query pages + {m['extra_txns']} extra transactions "
          f"= {extra / m['sales']:.4f} per sale (their writes ride in each apply's one transaction)")
    messages, ops, summary_ops = backlog_ops(args.days, args.sales_per_day)
    sales = args.days * args.sales_per_day
    print(f"  one branch's month as a backlog ({messages} messages): {ops} operations = {ops / sales:.4f} per sale, "
          f"{summary_ops} of them for the summaries = {summary_ops / sales:.4f} per sale")
    if not args.no_report:
        work = ROOT / ".bench-month"
        shutil.rmtree(work, ignore_errors=True)
        report_timing(store, work, args.days)


if __name__ == "__main__":
    main()
