"""The Store over Azure Table Storage (azure-data-tables). Layout and costs: docs/storage.md.

Every SDK request goes through `_tick` so that `ops` counts what is billed, and every
SDK error is mapped at this boundary to the small tree in store.py.
"""

import json
import secrets
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import EdmType, EntityProperty, TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.models import Product, Sale

from .apply import ApplyPlan, ApplyState
from .catalog import TXN_MAX_OPS, CatalogWrite, Counter, IndexEntry, VersionRow, digest
from .store import (
    BranchRecord,
    Chunk,
    Conflict,
    CounterRecord,
    DeadLetter,
    NotFound,
    SalesState,
    StoreError,
    StoreUnavailable,
)


SALES, BRANCHES, CATALOG, DEADLETTERS = "sales", "branches", "catalog", "deadletters"
BRANCH_PK = "branch"
CATALOG_PK = "catalog"
STATE_KEY = "state"
COUNTER_KEY = "counter"
# Seqs go up to 2**53 (16 digits); zero-padding keeps key order equal to seq order.
SEQ_DIGITS = 16
VERSION_DIGITS = 12
# A binary property holds at most 64 KiB; keep a margin.
CHUNK_MAX_BYTES = 60 * 1024
# A transaction is at most 4 MiB on the wire and binary travels as base64 (x 4/3).
TXN_MAX_DATA_BYTES = 2 * 1024 * 1024
DEADLETTER_RAW_MAX = 60 * 1024
REASON_MAX_CHARS = 4000
# Ranges of index rows are read in one query when there are more SKUs than this.
INDEX_POINT_READS_MAX = 8


def chunk_key(first_seq: int) -> str:
    return f"c{first_seq:0{SEQ_DIGITS}d}"


def version_key(version: int) -> str:
    return f"v{version:0{VERSION_DIGITS}d}"


def index_key(sku: str) -> str:
    return "s:" + sku


