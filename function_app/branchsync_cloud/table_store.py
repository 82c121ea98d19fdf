"""The Store over Azure Table Storage (azure-data-tables). Layout and costs: docs/storage.md.

Every SDK request goes through `_tick` so that `ops` counts what is billed, and every
SDK error is mapped at this boundary to the small tree in store.py.
"""

import json
import secrets
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
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

from shared import limits
from shared.access import AuditEntry
from shared.models import Sale

from . import faults, nonces
from .apply import AS_SENT_ENCODING, ApplyState, ApplyWrite, ChunkWrite
from .summaries import PARTS_MAX, DaySummary, pack, unpack
from .credentials import credential_for
from .settings import IdentityStorage
from .catalog import (
    BUCKETS,
    ENCODING,
    PROPERTY_MAX_BYTES,
    TXN_MAX_OPS,
    CatalogTxn,
    Counter,
    Segment,
    SegmentWrite,
    decode_bucket,
    decode_rows,
)
from .store import (
    BranchRecord,
    BucketRecord,
    Chunk,
    Conflict,
    CounterRecord,
    DeadLetter,
    NotFound,
    BranchLedger,
    PersonRecord,
    StorageError,
    StoreUnavailable,
    DEADLETTER_RAW_MAX,
    INDEX_POINT_READS_MAX,
    REASON_MAX_CHARS,
    audit_id,
    audit_page,
    audit_since_key,
    check_transaction,
    read_segments,
)


SALES, BRANCHES, CATALOG, DEADLETTERS = "sales", "branches", "catalog", "deadletters"
PEOPLE, AUDIT = "people", "audit"
PERSON_PK = "person"
BRANCH_PK = "branch"
CATALOG_PK = "catalog"
STATE_KEY = "state"
COUNTER_KEY = "counter"
# Seqs go up to 2**53 (16 digits); zero-padding keeps key order equal to seq order.
SEQ_DIGITS = 16
VERSION_DIGITS = 12


def chunk_prefix(generation: int = 1) -> str:
    """Chunk rows of generation 1 keep their original keys `c<seq>`; later ones are `g<gen>c<seq>`.

    Every chunk key sorts below "s" (the state row) and a generation's keys are contiguous.
    """
    return "c" if generation == 1 else f"g{generation:03d}c"


def chunk_key(first_seq: int, generation: int = 1) -> str:
    return f"{chunk_prefix(generation)}{first_seq:0{SEQ_DIGITS}d}"


def chunks_end(generation: int = 1) -> str:
    """The key just above every chunk key of `generation` ("c..." < "d", "g002c..." < "g002d")."""
    return chunk_prefix(generation)[:-1] + "d"


def summary_key(day: date) -> str:
    """A day summary's row: `sday-YYYYMMDD`, in day order just below the state row (nothing else sorts between)."""
    return f"sday-{day:%Y%m%d}"


def version_key(version: int) -> str:
    return f"v{version:0{VERSION_DIGITS}d}"


def bucket_key(number: int) -> str:
    return f"i{number:02x}"


