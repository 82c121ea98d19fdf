"""Test helpers for the branch: catalog builders, and the real cloud in memory behind the branch's seam.

`FakeCloud` is the real cloud with two things stood in: the network and the queue's
transport. What is real: the Functions app of function_app/function_app.py, loaded and
routed as the dev host does (headoffice/devhost.py: its HttpGateway turns each request into
an `azure.functions.HttpRequest`, picks the registered function by route and method, and
answers 404, 413 or a bare 500 as the Functions host would); so request signatures, nonces,
rotation, revocation, catalog pages, gzip and the JSON error mapping are production code.
Behind it the real `Service` with real `Settings`, over a fresh `MemoryStore` (the Store
protocol with Table Storage's semantics). Head office's side (products, deletes, the
tombstone purge, rotation, revocation) goes through the Service as the admin routes do. The
push SAS is a real one, signed by the cloud's own account-key signer for an account nobody
connects to.

Stood in:

- the network: `handler` is given to `httpx.MockTransport`, and a request reaches the
  dev host's gateway as the ASGI request uvicorn would make of it (no socket, no event loop
  left running), so the branch tests stay fast and need no Azurite or Node;
- the queue's transport: `send` is the branch's queue sender, and the push route's queue
  client is `_SalesQueue`. Either checks what Azure Queue Storage would (the SAS names this
  queue, may add and has not expired; at most 64 KiB) and then hands the message, base64-
  decoded and bound as the trigger's dataType says, to the registered queue function
  `apply_sales` at once, as the Functions host would later.

The fault knobs `down`, `pull_failures_after` and `queue_down_after` act only at those two
stand-ins (a queue that is down is down for the push route too, as one outage would be);
`sas_lifetime` makes the real signer's SAS expire sooner. What tests read back (`applied`,
`secret`, `products()`...) is read from what the cloud stored. Two arrangements write the
branch's record as the cloud would, for states no route makes: `refusal` (as dead-lettering
a refused message stores it), and a token in `enroll_tokens` (a further enrollment code for
the same branch, issued as the branch presents it). A queue function that raises fails the
send that delivered the message, so a defect shows at once rather than as a retry.

The app's service slot (branchsync_cloud.http, one per worker process) holds this cloud's
Service only while one of its requests or messages runs and is restored after, so nothing
of one test's cloud reaches another, and the app's code runs unchanged.
"""

import asyncio
import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import cache
from urllib.parse import parse_qs

import httpx
from starlette.requests import Request

from branch_client.cloud_client import CloudClient
from branch_client.identity import Identity
from branchsync_cloud import http as cloud_http
from branchsync_cloud.memory_store import MemoryStore
from branchsync_cloud.queue_access import SALES_QUEUE, SAS_LIFETIME, AccountKeySigner
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.store import StoreUnavailable
from headoffice import devhost
from shared import limits
from shared.enrollment import decode_code
from shared.models import CatalogEntry, CatalogImport, CatalogPage, EnrollRequest, Product, Refusal, Sale

BRANCH = "dhaka-1"
CLOUD_URL = "https://cloud.example"
# An account the push SAS is signed for; nothing ever connects to it.
ACCOUNT = "branchsyncfake"
QUEUE_URL = f"https://{ACCOUNT}.queue.core.windows.net/{SALES_QUEUE}"
ENROLLMENT_CODE_LIFETIME = timedelta(hours=24)


def product(sku: str, price: int = 10000, name: str | None = None, **extra) -> Product:
    return Product(sku=sku, name=name or f"Product {sku}", price=price, **extra)


def page(*entries: CatalogEntry, next_cursor: int | None = None, more: bool = False) -> CatalogPage:
    if next_cursor is None:
        next_cursor = max((e.version for e in entries), default=0)
    return CatalogPage(entries=list(entries), next_cursor=next_cursor, more=more)


def entry(version: int, p: Product) -> CatalogEntry:
    return CatalogEntry(version=version, sku=p.sku, product=p)


def tombstone(version: int, sku: str) -> CatalogEntry:
    return CatalogEntry(version=version, sku=sku, deleted=True)


# --- the Functions app, loaded once per test process ---------------------------------------------


