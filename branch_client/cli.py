"""`branchsync`, the branch executable: thin commands over the store and the sync engine.

Each command opens the store in the data home and calls one function of the branch core
(branch_client.status, .enrollment, .schedule, the store, the sync engine). Sale entry works
with no network at all; only `enroll` and `sync` talk to the cloud.

    branchsync [--home DIR] enroll CODE [--force] [--no-catalog]
    branchsync [--home DIR] sale add SKU=QTY [SKU=QTY@PRICE[:REASON] | BARCODE ...]
                                     [--pay METHOD[=TAKA] ... | --payment cash|card] [--discount 10%:REASON]
                                     [--cashier NAME] [--yes]
    branchsync [--home DIR] sale void NUMBER [--reason TEXT] [--cashier NAME]
    branchsync [--home DIR] sale refund NUMBER LINE=QTY ... [--pay METHOD[=TAKA] ...] [--reason TEXT]
    branchsync [--home DIR] sale list [--limit N] | show NUMBER
    branchsync [--home DIR] shift open --float TAKA | close --counted TAKA | z SHIFT_ID
    branchsync [--home DIR] cashier add NAME [--new-pin] | list | remove NAME | unlock NAME
    branchsync [--home DIR] config show | set NAME VALUE | unset NAME
    branchsync [--home DIR] sync
    branchsync [--home DIR] status [--json]
    branchsync [--home DIR] catalog search TEXT [--limit N]
    branchsync [--home DIR] till [--port N] [--no-browser]
    branchsync [--home DIR] doctor [--json]
    branchsync [--home DIR] schedule install [--every 15m] [--principal user|system] [--till-at-logon]
                                             [--dry-run] [--xml-file FILE]
    branchsync schedule show|remove [--dry-run]
    branchsync [--home DIR] backup [--keep N]
    branchsync [--home DIR] restore FILE [--force]
    branchsync --version

The data home is --home DIR, else $BRANCHSYNC_HOME, else %PROGRAMDATA%\\branchsync on
Windows, else the user data directory (see branch_client.paths).

Exit codes:
    0  ok (for `sync`: everything due was pushed)
    1  sync or cloud failure, or another failure; nothing is lost, sales stay pending: sync
       again later (also a `sync` that sent the rest but has a sale too large to send: see
       `doctor`; and `schedule` when the Task Scheduler refuses: run as administrator)
    2  bad input (item, price, payment, void number, an enrollment code that looks mistyped
       or that the cloud refuses); nothing was stored, and trying again as it is never helps
    3  this data home is not enrolled
    4  a sync is already running (the second one exits at once)
    5  head office revoked this till: it can no longer sync (its sales stay on this PC)
`doctor` exits 1 when a check needs action. Errors are one line on stderr saying what to do
next, and are written to the log (logs/branchsync.log in the data home) with their reason.
The secret is never printed or logged.
"""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shared import PROTOCOL_VERSION

from . import paths
from .errors import BranchSyncError

# Heavy modules (pydantic models, SQLAlchemy, httpx, azure, rich's tables) are imported
# inside the commands that need them, so `branchsync --version` and `--help` start fast.
if TYPE_CHECKING:
    from .store import Store
    from .sync import SyncReport

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_NOT_ENROLLED, EXIT_SYNC_RUNNING, EXIT_REVOKED = 0, 1, 2, 3, 4, 5

# Extra keyword arguments for every CloudClient the CLI makes (tests put a transport here).
client_options: dict = {}

app = typer.Typer(name="branchsync", no_args_is_help=True, add_completion=False,
                  help="Branch side of branchsync: record sales offline, sync them with head office.")
sale_app = typer.Typer(no_args_is_help=True, help="Record, void, refund and list sales (works offline).")
catalog_app = typer.Typer(no_args_is_help=True, help="Look up products in the local catalog.")
schedule_app = typer.Typer(no_args_is_help=True, help="The Windows scheduled task that runs 'branchsync sync' "
                                                        "every few minutes.")
cashier_app = typer.Typer(no_args_is_help=True, help="The till's cashiers and their PINs (kept on this PC only).")
config_app = typer.Typer(no_args_is_help=True, help="This branch's settings: receipt header, time zone, scale labels.")
shift_app = typer.Typer(no_args_is_help=True, help="Cashiers' shifts: open with a float, close with the counted "
                                                   "cash and print the Z report.")
app.add_typer(sale_app, name="sale")
app.add_typer(shift_app, name="shift")
app.add_typer(cashier_app, name="cashier")
app.add_typer(config_app, name="config")
app.add_typer(catalog_app, name="catalog")
app.add_typer(schedule_app, name="schedule")


def _out():
    from rich.console import Console

    return Console(highlight=False)