class TableStore:
    def __init__(self, storage: "str | IdentityStorage", table_prefix: str = "", *, retry_total: int = 3,
                 credential=None):
        """`storage`: a connection string (Azurite, tests) or the identity-based settings (production)."""
        # Few, quick retries: a message that cannot be stored fails fast and the queue retries it later.
        options = dict(retry_total=retry_total, retry_backoff_factor=0.2, retry_backoff_max=2,
                       connection_timeout=5, read_timeout=30)
        if isinstance(storage, IdentityStorage):
            if not storage.table_uri:
                raise StoreUnavailable("identity-based storage names no table endpoint: set "
                                       "AzureWebJobsStorage__tableServiceUri or AzureWebJobsStorage__accountName")
            try:
                self._service = TableServiceClient(
                    endpoint=storage.table_uri, credential=credential or credential_for(storage.client_id), **options)
            except (ValueError, AzureError) as exc:
                raise StoreUnavailable(f"AzureWebJobsStorage__tableServiceUri {storage.table_uri!r} is not a usable endpoint") from exc
        else:
            if not storage:
                raise StoreUnavailable("AzureWebJobsStorage is not set: give the storage account's connection string, "
                                       "or the identity-based AzureWebJobsStorage__accountName / __tableServiceUri settings")
            try:
                self._service = TableServiceClient.from_connection_string(storage, **options)
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

    def _query_page(self, table: str, query: str, parameters: dict, per_page: int, token,
                    select: list[str] | None = None) -> tuple[list[dict], object]:
        """One query page (one request): its entities and the token for the next, None at the end."""
        client = self._table(table)
        pages = client.query_entities(query, parameters=parameters, results_per_page=per_page,
                                      select=select).by_page(continuation_token=token)
        self._tick()
        with _mapped(f"query {table}"):
            try:
                page = list(next(pages))
            except StopIteration:
                return [], None
        return page, pages.continuation_token

    def _query(self, table: str, query: str, parameters: dict, per_page: int = 1000,
               select: list[str] | None = None) -> Iterator[dict]:
        """Every entity the query matches, page by page; a page may be empty yet have more."""
        token = None
        while True:
            page, token = self._query_page(table, query, parameters, per_page, token, select)
            yield from page
            if token is None:
                return

    def _submit(self, table: str, operations: list, what: str) -> list:
        binary = sum(len(v) for op in operations for v in op[1].values() if isinstance(v, bytes))
        check_transaction(len(operations), binary, what)
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

    def get_ledger(self, branch: str) -> BranchLedger:
        entity = self._get(SALES, branch, STATE_KEY)
        if entity is None:
            return BranchLedger(branch)
        return _ledger(branch, entity)

    def init_ledger(self, branch: str) -> None:
        client = self._table(SALES)
        self._tick()
        with _mapped(f"create sales state of {branch}"):
            try:
                client.create_entity(_state_entity(BranchLedger(branch)))
            except ResourceExistsError:
                pass

    def commit_apply(self, before: BranchLedger, write: ApplyWrite) -> BranchLedger:
        """Each planned transaction as one request, in order; the ledger row If-Match the previous one's."""
        branch, ledger = before.branch, before
        etags: dict[tuple[int, int], str] = {}  # of the chunk rows this apply wrote
        day_etags: dict = {}  # and of the day summaries
        for txn in write.txns:
            ops: list = [("create", _chunk_entity(branch, write.generation, c, write.applied_at)) for c in txn.chunks]
            ops += [("update", {"PartitionKey": branch, "RowKey": chunk_key(m.first_seq, m.generation),
                                "voided": _seq_list(m.voided),
                                **({"refunded": _refunded_text(m.refunded)} if m.refunded else {})},
                     {"mode": UpdateMode.MERGE, "etag": etags.get((m.generation, m.first_seq), m.etag),
                      "match_condition": MatchConditions.IfNotModified})
                    for m in txn.marks]
            ops += [_write_op(_summary_entity(branch, s.summary.day, s.parts), day_etags.get(s.summary.day, s.summary.etag))
                    for s in txn.summaries]
            ops.append(_write_op(_state_entity(txn.ledger), ledger.etag))
            seqs = f"{txn.chunks[0].first_seq}-{txn.chunks[-1].last_seq}"
            result = self._submit(SALES, ops, f"apply sales {seqs} of {branch}")
            rows = [(write.generation, c.first_seq) for c in txn.chunks] + [(m.generation, m.first_seq) for m in txn.marks]
            etags |= {row: r.get("etag") for row, r in zip(rows, result)}
            day_etags |= {s.summary.day: r.get("etag") for s, r in zip(txn.summaries, result[len(rows):])}
            ledger = replace(txn.ledger, etag=result[-1]["etag"])
            faults.hit("apply.between_transactions", f"{branch}:{seqs}")
        return ledger

    def iter_chunks(self, branch: str, from_first_seq: int = 0, generation: int = 1) -> Iterator[Chunk]:
        # Chunks are large: read a few per request and stop as soon as the caller has enough.
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": branch, "lo": chunk_key(from_first_seq, generation), "hi": chunks_end(generation)}
        for entity in self._query(SALES, query, params, per_page=16):
            yield _chunk(branch, generation, entity)

    def find_chunk(self, branch: str, generation: int, seq: int) -> Chunk | None:
        """The chunk holding `seq`: one query, filtered by the store on the chunk's last seq.

        A chunk holds at most one batch's run, so it starts at most BATCH_MAX_SALES - 1 below `seq`.
        """
        lo = chunk_key(max(1, seq - limits.BATCH_MAX_SALES + 1), generation)
        # An Int64 literal (suffix L): last_seq is stored as Int64 and the store compares types strictly.
        query = f"PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi and last_seq ge {int(seq)}L"
        for entity in self._query(SALES, query, {"pk": branch, "lo": lo, "hi": chunk_key(seq, generation)}, per_page=4):
            chunk = _chunk(branch, generation, entity)
            if chunk.first_seq <= seq <= chunk.last_seq:
                return chunk
        return None

    def get_ledger_and_days(self, branch: str, first: date) -> tuple[BranchLedger, dict[date, DaySummary]]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
        days, ledger = {}, BranchLedger(branch)
        for entity in self._query(SALES, query, {"pk": branch, "lo": summary_key(first), "hi": STATE_KEY}, per_page=100):
            if entity["RowKey"] == STATE_KEY:
                ledger = _ledger(branch, entity)
            else:
                summary = _summary(branch, entity)
                days[summary.day] = summary
        return ledger, days

    def read_summaries(self, branch: str, first: date, last: date, products: bool = True) -> list[DaySummary]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
        params = {"pk": branch, "lo": summary_key(first), "hi": summary_key(last)}
        select = None if products else ["RowKey", "day", "parts", "data0"]  # the figures alone: part 0
        return [_summary(branch, e, products) for e in self._query(SALES, query, params, per_page=100, select=select)]

    def replace_summaries(self, ledger: BranchLedger, summaries) -> BranchLedger:
        branch = ledger.branch
        for at in range(0, len(summaries), TXN_MAX_OPS - 1):
            ops: list = [("upsert", _summary_entity(branch, s.day, pack(s)), {"mode": UpdateMode.REPLACE})
                         for s in summaries[at:at + TXN_MAX_OPS - 1]]
            ops.append(_write_op(_state_entity(ledger), ledger.etag))
            result = self._submit(SALES, ops, f"rebuild the summaries of {branch}")
            ledger = replace(ledger, etag=result[-1]["etag"])
        return ledger

    # --- catalog -------------------------------------------------------------------------

    def get_catalog_counter(self) -> CounterRecord:
        entity = self._get(CATALOG, CATALOG_PK, COUNTER_KEY)
        if entity is None:
            return CounterRecord(Counter(), None)
        counter = Counter(_int(entity.get("last_version")), _int(entity.get("tombstone_horizon")))
        return CounterRecord(counter, entity.metadata["etag"])

    def get_catalog_index(self, buckets: Iterable[int] | None = None) -> dict[int, BucketRecord]:
        wanted = set(range(BUCKETS) if buckets is None else buckets)
        found: dict[int, BucketRecord] = {}
        if len(wanted) > INDEX_POINT_READS_MAX:
            query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
            for entity in self._query(CATALOG, query, {"pk": CATALOG_PK, "lo": "i", "hi": "j"}, per_page=BUCKETS):
                record = _bucket_record(entity)
                if record.number in wanted:
                    found[record.number] = record
        else:
            for number in sorted(wanted):
                entity = self._get(CATALOG, CATALOG_PK, bucket_key(number))
                if entity is not None:
                    found[number] = _bucket_record(entity)
        return {n: found.get(n) or BucketRecord(n, {}, None) for n in sorted(wanted)}

    def commit_catalog(self, base: CounterRecord, txn: CatalogTxn,
                       buckets: Mapping[int, BucketRecord]) -> tuple[CounterRecord, dict[int, BucketRecord]]:
        """The counter (If-Match), segments and buckets of `txn` in one transaction."""
        counter_entity = {
            "PartitionKey": CATALOG_PK, "RowKey": COUNTER_KEY,
            "last_version": _i64(txn.counter.last_version), "tombstone_horizon": _i64(txn.counter.tombstone_horizon),
        }
        ops: list = [_write_op(counter_entity, base.etag)]
        ops += [("create", _segment_entity(w)) for w in txn.created]
        ops += [("upsert", _segment_entity(w), {"mode": UpdateMode.REPLACE}) for w in txn.rewritten]
        ops += [("delete", {"PartitionKey": CATALOG_PK, "RowKey": version_key(k)}) for k in txn.deleted]
        first_bucket = len(ops)
        for w in txn.buckets:
            before = buckets.get(w.number)
            ops.append(_write_op(_bucket_entity(w.number, w.data, len(w.entries)), before.etag if before else None))
        result = self._submit(CATALOG, ops, f"catalog write at version {txn.counter.last_version}")
        written = {w.number: BucketRecord(w.number, w.entries, result[first_bucket + i]["etag"])
                   for i, w in enumerate(txn.buckets)}
        return CounterRecord(txn.counter, result[0]["etag"]), written

    def read_catalog(self, after_version: int, min_entries: int) -> tuple[list[Segment], bool]:
        def page(per_page: int, token) -> tuple[Iterator[tuple[Segment, int]], object]:
            entities, token = self._query_page(CATALOG, *_segments_after(after_version), per_page, token)
            return ((_segment(e, after_version), _int(e.get("count"))) for e in entities), token

        return read_segments(page, min_entries)

    def scan_catalog(self) -> Iterator[Segment]:
        for entity in self._query(CATALOG, *_segments_after(0), per_page=32):
            yield _segment(entity, 0)

    # --- dead letters --------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> str:
        at = letter.received_at.astimezone(timezone.utc)
        raw = letter.raw[:DEADLETTER_RAW_MAX]
        pk, rk = at.strftime("%Y%m%d"), at.strftime("%H%M%S%f") + "-" + secrets.token_hex(4)
        entity = _props({
            "PartitionKey": pk,
            "RowKey": rk,
            "code": letter.code,
            "reason": letter.reason[:REASON_MAX_CHARS],
            "branch": letter.branch,
            "raw": raw,
            "truncated": letter.truncated or len(raw) < len(letter.raw),
            "size": len(letter.raw),
            "received_at": at,
            "replays": letter.replays,
        })
        client = self._table(DEADLETTERS)
        self._tick()
        with _mapped("write dead letter"):
            client.create_entity(entity)
        return f"{pk}-{rk}"

    def list_dead_letters(self, day: date | None = None) -> list[DeadLetter]:
        if day is None:
            entities = self._query(DEADLETTERS, "PartitionKey ne @none", {"none": ""})
        else:
            entities = self._query(DEADLETTERS, "PartitionKey eq @pk", {"pk": day.strftime("%Y%m%d")})
        return sorted((_dead_letter(e) for e in entities), key=lambda d: d.id)

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        pk, rk = _dead_letter_key(letter_id)
        entity = self._get(DEADLETTERS, pk, rk)
        return None if entity is None else _dead_letter(entity)

    def update_dead_letter(self, letter_id: str, code: str, reason: str, replays: int) -> None:
        pk, rk = _dead_letter_key(letter_id)
        client = self._table(DEADLETTERS)
        self._tick()
        with _mapped("update dead letter"):
            try:
                client.update_entity({"PartitionKey": pk, "RowKey": rk, "code": code,
                                      "reason": reason[:REASON_MAX_CHARS], "replays": replays}, mode=UpdateMode.MERGE)
            except ResourceNotFoundError as exc:
                raise NotFound(f"dead letter {letter_id} is gone") from exc

    def delete_dead_letter(self, letter_id: str) -> None:
        pk, rk = _dead_letter_key(letter_id)
        if self.get_dead_letter(letter_id) is None:
            raise NotFound(f"dead letter {letter_id} is gone")
        client = self._table(DEADLETTERS)
        self._tick()
        with _mapped("delete dead letter"):
            client.delete_entity(pk, rk)


    # --- request nonces --------------------------------------------------------------------

    def claim_nonce(self, branch: str, nonce: str, bucket: int) -> bool:
        """Insert-if-absent: True for a nonce never seen in this bucket, False for a replay."""
        client = self._table(nonces.table_name(bucket))
        self._tick()
        try:
            with _mapped("remember request nonce"):
                client.create_entity({"PartitionKey": branch, "RowKey": nonce})
        except Conflict:
            return False
        return True

    def nonce_buckets(self) -> list[int]:
        base = self._prefix + nonces.TABLE_BASE
        self._tick()
        with _mapped("list nonce tables"):
            names = [t.name for t in self._service.query_tables(
                "TableName ge @lo and TableName lt @hi", parameters={"lo": base, "hi": base + "~"})]
        found = (nonces.bucket_of_table(n[len(self._prefix):]) for n in names if n.startswith(self._prefix))
        return sorted(b for b in found if b is not None)

    def drop_nonce_bucket(self, bucket: int) -> None:
        name = nonces.table_name(bucket)
        with self._lock:
            self._clients.pop(name, None)
        self._tick()
        with _mapped(f"drop table {name}"):
            self._service.delete_table(self._prefix + name)  # absent: the SDK returns quietly

    # --- head-office people and the audit trail ----------------------------------------------

    def create_person(self, record: PersonRecord) -> None:
        client = self._table(PEOPLE)
        self._tick()
        with _mapped(f"create person {record.name}"):
            result = client.create_entity(_person_entity(record))
        record.etag = result.get("etag")

    def get_person(self, name: str) -> PersonRecord | None:
        entity = self._get(PEOPLE, PERSON_PK, name)
        return _person_record(entity) if entity else None

    def list_people(self) -> list[PersonRecord]:
        return [_person_record(e) for e in self._query(PEOPLE, "PartitionKey eq @pk", {"pk": PERSON_PK})]

    def replace_person(self, record: PersonRecord) -> None:
        client = self._table(PEOPLE)
        self._tick()
        condition = {"etag": record.etag, "match_condition": MatchConditions.IfNotModified} if record.etag else {}
        with _mapped(f"update person {record.name}"):
            result = client.update_entity(_person_entity(record), mode=UpdateMode.REPLACE, **condition)
        record.etag = result.get("etag")

    def add_audit(self, entry: AuditEntry) -> str:
        entry_id = audit_id(entry)
        client = self._table(AUDIT)
        self._tick()
        with _mapped("write audit entry"):  # an insert: an entry is never replaced
            client.create_entity(_props({"PartitionKey": entry_id[:6], "RowKey": entry_id, **entry.model_dump()}))
        return entry_id

    def list_audit(self, since: datetime, after: str | None, who: str | None,
                   limit: int) -> tuple[list[AuditEntry], str | None]:
        # One partition per month, RowKeys begin with the time: a range from the month of `since` on.
        lo = after or audit_since_key(since)
        query = "PartitionKey ge @pk and RowKey " + ("gt" if after else "ge") + " @lo"
        params = {"pk": lo[:6], "lo": lo}
        if who is not None:
            query += " and who eq @who"
            params["who"] = who
        rows = ((e["RowKey"], _audit_entry(e)) for e in self._query(AUDIT, query, params, per_page=min(1000, limit + 1)))
        return audit_page(rows, limit)