def _run(coroutine):
    """asyncio.run, on a thread of its own when this thread already runs a loop (Playwright's
    sync API keeps one running for the session once a page test has used it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict = {}

    def work():
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@cache
def _app() -> tuple[devhost.HttpGateway, devhost.QueueFunction]:
    """The app's HTTP functions behind the dev host's gateway, and its sales queue function."""
    http_functions, queue_functions = devhost.discover(devhost.IndexedApp(devhost.load_app(devhost.DEFAULT_APP_DIR)))
    config = devhost.read_host_json(devhost.DEFAULT_APP_DIR)
    [sales] = [q for q in queue_functions if q.queue == SALES_QUEUE]
    return devhost.HttpGateway(http_functions, config.route_prefix), sales


# Serialises the use of the app's one service slot (the TLS tests' server answers from threads of its
# own). Taken by the dispatching thread only: the function itself runs in the gateway's worker thread,
# and a push route's delivery there reads the slot without taking this again.
_SLOT = threading.RLock()


def _asgi_request(request: httpx.Request) -> Request:
    """`request` as uvicorn would hand it to the dev host's Starlette app."""
    body = request.read()
    url = request.url
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
             "scheme": url.scheme, "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
             "client": ("127.0.0.1", 50000), "root_path": "", "path": url.path,
             "raw_path": url.raw_path.split(b"?", 1)[0], "query_string": url.query,
             "headers": [(name.lower(), value) for name, value in request.headers.raw]}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


class _RecordingService(Service):
    """The real Service, noting each queue message's outcome (the queue function only logs it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: list = []

    def apply_message(self, body: bytes):
        outcome = super().apply_message(body)
        self.outcomes.append(outcome)
        return outcome


class _ShortLivedSigner(AccountKeySigner):
    """The cloud's own account-key signer, its SAS lasting `sas_lifetime` rather than the cloud's hour."""

    def __init__(self, cloud: "FakeCloud"):
        super().__init__(cloud.connection_string)
        self._cloud = cloud

    def access(self, now: datetime):
        return super().access(now - (SAS_LIFETIME - self._cloud.sas_lifetime))


class _SalesQueue:
    """The push route's queue client (branchsync_cloud.queue_access.SalesQueue) on the stand-in queue."""

    def __init__(self, cloud: "FakeCloud"):
        self._cloud = cloud

    def send(self, texts: list[str]) -> None:
        for text in texts:
            if self._cloud.queue_is_down():
                raise StoreUnavailable("the sales queue cannot be reached (ServiceRequestError)")
            self._cloud._enqueue(text)