def _err():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        from .version import version

        typer.echo(f"branchsync {version()} (protocol {PROTOCOL_VERSION})")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[Optional[Path], typer.Option("--home", metavar="DIR", help="Data home (default: $BRANCHSYNC_HOME, "
                                                 "%PROGRAMDATA%\\branchsync on Windows, else the user data dir).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    ctx.obj = paths.data_home(home)


@contextmanager
def _errors(ctx: typer.Context) -> Iterator[None]:
    """Map every error of one command to one line on stderr and its exit code (branch_client.errors).

    Every error is also written to the log (logs/branchsync.log in the data home) with its reason.
    """
    import time

    from . import logs

    started = time.monotonic()
    name = " ".join(ctx.command_path.split()[1:]) or "branchsync"
    log = logs.open_log(ctx.obj)

    def log_error(reason: str, code: str) -> None:
        log.error(logs.error_line(name, reason, code, time.monotonic() - started))

    try:
        yield
    except BranchSyncError as exc:
        log_error(str(exc), exc.code)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        log_error("interrupted", "interrupted")
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        reason = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        log_error(reason, "unexpected")
        if os.environ.get("BRANCHSYNC_DEBUG"):
            raise
        typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None


@contextmanager
def _command(ctx: typer.Context) -> "Iterator[Store]":
    """Open the store for one command, with the errors mapped as `_errors` does."""
    from .store import Store

    with _errors(ctx), Store(ctx.obj) as store:
        yield store


# --- enroll ------------------------------------------------------------------------------------


@app.command()
def enroll(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The enrollment code from head office (starts with BSE1.).")],
    force: Annotated[bool, typer.Option("--force", help="Replace the identity of an already enrolled home.")] = False,
    no_catalog: Annotated[bool, typer.Option("--no-catalog", help="Only enroll; the catalog comes with the first "
                                             "sync (on a slow line, say).")] = False,
) -> None:
    """Enroll this branch with the code head office gave you, then pull the catalog so the till can sell."""
    import logging

    from . import enrollment, logs
    from .cloud_client import CloudClient
    from .permissions import secure_home  # Windows: only SYSTEM, Administrators and this account may open the folder

    with _command(ctx) as store, _progress_display() as show:
        done = enrollment.enroll(store, code, force=force, secure=secure_home,
                                 connect=lambda url: CloudClient(url, **client_options),
                                 sync=None if no_catalog else (lambda s: _run_sync(s, show)))
    log = logging.getLogger(logs.LOGGER_NAME)
    log.info(f"enrolled as branch {done.branch} at {done.cloud_url}")
    if done.acl_problem:
        typer.echo(f"warning: could not restrict who may open {ctx.obj} ({done.acl_problem}); "
                   "run 'branchsync doctor' for the command that does it", err=True)
    typer.echo(f"enrolled as branch {done.branch} at {done.cloud_url}")
    if no_catalog:
        typer.echo("the catalog comes with the first sync ('branchsync sync', or the scheduled task)")
    elif done.catalog is not None:
        report = done.catalog
        log.info(f"catalog pulled at enrollment: version {report.catalog_version}")
        typer.echo(f"catalog pulled: version {report.catalog_version} ({report.entries} changes); the till is ready to sell")
    else:
        log.warning(f"catalog pull at enrollment failed: {done.catalog_problem}")
        typer.echo(f"warning: the catalog could not be pulled yet ({done.catalog_problem}); the catalog will come "
                   "with the first sync ('branchsync sync', or the scheduled task)", err=True)


def _run_sync(store: "Store", show, ack_wait: float = 0.0) -> "SyncReport":
    """One sync of the open store: the engine `sync` runs, with the rotated secret masked in the log;
    `ack_wait` seconds at most for the acknowledgement of what it pushed."""
    import logging

    from . import logs
    from .cloud_client import CloudClient
    from .sync import SyncEngine

    log = logging.getLogger(logs.LOGGER_NAME)
    identity = store.identity()
    logs.forget_secret(log, identity.secret)
    with CloudClient.for_identity(identity, **client_options) as client:
        return SyncEngine(store, client, on_progress=show, ack_wait=ack_wait,
                          on_secret=lambda s: logs.forget_secret(log, s)).run()


# --- sales ---------------------------------------------------------------------------------------


CashierOption = Annotated[Optional[str], typer.Option(
    "--cashier", envvar="BRANCHSYNC_CASHIER",
    help="Who records it (default: $BRANCHSYNC_CASHIER, else 'manager'); every event of the complete record names "
         "its cashier.")]


def _taka(text: str, what: str) -> int:
    from shared.money import parse_taka

    from .errors import BadSaleInput

    try:
        return parse_taka(text)
    except ValueError as exc:
        raise BadSaleInput(f"{what}: {exc}; give it in taka, e.g. 2000 or 5430.50") from None


def _payments(pay: list[str] | None, payment: str | None) -> "list | None":
    """--pay (repeatable) or the older --payment METHOD (one payment of the whole total)."""
    from . import sale_entry
    from .errors import BadSaleInput

    if pay and payment:
        raise BadSaleInput("give either --pay (one or more) or --payment, not both")
    if pay:
        return [sale_entry.parse_pay(p) for p in pay]
    return [sale_entry.parse_pay(payment)] if payment else None


@sale_app.command("add")
def sale_add(
    ctx: typer.Context,
    items: Annotated[list[str], typer.Argument(metavar="SKU=QTY[@PRICE[:REASON]]...",
                                               help="Items: SKU=QTY, or SKU=QTY@PRICE to override the price (taka; "
                                                    "below the list price add :REASON); a barcode works as well as "
                                                    "a SKU, in any case; a SKU or barcode alone is one piece, or what "
                                                    "a scale label says.")],
    pay: Annotated[Optional[list[str]], typer.Option(
        "--pay", metavar="METHOD[=TAKA]",
        help="A payment; repeat to split: cash=1000 (what the customer handed over; the change is given back), "
             "card=250.50, bkash:TXNID=200, nagad:TXNID=200. One payment may leave out its amount: it pays the "
             "rest. Default: cash, the whole total.")] = None,
    payment: Annotated[Optional[str], typer.Option("--payment", "-p", help="One payment of the whole total: cash or "
                                                                           "card (for a wallet use --pay).")] = None,
    discount: Annotated[Optional[str], typer.Option("--discount", metavar="PERCENT%:REASON|TAKA:REASON",
                                                    help='A discount on the whole sale, e.g. 10%:"loyal customer" '
                                                         'or 50:"damaged box".')] = None,
    cashier: CashierOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Record very large quantities (over 100) as given.")] = False,
) -> None:
    """Record a sale (works offline) and print its number, total, payments and change."""
    from shared.money import format_taka

    from . import sale_entry
    from .errors import NotEnrolled

    with _command(ctx) as store:
        payments = _payments(pay, payment)
        sale_discount = sale_entry.parse_discount(discount, "the sale discount") if discount else None
        if not store.is_enrolled():  # its catalog is empty: say why, rather than "no such product"
            raise NotEnrolled("this till is not enrolled, so it has no catalog to sell from: ask head office for an "
                              "enrollment code and run 'branchsync enroll CODE'")
        recorded = store.record(sale_entry.parse_items(items), confirmed=yes, payments=payments,
                                discount=sale_discount, cashier=cashier)
    sale = recorded.sale
    change = sum(p.change or 0 for p in sale.payments)
    typer.echo(f"sale {recorded.number} recorded: total {format_taka(sale.total)} taka, "
               f"{len(sale.lines)} line{'s' if len(sale.lines) != 1 else ''}, paid by {_paid_by(sale)}"
               + (f", change {format_taka(change)} taka" if change else ""))


def _paid_by(sale) -> str:
    from shared.money import format_taka

    from .sale_entry import payments_of

    pays = payments_of(sale)
    if len(pays) == 1:
        return pays[0].method.value
    return " + ".join(f"{p.wallet.value if p.wallet else p.method.value} {format_taka(abs(p.amount))}" for p in pays)


@sale_app.command("void")
def sale_void(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The number of the sale to void, as on the receipt (14, or 2-14).")],
    reason: Annotated[Optional[str], typer.Option("--reason", "-r", help="Why (kept on this PC, shown by 'sale list').")] = None,
    cashier: CashierOption = None,
) -> None:
    """Void a sale: records a void event with minus its total (a sale refunded in part is refunded instead)."""
    from shared.money import format_taka

    with _command(ctx) as store:
        void = store.void(number, reason=" ".join(reason.split()) or None if reason else None, cashier=cashier)
    typer.echo(f"sale {number.strip()} voided by number {void.number}: {format_taka(void.sale.total)} taka")


@sale_app.command("refund")
def sale_refund(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The number of the sale, as on the receipt (14, or 2-14).")],
    returns: Annotated[list[str], typer.Argument(metavar="LINE=QTY...",
                                                 help="What comes back: the line's number on the receipt (from 1) "
                                                      "and the quantity, e.g. 1=2 3=0.5.")],
    pay: Annotated[Optional[list[str]], typer.Option(
        "--pay", metavar="METHOD[=TAKA]", help="How the money goes back: cash, card, bkash:TXNID or nagad:TXNID, "
                                               "split with amounts as for 'sale add'. Default: cash.")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", "-r", help="Why (kept on this PC).")] = None,
    cashier: CashierOption = None,
) -> None:
    """Refund goods of an earlier sale: at most what was sold and not yet returned."""
    from shared.money import format_taka

    with _command(ctx) as store:
        done = store.refund(number, _returns(returns), _payments(pay, None), cashier=cashier,
                            reason=" ".join(reason.split()) or None if reason else None)
    typer.echo(f"sale {number.strip()} refunded by number {done.number}: {format_taka(-done.sale.total)} taka back "
               f"by {_paid_by(done.sale)}")


def _returns(texts: list[str]) -> list[tuple[int, str]]:
    from .errors import BadSaleInput

    pairs = []
    for text in texts:
        line, sep, qty = text.partition("=")
        if not sep or not line.strip().isdigit():
            raise BadSaleInput(f"{text!r} is not LINE=QTY; give the line's number on the receipt and the "
                               "quantity, e.g. 1=2")
        pairs.append((int(line), qty.strip()))
    return pairs


@sale_app.command("list")
def sale_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent events to show.")] = 20,
) -> None:
    """Recent sales, voids, refunds and shift closes with their sync state (pending, pushed, acked)."""
    from rich.markup import escape
    from rich.table import Table

    from shared.money import format_taka

    from .store import SaleState

    with _command(ctx) as store:
        records = store.recent_sales(limit)
        settings = store.settings()
    if not records:
        typer.echo("no sales recorded yet")
        return
    zone = settings.zone
    table = Table(title="Recent sales")
    for name, justify in (("No.", "right"), (f"Time ({settings['time_zone']})", "left"), ("Kind", "left"), ("Total (Tk)", "right"),
                          ("Payment", "left"), ("Sync", "left"), ("Note", "left")):
        table.add_column(name, justify=justify)
    colours = {SaleState.PENDING: "yellow", SaleState.PUSHED: "cyan", SaleState.ACKED: "green"}
    for rec in records:
        sale = rec.sale
        note = (f"void of {rec.voids_number}" if sale.voids else f"refund of {rec.refunds_number}" if sale.refunds
                else "shift close" if sale.shift else
                f"voided by {rec.voided_by}" if rec.voided_by else f"{len(sale.lines)} lines")
        if sale.discount:
            note += f", discount {format_taka(sale.discount.amount)}"
        if rec.reason:
            note += f": {rec.reason}"
        if rec.cashier:
            note += f" ({rec.cashier})"
        table.add_row(rec.number, _local(sale.recorded_at, zone), sale.kind.value, format_taka(sale.total),
                      _paid_by(sale) if sale.kind != "shift_close" else "-",
                      f"[{colours[rec.state]}]{rec.state.value}[/]", escape(note))
    _out().print(table)


@sale_app.command("show")
def sale_show(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The number, as on the receipt (14, or 2-14).")],
) -> None:
    """One event in full: its lines with VAT and discounts, payments and change, and what was refunded."""
    from rich.markup import escape
    from rich.table import Table

    from shared.money import format_taka

    from .errors import BadSaleInput

    with _command(ctx) as store:
        rec = store.get_sale(number)
        settings = store.settings()
        if rec is None:
            raise BadSaleInput(f"there is no sale number {number.strip()}; see 'branchsync sale list'")
    sale = rec.sale
    head = f"{sale.kind.value} {rec.number}, {_local(sale.recorded_at, settings.zone)} ({settings['time_zone']})"
    if rec.cashier or sale.cashier:
        head += f", cashier {rec.cashier or sale.cashier}"
    table = Table(title=escape(head))
    for name, justify in (("Line", "right"), ("Item", "left"), ("Qty", "right"), ("Price", "right"),
                          ("Discount", "right"), ("Net (Tk)", "right"), ("VAT", "right"), ("Returned", "right")):
        table.add_column(name, justify=justify)
    returned = rec.returned or {}
    for n, line in enumerate(sale.lines, 1):
        why = rec.price_reasons[n - 1] if n <= len(rec.price_reasons) else None
        price = format_taka(line.unit_price) + (f" ({why})" if why else "")
        off = f"{format_taka(line.discount.amount)} {line.discount.reason}" if line.discount else ""
        vat = f"{format_taka(line.vat)} @{line.vat_rate}%" if line.vat is not None else ""
        back = format(returned[n][0], "f") if n in returned else ""
        table.add_row(str(n), escape(f"{line.sku} {line.name}"), format(line.qty, "f"), escape(price), escape(off),
                      format_taka(line.net if line.net is not None else line.line_total), vat, back)
    for r in sale.returns or ():
        table.add_row(str(r.line), escape(r.sku), format(r.qty, "f"), "", "", format_taka(-r.amount), "", "")
    _out().print(table)
    if sale.discount:
        typer.echo(f"sale discount: {format_taka(sale.discount.amount)} taka ({sale.discount.reason})")
    typer.echo(f"total: {format_taka(sale.total)} taka")
    if sale.kind != "shift_close":
        for p in (sale.payments if sale.payments is not None else [sale.payment]):
            extra = (f" tendered {format_taka(p.tendered)} change {format_taka(p.change)}" if p.tendered is not None
                     else f" {p.wallet.value} txn {p.txn_id}" if p.wallet else "")
            typer.echo(f"paid: {p.method.value} {format_taka(p.amount)}{extra}")
    for label, value in (("voids", rec.voids_number), ("refunds", rec.refunds_number), ("voided by", rec.voided_by),
                         ("refunded by", ", ".join(rec.refunded_by)), ("reason", rec.reason)):
        if value:
            typer.echo(f"{label}: {value}")
    if sale.shift:
        typer.echo(f"shift {sale.shift.shift_id}: expected cash {format_taka(sale.shift.expected_cash)}, "
                   f"counted {format_taka(sale.shift.counted_cash)}")


# --- shifts ----------------------------------------------------------------------------------------


@shift_app.command("open")
def shift_open(
    ctx: typer.Context,
    opening_float: Annotated[str, typer.Option("--float", metavar="TAKA", help="The cash counted into the drawer.")],
    cashier: CashierOption = None,
) -> None:
    """Open a shift with the float counted into the drawer; sales from now on are in its Z report."""
    from shared.money import format_taka

    with _command(ctx) as store:
        shift = store.open_shift(cashier, _taka(opening_float, "the float"))
    typer.echo(f"shift opened for {shift.cashier} with a float of {format_taka(shift.opening_float)} taka")


@shift_app.command("close")
def shift_close(
    ctx: typer.Context,
    counted: Annotated[str, typer.Option("--counted", metavar="TAKA", help="The cash counted in the drawer now.")],
    cashier: CashierOption = None,
) -> None:
    """Close the open shift with the cash counted: prints the Z report and records it as an event for head office."""
    with _command(ctx) as store:
        report = store.close_shift(_taka(counted, "the counted cash"), cashier)
        settings = store.settings()
    _print_z(report, settings)


@shift_app.command("z")
def shift_z(ctx: typer.Context, shift_id: Annotated[str, typer.Argument(help="The shift's id (see 'sale show' of "
                                                                              "its shift close).")]) -> None:
    """Print a closed shift's Z report again."""
    from .errors import BadSaleInput

    with _command(ctx) as store:
        report = store.shift_report(shift_id)
        settings = store.settings()
        if report is None:
            raise BadSaleInput(f"no closed shift {shift_id}")
    _print_z(report, settings)


def _print_z(report, settings) -> None:
    from datetime import datetime

    from rich.markup import escape
    from rich.table import Table

    from shared.money import format_taka

    opened, closed = (_local(datetime.fromisoformat(t), settings.zone) for t in (report.opened_at, report.closed_at))
    table = Table(title=escape(f"Z report: {report.cashier}"),
                  caption=escape(f"{opened} to {closed} ({settings['time_zone']})"))
    table.add_column("", justify="left")
    table.add_column("Tk", justify="right")
    rows = [(f"sales ({report.sales})", report.net), ("  gross", report.gross), ("  discounts", -report.discounts),
            (f"refunds ({report.refunds})", -report.refunded), (f"voids ({report.voids})", -report.voided)]
    rows += [(f"{method.value}", amount) for method, amount in report.by_method.items()]
    rows += [("opening float", report.opening_float), ("cash in", report.cash_in), ("cash out", -report.cash_out),
             ("expected cash", report.expected_cash), ("counted cash", report.counted_cash),
             ("over" if report.difference > 0 else "short" if report.difference < 0 else "difference",
              report.difference)]
    for label, amount in rows:
        table.add_row(label, format_taka(amount))
    _out().print(table)
    typer.echo(f"shift {report.shift_id} closed by number {report.number}")


# --- cashiers -------------------------------------------------------------------------------------


@cashier_app.command("add")
def cashier_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The cashier's name as they sign in at the till, e.g. Rahim.")],
    new_pin: Annotated[bool, typer.Option("--new-pin", help="Give an existing cashier a new PIN.")] = False,
) -> None:
    """Create a cashier; asks for their PIN (4 to 8 digits), which is kept only as a salted hash."""
    import click

    from . import cashiers
    from .errors import BadInput

    with _command(ctx) as store:
        clean = cashiers.check_name(name)
        try:
            pin = typer.prompt(f"PIN for {clean} (4-8 digits)", hide_input=True, confirmation_prompt=True)
        except click.exceptions.Abort:
            raise BadInput("no PIN was given; nothing was changed") from None
        saved = store.add_cashier(clean, pin, replace=new_pin)
    typer.echo(f"cashier {saved} {'has a new PIN' if new_pin else 'added'}; they sign in at the till with it")


@cashier_app.command("list")
def cashier_list(ctx: typer.Context) -> None:
    """The cashiers who can sign in at this till, and which are locked after wrong PINs."""
    from .store import utcnow

    with _command(ctx) as store:
        names, settings, now = store.cashier_names(), store.settings(), utcnow()
        tries = {name: store.sign_in_tries(name) for name in names}
    if not names:
        typer.echo("no cashiers yet: add one with 'branchsync cashier add NAME'")
    for name in names:
        locked = tries[name].locked_until if tries[name].locked(now) else None
        typer.echo(name if locked is None else
                   f"{name}: locked after too many wrong PINs until {_local(locked, settings.zone)} "
                   f"({settings['time_zone']}); unlock now with 'branchsync cashier unlock {name}'")


@cashier_app.command("unlock")
def cashier_unlock(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The cashier's name.")]) -> None:
    """Let a cashier locked after too many wrong PINs sign in again at once (the count starts again)."""
    with _command(ctx) as store:
        was = store.unlock_cashier(name)
    typer.echo(f"cashier {name} was not locked; nothing to do" if was is None else
               f"cashier {name} unlocked: they can sign in again now")


@cashier_app.command("remove")
def cashier_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The cashier's name.")]) -> None:
    """Remove a cashier: they can no longer sign in (their recorded sales keep their name)."""
    with _command(ctx) as store:
        store.remove_cashier(name)
    typer.echo(f"cashier {name} removed")


# --- settings --------------------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Every setting, its value and what it does."""
    from rich.markup import escape
    from rich.table import Table

    from .settings import SETTINGS

    with _command(ctx) as store:
        values = store.settings()
    table = Table(title="Settings ('branchsync config set NAME VALUE')")
    for column in ("Name", "Value", "What it is"):
        table.add_column(column)
    for name, setting in SETTINGS.items():
        value = values[name]
        shown = escape(value) if value else "[dim](not set)[/]"
        table.add_row(name, shown + ("" if value != setting.default or not value else " [dim](default)[/]"),
                      escape(setting.help))
    _out().print(table)


@config_app.command("set")
def config_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The setting, e.g. shop.name (see 'config show').")],
    value: Annotated[str, typer.Argument(help="Its new value.")],
) -> None:
    """Change a setting (the till uses it from its next request)."""
    with _command(ctx) as store:
        now = store.set_setting(name, value)
    typer.echo(f"{name} = {now[name]}")


@config_app.command("unset")
def config_unset(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The setting.")]) -> None:
    """Put a setting back to its default."""
    with _command(ctx) as store:
        now = store.set_setting(name, None)
    typer.echo(f"{name} = {now[name] or '(not set)'}")


# --- sync ------------------------------------------------------------------------------------------


# How long `sync` waits after a push for the cloud to acknowledge it (the cloud applies a
# message within a second or two when it keeps up); a slower cloud never fails the sync.
ACK_WAIT_SECONDS = 5.0


@app.command()
def sync(
    ctx: typer.Context,
    ack_wait: Annotated[float, typer.Option("--ack-wait", min=0, max=600, envvar="BRANCHSYNC_ACK_WAIT",
                                            help="Seconds to wait after pushing for head office to acknowledge the "
                                                 "sales (0: do not wait; also BRANCHSYNC_ACK_WAIT).")] = ACK_WAIT_SECONDS,
) -> None:
    """Pull catalog and acknowledgements, push new sales, then wait briefly for their acknowledgement."""
    import logging
    import time

    from . import logs

    started = time.monotonic()
    enrolled = False
    try:
        with _command(ctx) as store:
            store.identity()  # NotEnrolled (exit 3) before anything else
            enrolled = True
            with _progress_display() as show:
                report = _run_sync(store, show, ack_wait=ack_wait)
    finally:
        # Also when the cloud is down: a till offline for days still gets its daily backup. Not before
        # enrollment: a copy of an empty database would only count as the day's backup.
        if enrolled:
            _daily_backup(Path(ctx.obj))
    logging.getLogger(logs.LOGGER_NAME).info(logs.sync_line(report, time.monotonic() - started))
    typer.echo(f"sync done: catalog version {report.catalog_version} ({report.entries} changes"
               f"{', full resync' if report.full_resync else ''}), pushed {report.pushed} sales in "
               f"{report.messages} messages; {report.acknowledged} acknowledged by head office, "
               f"{report.on_the_way} still on their way"
               + (f", {report.pending - report.on_the_way} not sent yet" if report.pending > report.on_the_way else ""))
    if report.unsendable:  # the sales behind it went; this one needs a person
        for found in report.unsendable:
            logging.getLogger(logs.LOGGER_NAME).error(f"sync: {found['reason']}")
            typer.echo(f"error: {found['reason']}; it stays on this PC: run 'branchsync doctor' to see what to do",
                       err=True)
        raise typer.Exit(EXIT_FAILURE)


def _daily_backup(home: Path) -> None:
    import logging

    from . import backup as backups
    from . import logs
    from .errors import StoreError

    try:
        made = backups.backup_if_due(home)
    except StoreError as exc:  # a failed backup is logged, shown by doctor and retried by the next sync
        logging.getLogger(logs.LOGGER_NAME).warning(f"daily backup failed: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, a backup problem never fails a sync
        reason = f"daily backup failed: unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        logging.getLogger(logs.LOGGER_NAME).warning(reason)
        backups.record_problem(home, "backup", reason)
        return
    if made:
        logging.getLogger(logs.LOGGER_NAME).info(f"daily backup written: {made}")


@contextmanager
def _progress_display():
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

    from .sync import Progress as SyncProgress
    from .sync import SyncState

    console = _err()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        tasks: dict[SyncState, int] = {}

        def show(p: SyncProgress) -> None:
            if p.state not in (SyncState.PULLING, SyncState.PUSHING, SyncState.ACKING):
                return
            if p.state not in tasks:
                tasks[p.state] = bar.add_task(p.message, total=p.total)
            bar.update(tasks[p.state], completed=p.done, total=p.total, description=escape(p.message))

        yield show


# --- status -----------------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (keys: pending, applied_through, catalog_version, "
                                                         "last_pull, last_push, last_error, ...).")] = False,
) -> None:
    """What is pending, what was acknowledged, what failed and why."""
    from dataclasses import asdict

    from rich.markup import escape
    from rich.table import Table

    from . import status as branch_status
    from .explain import describe_refusal, explain
    from .store import RESEND_AFTER, utcnow

    with _command(ctx) as store:
        info = branch_status.read(store)
        oldest = store.oldest_unacknowledged(3)
    now = utcnow()
    refusal = info.last_refusal
    unsendable = {u.seq: u for u in info.unsendable}
    stuck = [explain(r, now, branch=info.branch, last_error=info.last_error, resend_after=RESEND_AFTER,
                     refusal=refusal, unsendable=unsendable.get(r.sale.seq)) for r in oldest]
    says = describe_refusal(refusal, info.branch) if refusal is not None else None
    if as_json:
        shown = info.as_json()
        if says is not None:
            shown["last_refusal"]["says"] = says
        # The oldest unacknowledged sales, each with why it waits and what happens next.
        shown["stuck"] = [asdict(e) for e in stuck]
        typer.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    table = Table(title="branchsync status", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("branch", info.branch or "[red]not enrolled[/]"),
        ("cloud", info.cloud_url or "-"),
        ("sales recorded", str(info.sales_recorded)),
        ("pending (not acknowledged)", str(info.pending)),
        ("  of which pushed", str(info.pushed_unacked)),
        ("applied through", str(info.applied_through)
         + (f" (generation {info.generation})" if info.generation != 1 else "")),
        ("catalog version", f"{info.catalog_version} ({info.products} products)"),
        ("last pull", info.last_pull or "never"),
        ("last push", info.last_push or "never"),
        ("last error", f"[red]{escape(info.last_error)}[/] ({info.last_error_at})" if info.last_error else "none"),
        ("data home", escape(info.home)),
    ]
    if says is not None:
        rows.insert(4, ("refused by the cloud", f"[red]{escape(says)}[/]"))
    restored = info.restored
    if restored is not None:
        said = (f"from {restored.source} at {restored.at}; new sales are numbered {restored.generation}-1, "
                f"{restored.generation}-2, ...")
        if restored.lost_sales or restored.lost_identity:
            said = f"[red]{escape(said)}; it lost what the previous database held: run 'branchsync doctor'[/]"
        else:
            said = escape(said)
        rows.insert(4, ("restored", said))
    for found in info.unsendable:
        rows.insert(4, ("cannot be sent", f"[red]{escape(found.reason)}[/]"))
    for e in stuck:
        rows.append((f"sale {e.number} ({e.state})", f"{escape(e.why)}\n[bold]next:[/] {escape(e.next)}"))
    for what, value in rows:
        table.add_row(what, value)
    _out().print(table)