def _dead_letter_key(letter_id: str) -> tuple[str, str]:
    pk, _, rk = letter_id.partition("-")
    return pk, rk


def _dead_letter(e: dict) -> DeadLetter:
    raw = e.get("raw") or b""
    return DeadLetter(
        received_at=_dt(e["received_at"]), code=e["code"], reason=e["reason"], raw=raw,
        branch=e.get("branch"), truncated=bool(e.get("truncated")), id=f"{e['PartitionKey']}-{e['RowKey']}",
        size=_int(e.get("size")) if e.get("size") is not None else len(raw), replays=_int(e.get("replays") or 0),
    )


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
        raise StoreUnavailable(f"{what}: storage refused the app's credentials (AzureWebJobsStorage)") from exc
    except HttpResponseError as exc:
        raise _http_error(what, exc) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StoreUnavailable(f"{what}: storage cannot be reached") from exc
    except AzureError as exc:
        raise StoreUnavailable(f"{what}: storage failed ({type(exc).__name__})") from exc


def _code(exc: HttpResponseError) -> str:
    # Only some SDK errors carry error_code; the status is always there.
    return f"{exc.status_code} {getattr(exc, 'error_code', None) or ''}".strip()


def _http_error(what: str, exc: HttpResponseError) -> StorageError:
    status = exc.status_code or 0
    if status >= 500 or status in (408, 429):
        return StoreUnavailable(f"{what}: storage is busy or failing ({_code(exc)})")
    return StorageError(f"{what}: storage refused the request ({_code(exc)})")


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


