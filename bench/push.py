"""The till's side of a backlog push, measured alone: CPU seconds and when each queue put left.

A branch home is filled once with `--sales` v3 sales recorded by `Store.record_sale` (1 to
4 lines of the demo catalog, cash or card, as `bench.peers` records its backlog) and kept
in `.bench-push/` for the next run; every trial copies it, so each starts from the same
never-pushed backlog. Each trial runs the real `SyncEngine` with the real `CloudClient`
and the azure-storage-queue SDK against a real Azurite queue (in memory, loopback), with an
add-only SAS. Only the cloud's HTTP side is stood in (an `httpx.MockTransport` answering
the pull with an empty catalog page and that SAS): nothing applies the messages, so what is
timed is the till's work and the queue's acceptance alone.

Printed per trial: the push's CPU seconds on the till (time.process_time, all threads),
wall seconds from the push's start to the first and the last accepted put, the messages,
sales per message and bytes per sale on the queue (message text, base64 included). With
`--profile`, the cProfile of one more trial (top functions by cumulative time).

    python -m bench.push [--sales N] [--trials N] [--profile]
"""

import argparse
import cProfile
import pstats
import random
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from azure.storage.queue import QueueClient, QueueSasPermissions, generate_queue_sas

from bench.cpu import like_a_till_process
from bench.peers import CATALOG_FOR_SALES, catalog, sale_items
from branch_client.cloud_client import AzureQueueSender, CloudClient
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from branch_client.sync import Progress, SyncEngine, SyncState
from headoffice.stand_ins import DEV_ACCOUNT, DEV_KEY, ROOT, start_azurite
from shared.models import CatalogEntry, CatalogPage, PullAnswer, QueueAccess

BRANCH = "push-bench"
QUEUE = "sales"


def backlog_home(work: Path, count: int) -> Path:
    """A branch home with `count` never-pushed sales, recorded once and kept for later runs."""
    home = work / f"backlog-{count}"
    if (home / "ready").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    products = catalog(CATALOG_FOR_SALES)
    with Store(home) as store:
        store.save_identity(Identity(branch=BRANCH, cloud_url="http://cloud.invalid", secret="s" * 43))
        entries = [CatalogEntry(version=i + 1, sku=p.sku, product=p) for i, p in enumerate(products)]
        for i in range(0, len(entries), 1000):
            page = entries[i:i + 1000]
            store.apply_catalog_page(CatalogPage(entries=page, next_cursor=page[-1].version,
                                                 more=i + 1000 < len(entries)), 0)
        rng = random.Random(count)
        for _ in range(count):
            store.record_sale(parse_items(sale_items(rng, products)), rng.choice(["cash", "card"]))
    (home / "ready").touch()
    return home


class TimedSender(AzureQueueSender):
    """The real queue sender, noting when each put was accepted and how long the text was."""

    def __init__(self):
        super().__init__()
        self.accepted: list[tuple[float, int]] = []

    def __call__(self, queue_url: str, sas_token: str, text: str) -> None:
        super().__call__(queue_url, sas_token, text)
        self.accepted.append((time.perf_counter(), len(text)))


def pull_answer(access: QueueAccess):
    def handler(request: httpx.Request) -> httpx.Response:
        answer = PullAnswer(branch=BRANCH, applied_through=0, server_time=datetime.now(timezone.utc), push=access,
                            catalog=CatalogPage(entries=[], next_cursor=int(request.url.params["cursor"]), more=False))
        return httpx.Response(200, content=answer.model_dump_json().encode(),
                              headers={"Content-Type": "application/json"})
    return handler


def trial(source: Path, work: Path, access: QueueAccess, profile: cProfile.Profile | None = None) -> dict:
    home = work / f"trial-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, home)
    sender = TimedSender()
    marks: dict[str, float] = {}

    def on_progress(p: Progress) -> None:
        if p.state == SyncState.PUSHING and "push" not in marks:
            marks["push"], marks["cpu"] = time.perf_counter(), time.process_time()

    store = Store(home)
    client = CloudClient.for_identity(store.identity(), transport=httpx.MockTransport(pull_answer(access)),
                                      queue_sender=sender)
    like_a_till_process()
    try:
        if profile:
            profile.enable()
        report = SyncEngine(store, client, on_progress=on_progress).run()
        if profile:
            profile.disable()
        cpu = time.process_time() - marks["cpu"]
        done = time.perf_counter()
    finally:
        client.close()
        store.close()
        shutil.rmtree(home, ignore_errors=True)
    sizes = [n for _, n in sender.accepted]
    return {"cpu": cpu, "first": sender.accepted[0][0] - marks["push"], "last": sender.accepted[-1][0] - marks["push"],
            "push": done - marks["push"], "messages": len(sizes), "pushed": report.pushed,
            "per_message": report.pushed / len(sizes), "bytes_per_sale": sum(sizes) / report.pushed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sales", type=int, default=10_000, help="sales in the backlog (default 10,000)")
    ap.add_argument("--trials", type=int, default=3, help="pushes measured (default 3)")
    ap.add_argument("--profile", action="store_true", help="profile one more push with cProfile")
    args = ap.parse_args()
    work = ROOT / ".bench-push"
    source = backlog_home(work, args.sales)
    azurite = start_azurite(work / "azurite")
    try:
        account_url = f"http://127.0.0.1:{azurite.queue_port}/{DEV_ACCOUNT}"
        QueueClient.from_connection_string(azurite.connection_string, QUEUE).create_queue()
        sas = generate_queue_sas(DEV_ACCOUNT, QUEUE, account_key=DEV_KEY, permission=QueueSasPermissions(add=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=2))
        access = QueueAccess(queue_url=f"{account_url}/{QUEUE}", sas_token=sas,
                             expires_at=datetime.now(timezone.utc) + timedelta(hours=2))
        print(f"push of {args.sales:,} v3 sales to Azurite; seconds from the push's start")
        print("trial  cpu_s  first_put_s  last_put_s  push_s  messages  sales/msg  bytes/sale")
        for n in range(args.trials):
            r = trial(source, work, access)
            print(f"{n + 1:>5}  {r['cpu']:5.3f}  {r['first']:11.3f}  {r['last']:10.3f}  {r['push']:6.3f}  "
                  f"{r['messages']:8d}  {r['per_message']:9.1f}  {r['bytes_per_sale']:10.1f}")
        if args.profile:
            profile = cProfile.Profile()
            trial(source, work, access, profile)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(35)
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