# --- catalog -------------------------------------------------------------------------------------------


@catalog_app.command("search")
def catalog_search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Part of a SKU, barcode or name (any case, Bangla works).")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many results.")] = 20,
) -> None:
    """Find products by SKU, barcode or name."""
    from rich.markup import escape
    from rich.table import Table

    from shared.money import format_taka

    with _command(ctx) as store:
        found = store.search_products(text, limit)
    if not found:
        typer.echo(f"no product matches {text!r}")
        return
    table = Table(title=f"Products matching {escape(text)!r}")
    for name, justify in (("SKU", "left"), ("Name", "left"), ("Price (Tk)", "right"), ("Unit", "left"),
                          ("Barcode", "left"), ("Active", "left")):
        table.add_column(name, justify=justify)
    for p in found:
        table.add_row(escape(p.sku), escape(p.name), format_taka(p.price), escape(p.unit), escape(p.barcode or "-"),
                      "yes" if p.active else "[red]no[/]")
    _out().print(table)


# --- till ------------------------------------------------------------------------------------------

TILL_PORT = 8750


@app.command()
def till(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = TILL_PORT,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open the till window.")] = False,
    no_auto_push: Annotated[bool, typer.Option("--no-auto-push", help="Send sales only on 'sync now' and the "
                                               "scheduled sync, not after each sale.")] = False,
) -> None:
    """Open the till: the cashier's screen, in Edge app mode (works offline). Runs until stopped."""
    from .till import server

    def announce(url: str) -> None:
        if sys.stdout is not None:  # None in the windowed executable
            typer.echo(f"till open at {url} (Ctrl+C to stop)")

    with _command(ctx) as store:
        try:
            server.serve(store, port=port, open_browser=not no_browser, client_options=client_options,
                         announce=announce, auto_push=not no_auto_push)
        except OSError as exc:
            from .errors import BadInput

            raise BadInput(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); is the till already open? "
                           "close it, or choose another port with --port") from exc