def _segments_after(version: int) -> tuple[str, dict]:
    # Segment rows sort between "v" and "w"; counter ("counter") and bucket ("i..") rows stay outside.
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
        "next_secret": r.next_secret, "rotation_requested_at": r.rotation_requested_at,
        "previous_secret": r.previous_secret, "rotated_at": r.rotated_at, "revoked_at": r.revoked_at,
        "last_refusal": r.last_refusal, "last_refusal_letter": r.last_refusal_letter,
    })


def _branch_record(e: dict) -> BranchRecord:
    return BranchRecord(
        name=e["RowKey"], created_at=_dt(e["created_at"]), enrolled=bool(e.get("enrolled")), secret=e.get("secret"),
        token_hash=e.get("token_hash"), token_expires=_dt(e.get("token_expires")), last_pull=_dt(e.get("last_pull")),
        pending=_int(e["pending"]) if e.get("pending") is not None else None, last_error=e.get("last_error"),
        last_error_at=_dt(e.get("last_error_at")), next_secret=e.get("next_secret"),
        rotation_requested_at=_dt(e.get("rotation_requested_at")), previous_secret=e.get("previous_secret"),
        rotated_at=_dt(e.get("rotated_at")), revoked_at=_dt(e.get("revoked_at")),
        last_refusal=e.get("last_refusal") or None, last_refusal_letter=e.get("last_refusal_letter") or None,
        etag=e.metadata["etag"],
    )


