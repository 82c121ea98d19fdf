"""Test helpers for the branch: catalog builders and a fake cloud at the seam.

`FakeCloud` stands in for the cloud only at the branch's one I/O seam
(`branch_client.cloud_client.CloudClient`): its `handler` is given to
`httpx.MockTransport` for the HTTP side, and its `send` is the queue sender. It checks
request signatures with `shared.signing.verify_request` and decodes queue messages
with `shared.encoding.decode_message`, exactly as the real cloud does, and applies
sales exactly once by (generation, seq), so tests can assert what the cloud ended up with. Like the
real cloud it hands a rotated secret out on pulls signed with the current one and makes
it current on the first request or message signed with it, and refuses a revoked branch.
"""

import json
import secrets
from datetime import datetime, timedelta, timezone

import httpx

from branch_client.cloud_client import CloudClient
from branch_client.identity import Identity
from shared import limits
from shared.encoding import decode_message, from_queue_text, parse_frame, signed_by
from shared.errors import ContractError, ErrorCode
from shared.models import (CatalogEntry, CatalogPage, EnrollAnswer, EnrollRequest, GenerationAck, Product, PullAnswer,
                           QueueAccess, Refusal, Sale)
from shared.signing import new_secret, verify_request

BRANCH = "dhaka-1"
QUEUE_URL = "https://fake.queue.core.windows.net/sales"


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


