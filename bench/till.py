"""`make bench` (the till part): the till's figures, measured through its real HTTP server.

A branch home is filled fast with a catalog of 100,000 products (Bangla and English names,
barcodes) stored page by page through `Store.apply_catalog_page`, as a pull stores it with
its FTS5 index, and 1,000,000 sale events: one sale recorded by `Store.record_sale`, then
copied row by row into the sales table with fresh numbers and ids in one transaction (the
rows a million `record_sale` calls would leave, all acknowledged by the cloud, as on a till
that has sold for years). The till's app (`create_app`) is then served by uvicorn on
127.0.0.1 and called with httpx, with the Host header and per-launch token the page sends.

Measured: search p50/p99 through the store and through GET /api/products; a scan (GET
/api/products/code/{barcode}, what the page calls before it adds the line); recording a sale
(POST /api/sales, the page's complete v3 body: a sale discount, bKash and cash with change)
with the events stored; the time from starting `branchsync till` (and the
one-file executable when dist/branchsync exists) until GET / and /api/status answer;
`--version`; the executable's size. Goals: search p99 <= 15 ms, sale p99 <= 20 ms, page
<= 3 s, `--version` <= 1.5 s, executable <= 35 MB.

    python -m bench.till [--products N] [--events N] [--samples N] [--launches N] [--exe PATH]
"""

import argparse
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import insert, update

from bench.bench import machine, pct
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.schema import generations
from branch_client.schema import sales as sales_table
from branch_client.store import Store, time_text
from branch_client.till import core
from branch_client.till.server import BackgroundSync, bind, create_app, engine_sync
from demo.sample_catalog import sample_products
from headoffice.stand_ins import ROOT
from shared.models import CatalogEntry, CatalogPage, Product

BIN = Path(sys.executable).parent
EXE = ROOT / "dist" / "branchsync"
MB = 1024 * 1024
GOALS = {"search": 15.0, "sale": 20.0, "page": 3000.0, "version": 1500.0, "exe": 35 * MB}
PAGE = 1000
CHUNK = 50_000