class FakeCloud:
    """The real cloud, in memory, with one enrolled branch; see the module docstring."""

    def __init__(self, branch: str = BRANCH):
        self.branch = branch
        self.url = CLOUD_URL
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.connection_string = f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={key};" \
                                 "EndpointSuffix=core.windows.net"
        self.store = MemoryStore()
        settings = Settings(storage=self.connection_string, admin_key=secrets.token_urlsafe(24), public_url=CLOUD_URL)
        self.service = _RecordingService(self.store, settings, signer=_ShortLivedSigner(self),
                                         sales_queue=_SalesQueue(self))
        self.messages: list[str] = []                # queue messages the queue accepted, in order
        self.pulls: list[dict] = []                  # the query of each pull the cloud answered
        self.pull_failures_after: int | None = None  # answer this many pulls, then the network is cut
        self.down = False                            # every call fails to connect
        self.queue_down_after: int | None = None     # the queue accepts this many messages, then is unreachable
        self.sas_lifetime = SAS_LIFETIME
        # A cloud slow to apply: accepted messages wait in `held` until the pull numbered
        # `apply_at_pull` (1 = the first pull answered; never while it is None).
        self.slow = False
        self.apply_at_pull: int | None = None
        self.apply_per_pull: int | None = None  # from then on, at most this many held messages a pull (None: all)
        self.held: list[str] = []
        # Tokens of enrollment codes head office handed out for this branch (each works once).
        self.enroll_tokens: set[str] = set()
        # Head office creates the branch, and the branch enrolls with its code.
        created = self.service.create_branch(branch, CLOUD_URL)
        self.service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token))

    # --- head office's side -------------------------------------------------------------------

    def put(self, *products: Product) -> None:
        # In imports of at most CATALOG_IMPORT_MAX products, as head office sends a larger catalog.
        for start in range(0, len(products), limits.CATALOG_IMPORT_MAX):
            self.service.import_catalog(CatalogImport(products=list(products[start:start + limits.CATALOG_IMPORT_MAX])))

    def delete(self, sku: str) -> None:
        self.service.delete_sku(sku)

    def purge_tombstones(self) -> None:
        """Compact the catalog as the nightly timer does; a branch behind a purged tombstone must resync in full."""
        self.service.purge_tombstones()

    def rotate(self) -> str:
        self.service.rotate_branch(self.branch)
        return self.next_secret

    @property
    def revoked(self) -> bool:
        return self._record().revoked_at is not None

    @revoked.setter
    def revoked(self, value: bool) -> None:
        if not value:
            raise ValueError("a revoked branch stays revoked")
        self.service.revoke_branch(self.branch)

    @property
    def refusal(self) -> Refusal | None:
        """The refused message the pull reports to the till (the cloud keeps it on the branch record)."""
        stored = self._record().last_refusal
        return Refusal.model_validate_json(stored) if stored else None

    @refusal.setter
    def refusal(self, value: Refusal | None) -> None:
        # Stored as the cloud's dead-lettering stores it; None is head office settling it.
        self.store.merge_branch(self.branch, last_refusal=value.model_dump_json() if value else "")

    # --- what the cloud holds -------------------------------------------------------------------

    def _record(self):
        return self.store.get_branch(self.branch)

    @property
    def secret(self) -> str:
        return self._record().secret

    @property
    def next_secret(self) -> str | None:
        return self._record().next_secret

    @property
    def previous_secret(self) -> str | None:
        return self._record().previous_secret

    @property
    def version(self) -> int:
        return self.store.get_catalog_counter().counter.last_version

    def products(self) -> dict[str, Product]:
        """The live catalog: each SKU's current version, as the catalog index names it."""
        current = {sku: e.version for bucket in self.store.get_catalog_index().values()
                   for sku, e in bucket.entries.items() if not e.deleted}
        return {row.sku: row.product for segment in self.store.scan_catalog() for row in segment.rows
                if current.get(row.sku) == row.version}

    @property
    def by_generation(self) -> dict[int, dict[int, Sale]]:
        """Every sale the cloud stored, by generation, then seq (also above a gap, and refused voids)."""
        stored: dict[int, dict[int, Sale]] = {1: {}}
        for generation in sorted(self.store.get_ledger(self.branch).watermarks):
            stored[generation] = {sale.seq: sale for chunk in self.store.iter_chunks(self.branch, 0, generation)
                                  for sale in chunk.sales}
        return stored

    @property
    def applied(self) -> dict[int, Sale]:
        return self.by_generation[1]

    @property
    def applied_through(self) -> int:
        return self.applied_through_of(1)

    def applied_through_of(self, generation: int) -> int:
        return self.store.get_ledger(self.branch).apply_of(generation).applied_through

    def all_applied(self) -> list[tuple[int, Sale]]:
        return [(g, sale) for g, sales in sorted(self.by_generation.items()) for _, sale in sorted(sales.items())]

    @property
    def copies_ignored(self) -> int:
        """Sales that arrived again and were applied only once."""
        return sum(outcome.duplicates for outcome in self.service.outcomes)

    # --- the network (an httpx.MockTransport handler) -------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        pull = request.method == "GET" and request.url.path == "/api/pull"
        if pull and self.pull_failures_after is not None and len(self.pulls) >= self.pull_failures_after:
            raise httpx.ConnectError("network cut", request=request)
        if request.method == "POST" and request.url.path == "/api/enroll":
            self._issue_code(request)
        if pull and self.held and self.apply_at_pull is not None and len(self.pulls) + 1 >= self.apply_at_pull:
            count = len(self.held) if self.apply_per_pull is None else self.apply_per_pull
            held, self.held = self.held[:count], self.held[count:]
            with self._serving():
                for text in held:
                    self._apply(text)
        gateway, _ = _app()
        with self._serving():
            answer = _run(gateway.handle(_asgi_request(request)))
        if pull and answer.status_code == 200:
            self.pulls.append(dict(request.url.params))
        # The body as it went over the wire (gzipped when the client accepts it).
        return httpx.Response(answer.status_code, headers=answer.raw_headers, stream=httpx.ByteStream(answer.body))

    def _issue_code(self, request: httpx.Request) -> None:
        """Head office hands this branch a fresh code carrying a token from `enroll_tokens`, just as it is used."""
        try:
            token = EnrollRequest.model_validate_json(request.read()).token
        except ValueError:
            return
        if token not in self.enroll_tokens:
            return
        self.enroll_tokens.discard(token)
        # Stored as the cloud stores a code: the token's SHA-256 (branchsync_cloud/branches.py).
        self.store.replace_branch(replace(self._record(), enrolled=False,
                                          token_hash=hashlib.sha256(token.encode()).hexdigest(),
                                          token_expires=datetime.now(timezone.utc) + ENROLLMENT_CODE_LIFETIME))

    @contextmanager
    def _serving(self) -> Iterator[None]:
        """This cloud's Service in the app's service slot while one request or message runs."""
        with _SLOT:
            saved = cloud_http._service
            cloud_http._service = self.service
            try:
                yield
            finally:
                cloud_http._service = saved

    # --- the queue (the branch's queue sender) --------------------------------------------------

    def queue_is_down(self) -> bool:
        return self.down or (self.queue_down_after is not None and len(self.messages) >= self.queue_down_after)

    def send(self, queue_url: str, sas_token: str, text: str) -> None:
        from azure.core.exceptions import ServiceRequestError

        with _SLOT:  # the look at the knobs and the keeping in one step: a push has two puts under way at once
            if self.queue_is_down():
                raise ServiceRequestError("connection refused")
            self._check_access(queue_url, sas_token, text)
            with self._serving():
                self._enqueue(text)

    @staticmethod
    def _check_access(queue_url: str, sas_token: str, text: str) -> None:
        """What Azure Queue Storage refuses before it keeps a message."""
        from azure.core.exceptions import HttpResponseError

        fields = {k: v[0] for k, v in parse_qs(sas_token.lstrip("?")).items()}
        expiry = datetime.fromisoformat(fields["se"]) if "se" in fields else None
        problem = None
        if queue_url != QUEUE_URL or "a" not in fields.get("sp", "") or expiry is None:
            problem = (403, "AuthorizationPermissionMismatch")
        elif expiry <= datetime.now(timezone.utc):
            problem = (403, "AuthenticationFailed")
        elif len(text) > limits.QUEUE_MESSAGE_MAX_CHARS:
            problem = (413, "RequestBodyTooLarge")
        if problem:
            refused = HttpResponseError(message=problem[1])
            refused.status_code, refused.error_code = problem
            raise refused

    def _enqueue(self, text: str) -> None:
        """Keep the message, and run the queue function on it as the Functions host would (unless slow)."""
        self.messages.append(text)
        if self.slow:
            self.held.append(text)
        else:
            self._apply(text)

    def _apply(self, text: str) -> None:
        """The queue function on one message, bound as the Functions host binds it (host.json: base64)."""
        _, sales = _app()
        body = devhost.bind_queue_body(base64.b64decode(text, validate=True), sales.data_type)
        message = devhost.DevQueueMessage(id=secrets.token_hex(16), body=body, pop_receipt=secrets.token_hex(8),
                                          dequeue_count=1, insertion_time=datetime.now(timezone.utc))
        sales.fn(**{sales.param: message})

    # --- the branch's side ------------------------------------------------------------------------

    def client(self, **options) -> CloudClient:
        options.setdefault("backoff", 0)
        return CloudClient(self.url, self.branch, self.secret,
                           transport=httpx.MockTransport(self.handler), queue_sender=self.send, **options)

    def identity(self) -> Identity:
        return Identity(branch=self.branch, cloud_url=self.url, secret=self.secret)