class FakeCloud:
    """The cloud as the branch sees it through its seam; see the module docstring."""

    def __init__(self, branch: str = BRANCH, secret: str | None = None):
        self.branch = branch
        self.secret = secret or new_secret()
        self.version = 0
        self.entries: dict[str, CatalogEntry] = {}   # sku -> latest entry (product or tombstone)
        self.horizon = 0                              # cursors below this must resync in full
        # Applied sales by generation, then seq; `applied` is generation 1 (every till's first).
        self.by_generation: dict[int, dict[int, Sale]] = {1: {}}
        self.copies_ignored = 0
        self.messages: list[str] = []
        self.pulls: list[dict] = []
        self.pull_failures_after: int | None = None  # succeed this many pulls, then fail (connection)
        self.down = False                            # every call fails to connect
        self.queue_down_after: int | None = None     # accept this many messages, then fail
        self.sas_lifetime = timedelta(hours=1)
        self.enroll_tokens: set[str] = set()
        self.next_secret: str | None = None         # set by rotate(); handed out on pulls until used
        self.previous_secret: str | None = None
        self.revoked = False
        self.refusal: Refusal | None = None           # what the pull reports as the branch's latest refusal
        # A cloud slow to apply: messages wait here until the pull numbered `apply_at_pull` (never if None).
        self.slow = False
        self.apply_at_pull: int | None = None
        self.held: list = []

    # --- admin side ---------------------------------------------------------------------------

    def put(self, *products: Product) -> None:
        for p in products:
            self.version += 1
            self.entries[p.sku] = CatalogEntry(version=self.version, sku=p.sku, product=p)

    def delete(self, sku: str) -> None:
        self.version += 1
        self.entries[sku] = CatalogEntry(version=self.version, sku=sku, deleted=True)

    def purge_tombstones(self) -> None:
        """Forget every tombstone; a branch behind them must resync in full."""
        self.entries = {k: e for k, e in self.entries.items() if not e.deleted}
        self.horizon = self.version

    def rotate(self) -> str:
        self.next_secret = new_secret()
        return self.next_secret

    def _promote_if(self, secret: str) -> None:
        if secret == self.next_secret:
            self.previous_secret, self.secret, self.next_secret = self.secret, secret, None

    def products(self) -> dict[str, Product]:
        return {k: e.product for k, e in self.entries.items() if not e.deleted}

    @property
    def applied(self) -> dict[int, Sale]:
        return self.by_generation[1]

    @property
    def applied_through(self) -> int:
        return self.applied_through_of(1)

    def applied_through_of(self, generation: int) -> int:
        n = 0
        while n + 1 in self.by_generation.get(generation, {}):
            n += 1
        return n

    def all_applied(self) -> list[tuple[int, Sale]]:
        return [(g, sale) for g, sales in sorted(self.by_generation.items()) for _, sale in sorted(sales.items())]

    # --- HTTP side (httpx.MockTransport handler) ------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/api/enroll":
            return self._enroll(request)
        if request.url.path != "/api/pull" or request.method != "GET":
            return self._error(ContractError(ErrorCode.NOT_FOUND, "no such endpoint"))
        if self.pull_failures_after is not None and len(self.pulls) >= self.pull_failures_after:
            raise httpx.ConnectError("network cut", request=request)
        query = dict(request.url.params)
        try:
            if request.headers.get("X-Branchsync-Branch") != self.branch:
                raise ContractError(ErrorCode.UNKNOWN_BRANCH, "unknown branch")
            secret = self._verified_with(request, query)
            if self.revoked:
                raise ContractError(ErrorCode.BRANCH_REVOKED, "head office revoked this till (branch dhaka-1)")
        except ContractError as exc:
            return self._error(exc)
        self._promote_if(secret)
        self.pulls.append(query)
        if self.held and self.apply_at_pull is not None and len(self.pulls) >= self.apply_at_pull:
            for batch in self.held:
                self._apply(batch)
            self.held = []
        cursor, limit = int(query["cursor"]), int(query["limit"])
        if 0 < cursor < self.horizon:
            catalog = CatalogPage(entries=[], next_cursor=cursor, more=False, full_resync=True)
        else:
            newer = sorted((e for e in self.entries.values() if e.version > cursor), key=lambda e: e.version)
            chunk = newer[:limit]
            catalog = CatalogPage(entries=chunk, next_cursor=chunk[-1].version if chunk else cursor,
                                  more=len(newer) > limit)
        now = datetime.now(timezone.utc)
        answer = PullAnswer(branch=self.branch, applied_through=self.applied_through, catalog=catalog, server_time=now,
                            push=QueueAccess(queue_url=QUEUE_URL, sas_token="se=x&sp=a&sig=" + secrets.token_hex(4),
                                             expires_at=now + self.sas_lifetime),
                            rotate_secret=self.next_secret, last_refusal=self.refusal,
                            acks=[GenerationAck(generation=g, applied_through=self.applied_through_of(g))
                                  for g in sorted(self.by_generation) if g != 1] or None)
        return httpx.Response(200, content=answer.model_dump_json().encode(),
                              headers={"Content-Type": "application/json"})

    def _verified_with(self, request: httpx.Request, query: dict) -> str:
        now = datetime.now(timezone.utc).timestamp()
        try:
            verify_request(self.secret, request.headers, "GET", request.url.path, query, request.content, now)
            return self.secret
        except ContractError:
            if not self.next_secret:
                raise
        verify_request(self.next_secret, request.headers, "GET", request.url.path, query, request.content, now)
        return self.next_secret

    def _enroll(self, request: httpx.Request) -> httpx.Response:
        token = EnrollRequest.model_validate_json(request.content).token
        if token not in self.enroll_tokens:
            return self._error(ContractError(ErrorCode.ENROLLMENT_INVALID, "enrollment token is unknown, used or expired; "
                                                                           "ask head office for a new code"))
        self.enroll_tokens.discard(token)
        return httpx.Response(200, content=EnrollAnswer(branch=self.branch, secret=self.secret).model_dump_json().encode())

    @staticmethod
    def _error(exc: ContractError) -> httpx.Response:
        return httpx.Response(exc.http_status, content=json.dumps(exc.to_body()).encode(),
                              headers={"Content-Type": "application/json"})

    # --- queue side (the queue sender) -----------------------------------------------------------

    def send(self, queue_url: str, sas_token: str, text: str) -> None:
        from azure.core.exceptions import ServiceRequestError

        if self.down or (self.queue_down_after is not None and len(self.messages) >= self.queue_down_after):
            raise ServiceRequestError("connection refused")
        assert queue_url == QUEUE_URL and "sp=a" in sas_token
        assert len(text) <= limits.QUEUE_MESSAGE_MAX_CHARS
        body = from_queue_text(text)
        frame = parse_frame(body)
        secret = next((s for s in (self.secret, self.next_secret, self.previous_secret) if s and signed_by(frame, s)),
                      self.secret)
        batch = decode_message(body, lambda b: secret if b == self.branch else None)
        self._promote_if(secret)
        self.messages.append(text)
        if self.slow:
            self.held.append(batch)
        else:
            self._apply(batch)

    def _apply(self, batch) -> None:
        applied = self.by_generation.setdefault(batch.generation, {})
        for sale in batch.sales:
            if sale.seq in applied:
                self.copies_ignored += 1
            else:
                applied[sale.seq] = sale

    def client(self, **options) -> CloudClient:
        options.setdefault("backoff", 0)
        return CloudClient("https://cloud.example", self.branch, self.secret,
                           transport=httpx.MockTransport(self.handler), queue_sender=self.send, **options)

    def identity(self) -> Identity:
        return Identity(branch=self.branch, cloud_url="https://cloud.example", secret=self.secret)




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
