"""`make bench-peers`: branchsync beside tuned PouchDB replication, on the same data, in one run.

Workloads, each over loopback and over a shaped link (bench/shaper.py: by default 2 Mbit/s
down, 1 Mbit/s up, 150 ms each way), with the bytes counted at the proxy, headers included:

1. backlog: sales recorded offline, then one sync; seconds until the till knows they are
   applied (branchsync: the sync's wait for the acknowledgement, a pull after the push, sees
   applied_through cover every sale; PouchDB: replication complete, which its server answers
   once the documents are stored). Both clocks start before the sync's first request.
   Also: bytes, and branchsync's storage operations per sale.
2. new branch: a fresh till pulls the whole catalog until it can sell and search it.
3. price day: head office reprices some products and deletes others; the till of (2) pulls.

branchsync runs its real branch client against the dev host and Azurite; the branch reaches
both the HTTP routes and the queue through the proxy (BRANCHSYNC_QUEUE_PUBLIC_URL makes the
push SAS name the proxy). PouchDB runs pouchdb-node 9 (LevelDB at the till) against
pouchdb-server 4 in memory, batch_size 1,000, through bench/peers/driver.js.

Each row's notes carry the CPU seconds each side's processes spent (/proc; the till and the
proxy share this process, the PouchDB client is driver.js): on two cores the busiest process,
or half their sum, is a floor under the seconds no tuning of the waits can go below.
"""

import argparse
import json
import random
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from bench.bench import machine
from bench.cpu import CpuMeter, like_a_till_process
from bench.shaper import Link, Shaper
from branch_client.cloud_client import CloudClient
from branch_client.identity import Identity
from branch_client.sale_entry import is_weighed, parse_items
from branch_client.store import Store
from branch_client.sync import SyncEngine
from demo.sample_catalog import sample_products
from headoffice.admin_client import AdminClient
from headoffice.stand_ins import DEV_ACCOUNT, ROOT, _stop, free_port, start_azurite, start_cloud
from shared.enrollment import decode_code
from shared.models import Product

DRIVER = Path(__file__).resolve().parent / "peers" / "driver.js"
POUCHDB_SERVER = ROOT / "node_modules" / ".bin" / "pouchdb-server"
IMPORT_BATCH = 1000
ACK_WAIT = 120.0  # seconds the backlog's sync waits for its acknowledgement
ACK_POLL = 0.2  # seconds between later syncs if it was not enough
CATALOG_FOR_SALES = 2400  # the products the backlog's sales are made of


def catalog(count: int) -> list[Product]:
    """`count` products with Bangla and English names, barcodes and prices (the demo's generator)."""
    rows = sample_products(count)
    return [Product(sku=r["sku"], name=r["name"], price=int(Decimal(r["price"]) * 100), barcode=r["barcode"],
                    unit=r["unit"], vat_rate=Decimal(r["vat_rate"])) for r in rows]


def sale_items(rng: random.Random, products: list[Product]) -> list[str]:
    """1 to 4 lines: whole pieces, and weights for what is sold by weight or volume."""
    return [f"{p.sku}={rng.choice(['0.750', '1.250', '2']) if is_weighed(p.unit) else rng.choice(['1', '2', '3'])}"
            for p in rng.sample(products, rng.randint(1, 4))]


def product_doc(p: Product) -> dict:
    return {"_id": p.sku, **p.model_dump(mode="json")}


@dataclass
class Result:
    seconds: float
    down: int
    up: int
    count: int
    extra: dict = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return self.down + self.up