def _ledger(branch: str, entity: dict) -> BranchLedger:
    ranges = tuple((int(lo), int(hi)) for lo, hi in json.loads(entity.get("ranges") or "[]"))
    watermarks = {1: ApplyState(_int(entity.get("applied_through")), ranges)}
    for gen, (through, more) in json.loads(entity.get("generations") or "{}").items():
        watermarks[int(gen)] = ApplyState(int(through), tuple((int(lo), int(hi)) for lo, hi in more))
    return BranchLedger(
        branch=branch,
        watermarks=watermarks,
        sales_applied=_int(entity.get("sales_applied")),
        total_paisa=_int(entity.get("total_paisa")),
        last_push=_dt(entity.get("last_push")),
        etag=entity.metadata["etag"],
    )


def _state_entity(s: BranchLedger) -> dict:
    # Generation 1 in the original properties; later generations (after restores) in one JSON property.
    later = {str(g): [w.applied_through, [list(r) for r in w.ranges]] for g, w in sorted(s.watermarks.items()) if g != 1}
    return _props({
        "PartitionKey": s.branch, "RowKey": STATE_KEY, "applied_through": s.apply.applied_through,
        "ranges": json.dumps([list(r) for r in s.apply.ranges]), "sales_applied": s.sales_applied,
        "total_paisa": s.total_paisa, "last_push": s.last_push,
        "generations": json.dumps(later, separators=(",", ":")) if later else None,
    })