class TableStore:
    def __init__(self, connection_string: str, table_prefix: str = "", *, retry_total: int = 3):
        if not connection_string:
            raise StoreUnavailable("AzureWebJobsStorage is not set: give the storage account's connection string")
        try:
            # Few, quick retries: a message that cannot be stored fails fast and the queue retries it later.
            self._service = TableServiceClient.from_connection_string(
                connection_string, retry_total=retry_total, retry_backoff_factor=0.2, retry_backoff_max=2,
                connection_timeout=5, read_timeout=30,
            )
        except (ValueError, AzureError) as exc:
            raise StoreUnavailable("AzureWebJobsStorage is not a valid storage connection string") from exc
        self._prefix = table_prefix
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.ops = 0

    # --- plumbing ------------------------------------------------------------------------

    def _tick(self) -> None:
        with self._lock:
            self.ops += 1
        self._local.ops = self.thread_ops + 1

    @property
    def thread_ops(self) -> int:
        """Operations issued by the calling thread (the per-apply count under concurrency)."""
        return getattr(self._local, "ops", 0)

    def _table(self, name: str) -> TableClient:
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    client = self._service.get_table_client(self._prefix + name)
                    self.ops += 1
                    with _mapped(f"create table {name}"):
                        try:
                            client.create_table()
                        except ResourceExistsError:
                            pass
                    self._clients[name] = client
        return client

    def _get(self, table: str, pk: str, rk: str) -> dict | None:
        client = self._table(table)
        self._tick()
        with _mapped(f"read {table}/{pk}/{rk}"):
            try:
                return client.get_entity(pk, rk)
            except ResourceNotFoundError:
                return None

    def _pages(self, table: str, query: str, parameters: dict, per_page: int = 1000) -> Iterator[tuple[list[dict], bool]]:
        """(entities, more) page by page; each page is one request and may be empty yet have more."""
        client = self._table(table)
        pages = client.query_entities(query, parameters=parameters, results_per_page=per_page).by_page()
        while True:
            self._tick()
            with _mapped(f"query {table}"):
                try:
                    page = list(next(pages))
                except StopIteration:
                    return
            more = pages.continuation_token is not None
            yield page, more
            if not more:
                return

    def _query(self, table: str, query: str, parameters: dict, per_page: int = 1000) -> Iterator[dict]:
        for page, _ in self._pages(table, query, parameters, per_page):
            yield from page

    def _submit(self, table: str, operations: list, what: str) -> list:
        if len(operations) > TXN_MAX_OPS:
            raise StoreError(f"{what}: {len(operations)} operations exceed a transaction's {TXN_MAX_OPS}")
        client = self._table(table)
        self._tick()
        with _mapped(what):
            return client.submit_transaction(operations)

    # --- branches ------------------------------------------------------------------------

    def create_branch(self, record: BranchRecord) -> None:
        client = self._table(BRANCHES)
        self._tick()
        with _mapped(f"create branch {record.name}"):
            result = client.create_entity(_branch_entity(record))
        record.etag = result.get("etag")

    def get_branch(self, name: str) -> BranchRecord | None:
        entity = self._get(BRANCHES, BRANCH_PK, name)
        return _branch_record(entity) if entity else None

    def find_branch_by_token_hash(self, token_hash: str) -> BranchRecord | None:
        for entity in self._query(BRANCHES, "PartitionKey eq @pk and token_hash eq @h", {"pk": BRANCH_PK, "h": token_hash}):
            return _branch_record(entity)
        return None

    def replace_branch(self, record: BranchRecord) -> None:
        client = self._table(BRANCHES)
        self._tick()
        condition = {"etag": record.etag, "match_condition": MatchConditions.IfNotModified} if record.etag else {}
        with _mapped(f"update branch {record.name}"):
            result = client.update_entity(_branch_entity(record), mode=UpdateMode.REPLACE, **condition)
        record.etag = result.get("etag")

    def merge_branch(self, name: str, **fields) -> None:
        entity = {"PartitionKey": BRANCH_PK, "RowKey": name, **_props(fields)}
        client = self._table(BRANCHES)
        self._tick()
        with _mapped(f"update branch {name}"):
            client.update_entity(entity, mode=UpdateMode.MERGE)

    def list_branches(self) -> list[BranchRecord]:
        return [_branch_record(e) for e in self._query(BRANCHES, "PartitionKey eq @pk", {"pk": BRANCH_PK})]

    # --- sales ---------------------------------------------------------------------------

    def get_sales_state(self, branch: str) -> SalesState:
        entity = self._get(SALES, branch, STATE_KEY)
        if entity is None:
            return SalesState(branch)
        ranges = tuple((int(lo), int(hi)) for lo, hi in json.loads(entity.get("ranges") or "[]"))
        return SalesState(
            branch=branch,
            apply=ApplyState(_int(entity.get("applied_through")), ranges),
            sales_applied=_int(entity.get("sales_applied")),
            total_paisa=_int(entity.get("total_paisa")),
            last_push=_dt(entity.get("last_push")),
            etag=entity.metadata["etag"],
        )

    def init_sales_state(self, branch: str) -> None:
        client = self._table(SALES)
        self._tick()
        with _mapped(f"create sales state of {branch}"):
            try:
                client.create_entity(_state_entity(SalesState(branch)))
            except ResourceExistsError:
                pass

    def commit_apply(self, before: SalesState, plan: ApplyPlan, last_push: datetime, applied_at: datetime) -> SalesState:
        """Chunk rows and the new state in one transaction (several only if they cannot fit one).

        Each transaction's state row describes exactly the chunks written so far, so data
        and watermark agree after every commit, and the state ETag makes a concurrent
        apply of the same branch fail with Conflict instead of double counting.
        """
        pieces = [piece for run in plan.runs for piece in _encode_run(run)]
        state = before
        for group in _group_pieces(pieces):
            after = SalesState(
                branch=before.branch,
                apply=state.apply.with_stored((p.sales[0].seq, p.sales[-1].seq) for p in group),
                sales_applied=state.sales_applied + sum(len(p.sales) for p in group),
                total_paisa=state.total_paisa + sum(s.total for p in group for s in p.sales),
                last_push=max(filter(None, [state.last_push, last_push])),
            )
            ops: list = [("create", _chunk_entity(before.branch, p, applied_at)) for p in group]
            ops.append(_write_op(_state_entity(after), state.etag))
            seqs = f"{group[0].sales[0].seq}-{group[-1].sales[-1].seq}"
            result = self._submit(SALES, ops, f"apply sales {seqs} of {before.branch}")
            after.etag = result[-1]["etag"]
            state = after
        return state

    def iter_chunks(self, branch: str, from_first_seq: int = 0) -> Iterator[Chunk]:
        # Chunks are large: read a few per request and stop as soon as the caller has enough.
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        for entity in self._query(SALES, query, {"pk": branch, "lo": chunk_key(from_first_seq), "hi": "d"}, per_page=16):
            raw = json.loads(zlib.decompress(entity["data"]))
            yield Chunk(
                branch=branch,
                first_seq=_int(entity["first_seq"]),
                last_seq=_int(entity["last_seq"]),
                applied_at=_dt(entity["applied_at"]),
                sales=[Sale.model_validate(s) for s in raw],
            )

    # --- catalog -------------------------------------------------------------------------

    def get_catalog_counter(self) -> CounterRecord:
        entity = self._get(CATALOG, CATALOG_PK, COUNTER_KEY)
        if entity is None:
            return CounterRecord(Counter(), None)
        counter = Counter(_int(entity.get("last_version")), _int(entity.get("tombstone_horizon")))
        return CounterRecord(counter, entity.metadata["etag"])

    def get_catalog_index(self, skus: Sequence[str]) -> dict[str, IndexEntry]:
        wanted = set(skus)
        found: dict[str, IndexEntry] = {}
        # Key order on the server is only certain to match Python's for ASCII, so range-read those.
        ranged = sorted(s for s in wanted if s.isascii())
        single = [s for s in wanted if not s.isascii()]
        if len(ranged) > INDEX_POINT_READS_MAX:
            query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
            params = {"pk": CATALOG_PK, "lo": index_key(ranged[0]), "hi": index_key(ranged[-1])}
            for entity in self._query(CATALOG, query, params):
                if entity["sku"] in wanted:
                    found[entity["sku"]] = _index_entry(entity)
        else:
            single += ranged
        for sku in single:
            entity = self._get(CATALOG, CATALOG_PK, index_key(sku))
            if entity is not None:
                found[sku] = _index_entry(entity)
        return found

    def commit_catalog(self, base: CounterRecord, counter: Counter, writes: Sequence[CatalogWrite] = (),
                       purge: Sequence[VersionRow] = ()) -> CounterRecord:
        counter_entity = {
            "PartitionKey": CATALOG_PK, "RowKey": COUNTER_KEY,
            "last_version": _i64(counter.last_version), "tombstone_horizon": _i64(counter.tombstone_horizon),
        }
        ops: list = [_write_op(counter_entity, base.etag)]
        for w in writes:
            ops.append(("create", _version_entity(w.row)))
            if w.previous_version is not None:
                ops.append(("delete", {"PartitionKey": CATALOG_PK, "RowKey": version_key(w.previous_version)}))
            ops.append(("upsert", _index_entity(w.row), {"mode": UpdateMode.REPLACE}))
        for row in purge:
            ops.append(("delete", {"PartitionKey": CATALOG_PK, "RowKey": version_key(row.version)}))
            ops.append(("delete", {"PartitionKey": CATALOG_PK, "RowKey": index_key(row.sku)}))
        result = self._submit(CATALOG, ops, f"catalog write up to version {counter.last_version}")
        return CounterRecord(counter, result[0]["etag"])

    def read_catalog(self, after_version: int, limit: int) -> tuple[list[VersionRow], bool]:
        """Up to `limit` version rows above `after_version`, and whether that was all of them."""
        rows: list[VersionRow] = []
        for page, more in self._pages(CATALOG, *_versions_after(after_version), per_page=limit):
            rows.extend(_version_row(e) for e in page)
            if len(rows) >= limit:
                return rows[:limit], len(rows) == limit and not more
        return rows, True

    def scan_catalog(self, after_version: int = 0, per_page: int = 1000) -> Iterator[VersionRow]:
        for entity in self._query(CATALOG, *_versions_after(after_version), per_page=per_page):
            yield _version_row(entity)

    # --- dead letters --------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        at = letter.received_at.astimezone(timezone.utc)
        raw = letter.raw[:DEADLETTER_RAW_MAX]
        entity = _props({
            "PartitionKey": at.strftime("%Y%m%d"),
            "RowKey": at.strftime("%H%M%S%f") + "-" + secrets.token_hex(4),
            "code": letter.code,
            "reason": letter.reason[:REASON_MAX_CHARS],
            "branch": letter.branch,
            "raw": raw,
            "truncated": letter.truncated or len(raw) < len(letter.raw),
            "size": len(letter.raw),
            "received_at": at,
        })
        client = self._table(DEADLETTERS)
        self._tick()
        with _mapped("write dead letter"):
            client.create_entity(entity)

    def list_dead_letters(self, day: date) -> list[DeadLetter]:
        return [
            DeadLetter(
                received_at=_dt(e["received_at"]), code=e["code"], reason=e["reason"], raw=e.get("raw") or b"",
                branch=e.get("branch"), truncated=bool(e.get("truncated")),
            )
            for e in self._query(DEADLETTERS, "PartitionKey eq @pk", {"pk": day.strftime("%Y%m%d")})
        ]