# --- doctor ------------------------------------------------------------------------------------------

_MARKS = {"ok": "[ OK ]", "warn": "[WARN]", "fail": "[FAIL]", "n/a": "[ -- ]"}


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check this till and say what to fix: folder, database, enrollment, cloud, clock, task, backlog, disk.

    Exits 1 when something needs action ([FAIL]), else 0.
    """
    from . import doctor as doc
    from .cloud_client import CloudClient

    home = Path(ctx.obj)
    facts = doc.gather(home, client_factory=lambda identity: CloudClient.for_identity(identity, **client_options))
    findings = doc.diagnose(facts)
    if as_json:
        typer.echo(json.dumps({"home": str(home), "needs_action": doc.needs_action(findings),
                               "findings": doc.as_json(findings)}, ensure_ascii=False, indent=2))
    else:
        width = max(len(f.check) for f in findings)
        for f in findings:
            typer.echo(f"{_MARKS[f.level.value]} {f.check.ljust(width)}  {f.found}")
            if f.fix and f.level.value in ("warn", "fail"):
                typer.echo(f"       {' ' * width}  fix: {f.fix}")
        failed = sum(f.level.value == "fail" for f in findings)
        typer.echo(f"{failed} thing{'s' if failed != 1 else ''} need{'s' if failed == 1 else ''} action"
                   if failed else "all good: nothing needs action")
    if doc.needs_action(findings):
        raise typer.Exit(EXIT_FAILURE)


@app.command("support-bundle")
def support_bundle(
    ctx: typer.Context,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the zip here (default: support/ in the data home).")] = None,
) -> None:
    """Write a zip for head office: recent logs, status, doctor report, schema version. Never secrets."""
    from datetime import datetime, timezone

    from . import doctor as doc
    from . import status as branch_status
    from . import support
    from .cloud_client import CloudClient

    home = Path(ctx.obj)
    now = datetime.now(timezone.utc)
    with _command(ctx) as store:
        status = branch_status.read(store)
    facts = doc.gather(home, client_factory=lambda identity: CloudClient.for_identity(identity, **client_options))
    findings = doc.diagnose(facts)
    report = {"needs_action": doc.needs_action(findings), "findings": doc.as_json(findings)}
    made = support.write_bundle(home, output or support.default_path(home, now), status=status, doctor=report, now=now)
    typer.echo(f"support bundle written: {made}")
    typer.echo("send this file to head office; it holds no secret and no sales data")


# --- backup / restore ------------------------------------------------------------------------------


@app.command()
def backup(
    ctx: typer.Context,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Keep this many newest backups, delete older ones.")] = 10,
) -> None:
    """Copy the database into backups/ in the data home (safe while the till is in use)."""
    from . import backup as backups

    with _command(ctx):
        made = backups.backup(Path(ctx.obj), keep=keep)
    import logging

    from . import logs

    logging.getLogger(logs.LOGGER_NAME).info(f"backup written: {made}")
    typer.echo(f"backup written: {made}")
    problem = backups.last_problem(Path(ctx.obj))
    if problem and problem["what"] == "prune":  # the backup is good; old ones are left over
        typer.echo(f"warning: {problem['reason']}", err=True)


@app.command()
def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A backup (see the backups folder in the data home).")],
    force: Annotated[bool, typer.Option("--force", help="Restore even if that loses this till's identity or sales "
                                                        "the cloud has not acknowledged (they stay in the safety copy).")] = False,
) -> None:
    """Put a backup back in place of the database (the current one is backed up first).

    Sale entry waits while it runs. New sales are numbered in a new generation (2-1, 2-2, ...), so no
    number the cloud may still receive from the old database is used again, and no printed number changes.
    """
    from . import backup as backups
    from . import logs

    home = Path(ctx.obj)
    log = logs.open_log(home)
    with _errors(ctx):  # the database is being replaced: no store is opened around it
        result = backups.restore(home, file, force=force)
    gen = result["generation"]
    log.info(f"restored {file} (generation {gen}); safety copy of the previous database: {result['safety_backup']}")
    typer.echo(f"restored {file}: new sales are numbered {gen}-1, {gen}-2, ..."
               + (f"; the previous database is saved as {result['safety_backup']}" if result["safety_backup"] else ""))
    if result["lost_sales"]:
        typer.echo(f"warning: {len(result['lost_sales'])} sale(s) never sent to the cloud are not in this backup "
                   f"({', '.join(result['lost_sales'][:10])}); they are only in {result['safety_backup']}", err=True)
    if result["lost_identity"]:
        typer.echo(f"warning: this till was branch {result['lost_identity']}; the restored database is "
                   + (f"branch {result['branch']}" if result["branch"] else "not enrolled"), err=True)
    typer.echo("run 'branchsync sync' now")


# --- schedule ------------------------------------------------------------------------------------------


def _on_windows() -> bool:
    return sys.platform == "win32"


def _live(dry_run: bool) -> bool:
    return _on_windows() and not dry_run


@contextmanager
def _scheduler_errors() -> Iterator[None]:
    """One line and the error's exit code; nothing is logged, since no data home is needed to manage tasks."""
    try:
        yield
    except BranchSyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@schedule_app.command("install")