def _summary_entity(branch: str, day: date, parts: tuple[bytes, ...]) -> dict:
    return _props({"PartitionKey": branch, "RowKey": summary_key(day), "day": day.isoformat(), "encoding": "zlib+json",
                   "parts": len(parts), **{f"data{i}": p for i, p in enumerate(parts)}})


def _summary(branch: str, e: dict, products: bool = True) -> DaySummary:
    count = min(_int(e.get("parts")), PARTS_MAX) if products else 1
    parts = [e[f"data{i}"] for i in range(count)]
    return unpack(branch, date.fromisoformat(e["day"]), parts, e.metadata.get("etag"), products)


def _seq_list(seqs) -> str:
    return json.dumps(sorted(seqs), separators=(",", ":"))


def _chunk(branch: str, generation: int, entity: dict) -> Chunk:
    raw = json.loads(zlib.decompress(entity["data"]))
    if entity.get("encoding") == AS_SENT_ENCODING:
        raw = raw["sales"]  # the message's batch as it came
    return Chunk(
        branch=branch,
        first_seq=_int(entity["first_seq"]),
        last_seq=_int(entity["last_seq"]),
        applied_at=_dt(entity["applied_at"]),
        sales=[Sale.model_validate(s) for s in raw],
        generation=generation,
        voided=frozenset(json.loads(entity.get("voided") or "[]")),
        refused={int(k): v for k, v in json.loads(entity.get("refused") or "{}").items()},
        etag=entity.metadata.get("etag"),
        refunded={int(seq): {int(line): (Decimal(qty), amount) for line, (qty, amount) in lines.items()}
                  for seq, lines in json.loads(entity.get("refunded") or "{}").items()},
    )