# --- error mapping -------------------------------------------------------------------------


@contextmanager
def _mapped(what: str):
    try:
        yield
    except TableTransactionError as exc:
        # 409 row exists, 412 ETag changed, 404 a row to delete is gone: all mean someone wrote first.
        if exc.status_code in (404, 409, 412):
            raise Conflict(f"{what}: changed concurrently ({_code(exc)})") from exc
        raise _http_error(what, exc) from exc
    except (ResourceModifiedError, ResourceExistsError) as exc:
        raise Conflict(f"{what}: changed concurrently ({_code(exc)})") from exc
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except ClientAuthenticationError as exc:
        raise StoreUnavailable(f"{what}: storage refused the credentials in AzureWebJobsStorage") from exc
    except HttpResponseError as exc:
        raise _http_error(what, exc) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StoreUnavailable(f"{what}: storage cannot be reached") from exc
    except AzureError as exc:
        raise StoreUnavailable(f"{what}: storage failed ({type(exc).__name__})") from exc


def _code(exc: HttpResponseError) -> str:
    # Only some SDK errors carry error_code; the status is always there.
    return f"{exc.status_code} {getattr(exc, 'error_code', None) or ''}".strip()


def _http_error(what: str, exc: HttpResponseError) -> StoreError:
    status = exc.status_code or 0
    if status >= 500 or status in (408, 429):
        return StoreUnavailable(f"{what}: storage is busy or failing ({_code(exc)})")
    return StoreError(f"{what}: storage refused the request ({_code(exc)})")