def split_sale(one: dict, two: dict) -> dict:
    """The body the page sends for a two-line cart with a ৳1 sale discount, paid ৳1 by bKash
    and the rest in cash from the next ৳100 note up (the complete v3 record)."""
    total = int(Decimal(one["price"]) * 100) + 2 * int(Decimal(two["price"]) * 100) - 100
    rest = total - 100
    return {"lines": [{"sku": one["sku"], "qty": "1"}, {"sku": two["sku"], "qty": "2"}],
            "discount": {"kind": "amount", "value": "100", "reason": "regular customer"},
            "payments": [{"method": "mobile", "amount": 100, "wallet": "bkash", "txn_id": "9C4K7TQ2XA"},
                         {"method": "cash", "amount": rest, "tendered": (rest // 10000 + 1) * 10000}]}


def fill(home: Path, n_products: int, n_events: int) -> tuple[Store, list[dict]]:
    """A till home with `n_products` products and `n_events` stored sale events."""
    store = Store(home)
    rows = sample_products(n_products)
    for i in range(0, len(rows), PAGE):
        entries = [CatalogEntry(version=i + j + 1, sku=r["sku"], product=Product(
            sku=r["sku"], name=r["name"], price=int(Decimal(r["price"]) * 100), barcode=r["barcode"], unit=r["unit"],
            vat_rate=Decimal(r["vat_rate"]))) for j, r in enumerate(rows[i: i + PAGE])]
        store.apply_catalog_page(CatalogPage(entries=entries, next_cursor=i + len(entries),
                                             more=i + PAGE < len(rows)), 0)
    store.save_identity(Identity(branch="bench-till", cloud_url="http://127.0.0.1:9", secret="A" * 43))
    template = store.record_sale(parse_items([rows[1]["sku"] + "=1", rows[2]["sku"] + "=2"]), "cash")
    body = template.model_dump_json()
    seq_text, id_text = f'"seq":{template.seq},', f'"sale_id":"{template.sale_id}"'
    assert seq_text in body and id_text in body, "the sale's JSON changed shape; update the bulk load"
    now = time_text(datetime.now(timezone.utc))
    with store._write() as conn:  # noqa: SLF001 - benchmark set-up only: the rows record_sale writes
        for start in range(2, n_events + 1, CHUNK):
            batch = []
            for seq in range(start, min(start + CHUNK, n_events + 1)):
                sale_id = uuid.uuid4().hex
                batch.append(dict(
                    generation=1, seq=seq, sale_id=sale_id, kind="sale", voids_generation=None, voids=None,
                    recorded_at=time_text(template.recorded_at), total=template.total, payment_method="cash",
                    body=body.replace(seq_text, f'"seq":{seq},').replace(id_text, f'"sale_id":"{sale_id}"'),
                    pushed_at=now, push_count=1, acked_at=now, client_key=None, reason=None, cashier=None))
            conn.execute(insert(sales_table), batch)
        conn.execute(update(sales_table).values(pushed_at=now, push_count=1, acked_at=now))
        conn.execute(update(generations).where(generations.c.generation == 1).values(applied_through=n_events))
    return store, rows


class TillServer:
    """The till's app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, store: Store):
        self.sock = bind(0)
        self.port = self.sock.getsockname()[1]
        self.token = "bench-" + uuid.uuid4().hex
        # The real sync engine against a cloud that refuses connections: a till offline, whose
        # push after each sale fails at once and backs off, as it would in a shop.
        self.sync = BackgroundSync(engine_sync(store))
        app = create_app(store, port=self.port, token=self.token, sync=self.sync)
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                   headers={"host": f"127.0.0.1:{self.port}", core.TOKEN_HEADER: self.token})
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.sync.wait(10)


def timed(call, args_list) -> list[float]:
    times = []
    for args in args_list:
        t = time.perf_counter()
        call(args)
        times.append((time.perf_counter() - t) * 1000)
    return times


def search_queries(rows: list[dict], samples: int) -> list[str]:
    """What a cashier types: barcodes, SKUs, Bangla and English words and their beginnings."""
    step = max(1, len(rows) // samples)
    typed = ["চাল", "চি", "Hils", "Hilsa", "pran", "so", "ডাল", "soap", rows[len(rows) // 3]["barcode"][3:9]]
    mix = [r["barcode"] for r in rows[::step]] + [r["sku"].lower() for r in rows[7::step]] + typed * (samples // 4)
    return (mix * (1 + samples // max(1, len(mix))))[:samples]


def wait_ok(client: httpx.Client, path: str, deadline: float, proc: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before it answered {path}: "
                               f"{proc.stderr.read().decode(errors='replace').strip()}")
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"the till did not answer {path} in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ms(command: list[str], home: Path, launches: int) -> tuple[list[float], list[float]]:
    """Milliseconds from starting `command ... till --no-browser` until GET / and then /api/status answer."""
    page, status = [], []
    for _ in range(launches):
        port = free_port()
        t = time.perf_counter()
        proc = subprocess.Popen([*command, "--home", str(home), "till", "--no-browser", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                wait_ok(client, "/", time.monotonic() + 60, proc)
                page.append((time.perf_counter() - t) * 1000)
                wait_ok(client, "/api/status", time.monotonic() + 60, proc)
                status.append((time.perf_counter() - t) * 1000)
        finally:
            proc.terminate()
            proc.wait(10)
    return page, status


def version_ms(command: list[str], runs: int) -> list[float]:
    return timed(lambda _: subprocess.run([*command, "--version"], check=True, capture_output=True), range(runs))


def measure(work: Path, n_products: int, n_events: int, samples: int, launches: int,
            exe: Path = EXE) -> list[tuple[str, str, str]]:
    """The rows of the figures table: (what, figure, goal)."""
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    table = []
    t = time.perf_counter()
    store, rows = fill(home, n_products, n_events)
    status = store.status()
    assert status["products"] == len({r["sku"] for r in rows}) and status["sales_recorded"] == n_events
    table.append((f"filled home: {status['products']:,} products, {status['sales_recorded']:,} events",
                  f"{time.perf_counter() - t:.0f} s", ""))

    def row(what: str, times: list[float], goal: float | None = None) -> None:
        mark = "" if goal is None else f"p99 <= {goal:.0f} ms: " + ("met" if pct(times, 99) <= goal else "MISSED")
        table.append((f"{what} ({len(times)})", f"p50 {pct(times, 50):.2f} ms, p99 {pct(times, 99):.2f} ms", mark))

    queries = search_queries(rows, samples)
    row("search, store call", timed(lambda q: store.search_products(q, 12), queries), GOALS["search"])
    codes = [r["barcode"] for r in rows[:: max(1, len(rows) // samples)]][:samples]
    with TillServer(store) as client:
        def search(q):
            assert client.get("/api/products", params={"limit": 12, "q": q}).status_code == 200

        def scan(code):
            assert client.get(f"/api/products/code/{code}").status_code == 200

        carts = [split_sale(rows[i], rows[i + 1]) for i in range(10, 10 + 2 * samples, 2)]

        def sale(body):
            answer = client.post("/api/sales", json={"key": uuid.uuid4().hex, **body})
            assert answer.status_code == 201, answer.text
            assert len(answer.json()["sale"]["payments"]) == 2

        row("search, GET /api/products", timed(search, queries), GOALS["search"])
        row("scan to line added, GET /api/products/code/{barcode}", timed(scan, codes))
        row(f"record a split sale (v3: discount, bKash + cash with change), POST /api/sales "
            f"({n_events:,} events stored)", timed(sale, carts), GOALS["sale"])
        row("GET /api/status", timed(lambda _: client.get("/api/status"), range(min(samples, 50))))
    store.close()

    commands = [("branchsync (console script)", [str(BIN / "branchsync")])]
    if exe.is_file():
        commands.append(("one-file executable", [str(exe)]))
        size = exe.stat().st_size
        table.append(("executable size", f"{size / MB:.1f} MB",
                      "<= 35 MB: " + ("met" if size <= GOALS["exe"] else "MISSED")))
    for name, command in commands:
        page, api = launch_ms(command, home, launches)
        worst = max(api)
        table.append((f"{name}: `till` to GET / answering ({launches})", f"median {pct(page, 50):.0f} ms, "
                      f"worst {max(page):.0f} ms", ""))
        table.append((f"{name}: `till` to /api/status answering ({launches})", f"median {pct(api, 50):.0f} ms, "
                      f"worst {worst:.0f} ms", "<= 3 s: " + ("met" if worst <= GOALS["page"] else "MISSED")))
        versions = version_ms(command, launches)
        table.append((f"{name}: `--version` ({launches})", f"median {pct(versions, 50):.0f} ms, "
                      f"worst {max(versions):.0f} ms",
                      "<= 1.5 s: " + ("met" if max(versions) <= GOALS["version"] else "MISSED")))
    return table


def print_table(table: list[tuple[str, str, str]]) -> None:
    width = [max(len(r[i]) for r in table) for i in range(3)]
    for what, figure, goal in table:
        print(f"  {what:<{width[0]}}  {figure:<{width[1]}}  {goal}".rstrip())


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / ".bench-till")
    parser.add_argument("--exe", type=Path, default=EXE, help="the one-file executable, measured when it exists")
    args = parser.parse_args(argv)
    print(f"branchsync till benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, on {machine()}")
    table = measure(args.work, args.products, args.events, args.samples, args.launches, args.exe)
    print_table(table)
    shutil.rmtree(args.work, ignore_errors=True)
    return table


if __name__ == "__main__":
    main()
