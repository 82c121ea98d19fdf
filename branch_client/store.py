"""The branch's SQLite store: catalog, sales, sync state and identity.

One file, `branchsync.db` in the data home, in WAL mode with synchronous=FULL (a sale
that was reported recorded survives a power cut) and a busy timeout (the till and a
scheduled sync may write at the same time). Every public method is one transaction.

Write transactions start with `BEGIN IMMEDIATE` (SQLAlchemy's SQLite recipe: the driver's
own transaction handling is switched off on connect and the `begin` event emits BEGIN),
so the write lock is taken before the next sale number is read: two processes can never
take the same number, and a number is only used if its sale is stored with it.
Reads use a deferred BEGIN and so see one consistent snapshot.
"""

import json
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from shared.models import CatalogPage, PaymentMethod, Product, Refusal, Sale, SaleKind

from . import paths, sale_entry
from .errors import BadSaleInput, NotEnrolled, StoreError
from .identity import Identity, read_secret, write_secret
from .sale_entry import ItemSpec
from .schema import MIGRATIONS, Migration, meta, products, sales, sync_state, upgrade

RESEND_AFTER = timedelta(minutes=10)
BUSY_TIMEOUT_MS = 15_000
ERROR_MAX_CHARS = 500

_WRITE = "branchsync_write"
# meta key: the last sale number of a restored backup, until the first pull after the restore.
RESTORED_THROUGH = "restored_through"
# meta key: JSON of the cloud's latest refusal of this branch's sales (shared.models.Refusal), as the last pull said.
LAST_REFUSAL = "last_refusal"
# meta key: JSON list of sales the push set aside because one alone exceeds a queue message.
UNSENDABLE = "unsendable"


class SaleState(StrEnum):
    """Where a recorded event is on its way to the cloud."""

    PENDING = "pending"    # never pushed
    PUSHED = "pushed"      # pushed, not yet acknowledged by a pull
    ACKED = "acked"        # at or below the cloud's applied_through