# --- entity conversion ---------------------------------------------------------------------


def _i64(value: int) -> EntityProperty:
    # Plain ints are sent as Int32 and refused above 2**31; totals and seqs need 64 bits.
    return EntityProperty(int(value), EdmType.INT64)


def _int(value) -> int:
    if value is None:
        return 0
    return int(value.value if isinstance(value, EntityProperty) else value)


def _dt(value) -> datetime | None:
    if value is None:
        return None
    # TablesEntityDatetime -> plain UTC datetime, so models and comparisons behave.
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=timezone.utc)


def _props(fields: dict) -> dict:
    """Drop None (a property is absent rather than null) and widen ints to Int64."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and key not in ("PartitionKey", "RowKey"):
            value = _i64(value)
        out[key] = value
    return out


def _versions_after(version: int) -> tuple[str, dict]:
    # Version rows sort between "v" and "w"; counter ("counter") and index ("s:...") rows stay outside.
    return "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi", {"pk": CATALOG_PK, "lo": version_key(version), "hi": "w"}


def _write_op(entity: dict, etag: str | None) -> tuple:
    if etag is None:
        return ("create", entity)
    return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified})


def _branch_entity(r: BranchRecord) -> dict:
    return _props({
        "PartitionKey": BRANCH_PK, "RowKey": r.name, "created_at": r.created_at, "enrolled": r.enrolled,
        "secret": r.secret, "token_hash": r.token_hash, "token_expires": r.token_expires, "last_pull": r.last_pull,
        "pending": r.pending, "last_error": r.last_error, "last_error_at": r.last_error_at,
    })


def _branch_record(e: dict) -> BranchRecord:
    return BranchRecord(
        name=e["RowKey"], created_at=_dt(e["created_at"]), enrolled=bool(e.get("enrolled")), secret=e.get("secret"),
        token_hash=e.get("token_hash"), token_expires=_dt(e.get("token_expires")), last_pull=_dt(e.get("last_pull")),
        pending=_int(e["pending"]) if e.get("pending") is not None else None, last_error=e.get("last_error"),
        last_error_at=_dt(e.get("last_error_at")), etag=e.metadata["etag"],
    )


def _state_entity(s: SalesState) -> dict:
    return _props({
        "PartitionKey": s.branch, "RowKey": STATE_KEY, "applied_through": s.apply.applied_through,
        "ranges": json.dumps([list(r) for r in s.apply.ranges]), "sales_applied": s.sales_applied,
        "total_paisa": s.total_paisa, "last_push": s.last_push,
    })


@dataclass(frozen=True)
class _Piece:
    sales: list[Sale]
    data: bytes


def _encode_run(run: list[Sale]) -> list[_Piece]:
    """A run of consecutive sales as compressed pieces of at most CHUNK_MAX_BYTES each."""
    body = json.dumps([s.model_dump(mode="json") for s in run], separators=(",", ":"), ensure_ascii=False)
    data = zlib.compress(body.encode(), 6)
    if len(data) <= CHUNK_MAX_BYTES:
        return [_Piece(run, data)]
    if len(run) == 1:
        raise StoreError(f"sale {run[0].seq} compresses to {len(data)} bytes, more than a chunk row holds")
    mid = len(run) // 2
    return _encode_run(run[:mid]) + _encode_run(run[mid:])


def _group_pieces(pieces: list[_Piece]) -> list[list[_Piece]]:
    groups: list[list[_Piece]] = []
    size = 0
    for piece in pieces:
        if not groups or len(groups[-1]) == TXN_MAX_OPS - 1 or size + len(piece.data) > TXN_MAX_DATA_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(piece)
        size += len(piece.data)
    return groups


def _chunk_entity(branch: str, piece: _Piece, applied_at: datetime) -> dict:
    return _props({
        "PartitionKey": branch, "RowKey": chunk_key(piece.sales[0].seq),
        "first_seq": piece.sales[0].seq, "last_seq": piece.sales[-1].seq, "count": len(piece.sales),
        "total_paisa": sum(s.total for s in piece.sales), "applied_at": applied_at,
        "encoding": "zlib+json", "data": piece.data,
    })


def _version_entity(row: VersionRow) -> dict:
    fields = {"PartitionKey": CATALOG_PK, "RowKey": version_key(row.version), "version": row.version,
              "sku": row.sku, "deleted": row.deleted}
    if row.product is not None:
        p = row.product
        fields.update(name=p.name, price=p.price, barcode=p.barcode, unit=p.unit, vat_rate=str(p.vat_rate), active=p.active)
    return _props(fields)


def _version_row(e: dict) -> VersionRow:
    product = None
    if not e.get("deleted"):
        product = Product(
            sku=e["sku"], name=e["name"], price=_int(e["price"]), barcode=e.get("barcode"), unit=e["unit"],
            vat_rate=Decimal(e["vat_rate"]), active=bool(e["active"]),
        )
    return VersionRow(_int(e["version"]), e["sku"], product)


def _index_entity(row: VersionRow) -> dict:
    return _props({
        "PartitionKey": CATALOG_PK, "RowKey": index_key(row.sku), "sku": row.sku, "version": row.version,
        "deleted": row.deleted, "digest": digest(row.product) if row.product else "",
    })


def _index_entry(e: dict) -> IndexEntry:
    return IndexEntry(e["sku"], _int(e["version"]), bool(e.get("deleted")), e.get("digest") or "")
