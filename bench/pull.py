"""The catalog pull on its own: a fresh till's first pull, then a price day, against the dev host on Azurite.

Prints, for each, the wall time, the CPU seconds of the till (this process), of the dev host
and of Azurite (both read from /proc/<pid>/stat, children included), the pages and the bytes
per product on the wire. `--profile FILE` writes the till's cProfile of the first pull (and
FILE.price-day of the price day); `--spy FILE` py-spy's samples of the dev host during the
first pull (collapsed stacks; `pip install py-spy`). Loopback only; no PouchDB.

    .venv/bin/python -m bench.pull --products 30000
"""

import argparse
import cProfile
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.cpu import cpu_of, like_a_till_process
from bench.peers import catalog
from branch_client.cloud_client import CloudClient
from branch_client.identity import Identity
from branch_client.store import Store
from branch_client.sync import SyncEngine
from headoffice.admin_client import AdminClient
from headoffice.stand_ins import start_azurite, start_cloud
from shared.enrollment import decode_code

IMPORT_BATCH = 1000


class WireBytes(httpx.HTTPTransport):
    """The till's transport, adding up the answers' Content-Length: their bytes as sent, gzipped.

    (bench.bench.CountingTransport reads the body, which decodes it, and hands it on under
    the gzip header again: the client then fails to decode a pull answer.)"""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def handle_request(self, request):
        response = super().handle_request(request)
        self.bytes += int(response.headers.get("content-length") or 0)
        return response


def measured(label: str, run, pids: dict[str, int], count: int, transport: WireBytes, profile: str | None = None):
    like_a_till_process()
    before = {name: cpu_of(pid) for name, pid in pids.items()}
    transport.bytes = 0
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        prof = cProfile.Profile()
        report = prof.runcall(run)
        prof.dump_stats(profile)
    else:
        report = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = {"wall": wall, "till": cpu, **{name: cpu_of(pid) - before[name] for name, pid in pids.items()},
               "pages": report.pages, "entries": report.entries, "bytes_per_product": transport.bytes / max(1, count)}
    others = ", ".join(f"{name} {figures[name]:.2f} s" for name in pids)
    print(f"{label}: {wall:.2f} s wall; CPU: till {cpu:.2f} s, {others}; {report.pages} pages, "
          f"{report.entries:,} entries, {figures['bytes_per_product']:.1f} bytes per product", flush=True)
    return figures


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Runs both and returns their figures: {"first pull": {...}, "price day": {...}}."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--products", type=int, default=100_000)
    p.add_argument("--reprice", type=int, default=1_000)
    p.add_argument("--delete", type=int, default=100)
    p.add_argument("--profile", help="write the till's cProfile of the first pull here (the price day's beside it)")
    p.add_argument("--spy", help="write py-spy's collapsed stacks of the dev host during the first pull here")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    azurite = start_azurite(work / "azurite")
    key = uuid.uuid4().hex
    cloud = start_cloud(work / "cloud", azurite.connection_string, key)
    try:
        admin = AdminClient(cloud.url, key, timeout=300)
        products = catalog(args.products)
        for i in range(0, len(products), IMPORT_BATCH):
            admin.import_products(products[i:i + IMPORT_BATCH])
        code = decode_code(admin.add_branch("bench-pull").enrollment_code)
        answer = CloudClient(cloud.url, timeout=300).enroll(code.token)
        store = Store(work / "till")
        store.save_identity(Identity(branch=answer.branch, cloud_url=cloud.url, secret=answer.secret))
        transport = WireBytes()
        client = CloudClient.for_identity(store.identity(), timeout=300, transport=transport)
        pids = {"dev host": cloud.process.pid, "Azurite": azurite.process.pid}

        def pull():
            return SyncEngine(store, client).run()

        spy = None
        if args.spy:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(cloud.process.pid),
                                    "--format", "raw", "--output", args.spy, "--rate", "250", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        first = measured(f"first pull of {args.products:,} products", pull, pids, args.products, transport,
                         args.profile)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        assert store.status()["products"] == args.products
        assert store.search_products(products[-1].barcode)

        rng = random.Random(1)
        chosen = rng.sample(range(len(products)), args.reprice + args.delete)
        changed = [products[i].model_copy(update={"price": products[i].price + 100}) for i in chosen[:args.reprice]]
        for i in range(0, len(changed), IMPORT_BATCH):
            admin.import_products(changed[i:i + IMPORT_BATCH])
        admin.delete_products([products[i].sku for i in chosen[args.reprice:]])  # one change, as head office sends it
        day = measured(f"price day ({args.reprice:,} prices, {args.delete} deletes)", pull, pids,
                 args.reprice + args.delete, transport, args.profile and args.profile + ".price-day")
        store.close()
        admin.close()
        return {"first pull": first, "price day": day}
    finally:
        cloud.stop()
        azurite.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