@dataclass(frozen=True)
class SaleRecord:
    sale: Sale
    state: SaleState
    pushed_at: str | None
    push_count: int
    acked_at: str | None
    voided_by: int | None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def time_text(moment: datetime) -> str:
    """One fixed spelling for stored times, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("times must carry a zone")
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def fold(value: str | None) -> str | None:
    """Case- and form-insensitive search key: NFKC then casefold (Bangla has no case, but forms vary)."""
    if value is None:
        return None
    return unicodedata.normalize("NFKC", value).casefold()


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= ERROR_MAX_CHARS else line[: ERROR_MAX_CHARS - 3] + "..."


class Store:
    """The branch database in `home`; opening it creates or upgrades the schema."""

    def __init__(self, home: str | Path, *, migrations: Sequence[Migration] = MIGRATIONS,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.home = Path(home)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data home {self.home} ({exc.strerror}); "
                             "choose another with --home or BRANCHSYNC_HOME") from exc
        self.path = paths.db_path(self.home)
        self.engine: Engine = create_engine(URL.create("sqlite", database=str(self.path)))
        self._busy_timeout_ms = busy_timeout_ms
        event.listen(self.engine, "connect", self._on_connect)
        event.listen(self.engine, "begin", self._on_begin)
        self._writer = self.engine.execution_options(**{_WRITE: True})
        with self._write() as conn:
            self.schema_upgrade = upgrade(conn, migrations)

    # --- connection plumbing ---------------------------------------------------------------

    def _on_connect(self, dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
        dbapi_conn.create_function("bs_fold", 1, fold, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @staticmethod
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._writer.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"the branch database {self.path} failed: {one_line(exc.orig)}; "
                             "try again, and if it persists check the disk") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"the branch database {self.path} failed: {one_line(exc.orig)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- identity ----------------------------------------------------------------------------

    def identity(self) -> Identity:
        """The enrolled identity, or NotEnrolled."""
        with self._read() as conn:
            values = dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(("branch", "cloud_url")))).all())
        secret = read_secret(paths.secret_path(self.home))
        if not values.get("branch") or not values.get("cloud_url") or not secret:
            raise NotEnrolled()
        return Identity(branch=values["branch"], cloud_url=values["cloud_url"], secret=secret)

    def is_enrolled(self) -> bool:
        try:
            self.identity()
        except NotEnrolled:
            return False
        return True

    def save_identity(self, identity: Identity, now: datetime | None = None) -> None:
        write_secret(paths.secret_path(self.home), identity.secret)
        with self._write() as conn:
            for key, value in (("branch", identity.branch), ("cloud_url", identity.cloud_url),
                               ("enrolled_at", time_text(now or utcnow()))):
                conn.execute(sqlite_insert(meta).values(key=key, value=value)
                             .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def save_secret(self, secret: str) -> None:
        """Replace the branch secret (head office rotated it); atomic, so a crash leaves the old or the new one."""
        write_secret(paths.secret_path(self.home), secret)

    # --- sales -------------------------------------------------------------------------------

    def record_sale(self, items: Sequence[ItemSpec], payment: PaymentMethod | str = PaymentMethod.CASH,
                    now: datetime | None = None) -> Sale:
        """Price `items` from the catalog and store the sale under the next number, atomically.

        Any problem raises BadSaleInput and stores nothing (the number is not used up).
        """
        method = sale_entry.parse_payment(payment)
        with self._write() as conn:
            wanted = {item.sku for item in items}
            found = {p.sku: p for p in self._products_by_sku(conn, wanted)}
            lines = sale_entry.build_lines(items, found)
            sale = sale_entry.new_sale(self._next_seq(conn), uuid.uuid4().hex, now or utcnow(), lines, method)
            self._insert_sale(conn, sale)
        return sale

    def void_sale(self, seq: int, now: datetime | None = None) -> Sale:
        """Record the void of sale `seq` as a new event; refused for an unknown, void or already voided number."""
        with self._write() as conn:
            row = conn.execute(select(sales.c.body).where(sales.c.seq == seq)).first()
            if row is None:
                raise BadSaleInput(f"there is no sale number {seq}; see 'branchsync sale list'")
            voided = Sale.model_validate_json(row.body)
            if voided.kind != SaleKind.SALE:
                raise BadSaleInput(f"number {seq} is itself a void (of sale {voided.voids}); only a sale can be voided")
            earlier = conn.execute(select(sales.c.seq).where(sales.c.voids == seq)).scalar()
            if earlier is not None:
                raise BadSaleInput(f"sale {seq} was already voided by number {earlier}; nothing to do")
            void = sale_entry.new_void(self._next_seq(conn), uuid.uuid4().hex, now or utcnow(), voided)
            self._insert_sale(conn, void)
        return void

    @staticmethod
    def _next_seq(conn: Connection) -> int:
        """The next sale number: above every stored sale and above what the cloud has applied.

        The two differ only after a restore from a backup, once a pull has told the branch that the
        cloud already holds higher numbers: those must never be used again.
        """
        last = conn.execute(select(func.coalesce(func.max(sales.c.seq), 0))).scalar_one()
        applied = conn.execute(select(sync_state.c.applied_through)).scalar() or 0
        return max(last, applied) + 1

    @staticmethod
    def _insert_sale(conn: Connection, sale: Sale) -> None:
        conn.execute(insert(sales).values(
            seq=sale.seq, sale_id=sale.sale_id, kind=sale.kind.value, voids=sale.voids,
            recorded_at=time_text(sale.recorded_at), total=sale.total, payment_method=sale.payment.method.value,
            body=sale.model_dump_json(), pushed_at=None, push_count=0, acked_at=None))

    def get_sale(self, seq: int) -> SaleRecord | None:
        with self._read() as conn:
            rows = self._sale_records(conn, sales.c.seq == seq, limit=1)
        return rows[0] if rows else None

    def recent_sales(self, limit: int = 20) -> list[SaleRecord]:
        """The newest `limit` events, newest first, with their sync state."""
        with self._read() as conn:
            return self._sale_records(conn, None, limit=limit)

    def oldest_unacknowledged(self, limit: int = 3) -> list[SaleRecord]:
        """The oldest events the cloud has not acknowledged, oldest first."""
        with self._read() as conn:
            return self._sale_records(conn, sales.c.acked_at.is_(None), limit=limit, oldest_first=True)

    @staticmethod
    def _sale_records(conn: Connection, where, limit: int, oldest_first: bool = False) -> list[SaleRecord]:
        voider = sales.alias("voider")
        query = (select(sales.c.body, sales.c.pushed_at, sales.c.push_count, sales.c.acked_at,
                        voider.c.seq.label("voided_by"))
                 .outerjoin(voider, voider.c.voids == sales.c.seq)
                 .order_by(sales.c.seq.asc() if oldest_first else sales.c.seq.desc()).limit(limit))
        if where is not None:
            query = query.where(where)
        out = []
        for row in conn.execute(query):
            state = (SaleState.ACKED if row.acked_at else SaleState.PUSHED if row.pushed_at else SaleState.PENDING)
            out.append(SaleRecord(Sale.model_validate_json(row.body), state, row.pushed_at, row.push_count,
                                  row.acked_at, row.voided_by))
        return out

    # --- catalog -----------------------------------------------------------------------------

    @staticmethod
    def _product(row) -> Product:
        return Product(sku=row.sku, name=row.name, price=row.price, barcode=row.barcode, unit=row.unit,
                       vat_rate=Decimal(row.vat_rate), active=bool(row.active))

    def _products_by_sku(self, conn: Connection, skus: Iterable[str]) -> list[Product]:
        skus = list(skus)
        if not skus:
            return []
        return [self._product(r) for r in conn.execute(select(products).where(products.c.sku.in_(skus)))]

    def get_product(self, sku: str) -> Product | None:
        with self._read() as conn:
            found = self._products_by_sku(conn, [sku])
        return found[0] if found else None

    def search_products(self, text: str, limit: int = 20) -> list[Product]:
        """Products whose SKU, barcode or name contains `text`, ignoring case (works for Bangla).

        Exact SKU or barcode matches come first, then SKU prefixes, then the rest by name.
        """
        key = fold(text.strip()) or ""
        if not key:
            return []
        sku_f, name_f, code_f = func.bs_fold(products.c.sku), func.bs_fold(products.c.name), func.bs_fold(products.c.barcode)
        query = (select(products)
                 .where(or_(func.instr(sku_f, key) > 0, func.instr(name_f, key) > 0, func.instr(code_f, key) > 0))
                 .order_by(((sku_f == key) | (code_f == key)).desc(), (func.instr(sku_f, key) == 1).desc(),
                           products.c.name, products.c.sku)
                 .limit(max(1, limit)))
        with self._read() as conn:
            return [self._product(r) for r in conn.execute(query)]

    def apply_catalog_page(self, page: CatalogPage, applied_through: int, now: datetime | None = None) -> int:
        """Store a pulled page, its cursor, the ack and the pull time in ONE transaction.

        Entries are upserted (a tombstone deletes). The last page of a pull (`more` false)
        also drops products kept unconfirmed since a full resync. Sales up to
        `applied_through` are marked acknowledged. Returns the number of entries applied.
        """
        now_text = time_text(now or utcnow())
        with self._write() as conn:
            self._apply_entries(conn, page)
            if not page.more:
                conn.execute(delete(products).where(products.c.version == 0))
            self._renumber_after_restore(conn, applied_through)
            self._save_cursor(conn, page.next_cursor, applied_through, now_text)
            self._mark_acked(conn, applied_through, now_text)
        return len(page.entries)

    # --- after a restore from a backup -------------------------------------------------------------

    def mark_restored(self) -> int:
        """Remember that this database was restored from a backup whose last sale is the current last one.

        Until the next pull, sales are numbered on from there; that pull renumbers the ones recorded
        since the restore above the cloud's applied_through (see `_renumber_after_restore`).
        """
        with self._write() as conn:
            last = conn.execute(select(func.coalesce(func.max(sales.c.seq), 0))).scalar_one()
            conn.execute(sqlite_insert(meta).values(key=RESTORED_THROUGH, value=str(last))
                         .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": str(last)}))
        return last

    @staticmethod
    def _renumber_after_restore(conn: Connection, applied_through: int) -> int:
        """On the first pull after a restore: move sales recorded since the restore above `applied_through`.

        The cloud may hold sales numbered above the backup's last one (recorded after the backup was
        taken, lost with the old database). Sales recorded since the restore took those numbers
        locally; a sync always pulls before it pushes, so none of them has been pushed yet, and they
        move up by the same amount, in order, voids with the sales they void. Returns how many moved.
        """
        marker = conn.execute(select(meta.c.value).where(meta.c.key == RESTORED_THROUGH)).scalar()
        if marker is None:
            return 0
        conn.execute(delete(meta).where(meta.c.key == RESTORED_THROUGH))
        restored = int(marker)
        shift = applied_through - restored
        if shift <= 0:
            return 0
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # a void and its sale move in one transaction
        rows = conn.execute(select(sales.c.seq, sales.c.body).where(sales.c.seq > restored)
                            .order_by(sales.c.seq.desc())).all()
        for seq, body in rows:  # highest first, so no number is taken twice on the way
            sale = Sale.model_validate_json(body)
            voids = sale.voids + shift if sale.voids is not None and sale.voids > restored else sale.voids
            moved = sale.model_copy(update={"seq": seq + shift, "voids": voids})
            conn.execute(update(sales).where(sales.c.seq == seq).values(
                seq=moved.seq, voids=voids, body=moved.model_dump_json(), pushed_at=None))
        return len(rows)

    @staticmethod
    def _apply_entries(conn: Connection, page: CatalogPage) -> None:
        latest = {}
        for entry in page.entries:  # ascending versions; a repeated SKU keeps its latest
            latest[entry.sku] = entry
        gone = [e.sku for e in latest.values() if e.deleted]
        rows = [dict(sku=e.sku, name=e.product.name, price=e.product.price, barcode=e.product.barcode,
                     unit=e.product.unit, vat_rate=str(e.product.vat_rate), active=int(e.product.active),
                     version=e.version)
                for e in latest.values() if not e.deleted]
        if gone:
            for i in range(0, len(gone), 500):
                conn.execute(delete(products).where(products.c.sku.in_(gone[i: i + 500])))
        if rows:
            stmt = sqlite_insert(products)
            stmt = stmt.on_conflict_do_update(index_elements=[products.c.sku], set_={
                c: stmt.excluded[c] for c in ("name", "price", "barcode", "unit", "vat_rate", "active", "version")})
            conn.execute(stmt, rows)

    @staticmethod
    def _save_cursor(conn: Connection, cursor: int, applied_through: int, now_text: str) -> None:
        conn.execute(update(sync_state).where(sync_state.c.id == 1).values(
            catalog_cursor=cursor, applied_through=applied_through, last_pull=now_text))

    @staticmethod
    def _mark_acked(conn: Connection, applied_through: int, now_text: str) -> None:
        # Only a sale this till has pushed can be acknowledged by number: one it never pushed
        # (a copied database, or a restore) is pushed once first, so the cloud can check that
        # the sale it holds under that number is this very sale and refuse a cloned till.
        conn.execute(update(sales).where(and_(sales.c.seq <= applied_through, sales.c.acked_at.is_(None),
                                              sales.c.pushed_at.is_not(None)))
                     .values(acked_at=now_text))

    def reset_catalog(self) -> None:
        """Start a full resync: cursor back to 0, every product kept but unconfirmed (version 0).

        Products stay sellable while the catalog is pulled again; the ones the cloud does not
        send again are dropped with the last page of that pull.
        """
        with self._write() as conn:
            conn.execute(update(products).values(version=0))
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(catalog_cursor=0))

    def catalog_cursor(self) -> int:
        with self._read() as conn:
            return conn.execute(select(sync_state.c.catalog_cursor)).scalar_one()

    # --- push ----------------------------------------------------------------------------------

    @staticmethod
    def _due(now: datetime | None, resend_after: timedelta):
        cutoff = time_text((now or utcnow()) - resend_after)
        return and_(sales.c.acked_at.is_(None), or_(sales.c.pushed_at.is_(None), sales.c.pushed_at <= cutoff))

    def sales_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER,
                      limit: int | None = None, after_seq: int = 0) -> list[Sale]:
        """Unacknowledged events never pushed, or pushed more than `resend_after` ago; ascending seq."""
        query = (select(sales.c.body).where(self._due(now, resend_after), sales.c.seq > after_seq)
                 .order_by(sales.c.seq))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [Sale.model_validate_json(body) for body in conn.execute(query).scalars()]

    def count_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(sales).where(self._due(now, resend_after))).scalar_one()

    def mark_pushed(self, seqs: Iterable[int], now: datetime | None = None) -> None:
        now_text = time_text(now or utcnow())
        seqs = list(seqs)
        with self._write() as conn:
            for i in range(0, len(seqs), 500):
                conn.execute(update(sales).where(sales.c.seq.in_(seqs[i: i + 500]))
                             .values(pushed_at=now_text, push_count=sales.c.push_count + 1))
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_push=now_text))

    def pending_count(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(sales).where(sales.c.acked_at.is_(None))).scalar_one()

    # --- sync state ------------------------------------------------------------------------------

    def record_error(self, text: str, now: datetime | None = None) -> None:
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(
                last_error=one_line(text) or "unknown error", last_error_at=time_text(now or utcnow())))

    def clear_error(self) -> None:
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_error=None, last_error_at=None))

    def record_sync_ok(self, now: datetime | None = None) -> None:
        """A sync finished: clear the last error and remember when (meta `last_sync_ok`), in one transaction."""
        value = time_text(now or utcnow())
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_error=None, last_error_at=None))
            conn.execute(sqlite_insert(meta).values(key="last_sync_ok", value=value)
                         .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def save_refusal(self, refusal: Refusal | None) -> None:
        """Keep what the last pull said the cloud refused (None: nothing, or head office dealt with it)."""
        with self._write() as conn:
            if refusal is None:
                conn.execute(delete(meta).where(meta.c.key == LAST_REFUSAL))
                return
            value = refusal.model_dump_json()
            conn.execute(sqlite_insert(meta).values(key=LAST_REFUSAL, value=value)
                         .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def save_unsendable(self, found: list[dict]) -> None:
        """Keep the sales the last full push walk could not send ({seq, sale_id, size, reason}); [] clears."""
        with self._write() as conn:
            if not found:
                conn.execute(delete(meta).where(meta.c.key == UNSENDABLE))
                return
            value = json.dumps(found, ensure_ascii=False)
            conn.execute(sqlite_insert(meta).values(key=UNSENDABLE, value=value)
                         .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    @staticmethod
    def _refusal(conn: Connection, stored: str | None) -> dict | None:
        """The stored refusal, and whether the refused sale is this till's own (None: cannot tell)."""
        if not stored:
            return None
        refusal = Refusal.model_validate_json(stored)
        this_till = None
        if refusal.seq is not None and refusal.sale_id is not None:
            mine = conn.execute(select(sales.c.sale_id).where(sales.c.seq == refusal.seq)).scalar()
            this_till = mine == refusal.sale_id
        return {**refusal.model_dump(mode="json"), "this_till": this_till}

    def oldest_pending(self) -> str | None:
        """When the oldest event not yet acknowledged was recorded (stored time text), or None."""
        with self._read() as conn:
            return conn.execute(select(sales.c.recorded_at).where(sales.c.acked_at.is_(None))
                                .order_by(sales.c.seq).limit(1)).scalar()

    def status(self) -> dict:
        """What is pending, what failed and why; never the secret."""
        with self._read() as conn:
            state = conn.execute(select(sync_state)).one()
            info = dict(conn.execute(select(meta.c.key, meta.c.value)).all())
            counts = conn.execute(select(
                func.count(),
                func.coalesce(func.max(sales.c.seq), 0),
                func.count().filter(sales.c.acked_at.is_(None)),
                func.count().filter(and_(sales.c.acked_at.is_(None), sales.c.pushed_at.is_not(None))),
                func.coalesce(func.sum(sales.c.total), 0),
            ).select_from(sales)).one()
            product_count = conn.execute(select(func.count()).select_from(products)).scalar_one()
            refusal = self._refusal(conn, info.get(LAST_REFUSAL))
        return {
            "pending": counts[2],
            "applied_through": state.applied_through,
            "catalog_version": state.catalog_cursor,
            "last_pull": state.last_pull,
            "last_push": state.last_push,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
            # The cloud's latest refusal of sales sent as this branch: {at, code, reason, seq, sale_id, this_till}.
            "last_refusal": refusal,
            "last_sync_ok": info.get("last_sync_ok"),
            # Sales kept here that no push can carry (too large for one message): [{seq, sale_id, size, reason}].
            "unsendable": json.loads(info[UNSENDABLE]) if UNSENDABLE in info else [],
            "restored_through": int(info[RESTORED_THROUGH]) if RESTORED_THROUGH in info else None,
            "pushed_unacked": counts[3],
            "never_pushed": counts[2] - counts[3],
            "sales_recorded": counts[0],
            "last_seq": counts[1],
            # Takings in paisa: voids carry negative totals, so this is what head office should see.
            "total_paisa": counts[4],
            "products": product_count,
            "branch": info.get("branch"),
            "cloud_url": info.get("cloud_url"),
            "enrolled": bool(info.get("branch")) and paths.secret_path(self.home).exists(),
            "schema_version": int(info.get("schema_version", 0)),
            "home": str(self.home),
        }
