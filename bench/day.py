"""`python -m bench.day`: one simulated shop day, counted: what a branch costs the cloud.

One branch of a typical shop (300 sales a day, a sync every 5 minutes, 200 price changes a
day in 10 imports) runs a whole day's syncs through the real branch sync engine against the
real cloud Service on Azurite, in-process and with no waiting: each HTTP call the till makes
is one function execution, each queue message one more (the sales trigger). Counted:
storage operations (the Store's own counter), queue operations (put, get, delete per
message), executions and their seconds. It prints one JSON object; docs/cost.md prices it.
"""

import argparse
import base64
import json
import random
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.peers import catalog, sale_items
from branch_client.cloud_client import CloudClient
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from branch_client.sync import SyncEngine
from headoffice.stand_ins import ROOT, start_azurite
from shared.enrollment import decode_code
from shared.models import CatalogImport, EnrollRequest

URL = "http://cloud.bench"


class Meter:
    """The counters of one simulated day, taken around every call into the Service."""

    def __init__(self, service):
        self.service = service
        self.counts = {"pull_executions": 0, "apply_executions": 0, "pull_ops": 0, "apply_ops": 0,
                       "queue_ops": 0, "execution_seconds": 0.0}

    def timed(self, kind: str, call):
        ops, started = self.service.store.ops, time.perf_counter()
        try:
            return call()
        finally:
            self.counts[f"{kind}_executions"] += 1
            self.counts[f"{kind}_ops"] += self.service.store.ops - ops
            self.counts["execution_seconds"] += time.perf_counter() - started

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/pull":
            return httpx.Response(404)
        from branchsync_cloud.http import pull_answer, read_signed

        signed = read_signed(request.headers, request.method, request.url.path, dict(request.url.params), b"")
        answer = self.timed("pull", lambda: pull_answer(self.service, signed))
        return httpx.Response(200, content=answer.encode(), headers={"Content-Type": "application/json"})

    def send(self, queue_url: str, sas_token: str, text: str) -> None:
        # put by the till, then get and delete by the host around the trigger's run
        self.counts["queue_ops"] += 3
        self.timed("apply", lambda: self.service.apply_message(base64.b64decode(text)))


def simulate(args, work: Path) -> dict:
    from branchsync_cloud.service import Service
    from branchsync_cloud.settings import Settings
    from branchsync_cloud.table_store import TableStore

    azurite = start_azurite(work / "azurite")
    try:
        settings = Settings.from_env({"AzureWebJobsStorage": azurite.connection_string, "BRANCHSYNC_ADMIN_KEY": "k" * 32,
                                      "BRANCHSYNC_TABLE_PREFIX": "day" + uuid.uuid4().hex[:6]})
        service = Service(TableStore(settings.storage_source, settings.table_prefix), settings)
        products = catalog(args.products)
        for i in range(0, len(products), 1000):
            service.import_catalog(CatalogImport(products=products[i:i + 1000]))
        created = service.create_branch("day-shop", URL)
        answer = service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token))
        store = Store(work / "till")
        store.save_identity(Identity(branch=answer.branch, cloud_url=URL, secret=answer.secret))
        meter = Meter(service)
        client = CloudClient(URL, answer.branch, answer.secret, transport=httpx.MockTransport(meter.handler),
                             queue_sender=meter.send, backoff=0)
        SyncEngine(store, client).run()  # the first pull (the catalog) is not part of a day
        meter.counts = {k: type(v)() for k, v in meter.counts.items()}

        rng = random.Random(args.seed)
        syncs = args.day_minutes // args.sync_minutes
        sale_at = sorted(rng.randrange(syncs) for _ in range(args.sales))
        import_at = {syncs * (i + 1) // (args.imports + 1) for i in range(args.imports)}
        per_import = args.price_changes // args.imports
        engine_options = dict(ack_wait=args.ack_wait, sleep=lambda s: None)
        for slot in range(syncs):
            while sale_at and sale_at[0] == slot:
                sale_at.pop(0)
                store.record_sale(parse_items(sale_items(rng, products[:200])), rng.choice(["cash", "card"]))
            if slot in import_at:
                changed = [p.model_copy(update={"price": p.price + rng.randint(1, 500)})
                           for p in rng.sample(products, per_import)]
                service.import_catalog(CatalogImport(products=changed))
            SyncEngine(store, client, **engine_options).run()
        store.close()
        counts = meter.counts
        counts.update(syncs=syncs, sales=args.sales, price_changes=per_import * args.imports,
                      storage_ops=counts["pull_ops"] + counts["apply_ops"],
                      executions=counts["pull_executions"] + counts["apply_executions"],
                      pending_at_end=Store(work / "till").pending_count())
        return counts
    finally:
        azurite.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sales", type=int, default=300)
    p.add_argument("--sync-minutes", type=int, default=5)
    p.add_argument("--day-minutes", type=int, default=24 * 60)
    p.add_argument("--price-changes", type=int, default=200)
    p.add_argument("--imports", type=int, default=10, help="head office imports the day's price changes in this many goes")
    p.add_argument("--products", type=int, default=5_000)
    p.add_argument("--ack-wait", type=float, default=5.0, help="the sync's wait for the acknowledgement (0: none)")
    p.add_argument("--seed", type=int, default=1)
    return p


def main() -> None:
    args = parser().parse_args()
    work = ROOT / ".bench" / "day"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts = simulate(args, work)
    counts["measured_at"] = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