def _refunded_text(refunded) -> str | None:
    """Per sale, per line: [quantity, paisa] refunded, e.g. {"14":{"2":["1.5",3000]}}; None when nothing is."""
    if not refunded:
        return None
    return json.dumps({str(seq): {str(line): [str(qty), amount] for line, (qty, amount) in sorted(lines.items())}
                       for seq, lines in sorted(refunded.items())}, separators=(",", ":"))


def _chunk_entity(branch: str, generation: int, chunk: ChunkWrite, applied_at: datetime) -> dict:
    return _props({
        "PartitionKey": branch, "RowKey": chunk_key(chunk.first_seq, generation),
        "first_seq": chunk.first_seq, "last_seq": chunk.last_seq, "count": len(chunk.sales),
        "total_paisa": chunk.total_paisa, "applied_at": applied_at, "encoding": chunk.encoding, "data": chunk.data,
        "voided": _seq_list(chunk.voided) if chunk.voided else None,
        "refused": json.dumps({str(k): v for k, v in sorted(chunk.refused.items())}, separators=(",", ":"))
        if chunk.refused else None,
        "refunded": _refunded_text(chunk.refunded),
    })


def _segment_entity(w: SegmentWrite) -> dict:
    seg = w.segment
    return _props({
        "PartitionKey": CATALOG_PK, "RowKey": version_key(seg.last_version), "first_version": seg.first_version,
        "last_version": seg.last_version, "count": len(seg.rows), "encoding": ENCODING, "data": w.data,
    })


def _segment(e: dict, after_version: int) -> Segment:
    if "data" not in e:
        raise StorageError(f"catalog row {e['RowKey']} is in the old one-row-per-version layout: "
                         "drop the catalog table and import the catalog again")
    return Segment(_int(e["first_version"]), _int(e["last_version"]), decode_rows(e["data"], after_version))


def _bucket_entity(number: int, data: bytes, count: int) -> dict:
    # A bucket may outgrow one binary property (64 KiB): its data is cut into data0, data1, ...
    parts = {f"data{i}": data[off : off + PROPERTY_MAX_BYTES] for i, off in enumerate(range(0, len(data), PROPERTY_MAX_BYTES))}
    return _props({
        "PartitionKey": CATALOG_PK, "RowKey": bucket_key(number), "bucket": number, "count": count,
        "encoding": ENCODING, "parts": len(parts), **parts,
    })


def _bucket_record(e: dict) -> BucketRecord:
    data = b"".join(e[f"data{i}"] for i in range(_int(e.get("parts"))))
    return BucketRecord(_int(e["bucket"]), decode_bucket(data), e.metadata["etag"])


def _person_entity(r: PersonRecord) -> dict:
    return _props({
        "PartitionKey": PERSON_PK, "RowKey": r.name, "roles": ",".join(r.roles), "salt": r.salt,
        "secret_hash": r.secret_hash, "created_at": r.created_at, "created_by": r.created_by,
        "revoked_at": r.revoked_at, "revoked_by": r.revoked_by,
    })


def _person_record(e: dict) -> PersonRecord:
    return PersonRecord(
        name=e["RowKey"], roles=tuple(e["roles"].split(",")), salt=e["salt"], secret_hash=e["secret_hash"],
        created_at=_dt(e["created_at"]), created_by=e["created_by"], revoked_at=_dt(e.get("revoked_at")),
        revoked_by=e.get("revoked_by"), etag=e.metadata.get("etag"),
    )


def _audit_entry(e: dict) -> AuditEntry:
    return AuditEntry(at=_dt(e["at"]), who=e["who"], via=e["via"], role=e["role"], method=e["method"],
                      route=e["route"], what=e["what"], status=_int(e["status"]), result=e["result"])