def schedule_install(
    ctx: typer.Context,
    every: Annotated[str, typer.Option("--every", metavar="DURATION",
                                       help="How often to sync: 90s, 15m, 1h, 1h30m (1m to 31d).")] = "15m",
    principal: Annotated[str, typer.Option("--principal", help="Run the sync as the installing 'user' (S4U, no "
                                           "password stored; the default) or as 'system'.")] = "user",
    till_at_logon: Annotated[bool, typer.Option("--till-at-logon", help="Also open the till when this Windows "
                                                "account logs on (task branchsync-till).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the task XML and the schtasks command; "
                                                            "change nothing.")] = False,
    xml_file: Annotated[Optional[Path], typer.Option("--xml-file", metavar="FILE",
                                                     help="With --dry-run (or off Windows): also write the XML "
                                                          "there, UTF-16 as schtasks wants it (the till task's "
                                                          "next to it, FILE with -till before the suffix).")] = None,
) -> None:
    """Register the scheduled task that syncs every --every, logged on or not, and with --till-at-logon the
    task that opens the till at logon (Windows)."""
    import subprocess

    from . import schedule

    try:
        interval = schedule.parse_every(every)
        if principal not in (schedule.PRINCIPAL_USER, schedule.PRINCIPAL_SYSTEM):
            raise ValueError(f"--principal {principal!r} is not known: use 'user' or 'system'")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    program, extra = schedule.this_program()
    home = Path(ctx.obj).expanduser().absolute()
    account = schedule.windows_account()
    tasks = [schedule.Task(schedule.TASK_NAME, schedule.task_xml(
        program, str(home), interval, schedule.next_start(datetime.now()), principal=principal, user=account,
        extra_args=extra), f"'branchsync --home {home} sync' every {every}, whether or not anyone is logged on")]
    if till_at_logon:
        tasks.append(schedule.Task(schedule.TILL_TASK_NAME, schedule.till_task_xml(
            program, str(home), user=account, extra_args=extra), f"the till opens when {account} logs on"))
    if not _live(dry_run):
        why = "dry run" if dry_run else "not Windows"
        for n, task in enumerate(tasks):
            base = xml_file or Path(f"{schedule.TASK_NAME}.xml")
            target = base if n == 0 else base.with_name(f"{base.stem}-till{base.suffix}")
            if xml_file:
                target.write_bytes(schedule.encode_for_schtasks(task.xml))
            typer.echo(task.xml, nl=False)
            typer.echo(f"# {why}: nothing registered. On the till, as administrator, with this XML saved as "
                       f"UTF-16 in {target}, run:", err=True)
            typer.echo(subprocess.list2cmdline(schedule.create_command(str(target), task.name)), err=True)
        return
    with _scheduler_errors():
        schedule.install(tasks)
    for task in tasks:
        typer.echo(f"scheduled task {task.name} installed: {task.what}")