def bulky_products(count: int = limits.SALE_MAX_LINES, seed: int = 7) -> list[Product]:
    """Products with the longest allowed SKUs and names, mixed Bangla and Latin letters that compress poorly.

    A sale of all 200 of them does not fit in a queue message even alone.
    """
    import random

    rnd = random.Random(seed)
    letters = [chr(c) for c in range(0x985, 0x9BA)] + [chr(c) for c in range(0x21, 0x7F)]
    return [Product(sku=f"B{i:03d}-" + "".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(limits.SKU_MAX_CHARS - 5)),
                    name="".join(rnd.choice(letters) for _ in range(limits.NAME_MAX_CHARS)), price=100 + i)
            for i in range(count)]


def bulky_sale(seq: int, recorded_at: datetime | None = None) -> Sale:
    """A valid sale of every bulky product, as an older branchsync recorded it: too large to send."""
    from decimal import Decimal

    from shared.models import Payment, SaleLine

    lines = [SaleLine(sku=p.sku, name=p.name, qty=Decimal(1), unit_price=p.price, list_price=p.price,
                      line_total=p.price) for p in bulky_products()]
    total = sum(line.line_total for line in lines)
    return Sale(seq=seq, sale_id=secrets.token_hex(16), kind="sale", recorded_at=recorded_at or datetime.now(timezone.utc),
                lines=lines, payment=Payment(method="cash", amount=total), total=total)


def insert_as_an_older_version(store, sale: Sale) -> None:
    """Store `sale` the way a branchsync from before the size check did: straight into the sales table."""
    import sqlite3

    from branch_client.store import time_text

    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("INSERT INTO sales (generation, seq, sale_id, kind, voids, recorded_at, total, payment_method, "
                     "body, push_count) "
                     "VALUES (1, ?, ?, ?, NULL, ?, ?, ?, ?, 0)",
                     (sale.seq, sale.sale_id, sale.kind.value, time_text(sale.recorded_at), sale.total,
                      sale.payment.method.value, sale.model_dump_json()))
    conn.close()