class Node:
    def __init__(self, work: Path):
        self.work = work

    def run(self, command: str, **args) -> dict:
        done = subprocess.run(["node", str(DRIVER), command, json.dumps(args)], capture_output=True, text=True,
                              cwd=ROOT, timeout=3600)
        if done.returncode:
            raise RuntimeError(f"driver.js {command} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def write(self, name: str, docs: list[dict]) -> str:
        path = self.work / name
        path.write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
        return str(path)


def start_pouchdb_server(work: Path) -> tuple[subprocess.Popen, int]:
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(work / "pouchdb-server.log", "w")
    proc = subprocess.Popen([str(POUCHDB_SERVER), "--in-memory", "--port", str(port), "--host", "127.0.0.1",
                             "--no-stdout-logs"], stdout=log, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"pouchdb-server did not start; see {work / 'pouchdb-server.log'}")
        time.sleep(0.2)


class Bench:
    def __init__(self, work: Path, args):
        self.work, self.args = work, args
        self.link = Link.loopback()
        self.shaper = Shaper(self.link)
        self.azurite = start_azurite(work / "azurite")
        self.cloud_port = free_port()
        self.queue_proxy = self.shaper.forward("127.0.0.1", self.azurite.queue_port)
        self.http_proxy = self.shaper.forward("127.0.0.1", self.cloud_port)
        key = uuid.uuid4().hex
        self.cloud = start_cloud(work / "cloud", self.azurite.connection_string, key, port=self.cloud_port, extra_env={
            "BRANCHSYNC_QUEUE_PUBLIC_URL": f"http://127.0.0.1:{self.queue_proxy}/{DEV_ACCOUNT}"})
        self.admin = AdminClient(self.cloud.url, key, timeout=300)
        self.pouch_proc, pouch_port = start_pouchdb_server(work / "pouchdb")
        self.pouch_direct = f"http://127.0.0.1:{pouch_port}"
        self.pouch_proxy = f"http://127.0.0.1:{self.shaper.forward('127.0.0.1', pouch_port)}"
        self.node = Node(work)
        self.products = catalog(args.products)
        self.sale_catalog = self.products[:CATALOG_FOR_SALES]
        self.renames = 0
        self.cpu = CpuMeter({"cloud": self.cloud.process.pid, "azurite": self.azurite.process.pid,
                             "pouchdb-server": self.pouch_proc.pid})

    def close(self) -> None:
        self.admin.close()
        self.cloud.stop()
        self.azurite.stop()
        _stop(self.pouch_proc)
        self.shaper.close()

    def measured(self, link: Link):
        like_a_till_process()
        self.link.down, self.link.up = link.down, link.up
        self.link.reset_counts()
        self.cpu.start()

    def counted(self, seconds: float, count: int, **extra) -> Result:
        return Result(seconds, self.link.down.bytes, self.link.up.bytes, count, {"cpu": self.cpu.spent(), **extra})

    # --- set-up, over the unshaped link and not counted ---

    def import_catalog(self, products: list[Product]) -> None:
        for i in range(0, len(products), IMPORT_BATCH):
            self.admin.import_products(products[i:i + IMPORT_BATCH])

    def seed_pouch(self, db: str, docs: list[dict]) -> None:
        self.node.run("seed", remote=f"{self.pouch_direct}/{db}", file=self.node.write(f"{db}.json", docs))

    def till(self, name: str) -> tuple[Store, CloudClient]:
        code = decode_code(self.admin.add_branch(name).enrollment_code)
        url = f"http://127.0.0.1:{self.http_proxy}"
        client = CloudClient(url, timeout=300)
        answer = client.enroll(code.token)
        store = Store(self.work / "tills" / name)
        store.save_identity(Identity(branch=answer.branch, cloud_url=url, secret=answer.secret))
        return store, CloudClient.for_identity(store.identity(), timeout=300)

    # --- the workloads ---

    def backlog(self, tag: str, link: Link) -> tuple[Result, Result]:
        n = self.args.sales
        name = f"backlog-{tag}"
        self.measured(Link.loopback())
        store, client = self.till(name)
        SyncEngine(store, client).run()
        rng = random.Random(n)
        sales = [store.record_sale(parse_items(sale_items(rng, self.sale_catalog)), rng.choice(["cash", "card"]))
                 for _ in range(n)]
        docs = [{"_id": s.sale_id, **s.model_dump(mode="json")} for s in sales]
        sales_file = self.node.write(f"sales-{tag}.json", docs)

        log_start = self.cloud.log.stat().st_size
        self.measured(link)
        started = time.perf_counter()
        # The sync's own wait for the acknowledgement (`sync --ack-wait`), long enough here that
        # it ends when the till knows; later syncs only if the cloud was slower still.
        pulls = SyncEngine(store, client, ack_wait=ACK_WAIT).run().ack_pulls
        while store.pending_count() and time.perf_counter() - started < 1800:
            time.sleep(ACK_POLL)
            SyncEngine(store, client).run()
            pulls += 1
        ours = self.counted(time.perf_counter() - started, n - store.pending_count(), ack_pulls=pulls)
        time.sleep(1)  # let the last log lines land
        with open(self.cloud.log, "rb") as f:
            f.seek(log_start)
            ours.extra["ops"] = sum(int(m) for m in re.findall(rb"applied batch .*? ops=(\d+)", f.read()))
        store.close()

        self.measured(link)
        theirs = self.node.run("backlog", remote=f"{self.pouch_proxy}/sales-{tag}", local=str(self.work / "pouch" / name),
                               file=sales_file)
        return ours, self.counted(theirs["seconds"], theirs["docs_written"])

    def new_branch(self, tag: str, link: Link) -> tuple[Result, Result, Store, CloudClient]:
        self.measured(Link.loopback())
        store, client = self.till(f"pull-{tag}")
        self.measured(link)
        started = time.perf_counter()
        SyncEngine(store, client).run()
        # It can sell and search: a barcode finds its product in the till's own database.
        found = store.search_products(self.products[-1].barcode)
        ours = self.counted(time.perf_counter() - started, store.status()["products"], found=len(found))

        self.measured(link)
        theirs = self.node.run("pull", remote=f"{self.pouch_proxy}/catalog", local=str(self.work / "pouch" / f"pull-{tag}"))
        return ours, self.counted(theirs["seconds"], theirs["doc_count"]), store, client

    def price_day(self, tag: str, link: Link, store: Store, client: CloudClient, offset: int) -> tuple[Result, Result]:
        rng = random.Random(offset)
        live = self.products[CATALOG_FOR_SALES:]
        chosen = rng.sample(range(len(live)), self.args.reprice + self.args.delete)
        reprice = [live[i] for i in chosen[:self.args.reprice]]
        delete = [live[i] for i in chosen[self.args.reprice:]]
        changed = [p.model_copy(update={"price": p.price + 100 + offset}) for p in reprice]
        self.measured(Link.loopback())
        # Head office's change in bulk, as PouchDB's is bulkDocs: the prices and the deletes together,
        # one catalog change per IMPORT_BATCH entries (1,000 prices and 100 deletes: two, on both sides).
        entries = [*changed, *(p.sku for p in delete)]
        for i in range(0, len(entries), IMPORT_BATCH):
            part = entries[i:i + IMPORT_BATCH]
            self.admin.import_products([e for e in part if isinstance(e, Product)], [e for e in part if isinstance(e, str)])
        self.node.run("change", remote=f"{self.pouch_direct}/catalog", reprice=[[p.sku, p.price] for p in changed],
                      delete=[p.sku for p in delete])
        self.products = [p for p in self.products if p.sku not in {d.sku for d in delete}]

        self.measured(link)
        started = time.perf_counter()
        report = SyncEngine(store, client).run()
        ours = self.counted(time.perf_counter() - started, report.entries)
        store.close()
        self.measured(link)
        theirs = self.node.run("pull", remote=f"{self.pouch_proxy}/catalog", local=str(self.work / "pouch" / f"pull-{tag}"))
        return ours, self.counted(theirs["seconds"], theirs["docs_written"])


def cpu_note(ours: Result, theirs: Result) -> str:
    """The CPU seconds behind a row: branchsync's till (with the proxy), dev host and Azurite; PouchDB's client and server."""
    a, b = ours.extra["cpu"], theirs.extra["cpu"]
    return (f"CPU s: till {a['self']:.2f}, dev host {a['cloud']:.2f}, Azurite {a['azurite']:.2f}; "
            f"PouchDB client {b['children']:.2f}, server {b['pouchdb-server']:.2f}")


def table(rows: list[tuple[str, str, Result, Result, str]]) -> str:
    out = ["| workload | link | branchsync s | PouchDB s | speed-up | branchsync bytes | PouchDB bytes | bytes ratio | notes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for workload, link, ours, theirs, notes in rows:
        out.append(f"| {workload} | {link} | {ours.seconds:.2f} | {theirs.seconds:.2f} | {theirs.seconds / ours.seconds:.1f}x "
                   f"| {ours.bytes:,} | {theirs.bytes:,} | {theirs.bytes / max(1, ours.bytes):.2f}x | {notes} |")
    return "\n".join(out)


def median_run(label: str, runs: list[tuple[str, Result, Result, str]]) -> tuple[str, str, Result, Result, str]:
    """The run with the median speed-up (the lower middle one of an even count), all speed-ups in its notes."""
    ranked = sorted(runs, key=lambda r: r[2].seconds / r[1].seconds)
    workload, ours, theirs, notes = ranked[(len(ranked) - 1) // 2]
    if len(runs) > 1:
        notes += "; speed-ups of the runs " + ", ".join(f"{t.seconds / o.seconds:.1f}x" for _, o, t, _ in runs)
    return workload, label, ours, theirs, notes


def run(args, work: Path = ROOT / ".bench-peers") -> list[tuple[str, str, Result, Result, str]]:
    # Checked before Azurite and the dev host start, so a missing install leaves nothing running.
    if not POUCHDB_SERVER.exists():
        raise SystemExit(f"PouchDB is not installed ({POUCHDB_SERVER} is missing): run `make setup` "
                         "(or `npm ci`), then run this again")
    shutil.rmtree(work, ignore_errors=True)
    (work / "pouch").mkdir(parents=True)
    bench = Bench(work, args)
    rows = []
    try:
        bench.import_catalog(bench.products)
        bench.seed_pouch("catalog", [product_doc(p) for p in bench.products])
        links = [("loopback", Link.loopback())]
        if args.shaped:
            links.append((f"shaped {args.down_kbit:g}/{args.up_kbit:g} kbit/s, {args.latency_ms:g} ms",
                          Link.shaped(args.down_kbit, args.up_kbit, args.latency_ms)))
        for i, (label, link) in enumerate(links):
            # Loopback figures are CPU-bound and move with the machine's load: each workload runs
            # `repeat` times there, both sides back to back each time, and the row is the run with
            # the median speed-up (all of them in its notes). The shaped link is bound by its bytes.
            runs = args.repeat if label == "loopback" else 1
            done: list[list[tuple[str, Result, Result, str]]] = [[], [], []]
            for r in range(runs):
                tag = f"l{i}" if runs == 1 else f"l{i}r{r}"
                ours, theirs = bench.backlog(tag, link)
                done[0].append((f"backlog, {args.sales:,} sales", ours, theirs,
                                f"branchsync: {ours.count:,} acknowledged, {ours.extra['ops'] / args.sales:.3f} storage "
                                f"ops/sale, {ours.bytes / args.sales:.0f} B/sale; PouchDB {theirs.count:,} written; "
                                + cpu_note(ours, theirs)))
                ours, theirs, store, client = bench.new_branch(tag, link)
                done[1].append((f"new branch, {ours.count:,} products", ours, theirs,
                                f"branchsync {ours.bytes / ours.count:.0f} B/product, "
                                f"PouchDB {theirs.bytes / max(1, theirs.count):.0f} B/product ({theirs.count:,} docs); "
                                + cpu_note(ours, theirs)))
                ours, theirs = bench.price_day(tag, link, store, client, offset=i * 100 + r + 1)
                done[2].append((f"price day, {args.reprice:,} prices + {args.delete} deletes", ours, theirs,
                                f"branchsync {ours.count:,} entries, PouchDB {theirs.count:,} docs; " + cpu_note(ours, theirs)))
            rows += [median_run(label, workload_runs) for workload_runs in done]
    finally:
        bench.close()
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sales", type=int, default=10_000)
    p.add_argument("--products", type=int, default=100_000)
    p.add_argument("--reprice", type=int, default=1_000)
    p.add_argument("--delete", type=int, default=100)
    p.add_argument("--down-kbit", type=float, default=2000)
    p.add_argument("--up-kbit", type=float, default=1000)
    p.add_argument("--latency-ms", type=float, default=150)
    p.add_argument("--repeat", type=int, default=3, help="runs of each workload on loopback (the row is the median)")
    p.add_argument("--no-shaped", dest="shaped", action="store_false", help="loopback only")
    return p


def main() -> None:
    args = parser().parse_args()
    print(f"branchsync vs PouchDB, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, on {machine()}", flush=True)
    print(table(run(args)))


if __name__ == "__main__":
    main()