@schedule_app.command("show")
def schedule_show(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the schtasks commands only.")] = False,
) -> None:
    """Show the registered scheduled tasks (their XML) (Windows)."""
    import subprocess

    from . import schedule

    names = (schedule.TASK_NAME, schedule.TILL_TASK_NAME)
    if not _live(dry_run):
        for name in names:
            typer.echo(subprocess.list2cmdline(schedule.query_command(name)))
        return
    with _scheduler_errors():
        found = {name: schedule.registered(name) for name in names}
    if found[schedule.TASK_NAME] is None:
        typer.echo(f"error: there is no scheduled task {schedule.TASK_NAME}; "
                   "run 'branchsync schedule install' as administrator", err=True)
        raise typer.Exit(EXIT_FAILURE)
    for xml in found.values():
        if xml is not None:
            typer.echo(xml, nl=False)


@schedule_app.command("remove")
def schedule_remove(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the schtasks commands only.")] = False,
) -> None:
    """Remove the scheduled tasks, the sync and the till at logon (Windows); syncing by hand still works."""
    import subprocess

    from . import schedule

    if not _live(dry_run):
        for name in (schedule.TASK_NAME, schedule.TILL_TASK_NAME):
            typer.echo(subprocess.list2cmdline(schedule.delete_command(name)))
        return
    with _scheduler_errors():
        removed = schedule.remove()
    if not removed:
        typer.echo("no branchsync scheduled task is registered: nothing to remove")
    for name in removed:
        typer.echo(f"scheduled task {name} removed")


def _local(moment: datetime, zone=None) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    from . import collector
    from .onefile import keep_with_bootloader
    from .output import make_text_safe, use_system_trust

    collector.settle()  # a pull or a push allocates millions of short-lived objects
    keep_with_bootloader()  # the one-file executable's Python process ends with its bootloader
    make_text_safe()  # Bangla on a pipe or a non-UTF-8 console never fails (see branch_client.output)
    use_system_trust()  # the sales queue's SDK, too, trusts the Windows certificate store
    app(prog_name="branchsync")


if __name__ == "__main__":
    main()
